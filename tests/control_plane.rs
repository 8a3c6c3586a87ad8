//! The test control plane is a real Kubernetes: a recent kube-apiserver, and a controller-manager,
//! scheduler and fake node that run Deployments to Available and garbage-collect what they own.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{Condition, await_condition};
use kube::{Api, Client};

const WAIT: Duration = Duration::from_secs(120);

#[tokio::test]
async fn apiserver_reports_a_real_recent_version() {
    let client = support::client().await;
    let info = client.apiserver_version().await.expect("GET /version");
    assert_eq!(info.major, "1", "unexpected /version: {info:?}");
    let minor: u32 = info
        .minor
        .trim_end_matches('+')
        .parse()
        .unwrap_or_else(|_| panic!("minor version is not a number: {info:?}"));
    assert!(minor >= 36, "kube-apiserver is older than v1.36: {info:?}");
    assert!(
        info.git_version.starts_with(&format!("v1.{minor}.")),
        "gitVersion does not match the minor version: {info:?}"
    );
}

#[tokio::test]
async fn deployment_becomes_available_then_is_garbage_collected() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "control-plane").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());

    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "registry.test/web:1.0.0" }] }
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let available = await_condition(deployments.clone(), "web", is_available());
    let Ok(available) = tokio::time::timeout(WAIT, available).await else {
        panic!(
            "Deployment not Available in time: {}",
            describe(&client, ns.name()).await
        )
    };
    let available = available.unwrap().expect("the Deployment exists");
    assert_eq!(available.status.unwrap().available_replicas, Some(2));

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), ns.name());
    let by_app = ListParams::default().labels("app=web");
    assert_eq!(replica_sets.list(&by_app).await.unwrap().items.len(), 1);
    assert_eq!(pods.list(&by_app).await.unwrap().items.len(), 2);

    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    let gone = async {
        loop {
            let left = replica_sets.list(&by_app).await.unwrap().items.len()
                + pods.list(&by_app).await.unwrap().items.len();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    if tokio::time::timeout(WAIT, gone).await.is_err() {
        panic!(
            "ReplicaSet and Pods not collected: {}",
            describe(&client, ns.name()).await
        )
    }

    ns.cleanup(&client).await;
}

fn is_available() -> impl Condition<Deployment> {
    |deployment: Option<&Deployment>| {
        deployment.is_some_and(|d| {
            let wanted = d.spec.replicas.unwrap_or(1);
            d.status.as_ref().and_then(|s| s.available_replicas) == Some(wanted)
        })
    }
}

/// What the namespace holds, for failure messages.
async fn describe(client: &Client, namespace: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default()).await;
    match list {
        Ok(list) => list
            .items
            .iter()
            .map(|p| {
                let name = p.metadata.name.clone().unwrap_or_default();
                let phase = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                format!("pod {name} {phase}")
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(err) => format!("(could not list pods: {err})"),
    }
}
