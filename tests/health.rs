//! Waiting for health on the real control plane: a Deployment that becomes Available, one whose
//! rollout stalls (fails fast, before the timeout), and a Job that never finishes (times out,
//! naming what it waited for).

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use sluice::apply::applier::{Applier, ApplyOptions};
use sluice::apply::health::{self, HealthError};
use sluice::apply::inventory::ObjectId;

fn deployment(ns: &str, name: &str, extra_spec: Value, pod_spec: Value) -> Value {
    let mut pod = json!({"containers": [{"name": "main", "image": "img:1"}]});
    pod.as_object_mut()
        .unwrap()
        .extend(pod_spec.as_object().unwrap().clone());
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod}}});
    d["spec"]
        .as_object_mut()
        .unwrap()
        .extend(extra_spec.as_object().unwrap().clone());
    d
}

fn ids(objects: &[Value]) -> Vec<(ObjectId, String)> {
    objects.iter().map(|o| ObjectId::of(o).unwrap()).collect()
}

#[tokio::test]
async fn waits_until_available_and_fails_fast_on_a_stalled_rollout() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "health").await;
    let applier = Applier::new(client.clone());

    let good = vec![deployment(ns.name(), "good", json!({}), json!({}))];
    applier
        .apply(good.clone(), &ApplyOptions::default())
        .await
        .unwrap();
    let mut rounds = 0;
    health::wait(
        &client,
        applier.discovery(),
        &ids(&good),
        Duration::from_secs(120),
        |_| rounds += 1,
    )
    .await
    .expect("the Deployment becomes Available");

    // Pods that can never be scheduled, and a one-second progress deadline.
    let stuck = vec![deployment(
        ns.name(),
        "stuck",
        json!({"progressDeadlineSeconds": 1}),
        json!({"nodeSelector": {"no-such-label": "anywhere"}}),
    )];
    applier
        .apply(stuck.clone(), &ApplyOptions::default())
        .await
        .unwrap();
    let mut seen = Vec::new();
    let err = health::wait(
        &client,
        applier.discovery(),
        &ids(&stuck),
        Duration::from_secs(300),
        |w| seen = w.to_vec(),
    )
    .await
    .unwrap_err();
    let HealthError::Failed { id, reason } = &err else {
        panic!("expected a fast failure, got: {err}")
    };
    assert_eq!(id.name, "stuck");
    assert!(reason.contains("ProgressDeadlineExceeded"), "{reason}");
    assert!(
        seen.iter().all(|line| line.contains("Deployment/")),
        "{seen:?}"
    );
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn a_job_that_never_finishes_times_out_naming_it() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "health-job").await;
    let applier = Applier::new(client.clone());
    let job = |name: &str, node_selector: Value| {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns.name()},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "nodeSelector": node_selector,
                "containers": [{"name": "main", "image": "img:1"}]}}}})
    };
    let done = vec![job("done", json!({}))];
    applier
        .apply(done.clone(), &ApplyOptions::default())
        .await
        .unwrap();
    health::wait(
        &client,
        applier.discovery(),
        &ids(&done),
        Duration::from_secs(120),
        |_| {},
    )
    .await
    .expect("the Job completes");

    let never = vec![job("never", json!({"no-such-label": "anywhere"}))];
    applier
        .apply(never.clone(), &ApplyOptions::default())
        .await
        .unwrap();
    let err = health::wait(
        &client,
        applier.discovery(),
        &ids(&never),
        Duration::from_secs(2),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, HealthError::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains(&format!("Job/{}/never", ns.name())),
        "{err}"
    );
    ns.cleanup(&client).await;
}
