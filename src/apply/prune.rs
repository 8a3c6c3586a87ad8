//! Garbage collection: deletes objects that left the desired set, when they still carry our
//! owner labels and are not opted out. The guard and the per-object decision are pure; `prune`
//! does the deletes.

use kube::Client;
use kube::api::DeleteParams;
use serde_json::Value;

use super::applier::{OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL, Owner};
use super::changeset::{Action, ChangeSet};
use super::contents;
use super::discovery::{Discovery, DiscoveryError};
use super::inventory::{Inventory, InventoryEntry, ObjectId};
use super::plan::Policy;

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(
        "the new set of objects is empty while {previous} object(s) were applied before; refusing to prune them all (allow it explicitly to delete everything)"
    )]
    EmptySet { previous: usize },
}

/// Whether pruning may run after an apply: a set that suddenly became empty is far more often a
/// broken path or build than an intent to delete everything, so it needs explicit consent.
pub fn guard(previous: &Inventory, next: &Inventory, allow_empty: bool) -> Result<(), PruneError> {
    if next.is_empty() && !previous.is_empty() && !allow_empty {
        return Err(PruneError::EmptySet {
            previous: previous.entries.len(),
        });
    }
    Ok(())
}

/// What to do with one stale object.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// It is ours and not opted out: delete it.
    Delete,
    /// Already gone (or going): just forget it.
    Gone,
    /// Leave it in the cluster and forget it, for the reason given.
    Keep(String),
}

pub fn decide(live: Option<&Value>, owner: &Owner) -> Decision {
    let Some(live) = live else {
        return Decision::Gone;
    };
    if live.pointer("/metadata/deletionTimestamp").is_some() {
        return Decision::Gone;
    }
    let label = |key: &str| {
        live.pointer("/metadata/labels")
            .and_then(|l| l.get(key))
            .and_then(Value::as_str)
    };
    if label(OWNER_NAME_LABEL) != Some(owner.name.as_str())
        || label(OWNER_NAMESPACE_LABEL) != Some(owner.namespace.as_str())
    {
        return Decision::Keep("owner labels no longer point to this owner".into());
    }
    if Policy::of(live).prune_disabled {
        return Decision::Keep("prune disabled by annotation".into());
    }
    Decision::Delete
}

/// The outcome of pruning: the ChangeSet, the entries that must stay in the inventory (their
/// deletion failed or was held back: they are tried again), the containers held back because
/// they hold objects of others (each worth a warning), and inventory entries that could not be
/// read (kept as they are, never dropped).
#[derive(Debug, Default)]
pub struct Pruned {
    pub changeset: ChangeSet,
    pub kept: Vec<InventoryEntry>,
    pub guarded: Vec<(ObjectId, String)>,
    pub unreadable: Vec<InventoryEntry>,
}

/// What happened to one stale entry.
enum Step {
    /// Nothing to do any more: forget the entry.
    Forget,
    /// Done (deleted, or skipped for good): record it and forget the entry.
    Done(Action, Option<String>),
    /// A container still holding objects of others: skipped with a warning, entry kept.
    Guarded(String),
}

/// Deletes the stale objects that `decide` says are ours, with background propagation.
pub async fn prune(
    client: &Client,
    discovery: &Discovery,
    stale: &[InventoryEntry],
    owner: &Owner,
) -> Pruned {
    let mut pruned = Pruned::default();
    for entry in stale {
        let Some(id) = entry.object_id() else {
            pruned.kept.push(entry.clone());
            pruned.unreadable.push(entry.clone());
            continue;
        };
        match prune_one(client, discovery, entry, &id, owner).await {
            Ok(Step::Done(action, message)) => {
                pruned.changeset.push(id, action, message);
                if action == Action::Deleted {
                    crate::runtime::crash::point("after-delete");
                }
            }
            Ok(Step::Forget) => {}
            Ok(Step::Guarded(reason)) => {
                pruned
                    .changeset
                    .push(id.clone(), Action::Skipped, Some(reason.clone()));
                pruned.guarded.push((id, reason));
                pruned.kept.push(entry.clone());
            }
            Err(message) => {
                pruned.changeset.push(id, Action::Failed, Some(message));
                pruned.kept.push(entry.clone());
            }
        }
    }
    pruned
}

