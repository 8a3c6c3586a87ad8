//! What makes a reconcile due besides time: the spec generation, the manual-trigger annotations
//! (`sluice.dev/requestedAt` and Flux's `reconcile.fluxcd.io/requestedAt`) and whatever inputs a
//! controller adds (a source's revision); and which annotation value a reconcile reports as
//! `status.lastHandledReconcileAt`. Pure.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use crate::api::{FLUX_REQUESTED_AT_ANNOTATION, REQUESTED_AT_ANNOTATION};

/// The manual-trigger annotations, the native one first.
pub const REQUESTED_AT_ANNOTATIONS: [&str; 2] =
    [REQUESTED_AT_ANNOTATION, FLUX_REQUESTED_AT_ANNOTATION];

/// The values of the manual-trigger annotations on an object, in `REQUESTED_AT_ANNOTATIONS` order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Requested([Option<String>; 2]);

impl Requested {
    pub fn of(annotations: &BTreeMap<String, String>) -> Requested {
        Requested(REQUESTED_AT_ANNOTATIONS.map(|key| annotations.get(key).cloned()))
    }

    /// The value this reconcile reports as handled: one that changed since `previous` (the values
    /// at this object's last reconcile, when the agent remembers them; the native annotation first
    /// when both changed), else the value handled last when it is still set, else the first set.
    /// `None` when neither annotation is set. Whoever sets an annotation and waits for
    /// `status.lastHandledReconcileAt` to equal it (`flux reconcile` does) sees it there, and a
    /// reconcile that nothing triggered reports what it reported before.
    pub fn handled<'a>(
        &'a self,
        previous: Option<&Requested>,
        last_handled: Option<&str>,
    ) -> Option<&'a str> {
        let set = || self.0.iter().flatten().map(String::as_str);
        let changed = previous.and_then(|previous| {
            self.0
                .iter()
                .zip(&previous.0)
                .find_map(|(now, before)| now.as_deref().filter(|_| now != before))
        });
        changed
            .or_else(|| set().find(|value| Some(*value) == last_handled))
            .or_else(|| set().next())
    }
}

/// A fingerprint of what a reconcile is for: two reconciles with the same trigger differ only in
/// time, so a watch event that leaves it unchanged (such as a status write) does not reconcile
/// before the object is due.
pub fn trigger(generation: Option<i64>, requested: &Requested, inputs: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    generation.hash(&mut hasher);
    requested.hash(&mut hasher);
    inputs.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requested(native: Option<&str>, flux: Option<&str>) -> Requested {
        let mut annotations = BTreeMap::new();
        for (key, value) in REQUESTED_AT_ANNOTATIONS.iter().zip([native, flux]) {
            if let Some(value) = value {
                annotations.insert(key.to_string(), value.to_string());
            }
        }
        annotations.insert("team".into(), "a".into());
        Requested::of(&annotations)
    }

    #[test]
    fn either_annotation_the_generation_or_the_inputs_change_the_trigger() {
        let none = requested(None, None);
        let base = trigger(Some(1), &none, &());
        assert_eq!(base, trigger(Some(1), &none, &()), "stable");
        assert_ne!(base, trigger(Some(2), &none, &()));
        let native = requested(Some("a"), None);
        let flux = requested(None, Some("a"));
        assert_ne!(base, trigger(Some(1), &native, &()));
        assert_ne!(base, trigger(Some(1), &flux, &()));
        assert_ne!(
            trigger(Some(1), &native, &()),
            trigger(Some(1), &flux, &()),
            "the two annotations are told apart"
        );
        assert_ne!(
            trigger(Some(1), &none, &Some("main@sha1:a")),
            trigger(Some(1), &none, &Some("main@sha1:b"))
        );
    }

    #[test]
    fn the_value_that_changed_is_reported_as_handled() {
        assert_eq!(requested(None, None).handled(None, Some("old")), None);
        let flux = requested(None, Some("t1"));
        assert_eq!(flux.handled(None, None), Some("t1"));
        assert_eq!(flux.handled(Some(&requested(None, None)), None), Some("t1"));

        // `flux reconcile` after a sluice trigger: the Flux value is new.
        let both = requested(Some("s1"), Some("f2"));
        let before = requested(Some("s1"), None);
        assert_eq!(both.handled(Some(&before), Some("s1")), Some("f2"));
        // Later reconciles keep reporting it instead of flipping between the two.
        assert_eq!(both.handled(Some(&both), Some("f2")), Some("f2"));
        // After a restart (nothing remembered) too.
        assert_eq!(both.handled(None, Some("f2")), Some("f2"));
        // Both new: the native one.
        assert_eq!(both.handled(None, None), Some("s1"));
        assert_eq!(
            both.handled(Some(&requested(Some("s0"), Some("f0"))), Some("f0")),
            Some("s1")
        );
    }
}
