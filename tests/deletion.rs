//! Deleting a Kustomization: the finalizer holds it until its deletionPolicy is carried out on
//! the real control plane. MirrorPrune deletes what it applied when prune is on and leaves it
//! when off; Delete deletes regardless of prune; Orphan and a suspended Kustomization leave
//! everything; WaitForTermination keeps the Kustomization until its objects are gone.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;
use sluice::api::kustomization::Kustomization;
use support::in_process::Agent;
use support::node::eventually;

fn config(name: &str, finalizer: bool) -> String {
    let finalizers = if finalizer {
        "  finalizers: [sluice.dev/test-hold]\n"
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{finalizers}data:\n  a: b\n"
    )
}

#[tokio::test]
async fn deletion_policies() {
    let agent = Agent::start("delete").await;
    let client = agent.client.clone();
    // One directory per Kustomization, each with a ConfigMap of its own name.
    let cases = [
        ("mirror", json!({"prune": true})),
        ("mirror-noprune", json!({"prune": false})),
        (
            "delete",
            json!({"prune": false, "deletionPolicy": "Delete"}),
        ),
        ("orphan", json!({"prune": true, "deletionPolicy": "Orphan"})),
        (
            "suspended",
            json!({"prune": true, "deletionPolicy": "Delete"}),
        ),
        (
            "wait",
            json!({"prune": true, "deletionPolicy": "WaitForTermination"}),
        ),
    ];
    let files: Vec<(String, String)> = cases
        .iter()
        .map(|(name, _)| (format!("{name}/config.yaml"), config(name, *name == "wait")))
        .collect();
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let revision = agent.push(&files);
    agent.create_source("app", "1s").await;
    for (name, extra) in &cases {
        agent
            .create_kustomization(name, "app", &format!("./{name}"), extra.clone())
            .await;
    }
    let api: Api<Kustomization> = Api::namespaced(client.clone(), agent.ns());
    for (name, _) in &cases {
        agent.wait_applied(name, &revision).await;
        let k = api.get(name).await.unwrap();
        assert_eq!(
            k.metadata.finalizers.as_deref(),
            Some(&["finalizers.sluice.dev".to_string()][..]),
            "{name} carries the finalizer"
        );
    }
    api.patch(
        "suspended",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;

    for (name, _) in &cases {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let gone = |name: &'static str| {
        let api = api.clone();
        async move {
            eventually(
                Duration::from_secs(60),
                &format!("Kustomization {name} gone"),
                || async {
                    match api.get_opt(name).await {
                        Ok(None) => Ok(()),
                        other => Err(format!("{other:?}")),
                    }
                },
            )
            .await
        }
    };
    for name in ["mirror", "mirror-noprune", "delete", "orphan", "suspended"] {
        gone(name).await;
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), agent.ns());
    let exists = |name: &str| {
        let cms = cms.clone();
        let name = name.to_string();
        async move {
            cms.get_opt(&name)
                .await
                .unwrap()
                .is_some_and(|cm| cm.metadata.deletion_timestamp.is_none())
        }
    };
    assert!(!exists("mirror").await, "MirrorPrune with prune deletes");
    assert!(
        exists("mirror-noprune").await,
        "MirrorPrune without prune keeps"
    );
    assert!(!exists("delete").await, "Delete deletes without prune");
    assert!(exists("orphan").await, "Orphan keeps");
    assert!(exists("suspended").await, "a suspended Kustomization keeps");

    // WaitForTermination: the ConfigMap is terminating (held by its own finalizer), and so the
    // Kustomization stays until it is gone.
    let held = eventually(
        Duration::from_secs(30),
        "the held ConfigMap terminating",
        || async {
            match cms.get_opt("wait").await {
                Ok(Some(cm)) if cm.metadata.deletion_timestamp.is_some() => Ok(cm),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        api.get_opt("wait").await.unwrap().is_some(),
        "WaitForTermination let the Kustomization go while its object was terminating"
    );
    cms.patch(
        "wait",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null, "resourceVersion": held.metadata.resource_version}})),
    )
    .await
    .unwrap();
    gone("wait").await;
    assert!(!exists("wait").await);

    // Each deletion said what it did.
    let events: Api<Event> = Api::namespaced(client.clone(), agent.ns());
    let listed = events.list(&ListParams::default()).await.unwrap().items;
    let said = |name: &str, reason: &str| {
        listed.iter().any(|e| {
            e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason)
        })
    };
    assert!(said("mirror", "GarbageCollected"));
    assert!(said("orphan", "Orphaned"));
    assert!(said("wait", "GarbageCollected"));

    agent.finish().await;
}
