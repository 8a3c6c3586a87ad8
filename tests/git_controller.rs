//! The GitRepository controller on the real control plane against a real git daemon: artifacts in
//! status, signed commits adopted, unsigned ones refused with the revision kept, the manual
//! trigger, Events, and a spec that cannot work.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Secret};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use sluice::api::condition::{self, ConditionStatus};
use sluice::api::git_repository::{GitRepository, GitRepositoryStatus, SOURCE_VERIFIED};
use support::git_servers::GitDaemon;
use support::git_signing::{GpgHome, Signing, WorkRepo};

/// Runs the controller in this process for one namespace.
fn start_agent(
    client: &Client,
    storage: &std::path::Path,
    ns: &str,
) -> tokio::task::JoinHandle<()> {
    let settings = sluice::source::controller::Settings {
        namespace: Some(ns.to_owned()),
        ..sluice::source::controller::Settings::new(storage.to_owned())
    };
    tokio::spawn(sluice::source::controller::run(client.clone(), settings))
}

/// Polls the object until `check` holds; panics with the last status after a bounded number of tries.
async fn wait_for(
    api: &Api<GitRepository>,
    name: &str,
    what: &str,
    check: impl Fn(&GitRepositoryStatus) -> bool,
) -> GitRepositoryStatus {
    let mut last = None;
    for _ in 0..300 {
        let obj = api.get(name).await.unwrap();
        if let Some(status) = obj.status.clone() {
            if check(&status) {
                return status;
            }
            last = Some(status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{name}: never {what}; last status: {last:#?}");
}

fn cond<'a>(s: &'a GitRepositoryStatus, type_: &str) -> Option<&'a condition::Condition> {
    condition::find(&s.conditions, type_)
}

fn revision(s: &GitRepositoryStatus) -> Option<&str> {
    s.artifact.as_ref().map(|a| a.revision.as_str())
}

#[tokio::test]
async fn controller_adopts_signed_commits_and_refuses_unsigned_ones() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "gitrepo").await;
    let storage = tempfile::tempdir().unwrap();
    let agent = start_agent(&client, storage.path(), ns.name());

    let gpg = GpgHome::new();
    let key = gpg.key("Release Bot", "release@example.com");
    let signed = Signing::Gpg(key.clone());
    let daemon = GitDaemon::start();
    daemon.create_repo("app.git");
    let work = WorkRepo::new(&daemon.url("app.git"));
    work.write("deploy/app.yaml", "v: 1\n");
    let first = work.commit("first", &signed);
    work.push(&["main"]);

    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns.name());
    let keys: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "keys"},
        "stringData": {"release.asc": String::from_utf8(gpg.export(&key)).unwrap()}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &keys).await.unwrap();

    let repos: Api<GitRepository> = Api::namespaced(client.clone(), ns.name());
    let repo: GitRepository = serde_json::from_value(serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository",
        "metadata": {"name": "app"},
        "spec": {"url": daemon.url("app.git"), "interval": "2s", "ref": {"branch": "main"},
                 "verify": {"mode": "HEAD", "secretRef": {"name": "keys"}}}
    }))
    .unwrap();
    repos.create(&PostParams::default(), &repo).await.unwrap();

    let s = wait_for(&repos, "app", "stored the first artifact", |s| {
        revision(s) == Some(&format!("main@sha1:{first}"))
    })
    .await;
    let artifact = s.artifact.clone().unwrap();
    assert!(artifact.digest.starts_with("sha256:"));
    assert_eq!(
        std::fs::read_to_string(storage.path().join(&artifact.path).join("deploy/app.yaml"))
            .unwrap(),
        "v: 1\n"
    );
    assert_eq!(cond(&s, "Ready").unwrap().status, ConditionStatus::True);
    assert_eq!(
        cond(&s, SOURCE_VERIFIED).unwrap().status,
        ConditionStatus::True
    );
    assert_eq!(s.observed_generation, Some(1));

    // A new signed commit is adopted within an interval.
    work.write("deploy/app.yaml", "v: 2\n");
    let second = work.commit("second", &signed);
    work.push(&["main"]);
    wait_for(&repos, "app", "adopted the signed commit", |s| {
        revision(s) == Some(&format!("main@sha1:{second}"))
    })
    .await;

    // An unsigned commit is refused; the revision stays.
    work.write("deploy/app.yaml", "v: 3\n");
    work.commit("unsigned", &Signing::None);
    work.push(&["main"]);
    let s = wait_for(&repos, "app", "refused the unsigned commit", |s| {
        cond(s, SOURCE_VERIFIED).is_some_and(|c| c.status == ConditionStatus::False)
    })
    .await;
    let verified = cond(&s, SOURCE_VERIFIED).unwrap();
    assert_eq!(verified.reason, "Unsigned");
    assert!(
        verified.message.contains("is not signed"),
        "{}",
        verified.message
    );
    assert_eq!(revision(&s), Some(format!("main@sha1:{second}").as_str()));
    assert_eq!(cond(&s, "Ready").unwrap().status, ConditionStatus::False);

    // Events: one per new revision and for the failure.
    let events: Api<Event> = Api::namespaced(client.clone(), ns.name());
    let mut reasons = Vec::new();
    for _ in 0..50 {
        reasons = events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|e| e.reason)
            .collect::<Vec<_>>();
        if reasons.iter().any(|r| r == "Unsigned") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let new_artifacts = reasons.iter().filter(|r| *r == "NewArtifact").count();
    assert_eq!(
        new_artifacts, 2,
        "one NewArtifact Event per revision: {reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "Unsigned"), "{reasons:?}");

    agent.abort();
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn requested_at_forces_a_poll_and_bad_specs_stall() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "gitrepo-trigger").await;
    let storage = tempfile::tempdir().unwrap();
    let agent = start_agent(&client, storage.path(), ns.name());

    let daemon = GitDaemon::start();
    daemon.create_repo("app.git");
    let work = WorkRepo::new(&daemon.url("app.git"));
    work.write("a.yaml", "v: 1\n");
    let first = work.commit("first", &Signing::None);
    work.push(&["main"]);

    let repos: Api<GitRepository> = Api::namespaced(client.clone(), ns.name());
    let make = |name: &str, url: &str| -> GitRepository {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository",
            "metadata": {"name": name},
            "spec": {"url": url, "interval": "1h"}
        }))
        .unwrap()
    };
    repos
        .create(
            &PostParams::default(),
            &make("slow", &daemon.url("app.git")),
        )
        .await
        .unwrap();
    let s = wait_for(&repos, "slow", "stored the first artifact", |s| {
        revision(s) == Some(&format!("main@sha1:{first}"))
    })
    .await;
    assert!(
        cond(&s, SOURCE_VERIFIED).is_none(),
        "no verification configured"
    );

    // With a one-hour interval only the trigger annotation brings the new commit in.
    work.write("a.yaml", "v: 2\n");
    let second = work.commit("second", &Signing::None);
    work.push(&["main"]);
    let patch = serde_json::json!({"metadata": {"annotations": {"sluice.dev/requestedAt": "2026-01-01T00:00:00Z"}}});
    repos
        .patch("slow", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let s = wait_for(&repos, "slow", "polled on request", |s| {
        revision(s) == Some(&format!("main@sha1:{second}"))
    })
    .await;
    assert_eq!(
        s.last_handled_reconcile_at.as_deref(),
        Some("2026-01-01T00:00:00Z")
    );

    // Flux's annotation (what `flux reconcile source git` sets) works the same.
    work.write("a.yaml", "v: 2.5\n");
    let second = work.commit("second and a half", &Signing::None);
    work.push(&["main"]);
    let patch = serde_json::json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-01-02T00:00:00Z"}}});
    repos
        .patch("slow", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let s = wait_for(&repos, "slow", "polled on Flux's request", |s| {
        revision(s) == Some(&format!("main@sha1:{second}"))
    })
    .await;
    assert_eq!(
        s.last_handled_reconcile_at.as_deref(),
        Some("2026-01-02T00:00:00Z")
    );

    // Suspended: a request is acknowledged but nothing is fetched.
    let suspend = serde_json::json!({"spec": {"suspend": true}});
    repos
        .patch("slow", &PatchParams::default(), &Patch::Merge(&suspend))
        .await
        .unwrap();
    wait_for(&repos, "slow", "observed the suspension", |s| {
        s.observed_generation == Some(2)
    })
    .await;
    work.write("a.yaml", "v: 3\n");
    work.commit("third", &Signing::None);
    work.push(&["main"]);
    let patch =
        serde_json::json!({"metadata": {"annotations": {"sluice.dev/requestedAt": "second"}}});
    repos
        .patch("slow", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let s = wait_for(&repos, "slow", "handled the request", |s| {
        s.last_handled_reconcile_at.as_deref() == Some("second")
    })
    .await;
    assert_eq!(
        revision(&s),
        Some(format!("main@sha1:{second}").as_str()),
        "suspended sources do not fetch"
    );

    // A URL that cannot work stalls with a clear message and stores nothing.
    repos
        .create(
            &PostParams::default(),
            &make("broken", "ftp://example.com/repo"),
        )
        .await
        .unwrap();
    let s = wait_for(&repos, "broken", "stalled", |s| {
        cond(s, "Stalled").is_some_and(|c| c.status == ConditionStatus::True)
    })
    .await;
    let ready = cond(&s, "Ready").unwrap();
    assert_eq!(
        (ready.status, ready.reason.as_str()),
        (ConditionStatus::False, "InvalidSpec")
    );
    assert!(ready.message.contains("spec.url"), "{}", ready.message);
    assert!(s.artifact.is_none());

    // A missing Secret is reported and retried, not a crash.
    let mut with_secret = make("nosecret", &daemon.url("app.git"));
    with_secret.spec.secret_ref = Some(sluice::api::LocalObjectReference {
        name: "absent".into(),
    });
    repos
        .create(&PostParams::default(), &with_secret)
        .await
        .unwrap();
    let s = wait_for(&repos, "nosecret", "reported the missing Secret", |s| {
        cond(s, "Ready").is_some_and(|c| c.reason == "SecretNotFound")
    })
    .await;
    assert_eq!(
        cond(&s, "Reconciling").unwrap().reason,
        "ProgressingWithRetry"
    );

    // Deleting a GitRepository frees its storage at the next sweep; others keep theirs.
    let slow_dir = storage
        .path()
        .join("gitrepository")
        .join(ns.name())
        .join("slow");
    assert!(slow_dir.join("cache.git").exists());
    repos.delete("slow", &Default::default()).await.unwrap();
    for _ in 0..100 {
        if repos.get_opt("slow").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let removed = sluice::source::orphans::sweep(&client, storage.path(), Some(ns.name()))
        .await
        .unwrap();
    assert_eq!(removed, vec![(ns.name().to_owned(), "slow".to_owned())]);
    assert!(!slow_dir.exists());

    agent.abort();
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn sluice_agent_process_runs_the_controller() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "gitrepo-agent").await;
    let storage = tempfile::tempdir().unwrap();
    let log = storage.path().join("agent.log");
    let _agent = support::git_servers::spawn_server(
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "agent",
                "--namespace",
                ns.name(),
                "--max-artifact-size",
                "1000",
                "--storage-dir",
            ])
            .arg(storage.path().join("data"))
            .env("KUBECONFIG", support::kubeconfig())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap()),
        "sluice agent",
    );

    let daemon = GitDaemon::start();
    daemon.create_repo("app.git");
    let work = WorkRepo::new(&daemon.url("app.git"));
    work.write("a.yaml", "v: 1\n");
    let sha = work.commit("first", &Signing::None);
    work.push(&["main"]);
    let repos: Api<GitRepository> = Api::namespaced(client.clone(), ns.name());
    let repo: GitRepository = serde_json::from_value(serde_json::json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository",
        "metadata": {"name": "app"},
        "spec": {"url": daemon.url("app.git"), "interval": "1m"}
    }))
    .unwrap();
    repos.create(&PostParams::default(), &repo).await.unwrap();
    let s = wait_for(
        &repos,
        "app",
        "stored an artifact through the agent process",
        |s| revision(s) == Some(&format!("main@sha1:{sha}")),
    )
    .await;
    let path = storage.path().join("data").join(&s.artifact.unwrap().path);
    assert_eq!(
        std::fs::read_to_string(path.join("a.yaml")).unwrap(),
        "v: 1\n",
        "agent log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // The configured size limit refuses a larger tree and keeps the stored artifact.
    work.write("big.yaml", &"x".repeat(2000));
    work.commit("big", &Signing::None);
    work.push(&["main"]);
    let patch = serde_json::json!({"metadata": {"annotations": {"sluice.dev/requestedAt": "big"}}});
    repos
        .patch("app", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let s = wait_for(&repos, "app", "refused the large artifact", |s| {
        cond(s, "Ready").is_some_and(|c| c.reason == "ArtifactFailed")
    })
    .await;
    assert!(
        cond(&s, "Ready")
            .unwrap()
            .message
            .contains("more than the limit of 1000 bytes"),
        "{:?}",
        cond(&s, "Ready")
    );
    assert_eq!(revision(&s), Some(format!("main@sha1:{sha}").as_str()));
    ns.cleanup(&client).await;
}
