//! ImageRepository and ImagePolicy on real registries: the cluster's registry (TLS with the
//! cluster's CA, basic auth), an anonymous one and one behind the Bearer token flow (a token server
//! written for the test; the registry verifies its tokens). Tags pushed with skopeo; each policy
//! kind picks the right tag; a tag pushed later is picked at the next scan; credentials through a
//! ServiceAccount's imagePullSecrets; a suspended repository or policy changes nothing until it is
//! resumed. Bad input is in `image_scan_bad_input.rs`.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde_json::json;
use sluice::api::condition;
use sluice::api::image_policy::ImagePolicy;
use sluice::api::image_repository::ImageRepository;
use support::image::{
    cluster_registry_access, cluster_registry_secrets, latest_tag, not_ready_because, policy,
    policy_status, repo_status, repository, start_controllers,
};
use support::registry::{self, ExtraRegistry};

#[tokio::test]
async fn each_policy_kind_picks_its_tag_and_a_new_tag_is_picked_up() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "scan").await;
    let n = ns.name().to_string();
    let repo = format!("scan-{n}");
    let image = registry::push_tags(
        &repo,
        &[
            "1.0.0",
            "1.1.0",
            "1.2.0-rc.1",
            "2.0.0",
            "latest",
            "build-20261130-7",
            "build-20261201-3",
            "sha256-abc.sig",
        ],
    );
    cluster_registry_secrets(&client, &n).await;
    let storage = tempfile::tempdir().unwrap();
    start_controllers(&client, &n, storage.path(), 1000);

    support::create_sluice_object(
        &client,
        &n,
        repository("app", &image, cluster_registry_access()),
    )
    .await;
    let policies = [
        (
            "stable",
            json!({"policy": {"semver": {"range": ">=1.0.0"}}}),
            "2.0.0",
        ),
        (
            "one-x",
            json!({"policy": {"semver": {"range": "1.x"}}}),
            "1.1.0",
        ),
        (
            "candidates",
            json!({"policy": {"semver": {"range": ">=1.2.0-0 <2.0.0"}}}),
            "1.2.0-rc.1",
        ),
        (
            "by-date",
            json!({"policy": {"alphabetical": {"order": "asc"}}, "filterTags": {"pattern": "^build-(?P<ts>[0-9]+)-[0-9]+$", "extract": "$ts"}}),
            "build-20261201-3",
        ),
        (
            "by-build",
            json!({"policy": {"numerical": {"order": "asc"}}, "filterTags": {"pattern": "^build-[0-9]+-(?P<n>[0-9]+)$", "extract": "$n"}}),
            "build-20261130-7",
        ),
        (
            "first",
            json!({"policy": {"alphabetical": {"order": "desc"}}}),
            "1.0.0",
        ),
        (
            "pinned",
            json!({"policy": {"alphabetical": {}}, "filterTags": {"pattern": "^latest$"}, "digestReflectionPolicy": "IfNotPresent"}),
            "latest",
        ),
    ];
    for (name, spec, _) in &policies {
        support::create_sluice_object(&client, &n, policy(name, "app", spec.clone())).await;
    }
    let repos: Api<ImageRepository> = Api::namespaced(client.clone(), &n);
    let status = repo_status(&repos, "app", "scanned", |s| s.last_scan_result.is_some()).await;
    let scan = status.last_scan_result.unwrap();
    assert_eq!(scan.tag_count, 7, "the .sig tag is excluded: {scan:?}");
    assert_eq!(status.canonical_image_name.as_deref(), Some(image.as_str()));
    assert!(
        condition::find(&status.conditions, "Ready")
            .unwrap()
            .is_true()
    );

    // Credentials found through a ServiceAccount's imagePullSecrets.
    let account: ServiceAccount = serde_json::from_value(
        json!({"metadata": {"name": "puller"}, "imagePullSecrets": [{"name": "registry"}]}),
    )
    .unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), &n)
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    support::create_sluice_object(
        &client,
        &n,
        repository(
            "via-account",
            &image,
            json!({"serviceAccountName": "puller", "certSecretRef": {"name": "registry-ca"}}),
        ),
    )
    .await;
    let s = repo_status(&repos, "via-account", "scanned", |s| {
        s.last_scan_result.is_some()
    })
    .await;
    assert_eq!(s.last_scan_result.unwrap().tag_count, 7);

    let api: Api<ImagePolicy> = Api::namespaced(client.clone(), &n);
    let mut chosen = BTreeMap::new();
    for (name, _, tag) in &policies {
        let s = latest_tag(&api, name, tag).await;
        chosen.insert(*name, s.latest_ref.unwrap());
    }
    assert_eq!(chosen["stable"].name, image);
    assert!(chosen["stable"].digest.is_none(), "no digest unless asked");
    let digest = chosen["pinned"]
        .digest
        .clone()
        .expect("IfNotPresent reads the digest");
    assert!(digest.starts_with("sha256:"), "{digest}");

    // A new tag is picked at the next scan; the previous choice is kept as observedPreviousRef.
    registry::push_tags(&repo, &["2.1.0"]);
    let s = latest_tag(&api, "stable", "2.1.0").await;
    assert_eq!(s.observed_previous_ref.unwrap().tag, "2.0.0");
    let s = repo_status(&repos, "app", "rescanned", |s| {
        s.last_scan_result
            .as_ref()
            .is_some_and(|r| r.tag_count == 8)
    })
    .await;
    assert_eq!(s.last_scan_result.unwrap().latest_tags[0], "latest");

    // An unchanged repository: scans go on, the status is not written again.
    let before = repos.get("app").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        repos.get("app").await.unwrap().metadata.resource_version,
        before,
        "an unchanged scan writes nothing"
    );
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn anonymous_and_token_registries() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "scan-auth").await;
    let n = ns.name().to_string();
    let anonymous = ExtraRegistry::anonymous();
    let (tokens, issued) = ExtraRegistry::with_tokens("robot", "t0ken-pass");
    for tag in ["1.0.0", "1.3.0"] {
        registry::copy_to(&format!("{}/team/app:{tag}", anonymous.address), None);
        registry::copy_to(
            &format!("{}/team/app:{tag}", tokens.address),
            Some("robot:t0ken-pass"),
        );
    }
    let ca = std::fs::read_to_string(registry::cluster_ca()).unwrap();
    registry::create_secret(&client, &n, "ca", "Opaque", json!({"ca.crt": ca})).await;
    let good = registry::docker_config(&tokens.address, "robot", "t0ken-pass");
    let bad = registry::docker_config(&tokens.address, "robot", "wrong");
    registry::create_secret(
        &client,
        &n,
        "tokens",
        "kubernetes.io/dockerconfigjson",
        json!({".dockerconfigjson": good}),
    )
    .await;
    registry::create_secret(
        &client,
        &n,
        "tokens-bad",
        "kubernetes.io/dockerconfigjson",
        json!({".dockerconfigjson": bad}),
    )
    .await;
    let storage = tempfile::tempdir().unwrap();
    start_controllers(&client, &n, storage.path(), 1000);

    let ca_ref = json!({"certSecretRef": {"name": "ca"}});
    support::create_sluice_object(
        &client,
        &n,
        repository(
            "anon",
            &format!("{}/team/app", anonymous.address),
            ca_ref.clone(),
        ),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        repository(
            "token",
            &format!("{}/team/app", tokens.address),
            json!({"certSecretRef": {"name": "ca"}, "secretRef": {"name": "tokens"}}),
        ),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        repository(
            "token-bad",
            &format!("{}/team/app", tokens.address),
            json!({"certSecretRef": {"name": "ca"}, "secretRef": {"name": "tokens-bad"}}),
        ),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        repository(
            "token-none",
            &format!("{}/team/app", tokens.address),
            ca_ref,
        ),
    )
    .await;
    support::create_sluice_object(&client, &n, policy("token", "token", json!({"policy": {"semver": {"range": "1.x"}}, "digestReflectionPolicy": "Always", "interval": "1h"}))).await;

    let repos: Api<ImageRepository> = Api::namespaced(client.clone(), &n);
    for name in ["anon", "token"] {
        let s = repo_status(&repos, name, "scanned", |s| s.last_scan_result.is_some()).await;
        assert_eq!(s.last_scan_result.unwrap().tag_count, 2, "{name}");
    }
    let api: Api<ImagePolicy> = Api::namespaced(client.clone(), &n);
    let s = latest_tag(&api, "token", "1.3.0").await;
    assert!(
        s.latest_ref.unwrap().digest.is_some(),
        "the digest through the token flow"
    );
    let s = repo_status(&repos, "token-bad", "refused", |s| {
        not_ready_because(&s.conditions, "AuthenticationFailed")
    })
    .await;
    let message = &condition::find(&s.conditions, "Ready").unwrap().message;
    assert!(message.contains("rejected the credentials"), "{message}");
    let s = repo_status(&repos, "token-none", "refused", |s| {
        not_ready_because(&s.conditions, "AuthenticationFailed")
    })
    .await;
    assert!(
        condition::find(&s.conditions, "Ready")
            .unwrap()
            .message
            .contains("anonymous")
    );

    // Rescans reuse the token: a few scans later, tokens were issued once per client and scope.
    let first = issued.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        issued.load(Ordering::SeqCst),
        first,
        "rescans ask for no new token"
    );
    ns.cleanup(&client).await;
}

