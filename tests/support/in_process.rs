//! The agent's controllers in the test process, for one test namespace, with a git daemon and a
//! work tree pushing to it: what most tests of reconcile behaviour start from. Does I/O (the API
//! server, processes).

use std::time::Duration;

use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};
use sluice::api::condition::{self, Condition, ConditionStatus};
use sluice::api::kustomization::{Kustomization, KustomizationStatus};

use super::TestNamespace;
use super::git_servers::GitDaemon;
use super::git_signing::{Signing, WorkRepo};

/// The GitRepository and Kustomization controllers watching one namespace.
pub struct Agent {
    pub client: Client,
    pub ns: TestNamespace,
    pub daemon: GitDaemon,
    /// A work tree pushing to the daemon's `app.git`.
    pub work: WorkRepo,
    _storage: tempfile::TempDir,
    controllers: Vec<tokio::task::JoinHandle<()>>,
}

impl Agent {
    pub async fn start(prefix: &str) -> Agent {
        let client = super::client().await;
        super::install_crds(&client).await;
        let ns = TestNamespace::new(&client, prefix).await;
        let storage = tempfile::tempdir().unwrap();
        let config = super::agent::admin_config().await;
        let settings = sluice::source::controller::Settings {
            namespace: Some(ns.name().to_owned()),
            ..sluice::source::controller::Settings::new(storage.path().to_owned())
        };
        let sources = tokio::spawn(sluice::source::controller::run(client.clone(), settings));
        let kustomizations = tokio::spawn(sluice::kustomization::controller::run(
            client.clone(),
            config,
            sluice::kustomization::controller::Settings {
                storage: storage.path().to_owned(),
                namespace: Some(ns.name().to_owned()),
                ..Default::default()
            },
        ));
        let daemon = GitDaemon::start();
        daemon.create_repo("app.git");
        let work = WorkRepo::new(&daemon.url("app.git"));
        Agent {
            client,
            ns,
            daemon,
            work,
            _storage: storage,
            controllers: vec![sources, kustomizations],
        }
    }

    pub fn ns(&self) -> &str {
        self.ns.name()
    }

    /// Adds the Receiver, Provider and Alert controllers and the webhook server (on a free
    /// local port) for the test namespace; returns the webhook server's base URL.
    pub async fn start_notifications(&mut self) -> String {
        let ns = Some(self.ns().to_owned());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        self.controllers
            .push(tokio::spawn(sluice::notify::controllers::run(
                self.client.clone(),
                ns.clone(),
                Default::default(),
            )));
        self.controllers
            .push(tokio::spawn(sluice::notify::server::serve(
                self.client.clone(),
                ns,
                Default::default(),
                listener,
            )));
        base
    }

    /// Makes this process's Events go to the Alerts of the test namespace (the sink is
    /// process-wide: one test at a time may hold it).
    pub fn start_dispatcher(&mut self) {
        let (dispatcher, deliver) = sluice::notify::dispatch::start(
            self.client.clone(),
            Some(self.ns().to_owned()),
            Default::default(),
        );
        sluice::runtime::events::install_sink(dispatcher);
        self.controllers.push(tokio::spawn(deliver));
    }

    /// Writes `files`, commits and pushes to main; returns the revision (`main@sha1:...`).
    pub fn push(&self, files: &[(&str, &str)]) -> String {
        for (path, content) in files {
            self.work.write(path, content);
        }
        let commit = self.work.commit("change", &Signing::None);
        self.work.push(&["main"]);
        format!("main@sha1:{commit}")
    }

    /// Creates a `sluice.dev` object in the test namespace.
    pub async fn create(&self, manifest: Value) {
        create(&self.client, self.ns(), manifest).await;
    }

    /// Creates GitRepository `name` polling the daemon's `app.git` every `interval`.
    pub async fn create_source(&self, name: &str, interval: &str) {
        self.create(json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository",
            "metadata": {"name": name},
            "spec": {"url": self.daemon.url("app.git"), "interval": interval, "ref": {"branch": "main"}}}))
            .await;
    }

    /// Creates Kustomization `name` building `path` of GitRepository `source` into the test
    /// namespace, with `extra` merged into its spec.
    pub async fn create_kustomization(&self, name: &str, source: &str, path: &str, extra: Value) {
        let mut spec = json!({"interval": "1m", "retryInterval": "2s", "timeout": "60s",
            "sourceRef": {"kind": "GitRepository", "name": source}, "path": path,
            "targetNamespace": self.ns()});
        spec.as_object_mut()
            .unwrap()
            .extend(extra.as_object().cloned().unwrap_or_default());
        self.create(
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization",
            "metadata": {"name": name}, "spec": spec}),
        )
        .await;
    }

    /// Waits until Kustomization `name`'s status passes `check`.
    pub async fn wait_ks(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&KustomizationStatus) -> bool,
    ) -> KustomizationStatus {
        let api: Api<Kustomization> = Api::namespaced(self.client.clone(), self.ns());
        let mut last = None;
        for _ in 0..600 {
            if let Some(k) = api.get_opt(name).await.unwrap() {
                let status = k.status.unwrap_or_default();
                if check(&status) {
                    return status;
                }
                last = Some(status);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Kustomization {name}: never {what}; last status: {last:#?}");
    }

    /// Waits until Kustomization `name` applied `revision`.
    pub async fn wait_applied(&self, name: &str, revision: &str) -> KustomizationStatus {
        self.wait_ks(name, &format!("applied {revision}"), |s| {
            s.last_applied_revision.as_deref() == Some(revision)
        })
        .await
    }

    /// Stops the controllers in the test process (for tests that run the agent elsewhere).
    pub fn stop_controllers(&self) {
        for controller in &self.controllers {
            controller.abort();
        }
    }

    pub async fn finish(self) {
        for controller in &self.controllers {
            controller.abort();
        }
        self.ns.cleanup(&self.client).await;
    }
}

/// Creates a `sluice.dev/v1alpha1` object in `ns`.
pub async fn create(client: &Client, ns: &str, manifest: Value) {
    let what = format!("{} {}", manifest["kind"], manifest["metadata"]["name"]);
    super::agent::create(client, ns, manifest)
        .await
        .unwrap_or_else(|e| panic!("creating {what}: {e}"));
}

/// The condition `type_` in `conditions`, when it is `True`.
pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    condition::find(conditions, type_).is_some_and(|c| c.status == ConditionStatus::True)
}
