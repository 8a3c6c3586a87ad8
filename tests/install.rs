//! `sluice install` on the real node, from the agent's own image: the Dockerfile built with
//! buildah on a base made here and the sluice binary of this test run, pushed to the cluster's
//! registry. The agent Pod uses in-cluster configuration and its own ServiceAccount and
//! reconciles a GitRepository served by a git daemon inside the cluster's network; a cluster-wide
//! install refuses a conflicting namespace install; a namespace install cannot read or change
//! another namespace.

mod support;

use std::process::Output;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use sluice::api::condition::{self, ConditionStatus};
use sluice::api::git_repository::GitRepository;
use sluice::api::image_policy::ImagePolicy;
use sluice::api::kustomization::Kustomization;
use support::git_servers::GitDaemon;
use support::git_signing::{Signing, WorkRepo};
use support::image as images;
use support::node::{self, eventually};

/// The two installs share the cluster's CRDs and would see each other's agent as a conflict.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const READY: Duration = Duration::from_secs(240);

fn sluice(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env("KUBECONFIG", support::kubeconfig())
        .env_remove("RUST_LOG")
        .output()
        .expect("sluice runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The agent's image for this test run: a tag of its own, so the node never runs a stale one.
fn image() -> String {
    node::push_agent(
        env!("CARGO_BIN_EXE_sluice"),
        &format!("t{}", std::process::id()),
    )
}

/// `sluice install` onto the real node with the registry's pull secret.
fn install(ns: &str, mode: &str, image: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "install",
        "--namespace",
        ns,
        "--mode",
        mode,
        "--image",
        image,
        "--image-pull-secret",
        "registry",
        "--node-selector",
        "sluice.dev/node=real",
        "--toleration",
        "sluice.dev/node=real:NoSchedule",
        "--timeout",
        "4m",
    ];
    args.extend_from_slice(extra);
    sluice(&args)
}

const CONFIG: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n";

/// A repository `app.git` with `deploy/config.yaml`, served where pods reach it.
fn repository(node_ip: &str) -> (GitDaemon, String) {
    let daemon = GitDaemon::start_in_cluster(node_ip);
    daemon.create_repo("app.git");
    let work = WorkRepo::new(&daemon.url("app.git"));
    work.write("deploy/config.yaml", CONFIG);
    let commit = work.commit("first", &Signing::None);
    work.push(&["main"]);
    (daemon, format!("main@sha1:{commit}"))
}

async fn create(client: &Client, ns: &str, manifest: Value) {
    let kind = manifest["kind"].as_str().unwrap().to_string();
    let resource = kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
        "sluice.dev",
        "v1alpha1",
        &kind,
    ));
    let api: Api<kube::api::DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let object: kube::api::DynamicObject = serde_json::from_value(manifest).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

fn git_repository(name: &str, url: &str) -> Value {
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository", "metadata": {"name": name},
        "spec": {"url": url, "interval": "5s", "ref": {"branch": "main"}}})
}

fn kustomization(name: &str, source: Value, target: &str) -> Value {
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": name},
        "spec": {"interval": "1m", "retryInterval": "5s", "sourceRef": source, "path": "./deploy",
            "prune": true, "targetNamespace": target}})
}

/// The Ready condition of Kustomization `name`, once it has status `want` and its message says
/// `says`.
async fn ks_ready(
    client: &Client,
    ns: &str,
    name: &str,
    want: ConditionStatus,
    says: &str,
) -> condition::Condition {
    let api: Api<Kustomization> = Api::namespaced(client.clone(), ns);
    let what = format!("Kustomization {ns}/{name} Ready={want:?} saying {says:?}");
    eventually(READY, &what, || async {
        let k = api.get(name).await.map_err(|e| e.to_string())?;
        let status = k.status.unwrap_or_default();
        condition::find(&status.conditions, "Ready")
            .filter(|c| c.status == want && c.message.contains(says))
            .cloned()
            .ok_or_else(|| format!("{status:?}"))
    })
    .await
}

/// The agent's only Pod, once it runs.
async fn agent_pod(client: &Client, ns: &str) -> Pod {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app.kubernetes.io/name=sluice"))
        .await
        .unwrap()
        .items;
    assert_eq!(pods.len(), 1, "one agent Pod");
    pods.into_iter().next().unwrap()
}

/// Removes the agent (and waits until its Deployment is gone, so a later install sees no
/// conflict), the cluster-wide binding and the namespaces.
async fn uninstall(client: &Client, namespaces: Vec<support::TestNamespace>) {
    for ns in &namespaces {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
        let _ = deployments
            .delete("sluice", &DeleteParams::foreground())
            .await;
        eventually(
            Duration::from_secs(60),
            "the agent's Deployment gone",
            || async {
                match deployments.get_opt("sluice").await {
                    Ok(None) => Ok(()),
                    other => Err(format!("{:?}", other.map(|d| d.map(|d| d.metadata.name)))),
                }
            },
        )
        .await;
    }
    let _ = Api::<ClusterRoleBinding>::all(client.clone())
        .delete("sluice", &DeleteParams::default())
        .await;
    for ns in namespaces {
        ns.cleanup(client).await;
    }
}

