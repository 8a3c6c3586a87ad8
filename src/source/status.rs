//! What a GitRepository's status, events and next poll become after one reconcile. Pure: the
//! controller gathers the outcome and applies the plan.

use std::time::Duration;

use crate::api::condition::{self, Condition, READY, RECONCILING, STALLED};
use crate::api::git_repository::{ArtifactStatus, GitRepositoryStatus, SOURCE_VERIFIED};
use crate::runtime::events::EventPlan;

use super::verify::Untrusted;

/// How one reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Suspended,
    /// The spec cannot work until it is changed.
    InvalidSpec {
        message: String,
    },
    Unchanged {
        revision: String,
        verified: bool,
    },
    Updated {
        artifact: ArtifactStatus,
        verified: Option<String>,
    },
    Untrusted {
        revision: String,
        reason: Untrusted,
    },
    /// A failure worth retrying: auth, network, missing Secret, storage.
    Failed {
        reason: &'static str,
        message: String,
    },
}

/// When to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    After(Duration),
    /// Only a spec change helps.
    OnChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The new status, or `None` when nothing changed (no write).
    pub status: Option<GitRepositoryStatus>,
    pub event: Option<EventPlan>,
    pub requeue: Requeue,
    /// Consecutive failures after this reconcile (0 on success).
    pub failures: u32,
}

/// Inputs besides the outcome.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub current: &'a GitRepositoryStatus,
    pub generation: Option<i64>,
    pub requested_at: Option<&'a str>,
    pub now: &'a str,
    pub interval: Duration,
    pub failures: u32,
    pub verify_enabled: bool,
}

/// Base and cap of the retry backoff.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Exponential backoff after `failures` consecutive failures, never beyond the interval or the cap.
pub fn backoff(failures: u32, interval: Duration) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    exp.min(BACKOFF_MAX).min(interval.max(BACKOFF_BASE))
}

pub fn plan(ctx: &Context<'_>, outcome: Outcome) -> Plan {
    let mut status = ctx.current.clone();
    status.observed_generation = ctx.generation;
    if let Some(r) = ctx.requested_at {
        status.last_handled_requested_at = Some(r.to_owned());
    }
    let cond = |type_: &str, ok: bool, reason: &str, message: String| Condition {
        type_: type_.to_owned(),
        status: if ok { "True" } else { "False" }.to_owned(),
        observed_generation: ctx.generation,
        last_transition_time: ctx.now.to_owned(),
        reason: reason.to_owned(),
        message,
    };
    // Every retryable failure: Ready=False, Reconciling=True while retrying with backoff, a
    // warning Event.
    let retry = |conditions: &mut Vec<Condition>,
                 reason: &str,
                 message: String,
                 retrying: String,
                 action: String| {
        condition::set(conditions, cond(READY, false, reason, message.clone()));
        condition::set(
            conditions,
            cond(RECONCILING, true, "ProgressingWithRetry", retrying),
        );
        condition::remove(conditions, STALLED);
        let failures = ctx.failures + 1;
        let event = EventPlan {
            warning: true,
            reason: reason.into(),
            message,
            action,
        };
        (
            Some(event),
            Requeue::After(backoff(failures, ctx.interval)),
            failures,
        )
    };
    let conditions = &mut status.conditions;
    let (event, requeue, failures) = match outcome {
        Outcome::Suspended => (None, Requeue::OnChange, 0),
        Outcome::InvalidSpec { message } => {
            condition::set(
                conditions,
                cond(READY, false, "InvalidSpec", message.clone()),
            );
            condition::set(
                conditions,
                cond(STALLED, true, "InvalidSpec", message.clone()),
            );
            condition::remove(conditions, RECONCILING);
            let event = EventPlan {
                warning: true,
                reason: "InvalidSpec".into(),
                message,
                action: "Reconcile".into(),
            };
            (Some(event), Requeue::OnChange, 0)
        }
        Outcome::Unchanged { revision, verified } => {
            condition::set(
                conditions,
                cond(
                    READY,
                    true,
                    "Succeeded",
                    format!("stored artifact for revision '{revision}'"),
                ),
            );
            condition::remove(conditions, STALLED);
            condition::remove(conditions, RECONCILING);
            if verified {
                condition::set(
                    conditions,
                    cond(
                        SOURCE_VERIFIED,
                        true,
                        "Succeeded",
                        format!("verified signature of revision '{revision}'"),
                    ),
                );
            }
            (None, Requeue::After(ctx.interval), 0)
        }
        Outcome::Updated { artifact, verified } => {
            let message = format!("stored artifact for revision '{}'", artifact.revision);
            condition::set(conditions, cond(READY, true, "Succeeded", message.clone()));
            condition::remove(conditions, STALLED);
            condition::remove(conditions, RECONCILING);
            match verified {
                Some(by) => {
                    condition::set(conditions, cond(SOURCE_VERIFIED, true, "Succeeded", by));
                }
                None => {
                    condition::remove(conditions, SOURCE_VERIFIED);
                }
            }
            let action = format!("Store {}", artifact.revision);
            status.artifact = Some(artifact);
            let event = EventPlan {
                warning: false,
                reason: "NewArtifact".into(),
                message,
                action,
            };
            (Some(event), Requeue::After(ctx.interval), 0)
        }
        Outcome::Untrusted { revision, reason } => {
            let message = format!("revision '{revision}' is not trusted: {reason}");
            let code = untrusted_reason(&reason);
            condition::set(
                conditions,
                cond(SOURCE_VERIFIED, false, code, message.clone()),
            );
            let retrying = "retrying after verification failed".to_string();
            retry(
                conditions,
                code,
                message,
                retrying,
                format!("Verify {revision}"),
            )
        }
        Outcome::Failed { reason, message } => {
            let retrying = format!("retrying: {message}");
            retry(conditions, reason, message, retrying, "Reconcile".into())
        }
    };
    if !ctx.verify_enabled {
        condition::remove(&mut status.conditions, SOURCE_VERIFIED);
    }
    let status = (status != *ctx.current).then_some(status);
    Plan {
        status,
        event,
        requeue,
        failures,
    }
}

