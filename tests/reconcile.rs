//! One-shot reconciles on a real API server: the stored inventory, pruning of what left the set,
//! opt-outs, the empty-set guard, and keeping objects whose deletion is not ours to make.

mod support;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use sluice::apply::applier::{Applier, Owner};
use sluice::apply::changeset::Action;
use sluice::apply::reconcile::{ReconcileError, ReconcileOptions, reconcile};
use sluice::apply::store::{ConfigMapStore, InventoryStore};

fn config_map(ns: &str, name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations}, "data": {"k": name}})
}

fn options(prune: bool) -> ReconcileOptions {
    ReconcileOptions {
        apply: Default::default(),
        owner: Owner {
            name: "shop".into(),
            namespace: "tests".into(),
        },
        prune,
        allow_empty: false,
    }
}

#[tokio::test]
async fn what_leaves_the_set_is_pruned_unless_opted_out_or_no_longer_ours() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "reconcile-prune").await;
    let n = ns.name();
    let applier = Applier::new(client.clone());
    let store = ConfigMapStore::new(client.clone(), n, "shop");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), n);

    let first = vec![
        config_map(n, "a", json!({})),
        config_map(n, "b", json!({})),
        config_map(n, "keep-me", json!({"sluice.dev/prune": "disabled"})),
        config_map(n, "adopted", json!({})),
    ];
    let report = reconcile(&applier, &store, first, &options(true))
        .await
        .unwrap();
    assert_eq!(report.applied.count(Action::Created), 4);
    assert_eq!(store.load().await.unwrap().entries.len(), 4);

    // Someone else takes "adopted" over by changing its owner label.
    let relabel = json!({"metadata": {"labels": {"sluice.dev/name": "someone-else"}}});
    cms.patch("adopted", &PatchParams::default(), &Patch::Merge(&relabel))
        .await
        .unwrap();

    let second = vec![config_map(n, "a", json!({})), config_map(n, "c", json!({}))];
    let report = reconcile(&applier, &store, second, &options(true))
        .await
        .unwrap();
    assert_eq!(
        report.applied.count(Action::Created),
        1,
        "{}",
        report.applied
    );
    assert_eq!(report.pruned.count(Action::Deleted), 1, "{}", report.pruned);
    assert_eq!(report.pruned.count(Action::Skipped), 2, "{}", report.pruned);
    for (name, exists) in [
        ("a", true),
        ("b", false),
        ("c", true),
        ("keep-me", true),
        ("adopted", true),
    ] {
        let live = cms.get_opt(name).await.unwrap();
        let gone = live.is_none() || live.unwrap().metadata.deletion_timestamp.is_some();
        assert_eq!(!gone, exists, "ConfigMap {name}");
    }
    let stored: Vec<String> = store
        .load()
        .await
        .unwrap()
        .entries
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        stored,
        [format!("{n}_a__ConfigMap"), format!("{n}_c__ConfigMap")]
    );
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn an_empty_set_does_not_prune_without_consent_and_nothing_changes() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "reconcile-empty").await;
    let applier = Applier::new(client.clone());
    let store = ConfigMapStore::new(client.clone(), ns.name(), "shop");
    reconcile(
        &applier,
        &store,
        vec![config_map(ns.name(), "a", json!({}))],
        &options(true),
    )
    .await
    .unwrap();

    let err = reconcile(&applier, &store, vec![], &options(true))
        .await
        .unwrap_err();
    assert!(matches!(err, ReconcileError::Prune(_)), "{err}");
    assert!(err.to_string().contains("empty"), "{err}");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns.name());
    assert!(cms.get_opt("a").await.unwrap().is_some());
    assert_eq!(store.load().await.unwrap().entries.len(), 1);

    let consent = ReconcileOptions {
        allow_empty: true,
        ..options(true)
    };
    let report = reconcile(&applier, &store, vec![], &consent).await.unwrap();
    assert_eq!(report.pruned.count(Action::Deleted), 1);
    assert!(store.load().await.unwrap().is_empty());
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn without_prune_objects_that_left_stay_in_the_inventory_for_later() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "reconcile-noprune").await;
    let n = ns.name();
    let applier = Applier::new(client.clone());
    let store = ConfigMapStore::new(client.clone(), n, "shop");
    let both = vec![config_map(n, "a", json!({})), config_map(n, "b", json!({}))];
    reconcile(&applier, &store, both, &options(false))
        .await
        .unwrap();
    let report = reconcile(
        &applier,
        &store,
        vec![config_map(n, "a", json!({}))],
        &options(false),
    )
    .await
    .unwrap();
    assert!(report.pruned.entries.is_empty());
    assert_eq!(store.load().await.unwrap().entries.len(), 2);

    let report = reconcile(
        &applier,
        &store,
        vec![config_map(n, "a", json!({}))],
        &options(true),
    )
    .await
    .unwrap();
    assert_eq!(report.pruned.count(Action::Deleted), 1, "{}", report.pruned);
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn a_namespaced_object_without_namespace_is_refused_before_the_inventory_changes() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "reconcile-nons").await;
    let applier = Applier::new(client.clone());
    let store = ConfigMapStore::new(client.clone(), ns.name(), "shop");
    reconcile(
        &applier,
        &store,
        vec![config_map(ns.name(), "a", json!({}))],
        &options(true),
    )
    .await
    .unwrap();
    let before = store.load().await.unwrap();

    let mut orphan = config_map(ns.name(), "b", json!({}));
    orphan["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let err = reconcile(
        &applier,
        &store,
        vec![config_map(ns.name(), "a", json!({})), orphan],
        &options(true),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("ConfigMap/b is namespaced but has no namespace"),
        "{err}"
    );
    assert_eq!(
        store.load().await.unwrap(),
        before,
        "the stored inventory changed"
    );
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn namespaces_holding_objects_of_others_are_not_pruned_without_consent() {
    use k8s_openapi::api::core::v1::Namespace;
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "reconcile-guard").await;
    let n = ns.name();
    let applier = Applier::new(client.clone());
    let store = ConfigMapStore::new(client.clone(), n, "guard");
    let owner = ReconcileOptions {
        owner: Owner {
            name: "guard".into(),
            namespace: n.into(),
        },
        ..options(true)
    };
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let namespace = |name: &str, annotations: Value| {
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "annotations": annotations, "labels": {"sluice.dev/test": "true"}}})
    };
    let (held, empty, consent) = (
        format!("{n}-held"),
        format!("{n}-empty"),
        format!("{n}-consent"),
    );
    // Three namespaces of ours, each with a ConfigMap of ours; one with a role whose name holds
    // `_` (legal for RBAC objects), and a ConfigMap made by hand in two of them.
    let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "system:reader_x", "namespace": empty}, "rules": []});
    let mut first = vec![
        namespace(&held, json!({})),
        namespace(&empty, json!({})),
        namespace(&consent, json!({"sluice.dev/prune": "delete-contents"})),
        role,
    ];
    for ns in [&held, &empty, &consent] {
        first.push(config_map(ns, "ours", json!({})));
    }
    let report = reconcile(&applier, &store, first, &owner).await.unwrap();
    assert_eq!(
        report.applied.count(Action::Created),
        7,
        "{}",
        report.applied
    );
    let inventory = store.load().await.unwrap();
    assert!(
        inventory
            .entries
            .iter()
            .any(|e| e.object_id().is_some_and(|id| id.name == "system:reader_x")),
        "{inventory:?}"
    );
    for ns in [&held, &consent] {
        let hand_made: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "hand-made"}, "data": {"k": "v"}}))
                .unwrap();
        Api::<ConfigMap>::namespaced(client.clone(), ns)
            .create(&Default::default(), &hand_made)
            .await
            .unwrap();
    }
    // An entry nobody can read back: kept as it is, never dropped.
    let mut with_garbage = inventory.clone();
    with_garbage
        .entries
        .push(sluice::apply::inventory::InventoryEntry {
            id: "not-a-key".into(),
            v: "v1".into(),
        });
    store.save(&with_garbage).await.unwrap();

    // Everything leaves the set but one ConfigMap elsewhere.
    let report = reconcile(
        &applier,
        &store,
        vec![config_map(n, "stay", json!({}))],
        &owner,
    )
    .await
    .unwrap();
    let deleting = |name: String| {
        let namespaces = namespaces.clone();
        async move {
            namespaces
                .get_opt(&name)
                .await
                .unwrap()
                .is_none_or(|ns| ns.metadata.deletion_timestamp.is_some())
        }
    };
    assert!(
        !deleting(held.clone()).await,
        "a namespace holding a hand-made ConfigMap was pruned"
    );
    assert!(deleting(empty.clone()).await, "{}", report.pruned);
    assert!(deleting(consent.clone()).await, "{}", report.pruned);
    assert_eq!(report.guarded.len(), 1, "{:?}", report.guarded);
    assert!(
        report.guarded[0].1.contains("ConfigMap") && report.guarded[0].1.contains("hand-made"),
        "{:?}",
        report.guarded
    );
    let inventory = store.load().await.unwrap();
    let kept: Vec<&str> = inventory.entries.iter().map(|e| e.id.as_str()).collect();
    assert!(kept.contains(&"not-a-key"), "{kept:?}");
    assert!(
        kept.contains(&format!("_{held}__Namespace").as_str()),
        "{kept:?}"
    );
    assert_eq!(report.unreadable.len(), 1);
    for name in [held, empty, consent] {
        let _ = namespaces.delete(&name, &Default::default()).await;
    }
    ns.cleanup(&client).await;
}
