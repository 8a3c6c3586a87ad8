//! An ImageUpdateAutomation's test environment: a namespace, a real `git daemon` with receive-pack
//! holding the corpus of fixtures/image-automation, a GitRepository for it, the automation
//! controller in the test process, ImagePolicies whose `latestRef` is written directly (the
//! automation only reads it), and the server's branches and files. Does I/O (processes, the API
//! server).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use sluice::api::condition;
use sluice::api::git_repository::GitRepository;
use sluice::api::image_policy::ImagePolicy;
use sluice::api::image_update_automation::{ImageUpdateAutomation, ImageUpdateAutomationStatus};

use super::git_servers::{GitDaemon, run};
use super::git_signing::{Signing, WorkRepo};
use super::node::eventually;

pub const WAIT: Duration = Duration::from_secs(60);
pub const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

pub struct Env {
    pub client: Client,
    pub ns: super::TestNamespace,
    pub daemon: GitDaemon,
    pub work: WorkRepo,
    _storage: tempfile::TempDir,
}

impl Env {
    /// A namespace, a git daemon with repository `app` holding the corpus (markers naming this
    /// namespace), a GitRepository `app` for it, and the automation controller.
    pub async fn start(prefix: &str) -> Env {
        let client = super::client().await;
        super::install_crds(&client).await;
        let ns = super::TestNamespace::new(&client, prefix).await;
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
        super::create_sluice_object(
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

    pub fn n(&self) -> &str {
        self.ns.name()
    }

    /// An ImagePolicy whose status says it chose `name:tag[@digest]`.
    pub async fn policy(&self, name: &str, image: &str, tag: &str, digest: Option<&str>) {
        super::create_sluice_object(
            &self.client,
            self.n(),
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "ImagePolicy", "metadata": {"name": name},
                   "spec": {"imageRepositoryRef": {"name": name}, "policy": {"semver": {"range": ">=0"}}}}),
        )
        .await;
        self.choose(name, image, tag, digest).await;
    }

    pub async fn choose(&self, name: &str, image: &str, tag: &str, digest: Option<&str>) {
        let api: Api<ImagePolicy> = Api::namespaced(self.client.clone(), self.n());
        let status =
            json!({"status": {"latestRef": {"name": image, "tag": tag, "digest": digest}}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }

    /// An ImageUpdateAutomation of GitRepository `app`, path `./`, whose `spec.git` is `git`
    /// merged over an author and a message template listing the changes.
    pub async fn automation(&self, name: &str, git: Value) {
        self.automation_with(name, git, json!({})).await;
    }

    /// As `automation`, with `spec` merged over the rest of the spec (`suspend`,
    /// `policySelector`, ...).
    pub async fn automation_with(&self, name: &str, git: Value, spec: Value) {
        let mut spec_git = json!({"commit": {"author": {"name": "sluice bot", "email": "bot@example.com"},
            "messageTemplate": "Update images by {{ .AutomationObject }}\n\n{{ range .Changed.Changes }}- {{ .File }}: {{ .OldValue }} -> {{ .NewValue }}\n{{ end }}"}});
        json_patch::merge(&mut spec_git, &git);
        let mut full = json!({"sourceRef": {"kind": "GitRepository", "name": "app"}, "interval": "1h", "git": spec_git,
                              "update": {"path": "./", "strategy": "Setters"}});
        json_patch::merge(&mut full, &spec);
        super::create_sluice_object(
            &self.client,
            self.n(),
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "ImageUpdateAutomation", "metadata": {"name": name},
                   "spec": full}),
        )
        .await;
    }

    pub fn automations(&self) -> Api<ImageUpdateAutomation> {
        Api::namespaced(self.client.clone(), self.n())
    }

    /// The server's bare repository `app`.
    pub fn bare(&self) -> PathBuf {
        self.daemon.root.path().join("app")
    }

    /// Runs `git` in the server's repository and returns its trimmed output.
    pub fn git(&self, args: &[&str]) -> String {
        run(Command::new("git").arg("-C").arg(self.bare()).args(args))
            .trim()
            .to_owned()
    }

    /// Installs `script` as the server's `hook` (e.g. `pre-receive`).
    pub fn hook(&self, hook: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.bare().join("hooks").join(hook);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Whether GitRepository `app` was asked to reconcile (after a push to the branch it tracks).
    pub async fn source_asked_to_reconcile(&self) -> bool {
        let repos: Api<GitRepository> = Api::namespaced(self.client.clone(), self.n());
        repos
            .get("app")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key(sluice::api::REQUESTED_AT_ANNOTATION)
    }

    pub async fn wait(
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
    pub fn tip(&self, branch: &str) -> Option<String> {
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
    pub fn show(&self, rev: &str, path: &str) -> Vec<u8> {
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
pub fn corpus(dir: &str, ns: &str) -> Vec<(String, Vec<u8>)> {
    let root = super::repo_root().join("fixtures/image-automation");
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

pub fn ready(s: &ImageUpdateAutomationStatus) -> Option<&condition::Condition> {
    condition::find(&s.conditions, "Ready")
}
