//! Artifacts: the checked-out tree of one revision in a storage directory, its content digest,
//! which entries are written, and cleaning up old artifacts. Decisions are pure; `ArtifactStore`
//! does file-system I/O.

use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

use super::revision::Revision;

/// How many artifacts of one source are kept, the current one included.
pub const DEFAULT_KEEP: usize = 3;
/// Largest artifact accepted unless configured otherwise: 512 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 512 * 1024 * 1024;
/// Most files (and symlinks) an artifact may hold unless configured otherwise.
pub const DEFAULT_MAX_FILES: usize = 50_000;
/// Deepest directory nesting an artifact may hold.
pub const DEFAULT_MAX_DEPTH: usize = 64;
/// Largest `.sourceignore` file read.
pub const MAX_SOURCEIGNORE_SIZE: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("artifact would be {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("artifact would hold more than the limit of {limit} files")]
    TooManyFiles { limit: usize },
    #[error("{path} is nested deeper than the limit of {limit} directories")]
    TooDeep { path: PathBuf, limit: usize },
    #[error("{path} is {size} bytes, more than the limit of {limit} bytes for ignore files")]
    IgnoreFileTooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("exporting the artifact took longer than the timeout of {timeout:?}")]
    Timeout { timeout: std::time::Duration },
    #[error("writing the artifact at {path} failed")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cleaning up old artifacts in {path} failed")]
    Prune {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Ignore(#[from] super::ignore::IgnoreError),
}

/// A stored artifact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub revision: Revision,
    /// `sha256:<hex>` over the stored content.
    pub digest: String,
    pub path: PathBuf,
    pub size: u64,
}

/// Kinds of tree entries the artifact cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File { executable: bool },
    Symlink,
    Submodule,
}

/// Whether a symlink at `link` (relative to the root) with `target` stays inside the tree.
/// Absolute targets and targets that climb above the root do not.
pub fn symlink_stays_inside(link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut depth: usize = 0;
    let parent = link.parent().unwrap_or(Path::new(""));
    for c in parent.components().chain(target.components()) {
        match c {
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::ParentDir => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return false,
            },
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// A path from a Git tree that is safe to join under the artifact root.
pub fn is_safe_relative(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(n) if n != ".git"))
}

/// A deterministic digest of an artifact's content: paths, modes, file bytes and link targets in
/// tree order.
pub struct ContentDigest(Sha256);

impl Default for ContentDigest {
    fn default() -> Self {
        ContentDigest(Sha256::new())
    }
}

impl ContentDigest {
    pub fn add_file(&mut self, path: &Path, executable: bool, content: &[u8]) {
        self.0.update(if executable { b"x\0" } else { b"f\0" });
        self.0.update(path.as_os_str().as_encoded_bytes());
        self.0.update(b"\0");
        self.0.update((content.len() as u64).to_be_bytes());
        self.0.update(content);
    }

    pub fn add_symlink(&mut self, path: &Path, target: &[u8]) {
        self.0.update(b"l\0");
        self.0.update(path.as_os_str().as_encoded_bytes());
        self.0.update(b"\0");
        self.0.update((target.len() as u64).to_be_bytes());
        self.0.update(target);
    }

    pub fn finish(self) -> String {
        format!("sha256:{}", hex::encode(self.0.finalize()))
    }
}

/// Where a source's artifacts live, how many are kept, and the caps of one artifact.
#[derive(Debug, Clone)]
pub struct ArtifactStore {
    pub root: PathBuf,
    pub keep: usize,
    pub max_size: u64,
    pub max_files: usize,
    pub max_depth: usize,
}

impl ArtifactStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ArtifactStore {
            root: root.into(),
            keep: DEFAULT_KEEP,
            max_size: DEFAULT_MAX_SIZE,
            max_files: DEFAULT_MAX_FILES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    pub fn check_size(&self, size: u64) -> Result<(), ArtifactError> {
        if size > self.max_size {
            Err(ArtifactError::TooLarge {
                size,
                limit: self.max_size,
            })
        } else {
            Ok(())
        }
    }

