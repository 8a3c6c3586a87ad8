//! What the applier knows about each object of a set: identity, policy, resolved resource and
//! scope, and whether its namespace exists. Reads discovery and namespaces; writes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use serde_json::Value;

use super::applier::{Applier, ApplyError, ApplyOptions, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL};
use super::discovery::{DiscoveryError, Resolved};
use super::inventory::{Inventory, InventoryEntry, ObjectId};
use super::plan::Policy;

/// One object to apply, with what the applier has learnt about it so far.
pub(super) struct Desired {
    pub(super) id: ObjectId,
    pub(super) version: String,
    pub(super) object: Value,
    pub(super) policy: Policy,
    pub(super) resolved: Option<Resolved>,
    /// The dry-run result, once validated.
    pub(super) dry_run: Option<Value>,
    /// Immutable fields changed and force is allowed: delete, then create.
    pub(super) recreate: bool,
}

impl Applier {
    /// The inventory `objects` will have once applied: their identities, with the namespace of
    /// cluster-scoped objects dropped as the API server drops it.
    pub async fn inventory_of(&self, objects: &[Value]) -> Result<Inventory, ApplyError> {
        let defined: HashMap<(String, String), bool> =
            objects.iter().filter_map(crd_defines).collect();
        let mut entries = Vec::with_capacity(objects.len());
        for (index, object) in objects.iter().enumerate() {
            let (mut id, version) = ObjectId::of(object).ok_or(ApplyError::Malformed { index })?;
            let namespaced = match self.discovery.resolve(&id.group, &version, &id.kind).await {
                Ok(resolved) => resolved.namespaced,
                Err(source) => match defined.get(&(id.group.clone(), id.kind.clone())) {
                    Some(namespaced) => *namespaced,
                    None => {
                        return Err(ApplyError::Discovery {
                            id,
                            source: Box::new(source),
                        });
                    }
                },
            };
            if !namespaced {
                id.namespace.clear();
            } else if id.namespace.is_empty() {
                return Err(ApplyError::MissingNamespace { id });
            }
            entries.push(InventoryEntry::new(&id, &version));
        }
        Ok(Inventory::from_entries(entries))
    }

    /// Resolves every object whose kind the API server knows; kinds that a CRD of the set defines
    /// may stay unresolved until that CRD is applied.
    pub(super) async fn resolve_known(&self, desired: &mut [Desired]) -> Result<(), ApplyError> {
        let defined: HashMap<(String, String), bool> = desired
            .iter()
            .filter_map(|d| crd_defines(&d.object))
            .collect();
        for d in desired.iter_mut() {
            match self
                .discovery
                .resolve(&d.id.group, &d.version, &d.id.kind)
                .await
            {
                Ok(resolved) => set_resolved(d, resolved)?,
                Err(DiscoveryError::UnknownKind { .. })
                    if defined.contains_key(&(d.id.group.clone(), d.id.kind.clone())) => {}
                Err(source) => {
                    return Err(ApplyError::Discovery {
                        id: d.id.clone(),
                        source: Box::new(source),
                    });
                }
            }
        }
        Ok(())
    }

    pub(super) async fn resolve_deferred(
        &self,
        desired: &mut [Desired],
        indices: &[usize],
    ) -> Result<(), ApplyError> {
        for &i in indices {
            let d = &mut desired[i];
            if d.resolved.is_none() {
                self.discovery.forget(&d.id.group, &d.version);
                match self
                    .discovery
                    .resolve(&d.id.group, &d.version, &d.id.kind)
                    .await
                {
                    Ok(resolved) => set_resolved(d, resolved)?,
                    Err(source) => {
                        return Err(ApplyError::Discovery {
                            id: d.id.clone(),
                            source: Box::new(source),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The namespaces of `desired` that exist. A namespace the caller may not read (a tenant's
    /// service account rarely can) counts as existing: the dry run will say if it is not.
    pub(super) async fn existing_namespaces(
        &self,
        desired: &[Desired],
    ) -> Result<BTreeSet<String>, ApplyError> {
        let names: BTreeSet<&str> = desired
            .iter()
            .map(|d| d.id.namespace.as_str())
            .filter(|ns| !ns.is_empty())
            .collect();
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut existing = BTreeSet::new();
        for name in names {
            let found = match api.get_opt(name).await {
                Ok(found) => found.is_some(),
                Err(kube::Error::Api(status)) if status.code == 403 => true,
                Err(source) => {
                    let id = ObjectId {
                        namespace: String::new(),
                        name: name.to_string(),
                        group: String::new(),
                        kind: "Namespace".into(),
                    };
                    return Err(ApplyError::Read {
                        id,
                        source: Box::new(source),
                    });
                }
            };
            if found {
                existing.insert(name.to_string());
            }
        }
        Ok(existing)
    }
}

/// The objects a dry run can validate now: kind known, and namespace existing (or none needed).
pub(super) fn validatable(desired: &[Desired], existing: &BTreeSet<String>) -> Vec<usize> {
    (0..desired.len())
        .filter(|&i| {
            let d = &desired[i];
            d.resolved
                .as_ref()
                .is_some_and(|r| !r.namespaced || existing.contains(&d.id.namespace))
        })
        .collect()
}

/// Reads identities and policies, rejects duplicates and puts the owner labels on.
pub(super) fn prepare(
    objects: Vec<Value>,
    options: &ApplyOptions,
) -> Result<Vec<Desired>, ApplyError> {
    let mut seen = HashSet::new();
    let mut desired = Vec::with_capacity(objects.len());
    for (index, mut object) in objects.into_iter().enumerate() {
        let (id, version) = ObjectId::of(&object).ok_or(ApplyError::Malformed { index })?;
        if !seen.insert(id.clone()) {
            return Err(ApplyError::Duplicate { id });
        }
        if let Some(owner) = &options.owner {
            let labels = &mut object["metadata"]["labels"];
            if !labels.is_object() {
                *labels = Value::Object(Default::default());
            }
            labels[OWNER_NAME_LABEL] = Value::from(owner.name.as_str());
            labels[OWNER_NAMESPACE_LABEL] = Value::from(owner.namespace.as_str());
        }
        let policy = Policy::of(&object);
        desired.push(Desired {
            id,
            version,
            object,
            policy,
            resolved: None,
            dry_run: None,
            recreate: false,
        });
    }
    Ok(desired)
}

/// Records the scope; a cluster-scoped object loses a stray namespace, a namespaced one must have one.
pub(super) fn set_resolved(d: &mut Desired, resolved: Resolved) -> Result<(), ApplyError> {
    if resolved.namespaced && d.id.namespace.is_empty() {
        return Err(ApplyError::MissingNamespace { id: d.id.clone() });
    }
    if !resolved.namespaced && !d.id.namespace.is_empty() {
        d.id.namespace.clear();
        if let Some(metadata) = d.object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("namespace");
        }
    }
    d.resolved = Some(resolved);
    Ok(())
}

/// The (group, kind) a CustomResourceDefinition manifest defines, and whether it is namespaced.
pub(super) fn crd_defines(object: &Value) -> Option<((String, String), bool)> {
    if object.get("kind")?.as_str()? != "CustomResourceDefinition" {
        return None;
    }
    let spec = object.get("spec")?;
    let key = (
        spec.get("group")?.as_str()?.to_string(),
        spec.pointer("/names/kind")?.as_str()?.to_string(),
    );
    Some((
        key,
        spec.get("scope").and_then(Value::as_str) != Some("Cluster"),
    ))
}
