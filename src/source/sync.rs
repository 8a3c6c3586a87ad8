//! One poll of a Git source: ask the remote for its refs, fetch only when the wanted revision
//! differs from the current artifact, verify signatures, store the tree. `plan` is pure; `poll`
//! does the I/O through `git` and `verify`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::artifact::{Artifact, ArtifactStore};
use super::git::{self, CacheLock, Credentials, ExportError, FetchPlan, GitError, GitRemote};
use super::revision::{Resolved, Revision, RevisionError, Selection};
use super::url::RemoteUrl;
use super::verify::{self, Signer, TrustedKeys, Untrusted, VerifyError, VerifyMode};

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

impl Verification {
    /// `sha256:<hex>` of the mode and every key (names, bytes, email allowlists): a revision
    /// verified under one fingerprint is verified again when it changes.
    pub fn fingerprint(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(format!("{:?}\0", self.mode));
        for (kind, keys) in [("openpgp", &self.keys.openpgp), ("ssh", &self.keys.ssh)] {
            let mut keys: Vec<_> = keys.iter().collect();
            keys.sort_by(|a, b| a.name.cmp(&b.name));
            for key in keys {
                hash.update(kind);
                hash.update([0]);
                hash.update(&key.name);
                hash.update([0]);
                hash.update((key.data.len() as u64).to_be_bytes());
                hash.update(&key.data);
                // No allowlist (any email) differs from an empty one (none).
                hash.update(if key.emails.is_some() { b"e" } else { b"n" });
                for email in key.emails.iter().flatten() {
                    hash.update(email);
                    hash.update([0]);
                }
                hash.update([1]);
            }
        }
        format!("sha256:{}", hex::encode(hash.finalize()))
    }
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
    /// Send basic auth and bearer tokens over plain `http://` and `git://` too.
    pub insecure: bool,
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

    /// The workspace of GitRepository `namespace/name` in the agent's storage directory:
    /// `<storage>/gitrepository/<namespace>/<name>`.
    pub fn of_source(storage: &Path, namespace: &str, name: &str) -> Self {
        Self::under(&storage.join("gitrepository").join(namespace).join(name))
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "artifact {digest:?} of GitRepository {namespace}/{name} cannot be located: the digest must be sha256:<64 lowercase hex digits>"
)]
pub struct BadDigest {
    pub namespace: String,
    pub name: String,
    pub digest: String,
}

/// Where the artifact with `digest` of GitRepository `namespace/name` lives, derived from the
/// storage layout and the digest alone: whatever a status says about paths is never joined onto
/// the storage directory, so no status (written by whoever may write it) can point a build at
/// another source's files. Names come from the API server, which keeps them to DNS labels.
pub fn artifact_path(
    storage: &Path,
    namespace: &str,
    name: &str,
    digest: &str,
) -> Result<PathBuf, BadDigest> {
    let bad = || BadDigest {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        digest: digest.to_owned(),
    };
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(bad)?;
    let safe = |part: &str| {
        !part.is_empty() && part != "." && part != ".." && !part.contains(['/', '\\', '\0'])
    };
    if !safe(namespace) || !safe(name) {
        return Err(bad());
    }
    Ok(Workspace::of_source(storage, namespace, name)
        .store
        .root
        .join(hex))
}

/// The artifact a source currently serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub revision: Revision,
    pub path: PathBuf,
    /// The [`Verification::fingerprint`] its revision was verified under, if any.
    pub verified_with: Option<String>,
}

impl Current {
    /// Whether this artifact can be served as it is under `verification`: always without one,
    /// and with one only when its revision was verified under the same mode and keys.
    fn verified_for(&self, verification: Option<&Verification>) -> bool {
        verification.is_none_or(|v| self.verified_with.as_deref() == Some(&v.fingerprint()))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    Unchanged(Revision),
    Updated {
        artifact: Artifact,
        signers: Vec<Signer>,
        /// The fingerprint of the verification that passed, when there was one.
        verified_with: Option<String>,
    },
}

/// Whether a fetch is needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// The remote still points at the current artifact's revision.
    Unchanged,
    Fetch,
}

/// Decides from the advertised revision and the current artifact (pure). `current_usable`: the
/// current artifact exists and was verified under the spec's verification, if any.
pub fn plan(resolved: Option<&Resolved>, current: Option<&Current>, current_usable: bool) -> Plan {
    match (resolved.and_then(|r| r.revision.as_ref()), current) {
        (Some(wanted), Some(cur)) if *wanted == cur.revision && current_usable => Plan::Unchanged,
        _ => Plan::Fetch,
    }
}

