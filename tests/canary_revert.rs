//! Deleting a Canary on the real API server (pods on kwok's node). With `revertOnDeletion` the
//! target gets its traffic back before the Canary goes: scaled like the primary, selected by an
//! apex Service the Canary no longer owns, while the primary and the other generated objects go
//! with the Canary. Without it, everything the Canary generated goes and the target stays as the
//! analysis left it, scaled to zero. A target deleted before its Canary does not hold the
//! Canary's deletion.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use serde_json::json;
use sluice::api::canary::Canary;
use support::canary::{self as c, Analyzer, wait_canary};
use support::node::eventually;

const LONG: Duration = Duration::from_secs(300);

fn canary(name: &str, revert: bool) -> serde_json::Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "revertOnDeletion": revert,
            "progressDeadlineSeconds": 60,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": {"interval": "10s", "threshold": 1, "iterations": 2},
        },
    })
}

/// The apex Service once `check` holds for the target's replicas and that Service.
async fn wait_for_target(
    client: &kube::Client,
    ns: &str,
    name: &str,
    what: &str,
    check: impl Fn(Option<i32>, &Service) -> bool,
) -> Service {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    eventually(LONG, &format!("{name}: {what}"), || async {
        let target = deployments.get(name).await.map_err(|e| e.to_string())?;
        let replicas = target.spec.replicas;
        let apex = services.get(name).await.map_err(|e| e.to_string())?;
        if check(replicas, &apex) {
            Ok(apex)
        } else {
            Err(format!("replicas {replicas:?}, apex {:?}", apex.spec))
        }
    })
    .await
}

fn selector(service: &Service) -> String {
    let selector = service.spec.as_ref().and_then(|s| s.selector.as_ref());
    let pairs: Vec<String> = selector
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    pairs.join(",")
}

fn owned(service: &Service) -> bool {
    service
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|owners| !owners.is_empty())
}

/// Waits until none of `names` is left in `api`.
async fn wait_gone<K>(api: &Api<K>, names: &[String], what: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    eventually(LONG, what, || async {
        let mut left = Vec::new();
        for name in names {
            if api
                .get_opt(name)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
            {
                left.push(name.clone());
            }
        }
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("still there: {left:?}"))
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_canary_gives_its_target_the_traffic_back_only_when_asked() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "canary-revert").await;
    let n = ns.name().to_string();
    let analyzer = Analyzer::start(&client, &n, None);
    let canaries: Api<Canary> = Api::namespaced(client.clone(), &n);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let services: Api<Service> = Api::namespaced(client.clone(), &n);

    for (name, revert) in [("kept", true), ("dropped", false), ("orphan", true)] {
        let mut target = c::kwok_deployment(name);
        target["spec"]["replicas"] = json!(3);
        c::create(&client, &n, target).await;
        c::create(&client, &n, canary(name, revert)).await;
    }
    for name in ["kept", "dropped", "orphan"] {
        wait_canary(&client, &n, name, LONG, "initialized", |s| {
            c::phase(s) == "Initialized"
        })
        .await;
        // The analysis's starting point: the primary serves, the target is scaled to zero.
        let apex = wait_for_target(&client, &n, name, "scaled to zero", |replicas, _| {
            replicas == Some(0)
        })
        .await;
        assert_eq!(selector(&apex), format!("app={name}-primary"));
        assert!(owned(&apex), "{name}: the apex Service is the Canary's");
    }
    let finalizers = |canary: &Canary| canary.metadata.finalizers.clone().unwrap_or_default();
    assert_eq!(
        finalizers(&canaries.get("kept").await.unwrap()),
        ["sluice.dev/canary"]
    );
    assert!(finalizers(&canaries.get("dropped").await.unwrap()).is_empty());

    // A target deleted first leaves nothing to revert: the Canary's deletion does not hang on it.
    deployments
        .delete("orphan", &Default::default())
        .await
        .unwrap();
    wait_gone(
        &deployments,
        &["orphan".into()],
        "the target orphan deleted",
    )
    .await;

    for name in ["kept", "dropped", "orphan"] {
        canaries.delete(name, &Default::default()).await.unwrap();
    }
    wait_gone(
        &canaries,
        &["kept".into(), "dropped".into(), "orphan".into()],
        "the Canaries deleted",
    )
    .await;

    // revertOnDeletion: the target scaled like the primary and selected by the apex Service,
    // which outlives the Canary; the primary and its Services go.
    let apex = wait_for_target(&client, &n, "kept", "reverted", |replicas, apex| {
        replicas == Some(3) && selector(apex) == "app=kept"
    })
    .await;
    assert!(!owned(&apex), "{:?}", apex.metadata.owner_references);
    wait_gone(
        &deployments,
        &[
            "kept-primary".into(),
            "dropped-primary".into(),
            "orphan-primary".into(),
        ],
        "the primaries deleted with their Canaries",
    )
    .await;
    let generated = [
        "kept-primary",
        "kept-canary",
        "dropped-primary",
        "dropped-canary",
    ];
    wait_gone(
        &services,
        &generated.map(String::from),
        "the generated Services deleted with their Canaries",
    )
    .await;
    // The apex Service of the reverted Canary is still there after its owners' objects went.
    let apex = services.get("kept").await.unwrap();
    assert_eq!(selector(&apex), "app=kept");

    // Without revertOnDeletion: the apex Service went with the Canary, the target stays at zero.
    wait_gone(
        &services,
        &["dropped".into()],
        "the apex Service of dropped",
    )
    .await;
    let dropped = deployments.get("dropped").await.unwrap();
    assert_eq!(dropped.spec.replicas, Some(0));
    drop(analyzer);
    ns.cleanup(&client).await;
}
