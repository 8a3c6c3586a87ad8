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
