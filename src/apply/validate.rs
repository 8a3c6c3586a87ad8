//! Server-side dry runs: the validation of a whole set before anything is written, and the
//! preview `sluice diff` prints. Writes nothing.

use futures::{StreamExt, stream};
use kube::api::{Patch, PatchParams};
use serde_json::Value;

use super::applier::{Applier, ApplyError, ApplyOptions, Rejection};
use super::changeset::Action;
use super::desired::{Desired, prepare, validatable};
use super::inventory::ObjectId;
use super::order::rank_of;
use super::plan::{self, FIELD_MANAGER, SsaMode};

/// What applying one object would do: the action, the live object and the server's dry-run
/// result (the manifest itself where the server could not dry-run it yet: its namespace or kind
/// is created by the same set).
#[derive(Clone, Debug)]
pub struct Preview {
    pub id: ObjectId,
    pub action: Action,
    pub live: Option<Value>,
    pub merged: Value,
}

/// What a dry run said about one object.
pub(super) enum DryRun {
    Accepted(Value),
    Immutable(String),
    Rejected(String),
}

impl Applier {
    /// Dry-runs the given objects concurrently. Any rejection fails the whole set, naming every
    /// rejected object; immutable-field changes are allowed only where force is on.
    pub(super) async fn validate(
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

    pub(super) async fn dry_run(&self, d: &Desired) -> DryRun {
        self.dry_run_of(d, &d.object).await
    }

    /// A dry run of `object` in place of `d`'s manifest.
    async fn dry_run_of(&self, d: &Desired, object: &Value) -> DryRun {
        if d.policy.never_applied() {
            return DryRun::Accepted(object.clone());
        }
        let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
        let result = self
            .api(d)
            .patch(&d.id.name, &params, &Patch::Apply(object))
            .await;
        match crate::runtime::metrics::count_apply("dry-run", result) {
            Ok(result) => {
                DryRun::Accepted(serde_json::to_value(result).expect("objects serialize"))
            }
            Err(kube::Error::Api(status)) => {
                if status.code == 404 {
                    // The kind is gone (its CRD was deleted): a shared discovery cache must not
                    // keep offering it.
                    self.discovery.forget(&d.id.group, &d.version);
                }
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
}

impl Applier {
    /// The dry-run result to compare with `live`: the one from validation when it was made from
    /// this very version of the object, a fresh one when someone (a controller adding an
    /// annotation, say) changed the object since.
    pub(super) async fn current_dry_run(
        &self,
        d: &Desired,
        live: Option<&Value>,
    ) -> Result<Value, ApplyError> {
        let validated = d.dry_run.clone().expect("validated before apply");
        let version = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
        let Some(live) = live else {
            return Ok(validated);
        };
        if d.recreate || version(live) == version(&validated) {
            return Ok(validated);
        }
        self.fresh_dry_run(d, &d.object).await
    }

    /// A new dry run of `object` (the manifest of `d`, perhaps without yielded fields).
    pub(super) async fn fresh_dry_run(
        &self,
        d: &Desired,
        object: &Value,
    ) -> Result<Value, ApplyError> {
        match self.dry_run_of(d, object).await {
            DryRun::Accepted(fresh) => Ok(fresh),
            DryRun::Immutable(reason) | DryRun::Rejected(reason) => {
                Err(ApplyError::Rejected(vec![Rejection {
                    id: d.id.clone(),
                    reason,
                }]))
            }
        }
    }

    /// Reads identities and policies, resolves kinds, and dry-runs every object the API server
    /// can validate now (kind known, namespace existing): the start of both `apply` and `preview`.
    pub(super) async fn validated_up_front(
        &self,
        objects: Vec<Value>,
        options: &ApplyOptions,
    ) -> Result<Vec<Desired>, ApplyError> {
        let mut desired = prepare(objects, options)?;
        self.resolve_known(&mut desired).await?;
        let existing = self.existing_namespaces(&desired).await?;
        let ready = validatable(&desired, &existing);
        self.validate(&mut desired, &ready, options).await?;
        Ok(desired)
    }

    /// What `apply` would do with `objects`, in apply order, writing nothing. Fails like `apply`
    /// when the API server rejects an object.
    pub async fn preview(
        &self,
        objects: Vec<Value>,
        options: &ApplyOptions,
    ) -> Result<Vec<Preview>, ApplyError> {
        let mut desired = self.validated_up_front(objects, options).await?;
        desired.sort_by_key(|d| (rank_of(&d.id.group, &d.id.kind), d.id.clone()));
        let all: Vec<usize> = (0..desired.len()).collect();
        let mut listed = self.list_live(&desired, &all).await?;
        let mut previews = Vec::with_capacity(desired.len());
        for (i, d) in desired.into_iter().enumerate() {
            let live = match (listed.remove(&i), &d.resolved) {
                _ if d.policy.never_applied() => None,
                (Some(live), _) => live,
                (None, Some(_)) => self.read_live(&d).await?,
                (None, None) => None,
            };
            let (action, merged) = match (&d.dry_run, &live) {
                _ if d.policy.never_applied() => (Action::Skipped, d.object),
                (_, Some(_)) if d.policy.ssa == SsaMode::IfNotPresent => {
                    (Action::Skipped, d.object)
                }
                _ if d.recreate => (Action::Configured, d.object),
                (Some(_), live) => {
                    let merged = self.current_dry_run(&d, live.as_ref()).await?;
                    (plan::decide(&merged, live.as_ref()), merged)
                }
                (None, _) => (Action::Created, d.object),
            };
            previews.push(Preview {
                id: d.id,
                action,
                live,
                merged,
            });
        }
        Ok(previews)
    }
}
