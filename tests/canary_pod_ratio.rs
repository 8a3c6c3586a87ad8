//! Progressive canaries without a mesh, on the real node: the apex Service selects primary and
//! canary pods, and the share of real requests (new connections through kube-proxy) the canary
//! serves follows the step weights. A good version is promoted through every weight; a bad one
//! (errors from the test app's knob) is rolled back within `threshold` failed checks while the
//! primary never changes, and the share of failed requests users saw stays under the weight.
//! Prometheus (Debian's) scrapes the pods; `sluice loadtester` drives the load the Canary's
//! webhooks ask for.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use support::canary::{
    self as c, Answers, Env, burst, cluster_ip, image_of, set_image, wait_canary,
};
use support::node;

const LONG: Duration = Duration::from_secs(300);
/// Primary replicas: weights 20 and 50 are exact pod ratios (1 of 5, 4 of 8).
const PRIMARY: i32 = 4;

fn canary(namespace: &str, metrics: Value) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "progressDeadlineSeconds": 120,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": {
                "interval": "10s",
                "threshold": 2,
                "stepWeights": [20, 50],
                "metrics": metrics,
            },
        },
    })
}

fn metrics() -> Value {
    json!([
        {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "15s"},
        {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "15s"},
    ])
}

/// An initialized Canary over `web` at `v1`, the load running through its apex Service.
async fn setup(prefix: &str, v1: &str) -> (Env, String) {
    let env = Env::start(prefix).await;
    let (client, n) = (&env.client, env.name().to_string());
    c::create(client, &n, c::testapp(&n, "web", v1, PRIMARY)).await;
    c::create(client, &n, canary(&n, metrics())).await;
    let status = wait_canary(client, &n, "web", LONG, "initialized", |s| {
        c::phase(s) == "Initialized"
    })
    .await;
    assert_eq!(status.canary_weight, 0);
    let apex = cluster_ip(client, &n, "web").await;
    let webhooks = c::load_webhooks(&env.loadtester.url, &apex);
    c::patch_canary(
        client,
        &n,
        "web",
        json!({"analysis": {"webhooks": webhooks}}),
    )
    .await;
    env.endpoints("web", "web", PRIMARY as usize, 0).await;
    env.answering(&format!("http://{apex}/"), "v1").await;
    (env, apex)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_is_promoted_through_every_weight_by_pod_ratio() {
    let v1 = node::push_testapp(&["canary-v1"], &["VERSION=v1"]).remove(0);
    let v2 = node::push_testapp(&["canary-v2"], &["VERSION=v2"]).remove(0);
    let (env, apex) = setup("ratio-good", &v1).await;
    let (client, loadtester) = (&env.client, &env.loadtester);
    let n = env.name().to_string();

    set_image(client, &n, "web", &v2).await;
    // At each weight, once the apex Service's endpoints show the ratio, real requests follow it.
    for (weight, canary_pods) in [(20, 1usize), (50, 4usize)] {
        wait_canary(
            client,
            &n,
            "web",
            LONG,
            &format!("at weight {weight}"),
            |s| s.canary_weight == weight,
        )
        .await;
        env.endpoints("web", "web", PRIMARY as usize, canary_pods)
            .await;
        // kube-proxy programs endpoint changes within a second or two.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let answers = burst(&format!("http://{apex}/"), 300).await;
        let total: u64 = answers.values().sum();
        let share = *answers.get("v2").unwrap_or(&0) as f64 / total as f64;
        let expected = canary_pods as f64 / (canary_pods + PRIMARY as usize) as f64;
        println!(
            "weight {weight}: {canary_pods} canary of {} pods; the canary served {:.1}% of {total} requests (expected {:.1}%): {answers:?}",
            canary_pods + PRIMARY as usize,
            share * 100.0,
            expected * 100.0
        );
        assert!(
            (share - expected).abs() < 0.12,
            "weight {weight}: share {share:.3}, expected {expected:.3}: {answers:?}"
        );
        assert!(!answers.contains_key("error"), "{answers:?}");
    }

    let status = wait_canary(client, &n, "web", LONG, "promoted", |s| {
        c::phase(s) == "Succeeded"
    })
    .await;
    assert_eq!((status.canary_weight, status.failed_checks), (0, 0));
    assert_eq!(
        image_of(client, &n, "web-primary").await.as_deref(),
        Some(v2.as_str())
    );
    env.endpoints("web", "web", PRIMARY as usize, 0).await;
    let after = burst(&format!("http://{apex}/"), 100).await;
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        ["v2"],
        "traffic ends on the new version: {after:?}"
    );

    let events = c::events_including(client, &n, "web", "Promotion completed! Scaling down web.")
        .await
        .join("\n");
    assert!(
        events.contains("Advance web.") && events.contains("canary weight 20"),
        "{events}"
    );
    assert!(
        events.contains("canary weight 50 (request-success-rate 100 (>= 99), request-duration"),
        "the metric values that decided: {events}"
    );
    assert!(
        events.contains("Promotion completed! Scaling down web."),
        "{events}"
    );

    let stats = loadtester.stats().await;
    let load = Answers::of(&stats["total"]);
    println!(
        "the load through the apex Service: {} requests, {:?}, {:?}, failed {:.2}%",
        load.requests,
        load.by_status,
        load.by_answer,
        load.error_share() * 100.0
    );
    assert!(load.by_answer.get("v2").copied().unwrap_or(0) > 0);
    assert!(
        load.error_share() <= 0.005,
        "a good version fails no requests: {load:?}"
    );
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_is_rolled_back_and_users_saw_at_most_the_step_weight_of_errors() {
    let v1 = node::push_testapp(&["canary-v1"], &["VERSION=v1"]).remove(0);
    let bad = node::push_testapp(&["canary-bad"], &["VERSION=bad", "ERROR_RATE=0.3"]).remove(0);
    let (env, apex) = setup("ratio-bad", &v1).await;
    let (client, loadtester) = (&env.client, &env.loadtester);
    let n = env.name().to_string();

    // Watch the primary's image for the whole analysis.
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let watcher = {
        let (client, n, seen) = (client.clone(), n.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                if let Some(image) = image_of(&client, &n, "web-primary").await {
                    seen.lock().unwrap().insert(image);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    set_image(client, &n, "web", &bad).await;
    wait_canary(client, &n, "web", LONG, "traffic on the canary", |s| {
        s.canary_weight == 20
    })
    .await;
    let status = wait_canary(client, &n, "web", LONG, "rolled back", |s| {
        c::phase(s) == "Failed"
    })
    .await;
    assert_eq!(status.failed_checks, 2, "rolled back at the threshold");
    assert_eq!(status.canary_weight, 0);
    assert!(
        c::ready_message(&status).contains("failed checks threshold reached 2"),
        "{status:?}"
    );
    let events = c::events_including(client, &n, "web", "Canary failed! Scaling down web.")
        .await
        .join("\n");
    assert!(
        events.contains("Halt web.")
            && events.contains("advancement: request-success-rate ")
            && events.contains("outside >= 99"),
        "the value that decided: {events}"
    );
    assert!(
        events.contains("Rolling back web.") && events.contains("Canary failed! Scaling down web."),
        "{events}"
    );
    assert!(
        !events.contains("canary weight 50"),
        "no step after a failed check: {events}"
    );

    env.endpoints("web", "web", PRIMARY as usize, 0).await;
    let only_v1 = |answers: &BTreeMap<String, u64>| answers.keys().eq(["v1"]);
    let after = c::burst_until(
        &format!("http://{apex}/"),
        100,
        Duration::from_secs(30),
        only_v1,
    )
    .await;
    assert_eq!(after.keys().collect::<Vec<_>>(), ["v1"], "{after:?}");
    watcher.abort();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        BTreeSet::from([v1.clone()]),
        "the primary only ever ran v1"
    );

    let stats = loadtester.stats().await;
    let load = Answers::of(&stats["total"]);
    let share = load.error_share();
    println!(
        "the load through the apex Service: {} requests, {:?}, {:?}: users saw {:.2}% failed requests (step weight 20%, canary error rate 30%)",
        load.requests,
        load.by_status,
        load.by_answer,
        share * 100.0
    );
    assert!(
        load.by_answer.get("bad").copied().unwrap_or(0) > 0,
        "the canary served requests: {load:?}"
    );
    assert!(
        share > 0.0 && share <= 0.20,
        "failed share {share:.4} is bounded by the step weight: {load:?}"
    );
    env.finish().await;
}
