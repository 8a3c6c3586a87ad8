//! A no-op reconcile writes nothing (objects and inventory alike): measured with the API server's own request counters
//! (`apiserver_request_total`), not inferred from resourceVersions. Alone in its test binary so
//! that no other test writes the same kinds while it measures.

mod support;

use std::collections::BTreeMap;

use kube::Client;
use serde_json::{Value, json};
use sluice::apply::applier::{Applier, ApplyOptions, Owner};
use sluice::apply::changeset::Action;
use sluice::apply::reconcile::{ReconcileOptions, reconcile};
use sluice::apply::store::ConfigMapStore;

const RESOURCES: &[&str] = &[
    "configmaps",
    "secrets",
    "serviceaccounts",
    "services",
    "roles",
    "rolebindings",
    "podtemplates",
];

/// Requests per (verb, resource) for the resources above, main resource only. Server-side apply
/// counts as verb APPLY; dry runs count under their verb with a `DRYRUN-` prefix.
async fn requests(client: &Client) -> BTreeMap<(String, String), f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.expect("GET /metrics");
    let mut counts = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let label = |key: &str| {
            let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
            Some(labels[start..].split('"').next()?.to_string())
        };
        let (Some(verb), Some(resource)) = (label("verb"), label("resource")) else {
            continue;
        };
        if RESOURCES.contains(&resource.as_str()) && label("subresource").as_deref() == Some("") {
            let verb = match label("dry_run").as_deref() {
                Some("") | None => verb,
                Some(_) => format!("DRYRUN-{verb}"),
            };
            *counts.entry((verb, resource)).or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    counts
}

/// The counters once they stop moving: the API server counts a request after answering it, so
/// the last requests of a run may land a moment after the client saw their responses.
async fn settled(client: &Client) -> BTreeMap<(String, String), f64> {
    let mut last = requests(client).await;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let now = requests(client).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

fn objects(ns: &str) -> Vec<Value> {
    let mut set = Vec::new();
    for i in 0..10 {
        set.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": ns}, "data": {"i": i.to_string()}}));
        set.push(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("s-{i}"), "namespace": ns}, "stringData": {"password": format!("p{i}")}}));
    }
    set.push(json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "app", "namespace": ns}}));
    set.push(
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app", "namespace": ns},
        "spec": {"selector": {"app": "app"}, "ports": [{"port": 80}]}}),
    );
    set.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "app", "namespace": ns},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}));
    set.push(json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "app", "namespace": ns},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "app"},
        "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": ns}]}));
    set.push(json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "app", "namespace": ns},
        "template": {"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}));
    set
}

#[tokio::test]
async fn a_no_op_apply_makes_zero_write_requests() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "apply-noop").await;
    let applier = Applier::new(client.clone());
    // A whole reconcile, inventory included: its ConfigMap is not rewritten either.
    let store = ConfigMapStore::new(client.clone(), ns.name(), "noop");
    let options = ReconcileOptions {
        apply: ApplyOptions::default(),
        owner: Owner {
            name: "noop".into(),
            namespace: "tests".into(),
        },
        prune: true,
        allow_empty: false,
    };

    let first = reconcile(&applier, &store, objects(ns.name()), &options)
        .await
        .unwrap()
        .applied;
    assert_eq!(first.count(Action::Created), 25, "{first}");

    let before = settled(&client).await;
    let second = reconcile(&applier, &store, objects(ns.name()), &options)
        .await
        .unwrap()
        .applied;
    let after = settled(&client).await;
    assert_eq!(second.count(Action::Unchanged), 25, "{second}");
    let delta = |verb: &str, resource: &str| {
        let key = (verb.to_string(), resource.to_string());
        after.get(&key).copied().unwrap_or(0.0) - before.get(&key).copied().unwrap_or(0.0)
    };
    // sluice creates and changes objects only with server-side apply (and PATCH for field
    // takeover). POSTs and DELETEs are left out: the controller-manager creates a ConfigMap in
    // every new namespace and empties deleted ones, whoever made them.
    let made: Vec<String> = RESOURCES
        .iter()
        .flat_map(|r| ["PUT", "PATCH", "APPLY"].map(|v| (v, *r)))
        .filter(|(v, r)| delta(v, r) > 0.0)
        .map(|(v, r)| format!("{v} {r}: {}", delta(v, r)))
        .collect();
    assert!(made.is_empty(), "the no-op apply wrote: {made:?}");
    // Nor does it ask for dry runs: every object's live state already holds its manifest.
    let asked: Vec<String> = RESOURCES
        .iter()
        .flat_map(|r| ["DRYRUN-APPLY", "DRYRUN-PATCH"].map(|v| (v, *r)))
        .filter(|(v, r)| delta(v, r) > 0.0)
        .map(|(v, r)| format!("{v} {r}: {}", delta(v, r)))
        .collect();
    assert!(asked.is_empty(), "the no-op apply dry-ran: {asked:?}");
    // In all: one LIST for each kind with several objects, one GET for each other object, one
    // for the inventory.
    let total: f64 = after
        .iter()
        .map(|(k, v)| v - before.get(k).copied().unwrap_or(0.0))
        .sum();
    assert!(
        total <= 8.0,
        "{total} requests for a no-op of 25 objects: {after:?} / {before:?}"
    );
    // And it reads little: the ten ConfigMaps and ten Secrets are listed, not fetched one by one
    // (the one ConfigMap GET is the inventory).
    let reads = format!(
        "GET configmaps {}, GET secrets {}, LIST configmaps {}, LIST secrets {}",
        delta("GET", "configmaps"),
        delta("GET", "secrets"),
        delta("LIST", "configmaps"),
        delta("LIST", "secrets")
    );
    assert!(
        delta("GET", "configmaps") <= 1.0 && delta("GET", "secrets") == 0.0,
        "{reads}"
    );
    assert!(
        delta("LIST", "configmaps") >= 1.0 && delta("LIST", "secrets") >= 1.0,
        "{reads}"
    );

    // The counter does see our writes: a real change shows up.
    let mut changed = objects(ns.name());
    changed[0]["data"]["i"] = json!("changed");
    reconcile(&applier, &store, changed, &options)
        .await
        .unwrap();
    let after_change = settled(&client).await;
    let key = ("APPLY".to_string(), "configmaps".to_string());
    assert!(
        after_change.get(&key).copied().unwrap_or(0.0) > after.get(&key).copied().unwrap_or(0.0)
    );
    ns.cleanup(&client).await;
}
