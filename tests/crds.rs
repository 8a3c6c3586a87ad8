//! The install manifests carry exactly the CRDs the code generates, and the API server accepts
//! them (a server-side dry run on the real control plane).

mod support;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};

#[test]
fn manifests_crds_yaml_is_what_sluice_crds_prints() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let file = std::fs::read_to_string(support::repo_root().join("manifests/crds.yaml")).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout) == file,
        "manifests/crds.yaml is stale: regenerate it with `cargo run -- crds > manifests/crds.yaml`"
    );
}

#[tokio::test]
async fn the_api_server_accepts_every_crd() {
    let client = support::client().await;
    let api: Api<CustomResourceDefinition> = Api::all(client);
    for crd in sluice::cli::crds::all() {
        let name = crd.metadata.name.clone().unwrap();
        api.patch(
            &name,
            &PatchParams::apply("sluice-tests").dry_run(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|err| panic!("the API server rejects CRD {name}: {err}"));
    }
}
