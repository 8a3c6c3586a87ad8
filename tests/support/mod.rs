//! Support for integration tests on the real control plane: finds or starts it (through
//! `scripts/cluster up`, once per test binary), builds clients, and gives each test a namespace
//! of its own that is deleted afterwards. Does I/O (processes, the API server).
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod agent;
pub mod automation;
pub mod canary;
pub mod git_servers;
pub mod git_signing;
pub mod image;
pub mod in_process;
pub mod node;
pub mod recorder;
pub mod registry;
pub mod scripted_registry;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// The repository root (where Cargo.toml is).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The kubeconfig of the cluster the tests run against: `KUBECONFIG` when set, otherwise the
/// local control plane, started by `scripts/cluster up` on first use.
/// Runs the `sluice` binary with `args` in namespace `ns` of the test cluster.
pub fn sluice_in(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .args(["--namespace", ns])
        .env("KUBECONFIG", kubeconfig())
        .env_remove("RUST_LOG")
        .env_remove("SLUICE_NAMESPACE")
        .output()
        .expect("sluice runs")
}

pub fn kubeconfig() -> &'static Path {
    static PATH: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PATH.get_or_init(|| {
        if let Some(path) = std::env::var_os("KUBECONFIG") {
            return Ok(PathBuf::from(path));
        }
        let script = repo_root().join("scripts/cluster");
        let status = Command::new(&script)
            .arg("up")
            .status()
            .map_err(|err| format!("could not run {}: {err}", script.display()))?;
        if !status.success() {
            return Err(format!(
                "`scripts/cluster up` failed ({status}); its output is above"
            ));
        }
        let env = Command::new(&script)
            .arg("env")
            .output()
            .map_err(|err| format!("could not run `scripts/cluster env`: {err}"))?;
        let stdout = String::from_utf8_lossy(&env.stdout);
        stdout
            .lines()
            .find_map(|line| line.strip_prefix("export KUBECONFIG='")?.strip_suffix('\''))
            .map(PathBuf::from)
            .ok_or_else(|| format!("`scripts/cluster env` printed no KUBECONFIG:\n{stdout}"))
    });
    match found {
        Ok(path) => path,
        Err(message) => panic!("no control plane for the tests: {message}"),
    }
}

/// A client for the test cluster. Each test makes its own: a client is bound to the tokio
/// runtime of the test that made it.
pub async fn client() -> Client {
    Client::try_from(client_config().await).expect("a client for the test cluster")
}

/// The configuration behind `client()`, for tests that build their own client stack.
pub async fn client_config() -> Config {
    let kubeconfig = Kubeconfig::read_from(kubeconfig()).expect("the test kubeconfig is readable");
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("the test kubeconfig is valid")
}

/// A namespace that belongs to one test. Call `cleanup` at the end of the test; if the test
/// panics first, dropping it still asks the API server to delete the namespace.
pub struct TestNamespace {
    name: String,
    cleaned: bool,
}

impl TestNamespace {
    /// Creates a namespace named `<prefix>-<random suffix>`, labelled `sluice.dev/test=true`.
    pub async fn new(client: &Client, prefix: &str) -> TestNamespace {
        let suffix: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..6)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                })
                .collect()
        };
        let name = format!("{prefix}-{suffix}");
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": name, "labels": { "sluice.dev/test": "true" } },
        }))
        .expect("a valid Namespace");
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|err| panic!("creating namespace {name}: {err}"));
        TestNamespace {
            name,
            cleaned: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Deletes the namespace (in the background: the namespace controller removes its content).
    pub async fn cleanup(mut self, client: &Client) {
        delete_namespace(client, &self.name).await;
        self.cleaned = true;
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be shutting down: use a runtime of our own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async { delete_namespace(&client().await, &name).await });
            }
        })
        .join();
    }
}

async fn delete_namespace(client: &Client, name: &str) {
    let result = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await;
    if let Err(err) = result {
        eprintln!("warning: could not delete test namespace {name}: {err}");
    }
}

/// Installs (server-side applies) every CRD sluice serves and waits until they are Established.
pub async fn install_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in sluice::cli::crds::all() {
        let name = crd.metadata.name.clone().unwrap();
        crds.patch(
            &name,
            &PatchParams::apply("sluice-tests").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|err| panic!("installing CRD {name}: {err}"));
        let established = || async {
            let got = crds.get(&name).await.unwrap();
            got.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        };
        let mut tries = 0;
        while !established().await {
            tries += 1;
            assert!(tries < 300, "CRD {name} not Established");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Creates a `sluice.dev/v1alpha1` object from its manifest in `ns`.
pub async fn create_sluice_object(client: &Client, ns: &str, manifest: serde_json::Value) {
    let kind = manifest["kind"].as_str().expect("a kind").to_string();
    let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "sluice.dev",
        "v1alpha1",
        &kind,
    ));
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let object: kube::api::DynamicObject = serde_json::from_value(manifest).expect("a manifest");
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {kind}: {e}"));
}

/// Merge-patches object `name` (a spec field, a label, an annotation) and panics if that fails.
pub async fn merge_patch<K>(api: &Api<K>, name: &str, patch: serde_json::Value)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    use kube::api::{Patch, PatchParams};
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patching {name}: {e}"));
}

/// Asks for a reconcile of `name` now, as `sluice reconcile` does; the controller reports `value`
/// back in `status.lastHandledReconcileAt` once it has acted on it.
pub async fn request_reconcile<K>(api: &Api<K>, name: &str, value: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = serde_json::json!({"metadata": {"annotations": {sluice::api::REQUESTED_AT_ANNOTATION: value}}});
    merge_patch(api, name, patch).await;
}
