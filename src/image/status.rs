//! How one reconcile of an image kind (ImageRepository, ImagePolicy, ImageUpdateAutomation) sets
//! its conditions, Event and next look: the rule the three kinds share. Pure.

use std::time::Duration;

use crate::api::condition::{self, Condition, READY, RECONCILING, STALLED};
use crate::runtime::conditions::{Common, Reason, Stamp};
use crate::runtime::events::EventPlan;
use crate::runtime::schedule::{Requeue, backoff};

/// How a reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome<R> {
    Suspended,
    /// Only a spec change helps; the message names the field.
    InvalidSpec {
        message: String,
    },
    /// A failure worth retrying with backoff.
    Failed {
        reason: R,
        message: String,
    },
    /// Done: `Ready=True` with `message`, and an Event when something new happened.
    Ready {
        message: String,
        event: Option<(R, String)>,
    },
}

/// What the rule needs besides the outcome.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub stamp: Stamp<'a>,
    pub interval: Duration,
    /// Failed reconciles in a row before this one.
    pub failures: u32,
}

/// Sets `conditions` for `outcome` and says which Event to record and when to look again.
pub fn settle<R: Reason>(
    conditions: &mut Vec<Condition>,
    ctx: &Context<'_>,
    outcome: Outcome<R>,
) -> (Option<EventPlan>, Requeue) {
    let stamp = &ctx.stamp;
    match outcome {
        Outcome::Suspended => (None, Requeue::OnChange),
        Outcome::InvalidSpec { message } => {
            let reason = Common::InvalidSpec;
            condition::set(conditions, stamp.condition(READY, false, reason, &message));
            condition::set(conditions, stamp.condition(STALLED, true, reason, &message));
            condition::remove(conditions, RECONCILING);
            let event = EventPlan {
                warning: true,
                reason: reason.as_str(),
                message,
                action: "Reconcile".into(),
            };
            (Some(event), Requeue::OnChange)
        }
        Outcome::Failed { reason, message } => {
            condition::set(conditions, stamp.condition(READY, false, reason, &message));
            let retrying = format!("retrying: {message}");
            condition::set(
                conditions,
                stamp.condition(RECONCILING, true, Common::ProgressingWithRetry, retrying),
            );
            condition::remove(conditions, STALLED);
            let event = EventPlan {
                warning: true,
                reason: reason.as_str(),
                message,
                action: "Reconcile".into(),
            };
            let after = backoff(ctx.failures.saturating_add(1), ctx.interval);
            (Some(event), Requeue::Retry(after))
        }
        Outcome::Ready { message, event } => {
            condition::set(
                conditions,
                stamp.condition(READY, true, Common::Succeeded, &message),
            );
            condition::remove(conditions, STALLED);
            condition::remove(conditions, RECONCILING);
            let event = event.map(|(reason, message)| EventPlan {
                warning: false,
                reason: reason.as_str(),
                message,
                action: "Reconcile".into(),
            });
            (event, Requeue::After(ctx.interval))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::condition::ConditionStatus;
    use crate::runtime::conditions::reasons;

    reasons! {
        enum Sample {
            ScanFailed,
            NewTags,
        }
    }

    fn ctx(failures: u32) -> Context<'static> {
        Context {
            stamp: Stamp {
                generation: Some(3),
                now: "2026-01-01T00:00:00Z",
            },
            interval: Duration::from_secs(60),
            failures,
        }
    }

    #[test]
    fn each_outcome_sets_its_conditions() {
        let mut c = Vec::new();
        let (event, requeue) = settle(
            &mut c,
            &ctx(2),
            Outcome::Failed {
                reason: Sample::ScanFailed,
                message: "401".into(),
            },
        );
        assert_eq!(requeue, Requeue::Retry(Duration::from_secs(8)));
        assert!(event.unwrap().warning);
        assert_eq!(
            condition::find(&c, RECONCILING).unwrap().status,
            ConditionStatus::True
        );
        let (event, requeue) = settle(
            &mut c,
            &ctx(0),
            Outcome::Ready {
                message: "3 tags".into(),
                event: Some((Sample::NewTags, "3 tags".into())),
            },
        );
        assert_eq!(requeue, Requeue::After(Duration::from_secs(60)));
        assert_eq!(event.unwrap().reason, "NewTags");
        assert!(condition::find(&c, RECONCILING).is_none());
        assert!(condition::find(&c, READY).unwrap().is_true());
        let (_, requeue) = settle::<Sample>(
            &mut c,
            &ctx(0),
            Outcome::InvalidSpec {
                message: "spec.image: bad".into(),
            },
        );
        assert_eq!(requeue, Requeue::OnChange);
        assert!(condition::find(&c, STALLED).unwrap().is_true());
    }
}
