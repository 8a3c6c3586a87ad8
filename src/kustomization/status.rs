//! What a Kustomization's status and Event become after one reconcile, and when to look again.
//! Pure: the controller gathers the outcome and the scaffold writes the plan.

use std::time::Duration;

use crate::api::condition::{self, READY, RECONCILING, STALLED};
use crate::api::kustomization::{HEALTHY, HISTORY_LIMIT, HistoryEntry, KustomizationStatus};
use crate::runtime::conditions::{Common, Reason, Stamp, reasons};
use crate::runtime::controller::Plan;
use crate::runtime::events::EventPlan;
use crate::runtime::schedule::Requeue;

reasons! {
    /// Reasons of a Kustomization's conditions, Events and history, besides the `Common` ones
    /// (Flux's kustomize-controller reasons where it has one).
    pub enum KustomizationReason {
        /// `Ready=True`: applied (and healthy, when asked).
        ReconciliationSucceeded,
        /// Applying or impersonating failed, or pruning everything was refused (an empty set).
        ReconciliationFailed,
        /// Objects that left the set could not be deleted (they stay in the inventory).
        PruneFailed,
        BuildFailed,
        HealthCheckFailed,
        DependencyNotReady,
        DependencyCycle,
        /// The source or its artifact cannot be read (yet).
        ArtifactFailed,
        /// Event: applied, but a Namespace or CRD that left the set was not pruned because it
        /// holds objects of others (or an inventory entry could not be read).
        PruneSkipped,
        /// `Reconciling=True`: a new revision or spec waits for a release window.
        OutsideReleaseWindow,
    }
}

/// How one reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Suspended,
    /// The spec cannot work until it is changed (an unparsable interval, an unknown source kind).
    InvalidSpec {
        message: String,
    },
    /// A reference leaves the namespace on an agent that refuses it: only a change helps.
    AccessDenied {
        message: String,
    },
    /// Only a change helps, though the spec is valid (a dependency cycle).
    Stalled {
        reason: KustomizationReason,
        message: String,
    },
    /// Not yet possible; nothing was touched (dependency or source not ready).
    Waiting {
        reason: KustomizationReason,
        message: String,
    },
    /// Every release window is closed: nothing was applied. `pending`: a revision or spec not
    /// applied yet waits; look again when the next window opens (`opens_in`).
    OutsideWindow {
        message: String,
        pending: bool,
        opens_in: Option<Duration>,
    },
    /// Tried the revision and failed; the cluster holds what the message says.
    Failed {
        revision: String,
        digest: String,
        reason: KustomizationReason,
        message: String,
    },
    /// Applied (and healthy, when asked).
    Applied {
        revision: String,
        digest: String,
        summary: String,
        checked_health: bool,
        /// What was held back and needs a person: each is said in a Warning Event.
        warnings: Vec<String>,
    },
}

/// Inputs besides the outcome.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// The status as it stands, `Reconciling` included when the controller just marked it.
    pub current: &'a KustomizationStatus,
    pub stamp: Stamp<'a>,
    pub requested_at: Option<&'a str>,
    pub interval: Duration,
    pub retry_interval: Duration,
    /// How long this reconcile took.
    pub elapsed: Duration,
}

