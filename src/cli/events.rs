//! `sluice events [--for KIND/NAME] [-A]`: the Events about sluice's objects, oldest first, as
//! `flux events` shows them. One list request; `rows` is pure.

use std::process::ExitCode;

use anyhow::Context;
use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};

use super::kinds::{Kind, Scope, parse_kind_name};
use super::table;

/// Arguments of `sluice events`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only the Events about this object, e.g. `kustomization/app`.
    #[arg(long = "for", value_parser = parse_kind_name)]
    pub for_object: Option<(Kind, String)>,
    /// Events of every namespace.
    #[arg(long, short = 'A', conflicts_with = "for_object")]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub scope: Scope,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (client, ns) = args.scope.connect().await?;
    let api: Api<Event> = if args.all_namespaces {
        Api::all(client)
    } else {
        Api::namespaced(client, &ns)
    };
    let events = api
        .list(&ListParams::default())
        .await
        .context("listing Events")?
        .items;
    let now = k8s_openapi::jiff::Timestamp::now();
    let rows = rows(&events, args.for_object.as_ref(), args.all_namespaces, now);
    if rows.len() == 1 {
        eprintln!("no Events found");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", table::render(&rows));
    Ok(ExitCode::SUCCESS)
}

/// When an Event was last seen.
fn last_seen(e: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    e.series
        .as_ref()
        .and_then(|s| s.last_observed_time.as_ref().map(|t| t.0))
        .or(e.last_timestamp.as_ref().map(|t| t.0))
        .or(e.event_time.as_ref().map(|t| t.0))
        .or(e.first_timestamp.as_ref().map(|t| t.0))
        .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// The table (header first) of the Events about sluice objects (or the one `only` names),
/// oldest first.
pub fn rows(
    events: &[Event],
    only: Option<&(Kind, String)>,
    with_namespace: bool,
    now: k8s_openapi::jiff::Timestamp,
) -> Vec<Vec<String>> {
    let ours = |e: &&Event| {
        let o = &e.involved_object;
        let sluice = o
            .api_version
            .as_deref()
            .is_some_and(|v| v.starts_with("sluice.dev/"));
        match only {
            Some((kind, name)) => {
                sluice
                    && o.kind.as_deref() == Some(kind.name())
                    && o.name.as_deref() == Some(name.as_str())
            }
            None => sluice,
        }
    };
    let mut selected: Vec<&Event> = events.iter().filter(ours).collect();
    selected.sort_by_key(|e| last_seen(e));
    let mut header: Vec<String> = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
        .map(String::from)
        .to_vec();
    if with_namespace {
        header.insert(0, "NAMESPACE".into());
    }
    let mut rows = vec![header];
    for e in selected {
        let o = &e.involved_object;
        let seen = last_seen(e).map(|t| t.to_string());
        let mut row = vec![
            table::age(seen.as_deref(), now),
            e.type_.clone().unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            format!(
                "{}/{}",
                o.kind.as_deref().unwrap_or(""),
                o.name.as_deref().unwrap_or("")
            ),
            table::cell(e.message.as_deref().unwrap_or(""), 120),
        ];
        if with_namespace {
            row.insert(0, e.metadata.namespace.clone().unwrap_or_default());
        }
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: &str, api: &str, name: &str, reason: &str, time: &str) -> Event {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("{name}.{reason}"), "namespace": "team"},
            "involvedObject": {"apiVersion": api, "kind": kind, "name": name},
            "type": "Normal", "reason": reason, "message": "said\nthis",
            "lastTimestamp": time,
        }))
        .unwrap()
    }

    #[test]
    fn only_sluice_objects_oldest_first() {
        let now: k8s_openapi::jiff::Timestamp = "2026-01-01T00:10:00Z".parse().unwrap();
        let events = [
            event(
                "Kustomization",
                "sluice.dev/v1alpha1",
                "app",
                "ReconciliationSucceeded",
                "2026-01-01T00:09:00Z",
            ),
            event("Pod", "v1", "web-1", "Pulled", "2026-01-01T00:08:00Z"),
            event(
                "GitRepository",
                "sluice.dev/v1alpha1",
                "app",
                "NewArtifact",
                "2026-01-01T00:05:00Z",
            ),
        ];
        let rows = rows(&events, None, false, now);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][3], "GitRepository/app");
        assert_eq!(rows[1][0], "5m");
        assert_eq!(rows[2][4], "said this");
        let only = rows_for(&events, now);
        assert_eq!(only.len(), 2);
        assert_eq!(only[1][2], "ReconciliationSucceeded");
    }

    fn rows_for(events: &[Event], now: k8s_openapi::jiff::Timestamp) -> Vec<Vec<String>> {
        rows(
            events,
            Some(&(Kind::Kustomization, "app".into())),
            false,
            now,
        )
    }
}
