//! `sluice verify`: checks that a revision of a repository carries a trusted signature. Exit 0
//! trusted, 1 not trusted (reason on stderr), 2 error. Reads the repository and keys from disk or
//! the network.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::source::credentials;
use crate::source::git::{self, Credentials, FetchPlan, GitRemote};
use crate::source::revision::{self, Selection};
use crate::source::url::RemoteUrl;
use crate::source::verify::{self, TrustedKeys, VerifyMode};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Mode {
    Head,
    Tag,
    TagAndHead,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository URL (https, http, ssh, git, user@host:path) or a local repository path.
    pub repository: String,
    /// Branch, tag, refs/... name, full commit SHA, or `branch:`/`tag:`/`semver:`/`commit:` prefixed.
    #[arg(long = "ref", default_value = "main")]
    pub reference: String,
    /// Directory of trusted keys: `*.asc` OpenPGP, `*.pub` SSH, optional `<stem>.emails` allowlists.
    #[arg(long)]
    pub keys: PathBuf,
    #[arg(long, value_enum, default_value_t = Mode::Head)]
    pub mode: Mode,
    /// Directory holding credentials as Secret keys (username, password, bearerToken, ca.crt, identity, known_hosts).
    #[arg(long)]
    pub auth: Option<PathBuf>,
    /// Send basic auth or a bearer token over plain http:// or git:// (refused otherwise).
    #[arg(long)]
    pub insecure: bool,
    /// Network timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout: u64,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let keys = TrustedKeys::from_dir(&args.keys)
        .with_context(|| format!("reading keys from {}", args.keys.display()))?
        .with_context(|| format!("keys in {}", args.keys.display()))?;
    let mode = match args.mode {
        Mode::Head => VerifyMode::Head,
        Mode::Tag => VerifyMode::Tag,
        Mode::TagAndHead => VerifyMode::TagAndHead,
    };
    let selection = Selection::from_cli(&args.reference)?;
    let local = PathBuf::from(&args.repository);
    let scratch;
    let (repo_path, commit, refname) = if local.exists() {
        let refs = git::list_local_refs(&local).await?;
        let selection = revision::disambiguate(selection, &refs);
        let resolved = revision::resolve(&selection, &refs)?;
        let commit = resolved
            .commit
            .context("the reference resolves to no commit")?;
        (local, commit, resolved.refname)
    } else {
        let url = RemoteUrl::parse(&args.repository)?;
        let credentials = match &args.auth {
            Some(dir) => {
                let data = credentials::read_dir(dir)
                    .with_context(|| format!("reading {}", dir.display()))?;
                credentials::from_secret_data(&url, &data, &dir.display().to_string())?
            }
            None => Credentials::default(),
        };
        let remote = GitRemote {
            url,
            credentials,
            timeout: Duration::from_secs(args.timeout),
            insecure: args.insecure,
        };
        let (selection, resolved) = match remote.list_refs().await? {
            Some(refs) if !matches!(selection, Selection::Commit { .. }) => {
                let selection = revision::disambiguate(selection, &refs);
                let resolved = revision::resolve(&selection, &refs)?;
                (selection, Some(resolved))
            }
            _ => (selection, None),
        };
        scratch = tempfile::tempdir().context("creating a scratch directory")?;
        let plan = FetchPlan {
            selection,
            resolved,
            previous_commit: None,
        };
        let lock = git::CacheLock::acquire(scratch.path(), remote.timeout).await?;
        let fetched = remote.fetch(scratch.path(), plan, &lock).await?;
        (scratch.path().to_owned(), fetched.commit, fetched.local_ref)
    };
    let objects = git::read_signed_objects(&repo_path, &commit, refname.as_deref()).await?;
    let tag_name = refname
        .as_deref()
        .and_then(|r| r.strip_prefix("refs/tags/"));
    match verify::verify(&objects, &commit, tag_name, mode, &keys).await? {
        Ok(signers) => {
            for s in signers {
                println!(
                    "trusted: {} signed by {} ({})",
                    s.subject, s.key_name, s.fingerprint
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("not trusted: {reason}");
            Ok(ExitCode::from(1))
        }
    }
}
