//! ImageUpdateAutomation's spec beyond the corpus, on a real `git daemon` with receive-pack:
//! `git.push.branch` other than the checked-out branch (the commit lands there, fast-forwarded
//! run after run, restarted from the checked-out branch once merged), `git.checkout.ref.branch`
//! other than the GitRepository's, `git.push.options` as the server's hook sees them,
//! `policySelector`, `suspend` and `releaseWindows`. ImagePolicies get their `latestRef` written directly, as in
//! `image_update.rs`.

mod support;

use kube::api::Api;
use serde_json::json;
use sluice::api::image_policy::ImagePolicy;
use support::automation::{DIGEST, Env, corpus};
use support::git_signing::Signing;

const WEB: &str = "registry.example:5000/web";
const API: &str = "registry.example:5000/api";

/// Both policies of the corpus, chosen as fixtures/image-automation/expected has them.
async fn start(prefix: &str) -> Env {
    let env = Env::start(prefix).await;
    env.policy("web", WEB, "1.2.0", None).await;
    env.policy("api", API, "2.0.0", Some(DIGEST)).await;
    env
}

/// `path` at `rev` on the server, as text.
fn text(env: &Env, rev: &str, path: &str) -> String {
    String::from_utf8(env.show(rev, path)).unwrap()
}

#[tokio::test]
async fn a_push_branch_gets_the_commits_and_the_checkout_branch_is_untouched() {
    let env = start("imgpushbr").await;
    let main = env.tip("main").unwrap();
    env.automation("auto", json!({"push": {"branch": "image-updates"}}))
        .await;
    let s = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    let first = s.last_push_commit.unwrap();
    assert_eq!(env.tip("image-updates").as_deref(), Some(first.as_str()));
    assert_eq!(
        env.tip("main").as_deref(),
        Some(main.as_str()),
        "the checkout branch is untouched"
    );
    assert_eq!(
        env.git(&["rev-parse", &format!("{first}^")]),
        main,
        "the push branch starts from the checkout branch"
    );
    for (path, expected) in corpus("expected", env.n()) {
        assert!(env.show(&first, &path) == expected, "{path}");
    }
    assert!(
        !env.source_asked_to_reconcile().await,
        "the GitRepository tracks main, which did not move"
    );

    // A teammate pushes to main; web moves again. The push branch is unmerged: the update goes on
    // top of it, a fast-forward that keeps the first commit.
    env.work.write("docs.md", "a teammate's change\n");
    let teammate = env.work.commit("docs", &Signing::None);
    env.work.push(&["main"]);
    env.choose("web", WEB, "1.3.0", None).await;
    let s = env
        .wait("auto", "pushed 1.3.0", |s| {
            s.last_push_commit.as_deref().is_some_and(|c| c != first)
        })
        .await;
    let second = s.last_push_commit.unwrap();
    assert_eq!(env.tip("image-updates").as_deref(), Some(second.as_str()));
    assert_eq!(env.git(&["rev-parse", &format!("{second}^")]), first);
    assert_eq!(env.tip("main").as_deref(), Some(teammate.as_str()));
    assert!(text(&env, &second, "crlf.yaml").contains("web:1.3.0"));
    let changed = env.git(&["diff", "--name-only", &first, &second]);
    assert_eq!(
        changed, "crlf.yaml\ndeploy.yaml\nhelmrelease.yaml\nkustomization.yaml",
        "only web's values changed on top of the first commit"
    );

    // The pull request is merged (a merge commit on main); the next update starts again from
    // main, which is still a fast-forward of the push branch.
    env.work.git(&["fetch", "-q", "origin", "image-updates"]);
    env.work.git(&[
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge image-updates",
        "FETCH_HEAD",
    ]);
    env.work.push(&["main"]);
    let merged = env.tip("main").unwrap();
    env.choose("web", WEB, "1.4.0", None).await;
    let s = env
        .wait("auto", "pushed 1.4.0", |s| {
            s.last_push_commit.as_deref().is_some_and(|c| c != second)
        })
        .await;
    let third = s.last_push_commit.unwrap();
    assert_eq!(env.tip("image-updates").as_deref(), Some(third.as_str()));
    assert_eq!(env.git(&["rev-parse", &format!("{third}^")]), merged);
    assert_eq!(env.tip("main").as_deref(), Some(merged.as_str()));
    assert!(text(&env, &third, "docs.md").contains("teammate"));
    env.ns.cleanup(&env.client).await;
}

