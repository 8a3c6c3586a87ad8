//! Server-side apply of a set of objects: validate everything the API server can validate with a
//! dry run before the first write, then apply in stages (definitions, classes, the rest),
//! concurrently within a stage, writing only objects whose dry-run result differs from the live
//! object. Does I/O (the API server); the decisions come from `plan` and `order`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

use super::changeset::{Action, ChangeSet};
use super::discovery::{Discovery, DiscoveryError, Resolved};
use super::inventory::{Inventory, InventoryEntry, ObjectId};
use super::order::{Stage, rank_of, stage_of};
use super::plan::{self, FIELD_MANAGER, Policy, SsaMode};
use crate::runtime::crash;

/// Labels that mark an applied object as owned by one Kustomization (or one `sluice apply --name`).
pub const OWNER_NAME_LABEL: &str = "sluice.dev/name";
pub const OWNER_NAMESPACE_LABEL: &str = "sluice.dev/namespace";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
}

#[derive(Clone, Debug)]
pub struct ApplyOptions {
    /// Recreate objects whose immutable fields changed (also per object: `sluice.dev/force`).
    pub force: bool,
    /// Owner labels to put on every applied object.
    pub owner: Option<Owner>,
    /// How long to wait for applied CustomResourceDefinitions to become Established.
    pub crd_timeout: Duration,
    /// Requests in flight at once within a stage.
    pub concurrency: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            force: false,
            owner: None,
            crd_timeout: Duration::from_secs(60),
            concurrency: 8,
        }
    }
}

/// An object the API server refused, and its reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub id: ObjectId,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("object #{index} has no apiVersion, kind or metadata.name")]
    Malformed { index: usize },
    #[error("{id} appears twice in the set")]
    Duplicate { id: ObjectId },
    #[error("{id}: {source}")]
    Discovery {
        id: ObjectId,
        #[source]
        source: Box<DiscoveryError>,
    },
    #[error(
        "{id} is namespaced but has no namespace (set metadata.namespace or a target namespace)"
    )]
    MissingNamespace { id: ObjectId },
    #[error("the API server rejected {} object(s); nothing was applied:\n{}", .0.len(), format_rejections(.0))]
    Rejected(Vec<Rejection>),
    #[error("reading {id} failed")]
    Read {
        id: ObjectId,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("taking over kubectl's fields of {id} failed")]
    Takeover {
        id: ObjectId,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("deleting {id} to recreate it failed")]
    Recreate {
        id: ObjectId,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("applying {id} failed")]
    Apply {
        id: ObjectId,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("CustomResourceDefinitions not Established after {timeout:?}: {names:?}")]
    CrdNotEstablished {
        names: Vec<String>,
        timeout: Duration,
    },
}

