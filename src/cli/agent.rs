//! `sluice agent`: runs the controllers in the cluster until a shutdown signal, with the
//! multi-tenancy flags of Flux (see docs/security.md), its metrics and health endpoints, and
//! (with --leader-elect) only while it leads. Talks to the API server and Git remotes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::kustomization::tenancy::Tenancy;
use crate::runtime::leader::Elector;
use crate::runtime::references::CrossNamespaceRefs;
use crate::runtime::server::{self, Health};

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
    /// Refuse references to objects of another namespace: a Kustomization's sourceRef and
    /// dependsOn, an Alert's eventSources, a Receiver's resources, a Canary's MetricTemplates and
    /// alert Providers (Stalled, reason AccessDenied).
    #[arg(long, env = "SLUICE_NO_CROSS_NAMESPACE_REFS")]
    pub no_cross_namespace_refs: bool,
    /// Largest artifact (bytes of file content) a GitRepository may produce.
    #[arg(long, env = "SLUICE_MAX_ARTIFACT_SIZE", default_value_t = crate::source::artifact::DEFAULT_MAX_SIZE)]
    pub max_artifact_size: u64,
    /// Most files (and symlinks) an artifact may hold.
    #[arg(long, env = "SLUICE_MAX_ARTIFACT_FILES", default_value_t = crate::source::artifact::DEFAULT_MAX_FILES)]
    pub max_artifact_files: usize,
    /// Most tags an ImageRepository may have; a scan that finds more fails instead of storing them.
    #[arg(long, env = "SLUICE_MAX_IMAGE_TAGS", default_value_t = crate::image::registry::DEFAULT_MAX_TAGS)]
    pub max_image_tags: usize,
    #[command(flatten)]
    pub operate: super::operate::OperateArgs,
    /// Prometheus the canary analysis asks for the built-in metrics and for MetricTemplates
    /// without an address (e.g. `http://prometheus.monitoring:9090`).
    #[arg(long, env = "SLUICE_METRICS_SERVER")]
    pub metrics_server: Option<String>,
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
    let refs = CrossNamespaceRefs::refused_if(args.no_cross_namespace_refs);
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
        refs,
        hooks,
    ));
    client
        .apiserver_version()
        .await
        .context("reaching the Kubernetes API server")?;
    health.set_ready();

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
    let tags = std::sync::Arc::new(crate::image::tags::TagStore::new(&args.storage_dir));
    let limits = crate::image::registry::Limits {
        max_tags: args.max_image_tags,
        ..Default::default()
    };
    let (image_namespace, image_storage) = (args.namespace.clone(), args.storage_dir.clone());
    let canary_storage = args.storage_dir.clone();
    let kustomizations = crate::kustomization::controller::Settings {
        storage: args.storage_dir,
        namespace: args.namespace,
        label_selector: args.watch_label_selector,
        tenancy: Tenancy {
            default_service_account: args.default_service_account,
            cross_namespace_refs: refs,
        },
    };
    let analyzer = crate::canary::controller::Analyzer::new(
        client.clone(),
        crate::canary::controller::AnalyzerSettings {
            namespace: image_namespace.clone(),
            metrics_server: args.metrics_server,
            cross_namespace_refs: refs,
            storage: Some(canary_storage),
        },
    );
    let handoff = Some(analyzer.handoff());
    // The leader's controllers publish the Events; its dispatcher delivers them to the Alerts.
    let (dispatcher, deliver) =
        crate::notify::dispatch::start(client.clone(), image_namespace.clone(), refs);
    crate::runtime::events::install_sink(dispatcher);
    let controllers = async {
        let delivering = tokio::spawn(deliver);
        tokio::join!(
            crate::notify::controllers::run(client.clone(), image_namespace.clone(), refs),
            crate::source::controller::run(client.clone(), sources),
            crate::kustomization::controller::run_with_handoff(
                client.clone(),
                config,
                kustomizations,
                handoff
            ),
            analyzer.run(),
            crate::image::repository::run(
                client.clone(),
                image_namespace.clone(),
                tags.clone(),
                limits
            ),
            crate::image::policy_controller::run(client.clone(), image_namespace.clone(), tags),
            crate::image::automation::run(client.clone(), image_storage, image_namespace.clone()),
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
