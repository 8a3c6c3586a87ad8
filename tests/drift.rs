//! Objects the applier settles without a dry run (their live state already holds the manifest
//! it stamped) still have their drift found and corrected on the next apply: a value changed by
//! another manager, a deleted object, a label removed, a field taken by `kubectl edit`, a stamp
//! removed. Fields the manifest does not set, added by others, are left alone and cause no write.

mod support;

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use sluice::apply::applier::{Applier, ApplyOptions, Owner};
use sluice::apply::changeset::{Action, ChangeSet};

fn objects(ns: &str) -> Vec<Value> {
    let mut set = Vec::new();
    for i in 0..6 {
        set.push(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("cm-{i}"), "namespace": ns, "labels": {"tier": "web"}},
            "data": {"i": i.to_string()}}));
    }
    set.push(json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                "spec": {"containers": [{"name": "main", "image": "img:1"}]}}}}));
    set.push(
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": ns},
        "stringData": {"password": "hunter2"}}),
    );
    set
}

fn options() -> ApplyOptions {
    ApplyOptions {
        owner: Some(Owner {
            name: "drift".into(),
            namespace: "tests".into(),
        }),
        ..Default::default()
    }
}

fn api(client: &Client, ns: &str, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(client.clone(), ns, &resource)
}

async fn get(client: &Client, ns: &str, api_version: &str, kind: &str, name: &str) -> Value {
    let object = api(client, ns, api_version, kind).get(name).await.unwrap();
    serde_json::to_value(object).unwrap()
}

fn action_of(changes: &ChangeSet, name: &str, kind: &str) -> Action {
    changes
        .entries
        .iter()
        .find(|e| e.id.name == name && e.id.kind == kind)
        .unwrap_or_else(|| panic!("{kind}/{name} in {changes}"))
        .action
}

#[tokio::test]
async fn drift_on_settled_objects_is_corrected() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "drift").await;
    let applier = Applier::new(client.clone());
    let n = ns.name();

    let first = applier.apply(objects(n), &options()).await.unwrap();
    assert_eq!(first.count(Action::Created), 8, "{first}");
    let second = applier.apply(objects(n), &options()).await.unwrap();
    assert_eq!(second.count(Action::Unchanged), 8, "{second}");
    let stamped = get(&client, n, "v1", "ConfigMap", "cm-0").await;
    assert!(
        stamped["metadata"]["annotations"]["sluice.dev/digest"]
            .as_str()
            .is_some_and(|d| d.starts_with("sha256:")),
        "{stamped}"
    );

    let configmaps = api(&client, n, "v1", "ConfigMap");
    let by = |manager: &str| PatchParams {
        field_manager: Some(manager.into()),
        ..Default::default()
    };
    // Another manager changes a value sluice sets.
    configmaps
        .patch(
            "cm-0",
            &by("someone"),
            &Patch::Merge(json!({"data": {"i": "changed"}})),
        )
        .await
        .unwrap();
    // An object is deleted.
    configmaps
        .delete("cm-1", &Default::default())
        .await
        .unwrap();
    // A label of the manifest is removed.
    configmaps
        .patch(
            "cm-2",
            &by("someone"),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": null}}})),
        )
        .await
        .unwrap();
    // A value edited with kubectl: same value, but kubectl-edit now owns the field.
    configmaps
        .patch(
            "cm-3",
            &by("kubectl-edit"),
            &Patch::Merge(json!({"data": {"i": "3", "extra": "x"}})),
        )
        .await
        .unwrap();
    // The stamp itself is removed.
    configmaps
        .patch(
            "cm-4",
            &by("someone"),
            &Patch::Merge(json!({"metadata": {"annotations": {"sluice.dev/digest": null}}})),
        )
        .await
        .unwrap();
    // A field sluice does not set, added by another manager (a controller's annotation).
    configmaps
        .patch(
            "cm-5",
            &by("controller"),
            &Patch::Merge(json!({"metadata": {"annotations": {"seen-by": "controller"}}})),
        )
        .await
        .unwrap();
    // The Deployment's replicas are scaled by someone else.
    api(&client, n, "apps/v1", "Deployment")
        .patch(
            "web",
            &by("someone"),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .unwrap();

    let third = applier.apply(objects(n), &options()).await.unwrap();
    assert_eq!(
        action_of(&third, "cm-0", "ConfigMap"),
        Action::Configured,
        "{third}"
    );
    assert_eq!(
        action_of(&third, "cm-1", "ConfigMap"),
        Action::Created,
        "{third}"
    );
    assert_eq!(
        action_of(&third, "cm-2", "ConfigMap"),
        Action::Configured,
        "{third}"
    );
    assert_eq!(
        action_of(&third, "cm-3", "ConfigMap"),
        Action::Configured,
        "{third}"
    );
    assert_eq!(
        action_of(&third, "cm-4", "ConfigMap"),
        Action::Configured,
        "{third}"
    );
    assert_eq!(
        action_of(&third, "cm-5", "ConfigMap"),
        Action::Unchanged,
        "{third}"
    );
    assert_eq!(
        action_of(&third, "web", "Deployment"),
        Action::Configured,
        "{third}"
    );
    assert_eq!(
        action_of(&third, "s", "Secret"),
        Action::Unchanged,
        "{third}"
    );

    assert_eq!(
        get(&client, n, "v1", "ConfigMap", "cm-0").await["data"]["i"],
        "0"
    );
    assert_eq!(
        get(&client, n, "v1", "ConfigMap", "cm-1").await["data"]["i"],
        "1"
    );
    assert_eq!(
        get(&client, n, "v1", "ConfigMap", "cm-2").await["metadata"]["labels"]["tier"],
        "web"
    );
    let taken = get(&client, n, "v1", "ConfigMap", "cm-3").await;
    let managers: Vec<&str> = taken["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        !managers.contains(&"kubectl-edit"),
        "kubectl's fields taken over: {managers:?}"
    );
    assert!(
        get(&client, n, "v1", "ConfigMap", "cm-4").await["metadata"]["annotations"]["sluice.dev/digest"].is_string()
    );
    assert_eq!(
        get(&client, n, "v1", "ConfigMap", "cm-5").await["metadata"]["annotations"]["seen-by"],
        "controller"
    );
    assert_eq!(
        get(&client, n, "apps/v1", "Deployment", "web").await["spec"]["replicas"],
        1
    );

    // Everything settled again: the next apply has nothing to do.
    let fourth = applier.apply(objects(n), &options()).await.unwrap();
    assert_eq!(fourth.count(Action::Unchanged), 8, "{fourth}");
    ns.cleanup(&client).await;
}

