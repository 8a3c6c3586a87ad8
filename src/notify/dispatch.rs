//! The dispatcher: hears every Event the process publishes (it is the `runtime::events` sink),
//! finds the Alerts that select it and delivers it to their Providers, and to the Providers its
//! publisher named (a Canary's `analysis.alerts`). Watches Alerts and Providers; reads Secrets;
//! sends over the network. Decisions come from `alert` and the cross-namespace rule.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use tokio::sync::mpsc;

use super::controllers::{api, provider_config, provider_timeout};
use super::send::Sender;
use super::status::NotificationReason;
use super::{InvolvedObject, Notification, Severity, alert};
use crate::api::notification::{Alert, Provider};
use crate::runtime::conditions::Reason as _;
use crate::runtime::events::{self, EventPlan, EventSink, Published, Recipient};
use crate::runtime::references::CrossNamespaceRefs;

/// How many Events may wait for delivery; more are dropped with a warning.
const QUEUE: usize = 1024;

/// The sink end: hands Events over to the dispatcher's task.
pub struct Dispatcher {
    queue: mpsc::Sender<Published>,
}

impl EventSink for Dispatcher {
    fn published(&self, event: Published) {
        if self.queue.try_send(event).is_err() {
            tracing::warn!("the notification queue is full; an Event is not delivered");
        }
    }
}

/// The notification an Event becomes.
pub fn notification(event: &Published, instance: Option<String>) -> Notification {
    let o = &event.regarding;
    let mut metadata = event.metadata.clone();
    if let Some(revision) = &event.revision {
        metadata.insert("revision".to_string(), revision.clone());
    }
    Notification {
        involved_object: InvolvedObject {
            kind: o.kind.clone().unwrap_or_default(),
            namespace: o.namespace.clone().unwrap_or_default(),
            name: o.name.clone().unwrap_or_default(),
            api_version: o.api_version.clone(),
            uid: o.uid.clone(),
        },
        severity: if event.plan.warning {
            Severity::Error
        } else {
            Severity::Info
        },
        timestamp: k8s_openapi::jiff::Timestamp::now().to_string(),
        message: event.plan.message.clone(),
        reason: event.plan.reason.to_string(),
        metadata,
        reporting_controller: event.reporter.clone(),
        reporting_instance: instance,
    }
}

/// The dispatcher and its task (run it; it ends when the process does). `namespace` limits the
/// Alerts and Providers it reads to one namespace; an Alert whose event sources leave its
/// namespace sends nothing when `refs` refuses that.
pub fn start(
    client: Client,
    namespace: Option<String>,
    refs: CrossNamespaceRefs,
) -> (Arc<Dispatcher>, impl Future<Output = ()>) {
    let (queue, mut events) = mpsc::channel(QUEUE);
    let task = async move {
        let sender = match Sender::new() {
            Ok(sender) => sender,
            Err(e) => {
                tracing::error!(error = %e, "notifications are off");
                return;
            }
        };
        let (alerts, alerts_writer) = reflector::store::<Alert>();
        let (providers, providers_writer) = reflector::store::<Provider>();
        let watch_alerts = reflector::reflector(
            alerts_writer,
            watcher(
                api::<Alert>(&client, namespace.as_deref()),
                watcher::Config::default(),
            ),
        )
        .applied_objects()
        .for_each(|_| async {});
        let watch_providers = reflector::reflector(
            providers_writer,
            watcher(
                api::<Provider>(&client, namespace.as_deref()),
                watcher::Config::default(),
            ),
        )
        .applied_objects()
        .for_each(|_| async {});
        let instance = std::env::var("POD_NAME").ok();
        let out = Out {
            client: client.clone(),
            sender,
            recorder: Recorder::new(
                client.clone(),
                Reporter {
                    controller: REPORTER.into(),
                    instance: instance.clone(),
                },
            ),
        };
        let deliver = async {
            while let Some(event) = events.recv().await {
                let notification = notification(&event, instance.clone());
                for recipient in &event.recipients {
                    to_recipient(&out, &providers, recipient, &notification);
                }
                dispatch(&out, &alerts, &providers, refs, notification).await;
            }
        };
        tokio::select! {
            () = watch_alerts => {}
            () = watch_providers => {}
            () = deliver => {}
        }
    };
    (Arc::new(Dispatcher { queue }), task)
}

/// The Events about failed deliveries are reported as this controller.
const REPORTER: &str = "sluice-notification";

/// What delivering needs: the API server (Secrets, Events), the HTTP sender, the recorder of
/// Events about Providers that fail.
#[derive(Clone)]
struct Out {
    client: Client,
    sender: Sender,
    recorder: Recorder,
}

