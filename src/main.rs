//! The `sluice` binary: parses the command line, sets up logging and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = sluice::cli::Cli::parse();
    sluice::runtime::logging::init(cli.log_format, &cli.log_level);
    sluice::cli::run(cli)
}
