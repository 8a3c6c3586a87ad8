//! One poll of a Git source: ask the remote for its refs, fetch only when the wanted revision
//! differs from the current artifact, verify signatures, store the tree. `plan` is pure; `poll`
//! does the I/O through `git` and `verify`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::artifact::{Artifact, ArtifactStore};
use super::git::{self, Credentials, ExportError, FetchPlan, GitError, GitRemote};
use super::revision::{Resolved, Revision, RevisionError, Selection};
use super::url::RemoteUrl;
use super::verify::{self, Signer, TrustedKeys, Untrusted, VerifyError, VerifyMode};
use crate::runtime::metrics::count_git;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Resolve(#[from] RevisionError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Export(#[from] ExportError),
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error("revision {revision} is not trusted: {reason}")]
    Untrusted {
        revision: Revision,
        #[source]
        reason: Untrusted,
    },
}

/// Signature requirements of a source.
#[derive(Debug, Clone)]
pub struct Verification {
    pub mode: VerifyMode,
    pub keys: TrustedKeys,
}

/// Everything a poll needs to know about a source.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub url: RemoteUrl,
    pub selection: Selection,
    pub credentials: Credentials,
    pub timeout: Duration,
    pub ignore: Option<String>,
    pub verification: Option<Verification>,
}

/// The directories a source owns: a bare object cache and the artifact store.
#[derive(Debug, Clone)]
pub struct Workspace {
    pub cache: PathBuf,
    pub store: ArtifactStore,
}

impl Workspace {
    /// `<root>/cache.git` and `<root>/artifacts`.
    pub fn under(root: &Path) -> Self {
        Workspace {
            cache: root.join("cache.git"),
            store: ArtifactStore::new(root.join("artifacts")),
        }
    }
}

/// The artifact a source currently serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub revision: Revision,
    pub path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    Unchanged(Revision),
    Updated {
        artifact: Artifact,
        signers: Vec<Signer>,
    },
}

/// Whether a fetch is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The remote still points at the current artifact's revision.
    Unchanged,
    Fetch,
}

/// Decides from the advertised revision and the current artifact (pure).
pub fn plan(resolved: Option<&Resolved>, current: Option<&Current>, current_present: bool) -> Plan {
    match (resolved.and_then(|r| r.revision.as_ref()), current) {
        (Some(wanted), Some(cur)) if *wanted == cur.revision && current_present => Plan::Unchanged,
        _ => Plan::Fetch,
    }
}

/// Polls a source once.
pub async fn poll(
    spec: &SourceSpec,
    ws: &Workspace,
    current: Option<&Current>,
) -> Result<PollOutcome, SyncError> {
    let remote = GitRemote {
        url: spec.url.clone(),
        credentials: spec.credentials.clone(),
        timeout: spec.timeout,
    };
    let current_present = match current {
        Some(c) => tokio::fs::try_exists(&c.path).await.unwrap_or(false),
        None => false,
    };
    let resolved = match &spec.selection {
        // A commit is its own revision; nothing to ask the remote.
        Selection::Commit { .. } => Some(super::revision::resolve(&spec.selection, &[])?),
        _ => match count_git("list-refs", remote.list_refs().await)? {
            Some(refs) => Some(super::revision::resolve(&spec.selection, &refs)?),
            None => None,
        },
    };
    if plan(resolved.as_ref(), current, current_present) == Plan::Unchanged {
        let current = current.expect("Unchanged implies a current artifact");
        return Ok(PollOutcome::Unchanged(current.revision.clone()));
    }

    let previous_commit = current.map(|c| c.revision.sha.clone());
    let fetch_plan = FetchPlan {
        selection: spec.selection.clone(),
        resolved,
        previous_commit,
    };
    let fetched = count_git("fetch", remote.fetch(&ws.cache, fetch_plan).await)?;
    if let Some(cur) = current.filter(|c| c.revision == fetched.revision && current_present) {
        return Ok(PollOutcome::Unchanged(cur.revision.clone()));
    }

    let mut signers = Vec::new();
    if let Some(v) = &spec.verification {
        let objects =
            git::read_signed_objects(&ws.cache, &fetched.commit, fetched.local_ref.as_deref())
                .await?;
        let tag_name = fetched
            .local_ref
            .as_deref()
            .and_then(|r| r.strip_prefix("refs/tags/"));
        match verify::verify(&objects, &fetched.commit, tag_name, v.mode, &v.keys).await? {
            Ok(s) => signers = s,
            Err(reason) => {
                return Err(SyncError::Untrusted {
                    revision: fetched.revision,
                    reason,
                });
            }
        }
    }
    let artifact = git::export_artifact(
        &ws.cache,
        fetched.revision,
        &ws.store,
        spec.ignore.as_deref(),
    )
    .await?;
    Ok(PollOutcome::Updated { artifact, signers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_only_when_the_revision_matches_and_the_artifact_exists() {
        let rev = Revision::named("main", &"a".repeat(40));
        let resolved = Resolved {
            refname: Some("refs/heads/main".into()),
            commit: Some("a".repeat(40)),
            revision: Some(rev.clone()),
        };
        let cur = Current {
            revision: rev,
            path: PathBuf::from("/x"),
        };
        assert_eq!(plan(Some(&resolved), Some(&cur), true), Plan::Unchanged);
        assert_eq!(plan(Some(&resolved), Some(&cur), false), Plan::Fetch);
        assert_eq!(plan(Some(&resolved), None, false), Plan::Fetch);
        assert_eq!(
            plan(None, Some(&cur), true),
            Plan::Fetch,
            "no advertisement means fetch"
        );
        let other = Current {
            revision: Revision::named("main", &"b".repeat(40)),
            path: PathBuf::from("/x"),
        };
        assert_eq!(plan(Some(&resolved), Some(&other), true), Plan::Fetch);
    }
}
