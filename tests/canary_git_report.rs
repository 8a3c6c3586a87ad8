//! Failed releases reported to Git, on the real API server (pods on kwok's node) with the
//! source, Kustomization and canary controllers of the agent in the test process: a Canary whose
//! target a Kustomization applies from a real Git server rolls a commit back (its pre-rollout
//! webhook never answers), and the commit gets a failed commit status (a recording server
//! standing in for GitHub's API), a note in `refs/notes/sluice` appended to someone else's note
//! and pushed without force, and a branch reverting it; a report made again after the fact
//! (as after a restart) adds nothing. A remote without push rights and a wrong password are said
//! on the Canary and change nothing in Git, the rollback goes on regardless, and the note lands
//! once the remote lets it (the revert, which a later commit made conflict, is skipped with a
//! Warning); a Canary whose target no Kustomization applied says once that there is nothing to
//! report. A notes push after the notes moved is refused, not forced.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use sluice::api::canary::{Canary, CanaryStatus};
use sluice::api::condition::{self, Condition};
use sluice::api::kustomization::Kustomization;
use support::canary::{self as c, Analyzer, wait_canary};
use support::git_servers::{GitDaemon, HttpsGit, run};
use support::git_signing::{Signing, WorkRepo};
use support::node::eventually;
use support::recorder::Recorder;

const LONG: Duration = Duration::from_secs(300);

/// A URL nothing answers: the pre-rollout check of every new revision fails.
fn refused_url() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}/", closed.local_addr().unwrap())
}

/// The Deployment `name` on kwok's node at `image`, without a namespace.
fn deployment(name: &str, image: &str) -> Value {
    let mut d = c::kwok_deployment(name);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    d
}

/// A Canary of Deployment `name` that reports failures to Git.
fn canary(name: &str, refused: &str) -> Value {
    json!({
        "apiVersion": "sluice.dev/v1alpha1", "kind": "Canary",
        "metadata": {"name": name},
        "spec": {
            "provider": "kubernetes",
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "progressDeadlineSeconds": 60,
            "service": {"port": 80, "targetPort": "http"},
            "analysis": {
                "interval": "10s", "threshold": 1, "iterations": 2,
                "webhooks": [{"name": "gate", "type": "pre-rollout", "url": refused, "timeout": "2s"}],
            },
            "gitReport": {"note": true, "revertBranch": true},
        },
    })
}

/// Objects as a YAML stream, one line each.
fn manifests(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| format!("---\n{}\n", serde_json::to_string(o).unwrap()))
        .collect()
}

/// The app as committed: Deployment `web` at `image` and its Canary.
fn app(image: &str, refused: &str) -> String {
    manifests(&[deployment("web", image), canary("web", refused)])
}