#[tokio::test]
async fn the_checkout_branch_can_differ_from_the_gitrepository() {
    let env = start("imgcheckout").await;
    let main = env.tip("main").unwrap();
    env.work.git(&["checkout", "-q", "-b", "staging"]);
    env.work.write("staging.txt", "only on staging\n");
    let staging = env.work.commit("staging only", &Signing::None);
    env.work.push(&["staging"]);

    // No push branch: commits go to the checked-out branch.
    env.automation("auto", json!({"checkout": {"ref": {"branch": "staging"}}}))
        .await;
    let s = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    let pushed = s.last_push_commit.unwrap();
    assert_eq!(env.tip("staging").as_deref(), Some(pushed.as_str()));
    assert_eq!(env.git(&["rev-parse", &format!("{pushed}^")]), staging);
    assert_eq!(env.tip("main").as_deref(), Some(main.as_str()));
    assert_eq!(
        s.observed_source_revision,
        Some(format!("staging@sha1:{staging}"))
    );
    assert!(text(&env, &pushed, "crlf.yaml").contains("web:1.2.0"));
    assert!(
        !env.source_asked_to_reconcile().await,
        "the GitRepository tracks main, not staging"
    );
    env.ns.cleanup(&env.client).await;
}

#[tokio::test]
async fn push_options_reach_the_server() {
    let env = start("imgpushopt").await;
    env.git(&["config", "receive.advertisePushOptions", "true"]);
    // The hook records the push options it was given, one a line.
    env.hook(
        "pre-receive",
        r#"#!/bin/sh
i=0
while [ "$i" -lt "${GIT_PUSH_OPTION_COUNT:-0}" ]; do
  eval "echo \"\$GIT_PUSH_OPTION_$i\""
  i=$((i+1))
done > push-options
"#,
    );
    env.automation(
        "auto",
        json!({"push": {"options": {"ci.skip": "", "merge_request.target": "main"}}}),
    )
    .await;
    let s = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    assert_eq!(env.tip("main"), s.last_push_commit);
    let recorded = std::fs::read_to_string(env.bare().join("push-options")).unwrap();
    assert_eq!(
        recorded, "ci.skip\nmerge_request.target=main\n",
        "an empty value sends the key alone, as `git push -o ci.skip`"
    );
    env.ns.cleanup(&env.client).await;
}

#[tokio::test]
async fn only_the_selected_policies_are_applied() {
    let env = start("imgselect").await;
    let policies: Api<ImagePolicy> = Api::namespaced(env.client.clone(), env.n());
    support::merge_patch(
        &policies,
        "web",
        json!({"metadata": {"labels": {"auto": "true"}}}),
    )
    .await;
    env.automation_with(
        "auto",
        json!({}),
        json!({"policySelector": {"matchLabels": {"auto": "true"}}}),
    )
    .await;
    let s = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    let first = s.last_push_commit.clone().unwrap();
    assert_eq!(
        s.observed_policies.keys().collect::<Vec<_>>(),
        ["web"],
        "{s:#?}"
    );
    let deploy = text(&env, &first, "deploy.yaml");
    assert!(
        deploy.contains("\"registry.example:5000/web:1.2.0\""),
        "{deploy}"
    );
    assert!(
        deploy.contains("'registry.example:5000/api:0.9.0'"),
        "api is not selected: its markers are left alone\n{deploy}"
    );
    assert!(text(&env, &first, "kustomization.yaml").contains("digest: sha256:0000"));
    let message = env.git(&["log", "-1", "--format=%B", &first]);
    let changes: Vec<&str> = message.lines().filter(|l| l.starts_with("- ")).collect();
    assert!(
        !changes.is_empty() && changes.iter().all(|l| !l.contains("api")),
        "{message}"
    );

    // Labelled, api is selected: the next run applies it too.
    support::merge_patch(
        &policies,
        "api",
        json!({"metadata": {"labels": {"auto": "true"}}}),
    )
    .await;
    let s = env
        .wait("auto", "pushed api", |s| {
            s.last_push_commit.as_deref().is_some_and(|c| c != first)
        })
        .await;
    let second = s.last_push_commit.unwrap();
    for (path, expected) in corpus("expected", env.n()) {
        assert!(env.show(&second, &path) == expected, "{path}");
    }
    assert_eq!(
        env.git(&["diff", "--name-only", &first, &second]),
        "deploy.yaml\nhelmrelease.yaml\nkustomization.yaml"
    );
    env.ns.cleanup(&env.client).await;
}

