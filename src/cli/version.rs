//! `sluice version`: the client version, and the API server's when asked (one GET /version).

use std::process::ExitCode;

/// Arguments of `sluice version`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also ask the Kubernetes API server (from the kubeconfig or in-cluster config) for its version.
    #[arg(long)]
    pub server: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    println!("sluice {}", env!("CARGO_PKG_VERSION"));
    if args.server {
        let config = kube::Config::infer().await?;
        tracing::debug!(server = %config.cluster_url, "asking the API server for its version");
        let client = kube::Client::try_from(config)?;
        let info = client.apiserver_version().await?;
        println!("server {} ({})", info.git_version, info.platform);
    }
    Ok(ExitCode::SUCCESS)
}
