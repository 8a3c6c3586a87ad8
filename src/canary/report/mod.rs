//! Reporting a rolled-back revision to Git (`spec.gitReport`): which rollback still needs a
//! report, the commit it is about, the note's text and how it joins a note already there, the
//! revert branch, and how an outcome reads on the Canary (the `GitReported` condition, an Event).
//! Pure; `write` does the I/O.

pub mod write;

use std::collections::BTreeMap;

use crate::api::canary::{CanaryStatus, GIT_REPORTED, GitReport, Phase};
use crate::api::condition::{self, READY};
use crate::api::git_repository::GitRepositoryRef;
use crate::apply::applier::{OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL};
use crate::runtime::conditions::{Stamp, reasons};
use crate::source::revision::DEFAULT_BRANCH;

use super::machine::{CanaryReason, Note};

/// Where the notes go.
pub const NOTES_REF: &str = "refs/notes/sluice";
/// Who writes the notes and revert commits.
pub const AUTHOR: (&str, &str) = ("sluice", "sluice@users.noreply.sluice.dev");

reasons! {
    /// Reasons of the `GitReported` condition and its Events.
    pub enum ReportReason {
        /// The note (and revert branch) were written, or were there already.
        Reported,
        /// The target was not applied by a Kustomization: nothing to report to.
        NotFromGit,
        /// The Kustomization has not applied the rolled-back revision in this process yet, so its
        /// commit is not known; retried.
        RevisionUnknown,
        /// Reading the Kustomization, GitRepository or Secret failed.
        SourceNotReady,
        AuthenticationFailed,
        /// Fetching, writing or pushing failed, or the remote kept moving.
        GitOperationFailed,
    }
}

/// The rollback a report is about: which Canary, which commit, why, when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `namespace/name` of the Canary.
    pub canary: String,
    /// The source revision (`main@sha1:<sha>`).
    pub revision: String,
    /// The commit (40 hex digits).
    pub sha: String,
    /// The target, `Deployment/name`.
    pub target: String,
    /// What the analysis said when it rolled back (the failed check and its values).
    pub why: String,
    /// `failed/threshold`.
    pub failed_checks: String,
    /// RFC 3339.
    pub at: String,
}

/// The commit of a source revision (`main@sha1:<hex>`, `sha1:<hex>`, `<hex>`).
pub fn commit(revision: &str) -> Option<&str> {
    let sha = revision
        .rsplit_once("sha1:")
        .map_or(revision, |(_, sha)| sha);
    (sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some(sha)
}

/// Whether the status shows a rollback that `spec.gitReport` asks to report and that is not
/// done with yet.
pub fn due(report: Option<&GitReport>, status: &CanaryStatus) -> bool {
    report.is_some_and(|r| r.note || r.revert_branch)
        && status.phase == Some(Phase::Failed)
        && !status.last_applied_spec.is_empty()
        && status.last_reported_spec != status.last_applied_spec
}

/// What the controller knows of a rollback that is due.
#[derive(Debug, Clone)]
pub struct Seen<'a> {
    pub namespace: &'a str,
    /// The Canary's name.
    pub name: &'a str,
    /// The target Deployment's name and labels.
    pub target: &'a str,
    pub labels: &'a BTreeMap<String, String>,
    pub threshold: u32,
    /// The source revision that brought the rolled-back revision, when the applier said it.
    pub revision: Option<String>,
    pub status: &'a CanaryStatus,
    /// RFC 3339.
    pub now: &'a str,
}

/// What to do about a rollback that is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to write (yet): say so.
    Say(Outcome),
    /// Write `failure` into the Git source of the Kustomization (`namespace`, `name`).
    Write {
        kustomization: (String, String),
        failure: Failure,
    },
}

