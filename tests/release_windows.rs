//! Release windows on the real API server: a Kustomization applies a new revision only inside
//! its window or once opened by hand (`sluice reconcile --open-window`), and `sluice get` says
//! when the window opens; a Canary whose window closes during the analysis holds the promotion
//! in `WaitingPromotion` until a window is open (pods on kwok's node); windows that do not parse
//! (a schedule, a time zone) are a clear condition and nothing is applied or promoted.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use serde_json::{Value, json};
use sluice::api::condition::{self, ConditionStatus};
use sluice::api::kustomization::Kustomization;
use support::canary::{self as c, Analyzer, wait_canary};
use support::in_process::Agent;

use support::sluice_in as sluice;

fn config(color: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: {color}\n"
    )
}

/// A daily window of one hour that opens twelve hours from now: closed for the whole test.
fn closed_window() -> Value {
    let hour = (Timestamp::now()
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .hour()
        + 12)
        % 24;
    json!([{"schedule": format!("0 {hour} * * *"), "duration": "1h", "timeZone": "UTC"}])
}

/// A window of every minute for an hour: open whenever the test looks.
fn open_window() -> Value {
    json!([{"schedule": "* * * * *", "duration": "1h"}])
}

async fn color(cms: &Api<ConfigMap>) -> Option<String> {
    cms.get_opt("settings")
        .await
        .unwrap()
        .and_then(|cm| cm.data?.get("color").cloned())
}

// Multi-threaded: the controllers keep running while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kustomization_applies_inside_its_window_or_when_opened_by_hand() {
    let agent = Agent::start("window-ks").await;
    let ns = agent.ns().to_string();
    let cms: Api<ConfigMap> = Api::namespaced(agent.client.clone(), &ns);
    let kss: Api<Kustomization> = Api::namespaced(agent.client.clone(), &ns);

    let first = agent.push(&[("deploy/config.yaml", &config("blue"))]);
    agent.create_source("app", "1s").await;
    agent
        .create_kustomization(
            "app",
            "app",
            "./deploy",
            json!({"prune": true, "releaseWindows": open_window()}),
        )
        .await;
    agent.wait_applied("app", &first).await;
    assert_eq!(color(&cms).await.as_deref(), Some("blue"));

    // The window closes; a new revision waits and says so, Ready keeps the last apply.
    support::merge_patch(
        &kss,
        "app",
        json!({"spec": {"releaseWindows": closed_window()}}),
    )
    .await;
    let second = agent.push(&[("deploy/config.yaml", &config("green"))]);
    let status = agent
        .wait_ks("app", "waiting for the window", |s| {
            condition::find(&s.conditions, "Reconciling").is_some_and(|c| {
                c.reason == "OutsideReleaseWindow" && c.message.contains(second.as_str())
            })
        })
        .await;
    let waiting = condition::find(&status.conditions, "Reconciling").unwrap();
    assert!(
        waiting
            .message
            .contains("outside the release window, the next opens at"),
        "{}",
        waiting.message
    );
    let ready = condition::find(&status.conditions, "Ready").unwrap();
    assert_eq!(ready.status, ConditionStatus::True);
    assert_eq!(ready.message, format!("Applied revision: {first}"));
    // Give the source and the Kustomization time to have applied it, were they to.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        color(&cms).await.as_deref(),
        Some("blue"),
        "applied outside the window"
    );
    assert_eq!(
        kss.get("app")
            .await
            .unwrap()
            .status
            .unwrap()
            .last_applied_revision
            .as_deref(),
        Some(first.as_str())
    );

    // `sluice get` says when it opens.
    let table = String::from_utf8_lossy(&sluice(&ns, &["get", "ks"]).stdout).into_owned();
    let header = table.lines().next().unwrap_or_default();
    assert!(header.ends_with("WINDOW"), "{table}");
    assert!(
        table.lines().nth(1).is_some_and(|l| l.contains("opens 20")),
        "{table}"
    );

    // Opened by hand: applied now.
    let opened = sluice(
        &ns,
        &[
            "reconcile",
            "kustomization",
            "app",
            "--open-window",
            "10m",
            "--timeout",
            "2m",
        ],
    );
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    agent.wait_applied("app", &second).await;
    assert_eq!(color(&cms).await.as_deref(), Some("green"));
    let status = kss.get("app").await.unwrap().status.unwrap();
    assert!(
        condition::find(&status.conditions, "Reconciling").is_none(),
        "{status:#?}"
    );
    let table = String::from_utf8_lossy(&sluice(&ns, &["get", "ks"]).stdout).into_owned();
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.contains("open until 20")),
        "{table}"
    );

    // A time zone that does not exist: stalled, the field named, nothing applied.
    let bad = json!([{"schedule": "0 9 * * 1-5", "duration": "8h", "timeZone": "Europe/Atlantis"}]);
    support::merge_patch(&kss, "app", json!({"spec": {"releaseWindows": bad}})).await;
    let third = agent.push(&[("deploy/config.yaml", &config("red"))]);
    let status = agent
        .wait_ks("app", "stalled on the time zone", |s| {
            condition::find(&s.conditions, "Stalled")
                .is_some_and(|c| c.status == ConditionStatus::True)
        })
        .await;
    let ready = condition::find(&status.conditions, "Ready").unwrap();
    assert_eq!(ready.status, ConditionStatus::False);
    assert_eq!(
        ready.message,
        "spec.releaseWindows[0].timeZone: \"Europe/Atlantis\" is not a time zone of the IANA database (like Europe/Berlin or UTC)"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_ne!(
        kss.get("app")
            .await
            .unwrap()
            .status
            .unwrap()
            .last_applied_revision
            .as_deref(),
        Some(third.as_str())
    );
    assert_eq!(color(&cms).await.as_deref(), Some("green"));
    agent.finish().await;
}

