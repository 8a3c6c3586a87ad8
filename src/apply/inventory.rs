//! Object identities and the inventory of what an apply owns (its types live in `api::inventory`),
//! with the set arithmetic that decides what to prune. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::api::inventory::{Inventory, InventoryEntry};

/// Identifies an object across API versions: namespace, name, API group and kind.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ObjectId {
    pub namespace: String,
    pub name: String,
    pub group: String,
    pub kind: String,
}

impl ObjectId {
    /// Reads the identity of a manifest; `None` when apiVersion, kind or metadata.name is missing.
    pub fn of(object: &Value) -> Option<(ObjectId, String)> {
        let api_version = object.get("apiVersion")?.as_str()?;
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        let metadata = object.get("metadata")?;
        let id = ObjectId {
            namespace: metadata
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            name: metadata.get("name")?.as_str()?.to_string(),
            group: group.to_string(),
            kind: object.get("kind")?.as_str()?.to_string(),
        };
        Some((id, version.to_string()))
    }

    /// The inventory spelling `<namespace>_<name>_<group>_<kind>` (empty parts stay empty).
    pub fn to_key(&self) -> String {
        format!(
            "{}_{}_{}_{}",
            self.namespace, self.name, self.group, self.kind
        )
    }

    /// Reads a key back. Namespaces (DNS labels), groups (DNS subdomains) and kinds never hold
    /// `_`, but names may (RBAC objects such as `system:controller_x`): the namespace is cut at
    /// the first `_`, kind and group at the last two, and the name is what lies between.
    pub fn parse_key(key: &str) -> Option<ObjectId> {
        let (namespace, rest) = key.split_once('_')?;
        let (rest, kind) = rest.rsplit_once('_')?;
        let (name, group) = rest.rsplit_once('_')?;
        let id = ObjectId {
            namespace: namespace.to_string(),
            name: name.to_string(),
            group: group.to_string(),
            kind: kind.to_string(),
        };
        (!id.name.is_empty() && !id.kind.is_empty()).then_some(id)
    }

