//! What deleting a Kustomization does to the objects it applied: `plan` decides from
//! `deletionPolicy`, `prune` and `suspend` (pure); `finalize` deletes what the inventory names
//! and is still ours, and with `WaitForTermination` waits until it is gone. Talks to the API
//! server.

use std::time::Duration;

use kube::Client;

use crate::api::kustomization::{DeletionPolicy, Kustomization, KustomizationSpec};
use crate::apply::applier::Owner;
use crate::apply::changeset::Action;
use crate::apply::discovery::Discovery;
use crate::apply::inventory::InventoryEntry;
use crate::apply::prune;
use crate::runtime::conditions::{Reason, reasons};
use crate::runtime::events::EventPlan;

reasons! {
    /// Reasons of the Events a deletion emits.
    pub enum DeletionReason {
        /// The applied objects were deleted.
        GarbageCollected,
        /// The applied objects were left in place.
        Orphaned,
        /// `WaitForTermination` gave up waiting; the Kustomization goes anyway.
        TerminationTimedOut,
    }
}

/// What to do with the applied objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Leave them, for the reason given.
    Keep(&'static str),
    /// Delete those still ours; with `wait`, until they are gone.
    Delete { wait: bool },
}

pub fn plan(spec: &KustomizationSpec) -> Plan {
    if spec.suspend {
        return Plan::Keep("the Kustomization is suspended");
    }
    match spec.deletion_policy.unwrap_or_default() {
        DeletionPolicy::MirrorPrune if spec.prune => Plan::Delete { wait: false },
        DeletionPolicy::MirrorPrune => Plan::Keep("prune is off (deletionPolicy MirrorPrune)"),
        DeletionPolicy::Delete => Plan::Delete { wait: false },
        DeletionPolicy::WaitForTermination => Plan::Delete { wait: true },
        DeletionPolicy::Orphan => Plan::Keep("deletionPolicy is Orphan"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    #[error("deleting the applied objects failed: {0}")]
    Delete(String),
}

/// Carries out `plan` for the deleted `obj` with `client` (the Kustomization's identity) and
/// says what happened as an Event. Fails (to be retried, the finalizer kept) when a delete
/// failed.
pub async fn finalize(
    client: &Client,
    discovery: &Discovery,
    obj: &Kustomization,
    timeout: Duration,
) -> Result<Option<EventPlan>, FinalizeError> {
    let entries = obj
        .status
        .as_ref()
        .and_then(|s| s.inventory.as_ref())
        .map(|i| i.entries.clone())
        .unwrap_or_default();
    let event = |warning, reason: DeletionReason, message: String| EventPlan {
        warning,
        reason: reason.as_str(),
        message,
        action: "Delete".into(),
    };
    let wait = match plan(&obj.spec) {
        Plan::Keep(why) => return Ok(orphaned(obj, why)),
        Plan::Delete { wait } => wait,
    };
    let owner = Owner {
        name: kube::ResourceExt::name_any(obj),
        namespace: kube::ResourceExt::namespace(obj).unwrap_or_default(),
    };
    let pruned = prune::prune(client, discovery, &entries, &owner).await;
    let failed = pruned.changeset.failures();
    if !failed.is_empty() {
        return Err(FinalizeError::Delete(failed.join("; ")));
    }
    let deleted: Vec<&InventoryEntry> = entries
        .iter()
        .filter(|entry| {
            pruned.changeset.entries.iter().any(|e| {
                e.action == Action::Deleted && entry.object_id().is_some_and(|id| id == e.id)
            })
        })
        .collect();
    let summary: String = pruned
        .changeset
        .changed()
        .map(|e| format!("{} {}\n", e.id, e.action))
        .collect();
    if wait && let Err(left) = wait_gone(client, discovery, &deleted, timeout).await {
        let message = format!(
            "{} object(s) still terminating after {timeout:?}: {}",
            left.len(),
            left.join(", ")
        );
        return Ok(Some(event(
            true,
            DeletionReason::TerminationTimedOut,
            message,
        )));
    }
    let message = format!(
        "deleted {} object(s){}\n{}",
        deleted.len(),
        if wait {
            " and waited for their termination"
        } else {
            ""
        },
        summary.trim_end()
    );
    Ok(Some(event(
        false,
        DeletionReason::GarbageCollected,
        message,
    )))
}

/// The Event saying the applied objects were left in place (none when there were none).
pub fn orphaned(obj: &Kustomization, why: &str) -> Option<EventPlan> {
    let count = obj
        .status
        .as_ref()
        .and_then(|s| s.inventory.as_ref())
        .map_or(0, |i| i.entries.len());
    (count > 0).then(|| EventPlan {
        warning: false,
        reason: DeletionReason::Orphaned.as_str(),
        message: format!("{count} object(s) left in place: {why}"),
        action: "Delete".into(),
    })
}

/// Polls until every object in `entries` is gone; `Err` names those left at the deadline.
async fn wait_gone(
    client: &Client,
    discovery: &Discovery,
    entries: &[&InventoryEntry],
    timeout: Duration,
) -> Result<(), Vec<String>> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut left = Vec::new();
        for entry in entries {
            let Some(id) = entry.object_id() else {
                continue;
            };
            let Ok(resolved) = discovery.resolve(&id.group, &entry.v, &id.kind).await else {
                continue; // the kind is gone, and its objects with it
            };
            let api = resolved.api(client.clone(), &id.namespace);
            if !matches!(api.get_opt(&id.name).await, Ok(None)) {
                left.push(id.to_string());
            }
        }
        if left.is_empty() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(left);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(prune: bool, suspend: bool, policy: Option<DeletionPolicy>) -> KustomizationSpec {
        KustomizationSpec {
            prune,
            suspend,
            deletion_policy: policy,
            ..Default::default()
        }
    }

    #[test]
    fn the_policy_prune_and_suspend_decide() {
        use DeletionPolicy::*;
        assert_eq!(plan(&spec(true, false, None)), Plan::Delete { wait: false });
        assert!(matches!(plan(&spec(false, false, None)), Plan::Keep(_)));
        assert!(matches!(
            plan(&spec(false, false, Some(MirrorPrune))),
            Plan::Keep(_)
        ));
        assert_eq!(
            plan(&spec(false, false, Some(Delete))),
            Plan::Delete { wait: false }
        );
        assert_eq!(
            plan(&spec(false, false, Some(WaitForTermination))),
            Plan::Delete { wait: true }
        );
        assert!(matches!(
            plan(&spec(true, false, Some(Orphan))),
            Plan::Keep(_)
        ));
        assert!(matches!(
            plan(&spec(true, true, Some(Delete))),
            Plan::Keep(_)
        ));
    }
}
