//! Status conditions shared by every kind (the shape of Kubernetes' metav1.Condition) and the pure
//! rule for updating them. No I/O.

use serde::{Deserialize, Serialize};

pub const READY: &str = "Ready";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// RFC 3339 time of the last status change.
    pub last_transition_time: String,
    pub reason: String,
    pub message: String,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn c(status: &str, reason: &str, time: &str) -> Condition {
        Condition {
            type_: READY.into(),
            status: status.into(),
            observed_generation: Some(1),
            last_transition_time: time.into(),
            reason: reason.into(),
            message: String::new(),
        }
    }

    #[test]
    fn transition_time_moves_only_when_status_changes() {
        let mut list = vec![];
        assert!(set(&mut list, c("True", "Succeeded", "t1")));
        assert!(
            !set(&mut list, c("True", "Succeeded", "t2")),
            "same condition is no change"
        );
        assert_eq!(list[0].last_transition_time, "t1");
        assert!(set(&mut list, c("False", "Failed", "t3")));
        assert_eq!(list[0].last_transition_time, "t3");
        assert!(remove(&mut list, READY));
        assert!(list.is_empty());
    }
}
