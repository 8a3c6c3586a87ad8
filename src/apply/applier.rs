//! Server-side apply of a set of objects: decide every object the API server can validate before
//! the first write (settled from what was read when the live object already holds the manifest,
//! validated with a dry run otherwise), then apply in stages (definitions, classes, the rest),
//! concurrently within a stage, writing only objects whose dry-run result differs from the live
//! object. Does I/O (the API server); the decisions come from `plan`, `unchanged` and `order`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, stream};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;
use serde_json::value::RawValue;

use super::changeset::{Action, ChangeSet};
use super::desired::{Desired, Verdict, Yielded};
use super::discovery::{Discovery, DiscoveryError};
use super::handoff::HandoffRef;
use super::inventory::ObjectId;
use super::live::Keep;
use super::manifest::Manifest;
use super::order::{Stage, rank_of, stage_of};
use super::plan;
use super::validate::DryRun;
use crate::runtime::crash;
use crate::runtime::metrics::count_apply;

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
    /// Another controller of the process to yield fields to and tell about applies (the canary
    /// analyzer).
    pub handoff: Option<HandoffRef>,
    /// The source revision being applied (`main@sha1:<sha>`), told to the hand-off.
    pub revision: Option<String>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            force: false,
            owner: None,
            crd_timeout: Duration::from_secs(60),
            concurrency: 8,
            handoff: None,
            revision: None,
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

/// What applying one object did, with a reason for skips.
type Outcome = Result<(Action, Option<String>), ApplyError>;

pub struct Applier {
    pub(super) client: Client,
    pub(super) discovery: Arc<Discovery>,
}

impl Applier {
    /// An applier with a discovery cache of its own.
    pub fn new(client: Client) -> Applier {
        Applier::with_discovery(client.clone(), Arc::new(Discovery::new(client)))
    }

