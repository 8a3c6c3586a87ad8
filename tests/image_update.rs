//! ImageUpdateAutomation against a real `git daemon` with receive-pack and real gpg: the corpus of
//! fixtures/image-automation changes only in the replaced values (byte for byte); the pushed
//! commit is signed and `git verify-commit` accepts it; a push that lands during the run is kept
//! and the update re-applied on top of it; one branch per update; bad markers, files and pushes
//! give a clear condition and leave Git as it was. ImagePolicies here get their `latestRef`
//! written directly: the automation only reads it (tests/image_end_to_end.rs runs the chain).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use sluice::api::condition::{self, ConditionStatus};
use sluice::api::git_repository::GitRepository;
use sluice::api::image_policy::ImagePolicy;
use sluice::api::image_update_automation::{ImageUpdateAutomation, ImageUpdateAutomationStatus};
use support::git_servers::{GitDaemon, run};
use support::git_signing::{GpgHome, Signing, WorkRepo};
use support::node::eventually;

const WAIT: Duration = Duration::from_secs(60);
const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

struct Env {
    client: Client,
    ns: support::TestNamespace,
    daemon: GitDaemon,
    work: WorkRepo,
    _storage: tempfile::TempDir,
}

impl Env {
    /// A namespace, a git daemon with repository `app` holding the corpus (markers naming this
    /// namespace), a GitRepository `app` for it, and the automation controller.
    async fn start(prefix: &str) -> Env {
        let client = support::client().await;
        support::install_crds(&client).await;
        let ns = support::TestNamespace::new(&client, prefix).await;
        let daemon = GitDaemon::start();
        let bare = daemon.create_repo("app");
        run(Command::new("git").arg("-C").arg(&bare).args([
            "config",
            "receive.denyNonFastForwards",
            "true",
        ]));
        let work = WorkRepo::new(&daemon.url("app"));
        for (path, bytes) in corpus("corpus", ns.name()) {
            let p = work.path().join(&path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        work.commit("the corpus", &Signing::None);
        work.push(&["main"]);
        let storage = tempfile::tempdir().unwrap();
        tokio::spawn(sluice::image::automation::run(
            client.clone(),
            storage.path().to_owned(),
            Some(ns.name().to_owned()),
        ));
        support::create_sluice_object(
            &client,
            ns.name(),
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository", "metadata": {"name": "app"},
                   "spec": {"url": daemon.url("app"), "interval": "1h", "ref": {"branch": "main"}}}),
        )
        .await;
        Env {
            client,
            ns,
            daemon,
            work,
            _storage: storage,
        }
    }

    fn n(&self) -> &str {
        self.ns.name()
    }

    /// An ImagePolicy whose status says it chose `name:tag[@digest]`.
    async fn policy(&self, name: &str, image: &str, tag: &str, digest: Option<&str>) {
        support::create_sluice_object(
            &self.client,
            self.n(),
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "ImagePolicy", "metadata": {"name": name},
                   "spec": {"imageRepositoryRef": {"name": name}, "policy": {"semver": {"range": ">=0"}}}}),
        )
        .await;
        self.choose(name, image, tag, digest).await;
    }

    async fn choose(&self, name: &str, image: &str, tag: &str, digest: Option<&str>) {
        let api: Api<ImagePolicy> = Api::namespaced(self.client.clone(), self.n());
        let status =
            json!({"status": {"latestRef": {"name": image, "tag": tag, "digest": digest}}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    async fn automation(&self, name: &str, git: Value) {
        let mut spec_git = json!({"commit": {"author": {"name": "sluice bot", "email": "bot@example.com"},
            "messageTemplate": "Update images by {{ .AutomationObject }}\n\n{{ range .Changed.Changes }}- {{ .File }}: {{ .OldValue }} -> {{ .NewValue }}\n{{ end }}"}});
        json_patch::merge(&mut spec_git, &git);
        support::create_sluice_object(
            &self.client,
            self.n(),
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "ImageUpdateAutomation", "metadata": {"name": name},
                   "spec": {"sourceRef": {"kind": "GitRepository", "name": "app"}, "interval": "1h", "git": spec_git,
                            "update": {"path": "./", "strategy": "Setters"}}}),
        )
        .await;
    }

    async fn wait(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&ImageUpdateAutomationStatus) -> bool,
    ) -> ImageUpdateAutomationStatus {
        let api: Api<ImageUpdateAutomation> = Api::namespaced(self.client.clone(), self.n());
        eventually(
            WAIT,
            &format!("ImageUpdateAutomation {name} {what}"),
            || async {
                let s = api
                    .get(name)
                    .await
                    .map_err(|e| e.to_string())?
                    .status
                    .unwrap_or_default();
                if check(&s) {
                    Ok(s)
                } else {
                    Err(format!("{s:#?}"))
                }
            },
        )
        .await
    }

    /// The tip of `branch` on the server.
    fn tip(&self, branch: &str) -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.daemon.root.path().join("app"))
            .args([
                "rev-parse",
                "--verify",
                "-q",
                &format!("refs/heads/{branch}"),
            ])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The bytes of `path` at `rev` on the server.
    fn show(&self, rev: &str, path: &str) -> Vec<u8> {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.daemon.root.path().join("app"))
            .args(["show", &format!("{rev}:{path}")])
            .output()
            .unwrap();
        assert!(out.status.success(), "git show {rev}:{path}");
        out.stdout
    }
}

