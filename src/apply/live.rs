//! Reading the live objects a stage will compare against: one LIST per kind and namespace where
//! several objects of the set share them, so a reconcile of many objects reads in a few requests
//! instead of one GET each, and one GET otherwise. Reads only.

use std::collections::{BTreeMap, HashMap};

use kube::api::ListParams;
use serde_json::Value;

use super::applier::{Applier, ApplyError};
use super::desired::Desired;

/// From this many objects of one kind in one namespace on, a LIST replaces their GETs.
const LIST_FROM: usize = 4;

impl Applier {
    /// The live objects of `indices` that share a kind and namespace with enough others to be
    /// listed, by index (`None`: not there). Objects missing from the map are read one by one.
    pub(super) async fn list_live(
        &self,
        desired: &[Desired],
        indices: &[usize],
    ) -> Result<HashMap<usize, Option<Value>>, ApplyError> {
        let mut groups: BTreeMap<(String, String, String, String), Vec<usize>> = BTreeMap::new();
        for &i in indices {
            let d = &desired[i];
            if let (Some(resolved), false) = (&d.resolved, d.policy.never_applied()) {
                let r = &resolved.resource;
                let key = (
                    r.group.clone(),
                    r.version.clone(),
                    r.plural.clone(),
                    d.id.namespace.clone(),
                );
                groups.entry(key).or_default().push(i);
            }
        }
        let mut live = HashMap::new();
        for members in groups.values().filter(|m| m.len() >= LIST_FROM) {
            let first = &desired[members[0]];
            let api = self.api(first);
            let list =
                api.list(&ListParams::default())
                    .await
                    .map_err(|source| ApplyError::Read {
                        id: first.id.clone(),
                        source: Box::new(source),
                    })?;
            // Items of a list carry no apiVersion and kind; a GET's object does.
            let resource = &first
                .resolved
                .as_ref()
                .expect("grouped objects are resolved")
                .resource;
            let by_name_entry = |o: kube::api::DynamicObject| {
                let name = o.metadata.name.clone()?;
                let mut value = serde_json::to_value(o).ok()?;
                value["apiVersion"] = Value::from(resource.api_version.as_str());
                value["kind"] = Value::from(resource.kind.as_str());
                Some((name, value))
            };
            let mut by_name: HashMap<String, Value> =
                list.items.into_iter().filter_map(by_name_entry).collect();
            for &i in members {
                live.insert(i, by_name.remove(&desired[i].id.name));
            }
        }
        Ok(live)
    }

    /// The live state of one object, read by itself.
    pub(super) async fn read_live(&self, d: &Desired) -> Result<Option<Value>, ApplyError> {
        let found = self
            .api(d)
            .get_opt(&d.id.name)
            .await
            .map_err(|source| ApplyError::Read {
                id: d.id.clone(),
                source: Box::new(source),
            })?;
        Ok(found.map(|o| serde_json::to_value(o).expect("objects serialize")))
    }
}