    /// An applier that shares a discovery cache kept across reconciles (the agent's): the kinds an
    /// API server serves don't depend on who asks, and unknown kinds refresh the cache anyway.
    pub fn with_discovery(client: Client, discovery: Arc<Discovery>) -> Applier {
        Applier { client, discovery }
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
        // Everything the API server can validate now is decided (settled from what was read, or
        // validated with a dry run) before the first write. The rest (kinds from CRDs and
        // namespaces created by this very set) is decided at its stage, before that stage writes
        // anything.
        let mut desired = self
            .decided_up_front(objects, options)
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
                .filter(|&i| desired[i].verdict.is_none())
                .collect();
            let mut live = self
                .read_live_set(&desired, &pending, Keep::Verdicts)
                .await
                .map_err(|e| fail(&changeset, e))?;
            self.decide(&mut desired, &pending, &mut live, options)
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

    /// Writes one decided object, if its verdict asks for a write, and tells the hand-off (if
    /// any) what was applied.
    async fn apply_one(&self, d: &Desired, options: &ApplyOptions) -> Outcome {
        let handoff = options.handoff.as_ref();
        let (mut action, exists, fresh, takeover, yielded) = match d.verdict.clone() {
            Some(Verdict::Settled(action, message)) => {
                if let (Action::Unchanged, Some(handoff)) = (action, handoff) {
                    handoff.handed(&d.id, &d.object.value(), None, options.revision.as_deref());
                }
                return Ok((action, message));
            }
            Some(Verdict::Validated {
                action,
                exists,
                fresh,
                takeover,
                yielded,
            }) => (action, exists, fresh, takeover, yielded),
            None => unreachable!("every object is decided before its stage writes"),
        };
        let api = self.api(d);
        let params = plan::apply_params();
        if d.recreate && exists {
            self.delete_and_wait(&api, d, options).await?;
            count_apply(
                "apply",
                api.patch(&d.id.name, &params, &Patch::Apply(d.object.raw()))
                    .await,
            )
            .map_err(|source| ApplyError::Apply {
                id: d.id.clone(),
                source: Box::new(source),
            })?;
            return Ok((
                Action::Configured,
                Some("recreated: immutable fields changed".into()),
            ));
        }
        // Fields an autoscaler or the analyzer owns stay theirs: the manifest without them.
        let object: &RawValue = match &yielded {
            Some(yielded) => yielded.object.raw(),
            None => d.object.raw(),
        };
        if !fresh {
            // Someone (a controller adding an annotation, say) changed the object between our
            // read and the dry run: compare a fresh dry run with a fresh read.
            action = self.redecide(d, object).await?;
        }
        let mut took_over = false;
        if let Some((fields, version)) = takeover {
            let patch = serde_json::json!([
                { "op": "test", "path": "/metadata/resourceVersion", "value": version },
                { "op": "replace", "path": "/metadata/managedFields", "value": fields },
            ]);
            let patch: json_patch::Patch =
                serde_json::from_value(patch).expect("a valid JSON patch");
            count_apply(
                "takeover",
                api.patch(
                    &d.id.name,
                    &PatchParams::default(),
                    &Patch::<()>::Json(patch),
                )
                .await,
            )
            .map_err(|source| ApplyError::Takeover {
                id: d.id.clone(),
                source: Box::new(source),
            })?;
            took_over = true;
        }
        if action == Action::Unchanged && !took_over {
            if let Some(handoff) = handoff {
                handoff.handed(&d.id, &d.object.value(), None, options.revision.as_deref());
            }
            return Ok((Action::Unchanged, None));
        }
        let written = count_apply(
            "apply",
            api.patch(&d.id.name, &params, &Patch::Apply(object)).await,
        )
        .map_err(|source| ApplyError::Apply {
            id: d.id.clone(),
            source: Box::new(source),
        })?;
        if let Some(handoff) = handoff {
            let written = serde_json::to_value(written).expect("objects serialize");
            handoff.handed(
                &d.id,
                &d.object.value(),
                Some(&written),
                options.revision.as_deref(),
            );
        }
        let left = yielded.map(|y| format!("left {} to their owner", y.fields.join(", ")));
        Ok(match action {
            Action::Unchanged => (
                Action::Configured,
                Some("took over fields edited with kubectl".into()),
            ),
            action => (action, left),
        })
    }

    /// The action of a dry run of `object` (`d`'s manifest, perhaps without yielded fields)
    /// made now against the object as it is now.
    async fn redecide(&self, d: &Desired, object: &RawValue) -> Result<Action, ApplyError> {
        let live = self.read_live(d).await?;
        match self.dry_run_of(d, object).await {
            DryRun::Accepted(merged) => Ok(plan::decide(&merged, live.as_ref())),
            DryRun::Immutable(reason) | DryRun::Rejected(reason) => {
                Err(ApplyError::Rejected(vec![Rejection {
                    id: d.id.clone(),
                    reason,
                }]))
            }
        }
    }

    /// The fields of `live` that an autoscaler (through the `scale` subresource) or the
    /// controller the hand-off names owns at another value, and the manifest without them;
    /// `None` when there are none.
    pub(super) fn yielding(
        &self,
        d: &Desired,
        live: &Value,
        options: &ApplyOptions,
    ) -> Option<Yielded> {
        let mut object = d.object.value();
        let other = options
            .handoff
            .as_ref()
            .and_then(|handoff| handoff.yields_to(&d.id));
        let fields = plan::yield_fields(&mut object, live, |entry| {
            plan::is_autoscaler(entry)
                || other.is_some_and(|manager| {
                    entry.get("manager").and_then(Value::as_str) == Some(manager)
                })
        });
        (!fields.is_empty()).then(|| Yielded {
            object: Manifest::new(&object),
            fields,
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
        count_apply(
            "delete",
            api.delete(&d.id.name, &DeleteParams::foreground()).await,
        )
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

    pub(super) fn api(&self, d: &Desired) -> Api<DynamicObject> {
        let resolved = d.resolved.as_ref().expect("resolved before use");
        resolved.api(self.client.clone(), &d.id.namespace)
    }
}