/// Whether the API server lets `user` do `verb` on `resource` (of `group`) in `namespace`
/// (`None`: cluster-wide).
async fn allowed(
    client: &Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
) -> bool {
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": user, "groups": ["system:serviceaccounts", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "group": group, "resource": resource, "namespace": namespace}},
    }))
    .unwrap();
    Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .unwrap()
        .status
        .is_some_and(|s| s.allowed)
}

#[tokio::test]
async fn a_cluster_install_runs_the_agent_on_the_real_node_and_reconciles_from_git() {
    let _serial = SERIAL.lock().await;
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "install").await;
    let n = ns.name().to_string();
    node::create_pull_secret(&client, &n).await;
    let image = image();
    let node_ip = node::real_node_ip(&client).await;
    let (daemon, revision) = repository(&node_ip);

    // Cluster-wide rights, but only this namespace watched: the other tests' objects are theirs.
    let watch = format!("--agent-arg=--namespace={n}");
    let out = install(&n, "cluster", &image, &[&watch]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "sluice install failed:\n{stderr}");
    for step in [
        "► installing sluice",
        "✔ no conflicting agent",
        "CustomResourceDefinition/kustomizations.sluice.dev",
        "Deployment/",
        "✔ sluice is ready (1/1 replicas available)",
    ] {
        assert!(stderr.contains(step), "no {step:?} in:\n{stderr}");
    }

    // The Pod: on the real node, as its own ServiceAccount, read-only root filesystem, non-root.
    let pod = agent_pod(&client, &n).await;
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.node_name.as_deref(), Some("real-node-0"));
    assert_eq!(spec.service_account_name.as_deref(), Some("sluice"));
    let security = spec.containers[0].security_context.clone().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(spec.security_context.unwrap().run_as_non_root, Some(true));

    // It reconciles a GitRepository from the daemon and applies what it holds.
    create(&client, &n, git_repository("app", &daemon.url("app.git"))).await;
    create(
        &client,
        &n,
        kustomization("app", json!({"kind": "GitRepository", "name": "app"}), &n),
    )
    .await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &n);
    let settings = eventually(READY, "the ConfigMap applied by the agent", || async {
        cms.get_opt("settings")
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "not yet".to_string())
    })
    .await;
    assert_eq!(settings.labels()["sluice.dev/name"], "app");
    ks_ready(&client, &n, "app", ConditionStatus::True, &revision).await;
    let source = Api::<GitRepository>::namespaced(client.clone(), &n)
        .get("app")
        .await
        .unwrap();
    assert_eq!(source.status.unwrap().artifact.unwrap().revision, revision);

    // The Pod did it: it holds the Lease, counts the reconciles, logs them as JSON.
    let pod_name = pod.name_any();
    let lease = Api::<Lease>::namespaced(client.clone(), &n)
        .get("sluice-leader")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity.as_deref(),
        Some(pod_name.as_str())
    );
    let pod_ip = agent_pod(&client, &n).await.status.unwrap().pod_ip.unwrap();
    let metrics = node::cluster_exec(&["curl", "-sf", &format!("http://{pod_ip}:8080/metrics")]);
    let metrics = text(&metrics.stdout);
    for line in [
        r#"sluice_reconcile_total{kind="Kustomization",result="success"}"#,
        r#"sluice_git_requests_total{operation="fetch",result="success"}"#,
        "sluice_leader 1",
    ] {
        assert!(metrics.contains(line), "no {line} in:\n{metrics}");
    }
    let logs = node::kubectl(&["logs", "-n", &n, &pod_name]);
    let logs = text(&logs.stdout);
    let reconciled = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["message"] == "reconciled"
                && l["kind"] == "Kustomization"
                && l["revision"] == revision.as_str()
        })
        .unwrap_or_else(|| panic!("no JSON line for the Kustomization's reconcile in:\n{logs}"));
    assert_eq!(reconciled["namespace"], n.as_str());
    assert_eq!(reconciled["name"], "app");
    assert_eq!(reconciled["level"], "INFO");

    // The Pod reaches the cluster's registry through its Service (TLS with the cluster's CA, the
    // pull secret's credentials): it scans the repository of its own image and picks its tag.
    let service = Api::<Service>::namespaced(client.clone(), "kube-system")
        .get("registry")
        .await
        .expect("the registry's Service");
    let spec = service.spec.unwrap();
    let address = format!(
        "{}:{}",
        spec.cluster_ip.unwrap(),
        spec.ports.unwrap()[0].port
    );
    images::cluster_registry_ca(&client, &n).await;
    let through_service = format!("{address}/sluice");
    let access = images::cluster_registry_access();
    create(
        &client,
        &n,
        images::repository("own", &through_service, access),
    )
    .await;
    let tag = image.rsplit(':').next().unwrap();
    let pattern = json!({"filterTags": {"pattern": format!("^{tag}$")},
        "policy": {"alphabetical": {"order": "asc"}}});
    create(&client, &n, images::policy("own", "own", pattern)).await;
    let policies: Api<ImagePolicy> = Api::namespaced(client.clone(), &n);
    let chosen = images::latest_tag(&policies, "own", tag).await;
    assert_eq!(
        chosen.latest_ref.unwrap().name,
        through_service,
        "the tag was read through the Service"
    );

    // A namespace install into the same namespace conflicts: refused, nothing changed.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &n);
    let before = deployments.get("sluice").await.unwrap().resource_version();
    let out = install(&n, "namespace", &image, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("already runs a sluice agent in cluster mode")
            && stderr.contains("nothing was changed"),
        "{stderr}"
    );
    assert_eq!(
        deployments.get("sluice").await.unwrap().resource_version(),
        before
    );
    let roles: Api<k8s_openapi::api::rbac::v1::Role> = Api::namespaced(client.clone(), &n);
    assert!(roles.get_opt("sluice").await.unwrap().is_none());

    uninstall(&client, vec![ns]).await;
}