    /// A fresh directory inside the store to write an artifact into before it is published.
    pub fn staging(&self) -> Result<tempfile::TempDir, ArtifactError> {
        std::fs::create_dir_all(&self.root).map_err(|source| ArtifactError::Write {
            path: self.root.clone(),
            source,
        })?;
        tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&self.root)
            .map_err(|source| ArtifactError::Write {
                path: self.root.clone(),
                source,
            })
    }

    /// Moves a written artifact to its content-addressed place, then drops the oldest beyond `keep`.
    pub fn publish(
        &self,
        staging: tempfile::TempDir,
        digest: &str,
    ) -> Result<PathBuf, ArtifactError> {
        let name = digest.trim_start_matches("sha256:");
        let dest = self.root.join(name);
        if dest.exists() {
            // Same content already stored: refresh its age so pruning keeps it.
            touch(&dest).map_err(|source| ArtifactError::Write {
                path: dest.clone(),
                source,
            })?;
        } else {
            let staged = staging.keep();
            std::fs::rename(&staged, &dest).map_err(|source| ArtifactError::Write {
                path: dest.clone(),
                source,
            })?;
            touch(&dest).map_err(|source| ArtifactError::Write {
                path: dest.clone(),
                source,
            })?;
        }
        self.prune(&dest)?;
        Ok(dest)
    }

    fn prune(&self, current: &Path) -> Result<(), ArtifactError> {
        let err = |source| ArtifactError::Prune {
            path: self.root.clone(),
            source,
        };
        let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for entry in std::fs::read_dir(&self.root).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') || !entry.file_type().map_err(err)?.is_dir()
            {
                continue;
            }
            let modified = entry.metadata().and_then(|m| m.modified()).map_err(err)?;
            dirs.push((modified, entry.path()));
        }
        dirs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        for (_, dir) in dirs
            .into_iter()
            .filter(|(_, d)| d != current)
            .skip(self.keep.saturating_sub(1))
        {
            std::fs::remove_dir_all(&dir).map_err(err)?;
        }
        Ok(())
    }
}

fn touch(path: &Path) -> std::io::Result<()> {
    std::fs::File::open(path)?.set_modified(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_that_leave_the_tree_are_detected() {
        assert!(symlink_stays_inside(
            Path::new("a/b/link"),
            Path::new("../c")
        ));
        assert!(symlink_stays_inside(Path::new("a/link"), Path::new("../x")));
        assert!(!symlink_stays_inside(
            Path::new("a/link"),
            Path::new("../../x")
        ));
        assert!(!symlink_stays_inside(
            Path::new("link"),
            Path::new("/etc/passwd")
        ));
        assert!(!symlink_stays_inside(Path::new("link"), Path::new("..")));
        assert!(symlink_stays_inside(
            Path::new("link"),
            Path::new("./a/../b")
        ));
    }

    #[test]
    fn digest_depends_on_paths_modes_and_content() {
        let d = |exec: bool, path: &str, body: &[u8]| {
            let mut c = ContentDigest::default();
            c.add_file(Path::new(path), exec, body);
            c.finish()
        };
        assert_eq!(d(false, "a", b"x"), d(false, "a", b"x"));
        assert_ne!(d(false, "a", b"x"), d(true, "a", b"x"));
        assert_ne!(d(false, "a", b"x"), d(false, "b", b"x"));
        assert_ne!(d(false, "a", b"x"), d(false, "a", b"y"));
        assert!(d(false, "a", b"x").starts_with("sha256:"));
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(is_safe_relative(Path::new("a/b.yaml")));
        assert!(!is_safe_relative(Path::new("../a")));
        assert!(!is_safe_relative(Path::new("/a")));
        assert!(!is_safe_relative(Path::new("x/.git/config")));
    }

    #[test]
    fn store_keeps_a_few_and_never_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore {
            keep: 2,
            max_size: 10,
            ..ArtifactStore::new(dir.path())
        };
        let mut published = Vec::new();
        for i in 0..4 {
            let staging = store.staging().unwrap();
            std::fs::write(staging.path().join("f"), [i]).unwrap();
            published.push(store.publish(staging, &format!("sha256:{i:064}")).unwrap());
        }
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(left.contains(&published[3]));
        assert!(store.check_size(11).is_err());
        assert!(store.check_size(10).is_ok());
    }
}
