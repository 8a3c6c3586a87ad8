//! Reading files for a build, confined to a source root, a size limit per file and the caps of
//! one build (bytes read, objects, time). The only I/O of the build module: everything else works
//! on what this returns.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::object::Loc;
use super::{BuildError, Cap, Limits};

/// The tree a build may read: every file and symlink target must resolve inside `root`. It also
/// keeps the build's budget, so every read is counted against the caps.
#[derive(Debug, Clone)]
pub struct Source {
    root: PathBuf,
    max_file_size: u64,
    limits: Limits,
    started: Instant,
    bytes_read: Cell<u64>,
    objects: Cell<usize>,
}

impl Source {
    pub fn new(root: &Path, max_file_size: u64, limits: Limits) -> Result<Self, BuildError> {
        let root = root.canonicalize().map_err(|source| BuildError::Read {
            at: Loc::new(root.display().to_string(), 0),
            source,
        })?;
        Ok(Self {
            root,
            max_file_size,
            limits,
            started: Instant::now(),
            bytes_read: Cell::new(0),
            objects: Cell::new(0),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Fails once the build has run longer than its time cap.
    pub fn check_time(&self, at: &Loc) -> Result<(), BuildError> {
        if self.started.elapsed() > self.limits.max_time {
            return Err(BuildError::Limit {
                at: at.clone(),
                cap: Cap::Time(self.limits.max_time),
            });
        }
        Ok(())
    }

    /// Fails when `n` more objects would not fit under the object cap (counts nothing).
    pub fn check_room_for(&self, n: usize, at: &Loc) -> Result<(), BuildError> {
        if self.objects.get().saturating_add(n) > self.limits.max_objects {
            return Err(BuildError::Limit {
                at: at.clone(),
                cap: Cap::Objects(self.limits.max_objects),
            });
        }
        Ok(())
    }

    /// Counts `n` more objects against the object cap.
    pub fn count_objects(&self, n: usize, at: &Loc) -> Result<(), BuildError> {
        let total = self.objects.get().saturating_add(n);
        self.objects.set(total);
        if total > self.limits.max_objects {
            return Err(BuildError::Limit {
                at: at.clone(),
                cap: Cap::Objects(self.limits.max_objects),
            });
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How a path is shown in messages: relative to the root when inside it.
    pub fn display(&self, path: &Path) -> String {
        match path.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".into(),
            Ok(rel) => rel.display().to_string(),
            Err(_) => path.display().to_string(),
        }
    }

    pub fn loc(&self, path: &Path, line: u64) -> Loc {
        Loc::new(self.display(path), line)
    }

    /// Resolves a path (following symlinks) and checks it lies inside the root. `referrer` is
    /// where the path was named, for the message.
    pub fn resolve(&self, path: &Path, referrer: &Loc) -> Result<PathBuf, BuildError> {
        let real = path.canonicalize().map_err(|source| BuildError::Read {
            at: Loc::new(format!("{}: {}", referrer, self.display(path)), 0),
            source,
        })?;
        if !real.starts_with(&self.root) {
            return Err(BuildError::OutsideRoot {
                at: referrer.clone(),
                path: path.display().to_string(),
                root: self.root.display().to_string(),
            });
        }
        Ok(real)
    }

    /// Reads a file (already resolved) as bytes, enforcing the size limit.
    pub fn read_bytes(&self, path: &Path) -> Result<Vec<u8>, BuildError> {
        let at = self.loc(path, 0);
        let meta = std::fs::metadata(path).map_err(|source| BuildError::Read {
            at: at.clone(),
            source,
        })?;
        if meta.len() > self.max_file_size {
            return Err(BuildError::TooLarge {
                at,
                size: meta.len(),
                limit: self.max_file_size,
            });
        }
        self.check_time(&at)?;
        let total = self.bytes_read.get().saturating_add(meta.len());
        self.bytes_read.set(total);
        if total > self.limits.max_bytes {
            return Err(BuildError::Limit {
                at,
                cap: Cap::Bytes(self.limits.max_bytes),
            });
        }
        std::fs::read(path).map_err(|source| BuildError::Read { at, source })
    }

    /// Reads a UTF-8 text file (already resolved), enforcing the size limit.
    pub fn read_text(&self, path: &Path) -> Result<String, BuildError> {
        let bytes = self.read_bytes(path)?;
        String::from_utf8(bytes).map_err(|e| BuildError::Parse {
            at: self.loc(path, 0),
            message: format!("not UTF-8 text: {e}"),
        })
    }

    /// The entries of a directory, sorted by name.
    pub fn list_dir(&self, dir: &Path) -> Result<Vec<PathBuf>, BuildError> {
        let at = self.loc(dir, 0);
        self.check_time(&at)?;
        let entries = std::fs::read_dir(dir).map_err(|source| BuildError::Read {
            at: at.clone(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in entries {
            out.push(
                entry
                    .map_err(|source| BuildError::Read {
                        at: at.clone(),
                        source,
                    })?
                    .path(),
            );
        }
        out.sort();
        Ok(out)
    }
}

/// Whether `path` lies in or below `dir` (both resolved): kustomize's rule for files a
/// kustomization names.
pub fn is_within(path: &Path, dir: &Path) -> bool {
    path.starts_with(dir)
}
