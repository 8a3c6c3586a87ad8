//! Kubernetes Events about sluice's objects: what a controller decided to say (`EventPlan`, pure)
//! and publishing it (`publish`, one request), and the process's `EventSink`, which hears every
//! published Event (the notification dispatcher installs itself there: Alerts see what the
//! controllers say without the controllers knowing about Alerts, and a publisher's own
//! `Recipient`s, such as a Canary's `analysis.alerts`, are delivered the same way).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};

use super::text::truncate;

/// An Event a reconcile decided to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPlan {
    pub warning: bool,
    /// A typed reason's name (`Reason::as_str`).
    pub reason: &'static str,
    pub message: String,
    /// Names the revision where there is one (`Reconcile <revision>`): the recorder folds Events
    /// with the same action and reason into one series that keeps the first message, so each
    /// revision needs an action of its own to get Events of its own.
    pub action: String,
}

/// An Event as a sink hears it: what was said, about what, by whom, and the object's revision.
#[derive(Debug, Clone)]
pub struct Published {
    pub regarding: ObjectReference,
    pub plan: EventPlan,
    /// The `reportingController` (e.g. `sluice-kustomize`).
    pub reporter: String,
    /// The revision the object is at (a source's artifact, a Kustomization's last attempt).
    pub revision: Option<String>,
    /// Providers the publisher sends this Event to itself, besides the Alerts that select it.
    pub recipients: Vec<Recipient>,
    /// What the publisher adds to the Event's notifications (a Canary's phase and weight).
    pub metadata: BTreeMap<String, String>,
}

/// What a publisher adds to an Event for its notifications: Providers it sends the Event to
/// itself, and metadata.
#[derive(Debug, Clone, Default)]
pub struct Addressed {
    pub recipients: Vec<Recipient>,
    pub metadata: BTreeMap<String, String>,
}

/// A notification Provider a publisher names for one Event (a Canary's alert whose severity
/// the Event reaches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// What the publisher calls it (the alert's name), for logs.
    pub name: String,
    /// The Provider's namespace and name.
    pub namespace: String,
    pub provider: String,
}

/// Hears every Event the process publishes. Must not block: hand the Event over and return.
pub trait EventSink: Send + Sync {
    fn published(&self, event: Published);
}

static SINK: RwLock<Option<Arc<dyn EventSink>>> = RwLock::new(None);

/// Makes `sink` hear every Event published from now on (replacing any earlier sink).
pub fn install_sink(sink: Arc<dyn EventSink>) {
    *SINK.write().unwrap_or_else(|e| e.into_inner()) = Some(sink);
}

fn sink() -> Option<Arc<dyn EventSink>> {
    SINK.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Publishes `plan` about `regarding`; a failure is logged, never fatal to the reconcile. The
/// process's sink hears it too.
pub async fn publish(
    recorder: &Recorder,
    regarding: &ObjectReference,
    plan: EventPlan,
    reporter: &str,
    revision: Option<&str>,
) {
    publish_to(
        recorder,
        regarding,
        plan,
        reporter,
        revision,
        Addressed::default(),
    )
    .await;
}

/// `publish`, asking the sink to deliver the Event to `to.recipients` too, with `to.metadata`.
pub async fn publish_to(
    recorder: &Recorder,
    regarding: &ObjectReference,
    plan: EventPlan,
    reporter: &str,
    revision: Option<&str>,
    to: Addressed,
) {
    record(recorder, regarding, &plan).await;
    if let Some(sink) = sink() {
        sink.published(Published {
            regarding: regarding.clone(),
            plan,
            reporter: reporter.into(),
            revision: revision.map(String::from),
            recipients: to.recipients,
            metadata: to.metadata,
        });
    }
}

/// Records `plan` about `regarding` on the API server only (the sink does not hear it); a
/// failure is logged.
pub async fn record(recorder: &Recorder, regarding: &ObjectReference, plan: &EventPlan) {
    let event = Event {
        type_: if plan.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: plan.reason.into(),
        note: Some(truncate(&plan.message, 1024)),
        action: truncate(&plan.action, 120),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&event, regarding).await {
        let object = format!(
            "{}/{}",
            regarding.namespace.as_deref().unwrap_or(""),
            regarding.name.as_deref().unwrap_or("")
        );
        tracing::warn!(error = %e, %object, "publishing an Event failed");
    }
}