/// Condition reason for each kind of distrust.
pub fn untrusted_reason(u: &Untrusted) -> &'static str {
    match u {
        Untrusted::Unsigned(_) => "Unsigned",
        Untrusted::UnknownKey { .. } => "UnknownKey",
        Untrusted::BadSignature { .. } => "BadSignature",
        Untrusted::ExpiredKey { .. } => "ExpiredKey",
        Untrusted::RevokedKey { .. } => "RevokedKey",
        Untrusted::EmailNotAllowed { .. } => "EmailNotAllowed",
        Untrusted::LightweightTag(_) => "LightweightTag",
        Untrusted::NotATag => "NotATag",
        Untrusted::TagMismatch { .. } => "TagMismatch",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::verify::Subject;

    fn ctx(current: &GitRepositoryStatus) -> Context<'_> {
        Context {
            current,
            generation: Some(2),
            requested_at: None,
            now: "2026-01-01T00:00:00Z",
            interval: Duration::from_secs(60),
            failures: 0,
            verify_enabled: true,
        }
    }

    fn artifact(rev: &str) -> ArtifactStatus {
        ArtifactStatus {
            revision: rev.into(),
            digest: "sha256:x".into(),
            path: "p".into(),
            size: 1,
            last_update_time: "t".into(),
            verified_with: None,
        }
    }

    #[test]
    fn new_artifact_sets_ready_and_emits_an_event() {
        let empty = GitRepositoryStatus::default();
        let p = plan(
            &ctx(&empty),
            Outcome::Updated {
                artifact: artifact("main@sha1:a"),
                verified: Some("ok".into()),
            },
        );
        let s = p.status.unwrap();
        assert_eq!(s.artifact.unwrap().revision, "main@sha1:a");
        assert_eq!(
            condition::find(&s.conditions, READY).unwrap().status,
            "True"
        );
        assert_eq!(
            condition::find(&s.conditions, SOURCE_VERIFIED)
                .unwrap()
                .status,
            "True"
        );
        assert_eq!(s.observed_generation, Some(2));
        assert_eq!(p.event.unwrap().reason, "NewArtifact");
        assert_eq!(p.requeue, Requeue::After(Duration::from_secs(60)));
    }

    #[test]
    fn unchanged_poll_writes_nothing() {
        let empty = GitRepositoryStatus::default();
        let first = plan(
            &ctx(&empty),
            Outcome::Updated {
                artifact: artifact("main@sha1:a"),
                verified: Some("verified signature of revision 'main@sha1:a'".into()),
            },
        )
        .status
        .unwrap();
        let again = plan(
            &ctx(&first),
            Outcome::Unchanged {
                revision: "main@sha1:a".into(),
                verified: true,
            },
        );
        assert_eq!(again.status, None, "a no-op reconcile writes nothing");
        assert_eq!(again.event, None);
    }

    #[test]
    fn untrusted_keeps_the_artifact_and_backs_off() {
        let empty = GitRepositoryStatus::default();
        let first = plan(
            &ctx(&empty),
            Outcome::Updated {
                artifact: artifact("main@sha1:a"),
                verified: Some("ok".into()),
            },
        )
        .status
        .unwrap();
        let mut c = ctx(&first);
        c.failures = 2;
        let p = plan(
            &c,
            Outcome::Untrusted {
                revision: "main@sha1:b".into(),
                reason: Untrusted::Unsigned(Subject::Commit("b".into())),
            },
        );
        let s = p.status.unwrap();
        assert_eq!(s.artifact.unwrap().revision, "main@sha1:a");
        let v = condition::find(&s.conditions, SOURCE_VERIFIED).unwrap();
        assert_eq!(
            (v.status.as_str(), v.reason.as_str()),
            ("False", "Unsigned")
        );
        assert_eq!(p.failures, 3);
        assert_eq!(p.requeue, Requeue::After(Duration::from_secs(8)));
        assert!(p.event.unwrap().warning);
    }

    #[test]
    fn invalid_spec_stalls() {
        let empty = GitRepositoryStatus::default();
        let p = plan(
            &ctx(&empty),
            Outcome::InvalidSpec {
                message: "bad url".into(),
            },
        );
        let s = p.status.unwrap();
        assert_eq!(
            condition::find(&s.conditions, STALLED).unwrap().status,
            "True"
        );
        assert_eq!(p.requeue, Requeue::OnChange);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let hour = Duration::from_secs(3600);
        assert_eq!(backoff(1, hour), Duration::from_secs(2));
        assert_eq!(backoff(2, hour), Duration::from_secs(4));
        assert_eq!(backoff(30, hour), BACKOFF_MAX);
        assert_eq!(
            backoff(30, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }
}
