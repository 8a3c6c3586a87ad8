//! The Canary controller: on a change of a Canary, of its target or primary, a hand-off from the
//! applier, or when its analysis interval comes, it reads what the analysis needs, runs the
//! state machine (asking the router, webhooks and metric providers only what the machine asks
//! for), carries out the actions, writes the status and records Events. Runs on the
//! `runtime::controller` scaffold. Talks to the API server, Prometheus and webhooks; decisions
//! come from `machine`. What the checks ask of webhooks and metric providers is in `checks`; the
//! finalizer and the revert on deletion in `finalizer`.

use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use futures::future::join_all;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, reflector::reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use super::alerts;
use super::execute::{ExecuteError, RouteMemo, Work};
use super::handoff::{CanaryHandoff, Handed};
use super::machine::{
    self, Check, CheckOutcome, Decision, HookAnswer, Manual, Need, Observed, Routes,
};
use super::metrics::prometheus::Clients;
use super::metrics::template::{self, Variables};
use super::metrics::{self, Auth, MetricProvider, ProviderConfig};
use super::objects::{self, Owner};
use super::observe;
use super::report;
use super::report::write::{Progress, Reports, Request};
use super::revision::{self, ConfigRef};
use super::router::{self, Router};
use super::spec::{self, HookType, Query, Settings, TargetKind};
use super::status;
use super::webhooks::{self, Payload};
use super::workload::Workload;
use crate::api::canary::{
    Canary, CanaryStatus, GATE_ANNOTATION, MetricTemplate, PAUSED_ANNOTATION, Phase,
};
use crate::apply::handoff::HandoffRef;
use crate::runtime::conditions::{Common, Reason, Stamp};
use crate::runtime::controller::{Attempt, Plan, Reconciler, Scaffold, patch_status};
use crate::runtime::events::{self, EventPlan};
use crate::runtime::metrics::TickAfter;
use crate::runtime::references::CrossNamespaceRefs;
use crate::runtime::schedule::{BACKOFF_MAX, Requeue, backoff};
use crate::runtime::text::error_chain;
use crate::runtime::written::Written;

mod checks;
mod finalizer;

/// Finalizer that lets `revertOnDeletion` give the target its traffic back before the generated
/// objects go.
pub const FINALIZER: &str = "sluice.dev/canary";

