//! The analysis when its Prometheus goes away mid-analysis, on the real node: by default no data
//! fails the checks and the canary is rolled back, never promoted; with `noData: Pause` the
//! canary holds its weight without counting failed checks, and goes on once Prometheus is back.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::canary::{self as c, Env, cluster_ip, image_of, set_image, wait_canary};
use support::node;

const LONG: Duration = Duration::from_secs(300);

/// `web` at v1 under an initialized progressive Canary with the given `noData`, load running.
async fn setup(prefix: &str, no_data: &str, v1: &str) -> Env {
    let env = Env::start(prefix).await;
    let (client, n) = (&env.client, env.name().to_string());
    c::create(client, &n, c::testapp(&n, "web", v1, 2)).await;
    let canary: Value = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "web", "namespace": n},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "progressDeadlineSeconds": 120,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": {
                "interval": "10s",
                "threshold": 2,
                "stepWeights": [20, 50],
                "noData": no_data,
                "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "15s"}],
            },
        },
    });
    c::create(client, &n, canary).await;
    wait_canary(client, &n, "web", LONG, "initialized", |s| {
        c::phase(s) == "Initialized"
    })
    .await;
    let apex = cluster_ip(client, &n, "web").await;
    let webhooks = c::load_webhooks(&env.loadtester.url, &apex);
    c::patch_canary(
        client,
        &n,
        "web",
        json!({"analysis": {"webhooks": webhooks}}),
    )
    .await;
    env.answering(&format!("http://{apex}/"), "v1").await;
    env
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_stopped_mid_analysis_never_promotes() {
    let v1 = node::push_testapp(&["canary-v1"], &["VERSION=v1"]).remove(0);
    let v2 = node::push_testapp(&["canary-v2"], &["VERSION=v2"]).remove(0);
    let mut env = setup("prom-fail", "Fail", &v1).await;
    let (client, n) = (env.client.clone(), env.name().to_string());
    set_image(&client, &n, "web", &v2).await;
    wait_canary(&client, &n, "web", LONG, "at weight 20", |s| {
        s.canary_weight == 20
    })
    .await;
    env.prometheus.stop();
    let status = wait_canary(&client, &n, "web", LONG, "rolled back", |s| {
        c::phase(s) == "Failed"
    })
    .await;
    assert_eq!(status.failed_checks, 2);
    assert_eq!(
        image_of(&client, &n, "web-primary").await.as_deref(),
        Some(v1.as_str()),
        "never promoted"
    );
    let events = c::events(&client, &n, "web").await.join("\n");
    assert!(
        events.contains("no data for request-success-rate") && events.contains("is unreachable"),
        "{events}"
    );
    assert!(!events.contains("Promotion completed"), "{events}");
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_data_pause_the_weight_holds_until_prometheus_is_back() {
    let v1 = node::push_testapp(&["canary-v1"], &["VERSION=v1"]).remove(0);
    let v2 = node::push_testapp(&["canary-v2"], &["VERSION=v2"]).remove(0);
    let mut env = setup("prom-pause", "Pause", &v1).await;
    let (client, n) = (env.client.clone(), env.name().to_string());
    set_image(&client, &n, "web", &v2).await;
    wait_canary(&client, &n, "web", LONG, "at weight 20", |s| {
        s.canary_weight == 20
    })
    .await;
    env.prometheus.stop();
    wait_canary(&client, &n, "web", LONG, "holding", |s| {
        c::ready_message(s).contains("Holding web.")
    })
    .await;
    // Three intervals on: still at 20, nothing counted, nothing promoted.
    tokio::time::sleep(Duration::from_secs(35)).await;
    let held = wait_canary(&client, &n, "web", LONG, "still progressing", |_| true).await;
    assert_eq!(c::phase(&held), "Progressing", "{held:?}");
    assert_eq!(
        (held.canary_weight, held.failed_checks),
        (20, 0),
        "{held:?}"
    );
    assert!(
        c::ready_message(&held).contains("noData: Pause"),
        "{held:?}"
    );
    assert_eq!(
        image_of(&client, &n, "web-primary").await.as_deref(),
        Some(v1.as_str())
    );
    let events = c::events(&client, &n, "web").await.join("\n");
    assert!(
        events.contains("Holding web.") && events.contains("is unreachable"),
        "{events}"
    );

    env.prometheus.restart().await;
    let status = wait_canary(
        &client,
        &n,
        "web",
        LONG,
        "promoted once data is back",
        |s| c::phase(s) == "Succeeded",
    )
    .await;
    assert_eq!(status.failed_checks, 0);
    assert_eq!(
        image_of(&client, &n, "web-primary").await.as_deref(),
        Some(v2.as_str())
    );
    env.finish().await;
}