#[tokio::test]
async fn a_suspended_automation_commits_nothing_until_resumed() {
    let env = start("imgsuspend").await;
    let main = env.tip("main").unwrap();
    env.automation_with("auto", json!({}), json!({"suspend": true}))
        .await;
    let api = env.automations();
    let generation = api.get("auto").await.unwrap().metadata.generation;
    // The controller has looked at this generation: had it run, it would have pushed first.
    let s = env
        .wait("auto", "observed", |s| s.observed_generation == generation)
        .await;
    assert!(s.last_push_commit.is_none(), "{s:#?}");
    assert_eq!(env.tip("main").as_deref(), Some(main.as_str()));

    // A new choice and a requested run while suspended: still nothing.
    env.choose("web", WEB, "1.3.0", None).await;
    support::request_reconcile(&api, "auto", "while-suspended").await;
    let s = env
        .wait("auto", "asked while suspended", |s| {
            s.last_handled_reconcile_at.as_deref() == Some("while-suspended")
        })
        .await;
    assert!(s.last_push_commit.is_none(), "{s:#?}");
    assert_eq!(env.tip("main").as_deref(), Some(main.as_str()));

    // Resumed: the current choices are committed.
    support::merge_patch(&api, "auto", json!({"spec": {"suspend": false}})).await;
    let s = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    assert_eq!(env.tip("main"), s.last_push_commit);
    let pushed = s.last_push_commit.unwrap();
    assert!(text(&env, &pushed, "crlf.yaml").contains("web:1.3.0"));
    env.ns.cleanup(&env.client).await;
}

#[tokio::test]
async fn outside_its_release_window_an_automation_commits_nothing() {
    let env = start("imgwindow").await;
    let main = env.tip("main").unwrap();
    // A daily hour that opens twelve hours from now.
    let hour = (k8s_openapi::jiff::Timestamp::now()
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .hour()
        + 12)
        % 24;
    let closed = json!([{"schedule": format!("30 {hour} * * *"), "duration": "1h"}]);
    env.automation_with("auto", json!({}), json!({"releaseWindows": closed}))
        .await;
    let s = env
        .wait("auto", "held by the window", |s| {
            support::automation::ready(s).is_some_and(|c| c.message.contains("release window"))
        })
        .await;
    let ready = support::automation::ready(&s).unwrap();
    assert!(
        ready
            .message
            .starts_with("No commits are pushed: outside the release window, the next opens at"),
        "{}",
        ready.message
    );
    assert!(s.last_push_commit.is_none(), "{s:#?}");
    assert_eq!(env.tip("main").as_deref(), Some(main.as_str()));

    // A window that does not parse: the field named, still nothing.
    let api = env.automations();
    let bad = json!([{"schedule": "30 9 * *", "duration": "1h"}]);
    support::merge_patch(&api, "auto", json!({"spec": {"releaseWindows": bad}})).await;
    let s = env
        .wait("auto", "refusing the schedule", |s| {
            support::automation::ready(s)
                .is_some_and(|c| c.message.starts_with("spec.releaseWindows[0].schedule"))
        })
        .await;
    assert!(s.last_push_commit.is_none(), "{s:#?}");

    // Open: the choices are committed.
    let open = json!([{"schedule": "* * * * *", "duration": "1h"}]);
    support::merge_patch(&api, "auto", json!({"spec": {"releaseWindows": open}})).await;
    let s = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    assert_eq!(env.tip("main"), s.last_push_commit);
    env.ns.cleanup(&env.client).await;
}
