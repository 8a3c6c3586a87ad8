//! The Flux-shaped verbs of the `sluice` binary against the real control plane, with the
//! controllers running: get, reconcile (--with-source), suspend, resume, tree (nested
//! Kustomizations), events and export, and their exit codes; get and reconcile of Alerts and
//! Providers.

mod support;

use std::process::Output;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use serde_json::json;
use sluice::api::kustomization::Kustomization;
use support::in_process::Agent;

use support::sluice_in as sluice;

fn out(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn config(name: &str, color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  color: {color}\n")
}

// Multi-threaded: the controllers keep running while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_reconcile_suspend_resume_tree_events_export() {
    let agent = Agent::start("verbs").await;
    let ns = agent.ns().to_string();
    // `app` applies a ConfigMap and a Kustomization `child`, which applies another ConfigMap.
    let child = json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization",
        "metadata": {"name": "child"},
        "spec": {"interval": "1h", "sourceRef": {"kind": "GitRepository", "name": "app"},
            "path": "./child", "prune": true, "targetNamespace": ns}});
    let first = agent.push(&[
        ("deploy/config.yaml", &config("settings", "blue")),
        ("deploy/child.yaml", &serde_json::to_string(&child).unwrap()),
        ("child/config.yaml", &config("child-settings", "red")),
    ]);
    // Long intervals: only the verbs make things happen.
    agent.create_source("app", "1h").await;
    agent
        .create_kustomization(
            "app",
            "app",
            "./deploy",
            json!({"interval": "1h", "prune": true}),
        )
        .await;
    agent.wait_applied("app", &first).await;
    agent.wait_applied("child", &first).await;

    // get
    let (table, _) = out(&sluice(&ns, &["get", "ks"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("REVISION") && lines[0].contains("AGE"),
        "{table}"
    );
    let app = lines
        .iter()
        .find(|l| l.starts_with("app "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        app.contains(&first) && app.contains("False") && app.contains("True"),
        "{app}"
    );
    assert!(table.lines().any(|l| l.starts_with("child ")), "{table}");
    let (table, _) = out(&sluice(&ns, &["get", "source-git", "app"]));
    assert!(table.contains(&first), "{table}");
    let (table, _) = out(&sluice(&ns, &["get", "ks", "-A"]));
    assert!(
        table.starts_with("NAMESPACE") && table.contains(&ns),
        "{table}"
    );
    let missing = sluice(&ns, &["get", "ks", "nope"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        out(&missing).1.contains("Kustomization nope not found"),
        "{:?}",
        out(&missing)
    );

    // reconcile --with-source: the new commit is fetched and applied now, not in an hour.
    let second = agent.push(&[("deploy/config.yaml", &config("settings", "green"))]);
    let run = sluice(
        &ns,
        &[
            "reconcile",
            "ks",
            "app",
            "--with-source",
            "--timeout",
            "90s",
        ],
    );
    let (_, progress) = out(&run);
    assert!(run.status.success(), "{progress}");
    for line in [
        "► annotating GitRepository",
        "✔ GitRepository",
        "► annotating Kustomization",
        &format!("reconciled: Applied revision: {second}"),
    ] {
        assert!(progress.contains(line), "no {line:?} in:\n{progress}");
    }
    let cms: Api<ConfigMap> = Api::namespaced(agent.client.clone(), &ns);
    assert_eq!(
        cms.get("settings").await.unwrap().data.unwrap()["color"],
        "green"
    );

    // suspend: the flag is set and shown, and a reconcile is refused; resume reconciles.
    let run = sluice(&ns, &["suspend", "ks", "app"]);
    assert!(run.status.success(), "{:?}", out(&run));
    let ks: Api<Kustomization> = Api::namespaced(agent.client.clone(), &ns);
    assert!(ks.get("app").await.unwrap().spec.suspend);
    let (table, _) = out(&sluice(&ns, &["get", "ks", "app"]));
    assert!(table.lines().nth(1).unwrap().contains("True"), "{table}");
    let refused = sluice(&ns, &["reconcile", "ks", "app"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        out(&refused).1.contains("is suspended"),
        "{:?}",
        out(&refused)
    );
    let run = sluice(&ns, &["resume", "ks", "app"]);
    assert!(run.status.success(), "{:?}", out(&run));
    assert!(!ks.get("app").await.unwrap().spec.suspend);

    // tree: the inventory, with the nested Kustomization expanded.
    let (tree, _) = out(&sluice(&ns, &["tree", "ks", "app"]));
    let expected = format!(
        "Kustomization/{ns}/app\n├── ConfigMap/{ns}/settings\n└── Kustomization/{ns}/child\n    └── ConfigMap/{ns}/child-settings\n"
    );
    assert_eq!(tree, expected);

    // events
    let (events, _) = out(&sluice(&ns, &["events", "--for", "ks/app"]));
    assert!(
        events.contains("ReconciliationSucceeded") && events.contains("Kustomization/app"),
        "{events}"
    );
    assert!(!events.contains("GitRepository/app"), "{events}");

    // export: what to keep in Git, no status.
    let (yaml, _) = out(&sluice(&ns, &["export", "ks", "app"]));
    assert!(
        yaml.contains("kind: Kustomization") && yaml.contains("path: ./deploy"),
        "{yaml}"
    );
    assert!(
        !yaml.contains("status:") && !yaml.contains("resourceVersion"),
        "{yaml}"
    );
    assert!(!yaml.contains("requestedAt"), "{yaml}");

    // A Kustomization that fails: reconcile says why and exits 1.
    agent
        .create_kustomization("broken", "app", "./nowhere", json!({"interval": "1h"}))
        .await;
    agent
        .wait_ks("broken", "tried", |s| s.last_attempted_revision.is_some())
        .await;
    let run = sluice(&ns, &["reconcile", "ks", "broken"]);
    assert_eq!(run.status.code(), Some(1), "{:?}", out(&run));
    assert!(out(&run).1.contains("✗ Kustomization"), "{:?}", out(&run));

    agent.finish().await;
}

// The notification kinds by Flux's names: get shows whether they can work, reconcile re-checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_reconcile_notification_kinds() {
    let mut agent = Agent::start("verbs-notify").await;
    agent.start_notifications().await;
    let ns = agent.ns().to_string();
    agent
        .create(json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Alert",
            "metadata": {"name": "deploys"},
            "spec": {"providerRef": {"name": "chat"},
                "eventSources": [{"kind": "Kustomization", "name": "*"}]}}))
        .await;
    let eventually_listed = |kind: &str, name: &str, want: &str| {
        for _ in 0..120 {
            let (table, _) = out(&sluice(&ns, &["get", kind]));
            if table
                .lines()
                .any(|l| l.starts_with(name) && l.contains(want))
            {
                return table;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        panic!("`sluice get {kind}` never showed {name} with {want:?}");
    };
    let table = eventually_listed("alerts", "deploys ", "Provider chat not found");
    assert!(table.contains("False"), "{table}");
    agent
        .create(
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Provider",
            "metadata": {"name": "chat"},
            "spec": {"type": "slack", "address": "https://hooks.slack.invalid/services/x"}}),
        )
        .await;
    eventually_listed("alert-providers", "chat ", "True");
    eventually_listed("alerts", "deploys ", "True");
    let run = sluice(&ns, &["reconcile", "alert", "deploys", "--timeout", "60s"]);
    let (_, progress) = out(&run);
    assert!(run.status.success(), "{progress}");
    assert!(progress.contains("► annotating Alert"), "{progress}");
    agent.finish().await;
}