/// Decides what to do about a rollback: nothing when no Kustomization applied the target (its
/// owner labels are missing) or the revision names no commit; wait while the commit is not known
/// (after a restart, until the applier applies the target again); otherwise write it.
pub fn plan(seen: Seen<'_>) -> Plan {
    let (ns, target) = (seen.namespace, seen.target);
    let (Some(owner), Some(owner_ns)) = (
        seen.labels.get(OWNER_NAME_LABEL),
        seen.labels.get(OWNER_NAMESPACE_LABEL),
    ) else {
        return Plan::Say(Outcome::NotFromGit(format!(
            "nothing reported to Git: Deployment {ns}/{target} was not applied by a Kustomization (it has no {OWNER_NAME_LABEL} label)"
        )));
    };
    let Some(revision) = seen.revision else {
        return Plan::Say(Outcome::Failed {
            reason: ReportReason::RevisionUnknown,
            message: format!(
                "waiting to report to Git: the commit of the rolled-back revision is not known until Kustomization {owner_ns}/{owner} applies Deployment {ns}/{target} again"
            ),
        });
    };
    let Some(sha) = commit(&revision).map(str::to_string) else {
        return Plan::Say(Outcome::NotFromGit(format!(
            "nothing reported to Git: revision {revision} names no commit"
        )));
    };
    let status = seen.status;
    Plan::Write {
        kustomization: (owner_ns.clone(), owner.clone()),
        failure: Failure {
            canary: format!("{ns}/{}", seen.name),
            revision,
            sha,
            target: format!("Deployment/{target}"),
            // As the Ready condition says it (`Rolled back web.shop: ...`).
            why: condition::find(&status.conditions, READY)
                .map(|c| c.message.clone())
                .unwrap_or_default(),
            failed_checks: format!("{}/{}", status.failed_checks, seen.threshold),
            at: status
                .last_transition_time
                .clone()
                .unwrap_or_else(|| seen.now.to_string()),
        },
    }
}

/// The first line of a note entry: one per Canary and revision, so a report made again (after
/// a restart) finds it.
fn header(f: &Failure) -> String {
    format!("Canary {} rolled back {}", f.canary, f.revision)
}

/// The note's entry for a failure.
pub fn entry(f: &Failure) -> String {
    format!(
        "{}\nTarget: {}\nReason: {}\nFailed checks: {}\nTime: {}\n",
        header(f),
        f.target,
        f.why,
        f.failed_checks,
        f.at
    )
}

/// The note with the failure's entry added after what `existing` says (another Canary's entry,
/// someone else's note); `None` when it says this failure already.
pub fn merge(existing: Option<&str>, f: &Failure) -> Option<String> {
    let existing = existing.unwrap_or("").trim_end();
    let header = header(f);
    if existing.lines().any(|line| line.trim_end() == header) {
        return None;
    }
    Some(if existing.is_empty() {
        entry(f)
    } else {
        format!("{existing}\n\n{}", entry(f))
    })
}

/// The branch the revert commit goes to.
pub fn revert_branch(sha: &str) -> String {
    format!("sluice/revert-{}", &sha[..sha.len().min(7)])
}

/// The revert commit's message.
pub fn revert_message(f: &Failure) -> String {
    format!(
        "Revert {}\n\nThis reverts commit {}, which Canary {} rolled back.\n\n{}\n",
        &f.sha[..f.sha.len().min(7)],
        f.sha,
        f.canary,
        f.why
    )
}

/// The reference holding the commit, to fetch it and to put the revert on top of: the branch or
/// tag the GitRepository follows (by the revision's name where it has one).
pub fn source_reference(revision: &str, reference: Option<&GitRepositoryRef>) -> String {
    let name = revision.rsplit_once('@').map(|(name, _)| name);
    let name = name.filter(|n| !n.is_empty() && !n.starts_with("sha1:"));
    let reference = reference.cloned().unwrap_or_default();
    match (name, reference) {
        (Some(full), _) if full.starts_with("refs/") => full.to_string(),
        (Some(tag), r) if r.tag.is_some() || r.semver.is_some() => format!("refs/tags/{tag}"),
        (Some(branch), _) => format!("refs/heads/{branch}"),
        (None, r) => match (r.branch, r.name) {
            (Some(branch), _) => format!("refs/heads/{branch}"),
            (None, Some(name)) => name,
            (None, None) => format!("refs/heads/{DEFAULT_BRANCH}"),
        },
    }
}

/// How a report went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done: what was written (or found there), and what was skipped, as Warnings.
    Reported {
        message: String,
        skipped: Vec<String>,
    },
    /// Nothing to report to; said once.
    NotFromGit(String),
    /// Not done; tried again on a later reconcile.
    Failed {
        reason: ReportReason,
        message: String,
    },
}

