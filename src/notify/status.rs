//! What the status of a Receiver, Provider or Alert becomes: they only say whether they can
//! work. Pure.

use std::time::Duration;

use crate::api::condition::{self, Condition, READY, STALLED};
use crate::runtime::conditions::{Common, Reason, Stamp, reasons};
use crate::runtime::events::EventPlan;
use crate::runtime::schedule::Requeue;

reasons! {
    /// Reasons of the notification kinds' conditions, besides the `Common` ones.
    pub enum NotificationReason {
        /// The Secret a Receiver or Provider names is missing or lacks a key.
        SecretNotFound,
        /// The Provider an Alert names does not exist.
        ProviderNotFound,
        /// A Provider's address or token cannot work.
        InvalidProvider,
        /// Event on a Provider: a notification could not be delivered (an error status, no
        /// answer in time, no connection).
        DeliveryFailed,
    }
}

/// How one check ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Suspended,
    Ready(String),
    /// Not yet: a Secret or Provider may appear.
    Waiting(NotificationReason, String),
    /// Only a spec change helps.
    Invalid(String),
    /// A reference leaves the namespace on an agent that refuses it: only a change helps.
    AccessDenied(String),
}

/// Sets `conditions` for `outcome`; says which Event to emit and when to look again.
pub fn plan(
    conditions: &mut Vec<Condition>,
    stamp: &Stamp<'_>,
    outcome: Outcome,
    interval: Duration,
    retry: Duration,
) -> (Option<EventPlan>, Requeue) {
    let event = |warning, reason: &'static str, message: String| EventPlan {
        warning,
        reason,
        message,
        action: "Reconcile".into(),
    };
    match outcome {
        Outcome::Suspended => (None, Requeue::OnChange),
        Outcome::Ready(message) => {
            condition::remove(conditions, STALLED);
            let changed = condition::set(
                conditions,
                stamp.condition(READY, true, Common::Succeeded, &message),
            );
            let said = changed.then(|| event(false, Common::Succeeded.as_str(), message));
            (said, Requeue::After(interval))
        }
        Outcome::Waiting(reason, message) => {
            condition::remove(conditions, STALLED);
            let changed =
                condition::set(conditions, stamp.condition(READY, false, reason, &message));
            (
                changed.then(|| event(true, reason.as_str(), message)),
                Requeue::Retry(retry),
            )
        }
        Outcome::Invalid(message) => stalled(conditions, stamp, Common::InvalidSpec, message),
        Outcome::AccessDenied(message) => stalled(conditions, stamp, Common::AccessDenied, message),
    }
}

/// `Ready=False` and `Stalled=True` for `reason`, with a Warning Event when that is news.
fn stalled(
    conditions: &mut Vec<Condition>,
    stamp: &Stamp<'_>,
    reason: Common,
    message: String,
) -> (Option<EventPlan>, Requeue) {
    condition::set(conditions, stamp.condition(READY, false, reason, &message));
    let changed = condition::set(conditions, stamp.condition(STALLED, true, reason, &message));
    let event = changed.then(|| EventPlan {
        warning: true,
        reason: reason.as_str(),
        message,
        action: "Reconcile".into(),
    });
    (event, Requeue::OnChange)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::condition::ConditionStatus;

    #[test]
    fn ready_waiting_and_invalid() {
        let stamp = Stamp {
            generation: Some(1),
            now: "t",
        };
        let minute = Duration::from_secs(60);
        let mut conditions = vec![];
        let (event, requeue) = plan(
            &mut conditions,
            &stamp,
            Outcome::Waiting(
                NotificationReason::ProviderNotFound,
                "Provider slack not found".into(),
            ),
            minute,
            Duration::from_secs(5),
        );
        assert!(event.unwrap().warning);
        assert_eq!(requeue, Requeue::Retry(Duration::from_secs(5)));
        assert_eq!(
            condition::find(&conditions, READY).unwrap().reason,
            "ProviderNotFound"
        );
        let (event, _) = plan(
            &mut conditions,
            &stamp,
            Outcome::Ready("ok".into()),
            minute,
            minute,
        );
        assert!(!event.unwrap().warning);
        let (again, _) = plan(
            &mut conditions,
            &stamp,
            Outcome::Ready("ok".into()),
            minute,
            minute,
        );
        assert!(again.is_none(), "no Event when nothing changed");
        let (_, requeue) = plan(
            &mut conditions,
            &stamp,
            Outcome::Invalid("bad regex".into()),
            minute,
            minute,
        );
        assert_eq!(requeue, Requeue::OnChange);
        assert_eq!(
            condition::find(&conditions, STALLED).unwrap().status,
            ConditionStatus::True
        );
        let (event, requeue) = plan(
            &mut conditions,
            &stamp,
            Outcome::AccessDenied("spec.eventSources[0] team-b/*".into()),
            minute,
            minute,
        );
        assert_eq!(requeue, Requeue::OnChange);
        assert_eq!(event.unwrap().reason, "AccessDenied");
        let stalled = condition::find(&conditions, STALLED).unwrap();
        assert_eq!(
            (stalled.status, stalled.reason.as_str()),
            (ConditionStatus::True, "AccessDenied")
        );
        assert_eq!(
            condition::find(&conditions, READY).unwrap().reason,
            "AccessDenied"
        );
    }
}