/// How the agent runs the analyzer.
#[derive(Debug, Clone, Default)]
pub struct AnalyzerSettings {
    /// Watch only this namespace.
    pub namespace: Option<String>,
    /// Prometheus for the built-in metrics and templates without an address.
    pub metrics_server: Option<String>,
    /// Whether a Canary may name MetricTemplates and alert Providers of other namespaces.
    pub cross_namespace_refs: CrossNamespaceRefs,
    /// Where reports to Git keep their Git objects (`<storage>/canary/<namespace>/<name>`); a
    /// temporary directory for each report without it.
    pub storage: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Canary has no namespace")]
    NoNamespace,
    #[error("reading the configuration of the target failed")]
    Configs(#[source] Box<kube::Error>),
    #[error("writing the status failed")]
    Status(#[source] Box<kube::Error>),
    #[error("updating the finalizer failed")]
    Finalizer(#[source] Box<kube::Error>),
    #[error("giving the target its traffic back failed")]
    Revert(#[source] ExecuteError),
}

/// The analyzer: the Canary controller and its side of the applier's hand-off.
pub struct Analyzer {
    scaffold: Scaffold<Canaries>,
    handoff: Arc<CanaryHandoff>,
}

impl Analyzer {
    pub fn new(client: Client, settings: AnalyzerSettings) -> Analyzer {
        let (canaries, deployments, daemon_sets): (Api<Canary>, Api<Deployment>, Api<DaemonSet>) =
            match &settings.namespace {
                Some(ns) => (
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                    Api::namespaced(client.clone(), ns),
                ),
                None => (
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                    Api::all(client.clone()),
                ),
            };
        let (deployment_store, writer) = reflector::store();
        let deployment_events =
            reflector(writer, watcher(deployments, watcher::Config::default())).touched_objects();
        let (daemon_set_store, writer) = reflector::store();
        let daemon_set_events =
            reflector(writer, watcher(daemon_sets, watcher::Config::default())).touched_objects();
        let handed = Arc::new(Handed::default());
        let (wake, woken) = futures::channel::mpsc::unbounded();
        let reporter = Reporter {
            controller: Canaries::REPORTER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let reconciler = Canaries {
            recorder: Recorder::new(client.clone(), reporter),
            client: client.clone(),
            deployments: deployment_store,
            daemon_sets: daemon_set_store,
            handed: handed.clone(),
            http: crate::runtime::http::client(),
            metric_clients: Clients::new(),
            metrics_server: settings.metrics_server,
            refs: settings.cross_namespace_refs,
            memo: RouteMemo::default(),
            written: Written::default(),
            reports: Arc::default(),
            storage: settings.storage,
            wake: wake.clone(),
        };
        let scaffold = Scaffold::new(reconciler, client, canaries, watcher::Config::default());
        let handoff = Arc::new(CanaryHandoff::new(scaffold.store(), handed, wake));
        let store = scaffold.store();
        // A change of a target or a primary wakes its Canaries.
        let owners = move |ns: String, name: String| {
            store
                .state()
                .iter()
                .filter(|c| c.namespace().as_deref() == Some(ns.as_str()))
                .filter(|c| {
                    let target = &c.spec.target_ref.name;
                    *target == name || format!("{target}-primary") == name
                })
                .map(|c| ObjectRef::from_obj(&**c))
                .collect::<Vec<_>>()
        };
        let of_daemon_sets = owners.clone();
        let scaffold = scaffold
            .watches_stream(deployment_events, move |d: Deployment| {
                owners(d.namespace().unwrap_or_default(), d.name_any())
            })
            .watches_stream(daemon_set_events, move |d: DaemonSet| {
                of_daemon_sets(d.namespace().unwrap_or_default(), d.name_any())
            })
            .reconcile_on(woken);
        Analyzer { scaffold, handoff }
    }

    /// What the applier hands over to this analyzer.
    pub fn handoff(&self) -> HandoffRef {
        HandoffRef(self.handoff.clone())
    }

    /// Runs until a shutdown signal.
    pub async fn run(self) {
        self.scaffold.run().await
    }
}

/// The Canary reconciler.
pub struct Canaries {
    client: Client,
    deployments: Store<Deployment>,
    daemon_sets: Store<DaemonSet>,
    handed: Arc<Handed>,
    recorder: Recorder,
    http: reqwest::Client,
    metric_clients: Clients,
    metrics_server: Option<String>,
    refs: CrossNamespaceRefs,
    memo: RouteMemo,
    /// The statuses written, for reconciles that come before the watch shows them.
    written: Written<CanaryStatus>,
    /// Reports of rollbacks to Git under way.
    reports: Arc<Reports>,
    storage: Option<PathBuf>,
    /// Asks for a reconcile of a Canary (once its report finished).
    wake: UnboundedSender<ObjectRef<Canary>>,
}

/// What a Deployment looks like to the analysis: its spec and the progress of its pods.
#[derive(Debug, Hash)]
pub struct DeploymentState {
    generation: Option<i64>,
    template: String,
    revision: Option<String>,
    replicas: Option<i32>,
    status: [Option<i32>; 4],
    observed: Option<i64>,
}

impl DeploymentState {
    fn of(d: &Deployment) -> DeploymentState {
        let status = d.status.clone().unwrap_or_default();
        DeploymentState {
            generation: d.metadata.generation,
            template: revision::template_checksum(&observe::template(d)),
            revision: d
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(objects::REVISION_ANNOTATION).cloned()),
            replicas: d.spec.replicas,
            status: [
                status.replicas,
                status.updated_replicas,
                status.ready_replicas,
                status.available_replicas,
            ],
            observed: status.observed_generation,
        }
    }
}

/// What makes a Canary due at once: its target and primary, its gates, its deletion.
#[derive(Debug, Hash)]
pub struct Inputs {
    target: Option<DeploymentState>,
    primary: Option<DeploymentState>,
    gate: Option<String>,
    paused: bool,
    deleting: bool,
}

fn annotation<'a>(obj: &'a Canary, key: &str) -> Option<&'a str> {
    obj.annotations().get(key).map(String::as_str)
}

fn short_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(text.as_bytes())[..4])
}

