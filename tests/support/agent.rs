//! The agent's controllers in the test process, watching one namespace, and helpers to create
//! sluice objects and wait for their status. Does I/O (the API server, a storage directory).
#![allow(dead_code)]

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, Config};
use serde_json::Value;

use sluice::api::condition::{self, Condition};

/// `sluice agent` in this process: the GitRepository and Kustomization controllers.
pub struct Agent {
    handle: tokio::task::JoinHandle<()>,
    _storage: Option<tempfile::TempDir>,
}

#[derive(clap::Parser)]
struct AgentCommand {
    #[command(flatten)]
    args: sluice::cli::agent::Args,
}

impl Agent {
    /// Starts `sluice agent --watch-namespace <namespace> <flags>` as the identity of `config`,
    /// with a storage directory of its own.
    pub async fn start(config: Config, namespace: &str, flags: &[&str]) -> Agent {
        let storage = tempfile::tempdir().unwrap();
        let mut agent = Agent::start_in(config, namespace, storage.path(), flags).await;
        agent._storage = Some(storage);
        agent
    }

    /// The same with a given storage directory (agents may share one).
    pub async fn start_in(
        config: Config,
        namespace: &str,
        storage: &std::path::Path,
        flags: &[&str],
    ) -> Agent {
        use clap::Parser;
        let mut argv = vec![
            "agent",
            "--storage-dir",
            storage.to_str().unwrap(),
            "--watch-namespace",
            namespace,
            // Several agents may run in one test process: no fixed ports.
            "--metrics-addr",
            "127.0.0.1:0",
            "--receiver-addr",
            "127.0.0.1:0",
        ];
        argv.extend_from_slice(flags);
        let command = AgentCommand::parse_from(argv);
        let handle = tokio::spawn(async move {
            if let Err(e) = sluice::cli::agent::run_with(command.args, config).await {
                panic!("the agent stopped: {e:#}");
            }
        });
        Agent {
            handle,
            _storage: None,
        }
    }

    /// Whether the agent is still running (it did not panic or return).
    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    pub fn stop(self) {
        self.handle.abort();
    }
}

/// The configuration of the test cluster's admin.
pub async fn admin_config() -> Config {
    let kubeconfig = kube::config::Kubeconfig::read_from(super::kubeconfig()).unwrap();
    Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap()
}

/// Creates a `sluice.dev/v1alpha1` object from its manifest in `ns`.
pub async fn create(client: &Client, ns: &str, manifest: Value) -> Result<(), kube::Error> {
    let kind = manifest["kind"].as_str().unwrap().to_string();
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("sluice.dev", "v1alpha1", &kind));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let object: DynamicObject = serde_json::from_value(manifest).unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .map(|_| ())
}

/// Waits (up to a minute and a half) until the status of `name` passes `check`; panics with the
/// last status otherwise.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, check: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut last = None;
    let mut last_error = None;
    for _ in 0..450 {
        // A busy test API server sometimes drops a connection: ask again, as a controller would.
        match api.get_opt(name).await {
            Ok(Some(object)) => {
                if check(&object) {
                    return object;
                }
                last = Some(object);
            }
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{name}: never {what}; last: {last:#?}; last error: {last_error:?}");
}

/// The Ready condition among `conditions`.
pub fn ready(conditions: &[Condition]) -> Option<&Condition> {
    condition::find(conditions, condition::READY)
}

/// A configuration that authenticates as ServiceAccount `namespace/name` with a fresh token
/// (TokenRequest), on the cluster of `admin`.
pub async fn service_account_config(admin: &Config, namespace: &str, name: &str) -> Config {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let client = Client::try_from(admin.clone()).unwrap();
    let accounts: Api<ServiceAccount> = Api::namespaced(client, namespace);
    let request: TokenRequest = serde_json::from_value(serde_json::json!({
        "spec": {"audiences": [], "expirationSeconds": 3600}
    }))
    .unwrap();
    let token = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for {namespace}/{name}: {e}"))
        .status
        .expect("a token")
        .token;
    let mut config = admin.clone();
    config.auth_info = serde_json::from_value(serde_json::json!({ "token": token })).unwrap();
    config
}
