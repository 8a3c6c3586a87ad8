//! `sluice agent`: runs the controllers in the cluster until a shutdown signal. Talks to the API
//! server and Git remotes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory holding Git caches and artifacts.
    #[arg(long, env = "SLUICE_STORAGE_DIR", default_value = "/var/lib/sluice")]
    pub storage_dir: PathBuf,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "SLUICE_WATCH_NAMESPACE")]
    pub namespace: Option<String>,
    /// Largest artifact (bytes of file content) a GitRepository may produce.
    #[arg(long, env = "SLUICE_MAX_ARTIFACT_SIZE", default_value_t = crate::source::artifact::DEFAULT_MAX_SIZE)]
    pub max_artifact_size: u64,
    /// Prometheus the canary analysis asks for the built-in metrics and for MetricTemplates
    /// without an address (e.g. `http://prometheus.monitoring:9090`).
    #[arg(long, env = "SLUICE_METRICS_SERVER")]
    pub metrics_server: Option<String>,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.storage_dir)
        .with_context(|| format!("creating {}", args.storage_dir.display()))?;
    let config = kube::Config::infer()
        .await
        .context("reading the Kubernetes client configuration")?;
    let client = kube::Client::try_from(config.clone())
        .context("connecting to the Kubernetes API server")?;
    tracing::info!(storage = %args.storage_dir.display(), namespace = ?args.namespace, "agent starting");
    let settings = crate::source::controller::Settings {
        storage: args.storage_dir.clone(),
        namespace: args.namespace.clone(),
        max_artifact_size: args.max_artifact_size,
    };
    let analyzer = crate::canary::controller::Analyzer::new(
        client.clone(),
        crate::canary::controller::AnalyzerSettings {
            namespace: args.namespace.clone(),
            metrics_server: args.metrics_server,
        },
    );
    let handoff = Some(analyzer.handoff());
    tokio::join!(
        crate::source::controller::run(client.clone(), settings),
        crate::kustomization::controller::run_with_handoff(
            client,
            config,
            args.storage_dir,
            args.namespace,
            handoff
        ),
        analyzer.run(),
    );
    tracing::info!("agent stopped");
    Ok(ExitCode::SUCCESS)
}
