//! Deciding what applying each object will do before anything is written: objects whose live
//! state already holds the manifest are settled from what was read (`unchanged`), the rest are
//! validated with server-side dry runs, and `sluice diff` previews the same decisions. Writes
//! nothing.

use futures::{StreamExt, stream};
use kube::api::Patch;
use serde_json::Value;
use serde_json::value::RawValue;

use super::applier::{Applier, ApplyError, ApplyOptions, Rejection};
use super::changeset::Action;
use super::desired::{Desired, Verdict, Yielded, namespaces_not_found, prepare, validatable};
use super::inventory::ObjectId;
use super::live::{Keep, Live, LiveSet};
use super::order::rank_of;
use super::plan::{self, SsaMode};
use super::unchanged;

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

/// What validating one object gave: its verdict and whether to recreate it, or its rejection.
type Checked = Result<(Verdict, bool), Rejection>;

/// The verdict that needs no dry run, if any: objects never applied, `IfNotPresent` objects that
/// exist, and objects whose live state already holds the manifest.
pub(super) fn settle(d: &Desired, live: Option<&Value>) -> Option<Verdict> {
    if d.policy.reconcile_disabled {
        return Some(Verdict::Settled(
            Action::Skipped,
            Some("reconcile disabled by annotation".into()),
        ));
    }
    if d.policy.ssa == SsaMode::Ignore {
        return Some(Verdict::Settled(
            Action::Skipped,
            Some("ssa: Ignore".into()),
        ));
    }
    let live = live?;
    if d.policy.ssa == SsaMode::IfNotPresent {
        return Some(Verdict::Settled(
            Action::Skipped,
            Some("exists; ssa: IfNotPresent".into()),
        ));
    }
    if !d.recreate && unchanged::unchanged(&d.object.value(), &d.digest, live, d.policy.ssa) {
        return Some(Verdict::Settled(Action::Unchanged, None));
    }
    None
}

/// The verdict of a dry run (of the manifest, or of `yielded`'s object) accepted for an object
/// whose live state is `live`.
fn validated(
    d: &Desired,
    dry_run: &Value,
    live: Option<&Value>,
    yielded: Option<Yielded>,
) -> Verdict {
    let version = |v: &Value| v.pointer("/metadata/resourceVersion").cloned();
    let takeover = match live {
        Some(live) if d.policy.ssa == SsaMode::Override => {
            let managed = live
                .pointer("/metadata/managedFields")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default();
            plan::takeover(managed).map(|fields| (fields, version(live).unwrap_or(Value::Null)))
        }
        _ => None,
    };
    Verdict::Validated {
        action: plan::decide(dry_run, live),
        exists: live.is_some(),
        fresh: live.is_none_or(|live| version(live) == version(dry_run)),
        takeover,
        yielded,
    }
}

