//! Support for tests on the cluster's real node (kubelet, containerd, kube-proxy inside the
//! cluster's network namespace) and its registry: pushing the test app, pull secrets, pod specs
//! that opt into the real node, commands inside the namespace. Does I/O (processes, the API server).

use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};

use super::repo_root;

/// What `scripts/cluster env` exports for the test cluster: the registry and its credentials.
pub struct Registry {
    /// `host:port`, the same from the host and from containerd on the node.
    pub address: String,
    /// containers-auth.json for skopeo/buildah, also a valid `.dockerconfigjson`.
    pub auth_file: String,
}

/// The test cluster's registry, from the environment `eval "$(scripts/cluster env)"` set, or
/// from `scripts/cluster env` itself.
pub fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        super::kubeconfig(); // the cluster is up
        let from_env = |key: &str| std::env::var(key).ok();
        let printed = || {
            let out = Command::new(repo_root().join("scripts/cluster"))
                .arg("env")
                .output()
                .expect("scripts/cluster env runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let exported = |text: &str, key: &str| {
            text.lines().find_map(|line| {
                let value = line.strip_prefix(&format!("export {key}='"))?;
                Some(value.strip_suffix('\'')?.to_string())
            })
        };
        match (from_env("SLUICE_REGISTRY"), from_env("REGISTRY_AUTH_FILE")) {
            (Some(address), Some(auth_file)) => Registry { address, auth_file },
            _ => {
                let text = printed();
                Registry {
                    address: exported(&text, "SLUICE_REGISTRY")
                        .unwrap_or_else(|| panic!("no SLUICE_REGISTRY in:\n{text}")),
                    auth_file: exported(&text, "REGISTRY_AUTH_FILE")
                        .unwrap_or_else(|| panic!("no REGISTRY_AUTH_FILE in:\n{text}")),
                }
            }
        }
    })
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|err| panic!("could not run {command:?}: {err}"))
}

/// Builds the test app and pushes it to the registry under each tag, with extra image
/// environment (`KEY=VALUE`, e.g. `VERSION=v2`). Returns the references, in the order given.
pub fn push_testapp(tags: &[&str], env: &[&str]) -> Vec<String> {
    let registry = registry();
    let mut command = Command::new(repo_root().join("scripts/image"));
    command
        .arg("testapp")
        .env("SLUICE_REGISTRY", &registry.address)
        .env("REGISTRY_AUTH_FILE", &registry.auth_file);
    for pair in env {
        command.args(["--env", pair]);
    }
    command.args(tags);
    let output = run(&mut command);
    assert!(
        output.status.success(),
        "scripts/image testapp {tags:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    tags.iter()
        .map(|tag| format!("{}/testapp:{tag}", registry.address))
        .collect()
}

/// Copies an image between references of the registry with skopeo (as a user would push a tag).
pub fn skopeo_copy(from: &str, to: &str) {
    let output = run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("docker://{from}"))
        .arg(format!("docker://{to}"))
        .env("REGISTRY_AUTH_FILE", &registry().auth_file));
    assert!(
        output.status.success(),
        "skopeo copy {from} {to} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Creates the Secret `registry` (type `kubernetes.io/dockerconfigjson`) in `namespace`, with the
/// registry's credentials.
pub async fn create_pull_secret(client: &Client, namespace: &str) {
    let auth = std::fs::read_to_string(&registry().auth_file).expect("the registry's auth file");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "registry", "namespace": namespace},
        "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": auth},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &secret)
        .await
        .expect("creating the pull secret");
}

/// The pod spec fields that put a pod on the real node (it is tainted; kwok's node runs nothing).
pub fn on_real_node() -> Value {
    json!({
        "nodeSelector": {"sluice.dev/node": "real"},
        "tolerations": [{"key": "sluice.dev/node", "operator": "Equal", "value": "real", "effect": "NoSchedule"}],
    })
}

/// Runs a command inside the cluster's network namespace (`scripts/cluster exec`).
pub fn cluster_exec(args: &[&str]) -> Output {
    run(Command::new(repo_root().join("scripts/cluster"))
        .arg("exec")
        .arg("--")
        .args(args))
}

/// `kubectl` with the test cluster's kubeconfig.
pub fn kubectl(args: &[&str]) -> Output {
    let kubectl = std::env::var("SLUICE_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    run(Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(super::kubeconfig())
        .args(args))
}

/// Polls `check` every half second until it returns `Some`, or panics after `limit` with the
/// description and the last thing `describe` says.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(last) if tokio::time::Instant::now() >= deadline => {
                panic!("{what}: not within {limit:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// Builds the agent's image from the top-level Dockerfile (on the base `scripts/image base` makes
/// here, with the sluice binary this test run built) and pushes it as `sluice:TAG`, once per test
/// binary. Returns the reference.
pub fn push_agent(binary: &str, tag: &str) -> String {
    static PUSHED: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let mut pushed = PUSHED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, reference)) = pushed.iter().find(|(t, _)| t == tag) {
        return reference.clone();
    }
    let registry = registry();
    let script = repo_root().join("scripts/image");
    let base = run(Command::new(&script).arg("base"));
    assert!(
        base.status.success(),
        "scripts/image base failed: {}",
        String::from_utf8_lossy(&base.stderr)
    );
    let base = String::from_utf8_lossy(&base.stdout).trim().to_string();
    let out = run(Command::new(&script)
        .args(["agent", "--base", &base, "--binary", binary])
        .arg(format!("sluice:{tag}"))
        .env("SLUICE_REGISTRY", &registry.address)
        .env("REGISTRY_AUTH_FILE", &registry.auth_file));
    assert!(
        out.status.success(),
        "scripts/image agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference = format!("{}/sluice:{tag}", registry.address);
    pushed.push((tag.to_string(), reference.clone()));
    reference
}

/// The real node's address: inside the cluster's network namespace, pods reach it, and so does
/// the host.
pub async fn real_node_ip(client: &Client) -> String {
    let node = Api::<k8s_openapi::api::core::v1::Node>::all(client.clone())
        .get("real-node-0")
        .await
        .expect("the real node exists");
    node.status
        .and_then(|s| s.addresses)
        .unwrap_or_default()
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
        .expect("the real node has an InternalIP")
}