/// Writes `outcome` into `status` (`GitReported`, and `lastReportedSpec` once done with the
/// revision) and returns the Events to record: one whenever the condition changes, so a failure
/// retried on every reconcile is said once, not every time.
pub fn settle(status: &mut CanaryStatus, stamp: &Stamp<'_>, outcome: Outcome) -> Vec<Note> {
    let (done, ok, reason, message, skipped) = match outcome {
        Outcome::Reported { message, skipped } => {
            (true, true, ReportReason::Reported, message, skipped)
        }
        Outcome::NotFromGit(message) => (true, false, ReportReason::NotFromGit, message, vec![]),
        Outcome::Failed { reason, message } => (false, false, reason, message, vec![]),
    };
    if done {
        status.last_reported_spec = status.last_applied_spec.clone();
    }
    let changed = condition::set(
        &mut status.conditions,
        stamp.condition(GIT_REPORTED, ok, reason, &message),
    );
    if !changed {
        return Vec::new();
    }
    let event = |warning: bool, reason: CanaryReason, message: String| Note {
        warning,
        reason,
        message,
    };
    let mut notes = vec![match reason {
        ReportReason::Reported => event(false, CanaryReason::GitReported, message),
        ReportReason::NotFromGit => event(false, CanaryReason::GitReportSkipped, message),
        _ => event(true, CanaryReason::GitReportFailed, message),
    }];
    notes.extend(
        skipped
            .into_iter()
            .map(|m| event(true, CanaryReason::GitReportSkipped, m)),
    );
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn failure(canary: &str) -> Failure {
        Failure {
            canary: canary.into(),
            revision: format!("main@sha1:{SHA}"),
            sha: SHA.into(),
            target: "Deployment/web".into(),
            why: "Rolled back web.shop: failed checks threshold reached 1 (last: \
                  request-success-rate 42.10 outside >= 99)"
                .into(),
            failed_checks: "1/1".into(),
            at: "2026-12-02T08:00:00Z".into(),
        }
    }

    #[test]
    fn which_commit_and_whether_there_is_one() {
        let labels = BTreeMap::from([
            (OWNER_NAME_LABEL.to_string(), "apps".to_string()),
            (OWNER_NAMESPACE_LABEL.to_string(), "flux-system".to_string()),
        ]);
        let mut status = CanaryStatus {
            phase: Some(Phase::Failed),
            failed_checks: 2,
            last_applied_spec: "abc".into(),
            last_transition_time: Some("2026-12-02T08:00:00Z".into()),
            ..Default::default()
        };
        let stamp = Stamp {
            generation: Some(1),
            now: "2026-12-02T09:00:00Z",
        };
        condition::set(
            &mut status.conditions,
            stamp.condition(
                READY,
                false,
                CanaryReason::Failed,
                "Rolled back web.shop: why",
            ),
        );
        let seen = |labels, revision: Option<&str>| Seen {
            namespace: "shop",
            name: "web",
            target: "web",
            labels,
            threshold: 2,
            revision: revision.map(String::from),
            status: &status,
            now: stamp.now,
        };
        let revision = format!("main@sha1:{SHA}");
        let Plan::Write {
            kustomization,
            failure,
        } = plan(seen(&labels, Some(&revision)))
        else {
            panic!("nothing to write");
        };
        assert_eq!(kustomization, ("flux-system".into(), "apps".into()));
        assert_eq!(
            failure,
            Failure {
                canary: "shop/web".into(),
                revision: revision.clone(),
                sha: SHA.into(),
                target: "Deployment/web".into(),
                why: "Rolled back web.shop: why".into(),
                failed_checks: "2/2".into(),
                // When it rolled back, not when the report is made.
                at: "2026-12-02T08:00:00Z".into(),
            }
        );
        let none = BTreeMap::new();
        assert!(matches!(
            plan(seen(&none, Some(&revision))),
            Plan::Say(Outcome::NotFromGit(m)) if m.contains("not applied by a Kustomization")
        ));
        assert!(matches!(
            plan(seen(&labels, None)),
            Plan::Say(Outcome::Failed { reason: ReportReason::RevisionUnknown, message })
                if message.contains("Kustomization flux-system/apps")
        ));
        assert!(matches!(
            plan(seen(&labels, Some("main@sha1:short"))),
            Plan::Say(Outcome::NotFromGit(_))
        ));
    }

    #[test]
    fn commits_of_revisions() {
        assert_eq!(commit(&format!("main@sha1:{SHA}")), Some(SHA));
        assert_eq!(commit(&format!("sha1:{SHA}")), Some(SHA));
        assert_eq!(commit(SHA), Some(SHA));
        assert_eq!(commit("main@sha1:0123"), None);
        assert_eq!(commit("main@sha1:"), None);
    }

    #[test]
    fn the_note_names_the_canary_the_check_and_its_values_and_the_time() {
        let text = entry(&failure("shop/web"));
        assert_eq!(
            text,
            format!(
                "Canary shop/web rolled back main@sha1:{SHA}\nTarget: Deployment/web\n\
                 Reason: Rolled back web.shop: failed checks threshold reached 1 (last: \
                 request-success-rate 42.10 outside >= 99)\nFailed checks: 1/1\n\
                 Time: 2026-12-02T08:00:00Z\n"
            )
        );
    }

    #[test]
    fn notes_are_appended_to_and_never_say_a_failure_twice() {
        let web = failure("shop/web");
        let first = merge(None, &web).unwrap();
        assert_eq!(first, entry(&web));
        assert_eq!(merge(Some(&first), &web), None, "said already");
        // Someone else's note stays, ours comes after it.
        let theirs = "Deployed to staging by CI\n";
        let joined = merge(Some(theirs), &web).unwrap();
        assert_eq!(
            joined,
            format!("Deployed to staging by CI\n\n{}", entry(&web))
        );
        assert_eq!(merge(Some(&joined), &web), None);
        // Another Canary's failure of the same commit is a second entry.
        let api = failure("shop/api");
        let both = merge(Some(&joined), &api).unwrap();
        assert!(both.starts_with(&joined.trim_end().to_string()));
        assert!(both.ends_with(&entry(&api)));
        assert_eq!(merge(Some(&both), &web), None);
        assert_eq!(merge(Some(&both), &api), None);
    }

    #[test]
    fn the_source_reference_is_the_branch_or_tag_followed() {
        let revision = format!("main@sha1:{SHA}");
        assert_eq!(source_reference(&revision, None), "refs/heads/main");
        let tag = GitRepositoryRef {
            tag: Some("v1.2.0".into()),
            ..Default::default()
        };
        assert_eq!(
            source_reference(&format!("v1.2.0@sha1:{SHA}"), Some(&tag)),
            "refs/tags/v1.2.0"
        );
        assert_eq!(
            source_reference(&format!("refs/pull/4/head@sha1:{SHA}"), None),
            "refs/pull/4/head"
        );
        let commit_on = GitRepositoryRef {
            branch: Some("release".into()),
            commit: Some(SHA.into()),
            ..Default::default()
        };
        assert_eq!(
            source_reference(&format!("sha1:{SHA}"), Some(&commit_on)),
            "refs/heads/release"
        );
        assert_eq!(revert_branch(SHA), "sluice/revert-0123456");
        assert!(
            revert_message(&failure("shop/web")).contains(&format!("This reverts commit {SHA}"))
        );
    }

    #[test]
    fn a_rollback_is_reported_once_and_a_failure_said_once() {
        let mut status = CanaryStatus {
            phase: Some(Phase::Failed),
            last_applied_spec: "abc".into(),
            ..Default::default()
        };
        let wanted = GitReport {
            note: true,
            revert_branch: false,
        };
        assert!(due(Some(&wanted), &status));
        assert!(!due(None, &status));
        assert!(!due(Some(&GitReport::default()), &status));
        let stamp = Stamp {
            generation: Some(1),
            now: "2026-12-02T08:00:00Z",
        };
        let failed = || Outcome::Failed {
            reason: ReportReason::AuthenticationFailed,
            message: "authentication to https://git.example/app.git failed".into(),
        };
        let notes = settle(&mut status, &stamp, failed());
        assert_eq!(notes.len(), 1);
        assert!(notes[0].warning);
        assert_eq!(notes[0].reason, CanaryReason::GitReportFailed);
        assert!(due(Some(&wanted), &status), "retried");
        assert!(
            settle(&mut status, &stamp, failed()).is_empty(),
            "said once"
        );
        let notes = settle(
            &mut status,
            &stamp,
            Outcome::Reported {
                message: "noted".into(),
                skipped: vec!["the revert does not apply cleanly".into()],
            },
        );
        assert_eq!(
            notes.iter().map(|n| n.reason).collect::<Vec<_>>(),
            [CanaryReason::GitReported, CanaryReason::GitReportSkipped]
        );
        assert!(!due(Some(&wanted), &status), "done with this revision");
        let reported = condition::find(&status.conditions, GIT_REPORTED).unwrap();
        assert_eq!(reported.reason, "Reported");
        // A new revision that fails is due again.
        status.last_applied_spec = "def".into();
        assert!(due(Some(&wanted), &status));
        let notes = settle(&mut status, &stamp, Outcome::NotFromGit("no labels".into()));
        assert_eq!(notes[0].reason, CanaryReason::GitReportSkipped);
        assert!(!due(Some(&wanted), &status));
    }
}
