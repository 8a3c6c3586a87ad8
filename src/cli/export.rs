//! `sluice export KIND [NAME] [-A]`: the objects as YAML to keep in Git (no status, no
//! server-written metadata), as `flux export` prints them. One list or get request; `clean` is
//! pure.

use std::process::ExitCode;

use anyhow::Context;
use kube::api::ListParams;
use serde_json::{Map, Value};

use super::kinds::{Kind, Scope, parse_kind};
use crate::api::{FLUX_REQUESTED_AT_ANNOTATION, REQUESTED_AT_ANNOTATION};

/// Arguments of `sluice export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// gitrepository (gitrepo, source-git), kustomization (ks), receiver, provider, alert,
    /// imagerepository, imagepolicy or imageupdateautomation (and their plurals).
    #[arg(value_parser = parse_kind)]
    pub kind: Kind,
    /// Only this object (default: all of the namespace).
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
    let mut objects: Vec<Value> = match &args.name {
        Some(name) => {
            let obj = api
                .get_opt(name)
                .await
                .with_context(|| format!("reading {} {ns}/{name}", args.kind))?
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
    objects.sort_by(|a, b| {
        let key = |o: &Value| {
            (
                o["metadata"]["namespace"].to_string(),
                o["metadata"]["name"].to_string(),
            )
        };
        key(a).cmp(&key(b))
    });
    let cleaned: Vec<Value> = objects.iter().map(clean).collect();
    print!(
        "{}",
        crate::build::to_yaml_stream(&cleaned).map_err(anyhow::Error::msg)?
    );
    Ok(ExitCode::SUCCESS)
}

/// Annotations the cluster or tools write, not the user.
const RUNTIME_ANNOTATIONS: [&str; 3] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REQUESTED_AT_ANNOTATION,
    FLUX_REQUESTED_AT_ANNOTATION,
];

/// `obj` as a user would write it: apiVersion, kind, name, namespace, labels, annotations, spec.
pub fn clean(obj: &Value) -> Value {
    let mut metadata = Map::new();
    for key in ["name", "namespace", "labels"] {
        if let Some(v) = obj["metadata"].get(key) {
            metadata.insert(key.into(), v.clone());
        }
    }
    if let Some(Value::Object(annotations)) = obj["metadata"].get("annotations") {
        let kept: Map<String, Value> = annotations
            .iter()
            .filter(|(k, _)| !RUNTIME_ANNOTATIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !kept.is_empty() {
            metadata.insert("annotations".into(), Value::Object(kept));
        }
    }
    let mut out = Map::new();
    out.insert("apiVersion".into(), obj["apiVersion"].clone());
    out.insert("kind".into(), obj["kind"].clone());
    out.insert("metadata".into(), Value::Object(metadata));
    if let Some(spec) = obj.get("spec") {
        out.insert("spec".into(), spec.clone());
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_and_server_metadata_are_dropped() {
        let live = json!({
            "apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization",
            "metadata": {"name": "app", "namespace": "team", "uid": "u", "resourceVersion": "7",
                "generation": 3, "creationTimestamp": "t", "managedFields": [], "finalizers": ["finalizers.sluice.dev"],
                "labels": {"team": "a"},
                "annotations": {"sluice.dev/requestedAt": "t", "note": "keep"}},
            "spec": {"interval": "5m"},
            "status": {"conditions": []},
        });
        assert_eq!(
            clean(&live),
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization",
                "metadata": {"name": "app", "namespace": "team", "labels": {"team": "a"}, "annotations": {"note": "keep"}},
                "spec": {"interval": "5m"}})
        );
    }
}
