//! A Canary of a DaemonSet on the real API server (its pods on kwok's node): initialized into a
//! primary DaemonSet with the target scaled to zero by a node selector no node matches; a new
//! image runs the target again for the analysis, is promoted into the primary, and the target
//! is scaled to zero again; the apex Service selects the primary. A DaemonSet with pod-count
//! weights is refused by name.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use sluice::canary::workload::SCALE_TO_ZERO;
use support::canary::{self as c, Analyzer, wait_canary};
use support::node::eventually;

const LONG: Duration = Duration::from_secs(300);

fn daemon_set(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "nodeSelector": {"kubernetes.io/os": "linux"},
                "containers": [{"name": "app", "image": "example.com/agent:v1", "ports": [{"name": "http", "containerPort": 8080}]}],
            }},
        },
    })
}

fn canary(name: &str, analysis: Value) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name},
            "progressDeadlineSeconds": 60,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": analysis,
        },
    })
}

/// The image, node selector and ready pods of a DaemonSet.
async fn seen(api: &Api<DaemonSet>, name: &str) -> Option<(String, Value, i32)> {
    let ds = api.get_opt(name).await.unwrap()?;
    let value = serde_json::to_value(&ds).unwrap();
    Some((
        value["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        value["spec"]["template"]["spec"]["nodeSelector"].clone(),
        ds.status.map_or(0, |s| s.number_ready),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_set_is_analysed_promoted_and_scaled_to_zero_by_node_selector() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "canary-ds").await;
    let n = ns.name().to_string();
    let _analyzer = Analyzer::start(&client, &n, None);
    let daemon_sets: Api<DaemonSet> = Api::namespaced(client.clone(), &n);
    c::create(&client, &n, daemon_set("agent")).await;
    c::create(&client, &n, daemon_set("ratio")).await;
    c::create(
        &client,
        &n,
        canary(
            "agent",
            json!({"interval": "5s", "threshold": 1, "iterations": 3}),
        ),
    )
    .await;
    c::create(
        &client,
        &n,
        canary("ratio", json!({"interval": "5s", "stepWeight": 20})),
    )
    .await;

    // Initialized: the primary runs v1 on the node, the target runs nowhere.
    wait_canary(&client, &n, "agent", LONG, "initialized", |s| {
        c::phase(s) == "Initialized"
    })
    .await;
    let scaled_to_zero = json!({"kubernetes.io/os": "linux", SCALE_TO_ZERO: "true"});
    eventually(
        LONG,
        "the primary running and the target scaled to zero",
        || async {
            let primary = seen(&daemon_sets, "agent-primary").await;
            let target = seen(&daemon_sets, "agent").await;
            match (&primary, &target) {
                (Some((image, _, 1..)), Some((_, selector, 0)))
                    if image == "example.com/agent:v1" && *selector == scaled_to_zero =>
                {
                    Ok(())
                }
                _ => Err(format!("primary {primary:?}, target {target:?}")),
            }
        },
    )
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), &n);
    let apex = services.get("agent").await.unwrap();
    assert_eq!(apex.spec.unwrap().selector.unwrap()["app"], "agent-primary");

    // A new image: the target runs again for the analysis, then is promoted.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "example.com/agent:v2"}]}}}});
    daemon_sets
        .patch("agent", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    eventually(LONG, "the target running v2 for the analysis", || async {
        let target = seen(&daemon_sets, "agent").await;
        match &target {
            Some((image, selector, 1..))
                if image == "example.com/agent:v2"
                    && *selector == json!({"kubernetes.io/os": "linux"}) =>
            {
                Ok(())
            }
            _ => Err(format!("target {target:?}")),
        }
    })
    .await;
    wait_canary(&client, &n, "agent", LONG, "promoted", |s| {
        c::phase(s) == "Succeeded"
    })
    .await;
    eventually(
        LONG,
        "the primary on v2 and the target scaled to zero again",
        || async {
            let primary = seen(&daemon_sets, "agent-primary").await;
            let target = seen(&daemon_sets, "agent").await;
            match (&primary, &target) {
                (Some((image, _, 1..)), Some((_, selector, 0)))
                    if image == "example.com/agent:v2" && *selector == scaled_to_zero =>
                {
                    Ok(())
                }
                _ => Err(format!("primary {primary:?}, target {target:?}")),
            }
        },
    )
    .await;
    let events = c::events_including(&client, &n, "agent", "Promotion completed").await;
    assert!(
        events.iter().any(|e| e.contains("Copying agent.")),
        "{events:?}"
    );

    // Weights by pod counts cannot work with one pod per node: refused, nothing generated.
    let ratio = wait_canary(&client, &n, "ratio", LONG, "refused", |s| {
        c::ready_message(s).contains("one pod per node")
    })
    .await;
    assert!(
        c::ready_message(&ratio).contains("spec.analysis"),
        "{}",
        c::ready_message(&ratio)
    );
    assert!(seen(&daemon_sets, "ratio-primary").await.is_none());
    ns.cleanup(&client).await;
}
