//! One reconcile of a desired set: record the intent in the stored inventory, apply, prune what
//! left the set, record the result. The order makes it crash-safe: whatever step the process dies
//! at, the stored inventory covers every object of ours that may exist, so the next run finds and
//! prunes what it must. An apply that fails takes back the new objects it never reached. Does I/O
//! through the applier, the pruner and an `InventoryStore`.

use serde_json::Value;

use super::applier::{Applier, ApplyFailure, ApplyOptions, Owner};
use super::changeset::{Action, ChangeSet};
use super::inventory::{Inventory, InventoryEntry, ObjectId};
use super::prune::{self, PruneError};
use super::store::{InventoryStore, StoreError};
use crate::runtime::crash;

#[derive(Clone, Debug)]
pub struct ReconcileOptions {
    pub apply: ApplyOptions,
    pub owner: Owner,
    /// Delete objects that left the set.
    pub prune: bool,
    /// Prune even when the new set is empty (everything applied before is deleted).
    pub allow_empty: bool,
}

#[derive(Debug, Default)]
pub struct Report {
    pub applied: ChangeSet,
    pub pruned: ChangeSet,
    pub inventory: Inventory,
    /// Namespaces and CRDs not pruned because they hold objects of others, and why.
    pub guarded: Vec<(ObjectId, String)>,
    /// Inventory entries that could not be read: kept in the inventory, never pruned.
    pub unreadable: Vec<InventoryEntry>,
}

impl Report {
    /// The objects applied (not skipped) with their API versions: what `wait` checks.
    pub fn applied_objects(&self) -> Vec<(ObjectId, String)> {
        self.applied
            .entries
            .iter()
            .filter(|e| e.action != Action::Skipped)
            .filter_map(|e| {
                let key = e.id.to_key();
                let entry = self.inventory.entries.iter().find(|i| i.id == key)?;
                Some((e.id.clone(), entry.v.clone()))
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Apply(Box<ApplyFailure>),
    #[error(transparent)]
    Prune(#[from] PruneError),
}

/// Applies `objects` for `options.owner` and prunes what left, keeping `store` up to date.
pub async fn reconcile(
    applier: &Applier,
    store: &impl InventoryStore,
    objects: Vec<Value>,
    options: &ReconcileOptions,
) -> Result<Report, ReconcileError> {
    let previous = store.load().await?;
    let next = applier.inventory_of(&objects).await.map_err(|error| {
        ReconcileError::Apply(Box::new(ApplyFailure {
            changeset: ChangeSet::default(),
            error,
        }))
    })?;
    if options.prune {
        prune::guard(&previous, &next, options.allow_empty)?;
    }
    // Intent first: from here on the stored inventory covers old and new objects alike. Saves
    // are skipped when nothing changes, so a no-op reconcile writes nothing at all.
    let intent = previous.union(&next);
    if intent != previous {
        store.save(&intent).await?;
    }
    crash::point("after-intent");

    let apply = ApplyOptions {
        owner: Some(options.owner.clone()),
        ..options.apply.clone()
    };
    let applied = match applier.apply(objects, &apply).await {
        Ok(applied) => applied,
        Err(failure) => {
            // New objects the apply never reached were not written: forget them again, so one
            // refused before any write does not become an entry no prune can clear.
            let reached = failure.changeset.entries.iter().map(|e| e.id.to_key());
            let stored = intent.without_unreached(&previous, &reached.collect());
            if stored != intent
                && let Err(error) = store.save(&stored).await
            {
                tracing::warn!(%error, "the inventory keeps objects the failed apply never reached");
            }
            return Err(ReconcileError::Apply(Box::new(failure)));
        }
    };
    crash::point("after-apply");

    let mut kept: Vec<InventoryEntry> = Vec::new();
    let mut pruned = ChangeSet::default();
    let (mut guarded, mut unreadable) = (Vec::new(), Vec::new());
    if options.prune {
        let stale = previous.stale_against(&next);
        let result = prune::prune(
            applier.client(),
            applier.discovery(),
            &stale,
            &options.owner,
        )
        .await;
        pruned = result.changeset;
        kept = result.kept;
        guarded = result.guarded;
        unreadable = result.unreadable;
        crash::point("after-prune");
    } else {
        // Without pruning, objects that left the set stay ours: keep them in the inventory so a
        // later run with pruning on can still collect them.
        kept.extend(previous.stale_against(&next));
    }
    let inventory = Inventory::from_entries(next.entries.into_iter().chain(kept));
    if inventory != intent {
        store.save(&inventory).await?;
    }
    Ok(Report {
        applied,
        pruned,
        inventory,
        guarded,
        unreadable,
    })
}
