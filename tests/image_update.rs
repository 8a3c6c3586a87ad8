//! ImageUpdateAutomation against a real `git daemon` with receive-pack and real gpg: the corpus of
//! fixtures/image-automation changes only in the replaced values (byte for byte); the pushed
//! commit is signed and `git verify-commit` accepts it; a push that lands during the run is kept
//! and the update re-applied on top of it; one branch per update. ImagePolicies here get their
//! `latestRef` written directly: the automation only reads it (tests/image_end_to_end.rs runs the
//! chain). Bad input is in `image_update_bad_input.rs`.

mod support;

use std::process::Command;

use serde_json::json;
use support::automation::{DIGEST, Env, corpus, ready};
use support::git_signing::{GpgHome, Signing};

#[tokio::test]
async fn the_corpus_changes_only_in_the_replaced_values_and_the_commit_is_signed() {
    let env = Env::start("imgupd").await;
    let gpg = GpgHome::new();
    let key = gpg.key("sluice bot", "bot@example.com");
    support::registry::create_secret(
        &env.client,
        env.n(),
        "signing",
        "Opaque",
        json!({"git.asc": String::from_utf8(gpg.export_secret(&key)).unwrap()}),
    )
    .await;
    env.policy("web", "registry.example:5000/web", "1.2.0", None)
        .await;
    env.policy("api", "registry.example:5000/api", "2.0.0", Some(DIGEST))
        .await;
    let before = env.tip("main").unwrap();

    // Someone else pushes to main while the first push is on its way: a pre-receive hook lands a
    // commit of theirs just before sluice's update is applied, once.
    env.hook(
        "pre-receive",
        "#!/bin/sh\nset -e\nunset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n\
         [ -e raced ] && exit 0\ntouch raced\n\
         tree=$(git rev-parse 'refs/heads/main^{tree}')\n\
         c=$(echo 'a concurrent commit' | GIT_AUTHOR_NAME=Other GIT_AUTHOR_EMAIL=other@example.com GIT_COMMITTER_NAME=Other GIT_COMMITTER_EMAIL=other@example.com git commit-tree \"$tree\" -p refs/heads/main)\n\
         git update-ref refs/heads/main \"$c\"\n",
    );

    env.automation(
        "auto",
        json!({"commit": {"signingKey": {"secretRef": {"name": "signing"}}}}),
    )
    .await;
    let status = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    let pushed = status.last_push_commit.clone().unwrap();
    assert_eq!(env.tip("main").as_deref(), Some(pushed.as_str()));
    assert!(ready(&status).unwrap().is_true(), "{status:#?}");
    assert!(
        env.bare().join("raced").exists(),
        "the concurrent push happened"
    );

    // The concurrent commit is kept: it is the parent of sluice's commit, itself on the old tip.
    let parent = env.git(&["rev-parse", &format!("{pushed}^")]);
    assert_eq!(
        env.git(&["log", "-1", "--format=%an %s", &parent]),
        "Other a concurrent commit"
    );
    assert_eq!(env.git(&["rev-parse", &format!("{parent}^")]), before);
    assert_eq!(
        env.git(&["log", "-1", "--format=%an <%ae>", &pushed]),
        "sluice bot <bot@example.com>"
    );
    let message = env.git(&["log", "-1", "--format=%B", &pushed]);
    assert!(
        message.starts_with(&format!("Update images by {}/auto", env.n())),
        "{message}"
    );
    assert!(
        message.contains(
            "- crlf.yaml: registry.example:5000/web:1.0.0 -> registry.example:5000/web:1.2.0"
        ),
        "{message}"
    );

    // Byte for byte: the changed files equal the expected corpus, every other file is as it was.
    for (path, expected) in corpus("expected", env.n()) {
        assert!(
            env.show(&pushed, &path) == expected,
            "{path} differs from fixtures/image-automation/expected"
        );
    }
    let changed = env.git(&["diff", "--name-only", &parent, &pushed]);
    assert_eq!(
        changed,
        "crlf.yaml\ndeploy.yaml\nhelmrelease.yaml\nkustomization.yaml"
    );

    // The commit is signed with the Secret's key, and git accepts the signature.
    let verify = Command::new("git")
        .arg("-C")
        .arg(env.bare())
        .args(["verify-commit", "--raw", &pushed])
        .env("GNUPGHOME", gpg.dir.path())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "git verify-commit: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        String::from_utf8_lossy(&verify.stderr).contains(&format!("VALIDSIG {}", key.fingerprint))
    );

    // The loop closes: the GitRepository tracking main was asked to reconcile.
    assert!(env.source_asked_to_reconcile().await);

    // Nothing new: no commit.
    support::request_reconcile(&env.automations(), "auto", "again").await;
    env.wait("auto", "ran again", |s| {
        s.last_handled_reconcile_at.as_deref() == Some("again")
    })
    .await;
    assert_eq!(
        env.tip("main").as_deref(),
        Some(pushed.as_str()),
        "no change, no commit"
    );
    env.ns.cleanup(&env.client).await;
}

#[tokio::test]
async fn one_branch_per_update() {
    let env = Env::start("imgbranch").await;
    // Without the digest marker, api (no digest reflected) is up to date at 0.9.0.
    env.work.git(&["rm", "-q", "kustomization.yaml"]);
    env.work.commit("no kustomization", &Signing::None);
    env.work.push(&["main"]);
    env.policy("web", "registry.example:5000/web", "1.2.0", None)
        .await;
    env.policy("api", "registry.example:5000/api", "0.9.0", None)
        .await;
    let main = env.tip("main").unwrap();
    env.automation(
        "auto",
        json!({"push": {"branchTemplate": "image-updates/{{ .Policy.Name }}"}}),
    )
    .await;
    let status = env
        .wait("auto", "pushed", |s| s.last_push_commit.is_some())
        .await;
    // web moved: a branch; api is already at 0.9.0 in the files: none.
    let web = env.tip("image-updates/web").expect("a branch for web");
    assert_eq!(
        env.tip("image-updates/api"),
        None,
        "an unchanged policy creates no branch"
    );
    assert_eq!(
        env.tip("main").as_deref(),
        Some(main.as_str()),
        "main is untouched"
    );
    assert_eq!(status.last_push_commit.as_deref(), Some(web.as_str()));

    // Both move: api gets its branch, web's branch is fast-forwarded (it was not merged).
    env.choose("api", "registry.example:5000/api", "2.0.0", None)
        .await;
    env.choose("web", "registry.example:5000/web", "1.3.0", None)
        .await;
    env.wait("auto", "pushed api", |s| {
        s.observed_policies
            .get("api")
            .is_some_and(|r| r.tag == "2.0.0")
            && s.observed_policies
                .get("web")
                .is_some_and(|r| r.tag == "1.3.0")
    })
    .await;
    let api_branch = env.tip("image-updates/api").expect("a branch for api");
    let web2 = env.tip("image-updates/web").unwrap();
    assert_eq!(
        env.git(&["rev-parse", &format!("{web2}^")]),
        web,
        "fast-forwarded"
    );
    assert_eq!(env.git(&["rev-parse", &format!("{api_branch}^")]), main);
    assert!(
        String::from_utf8(env.show(&web2, "crlf.yaml"))
            .unwrap()
            .contains("web:1.3.0")
    );
    let api_files = String::from_utf8(env.show(&api_branch, "helmrelease.yaml")).unwrap();
    assert!(
        api_files.contains("api:2.0.0") && api_files.contains("tag: '1.0.0'"),
        "only api's values change on its branch:\n{api_files}"
    );
    env.ns.cleanup(&env.client).await;
}
