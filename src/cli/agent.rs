//! `sluice agent`: runs the controllers in the cluster until a shutdown signal, with the
//! multi-tenancy flags of Flux (see docs/security.md). Talks to the API server and Git remotes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::kustomization::tenancy::Tenancy;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory holding Git caches and artifacts.
    #[arg(long, env = "SLUICE_STORAGE_DIR", default_value = "/var/lib/sluice")]
    pub storage_dir: PathBuf,
    /// Watch only this namespace (default: all namespaces). The agent then lists and watches
    /// nothing cluster-wide, so a namespaced Role is enough for it.
    #[arg(
        long = "watch-namespace",
        alias = "namespace",
        env = "SLUICE_WATCH_NAMESPACE"
    )]
    pub namespace: Option<String>,
    /// Reconcile only GitRepositories and Kustomizations whose labels match this selector
    /// (e.g. `shard=a`).
    #[arg(long, env = "SLUICE_WATCH_LABEL_SELECTOR")]
    pub watch_label_selector: Option<String>,
    /// ServiceAccount (of each Kustomization's own namespace) impersonated when a Kustomization
    /// names none in spec.serviceAccountName. Without it such a Kustomization acts as the agent.
    #[arg(long, env = "SLUICE_DEFAULT_SERVICE_ACCOUNT")]
    pub default_service_account: Option<String>,
    /// Refuse spec.sourceRef and spec.dependsOn that point to another namespace.
    #[arg(long, env = "SLUICE_NO_CROSS_NAMESPACE_REFS")]
    pub no_cross_namespace_refs: bool,
    /// Largest artifact (bytes of file content) a GitRepository may produce.
    #[arg(long, env = "SLUICE_MAX_ARTIFACT_SIZE", default_value_t = crate::source::artifact::DEFAULT_MAX_SIZE)]
    pub max_artifact_size: u64,
    /// Most files (and symlinks) an artifact may hold.
    #[arg(long, env = "SLUICE_MAX_ARTIFACT_FILES", default_value_t = crate::source::artifact::DEFAULT_MAX_FILES)]
    pub max_artifact_files: usize,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = kube::Config::infer()
        .await
        .context("reading the Kubernetes client configuration")?;
    run_with(args, config).await
}

/// Runs the controllers as the identity `config` holds, until a shutdown signal.
pub async fn run_with(args: Args, config: kube::Config) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.storage_dir)
        .with_context(|| format!("creating {}", args.storage_dir.display()))?;
    let client = kube::Client::try_from(config.clone())
        .context("connecting to the Kubernetes API server")?;
    tracing::info!(
        storage = %args.storage_dir.display(),
        namespace = ?args.namespace,
        label_selector = ?args.watch_label_selector,
        default_service_account = ?args.default_service_account,
        no_cross_namespace_refs = args.no_cross_namespace_refs,
        "agent starting"
    );
    let sources = crate::source::controller::Settings {
        storage: args.storage_dir.clone(),
        namespace: args.namespace.clone(),
        max_artifact_size: args.max_artifact_size,
        max_artifact_files: args.max_artifact_files,
        label_selector: args.watch_label_selector.clone(),
    };
    let kustomizations = crate::kustomization::controller::Settings {
        storage: args.storage_dir,
        namespace: args.namespace,
        label_selector: args.watch_label_selector,
        tenancy: Tenancy {
            default_service_account: args.default_service_account,
            no_cross_namespace_refs: args.no_cross_namespace_refs,
        },
    };
    tokio::join!(
        crate::source::controller::run(client.clone(), sources),
        crate::kustomization::controller::run(client, config, kustomizations),
    );
    tracing::info!("agent stopped");
    Ok(ExitCode::SUCCESS)
}
