//! The install manifests carry exactly the CRDs the code generates, the API server accepts them
//! (a server-side dry run on the real control plane), and their structural schemas make it refuse
//! or drop fields they do not declare, never keep them.

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

/// The schemas are structural, so the API server never keeps a field they do not declare: server-
/// side apply (sluice's applier, `kubectl apply --server-side`) refuses it naming the field, for
/// every kind; a strict update refuses it too; and a lax one (fieldValidation Warn, the default of
/// plain writes) drops it.
#[tokio::test]
async fn fields_the_schemas_do_not_declare_are_refused_by_name_or_dropped() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    use serde_json::json;

    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "crds").await;
    let n = ns.name().to_string();

    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in sluice::cli::crds::all() {
        let name = crd.metadata.name.clone().unwrap();
        let served = crds.get(&name).await.unwrap();
        let conditions = served.status.and_then(|s| s.conditions).unwrap_or_default();
        assert!(
            !conditions.iter().any(|c| c.type_ == "NonStructuralSchema"),
            "{name}: {conditions:?}"
        );
        let (group, kind) = (&crd.spec.group, &crd.spec.names.kind);
        let version = &crd.spec.versions[0].name;
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &n, &resource);
        let typo = json!({"apiVersion": format!("{group}/{version}"), "kind": kind,
            "metadata": {"name": "typo", "namespace": n}, "spec": {"zzUnknown": true}});
        let err = api
            .patch(
                "typo",
                &PatchParams::apply("sluice-tests").dry_run(),
                &Patch::Apply(&typo),
            )
            .await
            .expect_err(&format!("{kind} kept an unknown field"));
        assert!(
            err.to_string()
                .contains(".spec.zzUnknown: field not declared in schema"),
            "{kind}: {err}"
        );
    }

    // A Kustomization with a misspelled field (`prun`) on update.
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "sluice.dev",
        "v1alpha1",
        "Kustomization",
    ));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &n, &resource);
    support::create_sluice_object(
        &client,
        &n,
        json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": "app"},
            "spec": {"interval": "1m", "sourceRef": {"name": "app"}, "suspend": true}}),
    )
    .await;
    let typo = json!({"spec": {"prun": true}});
    let err = api
        .patch(
            "app",
            &PatchParams::default().validation_strict(),
            &Patch::Merge(&typo),
        )
        .await
        .expect_err("a strict update kept spec.prun");
    assert!(
        err.to_string().contains("unknown field \"spec.prun\""),
        "{err}"
    );
    let lax = api
        .patch("app", &PatchParams::default(), &Patch::Merge(&typo))
        .await
        .unwrap();
    assert!(lax.data["spec"].get("prun").is_none(), "{:?}", lax.data);
    assert_eq!(lax.data["spec"]["prune"], json!(false));

    ns.cleanup(&client).await;
}
