//! Writing a rollback into Git: from the Kustomization that applied the target to its
//! GitRepository (URL, credentials, timeout), then fetching the followed reference and
//! `refs/notes/sluice` into a bare cache, adding the note on top of what the remote has and
//! pushing it without force (fetching and merging again when someone else's note landed
//! meanwhile, a bounded number of times), and pushing the revert branch unless it exists. Talks
//! to the API server and the Git remote; decisions come from `report`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

use super::{AUTHOR, Failure, NOTES_REF, Outcome, ReportReason};
use crate::api::canary::GitReport;
use crate::api::duration;
use crate::api::git_repository::{DEFAULT_TIMEOUT, GitRepository};
use crate::api::kustomization::Kustomization;
use crate::git::commit::{self, Revert};
use crate::git::url::RemoteUrl;
use crate::git::{Credentials, GitError, GitRemote, PushOutcome, RefUpdate, credentials, notes};
use crate::runtime::text::error_chain;

/// How many times a note is fetched, merged and pushed again when the notes reference moved.
pub const ATTEMPTS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("reading Kustomization {0}")]
    Kustomization(String, #[source] kube::Error),
    #[error("Kustomization {0} not found")]
    KustomizationNotFound(String),
    #[error("Kustomization {0} applies from a {1}, not a GitRepository")]
    NotGit(String, String),
    #[error("reading GitRepository {0}")]
    GitRepository(String, #[source] kube::Error),
    #[error("GitRepository {0} not found")]
    GitRepositoryNotFound(String),
    #[error("GitRepository {0}: spec.url")]
    Url(String, #[source] crate::git::url::UrlError),
    #[error("reading Secret {0}")]
    Secret(String, #[source] kube::Error),
    #[error("Secret {0} not found")]
    SecretNotFound(String),
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
    #[error("fetching {0} and {NOTES_REF}")]
    Fetch(String, #[source] GitError),
    #[error("commit {sha} is not on {reference} of {url}")]
    NotOnReference {
        sha: String,
        reference: String,
        url: String,
    },
    #[error("writing the note")]
    Note(#[source] GitError),
    #[error("pushing {0}")]
    Push(String, #[source] GitError),
    #[error("{NOTES_REF} of {url} moved under every one of {ATTEMPTS} pushes; last: {reason}")]
    NotesKeptMoving { url: String, reason: String },
    #[error("writing the revert of {0}")]
    Revert(String, #[source] GitError),
    #[error("preparing a cache for the Git objects")]
    Cache(#[source] std::io::Error),
}

impl WriteError {
    fn reason(&self) -> ReportReason {
        match self {
            WriteError::Kustomization(..)
            | WriteError::KustomizationNotFound(_)
            | WriteError::NotGit(..)
            | WriteError::GitRepository(..)
            | WriteError::GitRepositoryNotFound(_)
            | WriteError::Url(..)
            | WriteError::Secret(..)
            | WriteError::SecretNotFound(_)
            | WriteError::Credentials(_) => ReportReason::SourceNotReady,
            WriteError::Fetch(_, e)
            | WriteError::Push(_, e)
            | WriteError::Note(e)
            | WriteError::Revert(_, e)
                if e.is_auth() =>
            {
                ReportReason::AuthenticationFailed
            }
            _ => ReportReason::GitOperationFailed,
        }
    }
}

/// One report to write.
#[derive(Debug, Clone)]
pub struct Request {
    /// The Kustomization that applied the target: namespace, name.
    pub kustomization: (String, String),
    pub failure: Failure,
    pub wants: GitReport,
    /// The bare cache to fetch into (kept between reports); `None`: a temporary one.
    pub cache: Option<PathBuf>,
}

/// The remote a GitRepository names, with its credentials, and the GitRepository.
async fn remote(
    client: &Client,
    request: &Request,
) -> Result<(GitRemote, GitRepository), WriteError> {
    let (ns, name) = &request.kustomization;
    let what = format!("{ns}/{name}");
    let kustomization = Api::<Kustomization>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .map_err(|e| WriteError::Kustomization(what.clone(), e))?
        .ok_or_else(|| WriteError::KustomizationNotFound(what.clone()))?;
    let source = &kustomization.spec.source_ref;
    if source.kind != "GitRepository" {
        return Err(WriteError::NotGit(what, source.kind.clone()));
    }
    let source_ns = source.namespace.clone().unwrap_or_else(|| ns.clone());
    let what = format!("{source_ns}/{}", source.name);
    let repository = Api::<GitRepository>::namespaced(client.clone(), &source_ns)
        .get_opt(&source.name)
        .await
        .map_err(|e| WriteError::GitRepository(what.clone(), e))?
        .ok_or_else(|| WriteError::GitRepositoryNotFound(what.clone()))?;
    let url = RemoteUrl::parse(&repository.spec.url).map_err(|e| WriteError::Url(what, e))?;
    let credentials = match &repository.spec.secret_ref {
        None => Credentials::default(),
        Some(secret) => {
            let what = format!("{source_ns}/{}", secret.name);
            let data: BTreeMap<String, Vec<u8>> =
                Api::<Secret>::namespaced(client.clone(), &source_ns)
                    .get_opt(&secret.name)
                    .await
                    .map_err(|e| WriteError::Secret(what.clone(), e))?
                    .ok_or_else(|| WriteError::SecretNotFound(what.clone()))?
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
            credentials::from_secret_data(&url, &data, &format!("Secret {what}"))?
        }
    };
    let timeout = repository
        .spec
        .timeout
        .as_deref()
        .unwrap_or(DEFAULT_TIMEOUT);
    let remote = GitRemote {
        url,
        credentials,
        timeout: duration::parse(timeout).unwrap_or(Duration::from_secs(60)),
        insecure: repository.spec.insecure,
    };
    Ok((remote, repository))
}

/// Writes the report `request` asks for and says how it went.
pub async fn write(client: &Client, request: Request) -> Outcome {
    match write_report(client, &request).await {
        Ok(outcome) => outcome,
        Err(e) => Outcome::Failed {
            reason: e.reason(),
            message: format!(
                "reporting the rollback of {} to Git failed: {}",
                request.failure.revision,
                error_chain(&e)
            ),
        },
    }
}

async fn write_report(client: &Client, request: &Request) -> Result<Outcome, WriteError> {
    let (remote, repository) = remote(client, request).await?;
    let temporary;
    let cache = match &request.cache {
        Some(cache) => cache.clone(),
        None => {
            temporary = tempfile::tempdir().map_err(WriteError::Cache)?;
            temporary.path().join("cache.git")
        }
    };
    let f = &request.failure;
    let url = remote.url.to_string();
    let source = super::source_reference(&f.revision, repository.spec.reference.as_ref());
    let mut said = Vec::new();
    let mut skipped = Vec::new();
    if request.wants.note {
        said.push(note(&remote, &cache, &source, f).await?);
    }
    if request.wants.revert_branch {
        match revert(&remote, &cache, &source, f).await? {
            Ok(message) => said.push(message),
            Err(message) => skipped.push(message),
        }
    }
    Ok(Outcome::Reported {
        message: format!("{url}: {}", said.join("; ")),
        skipped,
    })
}

/// Fetches `source` and the notes into the cache, checking the commit is on `source`.
async fn fetch(
    remote: &GitRemote,
    cache: &std::path::Path,
    source: &str,
    f: &Failure,
    also: &[String],
) -> Result<BTreeMap<String, Option<String>>, WriteError> {
    let mut references = vec![source.to_string(), NOTES_REF.to_string()];
    references.extend(also.iter().cloned());
    let tips = remote
        .fetch_references(cache, &references)
        .await
        .map_err(|e| WriteError::Fetch(source.to_string(), e))?;
    let on_source = match tips.get(source).cloned().flatten() {
        Some(tip) => commit::is_ancestor(cache, &f.sha, &tip)
            .await
            .unwrap_or(false),
        None => false,
    };
    if !on_source {
        return Err(WriteError::NotOnReference {
            sha: f.sha.clone(),
            reference: source.to_string(),
            url: remote.url.to_string(),
        });
    }
    Ok(tips)
}

/// Adds the failure to the commit's note and pushes it, on top of whatever the remote's notes
/// say; fetches and merges again when they moved.
async fn note(
    remote: &GitRemote,
    cache: &std::path::Path,
    source: &str,
    f: &Failure,
) -> Result<String, WriteError> {
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        let tips = fetch(remote, cache, source, f, &[]).await?;
        let existing = notes::read_note(cache, NOTES_REF, &f.sha)
            .await
            .map_err(WriteError::Note)?;
        let Some(text) = super::merge(existing.as_deref(), f) else {
            return Ok(format!("the note on {} says it already", f.sha));
        };
        let written = notes::write_note(cache, NOTES_REF, &f.sha, &text, AUTHOR)
            .await
            .map_err(WriteError::Note)?;
        let update = RefUpdate {
            reference: NOTES_REF.to_string(),
            commit: written,
            expected: tips.get(NOTES_REF).cloned().flatten(),
        };
        match remote
            .push_references(cache, &[update], &[])
            .await
            .map_err(|e| WriteError::Push(NOTES_REF.to_string(), e))?
        {
            PushOutcome::Pushed => return Ok(format!("noted {} in {NOTES_REF}", f.sha)),
            PushOutcome::Rejected { reason, .. } => {
                tracing::info!(canary = %f.canary, %reason, "the notes moved; fetching and adding the note again");
                last = reason;
            }
        }
    }
    Err(WriteError::NotesKeptMoving {
        url: remote.url.to_string(),
        reason: last,
    })
}

/// Pushes a branch with the revert of the commit on top of `source`, unless the branch exists.
/// `Err(message)` when it was skipped (the revert does not apply cleanly there).
async fn revert(
    remote: &GitRemote,
    cache: &std::path::Path,
    source: &str,
    f: &Failure,
) -> Result<Result<String, String>, WriteError> {
    let branch = super::revert_branch(&f.sha);
    let reference = format!("refs/heads/{branch}");
    let tips = fetch(remote, cache, source, f, std::slice::from_ref(&reference)).await?;
    if tips.get(&reference).cloned().flatten().is_some() {
        return Ok(Ok(format!("branch {branch} exists already, left alone")));
    }
    // On top of what the GitRepository follows, so the branch merges there for review.
    let onto = tips.get(source).cloned().flatten().unwrap_or(f.sha.clone());
    let message = super::revert_message(f);
    let written = commit::write_revert(cache, &f.sha, &onto, AUTHOR, &message)
        .await
        .map_err(|e| WriteError::Revert(f.sha.clone(), e))?;
    let commit = match written {
        Revert::Committed(commit) => commit,
        Revert::Conflicts(paths) => {
            return Ok(Err(format!(
                "no revert branch: reverting {} on {source} ({onto}) conflicts in {}",
                f.sha,
                paths.join(", ")
            )));
        }
    };
    let update = RefUpdate {
        reference,
        commit,
        expected: None,
    };
    match remote
        .push_references(cache, &[update], &[])
        .await
        .map_err(|e| WriteError::Push(branch.clone(), e))?
    {
        PushOutcome::Pushed => Ok(Ok(format!("pushed branch {branch} reverting {}", f.sha))),
        PushOutcome::Rejected { reason, .. } => Ok(Ok(format!(
            "branch {branch} appeared meanwhile, left alone ({reason})"
        ))),
    }
}

/// The reports under way and finished, by Canary (uid), for the controller: a report runs in a
/// task of its own, so neither the analysis nor other Canaries wait for a remote, and its
/// outcome is written into the status by the reconcile that follows.
#[derive(Default)]
pub struct Reports {
    /// The rolled-back revision (`lastAppliedSpec`) each report is about, and its outcome once
    /// finished.
    reports: Mutex<HashMap<String, (String, Option<Outcome>)>>,
}

/// Where the report of a revision stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    NotStarted,
    Running,
    Finished(Outcome),
}

impl Reports {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (String, Option<Outcome>)>> {
        self.reports.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Where the report of `spec` stands; a finished one's outcome is taken. A report of an
    /// earlier revision still running counts as running: one report per Canary at a time, so
    /// two never write the same cache.
    pub fn progress(&self, uid: &str, spec: &str) -> Progress {
        let mut reports = self.lock();
        match reports.get(uid) {
            Some((_, None)) => Progress::Running,
            Some((about, Some(_))) if about == spec => match reports.remove(uid) {
                Some((_, Some(outcome))) => Progress::Finished(outcome),
                _ => Progress::NotStarted,
            },
            _ => Progress::NotStarted,
        }
    }

    /// Starts writing `request` (about `spec`); `done` runs once its outcome can be taken.
    pub fn start(
        self: &Arc<Self>,
        client: Client,
        uid: String,
        spec: String,
        request: Request,
        done: impl FnOnce() + Send + 'static,
    ) {
        self.lock().insert(uid.clone(), (spec.clone(), None));
        let reports = self.clone();
        tokio::spawn(async move {
            let outcome = write(&client, request).await;
            if let Some(entry) = reports
                .lock()
                .get_mut(&uid)
                .filter(|(about, _)| *about == spec)
            {
                entry.1 = Some(outcome);
            }
            done();
        });
    }

    /// Forgets a deleted Canary.
    pub fn forget(&self, uid: &str) {
        self.lock().remove(uid);
    }
}