fn format_rejections(rejections: &[Rejection]) -> String {
    rejections
        .iter()
        .map(|r| format!("  {}: {}", r.id, r.reason))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A failed apply: what was done before the failure, and the failure.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ApplyFailure {
    pub changeset: ChangeSet,
    #[source]
    pub error: ApplyError,
}

impl ApplyFailure {
    fn before_any_write(error: ApplyError) -> ApplyFailure {
        ApplyFailure {
            changeset: ChangeSet::default(),
            error,
        }
    }
}

/// One object to apply, with what the applier has learnt about it so far.
struct Desired {
    id: ObjectId,
    version: String,
    object: Value,
    policy: Policy,
    resolved: Option<Resolved>,
    /// The dry-run result, once validated.
    dry_run: Option<Value>,
    /// Immutable fields changed and force is allowed: delete, then create.
    recreate: bool,
}

/// What applying one object did, with a reason for skips.
type Outcome = Result<(Action, Option<String>), ApplyError>;

/// What a dry run said about one object.
enum DryRun {
    Accepted(Value),
    Immutable(String),
    Rejected(String),
}

pub struct Applier {
    client: Client,
    discovery: Discovery,
}

impl Applier {
    pub fn new(client: Client) -> Applier {
        Applier {
            discovery: Discovery::new(client.clone()),
            client,
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// Applies `objects`; on failure returns what was already done with the error.
    pub async fn apply(
        &self,
        objects: Vec<Value>,
        options: &ApplyOptions,
    ) -> Result<ChangeSet, ApplyFailure> {
        let mut desired = prepare(objects, options).map_err(ApplyFailure::before_any_write)?;
        self.resolve_known(&mut desired)
            .await
            .map_err(ApplyFailure::before_any_write)?;

        // Validate up front everything the API server can validate now: objects whose kind is
        // known and whose namespace exists. The rest (kinds from CRDs and namespaces created by
        // this very set) is validated at its stage, before that stage writes anything.
        let existing = self
            .existing_namespaces(&desired)
            .await
            .map_err(ApplyFailure::before_any_write)?;
        let ready: Vec<usize> = (0..desired.len())
            .filter(|&i| {
                let d = &desired[i];
                d.resolved
                    .as_ref()
                    .is_some_and(|r| !r.namespaced || existing.contains(&d.id.namespace))
            })
            .collect();
        self.validate(&mut desired, &ready, options)
            .await
            .map_err(ApplyFailure::before_any_write)?;

        let mut changeset = ChangeSet::default();
        let mut by_stage: BTreeMap<Stage, Vec<usize>> = BTreeMap::new();
        for (i, d) in desired.iter().enumerate() {
            by_stage
                .entry(stage_of(&d.id.group, &d.id.kind))
                .or_default()
                .push(i);
        }
        for (stage, mut indices) in by_stage {
            indices.sort_by_key(|&i| {
                (
                    rank_of(&desired[i].id.group, &desired[i].id.kind),
                    desired[i].id.clone(),
                )
            });
            let fail = |changeset: &ChangeSet, error| ApplyFailure {
                changeset: changeset.clone(),
                error,
            };
            self.resolve_deferred(&mut desired, &indices)
                .await
                .map_err(|e| fail(&changeset, e))?;
            let pending: Vec<usize> = indices
                .iter()
                .copied()
                .filter(|&i| desired[i].dry_run.is_none())
                .collect();
            self.validate(&mut desired, &pending, options)
                .await
                .map_err(|e| fail(&changeset, e))?;

            let results: Vec<(usize, Outcome)> = stream::iter(indices.iter().copied())
                .map(|i| {
                    let d = &desired[i];
                    async move { (i, self.apply_one(d, options).await) }
                })
                .buffer_unordered(options.concurrency.max(1))
                .collect()
                .await;
            let mut results: BTreeMap<usize, _> = results.into_iter().collect();
            let mut first_error = None;
            for i in &indices {
                match results.remove(i).expect("a result for every object") {
                    Ok((action, message)) => {
                        changeset.push(desired[*i].id.clone(), action, message)
                    }
                    Err(error) => {
                        changeset.push(
                            desired[*i].id.clone(),
                            Action::Failed,
                            Some(error.to_string()),
                        );
                        first_error.get_or_insert(error);
                    }
                }
            }
            if let Some(error) = first_error {
                return Err(ApplyFailure { changeset, error });
            }
            crash::point(&format!("after-stage-{stage:?}"));
            if stage == Stage::Definitions {
                let crds: Vec<&Desired> = indices
                    .iter()
                    .map(|&i| &desired[i])
                    .filter(|d| d.id.kind == "CustomResourceDefinition")
                    .collect();
                self.wait_established(&crds, options.crd_timeout)
                    .await
                    .map_err(|e| fail(&changeset, e))?;
            }
        }
        Ok(changeset)
    }

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
            }
            entries.push(InventoryEntry::new(&id, &version));
        }
        Ok(Inventory::from_entries(entries))
    }

    /// Resolves every object whose kind the API server knows; kinds that a CRD of the set defines
    /// may stay unresolved until that CRD is applied.
    async fn resolve_known(&self, desired: &mut [Desired]) -> Result<(), ApplyError> {
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

    async fn resolve_deferred(
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

    async fn existing_namespaces(
        &self,
        desired: &[Desired],
    ) -> Result<BTreeSet<String>, ApplyError> {
        let wanted: BTreeSet<&ObjectId> = desired
            .iter()
            .filter(|d| !d.id.namespace.is_empty())
            .map(|d| &d.id)
            .collect();
        let names: BTreeSet<&str> = wanted.iter().map(|id| id.namespace.as_str()).collect();
        let api: Api<Namespace> = Api::all(self.client.clone());
        let mut existing = BTreeSet::new();
        for name in names {
            let id = ObjectId {
                namespace: String::new(),
                name: name.to_string(),
                group: String::new(),
                kind: "Namespace".into(),
            };
            if api
                .get_opt(name)
                .await
                .map_err(|source| ApplyError::Read {
                    id,
                    source: Box::new(source),
                })?
                .is_some()
            {
                existing.insert(name.to_string());
            }
        }
        Ok(existing)
    }

    /// Dry-runs the given objects concurrently. Any rejection fails the whole set, naming every
    /// rejected object; immutable-field changes are allowed only where force is on.
    async fn validate(
        &self,
        desired: &mut [Desired],
        indices: &[usize],
        options: &ApplyOptions,
    ) -> Result<(), ApplyError> {
        let outcomes: Vec<(usize, DryRun)> = stream::iter(indices.iter().copied())
            .map(|i| {
                let d = &desired[i];
                async move { (i, self.dry_run(d).await) }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        let mut rejected = Vec::new();
        for (i, outcome) in outcomes {
            let d = &mut desired[i];
            match outcome {
                DryRun::Accepted(result) => d.dry_run = Some(result),
                DryRun::Immutable(_) if options.force || d.policy.force => {
                    d.recreate = true;
                    d.dry_run = Some(d.object.clone());
                }
                DryRun::Immutable(reason) => rejected.push(Rejection {
                    id: d.id.clone(),
                    reason: format!("{reason} (set force, or annotate the object sluice.dev/force: enabled, to recreate it)"),
                }),
                DryRun::Rejected(reason) => rejected.push(Rejection { id: d.id.clone(), reason }),
            }
        }
        if rejected.is_empty() {
            Ok(())
        } else {
            rejected.sort_by(|a, b| a.id.cmp(&b.id));
            Err(ApplyError::Rejected(rejected))
        }
    }

    async fn dry_run(&self, d: &Desired) -> DryRun {
        if d.policy.reconcile_disabled || d.policy.ssa == SsaMode::Ignore {
            return DryRun::Accepted(d.object.clone());
        }
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        match self
            .api(d)
            .patch(&d.id.name, &params, &Patch::Apply(&d.object))
            .await
        {
            Ok(result) => {
                DryRun::Accepted(serde_json::to_value(result).expect("objects serialize"))
            }
            Err(kube::Error::Api(status)) => {
                let fields: Vec<&str> = status
                    .details
                    .iter()
                    .flat_map(|d| d.causes.iter())
                    .filter(|c| c.message.contains("immutable"))
                    .map(|c| c.field.as_str())
                    .collect();
                if status.code == 422
                    && (status.message.contains("immutable") || !fields.is_empty())
                {
                    DryRun::Immutable(format!(
                        "immutable field(s) {} changed: {}",
                        fields.join(", "),
                        status.message
                    ))
                } else {
                    DryRun::Rejected(status.message.clone())
                }
            }
            Err(other) => DryRun::Rejected(other.to_string()),
        }
    }

    async fn apply_one(
        &self,
        d: &Desired,
        options: &ApplyOptions,
    ) -> Result<(Action, Option<String>), ApplyError> {
        if d.policy.reconcile_disabled {
            return Ok((
                Action::Skipped,
                Some("reconcile disabled by annotation".into()),
            ));
        }
        if d.policy.ssa == SsaMode::Ignore {
            return Ok((Action::Skipped, Some("ssa: Ignore".into())));
        }
        let api = self.api(d);
        let live = api
            .get_opt(&d.id.name)
            .await
            .map_err(|source| ApplyError::Read {
                id: d.id.clone(),
                source: Box::new(source),
            })?
            .map(|o| serde_json::to_value(o).expect("objects serialize"));
        if d.policy.ssa == SsaMode::IfNotPresent && live.is_some() {
            return Ok((Action::Skipped, Some("exists; ssa: IfNotPresent".into())));
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        if d.recreate && live.is_some() {
            self.delete_and_wait(&api, d, options).await?;
            api.patch(&d.id.name, &params, &Patch::Apply(&d.object))
                .await
                .map_err(|source| ApplyError::Apply {
                    id: d.id.clone(),
                    source: Box::new(source),
                })?;
            return Ok((
                Action::Configured,
                Some("recreated: immutable fields changed".into()),
            ));
        }
        let mut took_over = false;
        if d.policy.ssa == SsaMode::Override
            && let Some(live) = &live
        {
            let managed = live
                .pointer("/metadata/managedFields")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(fields) = plan::takeover(&managed) {
                let patch = serde_json::json!([
                    { "op": "test", "path": "/metadata/resourceVersion", "value": live.pointer("/metadata/resourceVersion") },
                    { "op": "replace", "path": "/metadata/managedFields", "value": fields },
                ]);
                let patch: json_patch::Patch =
                    serde_json::from_value(patch).expect("a valid JSON patch");
                api.patch(
                    &d.id.name,
                    &PatchParams::default(),
                    &Patch::<()>::Json(patch),
                )
                .await
                .map_err(|source| ApplyError::Takeover {
                    id: d.id.clone(),
                    source: Box::new(source),
                })?;
                took_over = true;
            }
        }
        let dry_run = d.dry_run.as_ref().expect("validated before apply");
        let action = plan::decide(dry_run, live.as_ref());
        if action == Action::Unchanged && !took_over {
            return Ok((Action::Unchanged, None));
        }
        api.patch(&d.id.name, &params, &Patch::Apply(&d.object))
            .await
            .map_err(|source| ApplyError::Apply {
                id: d.id.clone(),
                source: Box::new(source),
            })?;
        Ok(match action {
            Action::Unchanged => (
                Action::Configured,
                Some("took over fields edited with kubectl".into()),
            ),
            action => (action, None),
        })
    }

    async fn delete_and_wait(
        &self,
        api: &Api<DynamicObject>,
        d: &Desired,
        options: &ApplyOptions,
    ) -> Result<(), ApplyError> {
        let recreate = |source| ApplyError::Recreate {
            id: d.id.clone(),
            source: Box::new(source),
        };
        api.delete(&d.id.name, &DeleteParams::foreground())
            .await
            .map_err(recreate)?;
        let deadline = tokio::time::Instant::now() + options.crd_timeout;
        while api.get_opt(&d.id.name).await.map_err(recreate)?.is_some() {
            if tokio::time::Instant::now() >= deadline {
                return Err(recreate(kube::Error::Api(
                    kube::core::Status::failure(
                        "the old object was not deleted in time",
                        "Timeout",
                    )
                    .boxed(),
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    async fn wait_established(
        &self,
        crds: &[&Desired],
        timeout: Duration,
    ) -> Result<(), ApplyError> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut waiting = Vec::new();
            for d in crds {
                let crd = api
                    .get_opt(&d.id.name)
                    .await
                    .map_err(|source| ApplyError::Read {
                        id: d.id.clone(),
                        source: Box::new(source),
                    })?;
                let established = crd
                    .and_then(|c| c.status)
                    .and_then(|s| s.conditions)
                    .is_some_and(|conditions| {
                        conditions
                            .iter()
                            .any(|c| c.type_ == "Established" && c.status == "True")
                    });
                if !established {
                    waiting.push(d.id.name.clone());
                }
            }
            if waiting.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApplyError::CrdNotEstablished {
                    names: waiting,
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn api(&self, d: &Desired) -> Api<DynamicObject> {
        let resolved = d.resolved.as_ref().expect("resolved before use");
        if resolved.namespaced {
            Api::namespaced_with(self.client.clone(), &d.id.namespace, &resolved.resource)
        } else {
            Api::all_with(self.client.clone(), &resolved.resource)
        }
    }
}

/// Reads identities and policies, rejects duplicates and puts the owner labels on.
fn prepare(objects: Vec<Value>, options: &ApplyOptions) -> Result<Vec<Desired>, ApplyError> {
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
fn set_resolved(d: &mut Desired, resolved: Resolved) -> Result<(), ApplyError> {
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
fn crd_defines(object: &Value) -> Option<((String, String), bool)> {
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