/// The source and Kustomization controllers of one namespace, handing over to `analyzer`.
fn controllers(
    client: &Client,
    namespace: &str,
    storage: &Path,
    analyzer: &Analyzer,
    config: kube::Config,
) -> [tokio::task::JoinHandle<()>; 2] {
    let settings = sluice::source::controller::Settings {
        namespace: Some(namespace.into()),
        ..sluice::source::controller::Settings::new(storage.to_owned())
    };
    [
        tokio::spawn(sluice::source::controller::run(client.clone(), settings)),
        tokio::spawn(sluice::kustomization::controller::run_with_handoff(
            client.clone(),
            config,
            sluice::kustomization::controller::Settings {
                storage: storage.to_owned(),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            Some(analyzer.handoff.clone()),
        )),
    ]
}

/// The GitRepository `app` of `url` and the Kustomization `app` applying `./deploy` from it,
/// with a health check of Deployment `web`.
async fn source_and_kustomization(client: &Client, n: &str, url: &str, secret: Option<&str>) {
    let mut spec = json!({"url": url, "interval": "1s", "ref": {"branch": "main"}});
    if let Some(secret) = secret {
        spec["secretRef"] = json!({"name": secret});
    }
    c::create(
        client,
        n,
        json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository",
        "metadata": {"name": "app"}, "spec": spec}),
    )
    .await;
    c::create(client, n, json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": "app"},
        "spec": {"interval": "10m", "retryInterval": "5s", "timeout": "5m", "prune": true, "targetNamespace": n,
            "sourceRef": {"kind": "GitRepository", "name": "app"}, "path": "./deploy",
            "healthChecks": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": n}]}})).await;
}

fn git_reported(status: &CanaryStatus) -> Option<&Condition> {
    condition::find(&status.conditions, "GitReported")
}

/// Waits until the Canary's `GitReported` condition has `reason` and a message with `says`.
async fn wait_reported(
    client: &Client,
    n: &str,
    name: &str,
    reason: &str,
    says: &str,
) -> Condition {
    let status = wait_canary(
        client,
        n,
        name,
        LONG,
        &format!("GitReported {reason}"),
        |s| git_reported(s).is_some_and(|c| c.reason == reason && c.message.contains(says)),
    )
    .await;
    git_reported(&status).unwrap().clone()
}

/// `git` in `dir`, its output trimmed.
fn git(dir: &Path, args: &[&str]) -> String {
    run(Command::new("git").arg("-C").arg(dir).args(args))
        .trim()
        .to_string()
}

/// A fresh clone of `url` with every note fetched.
fn clone_with_notes(url: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(Command::new("git")
        .args(["clone", "-q", url])
        .arg(dir.path()));
    git(
        dir.path(),
        &["fetch", "-q", "origin", "refs/notes/*:refs/notes/*"],
    );
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_canary_leaves_a_status_a_note_and_a_revert_branch_on_its_commit() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "git-report").await;
    let n = ns.name().to_string();
    let recorder = Recorder::start().await;
    // The process's Events go to the notification dispatcher, as in the agent.
    let (dispatcher, deliver) =
        sluice::notify::dispatch::start(client.clone(), Some(n.clone()), Default::default());
    sluice::runtime::events::install_sink(dispatcher);
    let delivering = tokio::spawn(deliver);
    let analyzer = Analyzer::start(&client, &n, None);
    let storage = tempfile::tempdir().unwrap();
    let config = support::agent::admin_config().await;
    let running = controllers(&client, &n, storage.path(), &analyzer, config);

    // Canary failures become commit statuses on GitHub (the recording server).
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "github-token"},
        "stringData": {"token": "ghp_t0ken"}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &n)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    c::create(&client, &n, json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Provider",
        "metadata": {"name": "github"},
        "spec": {"type": "github", "address": format!("{}/org/app", recorder.base), "secretRef": {"name": "github-token"}}})).await;
    c::create(&client, &n, json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Alert",
        "metadata": {"name": "releases"},
        "spec": {"providerRef": {"name": "github"}, "eventSources": [{"kind": "Canary", "name": "*"}]}})).await;

    let refused = refused_url();
    let daemon = GitDaemon::start();
    daemon.create_repo("app.git");
    let url = daemon.url("app.git");
    let work = WorkRepo::new(&url);
    work.write("deploy/app.yaml", &app("example.com/app:v1", &refused));
    let good = work.commit("web v1", &Signing::None);
    work.push(&["main"]);
    source_and_kustomization(&client, &n, &url, None).await;
    wait_canary(&client, &n, "web", LONG, "initialized", |s| {
        c::phase(s) == "Initialized"
    })
    .await;

    // A commit that fails its analysis, which CI already wrote a note on.
    work.write("deploy/app.yaml", &app("example.com/app:v2", &refused));
    let bad = work.commit("web v2", &Signing::None);
    work.git(&[
        "notes",
        "--ref=sluice",
        "add",
        "-m",
        "Deployed to staging by CI",
        &bad,
    ]);
    let theirs = work.git(&["rev-parse", "refs/notes/sluice"]);
    work.push(&["main", "refs/notes/sluice"]);
    let revision = format!("main@sha1:{bad}");
    wait_canary(&client, &n, "web", LONG, "rolled back", |s| {
        c::phase(s) == "Failed"
    })
    .await;
    let reported = wait_reported(&client, &n, "web", "Reported", "noted").await;
    assert_eq!(reported.status, condition::ConditionStatus::True);
    assert!(reported.message.contains(&bad), "{reported:?}");

    // The note: CI's first, then the Canary's, with the check that failed; on top of CI's notes
    // commit (nothing overwritten).
    let clone = clone_with_notes(&url);
    let note = git(clone.path(), &["notes", "--ref=sluice", "show", &bad]);
    println!("the note on {bad}:\n{note}");
    let header = format!("Canary {n}/web rolled back {revision}");
    assert!(note.starts_with("Deployed to staging by CI\n\n"), "{note}");
    assert!(note.contains(&header), "{note}");
    assert!(note.contains("pre-rollout webhook gate"), "{note}");
    assert!(note.contains("Failed checks: 1/1"), "{note}");
    assert!(note.contains("Target: Deployment/web"), "{note}");
    let notes_parent = git(clone.path(), &["rev-parse", "refs/notes/sluice^"]);
    assert_eq!(
        notes_parent, theirs,
        "the notes were not added on top of CI's"
    );
    let good_note = Command::new("git")
        .arg("-C")
        .arg(clone.path())
        .args(["notes", "--ref=sluice", "show", &good])
        .output()
        .unwrap();
    assert!(!good_note.status.success(), "the good commit got a note");

    // The revert branch: the failed commit undone, on top of main.
    let branch = format!("sluice/revert-{}", &bad[..7]);
    git(
        clone.path(),
        &["fetch", "-q", "origin", &format!("{branch}:{branch}")],
    );
    assert_eq!(
        git(clone.path(), &["rev-parse", &format!("{branch}^")]),
        bad
    );
    assert_eq!(
        git(
            clone.path(),
            &["show", &format!("{branch}:deploy/app.yaml")]
        ),
        git(clone.path(), &["show", &format!("{good}:deploy/app.yaml")]),
        "the revert branch does not hold the good revision's manifests"
    );
    let message = git(clone.path(), &["log", "-1", "--format=%B", &branch]);
    assert!(
        message.contains(&format!("This reverts commit {bad}")),
        "{message}"
    );

    // The commit statuses: pending while the analysis ran, failure with the check once rolled
    // back; nothing on the good commit.
    let path = format!("/api/v3/repos/org/app/statuses/{bad}");
    let statuses = eventually(
        Duration::from_secs(60),
        "a failed commit status",
        || async {
            let bodies: Vec<Value> = recorder.at(&path).iter().map(|r| r.json()).collect();
            if bodies.iter().any(|b| b["state"] == "failure") {
                Ok(bodies)
            } else {
                Err(format!("{:?}: {bodies:?}", recorder.paths()))
            }
        },
    )
    .await;
    let failure = statuses.iter().find(|b| b["state"] == "failure").unwrap();
    assert_eq!(failure["context"], "canary/web", "{failure}");
    assert!(
        failure["description"]
            .as_str()
            .unwrap()
            .contains("pre-rollout webhook gate"),
        "{failure}"
    );
    assert!(
        statuses
            .iter()
            .any(|b| b["state"] == "pending" && b["context"] == "canary/web"),
        "{statuses:?}"
    );
    assert_eq!(
        recorder
            .at(&format!("/api/v3/repos/org/app/statuses/{good}"))
            .len(),
        0,
        "{:?}",
        recorder.paths()
    );

    // Reported again (as after a restart that lost what was done): nothing is added twice.
    let canaries = Api::<Canary>::namespaced(client.clone(), &n);
    canaries
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"lastReportedSpec": null}})),
        )
        .await
        .unwrap();
    wait_reported(&client, &n, "web", "Reported", "says it already").await;
    let again = clone_with_notes(&url);
    let note = git(again.path(), &["notes", "--ref=sluice", "show", &bad]);
    assert_eq!(note.matches(&header).count(), 1, "{note}");
    let reported = git_reported(&wait_canary(&client, &n, "web", LONG, "read", |_| true).await)
        .unwrap()
        .clone();
    assert!(reported.message.contains("exists already"), "{reported:?}");

    // The Kustomization keeps the failed revision's manifests applied without undoing the
    // rollback: the primary keeps serving the good image, the target stays scaled down, and the
    // health check says the Canary rolled the revision back.
    let k = eventually(LONG, "the Kustomization says the rollback", || async {
        let k = Api::<Kustomization>::namespaced(client.clone(), &n)
            .get("app")
            .await
            .map_err(|e| e.to_string())?;
        let ready = k
            .status
            .as_ref()
            .and_then(|s| condition::find(&s.conditions, "Ready").cloned());
        match ready {
            Some(r) if r.message.contains("rolled this revision back") => Ok(k),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    println!("the Kustomization after the rollback: {:?}", k.status);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(
        c::image_of(&client, &n, "web-primary").await.as_deref(),
        Some("example.com/app:v1")
    );
    let deployments = Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), &n);
    let target = deployments.get("web").await.unwrap();
    assert_eq!(target.spec.replicas, Some(0));
    assert_eq!(
        c::image_of(&client, &n, "web").await.as_deref(),
        Some("example.com/app:v2")
    );
    let status = wait_canary(&client, &n, "web", LONG, "read", |_| true).await;
    assert_eq!(c::phase(&status), "Failed", "the rollback was undone");

    for task in running {
        task.abort();
    }
    delivering.abort();
    drop(analyzer);
    ns.cleanup(&client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_push_rights_and_a_wrong_password_are_said_and_change_nothing_in_git() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "git-report-bad").await;
    let n = ns.name().to_string();
    let analyzer = Analyzer::start(&client, &n, None);
    let storage = tempfile::tempdir().unwrap();
    let config = support::agent::admin_config().await;
    let running = controllers(&client, &n, storage.path(), &analyzer, config);

    let refused = refused_url();
    let server = HttpsGit::start();
    let bare = server.create_repo("app.git");
    let work = WorkRepo::new(bare.to_str().unwrap());
    work.write("deploy/app.yaml", &app("example.com/app:v1", &refused));
    work.commit("web v1", &Signing::None);
    work.push(&["main"]);
    let secrets = Api::<Secret>::namespaced(client.clone(), &n);
    let credentials = |password: &str| -> Secret {
        serde_json::from_value(json!({"metadata": {"name": "git-auth"}, "stringData": {
            "username": server.username, "password": password,
            "ca.crt": String::from_utf8(server.ca.ca_pem.clone()).unwrap()}}))
        .unwrap()
    };
    secrets
        .create(&Default::default(), &credentials(&server.password))
        .await
        .unwrap();
    source_and_kustomization(&client, &n, &server.url("app.git"), Some("git-auth")).await;
    // A Canary whose target no Kustomization applied, served by the same analyzer.
    c::create(&client, &n, deployment("plain", "example.com/app:v1")).await;
    c::create(&client, &n, canary("plain", &refused)).await;
    for name in ["web", "plain"] {
        wait_canary(&client, &n, name, LONG, "initialized", |s| {
            c::phase(s) == "Initialized"
        })
        .await;
    }

    // The server takes no pushes any more; then a commit fails its analysis.
    run(Command::new("git").arg("--git-dir").arg(&bare).args([
        "config",
        "http.receivepack",
        "false",
    ]));
    work.write("deploy/app.yaml", &app("example.com/app:v2", &refused));
    let bad = work.commit("web v2", &Signing::None);
    run(Command::new("git").arg("-C").arg(work.path()).args([
        "push",
        "-q",
        bare.to_str().unwrap(),
        "main",
    ]));
    c::set_image(&client, &n, "plain", "example.com/app:v2").await;
    for name in ["web", "plain"] {
        wait_canary(&client, &n, name, LONG, "rolled back", |s| {
            c::phase(s) == "Failed"
        })
        .await;
    }
    let refused_push = wait_reported(&client, &n, "web", "GitOperationFailed", "pushing").await;
    println!("no push rights: {refused_push:?}");
    assert_eq!(refused_push.status, condition::ConditionStatus::False);
    assert!(refused_push.message.contains(&bad), "{refused_push:?}");
    assert!(
        refused_push.message.contains(&server.url("app.git")),
        "{refused_push:?}"
    );

    // A wrong password.
    secrets
        .replace(
            "git-auth",
            &Default::default(),
            &credentials("not-the-password"),
        )
        .await
        .unwrap();
    let denied = wait_reported(&client, &n, "web", "AuthenticationFailed", "authentication").await;
    println!("wrong password: {denied:?}");
    let events = c::events(&client, &n, "web").await.join("\n");
    assert!(
        events.contains("authentication to https://127.0.0.1"),
        "{events}"
    );
    assert!(events.contains("pushing refs/notes/sluice"), "{events}");

    // Meanwhile a later commit changes the same line (not the pod template): the revert no
    // longer applies cleanly on main.
    let mut annotated = deployment("web", "example.com/app:v2");
    annotated["metadata"]["annotations"] = json!({"team": "shop"});
    work.write(
        "deploy/app.yaml",
        &manifests(&[annotated, canary("web", &refused)]),
    );
    work.commit("web: team annotation", &Signing::None);
    run(Command::new("git").arg("-C").arg(work.path()).args([
        "push",
        "-q",
        bare.to_str().unwrap(),
        "main",
    ]));

    // Nothing changed in Git; the rollback went on regardless.
    let refs = run(Command::new("git")
        .arg("--git-dir")
        .arg(&bare)
        .args(["for-each-ref", "--format=%(refname)"]));
    assert_eq!(refs.trim(), "refs/heads/main", "no note, no branch: {refs}");
    assert_eq!(
        c::image_of(&client, &n, "web-primary").await.as_deref(),
        Some("example.com/app:v1")
    );

    // The other Canary: nothing to report, said once and done with.
    let plain = wait_reported(
        &client,
        &n,
        "plain",
        "NotFromGit",
        "not applied by a Kustomization",
    )
    .await;
    assert_eq!(plain.status, condition::ConditionStatus::False);
    let status = wait_canary(&client, &n, "plain", LONG, "read", |_| true).await;
    assert_eq!(status.last_reported_spec, status.last_applied_spec);

    // Once the remote lets it, the note lands; the revert is skipped, said in a Warning.
    secrets
        .replace(
            "git-auth",
            &Default::default(),
            &credentials(&server.password),
        )
        .await
        .unwrap();
    run(Command::new("git").arg("--git-dir").arg(&bare).args([
        "config",
        "http.receivepack",
        "true",
    ]));
    wait_reported(&client, &n, "web", "Reported", "noted").await;
    let note = run(Command::new("git").arg("--git-dir").arg(&bare).args([
        "notes",
        "--ref=sluice",
        "show",
        &bad,
    ]));
    assert!(
        note.contains(&format!("Canary {n}/web rolled back main@sha1:{bad}")),
        "{note}"
    );
    let events = eventually(
        Duration::from_secs(30),
        "the skipped revert said",
        || async {
            let events = c::events(&client, &n, "web").await.join("\n");
            if events.contains("no revert branch") {
                Ok(events)
            } else {
                Err(events)
            }
        },
    )
    .await;
    assert!(events.contains("conflicts in deploy/app.yaml"), "{events}");
    let refs = run(Command::new("git").arg("--git-dir").arg(&bare).args([
        "for-each-ref",
        "--format=%(refname)",
        "refs/heads/sluice",
    ]));
    assert_eq!(refs.trim(), "", "a revert branch was pushed: {refs}");

    for task in running {
        task.abort();
    }
    drop(analyzer);
    ns.cleanup(&client).await;
}

