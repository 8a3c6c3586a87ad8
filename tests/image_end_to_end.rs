//! Image automation end to end on the real node: tag 1.1.0 of the test app is pushed to the
//! cluster's registry → the ImageRepository scan sees it → the ImagePolicy chooses it → the
//! ImageUpdateAutomation commits and pushes the new tag → the GitRepository (polling only hourly)
//! is asked to reconcile at once → the Kustomization applies it → the pods on the real node run
//! the new image. Every controller runs in this process, as `sluice agent` runs them.

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::json;
use sluice::image::registry::Limits;
use sluice::image::tags::TagStore;
use support::git_servers::GitDaemon;
use support::git_signing::{Signing, WorkRepo};
use support::node::{self, eventually};
use support::registry;

const ROLLOUT: Duration = Duration::from_secs(240);

#[tokio::test]
async fn a_new_tag_reaches_the_pods_on_the_real_node() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "e2e-image").await;
    let n = ns.name().to_string();
    let repo = format!("e2e-{n}");
    let image = registry::push_tags(&repo, &["1.0.0"]);
    node::create_pull_secret(&client, &n).await;
    let ca = std::fs::read_to_string(registry::cluster_ca()).unwrap();
    registry::create_secret(&client, &n, "registry-ca", "Opaque", json!({"ca.crt": ca})).await;

    let daemon = GitDaemon::start();
    daemon.create_repo("fleet");
    let work = WorkRepo::new(&daemon.url("fleet"));
    work.write(
        "deploy/app.yaml",
        &format!(
            "apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {{app: app}}
  template:
    metadata:
      labels: {{app: app}}
    spec:
      imagePullSecrets: [{{name: registry}}]
      nodeSelector: {{sluice.dev/node: real}}
      tolerations: [{{key: sluice.dev/node, operator: Equal, value: real, effect: NoSchedule}}]
      terminationGracePeriodSeconds: 2
      containers:
      - name: app
        image: {image}:1.0.0 # {{\"$imagepolicy\": \"{n}:app\"}}
        readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 1}}
"
        ),
    );
    work.commit("the app at 1.0.0", &Signing::None);
    work.push(&["main"]);

    // Every controller of the agent, for this namespace.
    let storage = tempfile::tempdir().unwrap();
    let config = support::agent::admin_config().await;
    let settings = sluice::source::controller::Settings {
        namespace: Some(n.clone()),
        ..sluice::source::controller::Settings::new(storage.path().to_owned())
    };
    let tags = std::sync::Arc::new(TagStore::new(storage.path()));
    tokio::spawn(sluice::source::controller::run(client.clone(), settings));
    tokio::spawn(sluice::kustomization::controller::run(
        client.clone(),
        config,
        sluice::kustomization::controller::Settings {
            storage: storage.path().to_owned(),
            namespace: Some(n.clone()),
            ..Default::default()
        },
    ));
    tokio::spawn(sluice::image::repository::run(
        client.clone(),
        Some(n.clone()),
        tags.clone(),
        Limits::default(),
    ));
    tokio::spawn(sluice::image::policy_controller::run(
        client.clone(),
        Some(n.clone()),
        tags,
    ));
    tokio::spawn(sluice::image::automation::run(
        client.clone(),
        storage.path().to_owned(),
        Some(n.clone()),
    ));

    let object = |kind: &str, name: &str, spec: serde_json::Value| json!({"apiVersion": "sluice.dev/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec});
    for manifest in [
        // Hourly polls: only the automation's request makes the new commit arrive in time.
        object(
            "GitRepository",
            "fleet",
            json!({"url": daemon.url("fleet"), "interval": "1h", "ref": {"branch": "main"}}),
        ),
        object(
            "Kustomization",
            "app",
            json!({"sourceRef": {"kind": "GitRepository", "name": "fleet"}, "path": "./deploy", "interval": "1h", "prune": true, "targetNamespace": n}),
        ),
        object(
            "ImageRepository",
            "app",
            json!({"image": image, "interval": "2s", "secretRef": {"name": "registry"}, "certSecretRef": {"name": "registry-ca"}}),
        ),
        object(
            "ImagePolicy",
            "app",
            json!({"imageRepositoryRef": {"name": "app"}, "policy": {"semver": {"range": ">=1.0.0"}}}),
        ),
        object(
            "ImageUpdateAutomation",
            "app",
            json!({"sourceRef": {"kind": "GitRepository", "name": "fleet"}, "interval": "1h",
            "git": {"commit": {"author": {"name": "sluice", "email": "sluice@example.com"}, "messageTemplate": "app: {{ range .Changed.Changes }}{{ .NewValue }}{{ end }}"}},
            "update": {"path": "./deploy", "strategy": "Setters"}}),
        ),
    ] {
        support::create_sluice_object(&client, &n, manifest).await;
    }

    let running = |tag: &'static str| {
        let client = client.clone();
        let (n, image) = (n.clone(), image.clone());
        async move {
            let want = format!("{image}:{tag}");
            eventually(
                ROLLOUT,
                &format!("pods on the real node running {want}"),
                || async {
                    let d = Api::<Deployment>::namespaced(client.clone(), &n)
                        .get("app")
                        .await
                        .map_err(|e| e.to_string())?;
                    let spec_image = d
                        .spec
                        .template
                        .spec
                        .as_ref()
                        .map(|p| p.containers[0].image.clone().unwrap_or_default());
                    let st = d.status.clone().unwrap_or_default();
                    let rolled = spec_image.as_deref() == Some(want.as_str())
                        && st.observed_generation == d.metadata.generation
                        && st.updated_replicas == Some(1)
                        && st.available_replicas == Some(1)
                        && st.replicas == Some(1);
                    if !rolled {
                        return Err(format!("{spec_image:?} {st:?}"));
                    }
                    let pods = Api::<Pod>::namespaced(client.clone(), &n)
                        .list(&ListParams::default().labels("app=app"))
                        .await
                        .map_err(|e| e.to_string())?;
                    let pods: Vec<&Pod> = pods
                        .items
                        .iter()
                        .filter(|p| p.metadata.deletion_timestamp.is_none())
                        .collect();
                    let ids: Vec<String> = pods
                        .iter()
                        .filter(|p| {
                            let spec = p.spec.as_ref().unwrap();
                            spec.node_name.as_deref() == Some("real-node-0")
                                && spec.containers[0].image.as_deref() == Some(want.as_str())
                        })
                        .flat_map(|p| {
                            p.status
                                .clone()
                                .unwrap_or_default()
                                .container_statuses
                                .unwrap_or_default()
                        })
                        .filter(|c| c.ready && !c.image_id.is_empty())
                        .map(|c| c.image_id)
                        .collect();
                    if !pods.is_empty() && ids.len() == pods.len() {
                        Ok(ids[0].clone())
                    } else {
                        Err(format!("{} pods, not all running {want} yet", pods.len()))
                    }
                },
            )
            .await
        }
    };
    let first = running("1.0.0").await;

    // A different image (another VERSION in its config), so the running image's ID changes too.
    registry::push_build(&format!("{repo}:1.1.0"), "VERSION=1.1.0");
    let second = running("1.1.0").await;
    assert_ne!(first, second, "the pods run the new image");
    let head = daemon.root.path().join("fleet");
    let message = support::git_servers::run(
        std::process::Command::new("git")
            .arg("-C")
            .arg(&head)
            .args(["log", "-1", "--format=%an %s", "main"]),
    );
    assert_eq!(message.trim(), format!("sluice app: {image}:1.1.0"));
    ns.cleanup(&client).await;
}
