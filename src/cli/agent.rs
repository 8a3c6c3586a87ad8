//! `sluice agent`: runs the controllers in the cluster until a shutdown signal, with its metrics
//! and health endpoints, and (with --leader-elect) only while it leads. Talks to the API server
//! and Git remotes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::runtime::leader::Elector;
use crate::runtime::server::{self, Health};

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
    #[command(flatten)]
    pub operate: super::operate::OperateArgs,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.storage_dir)
        .with_context(|| format!("creating {}", args.storage_dir.display()))?;
    let config = kube::Config::infer()
        .await
        .context("reading the Kubernetes client configuration")?;
    let client = kube::Client::try_from(config.clone())
        .context("connecting to the Kubernetes API server")?;
    let election = args.operate.leader(&config.default_namespace)?;

    let health = Arc::new(Health::default());
    let listener = server::bind(args.operate.metrics_addr).await?;
    tokio::spawn(server::serve(listener, server::router(health.clone())));
    // Every replica answers webhooks: annotating the named objects is safe from any of them,
    // and the leader reconciles.
    let hooks = server::bind(args.operate.receiver_addr).await?;
    tokio::spawn(crate::notify::server::serve(
        client.clone(),
        args.namespace.clone(),
        hooks,
    ));
    client
        .apiserver_version()
        .await
        .context("reaching the Kubernetes API server")?;
    health.set_ready();

    tracing::info!(storage = %args.storage_dir.display(), namespace = ?args.namespace, "agent starting");
    let settings = crate::source::controller::Settings {
        storage: args.storage_dir.clone(),
        namespace: args.namespace.clone(),
        max_artifact_size: args.max_artifact_size,
    };
    // The leader's controllers publish the Events; its dispatcher delivers them to the Alerts.
    let (dispatcher, deliver) =
        crate::notify::dispatch::start(client.clone(), args.namespace.clone());
    crate::runtime::events::install_sink(dispatcher);
    let controllers = async {
        let delivering = tokio::spawn(deliver);
        tokio::join!(
            crate::notify::controllers::run(client.clone(), args.namespace.clone()),
            crate::source::controller::run(client.clone(), settings),
            crate::kustomization::controller::run(
                client.clone(),
                config,
                args.storage_dir,
                args.namespace
            ),
        );
        delivering.abort();
    };
    match election {
        None => controllers.await,
        Some(settings) => {
            let mut elector = Elector::new(client.clone(), settings);
            tokio::select! {
                () = elector.acquire() => {}
                () = shutdown_signal() => {
                    tracing::info!("agent stopped before leading");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            tokio::select! {
                () = controllers => elector.release().await,
                lost = elector.keep() => return Err(lost).context("stepping down"),
            }
        }
    }
    tracing::info!("agent stopped");
    Ok(ExitCode::SUCCESS)
}

/// Resolves at SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler can be installed");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