/// Every file of fixtures/image-automation/`dir` (or `corpus` where `dir` lacks it), with
/// `NAMESPACE` in markers replaced by `ns`.
fn corpus(dir: &str, ns: &str) -> Vec<(String, Vec<u8>)> {
    let root = support::repo_root().join("fixtures/image-automation");
    let mut files = Vec::new();
    collect(&root.join("corpus"), &root.join("corpus"), &mut files);
    files
        .into_iter()
        .map(|rel| {
            let from = root.join(dir).join(&rel);
            let from = if from.exists() {
                from
            } else {
                root.join("corpus").join(&rel)
            };
            let text = std::fs::read(from).unwrap();
            let replaced = String::from_utf8(text)
                .unwrap()
                .replace("\"NAMESPACE:", &format!("\"{ns}:"));
            (rel, replaced.into_bytes())
        })
        .collect()
}

fn collect(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(base, &path, out);
        } else {
            out.push(path.strip_prefix(base).unwrap().display().to_string());
        }
    }
}

fn ready(s: &ImageUpdateAutomationStatus) -> Option<&condition::Condition> {
    condition::find(&s.conditions, "Ready")
}

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
    let bare = env.daemon.root.path().join("app");
    let hook = bare.join("hooks/pre-receive");
    std::fs::write(
        &hook,
        "#!/bin/sh\nset -e\nunset GIT_QUARANTINE_PATH GIT_OBJECT_DIRECTORY GIT_ALTERNATE_OBJECT_DIRECTORIES\n\
         [ -e raced ] && exit 0\ntouch raced\n\
         tree=$(git rev-parse 'refs/heads/main^{tree}')\n\
         c=$(echo 'a concurrent commit' | GIT_AUTHOR_NAME=Other GIT_AUTHOR_EMAIL=other@example.com GIT_COMMITTER_NAME=Other GIT_COMMITTER_EMAIL=other@example.com git commit-tree \"$tree\" -p refs/heads/main)\n\
         git update-ref refs/heads/main \"$c\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();

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
    assert!(bare.join("raced").exists(), "the concurrent push happened");

    // The concurrent commit is kept: it is the parent of sluice's commit, itself on the old tip.
    let git = |args: &[&str]| {
        run(Command::new("git").arg("-C").arg(&bare).args(args))
            .trim()
            .to_owned()
    };
    let parent = git(&["rev-parse", &format!("{pushed}^")]);
    assert_eq!(
        git(&["log", "-1", "--format=%an %s", &parent]),
        "Other a concurrent commit"
    );
    assert_eq!(git(&["rev-parse", &format!("{parent}^")]), before);
    assert_eq!(
        git(&["log", "-1", "--format=%an <%ae>", &pushed]),
        "sluice bot <bot@example.com>"
    );
    let message = git(&["log", "-1", "--format=%B", &pushed]);
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
    let changed = git(&["diff", "--name-only", &parent, &pushed]);
    assert_eq!(
        changed,
        "crlf.yaml\ndeploy.yaml\nhelmrelease.yaml\nkustomization.yaml"
    );

    // The commit is signed with the Secret's key, and git accepts the signature.
    let verify = Command::new("git")
        .arg("-C")
        .arg(&bare)
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
    let repos: Api<GitRepository> = Api::namespaced(env.client.clone(), env.n());
    let annotations = repos
        .get("app")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(
        annotations.contains_key("sluice.dev/requestedAt"),
        "{annotations:?}"
    );

    // Nothing new: no commit.
    let api: Api<ImageUpdateAutomation> = Api::namespaced(env.client.clone(), env.n());
    api.patch(
        "auto",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"sluice.dev/requestedAt": "again"}}})),
    )
    .await
    .unwrap();
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
    let bare = env.daemon.root.path().join("app");
    let git = |args: &[&str]| {
        run(Command::new("git").arg("-C").arg(&bare).args(args))
            .trim()
            .to_owned()
    };
    assert_eq!(
        git(&["rev-parse", &format!("{web2}^")]),
        web,
        "fast-forwarded"
    );
    assert_eq!(git(&["rev-parse", &format!("{api_branch}^")]), main);
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
