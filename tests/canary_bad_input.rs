//! Bad input on the real API server (pods on kwok's node, a real Prometheus): a Canary whose
//! target does not exist, one with a threshold of zero, one whose step weights go down, one
//! whose MetricTemplate holds invalid PromQL, one whose webhook hangs and one whose webhook
//! answers garbage. Each says what is wrong in its Ready condition or its Events, nothing is
//! promoted, and the same analyzer meanwhile promotes a good Canary.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::canary::{self as c, Analyzer, Prometheus, wait_canary};

const LONG: Duration = Duration::from_secs(300);

/// A blue/green Canary of the Deployment `target`.
fn canary(name: &str, target: &str, analysis: Value) -> Value {
    let mut blue_green = json!({"interval": "10s", "threshold": 1, "iterations": 2});
    blue_green
        .as_object_mut()
        .unwrap()
        .extend(analysis.as_object().unwrap().clone());
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "progressDeadlineSeconds": 60,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": blue_green,
        },
    })
}

/// A server that accepts connections and never answers, and one that answers bytes that are no
/// HTTP; their URLs.
async fn bad_webhook_servers() -> (String, String) {
    let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let garbage = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let urls = (
        format!("http://{}/", hang.local_addr().unwrap()),
        format!("http://{}/", garbage.local_addr().unwrap()),
    );
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hang.accept().await {
            held.push(socket);
        }
    });
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = garbage.accept().await {
            let mut buffer = [0; 4096];
            let _ = socket.read(&mut buffer).await;
            let _ = socket.write_all(b"\x00\x01 not HTTP at all\r\n\r\n").await;
        }
    });
    urls
}

async fn ready(client: &kube::Client, n: &str, name: &str, what: &str) -> String {
    let status = wait_canary(client, n, name, LONG, what, |s| {
        !c::ready_message(s).is_empty() && !c::ready_message(s).starts_with("True")
    })
    .await;
    c::ready_message(&status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_canaries_say_what_is_wrong_promote_nothing_and_the_others_keep_going() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "canary-bad").await;
    let n = ns.name().to_string();
    let prometheus = Prometheus::start(&client, &n).await;
    let _analyzer = Analyzer::start(&client, &n, None);
    let (hang, garbage) = bad_webhook_servers().await;
    c::create(&client, &n, json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "MetricTemplate",
        "metadata": {"name": "bad-query"},
        "spec": {"provider": {"type": "prometheus", "address": prometheus.url},
            "query": "sum(rate(http_requests_total{namespace=\"{{ namespace }}\"}[{{ interval }}]"},
    }))
    .await;

    let running = ["good", "promql", "hang", "garbage"];
    for name in running.iter().chain(&["zero", "down"]) {
        c::create(&client, &n, c::kwok_deployment(name)).await;
    }
    c::create(&client, &n, canary("good", "good", json!({}))).await;
    c::create(&client, &n, canary("missing", "absent", json!({}))).await;
    c::create(&client, &n, canary("zero", "zero", json!({"threshold": 0}))).await;
    let down = json!({"iterations": null, "stepWeights": [10, 60, 50]});
    c::create(&client, &n, canary("down", "down", down)).await;
    let metric = json!([{"name": "bad-query", "templateRef": {"name": "bad-query"}, "thresholdRange": {"min": 1}, "interval": "1m"}]);
    c::create(
        &client,
        &n,
        canary("promql", "promql", json!({"metrics": metric})),
    )
    .await;
    for (name, url) in [("hang", &hang), ("garbage", &garbage)] {
        let hook = json!([{"name": name, "type": "pre-rollout", "url": url, "timeout": "2s"}]);
        c::create(&client, &n, canary(name, name, json!({"webhooks": hook}))).await;
    }

    // Specs and targets the analysis cannot work with: a condition and an Event saying why.
    let missing = ready(&client, &n, "missing", "target missing").await;
    assert!(
        missing.contains("absent") && missing.contains("not found"),
        "{missing}"
    );
    let zero = ready(&client, &n, "zero", "threshold 0").await;
    assert!(zero.contains("threshold: 0"), "{zero}");
    let down = ready(&client, &n, "down", "step weights going down").await;
    assert!(
        down.contains("stepWeights[2]") && down.contains("50 follows 60"),
        "{down}"
    );
    for (name, says) in [
        ("missing", "absent not found"),
        ("zero", "threshold: 0"),
        ("down", "50 follows 60"),
    ] {
        let events = c::events_including(&client, &n, name, says).await;
        assert!(
            events
                .iter()
                .any(|e| e.starts_with("Warning") && e.contains(says)),
            "{name}: {events:?}"
        );
    }

    // New revisions: the bad analyses roll back, the good one is promoted.
    for name in running {
        wait_canary(&client, &n, name, LONG, "initialized", |s| {
            c::phase(s) == "Initialized"
        })
        .await;
        c::set_image(&client, &n, name, "example.com/app:v2").await;
    }
    wait_canary(&client, &n, "good", LONG, "promoted", |s| {
        c::phase(s) == "Succeeded"
    })
    .await;
    assert_eq!(
        c::image_of(&client, &n, "good-primary").await.as_deref(),
        Some("example.com/app:v2")
    );
    for (name, says) in [
        ("promql", "parse error"),
        ("hang", "no answer within 2s"),
        ("garbage", "invalid HTTP version"),
    ] {
        wait_canary(&client, &n, name, LONG, "rolled back", |s| {
            c::phase(s) == "Failed"
        })
        .await;
        assert_eq!(
            c::image_of(&client, &n, &format!("{name}-primary"))
                .await
                .as_deref(),
            Some("example.com/app:v1")
        );
        let events = c::events_including(&client, &n, name, says).await;
        println!("{name}:\n{}", events.join("\n"));
        assert!(
            events
                .iter()
                .any(|e| e.starts_with("Warning") && e.contains(says)),
            "{name}: {events:?}"
        );
    }
    for name in ["missing", "zero", "down"] {
        assert_eq!(
            c::image_of(&client, &n, &format!("{name}-primary")).await,
            None,
            "{name} promoted"
        );
    }
    ns.cleanup(&client).await;
}
