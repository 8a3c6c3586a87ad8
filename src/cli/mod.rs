//! The command line: one file per subcommand, each exposing `Args` and `run`. No I/O here besides
//! dispatch and printing the final error.

pub mod agent;
mod apply;
mod build;
pub mod crds;
mod diff;
mod source;
mod verify;
mod version;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::runtime::logging::LogFormat;

/// sluice: a GitOps agent for Kubernetes, and its command line.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "SLUICE_LOG_FORMAT")]
    pub log_format: LogFormat,

    /// Log filter, e.g. `info` or `sluice=debug,kube=info` (RUST_LOG wins when set).
    #[arg(long, global = true, default_value = "info", env = "SLUICE_LOG_LEVEL")]
    pub log_level: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render a directory (kustomization or plain manifests) the way the agent will, without kustomize.
    Build(Box<build::Args>),
    /// Apply a directory once, as the agent would: validate, apply, prune, wait; print the ChangeSet.
    Apply(Box<apply::Args>),
    /// Show what `sluice apply` would change (exit 1 when something would).
    Diff(Box<diff::Args>),
    /// Print the version of sluice and, with --server, of the Kubernetes API server.
    Version(version::Args),
    /// Run the controllers in the cluster.
    Agent(agent::Args),
    /// Print the CustomResourceDefinitions.
    Crds(crds::Args),
    /// Check that a revision carries a trusted OpenPGP or SSH signature (exit 1 when it does not).
    Verify(verify::Args),
    /// Work with Git sources the way the agent does.
    Source(source::Args),
}

/// Runs the parsed command and maps its outcome to the process exit code: 0 success, 1 a negative
/// answer (the command says what it means), 2 or more an error.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Build(args) => block_on(build::run(*args)),
        Command::Apply(args) => block_on(apply::run(*args)),
        Command::Diff(args) => block_on(diff::run(*args)),
        Command::Version(args) => block_on(version::run(args)),
        Command::Agent(args) => block_on(agent::run(args)),
        Command::Crds(args) => block_on(crds::run(args)),
        Command::Verify(args) => block_on(verify::run(args)),
        Command::Source(args) => block_on(source::run(args)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
        .block_on(future)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
