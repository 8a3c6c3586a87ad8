//! The tenant-escape suite on the real API server with real RBAC. Two tenants, A and B, each own
//! a namespace with a ServiceAccount bound to a namespaced Role, and each namespace has an agent
//! in per-namespace mode; the two agents share one storage directory, as one agent's sources do.
//! A's agent runs as the cluster admin (the most powerful agent there is) with
//! `--default-service-account`: whatever stops tenant A is A's own identity, not the agent's lack
//! of rights. B's agent runs as a ServiceAccount holding only a namespaced Role (so any
//! cluster-wide list or watch in the agent would fail) with `--default-service-account` and
//! `--no-cross-namespace-refs`. Tenant A tries every escape of docs/security.md; each is refused
//! with a clear condition (a prune A may not do fails its reconcile with `PruneFailed`), and an
//! admin client finds nothing of B's, and nothing cluster-scoped, changed. Alerts, Receivers and
//! Canaries naming another namespace are `AccessDenied` on B's agent and work on A's.

mod support;

use k8s_openapi::api::core::v1::{ConfigMap, Event};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sluice::api::condition::ConditionStatus;
use sluice::api::git_repository::GitRepository;
use sluice::api::kustomization::Kustomization;
use support::agent::{self, ready};
use support::git_servers::GitDaemon;
use support::git_signing::{Signing, WorkRepo};

/// The agent's Role: its own kinds and their status, Deployments (which Canaries watch), Events,
/// Secrets of sources, and acting as the namespace's ServiceAccounts. Nothing cluster-wide.
fn agent_rbac(ns: &str) -> Vec<Value> {
    json!([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sluice", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "sluice-agent", "namespace": ns},
         "rules": [
            {"apiGroups": ["sluice.dev"], "resources": ["gitrepositories", "kustomizations", "gitrepositories/status", "kustomizations/status",
                "alerts", "providers", "receivers", "canaries", "metrictemplates", "alerts/status", "providers/status", "receivers/status", "canaries/status"],
             "verbs": ["get", "list", "watch", "patch", "update"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch", "update"]},
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["impersonate"]}
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "sluice-agent", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "sluice-agent"},
         "subjects": [{"kind": "ServiceAccount", "name": "sluice", "namespace": ns}]}
    ])
    .as_array()
    .unwrap()
    .clone()
}

/// The tenant's Role: ConfigMaps, reading its sources and Kustomizations, writing their status
/// (as tenants often may). No Secrets, nothing elsewhere.
fn tenant_rbac(ns: &str) -> Vec<Value> {
    json!([
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "tenant", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "tenant", "namespace": ns},
         "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
            {"apiGroups": ["sluice.dev"], "resources": ["gitrepositories", "kustomizations"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["sluice.dev"], "resources": ["gitrepositories/status", "kustomizations/status"], "verbs": ["get", "patch"]}
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "tenant", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant"},
         "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": ns}]}
    ])
    .as_array()
    .unwrap()
    .clone()
}

fn config_map(name: &str, ns: Option<&str>, value: &str, labels: Value) -> String {
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"value": value}});
    if let Some(ns) = ns {
        cm["metadata"]["namespace"] = json!(ns);
    }
    serde_json::to_string(&cm).unwrap()
}

fn git_repository(name: &str, url: &str, extra: Value) -> Value {
    let mut spec = json!({"url": url, "interval": "1s", "ref": {"branch": "main"}});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository", "metadata": {"name": name}, "spec": spec})
}

fn kustomization(name: &str, path: &str, extra: Value) -> Value {
    let mut spec = json!({"interval": "1m", "retryInterval": "2s", "timeout": "30s",
        "sourceRef": {"kind": "GitRepository", "name": "app"}, "path": path, "prune": true});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": name}, "spec": spec})
}

async fn failed_with(api: &Api<Kustomization>, name: &str, reason: &str, says: &[&str]) {
    let k = agent::wait_for(api, name, &format!("failed with {reason}"), |k| {
        k.status
            .as_ref()
            .and_then(|s| ready(&s.conditions))
            .is_some_and(|c| c.status == ConditionStatus::False && c.reason == reason)
    })
    .await;
    let cond = ready(&k.status.as_ref().unwrap().conditions)
        .unwrap()
        .clone();
    for text in says {
        assert!(
            cond.message.contains(text),
            "{name}: {text:?} not in {:?}",
            cond.message
        );
    }
}

