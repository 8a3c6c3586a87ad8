//! A Canary's status where the analysis cannot run (an invalid spec, a missing target), and the
//! merge patch that writes a new status, removing what is gone (a JSON merge patch of the whole
//! status would keep map keys that left it). Pure.

use serde_json::{Map, Value};

use super::machine::CanaryReason;
use crate::api::canary::CanaryStatus;
use crate::api::condition::{self, READY, RECONCILING, STALLED};
use crate::runtime::conditions::{Common, Reason, Stamp};

/// `Ready=False` and `Stalled=True` for `reason` (`InvalidSpec`, `AccessDenied`): only a change
/// of the spec helps. The analysis state is kept, so fixing the spec resumes where it stood.
pub fn stalled(
    current: &CanaryStatus,
    stamp: &Stamp<'_>,
    reason: Common,
    message: &str,
) -> CanaryStatus {
    let mut status = current.clone();
    status.observed_generation = stamp.generation;
    condition::set(
        &mut status.conditions,
        stamp.condition(READY, false, reason, message),
    );
    condition::set(
        &mut status.conditions,
        stamp.condition(STALLED, true, reason, message),
    );
    condition::remove(&mut status.conditions, RECONCILING);
    status
}

/// `Ready=False` while something the analysis needs is missing (the target, a MetricTemplate);
/// retried, since it may appear.
pub fn blocked(
    current: &CanaryStatus,
    stamp: &Stamp<'_>,
    reason: CanaryReason,
    message: &str,
) -> CanaryStatus {
    let mut status = current.clone();
    status.observed_generation = stamp.generation;
    condition::set(
        &mut status.conditions,
        stamp.condition(READY, false, reason, message),
    );
    condition::remove(&mut status.conditions, STALLED);
    condition::set(
        &mut status.conditions,
        stamp.condition(
            RECONCILING,
            true,
            Common::ProgressingWithRetry,
            format!("{}: {message}", reason.as_str()),
        ),
    );
    status
}

/// The JSON merge patch (RFC 7386) that turns `old` into `new`: changed values, and `null` for
/// keys that are gone. `Value::Null` when nothing changed.
pub fn merge_patch(old: &Value, new: &Value) -> Value {
    match (old, new) {
        (Value::Object(old), Value::Object(new)) => {
            let mut patch = Map::new();
            for (key, value) in new {
                match old.get(key) {
                    Some(before) if before == value => {}
                    Some(before) if before.is_object() && value.is_object() => {
                        patch.insert(key.clone(), merge_patch(before, value));
                    }
                    _ => {
                        patch.insert(key.clone(), value.clone());
                    }
                }
            }
            for key in old.keys().filter(|k| !new.contains_key(*k)) {
                patch.insert(key.clone(), Value::Null);
            }
            if patch.is_empty() {
                Value::Null
            } else {
                Value::Object(patch)
            }
        }
        (old, new) if old == new => Value::Null,
        (_, new) => new.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patches_remove_what_is_gone_and_keep_what_is_unchanged() {
        let old = json!({"phase": "Progressing", "canaryWeight": 20, "trackedConfigs": {"ConfigMap/a": "1", "ConfigMap/b": "2"},
            "conditions": [{"type": "Ready"}]});
        let new = json!({"phase": "Progressing", "canaryWeight": 40, "trackedConfigs": {"ConfigMap/a": "1"},
            "conditions": [{"type": "Ready"}]});
        assert_eq!(
            merge_patch(&old, &new),
            json!({"canaryWeight": 40, "trackedConfigs": {"ConfigMap/b": null}})
        );
        assert_eq!(merge_patch(&old, &old), Value::Null);
        let gone = json!({"phase": "Failed"});
        let patch = merge_patch(&old, &gone);
        assert_eq!(patch["trackedConfigs"], Value::Null);
        assert_eq!(patch["phase"], "Failed");
        let mut applied = old.clone();
        json_patch::merge(&mut applied, &patch);
        assert_eq!(applied, gone);
    }

    #[test]
    fn an_invalid_spec_stalls_and_a_missing_target_retries() {
        let stamp = Stamp {
            generation: Some(2),
            now: "2026-01-01T00:00:00Z",
        };
        let status = stalled(
            &CanaryStatus::default(),
            &stamp,
            Common::InvalidSpec,
            "spec.analysis.threshold: 0",
        );
        assert!(condition::is_true(&status.conditions, STALLED));
        assert_eq!(
            condition::find(&status.conditions, READY).unwrap().reason,
            "InvalidSpec"
        );
        let blocked = blocked(
            &status,
            &stamp,
            CanaryReason::TargetNotFound,
            "Deployment shop/web not found",
        );
        assert!(condition::find(&blocked.conditions, STALLED).is_none());
        assert!(condition::is_true(&blocked.conditions, RECONCILING));
        assert_eq!(blocked.observed_generation, Some(2));
    }
}
