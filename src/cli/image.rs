//! `sluice image scan|policy|update`: try image automation locally, as the agent does it — list a
//! repository's tags, see which tag a policy chooses, and see (or write) what the setters change
//! in a directory. Talks to registries and reads/writes local files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use tokio::time::Instant;

use crate::api::image_policy::{ImagePolicyChoice, ImageRef, OrderPolicy, SemVerPolicy, TagFilter};
use crate::image::policy::Selector;
use crate::image::reference::ImageName;
use crate::image::registry::http::HttpRegistry;
use crate::image::registry::{Access, Limits, Registry, RetryPolicy, auth};
use crate::image::repository::compile_exclusions;
use crate::image::setters::{self, Scope};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List a repository's tags as an ImageRepository scan sees them.
    Scan(ScanArgs),
    /// Print the image a policy would choose (exit 1 when no tag qualifies).
    Policy(PolicyArgs),
    /// Show what the setters would change in a directory (exit 1 when something would);
    /// `--write` changes the files.
    Update(UpdateArgs),
}

/// How to reach the registry.
#[derive(Debug, clap::Args)]
pub struct RegistryArgs {
    /// The image repository, e.g. `ghcr.io/org/app`.
    pub image: String,
    /// A `.dockerconfigjson` / containers-auth.json with credentials.
    #[arg(long, env = "REGISTRY_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,
    /// PEM CA certificates to trust besides the system's.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with --key-file).
    #[arg(long, requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    #[arg(long, requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Plain HTTP.
    #[arg(long)]
    pub insecure: bool,
    /// Tags to leave out (regular expressions; default `^.*\.sig$`).
    #[arg(long = "exclude")]
    pub exclude: Vec<String>,
    /// Tags asked for per page (default: none asked, the registry chooses).
    #[arg(long)]
    pub page_size: Option<usize>,
    /// Most tags accepted.
    #[arg(long, default_value_t = Limits::default().max_tags)]
    pub max_tags: usize,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Print the count, requests and time to stderr.
    #[arg(long)]
    pub stats: bool,
}

#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// A semver range, e.g. `>=1.0.0 <2.0.0`.
    #[arg(long, group = "kind")]
    pub semver: Option<String>,
    /// `asc` or `desc`.
    #[arg(long, group = "kind")]
    pub alphabetical: Option<String>,
    /// `asc` or `desc`.
    #[arg(long, group = "kind")]
    pub numerical: Option<String>,
    /// A regular expression tags must match (filterTags.pattern).
    #[arg(long)]
    pub filter: Option<String>,
    /// What of a tag is compared, e.g. `$ts` (filterTags.extract).
    #[arg(long, requires = "filter")]
    pub extract: Option<String>,
    /// Also read the tag's digest.
    #[arg(long)]
    pub digest: bool,
}

#[derive(Debug, clap::Args)]
pub struct UpdateArgs {
    /// The directory whose YAML files carry markers.
    pub dir: PathBuf,
    /// A policy's latest image: `NAMESPACE:NAME=IMAGE:TAG[@DIGEST]`.
    #[arg(long = "policy", required = true)]
    pub policies: Vec<String>,
    /// Change the files instead of printing the diff.
    #[arg(long)]
    pub write: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Scan(a) => scan(a).await,
        Command::Policy(a) => policy(a).await,
        Command::Update(a) => update(a).await,
    }
}

async fn tags(args: &RegistryArgs) -> anyhow::Result<(ImageName, HttpRegistry, Vec<String>)> {
    let name = ImageName::parse(&args.image)?;
    let mut access = Access {
        host: name.api_host().to_owned(),
        insecure: args.insecure,
        ..Access::default()
    };
    if let Some(file) = &args.auth_file {
        let config = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let origin = file.display().to_string();
        access.credentials = auth::from_docker_config(&config, &name.registry, &origin)?;
        access.origin = origin;
    }
    let read = |p: &Option<PathBuf>| -> anyhow::Result<Option<Vec<u8>>> {
        p.as_ref()
            .map(|p| std::fs::read(p).with_context(|| format!("reading {}", p.display())))
            .transpose()
    };
    access.ca_pem = read(&args.ca_file)?;
    if let (Some(cert), Some(key)) = (read(&args.cert_file)?, read(&args.key_file)?) {
        access.client_cert = Some((cert, key));
    }
    let exclusions = if args.exclude.is_empty() {
        vec![crate::api::image_repository::DEFAULT_EXCLUSION.to_owned()]
    } else {
        args.exclude.clone()
    };
    let exclusions = compile_exclusions(&exclusions).map_err(anyhow::Error::msg)?;
    let registry = HttpRegistry::new(access, RetryPolicy::default())?;
    let limits = Limits {
        max_tags: args.max_tags,
        page_size: args.page_size,
    };
    let mut tags = registry.list_tags(&name.repository, &limits).await?;
    tags.retain(|t| !exclusions.iter().any(|re| re.is_match(t)));
    tags.sort();
    Ok((name, registry, tags))
}

async fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (name, registry, tags) = tags(&args.registry).await?;
    let mut out = String::with_capacity(tags.len() * 16);
    for tag in &tags {
        out.push_str(tag);
        out.push('\n');
    }
    print!("{out}");
    if args.stats {
        eprintln!(
            "{name}: {} tags, {} requests, {:.3}s",
            tags.len(),
            registry.requests(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn policy(args: PolicyArgs) -> anyhow::Result<ExitCode> {
    let choice = ImagePolicyChoice {
        semver: args.semver.clone().map(|range| SemVerPolicy { range }),
        alphabetical: args
            .alphabetical
            .clone()
            .map(|o| OrderPolicy { order: Some(o) }),
        numerical: args
            .numerical
            .clone()
            .map(|o| OrderPolicy { order: Some(o) }),
    };
    let filter = args.filter.clone().map(|pattern| TagFilter {
        pattern,
        extract: args.extract.clone(),
    });
    let selector = Selector::from_spec(&choice, filter.as_ref())?;
    let (name, registry, tags) = tags(&args.registry).await?;
    let Some(tag) = selector.latest(tags.iter().map(String::as_str)) else {
        eprintln!(
            "none of the {} tags of {name} satisfies the policy",
            tags.len()
        );
        return Ok(ExitCode::from(1));
    };
    let digest = if args.digest {
        Some(registry.digest(&name.repository, tag).await?)
    } else {
        None
    };
    let chosen = ImageRef {
        name: args.registry.image.trim().to_owned(),
        tag: tag.to_owned(),
        digest,
    };
    println!("{}", chosen.reference());
    Ok(ExitCode::SUCCESS)
}

/// Reads `NAMESPACE:NAME=IMAGE:TAG[@DIGEST]`.
fn parse_policy(value: &str) -> anyhow::Result<(String, String, ImageRef)> {
    let bad = || anyhow::anyhow!("--policy {value:?} is not NAMESPACE:NAME=IMAGE:TAG[@DIGEST]");
    let (policy, image) = value.split_once('=').ok_or_else(bad)?;
    let (ns, name) = policy.split_once(':').ok_or_else(bad)?;
    let (reference, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d.to_owned())),
        None => (image, None),
    };
    let (image_name, tag) = reference
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .ok_or_else(bad)?;
    Ok((
        ns.to_owned(),
        name.to_owned(),
        ImageRef {
            name: image_name.to_owned(),
            tag: tag.to_owned(),
            digest,
        },
    ))
}

async fn update(args: UpdateArgs) -> anyhow::Result<ExitCode> {
    let mut scopes: BTreeMap<String, Scope> = BTreeMap::new();
    for value in &args.policies {
        let (ns, name, latest) = parse_policy(value)?;
        let scope = scopes.entry(ns.clone()).or_insert_with(|| Scope {
            namespace: ns,
            ..Scope::default()
        });
        scope.selected.insert(name, Some(latest));
    }
    if !args.dir.is_dir() {
        bail!("{} is not a directory", args.dir.display());
    }
    let mut files = Vec::new();
    collect_yaml(&args.dir, &mut files)?;
    files.sort();
    // Every file is read and updated before any is written: a bad file changes nothing.
    let mut changes = Vec::new();
    for path in files {
        let shown = path
            .strip_prefix(&args.dir)
            .unwrap_or(&path)
            .display()
            .to_string();
        let original =
            std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut bytes = original.clone();
        for scope in scopes.values() {
            if let Some(update) = setters::update_file(&shown, &bytes, scope)? {
                bytes = update.bytes;
            }
        }
        if bytes != original {
            changes.push((path, shown, original, bytes));
        }
    }
    for (path, shown, original, bytes) in &changes {
        if args.write {
            std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
            println!("updated {shown}");
        } else {
            let (old, new) = (
                String::from_utf8_lossy(original),
                String::from_utf8_lossy(bytes),
            );
            let diff = similar::TextDiff::from_lines(old.as_ref(), new.as_ref());
            print!(
                "{}",
                diff.unified_diff()
                    .header(&format!("a/{shown}"), &format!("b/{shown}"))
            );
        }
    }
    Ok(if !changes.is_empty() && !args.write {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Every `.yaml`/`.yml` file under `dir`, not following symlinks.
fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut seen = BTreeSet::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            if entry.file_name() != ".git" {
                collect_yaml(&path, out)?;
            }
        } else if kind.is_file()
            && path.extension().is_some_and(|e| e == "yaml" || e == "yml")
            && seen.insert(path.clone())
        {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_on_the_command_line() {
        let (ns, name, r) = parse_policy("apps:web=127.0.0.1:5000/web:1.2.0@sha256:ab").unwrap();
        assert_eq!((ns.as_str(), name.as_str()), ("apps", "web"));
        assert_eq!(r.name, "127.0.0.1:5000/web");
        assert_eq!(r.tag, "1.2.0");
        assert_eq!(r.digest.as_deref(), Some("sha256:ab"));
        assert!(parse_policy("apps:web=127.0.0.1:5000/web").is_err());
        assert!(parse_policy("web=reg/web:1").is_err());
    }
}
