//! The Kustomization controller end to end: a real git daemon, the GitRepository and
//! Kustomization controllers, the real control plane. Push → applied; change and deletion →
//! configured and pruned; broken YAML → BuildFailed with file and line, the cluster untouched;
//! dependsOn order and cycles; a sourceRef to nothing; CEL health checks of a custom resource;
//! fields no schema declares refused by name before anything is applied.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Event};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;
use sluice::api::condition::{self, ConditionStatus};
use sluice::api::kustomization::{Kustomization, KustomizationStatus};
use support::git_signing::Signing;
use support::in_process::{Agent, create};

const APP: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: registry.test/web:1.0.0
";

fn config(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: {value}\n"
    )
}

async fn wait_for(
    api: &Api<Kustomization>,
    name: &str,
    what: &str,
    check: impl Fn(&KustomizationStatus) -> bool,
) -> KustomizationStatus {
    let mut last = None;
    for _ in 0..400 {
        if let Some(status) = api.get(name).await.unwrap().status {
            if check(&status) {
                return status;
            }
            last = Some(status);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("Kustomization {name}: never {what}; last status: {last:#?}");
}

fn ready(status: &KustomizationStatus) -> Option<&condition::Condition> {
    condition::find(&status.conditions, "Ready")
}

fn kustomization(
    name: &str,
    ns: &str,
    source: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut spec = json!({"interval": "1m", "retryInterval": "2s", "timeout": "60s", "sourceRef": {"kind": "GitRepository", "name": source},
        "path": "./deploy", "prune": true, "targetNamespace": ns});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn push_apply_change_prune_and_broken_yaml() {
    let env = Agent::start("ks").await;
    let (client, work) = (env.client.clone(), &env.work);
    let n = env.ns.name().to_string();

    work.write("deploy/app.yaml", APP);
    work.write("deploy/config.yaml", &config("blue"));
    let first = work.commit("first", &Signing::None);
    work.push(&["main"]);

    env.create_source("app", "1s").await;
    create(
        &client,
        &n,
        kustomization("app", &n, "app", json!({"wait": true})),
    )
    .await;

    let api: Api<Kustomization> = Api::namespaced(client.clone(), &n);
    let rev1 = format!("main@sha1:{first}");
    let status = wait_for(&api, "app", "applied the first revision", |s| {
        s.last_applied_revision.as_deref() == Some(rev1.as_str())
    })
    .await;
    assert_eq!(ready(&status).unwrap().status, ConditionStatus::True);
    assert_eq!(
        condition::find(&status.conditions, "Healthy")
            .unwrap()
            .status,
        ConditionStatus::True
    );
    assert_eq!(status.inventory.as_ref().unwrap().entries.len(), 2);
    assert_eq!(status.history[0].revision, rev1);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    let settings = cms.get("settings").await.unwrap();
    assert_eq!(settings.labels()["sluice.dev/name"], "app");
    assert_eq!(settings.labels()["sluice.dev/namespace"], n);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &n);
    assert_eq!(
        deployments
            .get("web")
            .await
            .unwrap()
            .status
            .unwrap()
            .available_replicas,
        Some(1)
    );

    // Settled: no reconcile until the interval, the source or the spec changes; in particular the
    // controller's own status writes do not trigger more reconciles.
    let settled = api.get("app").await.unwrap().resource_version();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        api.get("app").await.unwrap().resource_version(),
        settled,
        "the Kustomization keeps being rewritten"
    );

    assert!(
        condition::find(&status.conditions, "Reconciling").is_none(),
        "{status:#?}"
    );

    // The manual trigger: a reconcile now, acknowledged in the status.
    let trigger =
        json!({"metadata": {"annotations": {"sluice.dev/requestedAt": "2026-11-23T10:00:00Z"}}});
    api.patch(
        "app",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&trigger),
    )
    .await
    .unwrap();
    wait_for(&api, "app", "handled the manual trigger", |s| {
        s.last_handled_reconcile_at.as_deref() == Some("2026-11-23T10:00:00Z")
    })
    .await;
    let flux = json!({"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "2026-11-23T11:00:00Z"}}});
    api.patch(
        "app",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&flux),
    )
    .await
    .unwrap();
    wait_for(&api, "app", "handled Flux's manual trigger", |s| {
        s.last_handled_reconcile_at.as_deref() == Some("2026-11-23T11:00:00Z")
    })
    .await;

    // A change and a deletion.
    work.write("deploy/config.yaml", &config("green"));
    work.git(&["rm", "-q", "deploy/app.yaml"]);
    let second = work.commit("second", &Signing::None);
    work.push(&["main"]);
    let rev2 = format!("main@sha1:{second}");
    wait_for(&api, "app", "applied the second revision", |s| {
        s.last_applied_revision.as_deref() == Some(rev2.as_str())
    })
    .await;
    assert_eq!(
        cms.get("settings").await.unwrap().data.unwrap()["color"],
        "green"
    );
    let web = deployments.get_opt("web").await.unwrap();
    assert!(
        web.is_none_or(|d| d.metadata.deletion_timestamp.is_some()),
        "the Deployment was not pruned"
    );

    // Broken YAML: BuildFailed naming the file and line; the last revision stays applied.
    work.write(
        "deploy/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata: [unclosed\n",
    );
    let third = work.commit("broken", &Signing::None);
    work.push(&["main"]);
    let rev3 = format!("main@sha1:{third}");
    let status = wait_for(&api, "app", "tried the broken revision", |s| {
        s.last_attempted_revision.as_deref() == Some(rev3.as_str())
    })
    .await;
    let cond = ready(&status).unwrap();
    assert_eq!(
        (cond.status, cond.reason.as_str()),
        (ConditionStatus::False, "BuildFailed"),
        "{cond:?}"
    );
    assert!(cond.message.contains("config.yaml:"), "{}", cond.message);
    assert_eq!(status.last_applied_revision.as_deref(), Some(rev2.as_str()));
    assert_eq!(
        cms.get("settings").await.unwrap().data.unwrap()["color"],
        "green"
    );

    // Events are published right after the status is written: wait for the last one.
    let events: Api<Event> = Api::namespaced(client.clone(), &n);
    let mut listed = Vec::new();
    for _ in 0..100 {
        listed = events
            .list(&ListParams::default().fields("involvedObject.kind=Kustomization"))
            .await
            .unwrap()
            .items;
        if listed
            .iter()
            .any(|e| e.reason.as_deref() == Some("BuildFailed"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reasons: Vec<String> = listed.iter().filter_map(|e| e.reason.clone()).collect();
    // Each revision has an Event of its own that says what changed.
    let second_event = listed
        .iter()
        .filter_map(|e| e.message.as_deref())
        .find(|m| m.contains(&rev2))
        .unwrap_or_else(|| panic!("no Event for {rev2}: {listed:#?}"));
    assert!(
        second_event.contains("Deployment") && second_event.contains("deleted"),
        "{second_event}"
    );
    assert!(
        reasons.iter().any(|r| r == "ReconciliationSucceeded"),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r == "BuildFailed"), "{reasons:?}");

    env.finish().await;
}

#[tokio::test]
async fn dependencies_cycles_and_missing_sources() {
    let env = Agent::start("ks-deps").await;
    let (client, work) = (env.client.clone(), &env.work);
    let n = env.ns.name().to_string();

    work.write("deploy/config.yaml", &config("blue"));
    work.commit("first", &Signing::None);
    work.push(&["main"]);
    env.create_source("app", "1s").await;
    let api: Api<Kustomization> = Api::namespaced(client.clone(), &n);

    // A source that does not exist: a clear condition, nothing applied.
    create(
        &client,
        &n,
        kustomization("orphan", &n, "nothing-here", json!({})),
    )
    .await;
    let status = wait_for(&api, "orphan", "reported its missing source", |s| {
        ready(s).is_some()
    })
    .await;
    let cond = ready(&status).unwrap();
    assert_eq!(cond.status, ConditionStatus::False);
    assert!(
        cond.message.contains("nothing-here") && cond.message.contains("not found"),
        "{cond:?}"
    );
    assert!(status.inventory.is_none());

    // A cycle stalls both members.
    create(
        &client,
        &n,
        kustomization(
            "loop-a",
            &n,
            "app",
            json!({"dependsOn": [{"name": "loop-b"}]}),
        ),
    )
    .await;
    create(
        &client,
        &n,
        kustomization(
            "loop-b",
            &n,
            "app",
            json!({"dependsOn": [{"name": "loop-a"}]}),
        ),
    )
    .await;
    for name in ["loop-a", "loop-b"] {
        let status = wait_for(&api, name, "stalled on the cycle", |s| {
            condition::find(&s.conditions, "Stalled").is_some()
        })
        .await;
        assert_eq!(ready(&status).unwrap().reason, "DependencyCycle");
        assert!(
            ready(&status).unwrap().message.contains("loop-a"),
            "{:?}",
            ready(&status)
        );
    }

    // `after` waits for `first`, which is created later.
    let mut after = kustomization(
        "after",
        &n,
        "app",
        json!({"dependsOn": [{"name": "first"}]}),
    );
    after["spec"]["path"] = json!("./deploy");
    after["spec"]["namePrefix"] = json!("after-");
    create(&client, &n, after).await;
    let status = wait_for(&api, "after", "waited for its dependency", |s| {
        ready(s).is_some()
    })
    .await;
    assert_eq!(
        ready(&status).unwrap().reason,
        "DependencyNotReady",
        "{:?}",
        ready(&status)
    );
    create(&client, &n, kustomization("first", &n, "app", json!({}))).await;
    wait_for(&api, "after", "applied after its dependency", |s| {
        s.last_applied_revision.is_some()
    })
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    assert!(cms.get_opt("after-settings").await.unwrap().is_some());

    env.finish().await;
}

#[tokio::test]
async fn service_account_impersonation_and_suspend() {
    let env = Agent::start("ks-tenant").await;
    let (client, work) = (env.client.clone(), &env.work);
    let n = env.ns.name().to_string();

    // A tenant service account that may manage ConfigMaps in its namespace, and nothing else.
    let applier = sluice::apply::applier::Applier::new(client.clone());
    let rbac = vec![
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "tenant", "namespace": n}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "tenant", "namespace": n},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "tenant", "namespace": n},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
            "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": n}]}),
    ];
    applier.apply(rbac, &Default::default()).await.unwrap();

    work.write("config-only/config.yaml", &config("blue"));
    work.write(
        "with-deployment/config.yaml",
        &config("red").replace("settings", "other"),
    );
    work.write("with-deployment/app.yaml", APP);
    let first = work.commit("first", &Signing::None);
    work.push(&["main"]);
    env.create_source("app", "1s").await;
    let api: Api<Kustomization> = Api::namespaced(client.clone(), &n);

    let tenant = |name: &str, path: &str| {
        kustomization(
            name,
            &n,
            "app",
            json!({"path": path, "serviceAccountName": "tenant"}),
        )
    };
    create(&client, &n, tenant("allowed", "./config-only")).await;
    create(&client, &n, tenant("denied", "./with-deployment")).await;
    let rev1 = format!("main@sha1:{first}");
    wait_for(&api, "allowed", "applied as the tenant", |s| {
        s.last_applied_revision.as_deref() == Some(rev1.as_str())
    })
    .await;
    let status = wait_for(&api, "denied", "was refused", |s| {
        s.last_attempted_revision.is_some()
    })
    .await;
    let cond = ready(&status).unwrap();
    assert_eq!(cond.status, ConditionStatus::False);
    assert!(
        cond.message.contains("forbidden") && cond.message.contains("Deployment"),
        "{cond:?}"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    assert!(cms.get_opt("settings").await.unwrap().is_some());
    assert!(
        cms.get_opt("other").await.unwrap().is_none(),
        "a refused set was partly applied"
    );

    // Suspended: a new revision is fetched but not applied, until the suspension ends.
    let suspend = |value: bool| json!({"spec": {"suspend": value}});
    api.patch(
        "allowed",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&suspend(true)),
    )
    .await
    .unwrap();
    work.write("config-only/config.yaml", &config("green"));
    let second = work.commit("second", &Signing::None);
    work.push(&["main"]);
    let rev2 = format!("main@sha1:{second}");
    let repos: Api<sluice::api::git_repository::GitRepository> =
        Api::namespaced(client.clone(), &n);
    for _ in 0..300 {
        let revision = repos
            .get("app")
            .await
            .unwrap()
            .status
            .and_then(|s| s.artifact)
            .map(|a| a.revision);
        if revision.as_deref() == Some(rev2.as_str()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        api.get("allowed")
            .await
            .unwrap()
            .status
            .unwrap()
            .last_applied_revision
            .as_deref(),
        Some(rev1.as_str())
    );
    assert_eq!(
        cms.get("settings").await.unwrap().data.unwrap()["color"],
        "blue"
    );
    api.patch(
        "allowed",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&suspend(false)),
    )
    .await
    .unwrap();
    wait_for(&api, "allowed", "applied after the suspension", |s| {
        s.last_applied_revision.as_deref() == Some(rev2.as_str())
    })
    .await;
    assert_eq!(
        cms.get("settings").await.unwrap().data.unwrap()["color"],
        "green"
    );

    env.finish().await;
}

