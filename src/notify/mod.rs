//! Notifications, in and out. Out: a `Notification` (what happened to which object, with what
//! severity and revision) goes to a provider (`provider`: one file per service, each only
//! building the HTTP request) and is sent by `send`; the `dispatch`er hears every Event the
//! controllers publish and sends it to the Providers of the Alerts that select it (`alert`).
//! In: `receiver` verifies webhooks from Git hosts and `server` serves them, asking the named
//! objects to reconcile at once. `controllers` keeps the status of Receivers, Providers and
//! Alerts. `provider` and `send` take a plain `ProviderConfig`, so senders other than Alerts (the
//! canary analyzer's alerts) can use them without a Provider object.

pub mod alert;
pub mod controllers;
pub mod dispatch;
pub mod provider;
pub mod receiver;
pub mod send;
pub mod server;
pub mod status;

use std::collections::BTreeMap;

use serde::Serialize;

use crate::api::notification::CrossNamespaceObjectReference;
use crate::runtime::references::Reference;

/// How severe a notification is (Flux's event severities).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Error,
}

/// The object a notification is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl InvolvedObject {
    /// `Kind/namespace/name`.
    pub fn display(&self) -> String {
        format!("{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// What happened, in the shape of Flux's event (`generic` providers post it as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub involved_object: InvolvedObject,
    pub severity: Severity,
    /// RFC 3339.
    pub timestamp: String,
    pub message: String,
    /// A CamelCase word (e.g. `ReconciliationSucceeded`).
    pub reason: String,
    /// `revision` when there is one, plus what the Alert adds.
    pub metadata: BTreeMap<String, String>,
    pub reporting_controller: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_instance: Option<String>,
}

impl Notification {
    /// The revision the notification is about, when it names one.
    pub fn revision(&self) -> Option<&str> {
        self.metadata.get("revision").map(String::as_str)
    }

    /// A one-line title: `Kustomization/ns/name` and the reason.
    pub fn title(&self) -> String {
        format!("{} {}", self.involved_object.display(), self.reason)
    }
}

/// The objects a list of `field` (an Alert's `spec.eventSources`, a Receiver's
/// `spec.resources`) names, for the cross-namespace rule.
pub fn references<'a>(
    field: &'a str,
    list: &'a [CrossNamespaceObjectReference],
) -> impl Iterator<Item = Reference<'a>> {
    list.iter()
        .enumerate()
        .map(move |(i, r)| Reference::new(format!("{field}[{i}]"), r.namespace.as_deref(), &r.name))
}
