//! Serves the Receivers' webhooks: `POST /hook/<digest>` finds the Receiver whose
//! `status.webhookPath` it is, verifies the request with its Secret (`receiver::verify`) and
//! asks each of its resources to reconcile now (the `sluice.dev/requestedAt` annotation). A
//! wrong or missing signature is answered 401 and triggers nothing; a Receiver whose resources
//! leave its namespace on an agent that refuses that is answered 403 and triggers nothing.
//! Network I/O and the API server.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use futures::StreamExt;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use super::controllers::receiver_token;
use super::receiver::{Verdict, verify};
use crate::api::notification::{CrossNamespaceObjectReference, Receiver};
use crate::api::{GROUP, REQUESTED_AT_ANNOTATION};
use crate::runtime::references::CrossNamespaceRefs;

struct Hooks {
    client: Client,
    receivers: Store<Receiver>,
    refs: CrossNamespaceRefs,
}

/// Watches the Receivers (of `namespace`, or all) and serves their webhooks on `listener`.
pub async fn serve(
    client: Client,
    namespace: Option<String>,
    refs: CrossNamespaceRefs,
    listener: tokio::net::TcpListener,
) {
    let api: Api<Receiver> = super::controllers::api(&client, namespace.as_deref());
    let (receivers, writer) = reflector::store();
    let watch = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .applied_objects()
        .for_each(|_| async {});
    let hooks = Arc::new(Hooks {
        client,
        receivers,
        refs,
    });
    let router = Router::new()
        .route("/hook/{digest}", post(hook))
        .with_state(hooks);
    tokio::select! {
        () = watch => {}
        () = crate::runtime::server::serve(listener, router) => {}
    }
}

async fn hook(
    State(hooks): State<Arc<Hooks>>,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let path = format!("/hook/{digest}");
    let Some(receiver) =
        hooks.receivers.state().into_iter().find(|r| {
            r.status.as_ref().and_then(|s| s.webhook_path.as_deref()) == Some(path.as_str())
        })
    else {
        return (StatusCode::NOT_FOUND, "no Receiver listens here\n".into());
    };
    let name = format!(
        "{}/{}",
        receiver.namespace().unwrap_or_default(),
        receiver.name_any()
    );
    if receiver.spec.suspend {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("Receiver {name} is suspended\n"),
        );
    }
    let token = match receiver_token(&hooks.client, &receiver).await {
        Ok(token) => token,
        Err(error) => {
            tracing::warn!(receiver = %name, %error, "the Receiver's token cannot be read");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the Receiver's Secret cannot be read\n".into(),
            );
        }
    };
    match verify(
        receiver.spec.type_,
        &receiver.spec.events,
        &headers,
        &body,
        &token,
    ) {
        Err(e) => {
            tracing::warn!(receiver = %name, error = %e, "webhook refused");
            (StatusCode::UNAUTHORIZED, format!("{e}\n"))
        }
        Ok(Verdict::Ignore(why)) => {
            tracing::info!(receiver = %name, %why, "webhook ignored");
            (StatusCode::OK, format!("ignored: {why}\n"))
        }
        Ok(Verdict::Trigger) => {
            let ns = receiver.namespace().unwrap_or_default();
            let resources = super::references("spec.resources", &receiver.spec.resources);
            if let Err(refused) = hooks.refs.check(&ns, resources) {
                tracing::warn!(receiver = %name, %refused, "webhook refused");
                return (StatusCode::FORBIDDEN, format!("{refused}\n"));
            }
            let requested = k8s_openapi::jiff::Timestamp::now().to_string();
            let mut triggered = Vec::new();
            let mut failed = Vec::new();
            for resource in &receiver.spec.resources {
                match annotate(&hooks.client, &ns, resource, &requested).await {
                    Ok(names) => triggered.extend(names),
                    Err(e) => failed.push(e),
                }
            }
            tracing::info!(receiver = %name, triggered = ?triggered, "webhook accepted");
            if failed.is_empty() {
                (
                    StatusCode::OK,
                    format!("reconciling {}\n", triggered.join(", ")),
                )
            } else {
                tracing::warn!(receiver = %name, failed = ?failed, "some resources could not be triggered");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}\n", failed.join("; ")),
                )
            }
        }
    }
}

/// Sets the manual-trigger annotation on the objects `resource` names; returns them.
async fn annotate(
    client: &Client,
    default_ns: &str,
    resource: &CrossNamespaceObjectReference,
    requested: &str,
) -> Result<Vec<String>, String> {
    let api_version = resource
        .api_version
        .clone()
        .unwrap_or_else(|| format!("{GROUP}/v1alpha1"));
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = GroupVersionKind::gvk(group, version, &resource.kind);
    let (api_resource, _): (ApiResource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .map_err(|e| format!("{api_version} {}: {e}", resource.kind))?;
    let ns = resource.namespace.as_deref().unwrap_or(default_ns);
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &api_resource);
    let names = if resource.name == "*" {
        let selector: Vec<String> = resource
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        api.list(&ListParams::default().labels(&selector.join(",")))
            .await
            .map_err(|e| format!("listing {} in {ns}: {e}", resource.kind))?
            .items
            .into_iter()
            .map(|o| o.name_any())
            .collect()
    } else {
        vec![resource.name.clone()]
    };
    let patch =
        serde_json::json!({"metadata": {"annotations": {REQUESTED_AT_ANNOTATION: requested}}});
    let mut done = Vec::new();
    for name in names {
        api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("{} {ns}/{name}: {e}", resource.kind))?;
        done.push(format!("{}/{ns}/{name}", resource.kind));
    }
    Ok(done)
}