const LONG: Duration = Duration::from_secs(300);

/// A blue/green Canary of the Deployment `name` with six iterations of 5 s.
fn canary(name: &str, windows: Value) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 60,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": {"interval": "5s", "threshold": 1, "iterations": 6},
            "releaseWindows": windows,
        },
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_closes_during_the_analysis_holds_the_promotion() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "window-canary").await;
    let n = ns.name().to_string();
    let _analyzer = Analyzer::start(&client, &n, None);
    for name in ["web", "atlantis"] {
        c::create(&client, &n, c::kwok_deployment(name)).await;
    }
    c::create(&client, &n, canary("web", open_window())).await;
    let bad = json!([{"schedule": "0 9 * * *", "duration": "1h", "timeZone": "Europe/Atlantis"}]);
    c::create(&client, &n, canary("atlantis", bad)).await;
    wait_canary(&client, &n, "web", LONG, "initialized", |s| {
        c::phase(s) == "Initialized"
    })
    .await;

    // A window opened at the start of this minute that closes 15 s from now; the analysis
    // needs six intervals of 5 s.
    let now = Timestamp::now().to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC);
    let open_for = now.second() as i64 + 15;
    let closing = json!([{"schedule": format!("{} {} * * *", now.minute(), now.hour()),
        "duration": format!("{open_for}s"), "timeZone": "UTC"}]);
    c::patch_canary(&client, &n, "web", json!({"releaseWindows": closing})).await;
    c::set_image(&client, &n, "web", "example.com/app:v2").await;
    let held = wait_canary(&client, &n, "web", LONG, "held for the window", |s| {
        c::phase(s) == "WaitingPromotion"
    })
    .await;
    assert_eq!(held.iterations, 6, "the analysis ran to the end");
    assert!(
        c::ready_message(&held).contains("outside the release window, the next opens at"),
        "{}",
        c::ready_message(&held)
    );
    // It stays held: nothing is copied to the primary.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let api: Api<sluice::api::canary::Canary> = Api::namespaced(client.clone(), &n);
    let status = api.get("web").await.unwrap().status.unwrap();
    assert_eq!(c::phase(&status), "WaitingPromotion");
    assert_eq!(
        c::image_of(&client, &n, "web-primary").await.as_deref(),
        Some("example.com/app:v1")
    );
    c::events_including(&client, &n, "web", "outside the release window").await;

    // A window opens: promoted.
    c::patch_canary(&client, &n, "web", json!({"releaseWindows": open_window()})).await;
    wait_canary(&client, &n, "web", LONG, "promoted", |s| {
        c::phase(s) == "Succeeded"
    })
    .await;
    assert_eq!(
        c::image_of(&client, &n, "web-primary").await.as_deref(),
        Some("example.com/app:v2")
    );

    // The Canary whose time zone does not exist says so and starts nothing.
    let bad = wait_canary(&client, &n, "atlantis", LONG, "invalid spec", |s| {
        c::ready_message(s).contains("releaseWindows")
    })
    .await;
    assert!(
        c::ready_message(&bad)
            .contains("spec.releaseWindows[0].timeZone: \"Europe/Atlantis\" is not a time zone"),
        "{}",
        c::ready_message(&bad)
    );
    assert_eq!(c::image_of(&client, &n, "atlantis-primary").await, None);
    ns.cleanup(&client).await;
}
