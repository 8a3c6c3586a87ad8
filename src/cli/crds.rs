//! `sluice crds`: prints the CustomResourceDefinitions generated from the API types as
//! multi-document YAML (what `manifests/crds.yaml` holds; a test keeps the two equal). No I/O
//! besides stdout.

use std::process::ExitCode;

use kube::CustomResourceExt;

use crate::api::canary::{Canary, MetricTemplate};
use crate::api::git_repository::GitRepository;
use crate::api::image_policy::ImagePolicy;
use crate::api::image_repository::ImageRepository;
use crate::api::image_update_automation::ImageUpdateAutomation;
use crate::api::kustomization::Kustomization;
use crate::api::notification::{Alert, Provider, Receiver};

#[derive(Debug, clap::Args)]
pub struct Args {}

/// Every CRD sluice serves.
pub fn all()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![
        GitRepository::crd(),
        Kustomization::crd(),
        ImageRepository::crd(),
        ImagePolicy::crd(),
        ImageUpdateAutomation::crd(),
        Receiver::crd(),
        Provider::crd(),
        Alert::crd(),
        Canary::crd(),
        MetricTemplate::crd(),
    ]
}

/// The CRDs as the YAML stream `sluice crds` prints.
pub fn yaml() -> String {
    let values: Vec<serde_json::Value> = all()
        .iter()
        .map(|crd| serde_json::to_value(crd).expect("CRDs serialize"))
        .collect();
    crate::build::to_yaml_stream(&values).expect("CRDs are printable as YAML")
}

pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    print!("{}", yaml());
    Ok(ExitCode::SUCCESS)
}
