//! The applier on a real API server: staged server-side apply, no-op detection, drift
//! correction and takeover from kubectl's managers, all-or-nothing validation, immutable fields,
//! CRDs with their custom resources in one set, and clear errors for bad objects.

mod support;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sluice::apply::applier::{Applier, ApplyError, ApplyOptions, Owner};
use sluice::apply::changeset::Action;

fn config_map(ns: &str, name: &str, value: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {"key": value}})
}

fn deployment(ns: &str, name: &str, app: &str, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}},
            "template": {"metadata": {"labels": {"app": app}},
                "spec": {"containers": [{"name": "main", "image": image}]}}}})
}

fn service(ns: &str, name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}})
}

fn options() -> ApplyOptions {
    ApplyOptions {
        owner: Some(Owner {
            name: "test".into(),
            namespace: "tests".into(),
        }),
        ..Default::default()
    }
}

async fn live(
    client: &Client,
    api_version: &str,
    kind: &str,
    ns: &str,
    name: &str,
) -> Option<Value> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    let api: Api<DynamicObject> = if ns.is_empty() {
        Api::all_with(client.clone(), &resource)
    } else {
        Api::namespaced_with(client.clone(), ns, &resource)
    };
    api.get_opt(name)
        .await
        .unwrap()
        .map(|o| serde_json::to_value(o).unwrap())
}

