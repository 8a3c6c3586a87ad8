//! What a Kustomization's status and Event become after one reconcile, and when to look again.
//! Pure: the controller gathers the outcome and acts on the plan.

use std::time::Duration;

use crate::api::condition::{self, Condition, READY, RECONCILING, STALLED};
use crate::api::kustomization::{HEALTHY, HISTORY_LIMIT, HistoryEntry, KustomizationStatus};
use crate::runtime::events::EventPlan;

/// How one reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Suspended,
    /// Only a spec change helps (a dependency cycle, an unparsable interval).
    Stalled {
        reason: &'static str,
        message: String,
    },
    /// Not yet possible; nothing was touched (dependency or source not ready).
    Waiting {
        reason: &'static str,
        message: String,
    },
    /// Tried the revision and failed; the cluster holds what the message says.
    Failed {
        revision: String,
        digest: String,
        reason: &'static str,
        message: String,
    },
    /// Applied (and healthy, when asked).
    Applied {
        revision: String,
        digest: String,
        summary: String,
        checked_health: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub status: KustomizationStatus,
    pub event: Option<EventPlan>,
    /// `None`: wait for a change of the object.
    pub requeue: Option<Duration>,
}

/// Inputs besides the outcome.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub current: &'a KustomizationStatus,
    pub generation: Option<i64>,
    pub requested_at: Option<&'a str>,
    pub now: &'a str,
    pub interval: Duration,
    pub retry_interval: Duration,
    /// How long this reconcile took.
    pub elapsed: Duration,
}

fn cond(type_: &str, status: bool, reason: &str, message: &str, ctx: &Context<'_>) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        observed_generation: ctx.generation,
        last_transition_time: ctx.now.into(),
        reason: reason.into(),
        message: message.into(),
    }
}

pub fn plan(ctx: &Context<'_>, outcome: Outcome) -> Plan {
    let mut status = ctx.current.clone();
    status.observed_generation = ctx.generation;
    if let Some(requested) = ctx.requested_at {
        status.last_handled_requested_at = Some(requested.into());
    }
    let conditions = &mut status.conditions;
    condition::remove(conditions, RECONCILING);
    let (event, requeue) = match outcome {
        Outcome::Suspended => {
            return Plan {
                status,
                event: None,
                requeue: None,
            };
        }
        Outcome::Stalled { reason, message } => {
            condition::set(conditions, cond(READY, false, reason, &message, ctx));
            condition::set(conditions, cond(STALLED, true, reason, &message, ctx));
            (
                Some(EventPlan {
                    warning: true,
                    reason: reason.into(),
                    message,
                    action: "Reconcile".into(),
                }),
                None,
            )
        }
        Outcome::Waiting { reason, message } => {
            condition::remove(conditions, STALLED);
            let changed = condition::set(conditions, cond(READY, false, reason, &message, ctx));
            let event = changed.then(|| EventPlan {
                warning: false,
                reason: reason.into(),
                message,
                action: "Reconcile".into(),
            });
            (event, Some(ctx.retry_interval))
        }
        Outcome::Failed {
            revision,
            digest,
            reason,
            message,
        } => {
            condition::remove(conditions, STALLED);
            condition::set(conditions, cond(READY, false, reason, &message, ctx));
            if reason == "HealthCheckFailed" {
                condition::set(conditions, cond(HEALTHY, false, reason, &message, ctx));
            }
            status.last_attempted_revision = Some(revision.clone());
            let action = format!("Reconcile {revision}");
            record(&mut status.history, ctx, revision, digest, reason.into());
            (
                Some(EventPlan {
                    warning: true,
                    reason: reason.into(),
                    message,
                    action,
                }),
                Some(ctx.retry_interval),
            )
        }
        Outcome::Applied {
            revision,
            digest,
            summary,
            checked_health,
        } => {
            condition::remove(conditions, STALLED);
            let message = format!("Applied revision: {revision}");
            condition::set(
                conditions,
                cond(READY, true, "ReconciliationSucceeded", &message, ctx),
            );
            if checked_health {
                condition::set(
                    conditions,
                    cond(HEALTHY, true, "Succeeded", "Health check passed", ctx),
                );
            } else {
                condition::remove(conditions, HEALTHY);
            }
            let new_revision = status.last_applied_revision.as_deref() != Some(revision.as_str());
            status.last_applied_revision = Some(revision.clone());
            status.last_attempted_revision = Some(revision.clone());
            let action = format!("Reconcile {revision}");
            record(
                &mut status.history,
                ctx,
                revision,
                digest,
                "Succeeded".into(),
            );
            // An Event for every reconcile that changed something, and for every new revision.
            let event = (new_revision || !summary.is_empty()).then(|| EventPlan {
                warning: false,
                reason: "ReconciliationSucceeded".into(),
                message: if summary.is_empty() {
                    message
                } else {
                    format!("{message}\n{summary}")
                },
                action,
            });
            (event, Some(ctx.interval))
        }
    };
    Plan {
        status,
        event,
        requeue,
    }
}