/// The building blocks of the note's retry on a real git daemon: a notes push whose reference
/// moved since the fetch (someone else's note landed) is refused, not forced; fetching again and
/// merging puts both notes on the commit.
#[tokio::test]
async fn a_note_pushed_after_the_notes_moved_is_refused_then_merged() {
    use sluice::canary::report::{self, Failure, NOTES_REF};
    use sluice::git::{GitRemote, PushOutcome, RefUpdate, notes};

    let daemon = GitDaemon::start();
    daemon.create_repo("app.git");
    let url = daemon.url("app.git");
    let work = WorkRepo::new(&url);
    work.write("deploy/app.yaml", "v: 1\n");
    let sha = work.commit("v1", &Signing::None);
    work.push(&["main"]);
    let remote = GitRemote {
        url: sluice::git::url::RemoteUrl::parse(&url).unwrap(),
        credentials: Default::default(),
        timeout: Duration::from_secs(30),
        insecure: false,
    };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache.git");
    let references = ["refs/heads/main".to_string(), NOTES_REF.to_string()];
    let failure = Failure {
        canary: "shop/web".into(),
        revision: format!("main@sha1:{sha}"),
        sha: sha.clone(),
        target: "Deployment/web".into(),
        why: "request-success-rate 42 outside >= 99".into(),
        failed_checks: "1/1".into(),
        at: "2026-12-02T08:00:00Z".into(),
    };

    let tips = remote.fetch_references(&cache, &references).await.unwrap();
    assert_eq!(tips[NOTES_REF], None);
    let text = report::merge(None, &failure).unwrap();
    let ours = notes::write_note(&cache, NOTES_REF, &sha, &text, report::AUTHOR)
        .await
        .unwrap();
    // Someone else's note lands in between.
    work.git(&[
        "notes",
        "--ref=sluice",
        "add",
        "-m",
        "Deployed to staging by CI",
        &sha,
    ]);
    work.push(&["refs/notes/sluice"]);
    let update = RefUpdate {
        reference: NOTES_REF.into(),
        commit: ours,
        expected: tips[NOTES_REF].clone(),
    };
    let refused = remote
        .push_references(&cache, &[update], &[])
        .await
        .unwrap();
    assert!(
        matches!(refused, PushOutcome::Rejected { ref branch, .. } if branch == NOTES_REF),
        "{refused:?}"
    );
    let clone = clone_with_notes(&url);
    assert_eq!(
        git(clone.path(), &["notes", "--ref=sluice", "show", &sha]),
        "Deployed to staging by CI"
    );

    // Fetched again: the cache holds their note, ours goes after it.
    let tips = remote.fetch_references(&cache, &references).await.unwrap();
    let theirs = notes::read_note(&cache, NOTES_REF, &sha).await.unwrap();
    assert_eq!(theirs.as_deref(), Some("Deployed to staging by CI\n"));
    let text = report::merge(theirs.as_deref(), &failure).unwrap();
    let ours = notes::write_note(&cache, NOTES_REF, &sha, &text, report::AUTHOR)
        .await
        .unwrap();
    let update = RefUpdate {
        reference: NOTES_REF.into(),
        commit: ours,
        expected: tips[NOTES_REF].clone(),
    };
    assert_eq!(
        remote
            .push_references(&cache, &[update], &[])
            .await
            .unwrap(),
        PushOutcome::Pushed
    );
    let clone = clone_with_notes(&url);
    let note = git(clone.path(), &["notes", "--ref=sluice", "show", &sha]);
    assert!(
        note.starts_with("Deployed to staging by CI\n\nCanary shop/web rolled back"),
        "{note}"
    );
    assert_eq!(report::merge(Some(&note), &failure), None);
}