/// A gate the Canary asks for and the analysis (at `status`) has not handled.
fn pending_gate(obj: &Canary, status: &CanaryStatus) -> Option<(Manual, String)> {
    let value = annotation(obj, GATE_ANNOTATION)?;
    if status.last_handled_gate.as_deref() == Some(value) {
        return None;
    }
    let gate = match value.split('@').next() {
        Some("promote") => Manual::Promote,
        Some("abort") => Manual::Abort,
        _ => return None,
    };
    Some((gate, value.to_string()))
}

impl Canaries {
    fn deployment(&self, namespace: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// A target or primary of `kind`, as the analysis sees it.
    fn workload(&self, kind: TargetKind, namespace: &str, name: &str) -> Option<Workload> {
        match kind {
            TargetKind::Deployment => self
                .deployment(namespace, name)
                .map(Workload::of_deployment),
            TargetKind::DaemonSet => self
                .daemon_sets
                .get(&ObjectRef::new(name).within(namespace))
                .map(|d| Workload::of_daemon_set(&d)),
        }
    }

    /// The target, as fresh as the applier handed it over.
    fn target(&self, kind: TargetKind, namespace: &str, name: &str) -> Option<Workload> {
        match kind {
            TargetKind::Deployment => self
                .handed
                .newest(namespace, name, self.deployment(namespace, name))
                .map(Workload::of_deployment),
            TargetKind::DaemonSet => self.workload(kind, namespace, name),
        }
    }

    async fn publish(
        &self,
        obj: &Canary,
        notes: &[machine::Note],
        action: &str,
        s: Option<&Settings>,
        status: Option<&CanaryStatus>,
        payload: &Payload,
    ) {
        let reference = obj.object_ref(&());
        let metadata = match (s, status) {
            (Some(s), Some(status)) => alerts::metadata(status, s),
            _ => Default::default(),
        };
        // The commit the analysed revision came from, when a Kustomization of this process
        // applied it: a commit-status Provider reports on it.
        let revision = match (s, status, &reference.namespace) {
            (Some(s), Some(status), Some(ns)) => {
                self.handed
                    .source_revision(ns, &s.target, &status.last_applied_spec)
            }
            _ => None,
        };
        for note in notes {
            let plan = EventPlan {
                warning: note.warning,
                reason: note.reason.as_str(),
                message: note.message.clone(),
                // The recorder folds Events of one action and reason into a series that keeps
                // the first message: each message gets an action of its own.
                action: format!(
                    "{} {action} {}",
                    note.reason.as_str(),
                    short_hash(&note.message)
                ),
            };
            let recipients = match (s, &reference.namespace) {
                (Some(s), Some(ns)) => alerts::recipients(&s.alerts, note, ns),
                _ => Vec::new(),
            };
            events::publish_to(
                &self.recorder,
                &reference,
                plan,
                Canaries::REPORTER,
                revision.as_deref(),
                events::Addressed {
                    recipients,
                    metadata: metadata.clone(),
                },
            )
            .await;
            if let Some(s) = s {
                let millis = Timestamp::now().as_millisecond();
                let payload = payload.for_event(&note.message, note.warning, millis);
                for hook in s.hooks(HookType::Event) {
                    let (http, url, timeout) = (self.http.clone(), hook.url.clone(), hook.timeout);
                    let payload = payload.clone();
                    tokio::spawn(async move {
                        if let Err(e) = webhooks::post(&http, &url, timeout, &payload).await {
                            tracing::warn!(%url, error = %e, "an event webhook did not take the Event");
                        }
                    });
                }
            }
        }
    }

    /// Reports a rollback to Git when `spec.gitReport` asks for it, in a task of its own (the
    /// analysis never waits for a remote); writes a finished report's outcome into `status` and
    /// returns the Events that say it.
    fn report_to_git(
        &self,
        obj: &Canary,
        s: &Settings,
        target: &Deployment,
        status: &mut CanaryStatus,
        stamp: &Stamp<'_>,
    ) -> Vec<machine::Note> {
        if !report::due(obj.spec.git_report.as_ref(), status) {
            return Vec::new();
        }
        let (uid, name) = (obj.uid().unwrap_or_default(), obj.name_any());
        let namespace = obj.namespace().unwrap_or_default();
        let spec = status.last_applied_spec.clone();
        match self.reports.progress(&uid, &spec) {
            Progress::Running => return Vec::new(),
            Progress::Finished(outcome) => return report::settle(status, stamp, outcome),
            Progress::NotStarted => {}
        }
        let seen = report::Seen {
            namespace: &namespace,
            name: &name,
            target: &s.target,
            threshold: s.threshold,
            labels: target.labels(),
            revision: self.handed.source_revision(&namespace, &s.target, &spec),
            status,
            now: stamp.now,
        };
        let (kustomization, failure) = match report::plan(seen) {
            report::Plan::Say(outcome) => return report::settle(status, stamp, outcome),
            report::Plan::Write {
                kustomization,
                failure,
            } => (kustomization, failure),
        };
        let request = Request {
            kustomization,
            failure,
            wants: obj.spec.git_report.clone().unwrap_or_default(),
            cache: self.storage.as_ref().map(|storage| {
                storage
                    .join("canary")
                    .join(&namespace)
                    .join(&name)
                    .join("cache.git")
            }),
        };
        let (wake, canary) = (self.wake.clone(), ObjectRef::from_obj(obj));
        self.reports
            .start(self.client.clone(), uid, spec, request, move || {
                // The controller is gone only when the agent stops.
                let _ = wake.unbounded_send(canary);
            });
        Vec::new()
    }

    /// Writes `new` over `old` (a merge patch that also removes what is gone) and remembers it
    /// until the watch shows it.
    async fn write_status(
        &self,
        obj: &Canary,
        old: &CanaryStatus,
        new: &CanaryStatus,
    ) -> Result<(), ControllerError> {
        let patch = status::merge_patch(
            &serde_json::to_value(old).expect("statuses serialize"),
            &serde_json::to_value(new).expect("statuses serialize"),
        );
        if patch.is_null() {
            return Ok(());
        }
        let version = patch_status(&self.client, obj, &patch)
            .await
            .map_err(|e| ControllerError::Status(Box::new(e)))?;
        let uid = obj.uid().unwrap_or_default();
        self.written.wrote(&uid, version.as_deref(), new.clone());
        Ok(())
    }
}

impl Reconciler for Canaries {
    type Object = Canary;
    type Inputs = Inputs;
    type Error = ControllerError;
    const REPORTER: &'static str = "sluice-canary";