#[tokio::test]
async fn create_then_no_op_then_update_one() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "apply-basic").await;
    let applier = Applier::new(client.clone());
    let set = |value: &str| {
        vec![
            deployment(ns.name(), "web", "web", "registry.test/web:1"),
            config_map(ns.name(), "settings", value),
            service(ns.name(), "web"),
        ]
    };

    let first = applier.apply(set("a"), &options()).await.unwrap();
    assert_eq!(first.count(Action::Created), 3, "{first}");
    // ConfigMaps and Services go before Deployments.
    let kinds: Vec<&str> = first.entries.iter().map(|e| e.id.kind.as_str()).collect();
    assert_eq!(kinds, ["ConfigMap", "Service", "Deployment"]);
    let cm = live(&client, "v1", "ConfigMap", ns.name(), "settings")
        .await
        .unwrap();
    assert_eq!(cm["metadata"]["labels"]["sluice.dev/name"], "test");
    assert_eq!(cm["metadata"]["labels"]["sluice.dev/namespace"], "tests");
    let version_before = cm["metadata"]["resourceVersion"].clone();

    let second = applier.apply(set("a"), &options()).await.unwrap();
    assert_eq!(second.count(Action::Unchanged), 3, "{second}");
    let cm = live(&client, "v1", "ConfigMap", ns.name(), "settings")
        .await
        .unwrap();
    assert_eq!(cm["metadata"]["resourceVersion"], version_before);

    let third = applier.apply(set("b"), &options()).await.unwrap();
    assert_eq!(third.count(Action::Configured), 1, "{third}");
    assert_eq!(third.count(Action::Unchanged), 2, "{third}");
    let cm = live(&client, "v1", "ConfigMap", ns.name(), "settings")
        .await
        .unwrap();
    assert_eq!(cm["data"]["key"], "b");
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn drift_made_with_kubectl_managers_is_put_back() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "apply-drift").await;
    let applier = Applier::new(client.clone());
    let set = vec![config_map(ns.name(), "settings", "from-git")];
    applier.apply(set.clone(), &options()).await.unwrap();

    // A hand edit as `kubectl edit` makes it: an Update by the kubectl-edit manager that changes a
    // value sluice owns and adds a label sluice never set.
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), ns.name());
    let edit = json!({"metadata": {"labels": {"edited": "by-hand"}}, "data": {"key": "by-hand"}});
    let params = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..Default::default()
    };
    api.patch("settings", &params, &Patch::Merge(&edit))
        .await
        .unwrap();

    let changes = applier.apply(set.clone(), &options()).await.unwrap();
    assert_eq!(changes.count(Action::Configured), 1, "{changes}");
    let cm = live(&client, "v1", "ConfigMap", ns.name(), "settings")
        .await
        .unwrap();
    assert_eq!(cm["data"]["key"], "from-git");
    assert!(
        cm["metadata"]["labels"].get("edited").is_none(),
        "hand-added label survived: {cm}"
    );
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert!(
        !managers.contains(&"kubectl-edit"),
        "kubectl-edit still manages fields: {managers:?}"
    );

    let again = applier.apply(set, &options()).await.unwrap();
    assert_eq!(again.count(Action::Unchanged), 1, "{again}");
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn one_rejected_object_means_nothing_is_written() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "apply-reject").await;
    let applier = Applier::new(client.clone());
    let mut bad = service(ns.name(), "bad");
    bad["spec"]["ports"][0]["port"] = json!(70000);
    let set = vec![
        config_map(ns.name(), "good", "x"),
        bad,
        deployment(ns.name(), "web", "web", "img:1"),
    ];

    let failure = applier.apply(set, &options()).await.unwrap_err();
    assert!(
        failure.changeset.entries.is_empty(),
        "{}",
        failure.changeset
    );
    let ApplyError::Rejected(rejected) = &failure.error else {
        panic!("unexpected error: {}", failure.error)
    };
    assert_eq!(rejected.len(), 1);
    assert_eq!(
        rejected[0].id.to_string(),
        format!("Service/{}/bad", ns.name())
    );
    assert!(
        rejected[0].reason.contains("70000"),
        "{}",
        rejected[0].reason
    );
    assert!(failure.error.to_string().contains("nothing was applied"));
    assert!(
        live(&client, "v1", "ConfigMap", ns.name(), "good")
            .await
            .is_none()
    );
    assert!(
        live(&client, "apps/v1", "Deployment", ns.name(), "web")
            .await
            .is_none()
    );
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn immutable_field_changes_fail_clearly_unless_forced() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "apply-immutable").await;
    let applier = Applier::new(client.clone());
    applier
        .apply(
            vec![deployment(ns.name(), "web", "v1", "img:1")],
            &options(),
        )
        .await
        .unwrap();
    let uid_before = live(&client, "apps/v1", "Deployment", ns.name(), "web")
        .await
        .unwrap()["metadata"]["uid"]
        .clone();

    let changed = vec![deployment(ns.name(), "web", "v2", "img:1")];
    let failure = applier
        .apply(changed.clone(), &options())
        .await
        .unwrap_err();
    let message = failure.error.to_string();
    assert!(
        message.contains("spec.selector") && message.contains("immutable"),
        "{message}"
    );
    assert!(
        message.contains("force"),
        "the error should say how to recreate: {message}"
    );

    let forced = ApplyOptions {
        force: true,
        ..options()
    };
    let changes = applier.apply(changed, &forced).await.unwrap();
    assert_eq!(changes.count(Action::Configured), 1, "{changes}");
    let after = live(&client, "apps/v1", "Deployment", ns.name(), "web")
        .await
        .unwrap();
    assert_ne!(
        after["metadata"]["uid"], uid_before,
        "the Deployment was not recreated"
    );
    assert_eq!(after["spec"]["selector"]["matchLabels"]["app"], "v2");
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn a_crd_its_namespace_and_its_custom_resources_apply_in_one_set() {
    let client = support::client().await;
    let suffix = support::TestNamespace::new(&client, "apply-crd").await;
    let group = format!("{}.sluice.test", suffix.name());
    let ns = format!("{}-new", suffix.name());
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}});
    let widget = json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "w", "namespace": ns}, "spec": {"size": 3}});
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let applier = Applier::new(client.clone());

    // Custom resource first in the input: the stages put the CRD and Namespace before it.
    let set = vec![
        widget.clone(),
        config_map(&ns, "c", "x"),
        crd.clone(),
        namespace.clone(),
    ];
    let changes = applier.apply(set.clone(), &options()).await.unwrap();
    assert_eq!(changes.count(Action::Created), 4, "{changes}");
    let kinds: Vec<&str> = changes.entries.iter().map(|e| e.id.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "Namespace",
            "CustomResourceDefinition",
            "ConfigMap",
            "Widget"
        ]
    );
    let live_widget = live(&client, &format!("{group}/v1"), "Widget", &ns, "w")
        .await
        .unwrap();
    assert_eq!(live_widget["spec"]["size"], 3);

    let again = applier.apply(set, &options()).await.unwrap();
    assert_eq!(again.count(Action::Unchanged), 4, "{again}");

    // Clean up the cluster-scoped objects this test made.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    crds.delete(&format!("widgets.{group}"), &Default::default())
        .await
        .unwrap();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    namespaces.delete(&ns, &Default::default()).await.unwrap();
    suffix.cleanup(&client).await;
}