/// Waits until the `Ready` condition of the sluice object `kind` `ns/name` has `reason`, and
/// checks that its message says each of `says` and whether it is `Stalled`.
async fn ready_because(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    (reason, stalled): (&str, bool),
    says: &[&str],
) {
    use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk("sluice.dev", "v1alpha1", kind));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let condition = |o: &DynamicObject, type_: &str| -> Option<Value> {
        o.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    };
    let found = agent::wait_for(&api, name, &format!("{kind} Ready because {reason}"), |o| {
        condition(o, "Ready").is_some_and(|c| c["reason"] == reason)
    })
    .await;
    let ready = condition(&found, "Ready").unwrap();
    for text in says {
        assert!(
            ready["message"].as_str().unwrap().contains(text),
            "{kind} {ns}/{name}: {text:?} not in {ready}"
        );
    }
    let is_stalled = condition(&found, "Stalled").is_some_and(|c| c["status"] == "True");
    assert_eq!(
        is_stalled, stalled,
        "{kind} {ns}/{name}: {:#}",
        found.data["status"]
    );
}

/// Waits until a Warning Event about Kustomization `ns/name` has `reason` and mentions `says`.
async fn warning_event(client: &Client, ns: &str, name: &str, reason: &str, says: &str) {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let selector = format!("involvedObject.kind=Kustomization,involvedObject.name={name}");
    let mut seen = Vec::new();
    for _ in 0..150 {
        let list = events
            .list(&ListParams::default().fields(&selector))
            .await
            .unwrap();
        if list.items.iter().any(|e| {
            e.type_.as_deref() == Some("Warning")
                && e.reason.as_deref() == Some(reason)
                && e.message.as_deref().is_some_and(|m| m.contains(says))
        }) {
            return;
        }
        seen = list
            .items
            .into_iter()
            .map(|e| format!("{:?} {:?}: {:?}", e.type_, e.reason, e.message))
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("no Warning Event {reason} mentioning {says:?} about {ns}/{name}; saw {seen:#?}");
}

#[tokio::test]
async fn a_tenant_cannot_escape_its_namespace_through_the_agent() {
    let client = support::client().await;
    let admin = agent::admin_config().await;
    support::install_crds(&client).await;
    let (ns_a, ns_b) = (
        support::TestNamespace::new(&client, "tenant-a").await,
        support::TestNamespace::new(&client, "tenant-b").await,
    );
    let (a, b) = (ns_a.name().to_string(), ns_b.name().to_string());
    let applier = sluice::apply::applier::Applier::new(client.clone());
    for ns in [&a, &b] {
        let mut rbac = agent_rbac(ns);
        rbac.extend(tenant_rbac(ns));
        applier.apply(rbac, &Default::default()).await.unwrap();
    }
    let storage = tempfile::tempdir().unwrap();
    let lockdown = [
        "--default-service-account",
        "tenant",
        "--no-cross-namespace-refs",
    ];
    let b_identity = agent::service_account_config(&admin, &b, "sluice").await;
    let agents = [
        agent::Agent::start_in(
            admin.clone(),
            &a,
            storage.path(),
            &["--default-service-account", "tenant"],
        )
        .await,
        agent::Agent::start_in(b_identity, &b, storage.path(), &lockdown).await,
    ];
    let daemon = GitDaemon::start();

    // Tenant B: a source, a Kustomization (no serviceAccountName: it acts as B's tenant account)
    // and a Secret.
    daemon.create_repo("b.git");
    let work_b = WorkRepo::new(&daemon.url("b.git"));
    work_b.write(
        "deploy/config.yaml",
        &config_map("b-config", Some(&b), "b-1", json!({})),
    );
    work_b.commit("b", &Signing::None);
    work_b.push(&["main"]);
    agent::create(
        &client,
        &b,
        git_repository("app", &daemon.url("b.git"), json!({})),
    )
    .await
    .unwrap();
    agent::create(&client, &b, kustomization("app", "./deploy", json!({})))
        .await
        .unwrap();
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "b-secret"}, "stringData": {"TOKEN": "b-only"}}))
    .unwrap();
    Api::namespaced(client.clone(), &b)
        .create(&Default::default(), &secret)
        .await
        .unwrap();
    let kustomizations_b: Api<Kustomization> = Api::namespaced(client.clone(), &b);
    let b_app = agent::wait_for(&kustomizations_b, "app", "ready", |k| {
        k.status
            .as_ref()
            .and_then(|s| ready(&s.conditions))
            .is_some_and(|c| c.status == ConditionStatus::True)
    })
    .await;
    let b_configs: Api<ConfigMap> = Api::namespaced(client.clone(), &b);
    let b_config = agent::wait_for(&b_configs, "b-config", "applied for B", |_| true).await;
    let b_source: Api<GitRepository> = Api::namespaced(client.clone(), &b);
    let b_artifact = b_source
        .get("app")
        .await
        .unwrap()
        .status
        .unwrap()
        .artifact
        .unwrap();

    // Tenant A: one source with a directory per attempt.
    daemon.create_repo("a.git");
    let work_a = WorkRepo::new(&daemon.url("a.git"));
    work_a.write(
        "ok/config.yaml",
        &config_map("a-config", Some(&a), "a-1", json!({})),
    );
    work_a.write(
        "into-b/config.yaml",
        &config_map("planted", Some(&b), "x", json!({})),
    );
    work_a.write(
        "cluster-admin/binding.yaml",
        &serde_json::to_string(&json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": format!("{a}-escape")},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": a}]})).unwrap(),
    );
    work_a.write(
        "no-account/role.yaml",
        &serde_json::to_string(
            &json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": format!("{a}-escape")}, "rules": []}),
        )
        .unwrap(),
    );
    let b_labels = json!({"sluice.dev/name": "app", "sluice.dev/namespace": b});
    work_a.write(
        "copy-labels/config.yaml",
        &config_map("b-config", Some(&b), "taken", b_labels),
    );
    work_a.write(
        "substitute/config.yaml",
        &config_map("vars", Some(&a), "${TOKEN}", json!({})),
    );
    work_a.commit("a", &Signing::None);
    work_a.push(&["main"]);
    agent::create(
        &client,
        &a,
        git_repository("app", &daemon.url("a.git"), json!({})),
    )
    .await
    .unwrap();
    let kustomizations_a: Api<Kustomization> = Api::namespaced(client.clone(), &a);
    // An admin-only Secret in A's own namespace, which A's account may not read.
    let admin_only: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "admin-only"}, "stringData": {"TOKEN": "admin"}}))
    .unwrap();
    Api::namespaced(client.clone(), &a)
        .create(&Default::default(), &admin_only)
        .await
        .unwrap();

    let attempts = [
        kustomization("ok", "./ok", json!({})),
        kustomization("into-b", "./into-b", json!({})),
        kustomization(
            "cluster-admin",
            "./cluster-admin",
            json!({"serviceAccountName": "tenant"}),
        ),
        kustomization("no-account", "./no-account", json!({})),
        kustomization("copy-labels", "./copy-labels", json!({})),
        kustomization(
            "substitute",
            "./substitute",
            json!({"postBuild": {"substituteFrom": [{"kind": "Secret", "name": "admin-only"}]}}),
        ),
        kustomization(
            "cross-source",
            "./ok",
            json!({"sourceRef": {"kind": "GitRepository", "name": "app", "namespace": b}}),
        ),
        kustomization(
            "cross-dependency",
            "./ok",
            json!({"dependsOn": [{"name": "app", "namespace": b}]}),
        ),
    ];
    for k in attempts {
        agent::create(&client, &a, k).await.unwrap();
    }
    // A's own work goes through.
    let a_configs: Api<ConfigMap> = Api::namespaced(client.clone(), &a);
    agent::wait_for(&a_configs, "a-config", "applied for A", |_| true).await;

    let tenant_a = format!("system:serviceaccount:{a}:tenant");
    failed_with(
        &kustomizations_a,
        "into-b",
        "ReconciliationFailed",
        &["forbidden", &tenant_a, &b],
    )
    .await;
    failed_with(
        &kustomizations_a,
        "cluster-admin",
        "ReconciliationFailed",
        &["forbidden", "ClusterRoleBinding"],
    )
    .await;
    failed_with(
        &kustomizations_a,
        "no-account",
        "ReconciliationFailed",
        &["forbidden", &tenant_a, "ClusterRole"],
    )
    .await;
    failed_with(
        &kustomizations_a,
        "copy-labels",
        "ReconciliationFailed",
        &["forbidden", &b],
    )
    .await;
    failed_with(
        &kustomizations_a,
        "substitute",
        "BuildFailed",
        &["admin-only", "forbidden"],
    )
    .await;
    // A reference to B's source or Kustomization is read as tenant A, who may not.
    failed_with(
        &kustomizations_a,
        "cross-source",
        "ArtifactFailed",
        &["forbidden", &format!("GitRepository {b}/app")],
    )
    .await;
    failed_with(
        &kustomizations_a,
        "cross-dependency",
        "DependencyNotReady",
        &["forbidden", &format!("dependency {b}/app")],
    )
    .await;
    // On B's locked-down agent such references are refused before anything is read.
    agent::create(
        &client,
        &b,
        kustomization(
            "cross",
            "./ok",
            json!({"sourceRef": {"kind": "GitRepository", "name": "app", "namespace": a},
                "dependsOn": [{"name": "ok", "namespace": a}]}),
        ),
    )
    .await
    .unwrap();
    failed_with(
        &kustomizations_b,
        "cross",
        "AccessDenied",
        &[
            "--no-cross-namespace-refs",
            &format!("spec.sourceRef {a}/app"),
            &format!("spec.dependsOn[0] {a}/ok"),
        ],
    )
    .await;

    // Copying B's owner labels gains nothing when the object leaves A's set either: A cannot
    // prune what B owns.
    work_a.git(&["rm", "-q", "copy-labels/config.yaml"]);
    work_a.write(
        "copy-labels/other.yaml",
        &config_map("a-other", Some(&a), "1", json!({})),
    );
    let second = work_a.commit("drop the copied object", &Signing::None);
    work_a.push(&["main"]);
    let second = format!("main@sha1:{second}");
    let copied = agent::wait_for(
        &kustomizations_a,
        "copy-labels",
        "applied without the copied object",
        |k| {
            k.status
                .as_ref()
                .and_then(|s| s.last_applied_revision.as_deref())
                == Some(second.as_str())
        },
    )
    .await;
    // The refused object never entered A's inventory (the failed apply never reached it), so
    // dropping it from the set leaves nothing to prune.
    let inventory = copied.status.unwrap().inventory.unwrap();
    let ids: Vec<&str> = inventory.entries.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(
        ids,
        [format!("{a}_a-other__ConfigMap")],
        "copy-labels inventory"
    );

    // A patches its own Kustomization's inventory to hold B's object: the next prune cannot
    // touch it (A's account may not even read it), and says so: the reconcile fails with
    // PruneFailed naming the object, a Warning Event says it too, and the entry stays in the
    // inventory to be tried again, while the rest of A's set is still applied.
    let tenant_client =
        Client::try_from(agent::service_account_config(&admin, &a, "tenant").await).unwrap();
    let own: Api<Kustomization> = Api::namespaced(tenant_client.clone(), &a);
    let poisoned = json!({"status": {"inventory": {"entries": [
        {"id": format!("{b}_b-config__ConfigMap"), "v": "v1"},
        {"id": format!("{a}_a-config__ConfigMap"), "v": "v1"}
    ]}}});
    own.patch_status("ok", &PatchParams::default(), &Patch::Merge(&poisoned))
        .await
        .unwrap();
    kustomizations_a
        .patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"annotations": {"sluice.dev/requestedAt": "poison"}}}),
            ),
        )
        .await
        .unwrap();
    let planted = format!("ConfigMap/{b}/b-config");
    failed_with(
        &kustomizations_a,
        "ok",
        "PruneFailed",
        &[
            "1 object could not be pruned",
            &format!("{planted}: reading it failed"),
            "forbidden",
            &tenant_a,
        ],
    )
    .await;
    let ok = kustomizations_a.get("ok").await.unwrap();
    let status = ok.status.unwrap();
    assert_eq!(status.last_handled_reconcile_at.as_deref(), Some("poison"));
    let kept: Vec<&str> = status
        .inventory
        .as_ref()
        .unwrap()
        .entries
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert!(
        kept.contains(&format!("{b}_b-config__ConfigMap").as_str())
            && kept.contains(&format!("{a}_a-config__ConfigMap").as_str()),
        "{kept:?}"
    );
    warning_event(&client, &a, "ok", "PruneFailed", &planted).await;
    let still = b_configs.get("b-config").await.unwrap();
    assert_eq!(still.resource_version(), b_config.resource_version());

    // A points its own GitRepository's status at B's artifact: the artifact is looked up under
    // A's source, where it is not.
    agent::create(
        &client,
        &a,
        git_repository("stolen", &daemon.url("a.git"), json!({"suspend": true})),
    )
    .await
    .unwrap();
    let a_sources: Api<GitRepository> = Api::namespaced(tenant_client.clone(), &a);
    let forged = json!({"status": {"artifact": b_artifact}});
    a_sources
        .patch_status("stolen", &PatchParams::default(), &Patch::Merge(&forged))
        .await
        .unwrap();
    agent::create(
        &client,
        &a,
        kustomization(
            "stolen",
            "./deploy",
            json!({"sourceRef": {"kind": "GitRepository", "name": "stolen"}}),
        ),
    )
    .await
    .unwrap();
    failed_with(
        &kustomizations_a,
        "stolen",
        "ArtifactFailed",
        &["not in storage"],
    )
    .await;

    // The other controllers honour --no-cross-namespace-refs the same way: on B's locked-down
    // agent an Alert watching another namespace's (or every namespace's) objects, a Receiver
    // triggering another namespace's objects and a Canary using another namespace's
    // MetricTemplate and alert Provider are refused before anything is read; on A's agent the
    // same references (to B's namespace) go through as before.
    let crossing = |to: &str| {
        [
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Alert", "metadata": {"name": "cross"},
                "spec": {"providerRef": {"name": "hook"}, "eventSources": [
                    {"kind": "Kustomization", "name": "*", "namespace": to},
                    {"kind": "GitRepository", "name": "app", "namespace": "*"}]}}),
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Receiver", "metadata": {"name": "cross"},
                "spec": {"type": "generic", "secretRef": {"name": "hook-token"},
                    "resources": [{"kind": "Kustomization", "name": "app", "namespace": to}]}}),
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Canary", "metadata": {"name": "cross"},
                "spec": {"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "service": {"port": 80},
                    "analysis": {"interval": "10s", "threshold": 2, "stepWeight": 50,
                        "metrics": [{"name": "latency", "templateRef": {"name": "latency", "namespace": to},
                            "thresholdRange": {"max": 500}}],
                        "alerts": [{"name": "on-call", "providerRef": {"name": "hook", "namespace": to}}]}}}),
            json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Provider", "metadata": {"name": "hook"},
                "spec": {"type": "generic", "address": "http://127.0.0.1:9/"}}),
        ]
    };
    for (ns, to) in [(&b, &a), (&a, &b)] {
        for object in crossing(to) {
            agent::create(&client, ns, object).await.unwrap();
        }
        let token: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {"name": "hook-token"}, "stringData": {"token": "t"}}))
        .unwrap();
        Api::namespaced(client.clone(), ns)
            .create(&Default::default(), &token)
            .await
            .unwrap();
    }
    let denied = ("AccessDenied", true);
    let locked = "--no-cross-namespace-refs";
    let (source_a, any_app) = (
        format!("spec.eventSources[0] {a}/*"),
        "spec.eventSources[1] */app",
    );
    ready_because(
        &client,
        &b,
        "Alert",
        "cross",
        denied,
        &[locked, &source_a, any_app],
    )
    .await;
    let resource_a = format!("spec.resources[0] {a}/app");
    ready_because(
        &client,
        &b,
        "Receiver",
        "cross",
        denied,
        &[locked, &resource_a],
    )
    .await;
    let template_a = format!("spec.analysis.metrics[0].templateRef {a}/latency");
    let provider_a = format!("spec.analysis.alerts[0].providerRef {a}/hook");
    ready_because(
        &client,
        &b,
        "Canary",
        "cross",
        denied,
        &[locked, &template_a, &provider_a],
    )
    .await;
    let works = ("Succeeded", false);
    ready_because(&client, &a, "Alert", "cross", works, &["Provider hook"]).await;
    ready_because(&client, &a, "Receiver", "cross", works, &["/hook/"]).await;
    // Past the reference check, A's Canary waits for its target like any other.
    let waits = ("TargetNotFound", false);
    ready_because(&client, &a, "Canary", "cross", waits, &["web not found"]).await;

    // Checked with the admin client: B's object is as B's agent applied it, B's namespace holds
    // nothing new, A's namespace holds nothing of B's, and nothing cluster-scoped appeared.
    let now = b_configs.get("b-config").await.unwrap();
    assert_eq!(
        now.resource_version(),
        b_config.resource_version(),
        "B's ConfigMap was changed: {now:?}"
    );
    assert_eq!(now.data.unwrap()["value"], "b-1");
    let names = |list: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        let mut names: Vec<String> = list
            .items
            .into_iter()
            .map(|c| c.name_any())
            .filter(|n| n != "kube-root-ca.crt")
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(b_configs.list(&Default::default()).await.unwrap()),
        vec!["b-config"]
    );
    let a_names = names(a_configs.list(&Default::default()).await.unwrap());
    assert_eq!(
        a_names,
        vec!["a-config", "a-other"],
        "A's namespace holds {a_names:?}"
    );
    let escape = format!("{a}-escape");
    assert!(
        Api::<ClusterRoleBinding>::all(client.clone())
            .get_opt(&escape)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<ClusterRole>::all(client.clone())
            .get_opt(&escape)
            .await
            .unwrap()
            .is_none()
    );
    let b_now = kustomizations_b.get("app").await.unwrap();
    assert_eq!(
        b_now.status.unwrap().inventory,
        b_app.status.unwrap().inventory
    );

    for agent in agents {
        assert!(agent.is_running(), "an agent stopped");
        agent.stop();
    }
    ns_a.cleanup(&client).await;
    ns_b.cleanup(&client).await;
}
