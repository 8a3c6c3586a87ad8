//! What a controller last wrote to each object's status, for the reconciles that come before its
//! watch shows the write: a busy API server delivers watch events seconds or minutes late, and a
//! controller that decides from its own last status (a canary analysis that takes one step per
//! interval) must not take a step again because its cache still shows the status before it. No
//! I/O: a map behind a lock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// One object's last write: the status written and the `resourceVersion` of the object it was
/// written over.
#[derive(Debug, Clone)]
struct Write<S> {
    over: String,
    status: S,
}

/// The statuses a controller wrote, by object uid.
pub struct Written<S> {
    writes: Mutex<HashMap<String, Write<S>>>,
}

impl<S> Default for Written<S> {
    fn default() -> Self {
        Written {
            writes: Mutex::default(),
        }
    }
}

impl<S: Clone> Written<S> {
    fn writes(&self) -> MutexGuard<'_, HashMap<String, Write<S>>> {
        // Nothing panics while holding the lock; if something did, the map is still consistent.
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The status to decide from for the object `uid` read at `resource_version` with status
    /// `seen`: what this controller wrote while the object read is still the version that write
    /// was made over; otherwise `seen` (the cache has moved on, and the write is forgotten).
    /// Versions are only compared for equality, as the API conventions allow: a version that
    /// another writer made between the one read and the write counts as newer, and costs at most
    /// one decision made from it.
    pub fn current(&self, uid: &str, resource_version: Option<&str>, seen: S) -> S {
        let mut writes = self.writes();
        match writes.get(uid) {
            Some(write) if resource_version == Some(write.over.as_str()) => write.status.clone(),
            Some(_) => {
                writes.remove(uid);
                seen
            }
            None => seen,
        }
    }

    /// Remembers that `status` was written over the object `uid` at `resource_version`.
    pub fn wrote(&self, uid: &str, resource_version: Option<&str>, status: S) {
        let Some(over) = resource_version else {
            return;
        };
        self.writes().insert(
            uid.to_string(),
            Write {
                over: over.to_string(),
                status,
            },
        );
    }

    /// Forgets a deleted object.
    pub fn forget(&self, uid: &str) {
        self.writes().remove(uid);
    }

    /// How many objects have a write remembered.
    pub fn len(&self) -> usize {
        self.writes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_read_gives_the_status_written_over_it() {
        let written = Written::default();
        assert_eq!(written.current("a", Some("10"), "seen"), "seen");
        written.wrote("a", Some("10"), "weight 20");
        // The cache still shows version 10: decide from what was written.
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 20");
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 20");
        // Another object is not concerned.
        assert_eq!(written.current("b", Some("10"), "other"), "other");
    }

    #[test]
    fn once_the_cache_moves_on_it_is_believed_and_the_write_forgotten() {
        let written = Written::default();
        written.wrote("a", Some("10"), "weight 20");
        assert_eq!(written.current("a", Some("11"), "weight 20"), "weight 20");
        assert!(written.is_empty());
        // Back at the old version (a relist served from a lagging cache): nothing to recall.
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 10");
    }

    #[test]
    fn the_last_write_counts_and_deleted_objects_are_forgotten() {
        let written = Written::default();
        written.wrote("a", Some("10"), "weight 20");
        written.wrote("a", Some("10"), "weight 30");
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 30");
        written.wrote("a", None, "unknown version");
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 30");
        written.forget("a");
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 10");
        assert_eq!(written.len(), 0);
    }
}
