//! Kubernetes Events about sluice's objects: what a controller decided to say (`EventPlan`, pure)
//! and publishing it (`publish`, one request).

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

/// Publishes `plan` about `regarding`; a failure is logged, never fatal to the reconcile.
pub async fn publish(
    recorder: &Recorder,
    regarding: &k8s_openapi::api::core::v1::ObjectReference,
    plan: EventPlan,
) {
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
