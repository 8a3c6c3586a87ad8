//! The scaffold every sluice controller runs on. A controller supplies a `Reconciler` (read the
//! inputs, reconcile one object, return a `Plan`); the scaffold watches the kind, decides whether a
//! watch event or timer makes a reconcile due (`schedule`, `trigger`), runs the reconcile with
//! panics caught, writes the planned status and Event, counts it in the metrics and logs it (and
//! every failure) with the object's kind, namespace, name and revision. A controller that cleans
//! up after deletion names a finalizer: the scaffold adds it, runs `cleanup` when the object is
//! deleted and removes it afterwards. Talks to the API server.

use std::any::Any;
use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::hash::Hash;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::runtime::controller::Action;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, reflector::reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use tracing::Instrument;

use super::conditions::{Common, Reason, Stamp};
use super::events::{self, EventPlan};
use super::finalizer::{self, Step};
use super::metrics::{ReconcileResult, metrics};
use super::schedule::{BACKOFF_MAX, Gate, Requeue, Schedule, backoff};
use super::text::{error_chain, truncate};
use super::trigger::{Requested, trigger};
use crate::api::condition::{self, READY, RECONCILING, ReconcileStatus};

/// What one controller does for one object; the scaffold does the rest.
pub trait Reconciler: Send + Sync + 'static {
    /// The kind it reconciles.
    type Object: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + HasStatus<Status: ReconcileStatus + Serialize + Send + Sync>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static;
    /// What a reconcile reads besides the object (e.g. its source's artifact); `()` for nothing.
    type Inputs: Hash + Send;
    /// Failures that are not the object's fault (writing its status); retried with backoff.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Names the controller in Events (`reportingController`), e.g. `sluice-kustomize`.
    const REPORTER: &'static str;

    /// Reads the inputs. Runs before the scaffold decides whether a reconcile is due: a change of
    /// their hash makes one due at once.
    fn inputs(&self, obj: &Self::Object) -> impl Future<Output = Self::Inputs> + Send;

    /// Reconciles one object and says what its status and Event become and when to look again.
    fn reconcile(
        &self,
        obj: &Self::Object,
        inputs: Self::Inputs,
        attempt: &Attempt<'_>,
    ) -> impl Future<Output = Result<Plan<StatusOf<Self>>, Self::Error>> + Send;

    /// The finalizer the scaffold keeps on every object so that `cleanup` runs before it is gone;
    /// `None`: nothing to clean up.
    const FINALIZER: Option<&'static str> = None;

    /// Cleans up after a deleted object (with `FINALIZER`); the finalizer is removed once it
    /// succeeds, with the Event it returns. A failure is retried with backoff.
    fn cleanup(
        &self,
        _obj: &Self::Object,
    ) -> impl Future<Output = Result<Option<EventPlan>, Self::Error>> + Send {
        async { Ok(None) }
    }

    /// Whether the object is suspended (`spec.suspend`), for the metrics.
    fn suspended(_obj: &Self::Object) -> bool {
        false
    }
}

/// The status type of a reconciler's kind.
pub type StatusOf<R> = <<R as Reconciler>::Object as HasStatus>::Status;

/// What the scaffold knows about a reconcile that is due.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The manual-trigger value this reconcile handles: report it as
    /// `status.lastHandledReconcileAt`.
    pub requested_at: Option<&'a str>,
    /// Failed reconciles in a row before this one (`Requeue::Retry`, errors, panics).
    pub failures: u32,
}

/// What a reconcile decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<S> {
    /// The status to write (a merge patch of `status`), or `None` when nothing changed.
    pub status: Option<S>,
    pub event: Option<EventPlan>,
    pub requeue: Requeue,
}

/// A controller built on the scaffold, ready to run.
pub struct Scaffold<R: Reconciler> {
    controller: Controller<R::Object>,
    shared: Arc<Shared<R>>,
}

struct Shared<R: Reconciler> {
    reconciler: R,
    client: Client,
    recorder: Recorder,
    store: Store<R::Object>,
    schedule: Arc<Schedule<R::Object>>,
}

