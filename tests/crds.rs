//! The install manifests carry exactly the CRDs the code generates, the API server accepts them
//! (a server-side dry run on the real control plane), their structural schemas make it refuse or
//! drop fields they do not declare, never keep them, and every duration field carries Flux's
//! pattern, which the API server enforces.

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

/// The string fields under `spec` whose names end in `interval` or `timeout` (any case), with
/// their pattern; array items show as `[0]`.
fn duration_fields(
    schema: &serde_json::Value,
    path: &str,
    out: &mut Vec<(String, Option<String>)>,
) {
    if let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) {
        for (name, field) in properties {
            let field_path = format!("{path}.{name}");
            let lower = name.to_ascii_lowercase();
            if field.get("type").and_then(|t| t.as_str()) == Some("string")
                && (lower.ends_with("interval") || lower.ends_with("timeout"))
            {
                let pattern = field.get("pattern").and_then(|p| p.as_str());
                out.push((field_path.clone(), pattern.map(str::to_string)));
            }
            duration_fields(field, &field_path, out);
        }
    }
    if let Some(items) = schema.get("items") {
        duration_fields(items, &format!("{path}[0]"), out);
    }
}

/// An object holding `value` at `path` (`spec.analysis.metrics[0].interval`) and nothing else.
fn holding(path: &str, value: serde_json::Value) -> serde_json::Value {
    path.rsplit('.')
        .fold(value, |inner, segment| match segment.strip_suffix("[0]") {
            Some(name) => serde_json::json!({ name: [inner] }),
            None => serde_json::json!({ segment: inner }),
        })
}

/// Every duration field of every kind carries Flux's duration pattern, so the API server refuses
/// `1d` in any of them before a controller reads it (the fields are found in the generated
/// schemas, so a new one without the pattern fails here).
#[tokio::test]
async fn every_duration_field_has_fluxs_pattern_and_the_api_server_enforces_it() {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

    let mut found = Vec::new();
    for crd in sluice::cli::crds::all() {
        let kind = crd.spec.names.kind.clone();
        let schema = serde_json::to_value(&crd.spec.versions[0].schema).unwrap();
        let spec = &schema["openAPIV3Schema"]["properties"]["spec"];
        let mut fields = Vec::new();
        duration_fields(spec, "spec", &mut fields);
        for (path, pattern) in fields {
            assert_eq!(
                pattern.as_deref(),
                Some(sluice::api::duration::PATTERN),
                "{kind} {path} has no duration pattern"
            );
            found.push((kind.clone(), path));
        }
    }
    let mut names: Vec<String> = found.iter().map(|(k, p)| format!("{k} {p}")).collect();
    names.sort();
    let mut expected = [
        "GitRepository spec.interval",
        "GitRepository spec.timeout",
        "Kustomization spec.interval",
        "Kustomization spec.retryInterval",
        "Kustomization spec.timeout",
        "ImageRepository spec.interval",
        "ImageRepository spec.timeout",
        "ImagePolicy spec.interval",
        "ImageUpdateAutomation spec.interval",
        "Receiver spec.interval",
        "Provider spec.timeout",
        "Canary spec.analysis.interval",
        "Canary spec.analysis.metrics[0].interval",
        "Canary spec.analysis.webhooks[0].timeout",
        "Canary spec.service.timeout",
    ];
    expected.sort();
    assert_eq!(
        names, expected,
        "the duration fields changed: check their patterns and update this list"
    );

    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "crd-durations").await;
    let n = ns.name().to_string();
    for (kind, path) in &found {
        let resource =
            ApiResource::from_gvk(&GroupVersionKind::gvk("sluice.dev", "v1alpha1", kind));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &n, &resource);
        let mut object = holding(path, serde_json::json!("1d"));
        object["apiVersion"] = serde_json::json!("sluice.dev/v1alpha1");
        object["kind"] = serde_json::json!(kind);
        object["metadata"] = serde_json::json!({"name": "durations", "namespace": n});
        let err = api
            .patch(
                "durations",
                &PatchParams::apply("sluice-tests").dry_run(),
                &Patch::Apply(&object),
            )
            .await
            .expect_err(&format!("{kind} took {path}: 1d"));
        assert!(
            err.to_string()
                .contains(&format!("{path} in body should match")),
            "{kind} {path}: {err}"
        );
    }
    ns.cleanup(&client).await;
}
