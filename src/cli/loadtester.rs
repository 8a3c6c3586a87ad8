//! `sluice loadtester`: serves the load tester canary webhooks call (Flagger's loadtester API;
//! see `loadtester`) until a shutdown signal. Does network I/O.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, env = "SLUICE_LOADTESTER_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    tracing::info!(listen = %args.listen, "loadtester listening");
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    crate::loadtester::serve(listener, shutdown)
        .await
        .context("serving the loadtester")?;
    Ok(ExitCode::SUCCESS)
}
