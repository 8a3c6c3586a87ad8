//! `sluice crds`: prints the CustomResourceDefinitions generated from the API types, as a JSON
//! `List` that `kubectl apply -f -` accepts. No I/O besides stdout.

use std::process::ExitCode;

use kube::CustomResourceExt;

use crate::api::git_repository::GitRepository;
use crate::api::kustomization::Kustomization;

#[derive(Debug, clap::Args)]
pub struct Args {}

/// Every CRD sluice serves.
pub fn all()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![GitRepository::crd(), Kustomization::crd()]
}

pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    let list = serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": all() });
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(ExitCode::SUCCESS)
}
