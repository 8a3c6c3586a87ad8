//! `sluice suspend KIND NAME` and `sluice resume KIND NAME`: set `spec.suspend`; resuming also
//! asks for a reconcile and waits for it, as `flux resume` does. Talks to the API server.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use super::kinds::{Kind, Scope, parse_kind};
use crate::api::duration;

/// Arguments of `sluice suspend` and `sluice resume`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// gitrepository (gitrepo, source-git), kustomization (ks), receiver, provider, alert,
    /// imagerepository, imagepolicy or imageupdateautomation (and their plurals).
    #[arg(value_parser = parse_kind)]
    pub kind: Kind,
    pub name: String,
    /// How long `resume` waits for the reconcile.
    #[arg(long, default_value = "5m", value_parser = duration::parse)]
    pub timeout: Duration,
    #[command(flatten)]
    pub scope: Scope,
}

pub async fn run(args: Args, suspend: bool) -> anyhow::Result<ExitCode> {
    let (client, ns) = args.scope.connect().await?;
    let (kind, name) = (args.kind, args.name.as_str());
    let api = kind.api(&client, Some(&ns));
    api.get_opt(name)
        .await
        .with_context(|| format!("reading {kind} {ns}/{name}"))?
        .with_context(|| format!("{kind} {name} not found in namespace {ns}"))?;
    let verb = if suspend { "suspending" } else { "resuming" };
    eprintln!("► {verb} {kind} {ns}/{name}");
    let patch = json!({"spec": {"suspend": suspend}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("{verb} {kind} {ns}/{name}"))?;
    if suspend {
        eprintln!("✔ {kind} {ns}/{name} suspended");
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("✔ {kind} {ns}/{name} resumed");
    let ready = super::reconcile::trigger_and_wait(&api, kind, &ns, name, args.timeout).await?;
    Ok(if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
