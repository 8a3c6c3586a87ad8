//! `sluice source pull`: fetches a revision and writes its tree like the agent does, to debug
//! authentication, references and ignore rules. Network and disk I/O.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::source::credentials;
use crate::source::git::{Credentials, GitRemote};
use crate::source::revision;
use crate::source::revision::Selection;
use crate::source::sync::{self, PollOutcome, SourceSpec, Workspace};
use crate::source::url::RemoteUrl;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: SourceCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum SourceCommand {
    /// Fetch a revision and write its tree (without ignored files) to a directory.
    Pull(PullArgs),
    /// Ask the remote which revision a reference points at, without fetching (what a poll of an
    /// unchanged remote costs).
    Revision(RevisionArgs),
}

#[derive(Debug, clap::Args)]
pub struct RevisionArgs {
    /// Repository URL: https, http, ssh, git, or user@host:path.
    pub url: String,
    /// Branch, `refs/...` name, or `branch:`/`tag:`/`semver:` prefixed.
    #[arg(long = "ref", default_value = "main")]
    pub reference: String,
    /// Directory holding credentials as Secret keys.
    #[arg(long)]
    pub auth: Option<PathBuf>,
    /// Send basic auth or a bearer token over plain http:// or git:// (refused otherwise).
    #[arg(long)]
    pub insecure: bool,
    /// Network timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

#[derive(Debug, clap::Args)]
pub struct PullArgs {
    /// Repository URL: https, http, ssh, git, or user@host:path.
    pub url: String,
    /// Branch, `refs/...` name, full commit SHA, or `branch:`/`tag:`/`semver:`/`commit:` prefixed.
    #[arg(long = "ref", default_value = "main")]
    pub reference: String,
    /// Directory to write the tree to; must not exist or be empty.
    #[arg(long)]
    pub to: PathBuf,
    /// Directory holding credentials as Secret keys (username, password, bearerToken, ca.crt, identity, known_hosts).
    #[arg(long)]
    pub auth: Option<PathBuf>,
    /// Send basic auth or a bearer token over plain http:// or git:// (refused otherwise).
    #[arg(long)]
    pub insecure: bool,
    /// Ignore patterns (gitignore syntax) replacing the default exclusions.
    #[arg(long)]
    pub ignore: Option<String>,
    /// Network timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        SourceCommand::Pull(p) => pull(p).await,
        SourceCommand::Revision(r) => revision(r).await,
    }
}

fn load_credentials(url: &RemoteUrl, auth: Option<&PathBuf>) -> anyhow::Result<Credentials> {
    Ok(match auth {
        Some(dir) => {
            let data =
                credentials::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
            credentials::from_secret_data(url, &data, &dir.display().to_string())?
        }
        None => Credentials::default(),
    })
}

async fn revision(args: RevisionArgs) -> anyhow::Result<ExitCode> {
    let url = RemoteUrl::parse(&args.url)?;
    let credentials = load_credentials(&url, args.auth.as_ref())?;
    let remote = GitRemote {
        url,
        credentials,
        timeout: Duration::from_secs(args.timeout),
        insecure: args.insecure,
    };
    let refs = remote
        .list_refs()
        .await?
        .context("bearer-token remotes can only be asked by fetching")?;
    let selection = revision::disambiguate(Selection::from_cli(&args.reference)?, &refs);
    let resolved = revision::resolve(&selection, &refs)?;
    let rev = resolved
        .revision
        .context("the reference resolves to no revision")?;
    println!("{rev}");
    Ok(ExitCode::SUCCESS)
}

async fn pull(args: PullArgs) -> anyhow::Result<ExitCode> {
    if args.to.exists() && std::fs::read_dir(&args.to)?.next().is_some() {
        bail!("{} exists and is not empty", args.to.display());
    }
    let url = RemoteUrl::parse(&args.url)?;
    let credentials = match &args.auth {
        Some(dir) => {
            let data =
                credentials::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
            credentials::from_secret_data(&url, &data, &dir.display().to_string())?
        }
        None => Credentials::default(),
    };
    let spec = SourceSpec {
        url,
        selection: Selection::from_cli(&args.reference)?,
        credentials,
        timeout: Duration::from_secs(args.timeout),
        ignore: args.ignore,
        verification: None,
        insecure: args.insecure,
    };
    let parent = args
        .to
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(parent)?;
    let scratch = tempfile::Builder::new()
        .prefix(".sluice-pull-")
        .tempdir_in(parent)?;
    let ws = Workspace::under(scratch.path());
    let PollOutcome::Updated { artifact, .. } = sync::poll(&spec, &ws, None).await? else {
        bail!("nothing was fetched");
    };
    if args.to.exists() {
        std::fs::remove_dir(&args.to)?;
    }
    std::fs::rename(&artifact.path, &args.to)
        .with_context(|| format!("moving the tree to {}", args.to.display()))?;
    println!("revision: {}", artifact.revision);
    println!("digest: {}", artifact.digest);
    println!("path: {}", args.to.display());
    Ok(ExitCode::SUCCESS)
}
