//! Writing the tree of a fetched commit into the artifact store. Disk I/O under `spawn_blocking`.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::git::GitError;
use crate::source::artifact::{
    Artifact, ArtifactError, ArtifactStore, ContentDigest, EntryKind, is_safe_relative,
    symlink_stays_inside,
};
use crate::source::ignore::IgnoreRules;
use crate::source::revision::Revision;

/// Writes the tree of `commit` from the cache into the store, leaving out ignored entries,
/// submodules and symlinks that leave the tree, and returns the published artifact.
pub async fn export_artifact(
    cache: &Path,
    revision: Revision,
    store: &ArtifactStore,
    spec_ignore: Option<&str>,
) -> Result<Artifact, ExportError> {
    let (cache, store, spec_ignore) = (
        cache.to_owned(),
        store.clone(),
        spec_ignore.map(str::to_owned),
    );
    tokio::task::spawn_blocking(move || {
        export_blocking(&cache, revision, &store, spec_ignore.as_deref())
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

fn export_blocking(
    cache: &Path,
    revision: Revision,
    store: &ArtifactStore,
    spec_ignore: Option<&str>,
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

    let mut entries = Vec::new();
    let mut walk_err = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, e| {
        let Ok(name) = e.name() else {
            return git2::TreeWalkResult::Skip;
        };
        let path = Path::new(dir).join(name);
        let kind = match e.filemode() {
            0o100644 | 0o100664 => EntryKind::File { executable: false },
            0o100755 => EntryKind::File { executable: true },
            0o120000 => EntryKind::Symlink,
            0o160000 => EntryKind::Submodule,
            _ => return git2::TreeWalkResult::Ok,
        };
        if !is_safe_relative(&path) {
            walk_err.get_or_insert_with(|| path.display().to_string());
            return git2::TreeWalkResult::Abort;
        }
        entries.push(Entry {
            path,
            kind,
            oid: e.id(),
        });
        git2::TreeWalkResult::Ok
    })
    .map_err(read_err(tree.id().to_string()))
    .or_else(|e| if walk_err.is_some() { Ok(()) } else { Err(e) })?;
    if let Some(path) = walk_err {
        return Err(GitError::ReadObject {
            oid: tree.id().to_string(),
            source: git2::Error::from_str(&format!("unsafe path {path:?} in tree")),
        }
        .into());
    }

    let odb = repo.odb().map_err(read_err(tree.id().to_string()))?;
    let mut sourceignores = Vec::new();
    for e in entries.iter().filter(|e| {
        e.path.file_name() == Some(std::ffi::OsStr::new(crate::source::ignore::SOURCEIGNORE))
    }) {
        let blob = odb.read(e.oid).map_err(read_err(e.oid.to_string()))?;
        let dir = e.path.parent().unwrap_or(Path::new("")).to_owned();
        sourceignores.push((dir, String::from_utf8_lossy(blob.data()).into_owned()));
    }
    let rules = IgnoreRules::new(spec_ignore, &sourceignores).map_err(ArtifactError::from)?;

    let mut keep = Vec::new();
    let mut size = 0u64;
    for e in entries {
        let is_dir = false;
        if e.kind == EntryKind::Submodule || rules.is_ignored(&e.path, is_dir) {
            continue;
        }
        let (len, _) = odb
            .read_header(e.oid)
            .map_err(read_err(e.oid.to_string()))?;
        size += len as u64;
        keep.push(e);
    }
    store.check_size(size)?;

    let staging = store.staging()?;
    let mut digest = ContentDigest::default();
    for e in &keep {
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