/// Runs the `sluice` binary in namespace `ns` (asynchronously: the controllers of this test keep
/// running meanwhile): whether it succeeded, its stdout and its stderr.
async fn sluice_cli(ns: &str, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .args(["--namespace", ns])
        .env("KUBECONFIG", support::kubeconfig())
        .env_remove("RUST_LOG")
        .env_remove("SLUICE_NAMESPACE")
        .output()
        .await
        .expect("sluice runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Suspending, resuming and asking for reconciles through the API and through `sluice suspend`,
/// `resume`, `reconcile` and `get` with the image kinds.
#[tokio::test]
async fn suspended_repositories_and_policies_change_nothing_until_resumed() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "scan-suspend").await;
    let n = ns.name().to_string();
    let repo = format!("suspend-{n}");
    let image = registry::push_tags(&repo, &["1.0.0"]);
    cluster_registry_secrets(&client, &n).await;
    let storage = tempfile::tempdir().unwrap();
    start_controllers(&client, &n, storage.path(), 1000);
    support::create_sluice_object(
        &client,
        &n,
        repository("app", &image, cluster_registry_access()),
    )
    .await;
    let range = json!({"policy": {"semver": {"range": ">=1.0.0"}}});
    for name in ["follows", "held"] {
        support::create_sluice_object(&client, &n, policy(name, "app", range.clone())).await;
    }
    let repos: Api<ImageRepository> = Api::namespaced(client.clone(), &n);
    let policies: Api<ImagePolicy> = Api::namespaced(client.clone(), &n);
    latest_tag(&policies, "held", "1.0.0").await;
    let (ok, table, err) = sluice_cli(&n, &["get", "image-policy", "held"]).await;
    assert!(ok, "{err}");
    let row = table
        .lines()
        .find(|l| l.starts_with("held "))
        .unwrap_or_default();
    assert!(
        row.contains(&format!("{image}:1.0.0")) && row.contains("True"),
        "{table}"
    );
    let tag_count = |count: i64| {
        move |s: &sluice::api::image_repository::ImageRepositoryStatus| {
            s.last_scan_result
                .as_ref()
                .is_some_and(|r| r.tag_count == count)
        }
    };

    // A suspended repository does not scan, not even when asked to: a new tag goes unseen.
    support::merge_patch(&repos, "app", json!({"spec": {"suspend": true}})).await;
    let generation = repos.get("app").await.unwrap().metadata.generation;
    repo_status(&repos, "app", "observed suspended", |s| {
        s.observed_generation == generation
    })
    .await;
    registry::push_tags(&repo, &["1.1.0"]);
    support::request_reconcile(&repos, "app", "while-suspended").await;
    let s = repo_status(&repos, "app", "asked while suspended", |s| {
        s.last_handled_reconcile_at.as_deref() == Some("while-suspended")
    })
    .await;
    assert!(tag_count(1)(&s), "{s:#?}");

    // Resumed (with `sluice resume`, which waits for the reconcile it asks for): the new tag
    // is scanned and chosen.
    let (ok, _, err) = sluice_cli(
        &n,
        &["resume", "imagerepository", "app", "--timeout", "120s"],
    )
    .await;
    assert!(ok, "{err}");
    repo_status(&repos, "app", "rescanned", tag_count(2)).await;
    let (ok, table, err) = sluice_cli(&n, &["get", "imagerepositories"]).await;
    assert!(ok && table.contains("2 tags"), "{table}{err}");
    latest_tag(&policies, "held", "1.1.0").await;

    // A suspended policy (`sluice suspend`) keeps its choice while another policy of the same
    // repository moves.
    let (ok, _, err) = sluice_cli(&n, &["suspend", "imagepolicy", "held"]).await;
    assert!(ok, "{err}");
    let generation = policies.get("held").await.unwrap().metadata.generation;
    policy_status(&policies, "held", "observed suspended", |s| {
        s.observed_generation == generation
    })
    .await;
    registry::push_tags(&repo, &["1.2.0"]);
    latest_tag(&policies, "follows", "1.2.0").await;
    let (ok, _, err) = sluice_cli(&n, &["reconcile", "imagepol", "held"]).await;
    assert!(!ok && err.contains("is suspended"), "{err}");
    support::request_reconcile(&policies, "held", "while-suspended").await;
    let s = policy_status(&policies, "held", "asked while suspended", |s| {
        s.last_handled_reconcile_at.as_deref() == Some("while-suspended")
    })
    .await;
    assert_eq!(s.latest_ref.unwrap().tag, "1.1.0");

    // Resumed: it chooses from the latest scan.
    support::merge_patch(&policies, "held", json!({"spec": {"suspend": false}})).await;
    let s = latest_tag(&policies, "held", "1.2.0").await;
    assert_eq!(s.observed_previous_ref.unwrap().tag, "1.1.0");
    ns.cleanup(&client).await;
}
