//! `sluice get KIND [NAME] [-A]`: a table of objects with their revision, suspension, Ready
//! status and message, and age, as `flux get` shows them, and where their release windows stand
//! when they have some. One list or get request.

use std::process::ExitCode;

use anyhow::Context;
use kube::api::ListParams;
use serde_json::Value;

use super::kinds::{Kind, Scope, condition, parse_kind};
use super::table;
use crate::api::window::{OPEN_UNTIL_ANNOTATION, ReleaseWindow};
use crate::runtime::window::{self, State};

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
    // A column for release windows, when any object has them.
    let windows: Vec<Option<String>> = objects.iter().map(|o| window_cell(o, now)).collect();
    let with_windows = windows.iter().any(Option::is_some);
    if with_windows {
        header.push("WINDOW".into());
    }
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
        .zip(windows)
        .map(|(obj, window)| {
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
            if with_windows {
                row.push(window.unwrap_or_else(|| "-".into()));
            }
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

/// Where an object's release windows stand at `now` (`None` without windows): when the open
/// one closes or the next opens.
pub fn window_cell(obj: &Value, now: k8s_openapi::jiff::Timestamp) -> Option<String> {
    let windows: Vec<ReleaseWindow> =
        serde_json::from_value(obj.pointer("/spec/releaseWindows")?.clone()).ok()?;
    if windows.is_empty() {
        return None;
    }
    let open_until = obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(OPEN_UNTIL_ANNOTATION))
        .and_then(Value::as_str);
    Some(match window::parse(&windows) {
        Err(e) => format!("invalid: {}", e.message()),
        Ok(w) => match w.at_opened(open_until, now) {
            State::Always => "-".into(),
            State::Open { closes: Some(t) } => format!("open until {t}"),
            State::Open { closes: None } => "open".into(),
            State::Closed { opens: Some(t) } => format!("opens {t}"),
            State::Closed { opens: None } => "never opens".into(),
        },
    })
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

    #[test]
    fn a_window_column_says_when_the_window_closes_or_opens() {
        let now: k8s_openapi::jiff::Timestamp = "2026-12-02T12:00:00Z".parse().unwrap();
        let with = |windows: Value, annotations: Value| {
            json!({"metadata": {"name": "web", "annotations": annotations},
                "spec": {"releaseWindows": windows}})
        };
        let office =
            json!([{"schedule": "0 9 * * 1-5", "duration": "8h", "timeZone": "Europe/Berlin"}]);
        assert_eq!(
            window_cell(&with(office.clone(), json!({})), now).unwrap(),
            "open until 2026-12-02T16:00:00Z"
        );
        let night = json!([{"schedule": "0 22 * * *", "duration": "2h"}]);
        assert_eq!(
            window_cell(&with(night.clone(), json!({})), now).unwrap(),
            "opens 2026-12-02T22:00:00Z"
        );
        let opened = json!({OPEN_UNTIL_ANNOTATION: "2026-12-02T13:00:00Z"});
        assert_eq!(
            window_cell(&with(night, opened), now).unwrap(),
            "open until 2026-12-02T13:00:00Z"
        );
        let bad = json!([{"schedule": "0 22 * *", "duration": "2h"}]);
        assert!(
            window_cell(&with(bad, json!({})), now)
                .unwrap()
                .starts_with("invalid: spec.releaseWindows[0].schedule")
        );
        assert_eq!(window_cell(&json!({"spec": {}}), now), None);

        let table = render(Kind::Kustomization, &[with(office, json!({}))], false, now);
        assert!(table.lines().next().unwrap().ends_with("WINDOW"), "{table}");
    }
}
