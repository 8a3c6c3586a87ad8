//! Status conditions shared by every kind (the shape of Kubernetes' metav1.Condition) and the pure
//! rule for updating them. No I/O.

use serde::{Deserialize, Serialize};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

/// A condition's status: the three values Kubernetes allows.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum ConditionStatus {
    True,
    False,
    #[default]
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(value: bool) -> Self {
        if value {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last status change.
    pub last_transition_time: String,
    /// A CamelCase word saying why (e.g. `BuildFailed`).
    pub reason: String,
    pub message: String,
}

impl Condition {
    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// What the status of every sluice kind carries, for code that handles any kind.
pub trait ReconcileStatus {
    fn conditions(&self) -> &[Condition];
    /// The manual-trigger annotation value the last reconcile acted on.
    fn last_handled_reconcile_at(&self) -> Option<&str>;
    /// The revision the object is at, for logs and notifications (a source's artifact, a
    /// Kustomization's last attempt); `None` for kinds without one.
    fn revision(&self) -> Option<&str> {
        None
    }
}

/// Sets a condition, keeping `lastTransitionTime` when the status did not change. Returns whether
/// anything changed.
pub fn set(conditions: &mut Vec<Condition>, mut new: Condition) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(old) => {
            if old.status == new.status {
                new.last_transition_time = old.last_transition_time.clone();
            }
            let changed = *old != new;
            *old = new;
            changed
        }
        None => {
            conditions.push(new);
            true
        }
    }
}

/// Removes a condition; returns whether it was there.
pub fn remove(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    before != conditions.len()
}

pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether the condition `type_` is there with status `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    find(conditions, type_).is_some_and(Condition::is_true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(status: ConditionStatus, reason: &str, time: &str) -> Condition {
        Condition {
            type_: READY.into(),
            status,
            observed_generation: Some(1),
            last_transition_time: time.into(),
            reason: reason.into(),
            message: String::new(),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        use ConditionStatus::{False, True};
        let mut list = vec![];
        assert!(set(&mut list, c(True, "Succeeded", "t1")));
        assert!(
            !set(&mut list, c(True, "Succeeded", "t2")),
            "same condition is no change"
        );
        assert_eq!(list[0].last_transition_time, "t1");
        assert!(set(&mut list, c(False, "Failed", "t3")));
        assert_eq!(list[0].last_transition_time, "t3");
        assert!(!is_true(&list, READY));
        assert!(remove(&mut list, READY));
        assert!(list.is_empty());
    }

    #[test]
    fn status_is_written_as_kubernetes_spells_it() {
        let json = serde_json::to_value(c(ConditionStatus::True, "Succeeded", "t")).unwrap();
        assert_eq!(json["status"], "True");
        let unknown: ConditionStatus = serde_json::from_value("Unknown".into()).unwrap();
        assert_eq!(unknown, ConditionStatus::Unknown);
        assert!(serde_json::from_value::<ConditionStatus>("true".into()).is_err());
    }
}
