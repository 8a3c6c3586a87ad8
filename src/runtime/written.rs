//! What a controller last wrote to each object's status, for the reconciles that come before its
//! watch shows the write: a busy API server delivers watch events seconds or minutes late, and a
//! controller that decides from its own last status (a canary analysis that takes one step per
//! interval) must not take a step again because its cache still shows the status before it. No
//! I/O: a map behind a lock.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Orders two `resourceVersion`s of objects of one resource, as Kubernetes allows since 1.35
/// (KEP-5504, "comparable resource versions"): both are positive integers written without
/// leading zeros. `None` when either is not one (a server that does not promise the order).
pub fn compare_versions(a: &str, b: &str) -> Option<Ordering> {
    let valid =
        |v: &str| !v.is_empty() && !v.starts_with('0') && v.bytes().all(|c| c.is_ascii_digit());
    (valid(a) && valid(b)).then(|| a.len().cmp(&b.len()).then_with(|| a.cmp(b)))
}

/// One object's last write: the status written and the `resourceVersion` the write made.
#[derive(Debug, Clone)]
struct Write<S> {
    version: String,
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
    /// `seen`: what this controller last wrote while the object read is older than that write;
    /// otherwise `seen` (the cache has caught up, or the versions cannot be ordered), and the
    /// write is forgotten.
    pub fn current(&self, uid: &str, resource_version: Option<&str>, seen: S) -> S {
        let mut writes = self.writes();
        let Some(write) = writes.get(uid) else {
            return seen;
        };
        let older = resource_version
            .and_then(|read| compare_versions(read, &write.version))
            .is_some_and(Ordering::is_lt);
        if older {
            write.status.clone()
        } else {
            writes.remove(uid);
            seen
        }
    }

    /// Remembers that `status` was written to the object `uid`, making `resource_version`.
    pub fn wrote(&self, uid: &str, resource_version: Option<&str>, status: S) {
        let mut writes = self.writes();
        match resource_version {
            Some(version) => {
                let version = version.to_string();
                writes.insert(uid.to_string(), Write { version, status });
            }
            // Nothing to tell the write by: an older one must not stand in for it.
            None => {
                writes.remove(uid);
            }
        }
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
    fn versions_order_as_integers_of_any_length() {
        assert_eq!(compare_versions("9", "10"), Some(Ordering::Less));
        assert_eq!(compare_versions("123", "123"), Some(Ordering::Equal));
        assert_eq!(
            compare_versions("100000000000000000000001", "99999999999999999999999"),
            Some(Ordering::Greater)
        );
        for bad in ["", "0", "012", "12a", "-1"] {
            assert_eq!(compare_versions(bad, "5"), None, "{bad:?}");
            assert_eq!(compare_versions("5", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_read_older_than_the_last_write_gives_the_status_written() {
        let written = Written::default();
        assert_eq!(written.current("a", Some("10"), "seen"), "seen");
        written.wrote("a", Some("12"), "weight 20");
        // The cache still shows version 10, or 11 (another writer's change before ours).
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 20");
        assert_eq!(written.current("a", Some("11"), "weight 10"), "weight 20");
        // A second write while the cache lags: the newest counts.
        written.wrote("a", Some("14"), "weight 30");
        assert_eq!(written.current("a", Some("12"), "weight 20"), "weight 30");
        // Another object is not concerned.
        assert_eq!(written.current("b", Some("10"), "other"), "other");
    }

    #[test]
    fn once_the_cache_has_the_write_it_is_believed_and_the_write_forgotten() {
        let written = Written::default();
        written.wrote("a", Some("12"), "weight 20");
        assert_eq!(written.current("a", Some("12"), "weight 20"), "weight 20");
        assert!(written.is_empty());
        written.wrote("a", Some("12"), "weight 20");
        // Someone else's change after ours: the cache holds both.
        assert_eq!(
            written.current("a", Some("15"), "weight 20, promoted by hand"),
            "weight 20, promoted by hand"
        );
        assert!(written.is_empty());
    }

    #[test]
    fn without_an_order_the_cache_is_believed() {
        let written = Written::default();
        written.wrote("a", Some("12"), "weight 20");
        assert_eq!(written.current("a", None, "weight 10"), "weight 10");
        written.wrote("a", Some("opaque"), "weight 20");
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 10");
        written.wrote("a", Some("12"), "weight 20");
        written.wrote("a", None, "weight 30");
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 10");
        written.wrote("a", Some("12"), "weight 20");
        written.forget("a");
        assert_eq!(written.current("a", Some("10"), "weight 10"), "weight 10");
        assert_eq!(written.len(), 0);
    }
}
