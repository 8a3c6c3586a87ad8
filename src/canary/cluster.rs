//! The analyzer's own reads and writes of the objects it generates and the fields it owns:
//! server-side apply with its field manager, gets and deletes by kind. Talks to the API server.

use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::Value;

use super::objects::FIELD_MANAGER;

/// The kinds the analyzer writes: (apiVersion, kind, plural).
const KINDS: &[(&str, &str, &str)] = &[
    ("apps/v1", "Deployment", "deployments"),
    ("apps/v1", "DaemonSet", "daemonsets"),
    ("v1", "Service", "services"),
    ("v1", "ConfigMap", "configmaps"),
    ("v1", "Secret", "secrets"),
    (
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    ),
    ("gateway.networking.k8s.io/v1", "HTTPRoute", "httproutes"),
    ("networking.k8s.io/v1", "Ingress", "ingresses"),
    (
        "networking.istio.io/v1",
        "VirtualService",
        "virtualservices",
    ),
    (
        "networking.istio.io/v1",
        "DestinationRule",
        "destinationrules",
    ),
    ("projectcontour.io/v1", "HTTPProxy", "httpproxies"),
    ("traefik.io/v1alpha1", "TraefikService", "traefikservices"),
];

/// The resource of a kind the analyzer writes.
pub fn resource(api_version: &str, kind: &str) -> ApiResource {
    let plural = KINDS
        .iter()
        .find(|(v, k, _)| *v == api_version && *k == kind)
        .map(|(_, _, p)| *p)
        .unwrap_or_else(|| panic!("the analyzer does not write {api_version} {kind}"));
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn api_for(client: &Client, namespace: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &resource(api_version, kind))
}

fn field<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// Server-side applies `object` (which names its kind, name and namespace) as the analyzer,
/// taking over conflicting fields; returns the object as the API server stored it.
pub async fn apply(client: &Client, object: &Value) -> Result<Value, kube::Error> {
    let api = api_for(
        client,
        field(object, "/metadata/namespace"),
        field(object, "/apiVersion"),
        field(object, "/kind"),
    );
    let applied = api
        .patch(
            field(object, "/metadata/name"),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?;
    Ok(serde_json::to_value(applied).expect("objects serialize"))
}

/// Reads an object; `None` when it does not exist.
pub async fn get(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Result<Option<Value>, kube::Error> {
    let found = api_for(client, namespace, api_version, kind)
        .get_opt(name)
        .await?;
    Ok(found.map(|o| serde_json::to_value(o).expect("objects serialize")))
}

/// Deletes an object; one that is already gone is not an error.
pub async fn delete(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
    name: &str,
) -> Result<(), kube::Error> {
    match api_for(client, namespace, api_version, kind)
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
