//! `sluice get KIND [NAME] [-A]`: a table of objects with their revision, suspension, Ready
//! status and message, and age, as `flux get` shows them. One list or get request.

use std::process::ExitCode;

use anyhow::Context;
use kube::api::ListParams;
use serde_json::Value;

use super::kinds::{Kind, Scope, condition, parse_kind};
use super::table;

/// Arguments of `sluice get`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// gitrepository (gitrepo, source-git), kustomization (ks), receiver, provider, alert,
    /// imagerepository, imagepolicy or imageupdateautomation (and their plurals).
    #[arg(value_parser = parse_kind)]
    pub kind: Kind,
    /// Only this object.
    pub name: Option<String>,
    /// Objects of every namespace.
    #[arg(long, short = 'A', conflicts_with = "name")]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub scope: Scope,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (client, ns) = args.scope.connect().await?;
    let api = args
        .kind
        .api(&client, (!args.all_namespaces).then_some(ns.as_str()));
    let objects: Vec<Value> = match &args.name {
        Some(name) => {
            let found = api
                .get_opt(name)
                .await
                .with_context(|| format!("reading {} {ns}/{name}", args.kind))?;
            let obj = found
                .with_context(|| format!("{} {name} not found in namespace {ns}", args.kind))?;
            vec![serde_json::to_value(obj)?]
        }
        None => api
            .list(&ListParams::default())
            .await
            .with_context(|| format!("listing {} objects", args.kind))?
            .items
            .into_iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?,
    };
    if objects.is_empty() {
        let scope = if args.all_namespaces {
            "any namespace".to_string()
        } else {
            format!("namespace {ns}")
        };
        eprintln!("no {} objects found in {scope}", args.kind);
        return Ok(ExitCode::SUCCESS);
    }
    let now = k8s_openapi::jiff::Timestamp::now();
    print!("{}", render(args.kind, &objects, args.all_namespaces, now));
    Ok(ExitCode::SUCCESS)
}

/// The table of `objects`, sorted by namespace and name.
pub fn render(
    kind: Kind,
    objects: &[Value],
    with_namespace: bool,
    now: k8s_openapi::jiff::Timestamp,
) -> String {
    let mut header: Vec<String> = ["NAME", "REVISION", "SUSPENDED", "READY", "STATUS", "AGE"]
        .map(String::from)
        .to_vec();
    if with_namespace {
        header.insert(0, "NAMESPACE".into());
    }
    let text = |obj: &Value, pointer: &str| {
        obj.pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut rows: Vec<Vec<String>> = objects
        .iter()
        .map(|obj| {
            let (ready, message) =
                condition(obj, "Ready").unwrap_or(("Unknown", "not reconciled yet"));
            let suspended = obj
                .pointer("/spec/suspend")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut row = vec![
                text(obj, "/metadata/name"),
                kind.revision(obj).unwrap_or_else(|| "-".into()),
                if suspended { "True" } else { "False" }.into(),
                ready.to_string(),
                table::cell(message, 80),
                table::age(
                    obj.pointer("/metadata/creationTimestamp")
                        .and_then(Value::as_str),
                    now,
                ),
            ];
            if with_namespace {
                row.insert(0, text(obj, "/metadata/namespace"));
            }
            row
        })
        .collect();
    rows.sort();
    rows.insert(0, header);
    table::render(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_say_revision_suspension_readiness_and_age() {
        let now: k8s_openapi::jiff::Timestamp = "2026-01-01T01:00:00Z".parse().unwrap();
        let objects = [
            json!({"metadata": {"name": "web", "namespace": "team", "creationTimestamp": "2026-01-01T00:00:00Z"},
                "spec": {"suspend": true},
                "status": {"lastAppliedRevision": "main@sha1:ab",
                    "conditions": [{"type": "Ready", "status": "True", "message": "Applied revision: main@sha1:ab"}]}}),
            json!({"metadata": {"name": "api", "namespace": "team"}, "spec": {}}),
        ];
        let table = render(Kind::Kustomization, &objects, true, now);
        let lines: Vec<&str> = table.lines().collect();
        assert!(
            lines[0].starts_with("NAMESPACE   NAME   REVISION"),
            "{table}"
        );
        assert!(
            lines[1].contains("api")
                && lines[1].contains("Unknown")
                && lines[1].contains("not reconciled yet"),
            "{table}"
        );
        let web: Vec<&str> = lines[2]
            .split("   ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(web[2..5], ["main@sha1:ab", "True", "True"], "{table}");
        assert!(lines[2].ends_with("60m"), "{table}");
    }
}