async fn prune_one(
    client: &Client,
    discovery: &Discovery,
    entry: &InventoryEntry,
    id: &ObjectId,
    owner: &Owner,
) -> Result<Step, String> {
    let resolved = match discovery.resolve(&id.group, &entry.v, &id.kind).await {
        Ok(resolved) => resolved,
        // The kind is gone (its CRD was deleted), and with it every object of the kind.
        Err(DiscoveryError::UnknownKind { .. }) => return Ok(Step::Forget),
        Err(err) => return Err(err.to_string()),
    };
    let api = resolved.api(client.clone(), &id.namespace);
    let live = api
        .get_opt(&id.name)
        .await
        .map_err(|e| format!("reading it failed: {}", api_error(&e)))?;
    let live = live.map(|o| serde_json::to_value(o).expect("objects serialize"));
    match decide(live.as_ref(), owner) {
        Decision::Gone => Ok(Step::Forget),
        Decision::Keep(reason) => Ok(Step::Done(Action::Skipped, Some(reason))),
        Decision::Delete => {
            let live = live.expect("Delete implies a live object");
            if contents::is_container(id) && !Policy::of(&live).prune_contents {
                let held = contents::find_foreign(client, id, &live, owner).await;
                let reason = match held {
                    Ok(None) => None,
                    Ok(Some(what)) => Some(format!("it still holds {what}, which is not ours")),
                    Err(e) => Some(format!("what it holds cannot be checked: {e}")),
                };
                if let Some(reason) = reason {
                    return Ok(Step::Guarded(format!(
                        "not deleted: {reason}; annotate it sluice.dev/prune: delete-contents to delete it with everything it holds"
                    )));
                }
            }
            match crate::runtime::metrics::count_apply(
                "delete",
                api.delete(&id.name, &DeleteParams::background()).await,
            ) {
                Ok(_) => Ok(Step::Done(Action::Deleted, None)),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(Step::Forget),
                Err(err) => Err(format!("deleting it failed: {}", api_error(&err))),
            }
        }
    }
}

/// What the API server said, without the client's wrapping: `configmaps "x" is forbidden: User
/// "..." cannot delete resource ...`.
fn api_error(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => crate::runtime::text::error_chain(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner() -> Owner {
        Owner {
            name: "app".into(),
            namespace: "flux-system".into(),
        }
    }

    fn object(labels: Value, annotations: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels, "annotations": annotations}})
    }

    #[test]
    fn only_our_objects_that_are_not_opted_out_are_deleted() {
        let ours = json!({"sluice.dev/name": "app", "sluice.dev/namespace": "flux-system"});
        assert_eq!(
            decide(Some(&object(ours.clone(), json!({}))), &owner()),
            Decision::Delete
        );
        assert_eq!(decide(None, &owner()), Decision::Gone);
        let theirs = json!({"sluice.dev/name": "other", "sluice.dev/namespace": "flux-system"});
        assert!(matches!(
            decide(Some(&object(theirs, json!({}))), &owner()),
            Decision::Keep(_)
        ));
        let opted_out = object(
            ours.clone(),
            json!({"kustomize.toolkit.fluxcd.io/prune": "disabled"}),
        );
        assert!(matches!(
            decide(Some(&opted_out), &owner()),
            Decision::Keep(_)
        ));
        let mut deleting = object(ours, json!({}));
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert_eq!(decide(Some(&deleting), &owner()), Decision::Gone);
    }

    #[test]
    fn an_empty_set_after_a_full_one_needs_consent() {
        let full = Inventory::from_entries([InventoryEntry {
            id: "a_b__ConfigMap".into(),
            v: "v1".into(),
        }]);
        let empty = Inventory::default();
        assert!(guard(&full, &empty, false).is_err());
        assert!(guard(&full, &empty, true).is_ok());
        assert!(guard(&empty, &empty, false).is_ok());
        assert!(guard(&full, &full, false).is_ok());
    }
}
