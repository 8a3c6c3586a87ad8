//! `sluice tree kustomization NAME`: what a Kustomization applied, from its inventory, as a tree;
//! Kustomizations it applied are expanded in turn. Reads the API server; `render` is pure.

use std::process::ExitCode;

use anyhow::{Context, bail};

use super::kinds::{Kind, Scope, parse_kind};
use crate::api::inventory::Inventory;
use crate::apply::inventory::ObjectId;

/// Arguments of `sluice tree`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// kustomization (ks).
    #[arg(value_parser = parse_kind)]
    pub kind: Kind,
    pub name: String,
    #[command(flatten)]
    pub scope: Scope,
}

/// One object and what it applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub label: String,
    pub children: Vec<Node>,
}

/// How deep nested Kustomizations are followed.
const MAX_DEPTH: usize = 16;

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.kind != Kind::Kustomization {
        bail!(
            "tree shows what a Kustomization applied; {} objects apply nothing",
            args.kind
        );
    }
    let (client, ns) = args.scope.connect().await?;
    let mut seen = Vec::new();
    let root = node(&client, &ns, &args.name, 0, &mut seen).await?;
    print!("{}", render(&root));
    Ok(ExitCode::SUCCESS)
}

async fn node(
    client: &kube::Client,
    ns: &str,
    name: &str,
    depth: usize,
    seen: &mut Vec<(String, String)>,
) -> anyhow::Result<Node> {
    let label = format!("Kustomization/{ns}/{name}");
    let key = (ns.to_string(), name.to_string());
    if depth > MAX_DEPTH || seen.contains(&key) {
        return Ok(Node {
            label,
            children: vec![],
        });
    }
    seen.push(key);
    let api = Kind::Kustomization.api(client, Some(ns));
    let obj = api
        .get_opt(name)
        .await
        .with_context(|| format!("reading Kustomization {ns}/{name}"))?
        .with_context(|| format!("Kustomization {name} not found in namespace {ns}"))?;
    let obj = serde_json::to_value(obj)?;
    let inventory: Inventory = obj
        .pointer("/status/inventory")
        .cloned()
        .map(serde_json::from_value)
        .transpose()
        .context("reading the inventory")?
        .unwrap_or_default();
    let mut ids: Vec<ObjectId> = inventory
        .entries
        .iter()
        .filter_map(|e| ObjectId::parse_key(&e.id))
        .collect();
    ids.sort_by(|a, b| (&a.kind, &a.namespace, &a.name).cmp(&(&b.kind, &b.namespace, &b.name)));
    let mut children = Vec::with_capacity(ids.len());
    for id in ids {
        let nested = id.group == crate::api::GROUP && id.kind == "Kustomization";
        let child = if nested {
            Box::pin(node(client, &id.namespace, &id.name, depth + 1, seen))
                .await
                .unwrap_or_else(|_| Node {
                    label: id.display_name(),
                    children: vec![],
                })
        } else {
            Node {
                label: id.display_name(),
                children: vec![],
            }
        };
        children.push(child);
    }
    Ok(Node { label, children })
}

/// The tree as text, drawn with box characters.
pub fn render(root: &Node) -> String {
    let mut out = format!("{}\n", root.label);
    draw(&root.children, "", &mut out);
    out
}

fn draw(children: &[Node], prefix: &str, out: &mut String) {
    for (i, child) in children.iter().enumerate() {
        let last = i + 1 == children.len();
        out.push_str(prefix);
        out.push_str(if last { "└── " } else { "├── " });
        out.push_str(&child.label);
        out.push('\n');
        let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
        draw(&child.children, &deeper, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(label: &str) -> Node {
        Node {
            label: label.into(),
            children: vec![],
        }
    }

    #[test]
    fn nested_kustomizations_are_drawn_under_their_parent() {
        let root = Node {
            label: "Kustomization/ops/infra".into(),
            children: vec![
                Node {
                    label: "Kustomization/ops/apps".into(),
                    children: vec![leaf("ConfigMap/shop/settings"), leaf("Deployment/shop/web")],
                },
                leaf("Namespace/shop"),
            ],
        };
        assert_eq!(
            render(&root),
            "Kustomization/ops/infra\n\
             ├── Kustomization/ops/apps\n\
             │   ├── ConfigMap/shop/settings\n\
             │   └── Deployment/shop/web\n\
             └── Namespace/shop\n"
        );
    }
}