/// Polls a source once. The workspace's cache is held from the first remote call to the
/// export, and by any blocking Git call that outlives its timeout until that call ends.
pub async fn poll(
    spec: &SourceSpec,
    ws: &Workspace,
    current: Option<&Current>,
) -> Result<PollOutcome, SyncError> {
    let remote = GitRemote {
        url: spec.url.clone(),
        credentials: spec.credentials.clone(),
        timeout: spec.timeout,
        insecure: spec.insecure,
    };
    let lock = CacheLock::acquire(&ws.cache, spec.timeout).await?;
    let present = match current {
        Some(c) => tokio::fs::try_exists(&c.path).await.unwrap_or(false),
        None => false,
    };
    let current_usable =
        present && current.is_some_and(|c| c.verified_for(spec.verification.as_ref()));
    let resolved = match &spec.selection {
        // A commit is its own revision; nothing to ask the remote.
        Selection::Commit { .. } => Some(super::revision::resolve(&spec.selection, &[])?),
        _ => match remote.list_refs().await? {
            Some(refs) => Some(super::revision::resolve(&spec.selection, &refs)?),
            None => None,
        },
    };
    if plan(resolved.as_ref(), current, current_usable) == Plan::Unchanged {
        let current = current.expect("Unchanged implies a current artifact");
        return Ok(PollOutcome::Unchanged(current.revision.clone()));
    }

    let previous_commit = current.map(|c| c.revision.sha.clone());
    let fetch_plan = FetchPlan {
        selection: spec.selection.clone(),
        resolved,
        previous_commit,
    };
    let fetched = remote.fetch(&ws.cache, fetch_plan, &lock).await?;
    if let Some(cur) = current.filter(|c| c.revision == fetched.revision && current_usable) {
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
        spec.timeout,
    )
    .await?;
    drop(lock);
    Ok(PollOutcome::Updated {
        artifact,
        signers,
        verified_with: spec.verification.as_ref().map(Verification::fingerprint),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_paths_come_from_the_layout_and_a_valid_digest_only() {
        let hex = "0123456789abcdef".repeat(4);
        let storage = Path::new("/var/lib/sluice");
        assert_eq!(
            artifact_path(storage, "team-a", "app", &format!("sha256:{hex}")).unwrap(),
            PathBuf::from(format!(
                "/var/lib/sluice/gitrepository/team-a/app/artifacts/{hex}"
            ))
        );
        for bad in [
            format!("sha256:../../team-b/app/artifacts/{hex}"),
            format!("sha256:{}", hex.to_uppercase()),
            format!("sha1:{hex}"),
            format!("sha256:{hex}0"),
            "sha256:".to_string(),
        ] {
            assert!(
                artifact_path(storage, "team-a", "app", &bad).is_err(),
                "{bad}"
            );
        }
        let digest = format!("sha256:{hex}");
        assert!(artifact_path(storage, "..", "app", &digest).is_err());
        assert!(artifact_path(storage, "a/b", "app", &digest).is_err());
    }

    #[test]
    fn an_artifact_is_reused_only_when_verified_with_the_current_keys() {
        let key = |data: &[u8]| crate::source::verify::TrustedKey {
            name: "a.pub".into(),
            data: data.to_vec(),
            emails: None,
        };
        let verification = |data: &[u8], mode| Verification {
            mode,
            keys: TrustedKeys {
                openpgp: vec![],
                ssh: vec![key(data)],
            },
        };
        let v1 = verification(b"key one", VerifyMode::Head);
        let v2 = verification(b"key two", VerifyMode::Head);
        let tag_mode = verification(b"key one", VerifyMode::Tag);
        assert_ne!(v1.fingerprint(), v2.fingerprint());
        assert_ne!(v1.fingerprint(), tag_mode.fingerprint());
        let cur = Current {
            revision: Revision::named("main", &"a".repeat(40)),
            path: PathBuf::from("/x"),
            verified_with: Some(v1.fingerprint()),
        };
        assert!(cur.verified_for(Some(&v1)));
        assert!(!cur.verified_for(Some(&v2)), "the keys changed");
        assert!(!cur.verified_for(Some(&tag_mode)), "the mode changed");
        assert!(cur.verified_for(None), "no verification asked");
        let never = Current {
            verified_with: None,
            ..cur
        };
        assert!(!never.verified_for(Some(&v1)));
    }

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
            verified_with: None,
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
            verified_with: None,
        };
        assert_eq!(plan(Some(&resolved), Some(&other), true), Plan::Fetch);
    }
}
