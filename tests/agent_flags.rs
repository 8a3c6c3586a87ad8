//! `sluice agent --watch-label-selector`: an agent reconciles only the objects whose labels match,
//! so several agents can share a namespace's objects.

mod support;

use kube::Api;
use serde_json::json;
use sluice::api::condition::ConditionStatus;
use sluice::api::git_repository::GitRepository;
use support::agent::{self, Agent, ready};
use support::git_servers::GitDaemon;
use support::git_signing::{Signing, WorkRepo};

#[tokio::test]
async fn a_label_selector_shards_the_objects_between_agents() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "shard").await;
    let n = ns.name().to_string();
    let daemon = GitDaemon::start();
    daemon.create_repo("app.git");
    let work = WorkRepo::new(&daemon.url("app.git"));
    work.write("deploy/a.yaml", "a: 1\n");
    work.commit("one", &Signing::None);
    work.push(&["main"]);
    let source = |name: &str, shard: &str| {
        json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository",
            "metadata": {"name": name, "labels": {"shard": shard}},
            "spec": {"url": daemon.url("app.git"), "interval": "1s", "ref": {"branch": "main"}}})
    };
    agent::create(&client, &n, source("mine", "a"))
        .await
        .unwrap();
    agent::create(&client, &n, source("theirs", "b"))
        .await
        .unwrap();
    let shard_a = Agent::start(
        agent::admin_config().await,
        &n,
        &["--watch-label-selector", "shard=a"],
    )
    .await;

    let sources: Api<GitRepository> = Api::namespaced(client.clone(), &n);
    agent::wait_for(&sources, "mine", "ready", |s| {
        s.status
            .as_ref()
            .and_then(|s| ready(&s.conditions))
            .is_some_and(|c| c.status == ConditionStatus::True)
    })
    .await;
    // A few more polls of `mine` later, `theirs` is still untouched.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let theirs = sources.get("theirs").await.unwrap();
    assert!(theirs.status.is_none(), "{:?}", theirs.status);
    assert!(shard_a.is_running());
    shard_a.stop();
    ns.cleanup(&client).await;
}