/// Adds a reconcile to the history, newest first; a repeat of the newest entry (same revision,
/// digest and result) only refreshes its time and duration.
fn record(
    history: &mut Vec<HistoryEntry>,
    ctx: &Context<'_>,
    revision: String,
    digest: String,
    result: String,
) {
    let entry = HistoryEntry {
        revision,
        digest,
        time: ctx.now.into(),
        duration: format!("{:.2}", ctx.elapsed.as_secs_f64()),
        result,
    };
    match history.first_mut() {
        Some(newest)
            if newest.revision == entry.revision
                && newest.digest == entry.digest
                && newest.result == entry.result =>
        {
            *newest = entry;
        }
        _ => {
            history.insert(0, entry);
            history.truncate(HISTORY_LIMIT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(current: &KustomizationStatus) -> Context<'_> {
        Context {
            current,
            generation: Some(3),
            requested_at: None,
            now: "2026-01-01T00:00:00Z",
            interval: Duration::from_secs(600),
            retry_interval: Duration::from_secs(60),
            elapsed: Duration::from_millis(1500),
        }
    }

    fn ready(status: &KustomizationStatus) -> Option<&Condition> {
        condition::find(&status.conditions, READY)
    }

    #[test]
    fn success_sets_ready_revision_and_history() {
        let current = KustomizationStatus::default();
        let outcome = Outcome::Applied {
            revision: "main@sha1:ab".into(),
            digest: "sha256:1".into(),
            summary: "ConfigMap/a/b created".into(),
            checked_health: true,
        };
        let plan = plan(&ctx(&current), outcome);
        assert_eq!(ready(&plan.status).unwrap().status, "True");
        assert_eq!(ready(&plan.status).unwrap().observed_generation, Some(3));
        assert_eq!(
            plan.status.last_applied_revision.as_deref(),
            Some("main@sha1:ab")
        );
        assert_eq!(plan.status.history[0].duration, "1.50");
        assert!(plan.event.unwrap().message.contains("created"));
        assert_eq!(plan.requeue, Some(Duration::from_secs(600)));
    }

    #[test]
    fn failure_keeps_the_last_applied_revision_and_retries_sooner() {
        let current = KustomizationStatus {
            last_applied_revision: Some("main@sha1:old".into()),
            ..Default::default()
        };
        let outcome = Outcome::Failed {
            revision: "main@sha1:new".into(),
            digest: "sha256:2".into(),
            reason: "BuildFailed",
            message: "a.yaml:3: bad".into(),
        };
        let plan = plan(&ctx(&current), outcome);
        assert_eq!(
            plan.status.last_applied_revision.as_deref(),
            Some("main@sha1:old")
        );
        assert_eq!(
            plan.status.last_attempted_revision.as_deref(),
            Some("main@sha1:new")
        );
        assert_eq!(ready(&plan.status).unwrap().reason, "BuildFailed");
        assert!(plan.event.unwrap().warning);
        assert_eq!(plan.requeue, Some(Duration::from_secs(60)));
    }

    #[test]
    fn history_keeps_the_last_five_and_folds_repeats() {
        let mut status = KustomizationStatus::default();
        for i in 0..7 {
            let outcome = Outcome::Applied {
                revision: format!("r{i}"),
                digest: "d".into(),
                summary: String::new(),
                checked_health: false,
            };
            status = plan(&ctx(&status), outcome).status;
        }
        assert_eq!(status.history.len(), HISTORY_LIMIT);
        assert_eq!(status.history[0].revision, "r6");
        let again = Outcome::Applied {
            revision: "r6".into(),
            digest: "d".into(),
            summary: String::new(),
            checked_health: false,
        };
        let next = plan(&ctx(&status), again);
        assert_eq!(next.status.history.len(), HISTORY_LIMIT);
        assert!(
            next.event.is_none(),
            "a no-op reconcile of the same revision is not an Event"
        );
    }

    #[test]
    fn stalls_wait_for_a_change() {
        let current = KustomizationStatus::default();
        let plan = plan(
            &ctx(&current),
            Outcome::Stalled {
                reason: "DependencyCycle",
                message: "a -> b -> a".into(),
            },
        );
        assert_eq!(plan.requeue, None);
        assert_eq!(
            condition::find(&plan.status.conditions, STALLED)
                .unwrap()
                .status,
            "True"
        );
    }
}