/// An identity that may read and apply its objects by name but not list their kind (a Role with
/// `resourceNames`) still settles them: its reads fall back from the LIST to one GET each.
#[tokio::test]
async fn objects_an_identity_may_not_list_are_read_one_by_one() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use support::agent;

    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "drift-nolist").await;
    let n = ns.name();
    let set: Vec<Value> = objects(n).into_iter().take(6).collect();
    Applier::new(client.clone())
        .apply(set.clone(), &options())
        .await
        .unwrap();

    let names: Vec<String> = (0..6).map(|i| format!("cm-{i}")).collect();
    Api::<ServiceAccount>::namespaced(client.clone(), n)
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "narrow"}})).unwrap(),
        )
        .await
        .unwrap();
    Api::<Role>::namespaced(client.clone(), n)
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "narrow"},
                "rules": [{"apiGroups": [""], "resources": ["configmaps"],
                    "resourceNames": names, "verbs": ["get", "patch"]}]}))
            .unwrap(),
        )
        .await
        .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), n)
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "narrow"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "narrow"},
                "subjects": [{"kind": "ServiceAccount", "name": "narrow", "namespace": n}]}))
            .unwrap(),
        )
        .await
        .unwrap();

    let narrow = agent::service_account_config(&agent::admin_config().await, n, "narrow").await;
    let narrow = Applier::new(Client::try_from(narrow).unwrap());

    let again = narrow.apply(set.clone(), &options()).await.unwrap();
    assert_eq!(again.count(Action::Unchanged), 6, "{again}");

    api(&client, n, "v1", "ConfigMap")
        .patch(
            "cm-3",
            &PatchParams {
                field_manager: Some("someone".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"i": "changed"}})),
        )
        .await
        .unwrap();
    let corrected = narrow.apply(set, &options()).await.unwrap();
    assert_eq!(
        action_of(&corrected, "cm-3", "ConfigMap"),
        Action::Configured,
        "{corrected}"
    );
    assert_eq!(corrected.count(Action::Unchanged), 5, "{corrected}");
}
