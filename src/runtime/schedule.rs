//! A controller's memory of each object: what it was last reconciled for (its trigger), when it is
//! due again and how many reconciles in a row failed. Forgotten when the object is deleted. No
//! I/O: a map behind a lock, timed with tokio's clock.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;

use super::trigger::Requested;

/// When to look at an object again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Done for now; look again after the interval.
    After(Duration),
    /// Failed; try again after this long. Counts as a failure for the backoff.
    Retry(Duration),
    /// Only a change of the object (or of its trigger inputs) helps.
    OnChange,
}

/// Base and cap of the retry backoff.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Exponential backoff after `failures` consecutive failures, never beyond `cap` or `BACKOFF_MAX`.
pub fn backoff(failures: u32, cap: Duration) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    exp.min(BACKOFF_MAX).min(cap.max(BACKOFF_BASE))
}

/// Whether an object needs a reconcile now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Reconcile. `previous`: the manual-trigger values at the last reconcile, when remembered.
    Due { previous: Option<Requested> },
    /// Reconciled for the same trigger and not due yet: wait this long (`None`: for a change).
    NotYet(Option<Duration>),
}

#[derive(Debug, Clone)]
struct Entry {
    trigger: u64,
    requested: Requested,
    /// `None`: only a change of the trigger makes it due.
    due: Option<Instant>,
    failures: u32,
}

/// The memory of one controller, keyed by object.
pub struct Schedule<K: Resource<DynamicType = ()>> {
    entries: Mutex<HashMap<ObjectRef<K>, Entry>>,
}

impl<K: Resource<DynamicType = ()>> Default for Schedule<K> {
    fn default() -> Self {
        Schedule {
            entries: Mutex::default(),
        }
    }
}

impl<K: Resource<DynamicType = ()>> Schedule<K> {
    fn entries(&self) -> MutexGuard<'_, HashMap<ObjectRef<K>, Entry>> {
        // Nothing panics while holding the lock; if something did, the map is still consistent.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `key`, asked for `trigger` at `now`, needs a reconcile.
    pub fn check(&self, key: &ObjectRef<K>, trigger: u64, now: Instant) -> Gate {
        match self.entries().get(key) {
            Some(entry) if entry.trigger == trigger && entry.due.is_none_or(|at| at > now) => {
                Gate::NotYet(entry.due.map(|at| at - now))
            }
            Some(entry) => Gate::Due {
                previous: Some(entry.requested.clone()),
            },
            None => Gate::Due { previous: None },
        }
    }

    /// Failed reconciles of `key` in a row (`Requeue::Retry`, errors, panics).
    pub fn failures(&self, key: &ObjectRef<K>) -> u32 {
        self.entries().get(key).map_or(0, |e| e.failures)
    }

    /// Remembers a finished reconcile of `key` for `trigger` and when to look again.
    pub fn record(
        &self,
        key: ObjectRef<K>,
        trigger: u64,
        requested: Requested,
        requeue: Requeue,
        now: Instant,
    ) {
        let mut entries = self.entries();
        let before = entries.get(&key).map_or(0, |e| e.failures);
        let (due, failures) = match requeue {
            Requeue::After(after) => (now.checked_add(after), 0),
            Requeue::Retry(after) => (now.checked_add(after), before.saturating_add(1)),
            Requeue::OnChange => (None, 0),
        };
        entries.insert(
            key,
            Entry {
                trigger,
                requested,
                due,
                failures,
            },
        );
    }

    /// Forgets a deleted object.
    pub fn forget(&self, key: &ObjectRef<K>) {
        self.entries().remove(key);
    }

    /// Forgets every object for which `keep` is false.
    pub fn retain(&self, keep: impl Fn(&ObjectRef<K>) -> bool) {
        self.entries().retain(|key, _| keep(key));
    }

    /// How many objects are remembered.
    pub fn len(&self) -> usize {
        self.entries().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::git_repository::GitRepository;

    fn key(name: &str) -> ObjectRef<GitRepository> {
        ObjectRef::new(name).within("team")
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let hour = Duration::from_secs(3600);
        assert_eq!(backoff(1, hour), Duration::from_secs(2));
        assert_eq!(backoff(2, hour), Duration::from_secs(4));
        assert_eq!(backoff(30, hour), BACKOFF_MAX);
        assert_eq!(
            backoff(30, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn same_trigger_waits_until_due_and_a_new_trigger_does_not() {
        let schedule = Schedule::default();
        let now = Instant::now();
        let minute = Duration::from_secs(60);
        assert_eq!(
            schedule.check(&key("a"), 1, now),
            Gate::Due { previous: None }
        );
        schedule.record(
            key("a"),
            1,
            Requested::default(),
            Requeue::After(minute),
            now,
        );
        let later = now + Duration::from_secs(20);
        assert_eq!(
            schedule.check(&key("a"), 1, later),
            Gate::NotYet(Some(Duration::from_secs(40)))
        );
        assert!(matches!(
            schedule.check(&key("a"), 2, later),
            Gate::Due { .. }
        ));
        assert!(matches!(
            schedule.check(&key("a"), 1, now + minute),
            Gate::Due { .. }
        ));
        schedule.record(key("a"), 1, Requested::default(), Requeue::OnChange, now);
        assert_eq!(
            schedule.check(&key("a"), 1, now + 1000 * minute),
            Gate::NotYet(None)
        );
    }

    #[test]
    fn retries_count_failures_and_success_resets_them() {
        let schedule = Schedule::default();
        let now = Instant::now();
        let retry = Requeue::Retry(Duration::from_secs(2));
        schedule.record(key("a"), 1, Requested::default(), retry, now);
        assert_eq!(schedule.failures(&key("a")), 1);
        schedule.record(key("a"), 1, Requested::default(), retry, now);
        assert_eq!(schedule.failures(&key("a")), 2);
        assert_eq!(
            schedule.check(&key("a"), 9, now),
            Gate::Due {
                previous: Some(Requested::default())
            }
        );
        let done = Requeue::After(Duration::from_secs(60));
        schedule.record(key("a"), 1, Requested::default(), done, now);
        assert_eq!(schedule.failures(&key("a")), 0);
    }

    #[test]
    fn deleted_objects_are_forgotten() {
        let schedule = Schedule::default();
        let now = Instant::now();
        for name in ["a", "b", "c"] {
            schedule.record(key(name), 1, Requested::default(), Requeue::OnChange, now);
        }
        schedule.forget(&key("a"));
        assert_eq!(schedule.len(), 2);
        schedule.retain(|k| k.name == "c");
        assert_eq!(schedule.len(), 1);
        assert_eq!(
            schedule.check(&key("b"), 1, now),
            Gate::Due { previous: None }
        );
        assert_eq!(schedule.failures(&key("b")), 0);
    }

    #[test]
    fn an_absurd_interval_never_overflows_the_clock() {
        let schedule = Schedule::default();
        let now = Instant::now();
        let forever = Requeue::After(Duration::MAX);
        schedule.record(key("a"), 1, Requested::default(), forever, now);
        assert_eq!(schedule.check(&key("a"), 1, now), Gate::NotYet(None));
    }
}