    async fn inputs(&self, obj: &Canary) -> Inputs {
        let namespace = obj.namespace().unwrap_or_default();
        let target = &obj.spec.target_ref.name;
        let kind = TargetKind::of(&obj.spec).unwrap_or(TargetKind::Deployment);
        Inputs {
            target: self
                .target(kind, &namespace, target)
                .map(|w| DeploymentState::of(&w.view)),
            primary: self
                .workload(kind, &namespace, &format!("{target}-primary"))
                .map(|w| DeploymentState::of(&w.view)),
            gate: annotation(obj, GATE_ANNOTATION).map(str::to_string),
            paused: annotation(obj, PAUSED_ANNOTATION) == Some("true"),
            deleting: obj.metadata.deletion_timestamp.is_some(),
        }
    }

    async fn reconcile(
        &self,
        obj: &Canary,
        _inputs: Inputs,
        attempt: &Attempt<'_>,
    ) -> Result<Plan<CanaryStatus>, ControllerError> {
        let namespace = obj.namespace().ok_or(ControllerError::NoNamespace)?;
        if let Some(plan) = self.finalizer(obj, &namespace).await? {
            return Ok(plan);
        }
        // The status as last written: the watch may not have shown the last write yet.
        let current = self.written.current(
            &obj.uid().unwrap_or_default(),
            obj.resource_version().as_deref(),
            obj.status.clone().unwrap_or_default(),
        );
        let now = Timestamp::now();
        // The machine's waits count from `now`; what this reconcile spends is waited already.
        let decided = tokio::time::Instant::now();
        let now_text = now.to_string();
        let stamp = Stamp {
            generation: obj.metadata.generation,
            now: &now_text,
        };
        let handled = |mut status: CanaryStatus| {
            if let Some(requested) = attempt.requested_at {
                status.last_handled_reconcile_at = Some(requested.into());
            }
            status
        };
        let payload = Payload {
            name: obj.name_any(),
            namespace: namespace.clone(),
            phase: current.phase.unwrap_or_default().as_str().into(),
            checksum: revision::payload_checksum(
                &current.last_applied_spec,
                &current.tracked_configs,
            ),
            metadata: Default::default(),
        };

        // A spec the analysis cannot run with, or references the agent refuses: only a change
        // helps.
        let checked = spec::settings(&obj.spec)
            .map_err(|invalid| (Common::InvalidSpec, invalid.to_string()))
            .and_then(|s| {
                self.refs
                    .check(&namespace, spec::references(&obj.spec))
                    .map(|()| s)
                    .map_err(|denied| (Common::AccessDenied, denied))
            });
        let s = match checked {
            Ok(s) => s,
            Err((reason, message)) => {
                let new = handled(status::stalled(&current, &stamp, reason, &message));
                if new != current {
                    self.write_status(obj, &current, &new).await?;
                    let note = machine::Note {
                        warning: true,
                        reason: machine::CanaryReason::Failed,
                        message: format!("{}: {message}", reason.as_str()),
                    };
                    self.publish(obj, &[note], "Validate", None, None, &payload)
                        .await;
                }
                return Ok(Plan {
                    status: None,
                    event: None,
                    requeue: Requeue::OnChange,
                });
            }
        };

        // The target, as fresh as the applier handed it over.
        let Some(Workload {
            view: target,
            object: target_value,
        }) = self.target(s.target_kind, &namespace, &s.target)
        else {
            let message = format!(
                "{} {namespace}/{} not found",
                s.target_kind.kind(),
                s.target
            );
            let new = handled(status::blocked(
                &current,
                &stamp,
                machine::CanaryReason::TargetNotFound,
                &message,
            ));
            if new != current {
                self.write_status(obj, &current, &new).await?;
                let note = machine::Note {
                    warning: true,
                    reason: machine::CanaryReason::TargetNotFound,
                    message,
                };
                self.publish(
                    obj,
                    &[note],
                    "Target",
                    Some(&s),
                    obj.status.as_ref(),
                    &payload,
                )
                .await;
            }
            return Ok(Plan {
                status: None,
                event: None,
                requeue: Requeue::After(s.interval),
            });
        };
        if let Err(e) = objects::target_selector(&target_value) {
            let message = e.to_string();
            let new = handled(status::stalled(
                &current,
                &stamp,
                Common::InvalidSpec,
                &message,
            ));
            if new != current {
                self.write_status(obj, &current, &new).await?;
            }
            return Ok(Plan {
                status: None,
                event: None,
                requeue: Requeue::OnChange,
            });
        }
        let primary = self
            .workload(s.target_kind, &namespace, &s.primary())
            .map(|w| w.view);
        let revision = observe::revision(&self.client, &target)
            .await
            .map_err(|e| ControllerError::Configs(Box::new(e)))?;
        let phase = current.phase.unwrap_or_default();
        let primary_pods = match &primary {
            None => machine::Pods::NotReady(format!("{} does not exist yet", s.primary())),
            Some(p) => {
                let wanted = match phase {
                    Phase::Initializing => Some(revision.spec.as_str()),
                    Phase::Promoting | Phase::Finalising => {
                        Some(current.last_applied_spec.as_str())
                    }
                    _ => None,
                };
                let held = p
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(objects::REVISION_ANNOTATION))
                    .map(String::as_str);
                match wanted {
                    Some(wanted) if held != Some(wanted) => machine::Pods::NotReady(format!(
                        "{} does not hold revision {wanted} yet",
                        s.primary()
                    )),
                    _ => observe::pods(p, s.primary_ready),
                }
            }
        };
        let target_replicas = target.spec.replicas.unwrap_or(1);
        let mut observed = Observed {
            now,
            generation: obj.metadata.generation,
            namespace: namespace.clone(),
            revision: revision.clone(),
            primary_revision: primary.as_ref().and_then(|p| {
                p.metadata
                    .annotations
                    .as_ref()?
                    .get(objects::REVISION_ANNOTATION)
                    .cloned()
            }),
            primary: primary_pods,
            canary: observe::pods(&target, s.canary_ready),
            canary_running: target_replicas > 0
                || target.status.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 0,
            suspended: obj.spec.suspend,
            paused: annotation(obj, PAUSED_ANNOTATION) == Some("true"),
            manual: pending_gate(obj, &current),
            routes: None,
            hooks: Default::default(),
            checks: None,
        };
        let router = router::for_routing(s.routing);
        let owner = Owner {
            name: obj.name_any(),
            namespace: namespace.clone(),
            uid: obj.uid().unwrap_or_default(),
        };
        let tracked: std::collections::BTreeSet<ConfigRef> =
            revision::config_refs(&observe::template(&target))
                .into_iter()
                .filter(|r| revision.configs.contains_key(&r.key()))
                .collect();
        let intended = self.handed.intended_replicas(&namespace, &s.target);
        let work = Work {
            client: &self.client,
            canary: obj,
            settings: &s,
            router: &router,
            owner,
            target: &target,
            target_object: &target_value,
            primary: primary.as_deref(),
            tracked,
            intended,
            node_selector: self.handed.intended_node_selector(&namespace, &s.target),
            memo: &self.memo,
            now,
        };

