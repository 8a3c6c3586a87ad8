//! `sluice reconcile KIND NAME [--with-source] [--open-window 1h]`: asks for a reconcile now (the
//! `sluice.dev/requestedAt` annotation; with `--open-window`, a Kustomization's release windows
//! opened by hand until then) and waits until the object reports it handled, showing
//! progress; exit 0 when it ends Ready, 1 when it ends not Ready. Also the waiting part of
//! `sluice resume`. Talks to the API server; `progress` is pure.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};

use super::kinds::{Kind, Scope, condition, parse_kind};
use crate::api::window::OPEN_UNTIL_ANNOTATION;
use crate::api::{REQUESTED_AT_ANNOTATION, duration};

/// Arguments of `sluice reconcile`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// gitrepository (gitrepo, source-git), kustomization (ks), receiver, provider, alert,
    /// imagerepository, imagepolicy or imageupdateautomation (and their plurals).
    #[arg(value_parser = parse_kind)]
    pub kind: Kind,
    pub name: String,
    /// For a Kustomization: reconcile its source first.
    #[arg(long)]
    pub with_source: bool,
    /// For a Kustomization: open its release windows for this long (e.g. `1h`), so the
    /// reconcile applies now even outside them.
    #[arg(long, value_parser = duration::parse)]
    pub open_window: Option<Duration>,
    /// How long to wait.
    #[arg(long, default_value = "5m", value_parser = duration::parse)]
    pub timeout: Duration,
    #[command(flatten)]
    pub scope: Scope,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (client, ns) = args.scope.connect().await?;
    if args.open_window.is_some() && args.kind != Kind::Kustomization {
        bail!("--open-window is for Kustomizations");
    }
    if args.with_source {
        if args.kind != Kind::Kustomization {
            bail!("--with-source is for Kustomizations");
        }
        let obj = get(
            &args.kind.api(&client, Some(&ns)),
            args.kind,
            &ns,
            &args.name,
        )
        .await?;
        let source = &obj["spec"]["sourceRef"];
        let source_ns = source["namespace"].as_str().unwrap_or(&ns).to_string();
        let source_name = source["name"].as_str().unwrap_or_default().to_string();
        let api = Kind::GitRepository.api(&client, Some(&source_ns));
        if !trigger_and_wait(
            &api,
            Kind::GitRepository,
            &source_ns,
            &source_name,
            args.timeout,
        )
        .await?
        {
            return Ok(ExitCode::from(1));
        }
    }
    let api = args.kind.api(&client, Some(&ns));
    if let Some(open) = args.open_window {
        let until = k8s_openapi::jiff::Timestamp::now()
            .checked_add(open)
            .context("--open-window is too long")?;
        eprintln!(
            "► opening the release windows of {} {ns}/{} until {until}",
            args.kind, args.name
        );
        let patch =
            json!({"metadata": {"annotations": {OPEN_UNTIL_ANNOTATION: until.to_string()}}});
        api.patch(&args.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .with_context(|| format!("annotating {} {ns}/{}", args.kind, args.name))?;
    }
    let ready = trigger_and_wait(&api, args.kind, &ns, &args.name, args.timeout).await?;
    Ok(if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn get(api: &Api<DynamicObject>, kind: Kind, ns: &str, name: &str) -> anyhow::Result<Value> {
    let obj = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading {kind} {ns}/{name}"))?
        .with_context(|| format!("{kind} {name} not found in namespace {ns}"))?;
    Ok(serde_json::to_value(obj)?)
}

/// Where a requested reconcile stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Not handled yet; what the object says it is doing, if anything.
    Waiting(Option<String>),
    Ready(String),
    NotReady(String),
}

/// Reads `obj` for the reconcile requested with `requested`.
pub fn progress(obj: &Value, requested: &str) -> Progress {
    let handled = obj
        .pointer("/status/lastHandledReconcileAt")
        .and_then(Value::as_str)
        == Some(requested);
    let reconciling = condition(obj, "Reconciling").filter(|(status, _)| *status == "True");
    let generation = obj.pointer("/metadata/generation").and_then(Value::as_i64);
    let ready = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let current = ready.is_some_and(|c| c["observedGeneration"].as_i64() >= generation);
    match (handled && current && reconciling.is_none(), ready) {
        (true, Some(c)) => {
            let message = c["message"].as_str().unwrap_or("").to_string();
            if c["status"] == "True" {
                Progress::Ready(message)
            } else {
                Progress::NotReady(message)
            }
        }
        _ => Progress::Waiting(reconciling.map(|(_, m)| m.to_string())),
    }
}

/// Annotates the object and waits until it reports the request handled. `Ok(true)` when it ends
/// Ready; a suspended object is an error (resume it first).
pub async fn trigger_and_wait(
    api: &Api<DynamicObject>,
    kind: Kind,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<bool> {
    let obj = get(api, kind, ns, name).await?;
    if obj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true) {
        bail!(
            "{kind} {ns}/{name} is suspended: resume it first (sluice resume {} {name})",
            kind.name().to_lowercase()
        );
    }
    let requested = k8s_openapi::jiff::Timestamp::now().to_string();
    eprintln!("► annotating {kind} {ns}/{name} for reconciliation");
    let patch = json!({"metadata": {"annotations": {REQUESTED_AT_ANNOTATION: requested}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("annotating {kind} {ns}/{name}"))?;
    eprintln!("◎ waiting for {kind} reconciliation");
    let deadline = tokio::time::Instant::now() + timeout;
    let mut said = None;
    loop {
        let obj = get(api, kind, ns, name).await?;
        let last = || {
            let handled = obj
                .pointer("/status/lastHandledReconcileAt")
                .and_then(Value::as_str);
            let ready = condition(&obj, "Ready").map(|(s, m)| format!("Ready={s}: {m}"));
            format!(
                "it last handled {}; {}",
                handled.unwrap_or("no request"),
                ready.unwrap_or_else(|| "no Ready condition".into())
            )
        };
        match progress(&obj, &requested) {
            Progress::Ready(message) => {
                eprintln!("✔ {kind} {ns}/{name} reconciled: {message}");
                return Ok(true);
            }
            Progress::NotReady(message) => {
                eprintln!("✗ {kind} {ns}/{name} is not ready: {message}");
                return Ok(false);
            }
            Progress::Waiting(doing) => {
                if doing.is_some() && doing != said {
                    eprintln!("◎ {}", doing.as_deref().unwrap_or_default());
                    said = doing;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "{kind} {ns}/{name} did not handle the request within {timeout:?} ({})",
                last()
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(handled: &str, ready: &str, observed: i64, reconciling: bool) -> Value {
        let mut conditions = vec![
            json!({"type": "Ready", "status": ready, "observedGeneration": observed, "message": "m"}),
        ];
        if reconciling {
            conditions.push(json!({"type": "Reconciling", "status": "True", "message": "Reconciling revision r"}));
        }
        json!({"metadata": {"generation": 2}, "status": {"lastHandledReconcileAt": handled, "conditions": conditions}})
    }

    #[test]
    fn a_request_is_done_once_handled_for_the_current_generation() {
        assert_eq!(
            progress(&obj("t0", "True", 2, false), "t1"),
            Progress::Waiting(None)
        );
        assert_eq!(
            progress(&obj("t1", "True", 1, false), "t1"),
            Progress::Waiting(None)
        );
        assert_eq!(
            progress(&obj("t1", "True", 2, true), "t1"),
            Progress::Waiting(Some("Reconciling revision r".into()))
        );
        assert_eq!(
            progress(&obj("t1", "True", 2, false), "t1"),
            Progress::Ready("m".into())
        );
        assert_eq!(
            progress(&obj("t1", "False", 2, false), "t1"),
            Progress::NotReady("m".into())
        );
    }
}