    /// `Kind/namespace/name`, or `Kind/name` for cluster-scoped objects: how people read it.
    pub fn display_name(&self) -> String {
        if self.namespace.is_empty() {
            format!("{}/{}", self.kind, self.name)
        } else {
            format!("{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display_name())
    }
}

impl InventoryEntry {
    pub fn new(id: &ObjectId, version: &str) -> InventoryEntry {
        InventoryEntry {
            id: id.to_key(),
            v: version.to_string(),
        }
    }

    pub fn object_id(&self) -> Option<ObjectId> {
        ObjectId::parse_key(&self.id)
    }
}

impl Inventory {
    /// Sorted by key; of two entries with the same key the first one given wins.
    pub fn from_entries(entries: impl IntoIterator<Item = InventoryEntry>) -> Inventory {
        let mut by_key = BTreeMap::new();
        for entry in entries {
            by_key.entry(entry.id.clone()).or_insert(entry);
        }
        Inventory {
            entries: by_key.into_values().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries of `self` whose object is not in `next`: the candidates for pruning.
    pub fn stale_against(&self, next: &Inventory) -> Vec<InventoryEntry> {
        let keep: BTreeSet<&str> = next.entries.iter().map(|e| e.id.as_str()).collect();
        self.entries
            .iter()
            .filter(|e| !keep.contains(e.id.as_str()))
            .cloned()
            .collect()
    }

    /// The union, with `newer`'s versions winning: what to store while an apply is in flight, so
    /// the stored inventory always covers every object that may exist.
    pub fn union(&self, newer: &Inventory) -> Inventory {
        Inventory::from_entries(newer.entries.iter().chain(self.entries.iter()).cloned())
    }

    /// What to store after an apply failed: `self` (the intent) without the entries that were
    /// neither in `previous` nor `reached` by the apply (keys of the objects it wrote or tried
    /// to). This reconcile wrote nothing of those, so none of them exists on its account; an
    /// object it reached may exist even when its write failed, and stays. Without this an object
    /// refused before any write (one the tenant may not create) would stay in the inventory once
    /// it left the set, an entry no prune could ever clear.
    pub fn without_unreached(&self, previous: &Inventory, reached: &BTreeSet<String>) -> Inventory {
        let before: BTreeSet<&str> = previous.entries.iter().map(|e| e.id.as_str()).collect();
        Inventory::from_entries(
            self.entries
                .iter()
                .filter(|e| before.contains(e.id.as_str()) || reached.contains(&e.id))
                .cloned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn id(ns: &str, name: &str, group: &str, kind: &str) -> ObjectId {
        ObjectId {
            namespace: ns.into(),
            name: name.into(),
            group: group.into(),
            kind: kind.into(),
        }
    }

    #[test]
    fn keys_round_trip_for_namespaced_and_cluster_objects() {
        for id in [
            id("apps", "web", "apps", "Deployment"),
            id("", "apps", "", "Namespace"),
            id(
                "team",
                "system:controller_x",
                "rbac.authorization.k8s.io",
                "Role",
            ),
            id("", "__a__b__", "rbac.authorization.k8s.io", "ClusterRole"),
            id("team", "_", "", "ConfigMap"),
        ] {
            assert_eq!(
                ObjectId::parse_key(&id.to_key()),
                Some(id.clone()),
                "{id:?}"
            );
        }
        assert_eq!(id("", "apps", "", "Namespace").to_key(), "_apps__Namespace");
        assert_eq!(ObjectId::parse_key("a_b_c"), None);
        assert_eq!(ObjectId::parse_key("a__c_d"), None, "no name");
        assert_eq!(ObjectId::parse_key("a_b_c_"), None, "no kind");
    }

    #[test]
    fn identity_of_a_manifest() {
        let (id, version) =
            ObjectId::of(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "x"}}))
                .unwrap();
        assert_eq!(
            (id.to_key(), version.as_str()),
            ("x_web_apps_Deployment".to_string(), "v1")
        );
        assert!(
            ObjectId::of(&json!({"kind": "Deployment", "metadata": {"name": "web"}})).is_none()
        );
    }

    #[test]
    fn stale_entries_are_the_old_minus_the_new_whatever_the_version() {
        let old = Inventory::from_entries([
            InventoryEntry::new(&id("a", "x", "apps", "Deployment"), "v1"),
            InventoryEntry::new(&id("a", "y", "", "ConfigMap"), "v1"),
        ]);
        let new = Inventory::from_entries([InventoryEntry::new(
            &id("a", "x", "apps", "Deployment"),
            "v2",
        )]);
        let stale = old.stale_against(&new);
        assert_eq!(stale.len(), 1);
        assert_eq!(stale[0].id, "a_y__ConfigMap");
        assert!(new.stale_against(&old).is_empty());
    }

    #[test]
    fn a_failed_apply_forgets_only_new_objects_it_never_reached() {
        let entry = |name: &str| InventoryEntry::new(&id("a", name, "", "ConfigMap"), "v1");
        let previous = Inventory::from_entries([entry("old"), entry("kept")]);
        let next = Inventory::from_entries([entry("kept"), entry("tried"), entry("refused")]);
        let intent = previous.union(&next);
        let reached = BTreeSet::from(["a_tried__ConfigMap".to_string()]);
        let stored = intent.without_unreached(&previous, &reached);
        let names: Vec<&str> = stored.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            names,
            [
                "a_kept__ConfigMap",
                "a_old__ConfigMap",
                "a_tried__ConfigMap"
            ]
        );
        assert_eq!(
            intent.without_unreached(&previous, &BTreeSet::new()),
            previous,
            "refused before any write: the inventory is what it was"
        );
    }

    #[test]
    fn union_keeps_everything_and_prefers_new_versions() {
        let old = Inventory::from_entries([
            InventoryEntry::new(&id("a", "x", "g", "K"), "v1"),
            InventoryEntry::new(&id("a", "y", "g", "K"), "v1"),
        ]);
        let new = Inventory::from_entries([InventoryEntry::new(&id("a", "x", "g", "K"), "v2")]);
        let union = old.union(&new);
        assert_eq!(union.entries.len(), 2);
        assert_eq!(
            union.entries.iter().find(|e| e.id == "a_x_g_K").unwrap().v,
            "v2"
        );
    }
}