#[tokio::test]
async fn a_namespace_install_cannot_read_or_change_another_namespace() {
    let _serial = SERIAL.lock().await;
    let client = support::client().await;
    let tenant = support::TestNamespace::new(&client, "tenant").await;
    let other = support::TestNamespace::new(&client, "other").await;
    let (t, o) = (tenant.name().to_string(), other.name().to_string());
    node::create_pull_secret(&client, &t).await;
    let image = image();
    let node_ip = node::real_node_ip(&client).await;
    let (daemon, revision) = repository(&node_ip);

    let out = install(&t, "namespace", &image, &[]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "sluice install failed:\n{stderr}");
    assert!(stderr.contains("✔ sluice is ready"), "{stderr}");

    // Its own namespace: reconciled.
    create(&client, &t, git_repository("app", &daemon.url("app.git"))).await;
    create(
        &client,
        &t,
        kustomization("app", json!({"kind": "GitRepository", "name": "app"}), &t),
    )
    .await;
    ks_ready(&client, &t, "app", ConditionStatus::True, &revision).await;

    // Writing into another namespace is refused by the API server, and nothing lands there.
    create(
        &client,
        &t,
        kustomization(
            "escape",
            json!({"kind": "GitRepository", "name": "app"}),
            &o,
        ),
    )
    .await;
    let escape = ks_ready(&client, &t, "escape", ConditionStatus::False, "forbidden").await;
    assert!(escape.message.contains(&o), "{escape:?}");
    let theirs: Api<ConfigMap> = Api::namespaced(client.clone(), &o);
    assert!(theirs.get_opt("settings").await.unwrap().is_none());

    // Reading a source of another namespace is refused too.
    create(
        &client,
        &o,
        git_repository("theirs", &daemon.url("app.git")),
    )
    .await;
    create(
        &client,
        &t,
        kustomization(
            "borrow",
            json!({"kind": "GitRepository", "name": "theirs", "namespace": o}),
            &t,
        ),
    )
    .await;
    let borrow = ks_ready(&client, &t, "borrow", ConditionStatus::False, "forbidden").await;
    assert!(borrow.message.contains("theirs"), "{borrow:?}");

    // The other namespace's GitRepository is never touched (its own interval is 5 s).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let untouched = Api::<GitRepository>::namespaced(client.clone(), &o)
        .get("theirs")
        .await
        .unwrap();
    assert!(untouched.status.is_none(), "{:?}", untouched.status);

    // And the API server agrees: its ServiceAccount can do nothing outside its namespace.
    let user = format!("system:serviceaccount:{t}:sluice");
    assert!(allowed(&client, &user, "create", "", "configmaps", Some(&t)).await);
    for (verb, group, resource, namespace) in [
        ("get", "", "configmaps", Some(o.as_str())),
        ("create", "", "configmaps", Some(o.as_str())),
        ("list", "sluice.dev", "gitrepositories", Some(o.as_str())),
        ("list", "sluice.dev", "kustomizations", None),
        ("create", "", "namespaces", None),
    ] {
        assert!(
            !allowed(&client, &user, verb, group, resource, namespace).await,
            "{user} may {verb} {resource} in {namespace:?}"
        );
    }

    uninstall(&client, vec![tenant, other]).await;
}
