//! Blue/green with the `kubernetes` provider on the real node: while the iterations run, the
//! canary is tested through its own Service and users (the apex Service) see only the primary;
//! once they pass, the apex Service switches to the canary's pods at once, the primary takes the
//! new template, and the apex switches back. A load through the apex Service all along sees no
//! failed request, first the old version, then the new one. Each step of the analysis is timed
//! in the agent's tick-lateness histogram.

mod support;

use std::time::Duration;

use serde_json::json;
use support::canary::{
    self as c, Answers, Env, burst, cluster_ip, image_of, set_image, wait_canary,
};
use support::node;

const LONG: Duration = Duration::from_secs(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_the_apex_service_only_after_the_iterations_without_a_failed_request() {
    let v1 = node::push_testapp(&["canary-v1"], &["VERSION=v1"]).remove(0);
    let v2 = node::push_testapp(&["canary-v2"], &["VERSION=v2"]).remove(0);
    let env = Env::start("bluegreen").await;
    let (client, n) = (&env.client, env.name().to_string());
    c::create(client, &n, c::testapp(&n, "web", &v1, 2)).await;
    let canary = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "web", "namespace": n},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "progressDeadlineSeconds": 120,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": {
                "interval": "10s",
                "threshold": 2,
                "iterations": 3,
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
    let canary_ip = cluster_ip(client, &n, "web-canary").await;
    // The analysis tests the canary through its own Service, as Flagger's blue/green does.
    let webhooks = c::load_webhooks(&env.loadtester.url, &canary_ip);
    c::patch_canary(
        client,
        &n,
        "web",
        json!({"analysis": {"webhooks": webhooks}}),
    )
    .await;
    env.endpoints("web", "web", 2, 0).await;
    env.answering(&format!("http://{apex}/"), "v1").await;
    // Users: a steady load through the apex Service for the whole rollout.
    let users = format!("hey -z 10m -q 20 -c 2 -disable-keepalive http://{apex}/");
    env.loadtester.start_load("users", &n, &users).await;

    set_image(client, &n, "web", &v2).await;
    for iteration in 1..=2 {
        wait_canary(
            client,
            &n,
            "web",
            LONG,
            &format!("iteration {iteration}"),
            |s| s.iterations == iteration,
        )
        .await;
        // The canary runs at full size, tested on its own Service; users see only the primary.
        env.endpoints("web", "web", 2, 0).await;
        let apex_answers = burst(&format!("http://{apex}/"), 50).await;
        assert_eq!(
            apex_answers.keys().collect::<Vec<_>>(),
            ["v1"],
            "iteration {iteration}: {apex_answers:?}"
        );
        let canary_answers = burst(&format!("http://{canary_ip}/"), 20).await;
        assert_eq!(
            canary_answers.keys().collect::<Vec<_>>(),
            ["v2"],
            "{canary_answers:?}"
        );
    }
    let status = wait_canary(client, &n, "web", LONG, "promoted", |s| {
        c::phase(s) == "Succeeded"
    })
    .await;
    assert_eq!((status.iterations, status.failed_checks), (3, 0));
    // Every interval's step was a tick the agent timed: the three iterations and the promotion.
    let ticks: u64 = sluice::runtime::metrics::metrics()
        .encode()
        .lines()
        .filter(|l| l.starts_with("sluice_canary_tick_lateness_seconds_count{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(ticks >= 4, "ticks timed: {ticks}");
    assert_eq!(
        image_of(client, &n, "web-primary").await.as_deref(),
        Some(v2.as_str())
    );
    env.endpoints("web", "web", 2, 0).await;
    env.answering(&format!("http://{apex}/"), "v2").await;

    let events =
        c::events_including(client, &n, "web", "Promotion completed! Scaling down web.").await;
    let at = |text: &str| {
        events
            .iter()
            .position(|e| e.contains(text))
            .unwrap_or_else(|| panic!("no Event with {text:?}: {events:#?}"))
    };
    let third = at("canary iteration 3/3");
    let switch = at("Routing all traffic to canary web.");
    let copy = at("template spec to web-primary.");
    let done = at("Promotion completed! Scaling down web.");
    assert!(
        third < switch && switch < copy && copy < done,
        "{events:#?}"
    );
    assert!(
        events[third].contains("request-success-rate 100 (>= 99)"),
        "{}",
        events[third]
    );

    let stats = env.loadtester.stats().await;
    let users = Answers::of_task(&stats, "users");
    println!(
        "users through the apex Service: {} requests, {:?}, {:?}",
        users.requests, users.by_status, users.by_answer
    );
    assert!(users.requests > 100, "{users:?}");
    assert_eq!(
        users.by_status.keys().collect::<Vec<_>>(),
        ["200"],
        "no failed request during the switch: {users:?}"
    );
    assert!(
        users.by_answer.contains_key("v1") && users.by_answer.contains_key("v2"),
        "{users:?}"
    );
    env.finish().await;
}
