//! A Canary's own alerts (`analysis.alerts`) on the real API server (pods on kwok's node): a
//! canary whose pre-rollout webhook refuses rolls back, and each alert's Provider (Slack, Teams,
//! Discord, Google Chat, Rocket.Chat and generic webhooks on a recording HTTP server, standing in
//! for those services) hears the Events its severity asks for: `info` everything, `warn` the
//! halted step and the rollback, `error` the rollback only, in the payload shape its service
//! accepts, with the phase, weight and failed checks. An alert naming a Provider that does not exist changes nothing for the others.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use support::canary::{self as c, Analyzer, wait_canary};
use support::node::eventually;
use support::recorder::Recorder;

const LONG: Duration = Duration::from_secs(300);

fn provider(name: &str, type_: &str, address: String) -> Value {
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Provider", "metadata": {"name": name},
        "spec": {"type": type_, "address": address}})
}

/// The reasons the generic webhook at `path` received, checking each names the Canary.
fn generic_reasons(recorder: &Recorder, path: &str) -> BTreeSet<String> {
    recorder
        .at(path)
        .iter()
        .map(|r| {
            let body = r.json();
            assert_eq!(body["involvedObject"]["kind"], "Canary", "{body}");
            assert_eq!(body["involvedObject"]["name"], "app", "{body}");
            body["reason"].as_str().unwrap().to_string()
        })
        .collect()
}

/// A server that answers every request with 500, and one that accepts connections and never
/// answers; their URLs.
async fn failing_servers() -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let failing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let urls = (
        format!("http://{}/", failing.local_addr().unwrap()),
        format!("http://{}/", silent.local_addr().unwrap()),
    );
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = failing.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0; 65536];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 4\r\nconnection: close\r\n\r\noops")
                    .await;
            });
        }
    });
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    urls
}