        // The machine decides; it asks for routes, webhook answers and metrics when it needs them.
        let step = loop {
            let decision = machine::step(&s, &current, &observed);
            tracing::debug!(?decision, "analysis step");
            match decision {
                Decision::Act(step) => break *step,
                Decision::Need(Need::Routes) => {
                    let routes = work
                        .observe_routes(&machine::traffic(&s, &current))
                        .await
                        .unwrap_or_else(|e| Routes::Converging(error_chain(&e)));
                    observed.routes = Some(routes);
                }
                Decision::Need(Need::Hooks(type_)) => {
                    let answers = self.call_hooks(&s, type_, &payload).await;
                    observed.hooks.insert(type_, answers);
                }
                Decision::Need(Need::Checks) => observed.checks = Some(self.checks(obj, &s).await),
            }
        };

        // Carry it out, then say so.
        let executed = work.run(&step.actions, &step.status).await;
        tracing::debug!(actions = ?step.actions, ?executed, "carried out");
        let mut notes = step.notes.clone();
        let mut retry = None;
        let mut new = handled(step.status.clone());
        if let Err(e) = &executed {
            let message = format!("{}: {}", router.name(), error_chain(e));
            tracing::warn!(namespace = %namespace, canary = %obj.name_any(), error = %message, "carrying out the analysis failed; retrying");
            // Said on the Canary until a step goes through.
            new = status::blocked(&new, &stamp, machine::CanaryReason::Retrying, &message);
            notes.push(machine::Note {
                warning: true,
                reason: machine::CanaryReason::Retrying,
                message,
            });
            retry = Some(backoff(attempt.failures.saturating_add(1), BACKOFF_MAX).min(s.interval));
        }
        notes.extend(self.report_to_git(obj, &s, &target, &mut new, &stamp));
        self.write_status(obj, &current, &new).await?;
        // Counted once the step is written: a step that failed to be written runs again.
        if let Some(tick) = step.late {
            let after = if tick.after_wait {
                TickAfter::wait
            } else {
                TickAfter::step
            };
            crate::runtime::metrics::metrics().canary_tick(tick.late, after);
        }
        if step.actions.contains(&machine::Action::PostRollout) {
            let payload = Payload {
                phase: new.phase.unwrap_or_default().as_str().into(),
                ..payload.clone()
            };
            for answer in self.call_hooks(&s, HookType::PostRollout, &payload).await {
                if let Some(why) = answer.refusal {
                    notes.push(machine::Note {
                        warning: true,
                        reason: machine::CanaryReason::Halted,
                        message: format!("post-rollout webhook {} failed: {why}", answer.name),
                    });
                }
            }
        }
        let action = format!(
            "{}@{}/{}/{}",
            &new.last_applied_spec
                .get(..8)
                .unwrap_or(&new.last_applied_spec),
            new.canary_weight,
            new.iterations,
            new.failed_checks
        );
        self.publish(obj, &notes, &action, Some(&s), Some(&new), &payload)
            .await;
        let requeue = match retry {
            Some(after) => Requeue::Retry(after),
            None => Requeue::After(step.requeue_after(decided.elapsed())),
        };
        Ok(Plan {
            status: None,
            event: None,
            requeue,
        })
    }
}
