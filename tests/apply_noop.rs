//! A no-op reconcile writes nothing (objects and inventory alike): measured with the API server's
//! own request counters (`apiserver_request_total`), not inferred from resourceVersions. How many
//! requests it sends at all is counted on the client side, since the controller-manager's own
//! requests (emptying namespaces that earlier tests deleted) land in the same server counters.
//! Alone in its test binary so that no other test writes the same kinds while it measures.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::Client;
use kube::client::{Body, ClientBuilder};
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

/// Every request a client sends, as `METHOD path?query`.
#[derive(Clone, Default)]
struct Sent(Arc<Mutex<Vec<String>>>);

impl Sent {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A client for the test cluster that notes each request in `sent` before sending it.
async fn counting_client(sent: &Sent) -> Client {
    let config = support::client_config().await;
    let sent = sent.clone();
    let layer = tower::util::MapRequestLayer::new(move |request: http::Request<Body>| {
        let line = format!("{} {}", request.method(), request.uri());
        sent.0.lock().unwrap().push(line);
        request
    });
    ClientBuilder::try_from(config)
        .expect("a client for the test cluster")
        .with_layer(&layer)
        .build()
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
    let sent = Sent::default();
    let counted = counting_client(&sent).await;
    let applier = Applier::new(counted.clone());
    // A whole reconcile, inventory included: its ConfigMap is not rewritten either.
    let store = ConfigMapStore::new(counted.clone(), ns.name(), "noop");
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
    sent.take();
    let second = reconcile(&applier, &store, objects(ns.name()), &options)
        .await
        .unwrap()
        .applied;
    let after = settled(&client).await;
    let requests_sent = sent.take();
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
    assert!(
        requests_sent.len() <= 8,
        "{} requests for a no-op of 25 objects: {requests_sent:#?}",
        requests_sent.len()
    );
    // And it reads little: the ten ConfigMaps and ten Secrets are listed, not fetched one by one
    // (the one ConfigMap GET is the inventory).
    let collection = |kind: &str| format!("/api/v1/namespaces/{}/{kind}", ns.name());
    let count = |kind: &str, listed: bool| {
        requests_sent
            .iter()
            .filter_map(|line| line.strip_prefix("GET "))
            .filter(|uri| {
                let path = uri.split('?').next().unwrap_or(uri);
                match path.strip_prefix(&collection(kind)) {
                    Some("") => listed,
                    Some(rest) => !listed && rest.starts_with('/'),
                    None => false,
                }
            })
            .count()
    };
    let reads = format!(
        "GET configmaps {}, GET secrets {}, LIST configmaps {}, LIST secrets {}: {requests_sent:#?}",
        count("configmaps", false),
        count("secrets", false),
        count("configmaps", true),
        count("secrets", true),
    );
    assert!(
        count("configmaps", false) <= 1 && count("secrets", false) == 0,
        "{reads}"
    );
    assert!(
        count("configmaps", true) >= 1 && count("secrets", true) >= 1,
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