impl<R: Reconciler> Scaffold<R> {
    /// Watches the objects `api` and `config` select.
    pub fn new(
        reconciler: R,
        client: Client,
        api: Api<R::Object>,
        config: watcher::Config,
    ) -> Self {
        let schedule = Arc::new(Schedule::default());
        let (store, writer) = reflector::store();
        let forget = {
            let (schedule, store) = (schedule.clone(), store.clone());
            move |event: &Result<watcher::Event<R::Object>, watcher::Error>| match event {
                Ok(watcher::Event::Delete(obj)) => {
                    schedule.forget(&ObjectRef::from_obj(obj));
                    let conditions = obj.status().map(|s| s.conditions()).unwrap_or_default();
                    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
                    metrics().forget_object(&R::Object::kind(&()), &namespace, &name, conditions);
                }
                // A relist: objects deleted while the watch was down are gone from the store.
                Ok(watcher::Event::InitDone) => schedule.retain(|key| store.get(key).is_some()),
                _ => {}
            }
        };
        let objects = reflector(writer, watcher(api, config))
            .inspect(forget)
            .applied_objects();
        let reporter = Reporter {
            controller: R::REPORTER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let shared = Shared {
            reconciler,
            recorder: Recorder::new(client.clone(), reporter),
            client,
            store: store.clone(),
            schedule,
        };
        Scaffold {
            controller: Controller::for_stream(objects, store),
            shared: Arc::new(shared),
        }
    }

    /// The watched objects, as last seen (for mapping related objects to them).
    pub fn store(&self) -> Store<R::Object> {
        self.shared.store.clone()
    }

    /// The per-object memory; `len()` counts the objects it remembers.
    pub fn schedule(&self) -> Arc<Schedule<R::Object>> {
        self.shared.schedule.clone()
    }

    /// Also reconciles the objects `mapper` names whenever an `Other` changes.
    pub fn watches<Other, I>(
        mut self,
        api: Api<Other>,
        mapper: impl Fn(Other) -> I + Send + Sync + 'static,
    ) -> Self
    where
        Other: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
        I: IntoIterator<Item = ObjectRef<R::Object>> + 'static,
        I::IntoIter: Send,
    {
        self.controller = self
            .controller
            .watches(api, watcher::Config::default(), mapper);
        self
    }

    /// Also reconciles the objects `mapper` names whenever an object of `stream` changes: a
    /// watch the reconciler reads through a store of its own.
    pub fn watches_stream<Other, I>(
        mut self,
        stream: impl futures::Stream<Item = Result<Other, watcher::Error>> + Send + 'static,
        mapper: impl Fn(Other) -> I + Send + Sync + 'static,
    ) -> Self
    where
        Other: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
        I: IntoIterator<Item = ObjectRef<R::Object>> + 'static,
        I::IntoIter: Send,
    {
        self.controller = self.controller.watches_stream(stream, mapper);
        self
    }

    /// Also reconciles the objects `trigger` names, as they come (another controller of the
    /// process asking at once).
    pub fn reconcile_on(
        mut self,
        trigger: impl futures::Stream<Item = ObjectRef<R::Object>> + Send + 'static,
    ) -> Self {
        self.controller = self.controller.reconcile_on(trigger);
        self
    }

    /// Runs until a shutdown signal.
    pub async fn run(self) {
        let kind = R::Object::kind(&());
        self.controller
            .shutdown_on_signal()
            .run(
                reconcile_one::<R>,
                |_, never, _| match *never {},
                self.shared,
            )
            .for_each(|result| {
                // Reconcile failures are logged where they happen; these are the watch's own.
                if let Err(e) = result {
                    tracing::warn!(%kind, error = %error_chain(&e), "controller error");
                }
                std::future::ready(())
            })
            .await;
    }
}

/// How a reconcile attempt ended, panics included.
enum Ended<S, E> {
    NotDue(Option<Duration>),
    Planned(Plan<S>),
    Failed(E),
    Panicked(String),
}

/// The scaffold's reconcile: never fails and never unwinds. Whatever happens is logged with the
/// object's kind, namespace and name, written to its status where it belongs there, and decides
/// when to look again.
async fn reconcile_one<R: Reconciler>(
    obj: Arc<R::Object>,
    shared: Arc<Shared<R>>,
) -> Result<Action, Infallible> {
    let kind = R::Object::kind(&());
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let span = tracing::info_span!("reconcile", %kind, %namespace, %name);
    let key = ObjectRef::from_obj(&*obj);
    let requested = Requested::of(obj.annotations());
    let generation = obj.meta().generation;
    let failures = shared.schedule.failures(&key);
    let retry = Requeue::Retry(backoff(failures.saturating_add(1), BACKOFF_MAX));
    if let Some(finalizer) = R::FINALIZER {
        match finalizer::decide(obj.meta(), finalizer) {
            Step::Reconcile => {}
            Step::Add => {
                let patch = finalizer::add_patch(obj.meta(), finalizer);
                if let Err(e) = finalizer::patch(&shared.client, &*obj, patch).await {
                    let error = error_chain(&e);
                    tracing::warn!(%kind, %namespace, %name, %error, "adding the finalizer failed; retrying");
                    return Ok(schedule_retry(&shared, key, requested, retry));
                }
            }
            Step::Cleanup => {
                let action = finalize(&shared, &obj, finalizer, key, requested, retry)
                    .instrument(span)
                    .await;
                return Ok(action);
            }
            Step::Gone => return Ok(Action::await_change()),
        }
    }
    let started = Instant::now();
    // Until the inputs are read (or if reading them panics): the trigger without them.
    let mut asked = trigger(generation, &requested, &());
    let attempt = async {
        let inputs = shared.reconciler.inputs(&obj).await;
        asked = trigger(generation, &requested, &inputs);
        let previous = match shared.schedule.check(&key, asked, Instant::now()) {
            Gate::NotYet(wait) => return Ended::NotDue(wait),
            Gate::Due { previous } => previous,
        };
        let last_handled = obj.status().and_then(|s| s.last_handled_reconcile_at());
        let attempt = Attempt {
            requested_at: requested.handled(previous.as_ref(), last_handled),
            failures,
        };
        match shared.reconciler.reconcile(&obj, inputs, &attempt).await {
            Ok(plan) => Ended::Planned(plan),
            Err(e) => Ended::Failed(e),
        }
    };
    let ended = AssertUnwindSafe(attempt)
        .catch_unwind()
        .instrument(span.clone())
        .await
        .unwrap_or_else(|payload| Ended::Panicked(panic_message(payload.as_ref())));
    let current = obj.status();
    let (requeue, result, status) = match ended {
        Ended::NotDue(wait) => return Ok(wait.map_or_else(Action::await_change, Action::requeue)),
        Ended::Planned(mut plan) => {
            let status = plan.status.take();
            match write(&shared, &obj, status.as_ref(), plan)
                .instrument(span.clone())
                .await
            {
                Ok(requeue) => {
                    let after = status.as_ref().or(current).map(|s| s.conditions());
                    (
                        requeue,
                        ReconcileResult::of(after.unwrap_or_default()),
                        status,
                    )
                }
                Err(e) => {
                    let error = error_chain(&e);
                    tracing::warn!(%kind, %namespace, %name, %error, "writing the status failed; retrying");
                    (retry, ReconcileResult::error, None)
                }
            }
        }
        Ended::Failed(e) => {
            let error = error_chain(&e);
            tracing::warn!(%kind, %namespace, %name, %error, "reconcile failed; retrying");
            (retry, ReconcileResult::error, None)
        }
        Ended::Panicked(panic) => {
            tracing::error!(%kind, %namespace, %name, %panic, "reconcile panicked; retrying");
            report_panic(&shared, &obj, &panic).instrument(span).await;
            (retry, ReconcileResult::panic, None)
        }
    };
    let elapsed = started.elapsed();
    let now = status.as_ref().or(current);
    let revision = now.and_then(|s| s.revision()).unwrap_or_default();
    tracing::info!(%kind, %namespace, %name, %revision, ?result, seconds = elapsed.as_secs_f64(), "reconciled");
    metrics().reconciled(&kind, result, elapsed);
    if let Some(now) = now {
        metrics().object_state(
            &kind,
            &namespace,
            &name,
            now.conditions(),
            R::suspended(&obj),
        );
    }
    shared
        .schedule
        .record(key.clone(), asked, requested, requeue, Instant::now());
    // Deleted meanwhile: the delete was forgotten before this record; forget again.
    if shared.store.get(&key).is_none() {
        shared.schedule.forget(&key);
    }
    Ok(match requeue {
        Requeue::After(after) | Requeue::Retry(after) => Action::requeue(after),
        Requeue::OnChange => Action::await_change(),
    })
}

/// Remembers a failure that happened before a reconcile could run; says when to try again.
fn schedule_retry<R: Reconciler>(
    shared: &Shared<R>,
    key: ObjectRef<R::Object>,
    requested: Requested,
    retry: Requeue,
) -> Action {
    shared
        .schedule
        .record(key, 0, requested, retry, Instant::now());
    match retry {
        Requeue::After(after) | Requeue::Retry(after) => Action::requeue(after),
        Requeue::OnChange => Action::await_change(),
    }
}

/// Cleans up after a deleted object and removes the finalizer; a failure or panic is logged and
/// retried with backoff, keeping the finalizer (and so the object) until cleanup succeeds.
async fn finalize<R: Reconciler>(
    shared: &Shared<R>,
    obj: &R::Object,
    finalizer: &str,
    key: ObjectRef<R::Object>,
    requested: Requested,
    retry: Requeue,
) -> Action {
    let kind = R::Object::kind(&());
    let (namespace, name) = (obj.namespace().unwrap_or_default(), obj.name_any());
    let cleaned = AssertUnwindSafe(shared.reconciler.cleanup(obj))
        .catch_unwind()
        .await;
    let event = match cleaned {
        Ok(Ok(event)) => event,
        Ok(Err(e)) => {
            let error = error_chain(&e);
            tracing::warn!(%kind, %namespace, %name, %error, "cleaning up after deletion failed; retrying");
            return schedule_retry(shared, key, requested, retry);
        }
        Err(payload) => {
            let panic = panic_message(payload.as_ref());
            tracing::error!(%kind, %namespace, %name, %panic, "cleaning up after deletion panicked; retrying");
            return schedule_retry(shared, key, requested, retry);
        }
    };
    if let Some(event) = event {
        let revision = obj.status().and_then(|s| s.revision());
        let regarding = obj.object_ref(&());
        events::publish(&shared.recorder, &regarding, event, R::REPORTER, revision).await;
    }
    if let Some(patch) = finalizer::remove_patch(obj.meta(), finalizer)
        && let Err(e) = finalizer::patch(&shared.client, obj, patch).await
    {
        let error = error_chain(&e);
        tracing::warn!(%kind, %namespace, %name, %error, "removing the finalizer failed; retrying");
        return schedule_retry(shared, key, requested, retry);
    }
    tracing::info!(%kind, %namespace, %name, "finalized");
    Action::await_change()
}

/// Writes what a reconcile planned: the status, then the Event.
async fn write<R: Reconciler>(
    shared: &Shared<R>,
    obj: &R::Object,
    status: Option<&StatusOf<R>>,
    plan: Plan<StatusOf<R>>,
) -> Result<Requeue, kube::Error> {
    if let Some(status) = status {
        patch_status(&shared.client, obj, status).await?;
    }
    if let Some(event) = plan.event {
        let revision = status.or(obj.status()).and_then(|s| s.revision());
        let regarding = obj.object_ref(&());
        events::publish(&shared.recorder, &regarding, event, R::REPORTER, revision).await;
    }
    Ok(plan.requeue)
}

/// Says on the object that its reconcile panicked: `Ready=False` (`ReconcilePanicked`, with the
/// panic's message), `Reconciling=True` while retrying, and a Warning Event.
async fn report_panic<R: Reconciler>(shared: &Shared<R>, obj: &R::Object, panic: &str) {
    let mut conditions = obj
        .status()
        .map(|s| s.conditions().to_vec())
        .unwrap_or_default();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let stamp = Stamp {
        generation: obj.meta().generation,
        now: &now,
    };
    let message = truncate(&format!("reconcile panicked: {panic}"), 1024);
    let ready = stamp.condition(READY, false, Common::ReconcilePanicked, &message);
    let retrying = stamp.condition(
        RECONCILING,
        true,
        Common::ProgressingWithRetry,
        "retrying with backoff after a panic",
    );
    let changed =
        condition::set(&mut conditions, ready) | condition::set(&mut conditions, retrying);
    if changed {
        let status = serde_json::json!({ "conditions": conditions });
        if let Err(e) = patch_status(&shared.client, obj, &status).await {
            let error = error_chain(&e);
            tracing::warn!(%error, "writing the status after a panic failed");
        }
    }
    let event = EventPlan {
        warning: true,
        reason: Common::ReconcilePanicked.as_str(),
        message,
        action: "Reconcile".into(),
    };
    let revision = obj.status().and_then(|s| s.revision());
    events::publish(
        &shared.recorder,
        &obj.object_ref(&()),
        event,
        R::REPORTER,
        revision,
    )
    .await;
}

/// Writes `status` as a merge patch of the object's status subresource; returns the
/// `resourceVersion` the write made.
pub async fn patch_status<K>(
    client: &Client,
    obj: &K,
    status: &impl Serialize,
) -> Result<Option<String>, kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "status": status });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|written| written.resource_version())
}

/// The text a panic was raised with.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_either_payload() {
        let caught = |f: fn()| std::panic::catch_unwind(f).unwrap_err();
        let literal = caught(|| panic!("boom"));
        let formatted = caught(|| panic!("boom {}", 7));
        let other = caught(|| std::panic::panic_any(7u8));
        assert_eq!(panic_message(literal.as_ref()), "boom");
        assert_eq!(panic_message(formatted.as_ref()), "boom 7");
        assert_eq!(panic_message(other.as_ref()), "a panic without a message");
    }
}
