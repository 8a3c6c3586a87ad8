//! `sluice canary promote|abort|pause|resume|status NAME`: the manual gates of a canary
//! analysis. Gates are annotations the agent acts on (`sluice.dev/canary-gate`,
//! `sluice.dev/canary-paused`); promote and abort wait until the agent handled them. Talks to the
//! API server.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::canary::{Canary, GATE_ANNOTATION, PAUSED_ANNOTATION, PROMOTED};
use crate::api::condition::{self, READY};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Promote now: skip the rest of the analysis (or force a rolled-back revision through).
    Promote(Gate),
    /// Roll back now.
    Abort(Gate),
    /// Hold the canary where it is: no steps, no checks, no deadline, until resumed.
    Pause(Target),
    /// Let a paused canary go on.
    Resume(Target),
    /// Show where the analysis stands and its latest Events.
    Status(Target),
}

#[derive(Debug, clap::Args)]
pub struct Target {
    /// The Canary's name.
    pub name: String,
    /// Its namespace (default: the kubeconfig's).
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct Gate {
    #[command(flatten)]
    pub target: Target,
    /// How long to wait for the agent to act on it (0: don't wait).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub timeout: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::api::duration::parse(text).map_err(|e| e.to_string())
}

async fn api(target: &Target) -> anyhow::Result<(Api<Canary>, String)> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API server")?;
    let namespace = target
        .namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    Ok((Api::namespaced(client, &namespace), namespace))
}

async fn annotate(
    api: &Api<Canary>,
    name: &str,
    key: &str,
    value: Option<&str>,
) -> anyhow::Result<()> {
    let patch = json!({"metadata": {"annotations": {key: value}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating Canary {name}"))?;
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::Promote(gate) => ask(gate, "promote").await,
        Command::Abort(gate) => ask(gate, "abort").await,
        Command::Pause(target) => pause(target, true).await,
        Command::Resume(target) => pause(target, false).await,
        Command::Status(target) => status(target).await,
    }
}

/// Sets the gate annotation and waits until the agent reports it handled.
async fn ask(gate: Gate, what: &str) -> anyhow::Result<ExitCode> {
    let (api, namespace) = api(&gate.target).await?;
    let name = &gate.target.name;
    if api.get_opt(name).await?.is_none() {
        bail!("Canary {namespace}/{name} not found");
    }
    let value = format!("{what}@{}", k8s_openapi::jiff::Timestamp::now());
    annotate(&api, name, GATE_ANNOTATION, Some(&value)).await?;
    println!("asked Canary {namespace}/{name} to {what}");
    if gate.timeout.is_zero() {
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = tokio::time::Instant::now() + gate.timeout;
    loop {
        let canary = api.get(name).await?;
        let status = canary.status.unwrap_or_default();
        if status.last_handled_gate.as_deref() == Some(value.as_str()) {
            let ready = condition::find(&status.conditions, READY)
                .map(|c| c.message.clone())
                .unwrap_or_default();
            println!(
                "handled: {} ({ready})",
                status.phase.unwrap_or_default().as_str()
            );
            return Ok(ExitCode::SUCCESS);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the agent did not act on the request within {:?}; is it running?",
                gate.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn pause(target: Target, paused: bool) -> anyhow::Result<ExitCode> {
    let (api, namespace) = api(&target).await?;
    let value = paused.then_some("true");
    annotate(&api, &target.name, PAUSED_ANNOTATION, value).await?;
    println!(
        "Canary {namespace}/{} {}",
        target.name,
        if paused { "paused" } else { "resumed" }
    );
    Ok(ExitCode::SUCCESS)
}

async fn status(target: Target) -> anyhow::Result<ExitCode> {
    let (api, namespace) = api(&target).await?;
    let name = &target.name;
    let canary = api
        .get_opt(name)
        .await?
        .with_context(|| format!("Canary {namespace}/{name} not found"))?;
    let status = canary.status.clone().unwrap_or_default();
    let paused = canary
        .annotations()
        .get(PAUSED_ANNOTATION)
        .map(String::as_str)
        == Some("true");
    println!("Canary {namespace}/{name}");
    println!(
        "  target:         Deployment {}",
        canary.spec.target_ref.name
    );
    println!(
        "  phase:          {}{}",
        status.phase.map_or("(not started)", |p| p.as_str()),
        if paused { " (paused)" } else { "" }
    );
    println!("  weight:         {}", status.canary_weight);
    println!("  iterations:     {}", status.iterations);
    println!("  failed checks:  {}", status.failed_checks);
    let now = k8s_openapi::jiff::Timestamp::now();
    if let Some(window) = super::get::window_cell(&serde_json::to_value(&canary)?, now) {
        println!("  release window: {window}");
    }
    if let Some(time) = &status.last_transition_time {
        println!("  last step:      {time}");
    }
    for type_ in [READY, PROMOTED] {
        if let Some(c) = condition::find(&status.conditions, type_) {
            println!("  {type_}: {:?} ({}): {}", c.status, c.reason, c.message);
        }
    }
    let events: Api<Event> = Api::namespaced(api.clone().into_client(), &namespace);
    let selector = format!("involvedObject.kind=Canary,involvedObject.name={name}");
    let mut list = events
        .list(&ListParams::default().fields(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.sort_by_key(|e| {
        e.event_time
            .as_ref()
            .map(|t| t.0)
            .or(e.last_timestamp.as_ref().map(|t| t.0))
    });
    if !list.is_empty() {
        println!("  events:");
    }
    for event in list.iter().rev().take(10).rev() {
        println!(
            "    {} {}: {}",
            event.type_.as_deref().unwrap_or(""),
            event.reason.as_deref().unwrap_or(""),
            event.message.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}