#[tokio::test]
async fn bad_objects_get_errors_that_name_them() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "apply-bad").await;
    let applier = Applier::new(client.clone());

    let unknown = json!({"apiVersion": "nothing.sluice.test/v1", "kind": "Gadget", "metadata": {"name": "g", "namespace": ns.name()}});
    let failure = applier
        .apply(vec![config_map(ns.name(), "c", "x"), unknown], &options())
        .await
        .unwrap_err();
    let message = failure.error.to_string();
    assert!(
        message.contains("Gadget") && message.contains("nothing.sluice.test/v1"),
        "{message}"
    );

    let mut no_namespace = config_map(ns.name(), "orphan", "x");
    no_namespace["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let failure = applier
        .apply(vec![no_namespace], &options())
        .await
        .unwrap_err();
    assert!(
        matches!(failure.error, ApplyError::MissingNamespace { .. }),
        "{}",
        failure.error
    );
    assert!(failure.error.to_string().contains("ConfigMap/orphan"));

    let dup = vec![
        config_map(ns.name(), "d", "1"),
        config_map(ns.name(), "d", "2"),
    ];
    let failure = applier.apply(dup, &options()).await.unwrap_err();
    assert!(
        matches!(failure.error, ApplyError::Duplicate { .. }),
        "{}",
        failure.error
    );

    assert!(
        live(&client, "v1", "ConfigMap", ns.name(), "c")
            .await
            .is_none(),
        "something was written"
    );
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn per_object_annotations_skip_or_create_once() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "apply-annotations").await;
    let applier = Applier::new(client.clone());
    let mut once = config_map(ns.name(), "once", "first");
    once["metadata"]["annotations"] = json!({"kustomize.toolkit.fluxcd.io/ssa": "IfNotPresent"});
    let mut ignored = config_map(ns.name(), "ignored", "x");
    ignored["metadata"]["annotations"] = json!({"sluice.dev/reconcile": "disabled"});

    let first = applier
        .apply(vec![once.clone(), ignored.clone()], &options())
        .await
        .unwrap();
    assert_eq!(first.count(Action::Created), 1, "{first}");
    assert_eq!(first.count(Action::Skipped), 1, "{first}");
    assert!(
        live(&client, "v1", "ConfigMap", ns.name(), "ignored")
            .await
            .is_none()
    );

    once["data"]["key"] = json!("second");
    let second = applier.apply(vec![once], &options()).await.unwrap();
    assert_eq!(second.count(Action::Skipped), 1, "{second}");
    let cm = live(&client, "v1", "ConfigMap", ns.name(), "once")
        .await
        .unwrap();
    assert_eq!(cm["data"]["key"], "first");
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn preview_says_what_would_change_and_writes_nothing() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "apply-preview").await;
    let applier = Applier::new(client.clone());
    let n = ns.name();
    applier
        .apply(
            vec![config_map(n, "same", "1"), config_map(n, "changed", "1")],
            &options(),
        )
        .await
        .unwrap();
    let before = live(&client, "v1", "ConfigMap", n, "changed")
        .await
        .unwrap();

    let set = vec![
        config_map(n, "same", "1"),
        config_map(n, "changed", "2"),
        config_map(n, "new", "1"),
    ];
    let previews = applier.preview(set, &options()).await.unwrap();
    let actions: Vec<(String, Action)> = previews
        .iter()
        .map(|p| (p.id.name.clone(), p.action))
        .collect();
    assert_eq!(
        actions,
        [
            ("changed".into(), Action::Configured),
            ("new".into(), Action::Created),
            ("same".into(), Action::Unchanged)
        ]
    );
    let changed = previews.iter().find(|p| p.id.name == "changed").unwrap();
    let text = sluice::apply::diff::render(&changed.id, changed.live.as_ref(), &changed.merged);
    assert!(
        text.contains("-  key: '1'") || text.contains("-  key: \"1\""),
        "{text}"
    );
    assert!(
        live(&client, "v1", "ConfigMap", n, "new").await.is_none(),
        "preview created an object"
    );
    let after = live(&client, "v1", "ConfigMap", n, "changed")
        .await
        .unwrap();
    assert_eq!(
        after["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );
    ns.cleanup(&client).await;
}
