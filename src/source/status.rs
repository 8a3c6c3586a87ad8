//! What a GitRepository's status, events and next poll become after one reconcile. Pure: the
//! controller gathers the outcome and the scaffold writes the plan.

use std::time::Duration;

use crate::api::condition::{self, Condition, READY, RECONCILING, STALLED};
use crate::api::git_repository::{ArtifactStatus, GitRepositoryStatus, SOURCE_VERIFIED};
use crate::runtime::conditions::{Common, Reason, Stamp, reasons};
use crate::runtime::controller::Plan;
use crate::runtime::events::EventPlan;
use crate::runtime::schedule::{Requeue, backoff};

use super::verify::Untrusted;

reasons! {
    /// Reasons of a GitRepository's conditions and Events, besides the `Common` ones.
    pub enum SourceReason {
        /// Event: a new revision was stored.
        NewArtifact,
        /// The credentials or keys Secret cannot be used.
        InvalidSecret,
        SecretNotFound,
        AuthenticationFailed,
        GitOperationFailed,
        /// Verification could not run (not: the revision is untrusted).
        VerificationError,
        ArtifactFailed,
        // Why a revision is not trusted (`SourceVerified=False`).
        Unsigned,
        UnknownKey,
        BadSignature,
        ExpiredKey,
        RevokedKey,
        EmailNotAllowed,
        LightweightTag,
        NotATag,
        /// A signed tag whose own headers name another tag or commit.
        TagMismatch,
    }
}

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
        reason: SourceReason,
        message: String,
    },
}

/// Inputs besides the outcome.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub current: &'a GitRepositoryStatus,
    pub stamp: Stamp<'a>,
    pub requested_at: Option<&'a str>,
    pub interval: Duration,
    /// Failed reconciles in a row before this one.
    pub failures: u32,
    pub verify_enabled: bool,
}

pub fn plan(ctx: &Context<'_>, outcome: Outcome) -> Plan<GitRepositoryStatus> {
    let mut status = ctx.current.clone();
    status.observed_generation = ctx.stamp.generation;
    if let Some(r) = ctx.requested_at {
        status.last_handled_reconcile_at = Some(r.to_owned());
    }
    let stamp = &ctx.stamp;
    // Every retryable failure: Ready=False, Reconciling=True while retrying with backoff, a
    // warning Event.
    let retry = |conditions: &mut Vec<Condition>,
                 reason: SourceReason,
                 message: String,
                 retrying: String,
                 action: String| {
        condition::set(conditions, stamp.condition(READY, false, reason, &message));
        condition::set(
            conditions,
            stamp.condition(RECONCILING, true, Common::ProgressingWithRetry, retrying),
        );
        condition::remove(conditions, STALLED);
        let event = EventPlan {
            warning: true,
            reason: reason.as_str(),
            message,
            action,
        };
        let after = backoff(ctx.failures.saturating_add(1), ctx.interval);
        (Some(event), Requeue::Retry(after))
    };
    let conditions = &mut status.conditions;
    let (event, requeue) = match outcome {
        Outcome::Suspended => (None, Requeue::OnChange),
        Outcome::Untrusted { revision, reason } => {
            let message = format!("revision '{revision}' is not trusted: {reason}");
            let code = untrusted_reason(&reason);
            let verified = stamp.condition(SOURCE_VERIFIED, false, code, &message);
            condition::set(conditions, verified);
            let retrying = "retrying after verification failed".to_string();
            let action = format!("Verify {revision}");
            retry(conditions, code, message, retrying, action)
        }
        Outcome::Failed { reason, message } => {
            let retrying = format!("retrying: {message}");
            retry(conditions, reason, message, retrying, "Reconcile".into())
        }
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
        Outcome::Unchanged { revision, verified } => {
            let message = format!("stored artifact for revision '{revision}'");
            condition::set(
                conditions,
                stamp.condition(READY, true, Common::Succeeded, message),
            );
            condition::remove(conditions, STALLED);
            condition::remove(conditions, RECONCILING);
            if verified {
                let message = format!("verified signature of revision '{revision}'");
                condition::set(
                    conditions,
                    stamp.condition(SOURCE_VERIFIED, true, Common::Succeeded, message),
                );
            }
            (None, Requeue::After(ctx.interval))
        }
        Outcome::Updated { artifact, verified } => {
            let message = format!("stored artifact for revision '{}'", artifact.revision);
            condition::set(
                conditions,
                stamp.condition(READY, true, Common::Succeeded, &message),
            );
            condition::remove(conditions, STALLED);
            condition::remove(conditions, RECONCILING);
            match verified {
                Some(by) => {
                    let verified = stamp.condition(SOURCE_VERIFIED, true, Common::Succeeded, by);
                    condition::set(conditions, verified);
                }
                None => {
                    condition::remove(conditions, SOURCE_VERIFIED);
                }
            }
            let action = format!("Store {}", artifact.revision);
            status.artifact = Some(artifact);
            let event = EventPlan {
                warning: false,
                reason: SourceReason::NewArtifact.as_str(),
                message,
                action,
            };
            (Some(event), Requeue::After(ctx.interval))
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
    }
}

/// Condition reason for each kind of distrust.
pub fn untrusted_reason(u: &Untrusted) -> SourceReason {
    match u {
        Untrusted::Unsigned(_) => SourceReason::Unsigned,
        Untrusted::UnknownKey { .. } => SourceReason::UnknownKey,
        Untrusted::BadSignature { .. } => SourceReason::BadSignature,
        Untrusted::ExpiredKey { .. } => SourceReason::ExpiredKey,
        Untrusted::RevokedKey { .. } => SourceReason::RevokedKey,
        Untrusted::EmailNotAllowed { .. } => SourceReason::EmailNotAllowed,
        Untrusted::LightweightTag(_) => SourceReason::LightweightTag,
        Untrusted::NotATag => SourceReason::NotATag,
        Untrusted::TagMismatch { .. } => SourceReason::TagMismatch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::condition::ConditionStatus;
    use crate::source::verify::Subject;

    fn ctx(current: &GitRepositoryStatus) -> Context<'_> {
        Context {
            current,
            stamp: Stamp {
                generation: Some(2),
                now: "2026-01-01T00:00:00Z",
            },
            requested_at: None,
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
            ConditionStatus::True
        );
        assert_eq!(
            condition::find(&s.conditions, SOURCE_VERIFIED)
                .unwrap()
                .status,
            ConditionStatus::True
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
            (v.status, v.reason.as_str()),
            (ConditionStatus::False, "Unsigned")
        );
        assert_eq!(
            p.requeue,
            Requeue::Retry(Duration::from_secs(8)),
            "the third failure in a row"
        );
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
            ConditionStatus::True
        );
        assert_eq!(p.requeue, Requeue::OnChange);
    }
}