/// The plan; its status leaves the inventory out (the reconcile writes that itself, intent first)
/// and is `None` when nothing else changed.
pub fn plan(ctx: &Context<'_>, outcome: Outcome) -> Plan<KustomizationStatus> {
    let mut unchanged = ctx.current.clone();
    unchanged.inventory = None;
    let mut status = unchanged.clone();
    status.observed_generation = ctx.stamp.generation;
    if let Some(requested) = ctx.requested_at {
        status.last_handled_reconcile_at = Some(requested.into());
    }
    let stamp = &ctx.stamp;
    let conditions = &mut status.conditions;
    condition::remove(conditions, RECONCILING);
    let (event, requeue) = match outcome {
        Outcome::Suspended => (None, Requeue::OnChange),
        Outcome::InvalidSpec { message } => {
            stalled(conditions, stamp, Common::InvalidSpec, message)
        }
        Outcome::AccessDenied { message } => {
            stalled(conditions, stamp, Common::AccessDenied, message)
        }
        Outcome::Stalled { reason, message } => stalled(conditions, stamp, reason, message),
        Outcome::Waiting { reason, message } => {
            condition::remove(conditions, STALLED);
            let changed =
                condition::set(conditions, stamp.condition(READY, false, reason, &message));
            let event = changed.then(|| EventPlan {
                warning: false,
                reason: reason.as_str(),
                message,
                action: "Reconcile".into(),
            });
            (event, Requeue::Retry(ctx.retry_interval))
        }
        Outcome::OutsideWindow {
            message,
            pending,
            opens_in,
        } => {
            // Ready keeps saying how the last apply went; an Event when the wait is news.
            let reason = KustomizationReason::OutsideReleaseWindow;
            let said = condition::find(&ctx.current.conditions, RECONCILING)
                .is_some_and(|c| c.reason == reason.as_str() && c.message == message);
            let event = (pending && !said).then(|| EventPlan {
                warning: false,
                reason: reason.as_str(),
                message: message.clone(),
                action: "Reconcile".into(),
            });
            if pending {
                condition::set(
                    conditions,
                    stamp.condition(RECONCILING, true, reason, &message),
                );
            }
            let next = opens_in.map_or(ctx.interval, |d| {
                ctx.interval.min(d + Duration::from_secs(1))
            });
            (event, Requeue::After(next))
        }
        Outcome::Failed {
            revision,
            digest,
            reason,
            message,
        } => {
            condition::remove(conditions, STALLED);
            condition::set(conditions, stamp.condition(READY, false, reason, &message));
            if reason == KustomizationReason::HealthCheckFailed {
                condition::set(
                    conditions,
                    stamp.condition(HEALTHY, false, reason, &message),
                );
            }
            status.last_attempted_revision = Some(revision.clone());
            let action = format!("Reconcile {revision}");
            record(&mut status.history, ctx, revision, digest, reason.as_str());
            (
                Some(EventPlan {
                    warning: true,
                    reason: reason.as_str(),
                    message,
                    action,
                }),
                Requeue::Retry(ctx.retry_interval),
            )
        }
        Outcome::Applied {
            revision,
            digest,
            summary,
            checked_health,
            warnings,
        } => {
            condition::remove(conditions, STALLED);
            let message = format!("Applied revision: {revision}");
            let succeeded = KustomizationReason::ReconciliationSucceeded;
            condition::set(
                conditions,
                stamp.condition(READY, true, succeeded, &message),
            );
            if checked_health {
                let healthy =
                    stamp.condition(HEALTHY, true, Common::Succeeded, "Health check passed");
                condition::set(conditions, healthy);
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
                Common::Succeeded.as_str(),
            );
            // An Event for every reconcile that changed something, for every new revision, and
            // (a Warning) for every reconcile that held something back.
            let mut text = message;
            for part in std::iter::once(&summary).chain(&warnings) {
                if !part.is_empty() {
                    text = format!("{text}\n{part}");
                }
            }
            let event = if warnings.is_empty() {
                (new_revision || !summary.is_empty()).then(|| EventPlan {
                    warning: false,
                    reason: succeeded.as_str(),
                    message: text,
                    action,
                })
            } else {
                Some(EventPlan {
                    warning: true,
                    reason: KustomizationReason::PruneSkipped.as_str(),
                    message: text,
                    action,
                })
            };
            (event, Requeue::After(ctx.interval))
        }
    };
    Plan {
        status: (status != unchanged).then_some(status),
        event,
        requeue,
    }
}

/// `Ready=False` and `Stalled=True` with a Warning Event; only a change helps.
fn stalled(
    conditions: &mut Vec<condition::Condition>,
    stamp: &Stamp<'_>,
    reason: impl Reason,
    message: String,
) -> (Option<EventPlan>, Requeue) {
    condition::set(conditions, stamp.condition(READY, false, reason, &message));
    condition::set(conditions, stamp.condition(STALLED, true, reason, &message));
    let event = EventPlan {
        warning: true,
        reason: reason.as_str(),
        message,
        action: "Reconcile".into(),
    };
    (Some(event), Requeue::OnChange)
}

