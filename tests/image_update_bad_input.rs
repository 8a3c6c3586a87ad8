//! Bad input to an ImageUpdateAutomation on a real `git daemon`: a marker naming a policy that
//! does not exist, a file with a marker that is not YAML, a push the server rejects. Each gives a
//! clear condition, commits and pushes nothing, leaves Git as it was, and the same automation
//! pushes once the input is fixed.

mod support;

use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use sluice::api::condition::ConditionStatus;
use sluice::api::image_update_automation::ImageUpdateAutomation;
use support::automation::{DIGEST, Env, ready};
use support::git_signing::Signing;

#[tokio::test]
async fn bad_markers_files_and_pushes_change_nothing() {
    let env = Env::start("imgbad").await;
    env.policy("web", "registry.example:5000/web", "1.2.0", None)
        .await;
    env.policy("api", "registry.example:5000/api", "2.0.0", Some(DIGEST))
        .await;
    let main = env.tip("main").unwrap();

    // A marker naming a policy that does not exist.
    env.work.write(
        "extra/missing.yaml",
        &format!("image: x:1 # {{\"$imagepolicy\": \"{}:nope\"}}\n", env.n()),
    );
    env.work.commit("a marker for nothing", &Signing::None);
    env.work.push(&["main"]);
    let with_missing = env.tip("main").unwrap();
    env.automation("auto", json!({})).await;
    let s = env
        .wait("auto", "failing", |s| {
            ready(s).is_some_and(|c| c.status == ConditionStatus::False)
        })
        .await;
    let c = ready(&s).unwrap();
    assert_eq!(c.reason, "UpdateFailed");
    assert!(
        c.message
            .contains("extra/missing.yaml:1: marker names ImagePolicy")
            && c.message.contains("/nope, which does not exist"),
        "{}",
        c.message
    );
    assert_eq!(
        env.tip("main").as_deref(),
        Some(with_missing.as_str()),
        "nothing pushed"
    );

    // A file with a marker that is not YAML.
    env.work.write(
        "extra/missing.yaml",
        &format!("image: [x:1 # {{\"$imagepolicy\": \"{}:web\"}}\n", env.n()),
    );
    env.work.commit("not yaml", &Signing::None);
    env.work.push(&["main"]);
    let not_yaml = env.tip("main").unwrap();
    let api: Api<ImageUpdateAutomation> = Api::namespaced(env.client.clone(), env.n());
    api.patch(
        "auto",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"sluice.dev/requestedAt": "1"}}})),
    )
    .await
    .unwrap();
    let s = env
        .wait("auto", "failing on YAML", |s| {
            ready(s).is_some_and(|c| c.message.contains("is not YAML"))
        })
        .await;
    assert!(
        ready(&s)
            .unwrap()
            .message
            .contains("extra/missing.yaml: has an image policy marker but is not YAML: line 1")
    );
    assert_eq!(env.tip("main").as_deref(), Some(not_yaml.as_str()));

    // A push the server rejects (a hook refusing everything): a clear condition, nothing changed.
    env.work.git(&["rm", "-q", "extra/missing.yaml"]);
    env.work.commit("fixed", &Signing::None);
    env.work.push(&["main"]);
    let fixed = env.tip("main").unwrap();
    let hook = env.daemon.root.path().join("app/hooks/pre-receive");
    std::fs::write(&hook, "#!/bin/sh\necho 'pushes are frozen' >&2\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    api.patch(
        "auto",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"sluice.dev/requestedAt": "2"}}})),
    )
    .await
    .unwrap();
    let s = env
        .wait("auto", "rejected", |s| {
            ready(s).is_some_and(|c| c.reason == "PushRejected")
        })
        .await;
    assert!(s.last_push_commit.is_none());
    assert_eq!(
        env.tip("main").as_deref(),
        Some(fixed.as_str()),
        "nothing in Git changed"
    );
    assert_ne!(fixed, main);

    // Once the server accepts pushes again, the same automation pushes.
    std::fs::remove_file(&hook).unwrap();
    api.patch(
        "auto",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"sluice.dev/requestedAt": "3"}}})),
    )
    .await
    .unwrap();
    let s = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    assert_eq!(env.tip("main"), s.last_push_commit);
    env.ns.cleanup(&env.client).await;
}
