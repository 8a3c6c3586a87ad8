//! Bad input to an ImageUpdateAutomation on a real `git daemon`: a marker naming a policy that
//! does not exist, a file with a marker that is not YAML, a push the server rejects. Each gives a
//! clear condition, commits and pushes nothing, leaves Git as it was, and the same automation
//! pushes once the input is fixed.

mod support;

use serde_json::json;
use sluice::api::condition::ConditionStatus;
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
    let api = env.automations();
    support::request_reconcile(&api, "auto", "1").await;
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
    env.hook(
        "pre-receive",
        "#!/bin/sh\necho 'pushes are frozen' >&2\nexit 1\n",
    );
    support::request_reconcile(&api, "auto", "2").await;
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
    std::fs::remove_file(env.bare().join("hooks/pre-receive")).unwrap();
    support::request_reconcile(&api, "auto", "3").await;
    let s = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    assert_eq!(env.tip("main"), s.last_push_commit);
    env.ns.cleanup(&env.client).await;
}
