//! GitOps end to end on the real node: a commit changes the image tag in Git; the Kustomization
//! applies it and the analyzer is handed the new revision at once; the analysis runs and
//! promotes; the Kustomization's health check of the Deployment follows the Canary, so it is
//! Ready only once the promotion is done; a later no-op reconcile writes nothing; and the
//! target's replicas are never fought over (every write to them, counted from a watch, is the
//! analyzer's). A replica change in Git reaches the primary.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use sluice::api::condition;
use sluice::api::kustomization::Kustomization;
use support::canary::{self as c, Env, wait_canary};
use support::git_servers::GitDaemon;
use support::git_signing::{Signing, WorkRepo};
use support::node::{self, eventually};

const LONG: Duration = Duration::from_secs(300);

fn app(image: &str, replicas: i32) -> String {
    let mut deployment = c::testapp("", "web", image, replicas);
    deployment["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let canary = json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": "web"},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "progressDeadlineSeconds": 120,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": {"interval": "10s", "threshold": 1, "iterations": 2},
        },
    });
    [deployment, canary]
        .iter()
        .map(|o| format!("---\n{}\n", serde_json::to_string(o).unwrap()))
        .collect()
}

/// A new value of the target's `spec.replicas`, with the managers owning the field after it.
type ReplicaWrite = (i32, Vec<String>);

/// The managers owning `spec.replicas` of a Deployment.
fn replica_owners(d: &Deployment) -> Vec<String> {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|f| {
            f.fields_v1
                .as_ref()
                .is_some_and(|v| v.0.pointer("/f:spec/f:replicas").is_some())
        })
        .filter_map(|f| f.manager.clone())
        .collect()
}

async fn kustomization(client: &kube::Client, n: &str) -> Kustomization {
    Api::<Kustomization>::namespaced(client.clone(), n)
        .get("app")
        .await
        .unwrap()
}

