//! Writing the tree of a fetched commit into the artifact store. Disk I/O under `spawn_blocking`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use git2::{ObjectType, Oid, Repository};

use crate::git::GitError;
use crate::source::artifact::{
    Artifact, ArtifactError, ArtifactStore, ContentDigest, EntryKind, MAX_SOURCEIGNORE_SIZE,
    is_safe_relative, symlink_stays_inside,
};
use crate::source::ignore::{IgnoreRules, SOURCEIGNORE};
use crate::source::revision::Revision;

/// Writes the tree of `commit` from the cache into the store, leaving out ignored entries,
/// submodules and symlinks that leave the tree, and returns the published artifact. The store's
/// caps (files, depth, size) are checked while walking the tree, before anything is read in
/// full, and the whole export must finish within `timeout`.
pub async fn export_artifact(
    cache: &Path,
    revision: Revision,
    store: &ArtifactStore,
    spec_ignore: Option<&str>,
    timeout: Duration,
) -> Result<Artifact, ExportError> {
    let (cache, store, spec_ignore) = (
        cache.to_owned(),
        store.clone(),
        spec_ignore.map(str::to_owned),
    );
    let deadline = Deadline {
        at: Instant::now() + timeout,
        timeout,
    };
    tokio::task::spawn_blocking(move || {
        export_blocking(&cache, revision, &store, spec_ignore.as_deref(), deadline)
    })
    .await
    .map_err(|e| ExportError::Git(GitError::Join(e)))?
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
}

struct Entry {
    path: PathBuf,
    kind: EntryKind,
    oid: Oid,
}

#[derive(Clone, Copy)]
struct Deadline {
    at: Instant,
    timeout: Duration,
}

impl Deadline {
    fn check(&self) -> Result<(), ArtifactError> {
        if Instant::now() > self.at {
            return Err(ArtifactError::Timeout {
                timeout: self.timeout,
            });
        }
        Ok(())
    }
}