/// Adds a reconcile to the history, newest first; a repeat of the newest entry (same revision,
/// digest and result) only refreshes its time and duration.
fn record(
    history: &mut Vec<HistoryEntry>,
    ctx: &Context<'_>,
    revision: String,
    digest: String,
    result: &str,
) {
    let entry = HistoryEntry {
        revision,
        digest,
        time: ctx.stamp.now.into(),
        duration: format!("{:.2}", ctx.elapsed.as_secs_f64()),
        result: result.into(),
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
    use crate::api::condition::{Condition, ConditionStatus};
    use crate::api::inventory::Inventory;

    fn ctx(current: &KustomizationStatus) -> Context<'_> {
        Context {
            current,
            stamp: Stamp {
                generation: Some(3),
                now: "2026-01-01T00:00:00Z",
            },
            requested_at: None,
            interval: Duration::from_secs(600),
            retry_interval: Duration::from_secs(60),
            elapsed: Duration::from_millis(1500),
        }
    }

    fn ready(status: &KustomizationStatus) -> Option<&Condition> {
        condition::find(&status.conditions, READY)
    }

    fn applied(revision: &str) -> Outcome {
        Outcome::Applied {
            revision: revision.into(),
            digest: "d".into(),
            summary: String::new(),
            checked_health: false,
            warnings: vec![],
        }
    }

    #[test]
    fn success_sets_ready_revision_and_history() {
        let current = KustomizationStatus::default();
        let outcome = Outcome::Applied {
            revision: "main@sha1:ab".into(),
            digest: "sha256:1".into(),
            summary: "ConfigMap/a/b created".into(),
            checked_health: true,
            warnings: vec![],
        };
        let plan = plan(&ctx(&current), outcome);
        let status = plan.status.unwrap();
        assert_eq!(ready(&status).unwrap().status, ConditionStatus::True);
        assert_eq!(ready(&status).unwrap().reason, "ReconciliationSucceeded");
        assert_eq!(ready(&status).unwrap().observed_generation, Some(3));
        assert_eq!(
            status.last_applied_revision.as_deref(),
            Some("main@sha1:ab")
        );
        assert_eq!(status.history[0].duration, "1.50");
        assert_eq!(status.history[0].result, "Succeeded");
        assert!(plan.event.unwrap().message.contains("created"));
        assert_eq!(plan.requeue, Requeue::After(Duration::from_secs(600)));
    }

    #[test]
    fn outside_the_release_window_ready_stays_and_a_waiting_revision_is_said_once() {
        let applied_status = plan(
            &ctx(&KustomizationStatus::default()),
            applied("main@sha1:ab"),
        )
        .status
        .unwrap();
        let waits = || Outcome::OutsideWindow {
            message: "Revision main@sha1:cd waits: outside the release window".into(),
            pending: true,
            opens_in: Some(Duration::from_secs(120)),
        };
        let first = plan(&ctx(&applied_status), waits());
        let status = first.status.unwrap();
        assert_eq!(
            ready(&status),
            ready(&applied_status),
            "Ready says how the last apply went"
        );
        let reconciling = condition::find(&status.conditions, RECONCILING).unwrap();
        assert_eq!(reconciling.reason, "OutsideReleaseWindow");
        assert_eq!(first.event.unwrap().reason, "OutsideReleaseWindow");
        assert_eq!(first.requeue, Requeue::After(Duration::from_secs(121)));
        assert_eq!(
            status.last_applied_revision.as_deref(),
            Some("main@sha1:ab")
        );

        let again = plan(&ctx(&status), waits());
        assert_eq!(again.event, None);
        assert_eq!(again.status, None, "nothing new to write");

        // Nothing waits: no condition, no Event; the interval is nearer than the window.
        let idle = plan(
            &ctx(&applied_status),
            Outcome::OutsideWindow {
                message: "Nothing is applied or corrected: outside the release window".into(),
                pending: false,
                opens_in: Some(Duration::from_secs(3600)),
            },
        );
        assert_eq!(idle.event, None);
        assert_eq!(idle.requeue, Requeue::After(Duration::from_secs(600)));
    }

    #[test]
    fn a_held_back_prune_is_a_warning_every_time_while_ready_stays_true() {
        let current = KustomizationStatus {
            last_applied_revision: Some("main@sha1:ab".into()),
            ..Default::default()
        };
        let outcome = Outcome::Applied {
            revision: "main@sha1:ab".into(),
            digest: "d".into(),
            summary: String::new(),
            checked_health: false,
            warnings: vec!["Namespace/shop not deleted: it still holds Secret shop/db".into()],
        };
        let plan = plan(&ctx(&current), outcome);
        let event = plan.event.unwrap();
        assert!(event.warning);
        assert_eq!(event.reason, "PruneSkipped");
        assert!(
            event.message.contains("Secret shop/db"),
            "{}",
            event.message
        );
        let status = plan.status.unwrap();
        assert_eq!(ready(&status).unwrap().status, ConditionStatus::True);
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
            reason: KustomizationReason::BuildFailed,
            message: "a.yaml:3: bad".into(),
        };
        let plan = plan(&ctx(&current), outcome);
        let status = plan.status.unwrap();
        assert_eq!(
            status.last_applied_revision.as_deref(),
            Some("main@sha1:old")
        );
        assert_eq!(
            status.last_attempted_revision.as_deref(),
            Some("main@sha1:new")
        );
        assert_eq!(ready(&status).unwrap().reason, "BuildFailed");
        assert_eq!(status.history[0].result, "BuildFailed");
        assert!(plan.event.unwrap().warning);
        assert_eq!(plan.requeue, Requeue::Retry(Duration::from_secs(60)));
    }

    #[test]
    fn history_keeps_the_last_five_and_folds_repeats() {
        let mut status = KustomizationStatus::default();
        for i in 0..7 {
            status = plan(&ctx(&status), applied(&format!("r{i}")))
                .status
                .unwrap();
        }
        assert_eq!(status.history.len(), HISTORY_LIMIT);
        assert_eq!(status.history[0].revision, "r6");
        let mut later = ctx(&status);
        later.stamp.now = "2026-01-01T00:10:00Z";
        let next = plan(&later, applied("r6"));
        let history = next.status.unwrap().history;
        assert_eq!(history.len(), HISTORY_LIMIT);
        assert_eq!(
            (history[0].revision.as_str(), history[0].time.as_str()),
            ("r6", "2026-01-01T00:10:00Z"),
            "a repeat refreshes the newest entry"
        );
        assert!(
            next.event.is_none(),
            "a no-op reconcile of the same revision is not an Event"
        );
    }

    #[test]
    fn a_no_op_reconcile_writes_nothing_and_leaves_the_inventory_to_the_reconcile() {
        let mut first = plan(&ctx(&KustomizationStatus::default()), applied("r1"))
            .status
            .unwrap();
        assert_eq!(first.inventory, None);
        first.inventory = Some(Inventory::default());
        let next = plan(&ctx(&first), applied("r1"));
        assert_eq!(next.status, None, "{:#?}", next.status);
        assert_eq!(next.requeue, Requeue::After(Duration::from_secs(600)));
    }

    #[test]
    fn a_marked_reconcile_clears_reconciling_and_reports_the_trigger() {
        let mut current = plan(&ctx(&KustomizationStatus::default()), applied("r1"))
            .status
            .unwrap();
        let stamp = Stamp {
            generation: Some(3),
            now: "2026-01-01T00:00:00Z",
        };
        condition::set(
            &mut current.conditions,
            stamp.condition(RECONCILING, true, Common::Progressing, "Reconciling r1"),
        );
        let mut c = ctx(&current);
        c.requested_at = Some("2026-11-23T10:00:00Z");
        let status = plan(&c, applied("r1")).status.unwrap();
        assert!(condition::find(&status.conditions, RECONCILING).is_none());
        assert_eq!(
            status.last_handled_reconcile_at.as_deref(),
            Some("2026-11-23T10:00:00Z")
        );
    }

    #[test]
    fn stalls_wait_for_a_change() {
        let current = KustomizationStatus::default();
        for outcome in [
            Outcome::Stalled {
                reason: KustomizationReason::DependencyCycle,
                message: "a -> b -> a".into(),
            },
            Outcome::InvalidSpec {
                message: "spec.interval: bad".into(),
            },
            Outcome::AccessDenied {
                message: "cross-namespace references are not allowed".into(),
            },
        ] {
            let plan = plan(&ctx(&current), outcome);
            assert_eq!(plan.requeue, Requeue::OnChange);
            let status = plan.status.unwrap();
            let stalled = condition::find(&status.conditions, STALLED).unwrap();
            assert_eq!(stalled.status, ConditionStatus::True);
            assert_eq!(stalled.reason, ready(&status).unwrap().reason);
        }
    }
}