impl Applier {
    /// Settles what needs no dry run and dry-runs the rest of `indices` concurrently, comparing
    /// each result with the object's state in `live` (read with `Keep::Verdicts`; entries are
    /// consumed). Any rejection fails
    /// the whole set, naming every rejected object; immutable-field changes are allowed only where
    /// force is on.
    pub(super) async fn decide(
        &self,
        desired: &mut [Desired],
        indices: &[usize],
        live: &mut LiveSet,
        options: &ApplyOptions,
    ) -> Result<(), ApplyError> {
        let mut to_validate = Vec::new();
        for &i in indices {
            let settled = match live.remove(&i).unwrap_or(Live::Absent) {
                Live::Settled(verdict) => Ok(verdict),
                // Read with `Keep::Verdicts`: an object kept was not settled by what was read.
                found @ Live::Found(_) => Err(found),
                Live::Absent => settle(&desired[i], None).ok_or(Live::Absent),
            };
            match settled {
                Ok(verdict) => desired[i].verdict = Some(verdict),
                Err(read) => {
                    live.insert(i, read);
                    to_validate.push(i);
                }
            }
        }
        // Each dry run's result is reduced to its verdict as soon as it arrives, so a large set
        // never holds more than `concurrency` results at once. Fields an autoscaler or the
        // hand-off's controller owns are left out of what is validated and applied.
        let jobs: Vec<(usize, Option<Value>)> = to_validate
            .into_iter()
            .map(|i| (i, live.remove(&i).and_then(Live::into_value)))
            .collect();
        let outcomes: Vec<(usize, Checked)> = stream::iter(jobs)
            .map(|(i, found)| {
                let d = &desired[i];
                async move {
                    let yielded = found.as_ref().and_then(|l| self.yielding(d, l, options));
                    let dry_run = match &yielded {
                        Some(yielded) => self.dry_run_of(d, yielded.object.raw()).await,
                        None => self.dry_run(d).await,
                    };
                    let outcome = match dry_run {
                        DryRun::Accepted(result) => {
                            Ok((validated(d, &result, found.as_ref(), yielded), false))
                        }
                        DryRun::Immutable(_) if options.force || d.policy.force => {
                            let verdict = Verdict::Validated {
                                action: Action::Configured,
                                exists: found.is_some(),
                                fresh: true,
                                takeover: None,
                                yielded: None,
                            };
                            Ok((verdict, true))
                        }
                        DryRun::Immutable(reason) => Err(Rejection {
                            id: d.id.clone(),
                            reason: format!("{reason} (set force, or annotate the object sluice.dev/force: enabled, to recreate it)"),
                        }),
                        DryRun::Rejected(reason) => Err(Rejection {
                            id: d.id.clone(),
                            reason,
                        }),
                    };
                    (i, outcome)
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        let mut rejected = Vec::new();
        for (i, outcome) in outcomes {
            match outcome {
                Ok((verdict, recreate)) => {
                    desired[i].verdict = Some(verdict);
                    desired[i].recreate |= recreate;
                }
                Err(rejection) => rejected.push(rejection),
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
        self.dry_run_of(d, d.object.raw()).await
    }

    /// A dry run of `object` in place of `d`'s manifest.
    pub(super) async fn dry_run_of(&self, d: &Desired, object: &RawValue) -> DryRun {
        if d.policy.never_applied() {
            return DryRun::Accepted(
                serde_json::from_str(object.get()).expect("manifests are JSON"),
            );
        }
        let params = plan::apply_params().dry_run();
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
                    DryRun::Rejected(plan::refusal(&status.message).to_string())
                }
            }
            Err(other) => DryRun::Rejected(other.to_string()),
        }
    }

    /// Reads identities and policies, resolves kinds, reads the live objects and decides every
    /// object the API server can validate now (kind known, namespace existing): the start of
    /// `apply`. Cluster-scoped objects are read first, so that namespaces of the set need no read
    /// of their own.
    pub(super) async fn decided_up_front(
        &self,
        objects: Vec<Value>,
        options: &ApplyOptions,
    ) -> Result<Vec<Desired>, ApplyError> {
        let mut desired = prepare(objects, options)?;
        self.resolve_known(&mut desired).await?;
        let (cluster, namespaced): (Vec<usize>, Vec<usize>) = (0..desired.len())
            .filter(|&i| desired[i].resolved.is_some())
            .partition(|&i| desired[i].id.namespace.is_empty());
        let mut live = self
            .read_live_set(&desired, &cluster, Keep::Verdicts)
            .await?;
        // Objects in namespaces the set creates are not read: they cannot exist yet. The others
        // are, and any object found proves its namespace exists without asking for it.
        let created = namespaces_not_found(&desired, &live);
        let readable: Vec<usize> = namespaced
            .into_iter()
            .filter(|&i| !created.contains(desired[i].id.namespace.as_str()))
            .collect();
        live.extend(
            self.read_live_set(&desired, &readable, Keep::Verdicts)
                .await?,
        );
        let existing = self.existing_namespaces(&desired, &live).await?;
        let ready = validatable(&desired, &existing);
        self.decide(&mut desired, &ready, &mut live, options)
            .await?;
        Ok(desired)
    }

    /// What `apply` would do with `objects`, in apply order, writing nothing. Fails like `apply`
    /// when the API server rejects an object.
    pub async fn preview(
        &self,
        objects: Vec<Value>,
        options: &ApplyOptions,
    ) -> Result<Vec<Preview>, ApplyError> {
        let mut desired = prepare(objects, options)?;
        self.resolve_known(&mut desired).await?;
        desired.sort_by_key(|d| (rank_of(&d.id.group, &d.id.kind), d.id.clone()));
        let all: Vec<usize> = (0..desired.len()).collect();
        let mut live = self.read_live_set(&desired, &all, Keep::Objects).await?;
        let existing = self.existing_namespaces(&desired, &live).await?;
        let ready = validatable(&desired, &existing);
        let mut previews = Vec::with_capacity(desired.len());
        let mut rejected = Vec::new();
        for (i, d) in desired.iter().enumerate() {
            let live = live.remove(&i).and_then(Live::into_value);
            let (action, merged) = match settle(d, live.as_ref()) {
                Some(Verdict::Settled(action, _)) => (action, d.object.value()),
                _ if !ready.contains(&i) => (Action::Created, d.object.value()),
                _ => match self.dry_run(d).await {
                    DryRun::Accepted(merged) => (plan::decide(&merged, live.as_ref()), merged),
                    DryRun::Immutable(_) if options.force || d.policy.force => {
                        (Action::Configured, d.object.value())
                    }
                    DryRun::Immutable(reason) | DryRun::Rejected(reason) => {
                        rejected.push(Rejection {
                            id: d.id.clone(),
                            reason,
                        });
                        continue;
                    }
                },
            };
            previews.push(Preview {
                id: d.id.clone(),
                action,
                live,
                merged,
            });
        }
        if !rejected.is_empty() {
            return Err(ApplyError::Rejected(rejected));
        }
        Ok(previews)
    }
}
