//! Bad input to ImageRepository and ImagePolicy: a wrong password, a Secret that is not JSON, a
//! missing repository, more tags than the limit, no CA, a bad image or exclusion pattern, a registry
//! answering garbage instead of a tag list, one page of millions of tags, a busy registry (retried),
//! a semver range that does not parse and one that matches nothing, a policy naming no repository,
//! a registry that never answers, or never answers for a digest (`spec.timeout`): each gives a clear condition, stores nothing,
//! and the same controllers go on scanning.

mod support;

use kube::api::Api;
use serde_json::json;
use sluice::api::condition;
use sluice::api::image_policy::ImagePolicy;
use sluice::api::image_repository::ImageRepository;
use support::image::{
    cluster_registry_secrets, not_ready_because, policy, policy_status, repo_status, repository,
    start_controllers,
};
use support::node;
use support::registry;
use support::scripted_registry::{self, ScriptedRegistry};

#[tokio::test]
async fn bad_input_gives_a_clear_condition_and_the_controllers_keep_running() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "scan-bad").await;
    let n = ns.name().to_string();
    let repo = format!("bad-{n}");
    let image = registry::push_tags(&repo, &["1.0.0", "1.1.0", "1.2.0", "1.3.0"]);
    cluster_registry_secrets(&client, &n).await;
    let address = node::registry().address.clone();
    registry::create_secret(
        &client,
        &n,
        "wrong",
        "kubernetes.io/dockerconfigjson",
        json!({".dockerconfigjson": registry::docker_config(&address, "sluice", "wrong")}),
    )
    .await;
    registry::create_secret(
        &client,
        &n,
        "garbage",
        "Opaque",
        json!({".dockerconfigjson": "{not json"}),
    )
    .await;
    let storage = tempfile::tempdir().unwrap();
    // A limit of three tags stands for a tag list of millions.
    start_controllers(&client, &n, storage.path(), 3);

    let ca = json!({"certSecretRef": {"name": "registry-ca"}});
    let with = |secret: &str| json!({"certSecretRef": {"name": "registry-ca"}, "secretRef": {"name": secret}});
    support::create_sluice_object(
        &client,
        &n,
        repository("wrong-password", &image, with("wrong")),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        repository("garbage-secret", &image, with("garbage")),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        repository(
            "missing",
            &format!("{address}/nothing-here-{n}"),
            with("registry"),
        ),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        repository("too-many", &image, with("registry")),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        repository("no-ca", &image, json!({"secretRef": {"name": "registry"}})),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        repository("bad-image", "UPPER/Case:tag", ca.clone()),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        repository("bad-exclusion", &image, json!({"exclusionList": ["("]})),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        policy(
            "bad-range",
            "wrong-password",
            json!({"policy": {"semver": {"range": ">= nothing"}}}),
        ),
    )
    .await;
    support::create_sluice_object(
        &client,
        &n,
        policy(
            "no-repo",
            "absent",
            json!({"policy": {"semver": {"range": "1.x"}}}),
        ),
    )
    .await;

    // A registry that answers garbage, one page of millions of tags, or is busy before it answers.
    let scripted = ScriptedRegistry::start();
    for name in ["garbage", "millions", "busy"] {
        support::create_sluice_object(
            &client,
            &n,
            repository(
                name,
                &format!("{}/{name}", scripted.address),
                json!({"insecure": true}),
            ),
        )
        .await;
    }
    support::create_sluice_object(
        &client,
        &n,
        policy(
            "matches-nothing",
            "busy",
            json!({"policy": {"semver": {"range": ">=9.0.0"}}}),
        ),
    )
    .await;

    let repos: Api<ImageRepository> = Api::namespaced(client.clone(), &n);
    let expect = [
        (
            "wrong-password",
            "AuthenticationFailed",
            "rejected the credentials",
        ),
        ("garbage-secret", "InvalidSecret", "not valid JSON"),
        ("missing", "RepositoryNotFound", "not found"),
        ("too-many", "TooManyTags", "more than 3 tags"),
        ("no-ca", "ScanFailed", "certificate"),
        ("bad-image", "InvalidSpec", "spec.image"),
        ("bad-exclusion", "InvalidSpec", "spec.exclusionList[0]"),
        (
            "garbage",
            "ScanFailed",
            "sent an answer that is not a tag list",
        ),
        ("millions", "ScanFailed", "bytes for one page"),
    ];
    for (name, reason, text) in expect {
        let s = repo_status(&repos, name, &format!("failing with {reason}"), |s| {
            not_ready_because(&s.conditions, reason)
        })
        .await;
        let message = &condition::find(&s.conditions, "Ready").unwrap().message;
        assert!(message.contains(text), "{name}: {message}");
        assert!(s.last_scan_result.is_none(), "{name}: nothing stored");
    }
    let api: Api<ImagePolicy> = Api::namespaced(client.clone(), &n);
    for (name, reason, text) in [
        ("bad-range", "InvalidSpec", "spec.policy.semver.range"),
        ("no-repo", "DependencyNotReady", "not found"),
        ("matches-nothing", "NoMatchingTag", "none of the 2 tags"),
    ] {
        let s = policy_status(&api, name, &format!("failing with {reason}"), |s| {
            not_ready_because(&s.conditions, reason)
        })
        .await;
        let message = &condition::find(&s.conditions, "Ready").unwrap().message;
        assert!(message.contains(text), "{name}: {message}");
        assert!(s.latest_ref.is_none(), "{name}: nothing chosen");
    }

    // The busy registry was retried (503, then 429 with Retry-After) within one scan.
    let s = repo_status(&repos, "busy", "scanned", |s| s.last_scan_result.is_some()).await;
    assert_eq!(s.last_scan_result.unwrap().tag_count, 2);
    assert!(scripted.requests("/v2/busy/tags/list") >= 3);

    // The same controllers still scan a good repository.
    let good = registry::push_tags(&format!("good-{n}"), &["1.0.0", "2.0.0", "2.0.0.sig"]);
    support::create_sluice_object(&client, &n, repository("good", &good, with("registry"))).await;
    let s = repo_status(&repos, "good", "scanned", |s| s.last_scan_result.is_some()).await;
    assert_eq!(s.last_scan_result.unwrap().tag_count, 2);
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn a_registry_that_never_answers_fails_within_the_timeout_and_others_are_scanned() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "scan-silent").await;
    let n = ns.name().to_string();
    let storage = tempfile::tempdir().unwrap();
    start_controllers(&client, &n, storage.path(), 1000);
    let silent = scripted_registry::silent();
    let image = format!("{silent}/app");
    support::create_sluice_object(
        &client,
        &n,
        repository("silent", &image, json!({"insecure": true, "timeout": "2s"})),
    )
    .await;
    // Waits an hour for its answer: the scan is still hanging when the others are done.
    support::create_sluice_object(
        &client,
        &n,
        repository(
            "waiting",
            &image,
            json!({"insecure": true, "timeout": "1h"}),
        ),
    )
    .await;

    let repos: Api<ImageRepository> = Api::namespaced(client.clone(), &n);
    let s = repo_status(&repos, "silent", "timing out", |s| {
        not_ready_because(&s.conditions, "ScanFailed")
    })
    .await;
    let message = &condition::find(&s.conditions, "Ready").unwrap().message;
    assert!(
        message.contains(&format!("scanning {image}"))
            && message.contains("longer than the timeout of 2s"),
        "{message}"
    );
    assert!(s.last_scan_result.is_none());

    // The same controllers scan other repositories meanwhile. The registry of one of them lists
    // its tags but never answers for a digest: the policy asking for one fails within the
    // repository's timeout.
    let scripted = ScriptedRegistry::start();
    for name in ["paged", "stalls"] {
        support::create_sluice_object(
            &client,
            &n,
            repository(
                name,
                &format!("{}/{name}", scripted.address),
                json!({"insecure": true, "timeout": "2s"}),
            ),
        )
        .await;
    }
    support::create_sluice_object(
        &client,
        &n,
        policy(
            "digest",
            "stalls",
            json!({"policy": {"semver": {"range": "1.x"}}, "digestReflectionPolicy": "IfNotPresent"}),
        ),
    )
    .await;
    let api: Api<ImagePolicy> = Api::namespaced(client.clone(), &n);
    let s = policy_status(&api, "digest", "timing out", |s| {
        not_ready_because(&s.conditions, "ScanFailed")
    })
    .await;
    let message = &condition::find(&s.conditions, "Ready").unwrap().message;
    assert!(
        message.contains(&format!(
            "reading the digest of {}/stalls:1.0.0 took longer than the timeout of 2s",
            scripted.address
        )),
        "{message}"
    );
    assert!(s.latest_ref.is_none(), "nothing chosen without its digest");
    let s = repo_status(&repos, "paged", "scanned", |s| s.last_scan_result.is_some()).await;
    assert_eq!(
        s.last_scan_result.unwrap().tag_count,
        scripted_registry::PAGED as i64
    );
    let waiting = repos
        .get("waiting")
        .await
        .unwrap()
        .status
        .unwrap_or_default();
    assert!(
        waiting.last_scan_result.is_none()
            && condition::find(&waiting.conditions, "Ready").is_none_or(|c| !c.is_true()),
        "{waiting:#?}"
    );
    ns.cleanup(&client).await;
}
