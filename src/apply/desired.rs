//! What the applier knows about each object of a set: identity, policy, resolved resource and
//! scope, and whether its namespace exists. Reads discovery and namespaces; writes nothing.

use std::collections::{BTreeSet, HashMap, HashSet};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use serde_json::Value;

use super::applier::{Applier, ApplyError, ApplyOptions, OWNER_NAME_LABEL, OWNER_NAMESPACE_LABEL};
use super::changeset::Action;
use super::discovery::{DiscoveryError, Resolved};
use super::inventory::{Inventory, InventoryEntry, ObjectId};
use super::live::LiveSet;
use super::manifest::Manifest;
use super::plan::Policy;
use super::unchanged;

/// One object to apply, with what the applier has learnt about it so far.
pub(super) struct Desired {
    pub(super) id: ObjectId,
    pub(super) version: String,
    /// The manifest as it is applied: owner labels and digest on.
    pub(super) object: Manifest,
    /// The digest stamped on `object` (see `unchanged`).
    pub(super) digest: String,
    pub(super) policy: Policy,
    pub(super) resolved: Option<Resolved>,
    /// What reading (and, where needed, a dry run) decided; `None` until then.
    pub(super) verdict: Option<Verdict>,
    /// Immutable fields changed and force is allowed: delete, then create.
    pub(super) recreate: bool,
}

/// What the applier decided for one object before writing anything. Only what the write needs
/// is kept (not the live object or the dry-run result), so memory stays small on large sets.
#[derive(Clone, Debug)]
pub(super) enum Verdict {
    /// Nothing to write: the action (`Unchanged`, `Skipped`) and why.
    Settled(Action, Option<String>),
    /// Validated by a dry run: what applying will do, and what it needs.
    Validated {
        action: Action,
        /// The object exists.
        exists: bool,
        /// The dry run saw the object as it was read; otherwise it changed in between, and the
        /// write looks again.
        fresh: bool,
        /// kubectl's fields to take over first (`managedFields` to write, and the
        /// resourceVersion they were read at).
        takeover: Option<(Vec<Value>, Value)>,
        /// Fields left to an autoscaler or the hand-off's controller, and the manifest without
        /// them, which is what was validated and is applied.
        yielded: Option<Yielded>,
    },
}

/// The manifest without the fields another owner keeps, and which fields those are.
#[derive(Clone, Debug)]
pub(super) struct Yielded {
    pub(super) object: Manifest,
    pub(super) fields: Vec<String>,
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
            .filter(|d| d.id.kind == "CustomResourceDefinition")
            .filter_map(|d| crd_defines(&d.object.value()))
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

    /// The namespaces of `desired` that exist. Namespaces of the set already read (in `live`)
    /// are not read again, nor are namespaces holding an object found live. A namespace the
    /// caller may not read (a tenant's service account rarely can) counts as existing: the dry
    /// run will say if it is not.
    pub(super) async fn existing_namespaces(
        &self,
        desired: &[Desired],
        live: &LiveSet,
    ) -> Result<BTreeSet<String>, ApplyError> {
        let mut known: HashMap<&str, bool> = HashMap::new();
        for (i, found) in live {
            let d = &desired[*i];
            if d.id.group.is_empty() && d.id.kind == "Namespace" {
                known.insert(d.id.name.as_str(), found.exists());
            }
        }
        // An object found live proves its namespace exists: no need to ask.
        for (i, found) in live {
            let ns = desired[*i].id.namespace.as_str();
            if found.exists() && !ns.is_empty() {
                known.insert(ns, true);
            }
        }
        let names: BTreeSet<&str> = desired
            .iter()
            .map(|d| d.id.namespace.as_str())
            .filter(|ns| !ns.is_empty())
            .collect();
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut existing = BTreeSet::new();
        for name in names {
            if let Some(found) = known.get(name) {
                if *found {
                    existing.insert(name.to_string());
                }
                continue;
            }
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

/// The namespaces of the set that were read and not found: the apply creates them, so nothing
/// in them exists yet.
pub(super) fn namespaces_not_found<'a>(desired: &'a [Desired], live: &LiveSet) -> HashSet<&'a str> {
    live.iter()
        .filter(|(_, found)| !found.exists())
        .map(|(i, _)| &desired[*i].id)
        .filter(|id| id.group.is_empty() && id.kind == "Namespace")
        .map(|id| id.name.as_str())
        .collect()
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

/// Reads identities and policies, rejects duplicates, puts the owner labels on and stamps the
/// digest.
pub(super) fn prepare(
    objects: Vec<Value>,
    options: &ApplyOptions,
) -> Result<Vec<Desired>, ApplyError> {
    // Each value is dropped once its text is made. Nothing is reserved up front (while the first
    // objects are prepared every value is still held), and duplicates are found by reference
    // afterwards rather than by a copy of every identity.
    let mut desired = Vec::new();
    for (index, mut object) in objects.into_iter().enumerate() {
        let (id, version) = ObjectId::of(&object).ok_or(ApplyError::Malformed { index })?;
        if let Some(owner) = &options.owner {
            let labels = &mut object["metadata"]["labels"];
            if !labels.is_object() {
                *labels = Value::Object(Default::default());
            }
            labels[OWNER_NAME_LABEL] = Value::from(owner.name.as_str());
            labels[OWNER_NAMESPACE_LABEL] = Value::from(owner.namespace.as_str());
        }
        let policy = Policy::of(&object);
        let digest = unchanged::digest(&object);
        unchanged::stamp(&mut object, &digest);
        desired.push(Desired {
            id,
            version,
            object: Manifest::new(&object),
            digest,
            policy,
            resolved: None,
            verdict: None,
            recreate: false,
        });
    }
    let mut seen = HashSet::with_capacity(desired.len());
    if let Some(twice) = desired.iter().find(|d| !seen.insert(&d.id)) {
        return Err(ApplyError::Duplicate {
            id: twice.id.clone(),
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
        let mut object = d.object.value();
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("namespace");
        }
        d.object = Manifest::new(&object);
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