/// The entries of the tree to export, in path order, with their total size: ignored
/// directories are not entered, and every cap is checked as the walk goes (no recursion: an
/// explicit stack of trees).
fn collect(
    repo: &Repository,
    odb: &git2::Odb<'_>,
    root: Oid,
    mut rules: IgnoreRules,
    store: &ArtifactStore,
    deadline: Deadline,
) -> Result<(Vec<Entry>, u64), ExportError> {
    let read_err = |oid: Oid| {
        move |source| GitError::ReadObject {
            oid: oid.to_string(),
            source,
        }
    };
    let mut entries = Vec::new();
    let mut size = 0u64;
    let mut counted = 0usize;
    let mut trees = vec![(PathBuf::new(), root, 0usize)];
    while let Some((dir, oid, depth)) = trees.pop() {
        deadline.check()?;
        let tree = repo.find_tree(oid).map_err(read_err(oid))?;
        // The directory's own .sourceignore applies to everything in it: read it first, after
        // checking its size.
        if let Some(e) = tree
            .get_name(SOURCEIGNORE)
            .filter(|e| e.kind() == Some(ObjectType::Blob))
        {
            let path = dir.join(SOURCEIGNORE);
            let (len, _) = odb.read_header(e.id()).map_err(read_err(e.id()))?;
            if len as u64 > MAX_SOURCEIGNORE_SIZE {
                return Err(ArtifactError::IgnoreFileTooLarge {
                    path,
                    size: len as u64,
                    limit: MAX_SOURCEIGNORE_SIZE,
                }
                .into());
            }
            let blob = odb.read(e.id()).map_err(read_err(e.id()))?;
            rules
                .add_sourceignore(&dir, &String::from_utf8_lossy(blob.data()))
                .map_err(ArtifactError::from)?;
        }
        for e in tree.iter() {
            let Ok(name) = e.name() else {
                continue;
            };
            let path = dir.join(name);
            if !is_safe_relative(&path) {
                return Err(GitError::ReadObject {
                    oid: oid.to_string(),
                    source: git2::Error::from_str(&format!("unsafe path {path:?} in tree")),
                }
                .into());
            }
            let kind = match e.filemode() {
                0o040000 => {
                    if rules.is_ignored(&path, true) {
                        continue;
                    }
                    if depth + 1 > store.max_depth {
                        return Err(ArtifactError::TooDeep {
                            path,
                            limit: store.max_depth,
                        }
                        .into());
                    }
                    trees.push((path, e.id(), depth + 1));
                    continue;
                }
                0o100644 | 0o100664 => EntryKind::File { executable: false },
                0o100755 => EntryKind::File { executable: true },
                0o120000 => EntryKind::Symlink,
                _ => continue,
            };
            if rules.is_ignored(&path, false) {
                continue;
            }
            counted += 1;
            if counted > store.max_files {
                return Err(ArtifactError::TooManyFiles {
                    limit: store.max_files,
                }
                .into());
            }
            let (len, _) = odb.read_header(e.id()).map_err(read_err(e.id()))?;
            size += len as u64;
            store.check_size(size)?;
            entries.push(Entry {
                path,
                kind,
                oid: e.id(),
            });
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((entries, size))
}

fn export_blocking(
    cache: &Path,
    revision: Revision,
    store: &ArtifactStore,
    spec_ignore: Option<&str>,
    deadline: Deadline,
) -> Result<Artifact, ExportError> {
    let repo = Repository::open(cache).map_err(|source| GitError::Cache {
        path: cache.to_owned(),
        source,
    })?;
    let read_err = |oid: String| move |source| GitError::ReadObject { oid, source };
    let commit_oid = Oid::from_str(&revision.sha).map_err(read_err(revision.sha.clone()))?;
    let tree = repo
        .find_commit(commit_oid)
        .and_then(|c| c.tree())
        .map_err(read_err(revision.sha.clone()))?;
    let odb = repo.odb().map_err(read_err(tree.id().to_string()))?;
    let rules = IgnoreRules::new(spec_ignore, &[]).map_err(ArtifactError::from)?;
    let (keep, size) = collect(&repo, &odb, tree.id(), rules, store, deadline)?;

    let staging = store.staging()?;
    let mut digest = ContentDigest::default();
    for e in &keep {
        deadline.check()?;
        let blob = odb.read(e.oid).map_err(read_err(e.oid.to_string()))?;
        let dest = staging.path().join(&e.path);
        let write_err = |source| ArtifactError::Write {
            path: dest.clone(),
            source,
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(write_err)?;
        }
        match e.kind {
            EntryKind::File { executable } => {
                std::fs::write(&dest, blob.data()).map_err(write_err)?;
                if executable {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755))
                        .map_err(write_err)?;
                }
                digest.add_file(&e.path, executable, blob.data());
            }
            EntryKind::Symlink => {
                use std::os::unix::ffi::OsStrExt;
                let target = Path::new(std::ffi::OsStr::from_bytes(blob.data()));
                if !symlink_stays_inside(&e.path, target) {
                    tracing::warn!(path = %e.path.display(), target = %target.display(), "symlink points outside the tree; left out");
                    continue;
                }
                std::os::unix::fs::symlink(target, &dest).map_err(write_err)?;
                digest.add_symlink(&e.path, blob.data());
            }
            EntryKind::Submodule => {}
        }
    }
    let digest = digest.finish();
    let path = store.publish(staging, &digest)?;
    Ok(Artifact {
        revision,
        digest,
        path,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache holding one commit whose tree has `deploy/cm.yaml` and the given `.sourceignore`
    /// at the root; returns the directory and the commit's revision.
    fn cache_with(sourceignore: &[u8]) -> (tempfile::TempDir, Revision) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let blob = |content: &[u8]| repo.blob(content).unwrap();
        let mut deploy = repo.treebuilder(None).unwrap();
        deploy
            .insert("cm.yaml", blob(b"kind: ConfigMap\n"), 0o100644)
            .unwrap();
        let deploy = deploy.write().unwrap();
        let mut root = repo.treebuilder(None).unwrap();
        root.insert("deploy", deploy, 0o040000).unwrap();
        root.insert(SOURCEIGNORE, blob(sourceignore), 0o100644)
            .unwrap();
        let tree = repo.find_tree(root.write().unwrap()).unwrap();
        let who = git2::Signature::now("test", "test@example.com").unwrap();
        let commit = repo
            .commit(None, &who, &who, "one", &tree, &[])
            .unwrap()
            .to_string();
        (dir, Revision::named("main", &commit))
    }

    fn export(
        sourceignore: &[u8],
        deadline: Deadline,
    ) -> (Result<Artifact, ExportError>, tempfile::TempDir) {
        let (cache, revision) = cache_with(sourceignore);
        let storage = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(storage.path());
        let result = export_blocking(cache.path(), revision, &store, None, deadline);
        (result, storage)
    }

    fn minutes(n: u64) -> Deadline {
        let timeout = Duration::from_secs(60 * n);
        Deadline {
            at: Instant::now() + timeout,
            timeout,
        }
    }

    #[test]
    fn a_sourceignore_over_the_cap_fails_the_export_naming_it() {
        // One comment line, so the rules stay trivial whatever the size.
        let mut at_cap = vec![b'#'; MAX_SOURCEIGNORE_SIZE as usize];
        let (exported, _storage) = export(&at_cap, minutes(5));
        exported.expect("a .sourceignore of exactly the cap is read");

        at_cap.push(b'#');
        let (exported, _storage) = export(&at_cap, minutes(5));
        let err = exported.unwrap_err();
        assert!(
            matches!(
                &err,
                ExportError::Artifact(ArtifactError::IgnoreFileTooLarge { size, limit, .. })
                    if *size == MAX_SOURCEIGNORE_SIZE + 1 && *limit == MAX_SOURCEIGNORE_SIZE
            ),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                ".sourceignore is {} bytes, more than the limit of {MAX_SOURCEIGNORE_SIZE} bytes for ignore files",
                MAX_SOURCEIGNORE_SIZE + 1
            )
        );
    }

    #[test]
    fn an_export_past_its_deadline_stops_with_the_timeout() {
        let (exported, _storage) = export(b"", minutes(5));
        exported.expect("the export works within its time");

        let timeout = Duration::from_secs(7);
        let passed = Deadline {
            at: Instant::now(),
            timeout,
        };
        std::thread::sleep(Duration::from_millis(2));
        let (exported, storage) = export(b"", passed);
        let err = exported.unwrap_err();
        assert!(
            matches!(&err, ExportError::Artifact(ArtifactError::Timeout { timeout: t }) if *t == timeout),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("longer than the timeout of 7s"),
            "{err}"
        );
        let published = std::fs::read_dir(storage.path())
            .map(|entries| entries.count())
            .unwrap_or(0);
        assert_eq!(published, 0, "nothing is published after the deadline");
    }
}
