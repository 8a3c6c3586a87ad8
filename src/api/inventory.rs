//! The inventory as the API stores it: which objects a Kustomization applied, one entry per object
//! (`<namespace>_<name>_<group>_<kind>` and the API version). Types only, no I/O; `apply::inventory`
//! reads the keys and does the set arithmetic.

use serde::{Deserialize, Serialize};

/// One owned object: its key and the API version it was applied with.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct InventoryEntry {
    pub id: String,
    pub v: String,
}

/// What an apply owns. Stored in the Kustomization's status (agent) or a ConfigMap (CLI).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Inventory {
    pub entries: Vec<InventoryEntry>,
}