/// Sends `event` to the Provider of every Alert that selects it, each delivery in a task of its
/// own so a slow service delays nothing else.
async fn dispatch(
    out: &Out,
    alerts: &Store<Alert>,
    providers: &Store<Provider>,
    refs: CrossNamespaceRefs,
    event: Notification,
) {
    let mut labels: Option<Option<BTreeMap<String, String>>> = None;
    for alert in alerts.state() {
        let ns = alert.namespace().unwrap_or_default();
        let Ok(filters) = alert::compile(&alert.spec) else {
            continue; // the Alert's status says why
        };
        if refs.check(&ns, alert::sources(&alert.spec)).is_err() {
            continue; // refused: its status says AccessDenied
        }
        if labels.is_none() && alert::needs_labels(&alert.spec) {
            labels = Some(object_labels(&out.client, &event).await);
        }
        if !alert::matches(
            &alert.spec,
            &filters,
            &ns,
            &event,
            labels.as_ref().and_then(Option::as_ref),
        ) {
            continue;
        }
        let name = &alert.spec.provider_ref.name;
        let Some(provider) = providers.get(&ObjectRef::new(name).within(&ns)) else {
            tracing::warn!(alert = %format!("{ns}/{}", alert.name_any()), provider = %name, "the Alert's Provider does not exist; nothing sent");
            continue;
        };
        let event = alert::decorate(&alert.spec, &event);
        deliver(out, provider, event, format!("{ns}/{}", alert.name_any()));
    }
}

/// Sends `event` to the Provider a publisher named for it (`name`: what the publisher calls it,
/// such as a Canary's alert).
fn to_recipient(
    out: &Out,
    providers: &Store<Provider>,
    recipient: &Recipient,
    event: &Notification,
) {
    let Recipient {
        name,
        namespace,
        provider,
    } = recipient;
    match providers.get(&ObjectRef::new(provider).within(namespace)) {
        Some(found) => deliver(out, found, event.clone(), name.clone()),
        None => {
            tracing::warn!(alert = %name, object = %event.involved_object.display(), provider = %format!("{namespace}/{provider}"), "the alert's Provider does not exist; nothing sent")
        }
    }
}

/// Delivers `event` to `provider` (unless it is suspended) in a task of its own; `alert` names
/// who asked, for logs. A failure is logged and said in a Warning Event on the Provider (which
/// no Alert hears, so a failing Provider cannot feed itself).
fn deliver(out: &Out, provider: Arc<Provider>, event: Notification, alert: String) {
    if provider.spec.suspend {
        return;
    }
    let Out {
        client,
        sender,
        recorder,
    } = out.clone();
    tokio::spawn(async move {
        let provider_name = format!(
            "{}/{}",
            provider.namespace().unwrap_or_default(),
            provider.name_any()
        );
        let config = match provider_config(&client, &provider).await {
            Ok(config) => config,
            Err(error) => {
                tracing::warn!(%alert, provider = %provider_name, %error, "the Provider cannot be used; nothing sent");
                return;
            }
        };
        match sender
            .deliver(&config, &event, provider_timeout(&provider))
            .await
        {
            Ok(sent) => {
                tracing::debug!(%alert, provider = %provider_name, sent, object = %event.involved_object.display(), "notification delivered")
            }
            Err(e) => {
                let error = crate::runtime::text::error_chain(&e);
                tracing::warn!(
                    %alert,
                    provider = %provider_name,
                    object = %event.involved_object.display(),
                    %error,
                    "delivering a notification failed"
                );
                let failed = EventPlan {
                    warning: true,
                    reason: NotificationReason::DeliveryFailed.as_str(),
                    message: format!(
                        "delivering the {} Event of {} (alert {alert}) failed: {error}",
                        event.reason,
                        event.involved_object.display()
                    ),
                    action: "Notify".into(),
                };
                // Recorded, not published: no Alert hears it, so a failing Provider cannot
                // feed itself.
                events::record(&recorder, &provider.object_ref(&()), &failed).await;
            }
        }
    });
}

/// The labels of the object `event` is about (read once per Event, only when an Alert selects
/// by label).
async fn object_labels(client: &Client, event: &Notification) -> Option<BTreeMap<String, String>> {
    let o = &event.involved_object;
    let (group, version) = o.api_version.as_deref()?.split_once('/')?;
    let gvk = GroupVersionKind::gvk(group, version, &o.kind);
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.ok()?;
    let resource: ApiResource = resource;
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &o.namespace, &resource);
    api.get_opt(&o.name)
        .await
        .ok()
        .flatten()
        .map(|obj| obj.labels().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::events::EventPlan;

    #[test]
    fn events_become_notifications_with_their_revision() {
        let published = Published {
            regarding: k8s_openapi::api::core::v1::ObjectReference {
                api_version: Some("sluice.dev/v1alpha1".into()),
                kind: Some("Kustomization".into()),
                namespace: Some("shop".into()),
                name: Some("web".into()),
                ..Default::default()
            },
            plan: EventPlan {
                warning: true,
                reason: "HealthCheckFailed",
                message: "Deployment/shop/web not ready".into(),
                action: "Reconcile".into(),
            },
            reporter: "sluice-kustomize".into(),
            revision: Some("main@sha1:ab".into()),
            recipients: Vec::new(),
            metadata: [("canaryWeight".to_string(), "10".to_string())].into(),
        };
        let n = notification(&published, Some("sluice-0".into()));
        assert_eq!(n.severity, Severity::Error);
        assert_eq!(n.revision(), Some("main@sha1:ab"));
        assert_eq!(n.metadata["canaryWeight"], "10");
        assert_eq!(n.involved_object.display(), "Kustomization/shop/web");
        assert_eq!(n.reporting_instance.as_deref(), Some("sluice-0"));
    }
}