/// The custom resource the CEL health checks judge: a Widget whose `status.phase` the test sets.
async fn install_widget_crd(client: &kube::Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.cel.sluice.test"},
        "spec": {"group": "cel.sluice.test", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                    "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}}]}});
    let applier = sluice::apply::applier::Applier::new(client.clone());
    applier.apply(vec![crd], &Default::default()).await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    assert!(
        crds.get_opt("widgets.cel.sluice.test")
            .await
            .unwrap()
            .is_some()
    );
}

fn widget(size: u32) -> String {
    format!(
        "apiVersion: cel.sluice.test/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: {size}\n"
    )
}

/// The Widgets of `ns`.
fn widgets(client: &kube::Client, ns: &str) -> Api<kube::api::DynamicObject> {
    use kube::api::{ApiResource, GroupVersionKind};
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("cel.sluice.test", "v1", "Widget"));
    Api::namespaced_with(client.clone(), ns, &resource)
}

async fn set_widget_phase(client: &kube::Client, ns: &str, phase: &str) {
    use kube::api::{Patch, PatchParams};
    widgets(client, ns)
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": phase}})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn health_check_expressions_decide_custom_resources() {
    let env = Agent::start("ks-cel").await;
    let client = env.client.clone();
    let n = env.ns().to_string();
    install_widget_crd(&client).await;

    let phase = |value: &str| format!("status.?phase.orValue('') == '{value}'");
    let exprs = json!([{"apiVersion": "cel.sluice.test/v1", "kind": "Widget",
        "inProgress": phase("Provisioning"), "failed": phase("Broken"), "current": phase("Ready")}]);
    let first = env.push(&[("deploy/widget.yaml", &widget(1))]);
    env.create_source("app", "1s").await;
    env.create_kustomization(
        "app",
        "app",
        "./deploy",
        json!({"wait": true, "healthCheckExprs": exprs}),
    )
    .await;

    // Applied, but not Ready while the expressions say the Widget is not ready.
    let widgets = widgets(&client, &n);
    for _ in 0..300 {
        if widgets.get_opt("w1").await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_widget_phase(&client, &n, "Provisioning").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let api: Api<Kustomization> = Api::namespaced(client.clone(), &n);
    let waiting = api.get("app").await.unwrap().status.unwrap_or_default();
    assert!(waiting.last_applied_revision.is_none(), "{waiting:#?}");
    assert!(
        ready(&waiting).is_none_or(|c| c.status != ConditionStatus::True),
        "{waiting:#?}"
    );

    set_widget_phase(&client, &n, "Ready").await;
    let status = env.wait_applied("app", &first).await;
    assert_eq!(ready(&status).unwrap().status, ConditionStatus::True);
    assert_eq!(
        condition::find(&status.conditions, "Healthy")
            .unwrap()
            .status,
        ConditionStatus::True
    );

    // `failed` holds: the health check fails at once, naming the object and the expression.
    set_widget_phase(&client, &n, "Broken").await;
    let second = env.push(&[("deploy/widget.yaml", &widget(2))]);
    let status = env
        .wait_ks("app", "failed its health check", |s| {
            s.last_attempted_revision.as_deref() == Some(second.as_str())
                && ready(s).is_some_and(|c| c.reason == "HealthCheckFailed")
        })
        .await;
    let message = &ready(&status).unwrap().message;
    assert!(
        message.contains(&format!("Widget/{n}/w1"))
            && message.contains("failed expression")
            && message.contains("'Broken'"),
        "{message}"
    );
    assert!(!message.contains("timed out"), "{message}");

    // An expression that does not compile: not Ready, naming kind and expression; nothing applied.
    let bad = json!([{"apiVersion": "cel.sluice.test/v1", "kind": "Widget", "current": "status.phase =="}]);
    env.push(&[("other/config.yaml", &config("blue"))]);
    env.create_kustomization(
        "bad",
        "app",
        "./other",
        json!({"wait": true, "healthCheckExprs": bad}),
    )
    .await;
    let status = env
        .wait_ks("bad", "refused its expression", |s| ready(s).is_some())
        .await;
    let cond = ready(&status).unwrap();
    assert_eq!(
        (cond.status, cond.reason.as_str()),
        (ConditionStatus::False, "InvalidSpec"),
        "{cond:?}"
    );
    assert!(
        cond.message.contains("Widget")
            && cond.message.contains("`status.phase ==`")
            && cond.message.contains("does not compile"),
        "{}",
        cond.message
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    assert!(cms.get_opt("settings").await.unwrap().is_none());
    assert!(status.inventory.is_none());

    env.finish().await;
}

#[tokio::test]
async fn fields_no_schema_declares_are_refused_by_name_and_nothing_is_applied() {
    let env = Agent::start("ks-strict").await;
    let client = env.client.clone();
    let n = env.ns().to_string();

    let typo = APP.replace("replicas: 1", "replica: 2");
    let child = "apiVersion: sluice.dev/v1alpha1\nkind: Kustomization\nmetadata:\n  name: child\nspec:\n  interval: 1m\n  sourceRef:\n    name: app\n  suspend: true\n  prun: true\n";
    let first = env.push(&[
        ("deploy/app.yaml", typo.as_str()),
        ("deploy/config.yaml", &config("blue")),
        ("deploy/child.yaml", child),
    ]);
    env.create_source("app", "1s").await;
    env.create_kustomization("app", "app", "./deploy", json!({"prune": true}))
        .await;
    let status = env
        .wait_ks("app", "tried the first revision", |s| {
            s.last_attempted_revision.as_deref() == Some(first.as_str())
        })
        .await;
    let cond = ready(&status).unwrap();
    assert_eq!(cond.status, ConditionStatus::False, "{cond:?}");
    for says in [
        &format!("Deployment/{n}/web: .spec.replica: field not declared in schema"),
        &format!("Kustomization/{n}/child: .spec.prun: field not declared in schema"),
        "nothing was applied",
    ] {
        assert!(cond.message.contains(says), "{says}: {}", cond.message);
    }
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let kustomizations: Api<Kustomization> = Api::namespaced(client.clone(), &n);
    assert!(cms.get_opt("settings").await.unwrap().is_none());
    assert!(deployments.get_opt("web").await.unwrap().is_none());
    assert!(kustomizations.get_opt("child").await.unwrap().is_none());
    assert!(status.last_applied_revision.is_none());

    // Spelled right, the same set applies.
    let fixed = env.push(&[
        ("deploy/app.yaml", APP),
        ("deploy/child.yaml", &child.replace("prun:", "prune:")),
    ]);
    env.wait_applied("app", &fixed).await;
    assert!(cms.get_opt("settings").await.unwrap().is_some());
    assert!(
        kustomizations
            .get_opt("child")
            .await
            .unwrap()
            .unwrap()
            .spec
            .prune
    );

    env.finish().await;
}