/// The messages of the Warning Events about Provider `name`.
async fn provider_warnings(client: &kube::Client, namespace: &str, name: &str) -> Vec<String> {
    use k8s_openapi::api::core::v1::Event;
    use kube::api::{Api, ListParams};
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!("involvedObject.kind=Provider,involvedObject.name={name}");
    api.list(&ListParams::default().fields(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .map(|e| {
            format!(
                "{}: {}",
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alert_hears_the_canary_events_its_severity_asks_for() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "canary-alerts").await;
    let n = ns.name().to_string();
    let recorder = Recorder::start().await;

    // The process's Events go to the notification dispatcher, as in the agent.
    let (dispatcher, deliver) =
        sluice::notify::dispatch::start(client.clone(), Some(n.clone()), Default::default());
    sluice::runtime::events::install_sink(dispatcher);
    let delivering = tokio::spawn(deliver);
    let _analyzer = Analyzer::start(&client, &n, None);

    let base = &recorder.base;
    c::create(
        &client,
        &n,
        provider("chat", "slack", format!("{base}/slack")),
    )
    .await;
    // Flagger's other AlertProvider types, by their names there.
    for type_ in ["msteams", "discord", "gchat", "rocket"] {
        c::create(
            &client,
            &n,
            provider(type_, type_, format!("{base}/{type_}")),
        )
        .await;
    }
    for level in ["warn", "error"] {
        c::create(
            &client,
            &n,
            provider(level, "generic", format!("{base}/{level}")),
        )
        .await;
    }
    // Providers that fail: one answers 500, one never answers.
    let (failing, silent) = failing_servers().await;
    c::create(&client, &n, provider("broken", "generic", failing)).await;
    let mut hanging = provider("silent", "generic", silent);
    hanging["spec"]["timeout"] = json!("2s");
    c::create(&client, &n, hanging).await;
    // A pre-rollout webhook nobody answers: the first check fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let refused = format!("http://{}/", closed.local_addr().unwrap());
    drop(closed);
    c::create(&client, &n, c::kwok_deployment("app")).await;
    c::create(&client, &n, json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "app"},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "app"},
            "progressDeadlineSeconds": 60,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": {
                "interval": "10s", "threshold": 1, "iterations": 2,
                "webhooks": [{"name": "gate", "type": "pre-rollout", "url": refused, "timeout": "2s"}],
                "alerts": [
                    {"name": "everything", "providerRef": {"name": "chat"}},
                    {"name": "warnings", "severity": "warn", "providerRef": {"name": "warn"}},
                    {"name": "errors", "severity": "error", "providerRef": {"name": "error"}},
                    {"name": "nowhere", "severity": "info", "providerRef": {"name": "absent"}},
                    {"name": "teams", "severity": "error", "providerRef": {"name": "msteams"}},
                    {"name": "discord", "severity": "error", "providerRef": {"name": "discord"}},
                    {"name": "gchat", "severity": "error", "providerRef": {"name": "gchat"}},
                    {"name": "rocket", "severity": "error", "providerRef": {"name": "rocket"}},
                    {"name": "broken", "severity": "error", "providerRef": {"name": "broken"}},
                    {"name": "silent", "severity": "error", "providerRef": {"name": "silent"}},
                ],
            },
        },
    }))
    .await;

    wait_canary(&client, &n, "app", LONG, "initialized", |s| {
        c::phase(s) == "Initialized"
    })
    .await;
    c::set_image(&client, &n, "app", "example.com/app:v2").await;
    wait_canary(&client, &n, "app", LONG, "rolled back", |s| {
        c::phase(s) == "Failed"
    })
    .await;

    // Deliveries run in tasks of their own: wait for the last ones.
    let rollback: BTreeSet<String> = ["Failed", "RolledBack"].map(String::from).into();
    eventually(Duration::from_secs(30), "the rollback alerts", || async {
        let (warn, error) = (
            generic_reasons(&recorder, "/warn"),
            generic_reasons(&recorder, "/error"),
        );
        if warn.is_superset(&rollback) && error.is_superset(&rollback) {
            Ok(())
        } else {
            Err(format!("warn: {warn:?}, error: {error:?}"))
        }
    })
    .await;

    let error = generic_reasons(&recorder, "/error");
    assert_eq!(error, rollback, "errors only");

    // The Providers that failed say so in Warning Events; the others were served all the same.
    for (name, says) in [("broken", "500"), ("silent", "RolledBack")] {
        let warnings = eventually(
            Duration::from_secs(60),
            &format!("a DeliveryFailed Event on Provider {name}"),
            || async {
                let warnings = provider_warnings(&client, &n, name).await;
                if warnings
                    .iter()
                    .any(|w| w.starts_with("DeliveryFailed: ") && w.contains(says))
                {
                    Ok(warnings)
                } else {
                    Err(format!("{warnings:?}"))
                }
            },
        )
        .await;
        println!("{name}: {warnings:?}");
    }
    for r in recorder.at("/error") {
        assert_eq!(r.json()["severity"], "error");
    }
    let warn = generic_reasons(&recorder, "/warn");
    let expected: BTreeSet<String> = ["Failed", "Halted", "RolledBack"].map(String::from).into();
    assert_eq!(warn, expected, "warnings and errors, no info");
    let halted = recorder
        .at("/warn")
        .iter()
        .map(|r| r.json())
        .find(|b| b["reason"] == "Halted")
        .unwrap();
    assert!(
        halted["message"].as_str().unwrap().contains("pre-rollout"),
        "{halted}"
    );

    // Slack hears everything, from the first Event on.
    let slack: BTreeSet<String> = recorder
        .at("/slack")
        .iter()
        .map(|r| {
            let attachment = r.json()["attachments"][0].clone();
            assert_eq!(attachment["author_name"], format!("Canary/{n}/app"));
            attachment["title"].as_str().unwrap().to_string()
        })
        .collect();
    for reason in [
        "Initialized",
        "NewRevision",
        "Halted",
        "RolledBack",
        "Failed",
    ] {
        assert!(slack.contains(reason), "{reason}: {slack:?}");
    }

    // The rollback carries where the analysis stood.
    let rolled_back = recorder
        .at("/error")
        .iter()
        .map(|r| r.json())
        .find(|b| b["reason"] == "RolledBack")
        .unwrap();
    let metadata = &rolled_back["metadata"];
    assert_eq!(metadata["target"], "Deployment/app", "{rolled_back}");
    assert!(
        metadata["failedChecks"]
            .as_str()
            .is_some_and(|f| f.ends_with("/1")),
        "{rolled_back}"
    );
    assert!(
        metadata["phase"].is_string() && metadata["iterations"].is_string(),
        "{rolled_back}"
    );

    // The shapes Teams, Discord, Google Chat and Rocket.Chat accept, each with the rollback.
    let object = format!("Canary/{n}/app");
    eventually(
        Duration::from_secs(30),
        "the chat rollback alerts",
        || async {
            let missing: Vec<&str> = ["/msteams", "/discord", "/gchat", "/rocket"]
                .into_iter()
                .filter(|path| recorder.at(path).is_empty())
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("nothing at {missing:?}"))
            }
        },
    )
    .await;
    let said = |path: &str, pointer: &str| -> Vec<String> {
        recorder
            .at(path)
            .iter()
            .map(|r| {
                r.json()
                    .pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    };
    let teams = recorder.at("/msteams")[0].json();
    assert_eq!(teams["type"], "message", "{teams}");
    assert_eq!(
        teams["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(teams["attachments"][0]["content"]["type"], "AdaptiveCard");
    for (path, pointer) in [
        ("/msteams", "/attachments/0/content/body/0/text"),
        ("/discord", "/embeds/0/title"),
        ("/gchat", "/text"),
        ("/rocket", "/text"),
    ] {
        let texts = said(path, pointer);
        assert!(
            texts
                .iter()
                .any(|t| t.contains(&object) && t.contains("RolledBack")),
            "{path}: {texts:?}"
        );
    }

    delivering.abort();
    ns.cleanup(&client).await;
}
