//! A no-op apply writes nothing: measured with the API server's own request counters
//! (`apiserver_request_total`), not inferred from resourceVersions. Alone in its test binary so
//! that no other test writes the same kinds while it measures.

mod support;

use std::collections::BTreeMap;

use kube::Client;
use serde_json::{Value, json};
use sluice::apply::applier::{Applier, ApplyOptions, Owner};
use sluice::apply::changeset::Action;

const RESOURCES: &[&str] = &[
    "configmaps",
    "secrets",
    "serviceaccounts",
    "services",
    "roles",
    "rolebindings",
    "podtemplates",
];

/// Write requests per (verb, resource) for the resources above, main resource only, real (not
/// dry-run). Server-side apply counts as verb APPLY; sluice creates and changes objects only with
/// it (and PATCH for field takeover). POSTs and DELETEs are left out: the controller-manager
/// creates a ConfigMap in every new namespace and empties deleted ones, whoever made them.
async fn writes(client: &Client) -> BTreeMap<(String, String), f64> {
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
        let is_write = matches!(verb.as_str(), "PUT" | "PATCH" | "APPLY");
        if is_write
            && RESOURCES.contains(&resource.as_str())
            && label("dry_run").as_deref() == Some("")
            && label("subresource").as_deref() == Some("")
        {
            *counts.entry((verb, resource)).or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    counts
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
    let options = ApplyOptions {
        owner: Some(Owner {
            name: "noop".into(),
            namespace: "tests".into(),
        }),
        ..Default::default()
    };

    let first = applier.apply(objects(ns.name()), &options).await.unwrap();
    assert_eq!(first.count(Action::Created), 25, "{first}");

    let before = writes(&client).await;
    let second = applier.apply(objects(ns.name()), &options).await.unwrap();
    let after = writes(&client).await;
    assert_eq!(second.count(Action::Unchanged), 25, "{second}");
    let made: Vec<String> = after
        .iter()
        .filter(|(key, count)| before.get(*key).copied().unwrap_or(0.0) < **count)
        .map(|((verb, resource), count)| {
            format!(
                "{verb} {resource}: {}",
                count
                    - before
                        .get(&(verb.clone(), resource.clone()))
                        .copied()
                        .unwrap_or(0.0)
            )
        })
        .collect();
    assert!(made.is_empty(), "the no-op apply wrote: {made:?}");

    // The counter does see our writes: a real change shows up.
    let mut changed = objects(ns.name());
    changed[0]["data"]["i"] = json!("changed");
    applier.apply(changed, &options).await.unwrap();
    let after_change = writes(&client).await;
    let key = ("APPLY".to_string(), "configmaps".to_string());
    assert!(
        after_change.get(&key).copied().unwrap_or(0.0) > after.get(&key).copied().unwrap_or(0.0)
    );
    ns.cleanup(&client).await;
}