fn ready_at(k: &Kustomization, revision: &str) -> bool {
    let status = k.status.clone().unwrap_or_default();
    status.last_applied_revision.as_deref() == Some(revision)
        && condition::is_true(&status.conditions, "Ready")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_applied_analysed_and_promoted_and_replicas_are_never_fought_over() {
    let v1 = node::push_testapp(&["canary-v1"], &["VERSION=v1"]).remove(0);
    let v2 = node::push_testapp(&["canary-v2"], &["VERSION=v2"]).remove(0);
    let env = Env::start("gitops").await;
    let (client, n) = (env.client.clone(), env.name().to_string());

    // Every change of the target's spec.replicas, with who owns the field after it.
    let writes: Arc<Mutex<Vec<ReplicaWrite>>> = Arc::default();
    let watch = {
        let (writes, api) = (
            writes.clone(),
            Api::<Deployment>::namespaced(client.clone(), &n),
        );
        tokio::spawn(async move {
            let config = watcher::Config::default().fields("metadata.name=web");
            let mut events = std::pin::pin!(watcher(api, config).applied_objects());
            while let Some(Ok(d)) = events.next().await {
                let replicas = d.spec.replicas.unwrap_or(1);
                let mut writes = writes.lock().unwrap();
                if writes.last().map(|(r, _)| *r) != Some(replicas) {
                    writes.push((replicas, replica_owners(&d)));
                }
            }
        })
    };

    // The source, the Kustomization (health checks on the Deployment) and the analyzer, with
    // the applier handing over to it.
    let storage = tempfile::tempdir().unwrap();
    let config = support::agent::admin_config().await;
    let settings = sluice::source::controller::Settings {
        namespace: Some(n.clone()),
        ..sluice::source::controller::Settings::new(storage.path().to_owned())
    };
    let sources = tokio::spawn(sluice::source::controller::run(client.clone(), settings));
    let kustomizations = tokio::spawn(sluice::kustomization::controller::run_with_handoff(
        client.clone(),
        config,
        sluice::kustomization::controller::Settings {
            storage: storage.path().to_owned(),
            namespace: Some(n.clone()),
            ..Default::default()
        },
        Some(env.analyzer.handoff.clone()),
    ));
    let daemon = GitDaemon::start();
    daemon.create_repo("app.git");
    let work = WorkRepo::new(&daemon.url("app.git"));
    work.write("deploy/app.yaml", &app(&v1, 2));
    let first = format!("main@sha1:{}", work.commit("v1", &Signing::None));
    work.push(&["main"]);
    c::create(&client, &n, json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository", "metadata": {"name": "app"},
        "spec": {"url": daemon.url("app.git"), "interval": "1s", "ref": {"branch": "main"}}})).await;
    c::create(&client, &n, json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": "app"},
        "spec": {"interval": "10m", "retryInterval": "5s", "timeout": "5m", "prune": true, "targetNamespace": n,
            "sourceRef": {"kind": "GitRepository", "name": "app"}, "path": "./deploy",
            "healthChecks": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": n}]}})).await;

    eventually(
        LONG,
        "the first revision applied and healthy (the Canary initialized)",
        || async {
            let k = kustomization(&client, &n).await;
            if ready_at(&k, &first) {
                Ok(())
            } else {
                Err(format!("{:?}", k.status))
            }
        },
    )
    .await;
    let canary = wait_canary(&client, &n, "web", LONG, "initialized", |s| {
        !s.last_applied_spec.is_empty()
    })
    .await;
    assert_eq!(
        c::phase(&canary),
        "Initialized",
        "healthy only once the Canary initialized: {canary:?}"
    );

    // A commit changes the image tag.
    work.write("deploy/app.yaml", &app(&v2, 2));
    let second = format!("main@sha1:{}", work.commit("v2", &Signing::None));
    work.push(&["main"]);
    let applied = eventually(LONG, "the second revision applied and healthy", || async {
        let k = kustomization(&client, &n).await;
        if ready_at(&k, &second) {
            Ok(k)
        } else {
            Err(format!("{:?}", k.status))
        }
    })
    .await;
    let canary = wait_canary(&client, &n, "web", LONG, "read", |_| true).await;
    assert_eq!(
        c::phase(&canary),
        "Succeeded",
        "Ready only after the promotion: {canary:?}"
    );
    // The reconcile that applied the commit ended (health included) after the promotion.
    let history = applied.status.clone().unwrap().history;
    let reconciled = history
        .iter()
        .find(|h| h.revision == second)
        .unwrap()
        .time
        .clone();
    let promoted = canary.last_transition_time.clone().unwrap();
    assert!(
        reconciled.parse::<k8s_openapi::jiff::Timestamp>().unwrap() >= promoted.parse().unwrap(),
        "the reconcile of {second} ended at {reconciled}, before the promotion at {promoted}"
    );
    assert_eq!(
        c::image_of(&client, &n, "web-primary").await.as_deref(),
        Some(v2.as_str())
    );
    let events = c::events(&client, &n, "web").await.join("\n");
    assert!(
        events.contains("New revision detected! Scaling up web.")
            && events.contains("Promotion completed!"),
        "{events}"
    );

    // A no-op reconcile writes nothing.
    let deployments = Api::<Deployment>::namespaced(client.clone(), &n);
    // What a write leaves (the Deployment controller keeps updating the status meanwhile).
    let version = |d: &Deployment| {
        let spec_writes: Vec<_> = d
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter(|f| f.subresource.as_deref() != Some("status"))
            .map(|f| (f.manager.clone(), f.time.clone(), f.fields_v1.clone()))
            .collect();
        (
            d.metadata.generation,
            d.metadata.labels.clone(),
            d.metadata.annotations.clone(),
            format!("{spec_writes:?}"),
        )
    };
    let (target_before, primary_before) = (
        deployments.get("web").await.unwrap(),
        deployments.get("web-primary").await.unwrap(),
    );
    let requested = "no-op-1";
    Api::<Kustomization>::namespaced(client.clone(), &n)
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"sluice.dev/requestedAt": requested}}}),
            ),
        )
        .await
        .unwrap();
    eventually(LONG, "the requested reconcile handled", || async {
        let k = kustomization(&client, &n).await;
        let handled = k.status.clone().and_then(|s| s.last_handled_reconcile_at);
        if handled.as_deref() == Some(requested) && ready_at(&k, &second) {
            Ok(())
        } else {
            Err(format!("{:?}", k.status))
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        version(&deployments.get("web").await.unwrap()),
        version(&target_before),
        "the target was written"
    );
    assert_eq!(
        version(&deployments.get("web-primary").await.unwrap()),
        version(&primary_before),
        "the primary was written"
    );

    // A replica change in Git goes to the primary; the target stays scaled down.
    work.write("deploy/app.yaml", &app(&v2, 3));
    let third = format!(
        "main@sha1:{}",
        work.commit("three replicas", &Signing::None)
    );
    work.push(&["main"]);
    eventually(
        LONG,
        "the primary scaled to the replicas in Git",
        || async {
            let k = kustomization(&client, &n).await;
            let primary = deployments
                .get("web-primary")
                .await
                .map_err(|e| e.to_string())?;
            match (ready_at(&k, &third), primary.spec.replicas) {
                (true, Some(3)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    assert_eq!(deployments.get("web").await.unwrap().spec.replicas, Some(0));

    // Every write to the target's replicas: created by the applier at 2, then only the
    // analyzer's (down at initialization, up for the analysis, down after the promotion).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let writes = writes.lock().unwrap().clone();
    println!("writes to the target's spec.replicas: {writes:?}");
    let values: Vec<i32> = writes.iter().map(|(r, _)| *r).collect();
    assert_eq!(values, [2, 0, 2, 0], "{writes:?}");
    assert_eq!(writes[0].1, ["sluice"], "{writes:?}");
    for (replicas, owners) in &writes[1..] {
        assert!(
            owners.contains(&"sluice-canary".to_string()),
            "{replicas} written by {owners:?}"
        );
        assert!(
            !owners.contains(&"sluice".to_string()),
            "the applier owns replicas again: {owners:?}"
        );
    }
    watch.abort();
    sources.abort();
    kustomizations.abort();
    env.finish().await;
}
