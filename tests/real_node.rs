//! The cluster's real node: the test app, pushed to the cluster's registry, runs in containers
//! that pass real readiness probes; its Service's ClusterIP answers through kube-proxy from the
//! cluster's network namespace and from another pod; a new tag rolls out with an
//! imagePullSecret, while a missing tag or missing credentials fail to pull.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::node::{self, eventually};

const ROLLOUT: Duration = Duration::from_secs(180);

/// A Deployment of the test app on the real node, with probes on /healthz and /readyz.
fn testapp(ns: &str, name: &str, image: &str, replicas: i32, env: Value) -> Deployment {
    let mut pod = json!({
        "imagePullSecrets": [{"name": "registry"}],
        "terminationGracePeriodSeconds": 2,
        "containers": [{
            "name": "app",
            "image": image,
            "env": env,
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5},
        }],
    });
    pod.as_object_mut()
        .unwrap()
        .extend(node::on_real_node().as_object().unwrap().clone());
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    }))
    .unwrap()
}

async fn create_service(client: &Client, ns: &str, name: &str) -> String {
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": "http"}]},
    }))
    .unwrap();
    let created = Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    created.spec.unwrap().cluster_ip.unwrap()
}

/// Waits until the Deployment's rollout is complete: every replica updated and available.
async fn wait_available(client: &Client, ns: &str, name: &str) {
    let api = Api::<Deployment>::namespaced(client.clone(), ns);
    eventually(ROLLOUT, &format!("Deployment {name} available"), || async {
        let d = api.get(name).await.map_err(|e| e.to_string())?;
        let want = d.spec.replicas.unwrap_or(1);
        let status = d.status.clone().unwrap_or_default();
        let done = status.observed_generation == d.metadata.generation
            && status.updated_replicas == Some(want)
            && status.available_replicas == Some(want)
            && status.replicas == Some(want);
        if done {
            Ok(())
        } else {
            Err(format!(
                "{status:?} / pods: {}",
                pod_states(client, ns, name).await
            ))
        }
    })
    .await
}

/// Each pod of the app: phase, readiness and the waiting reason of its container, for messages.
async fn pod_states(client: &Client, ns: &str, app: &str) -> String {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .map(|list| list.items)
        .unwrap_or_default();
    pods.iter()
        .map(|pod| {
            let status = pod.status.clone().unwrap_or_default();
            let waiting = status
                .container_statuses
                .unwrap_or_default()
                .iter()
                .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                .collect::<Vec<_>>()
                .join(",");
            format!(
                "{} {} on {} {}",
                pod.metadata.name.as_deref().unwrap_or("?"),
                status.phase.unwrap_or_default(),
                pod.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_default(),
                waiting
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

async fn pods_of(client: &Client, ns: &str, app: &str) -> Vec<Pod> {
    Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn the_test_app_runs_on_the_real_node_behind_its_service() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "node").await;
    let image = node::push_testapp(&["v1"], &[]).remove(0);
    node::create_pull_secret(&client, ns.name()).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns.name());

    // Ready two seconds after start: kubelet's probes decide, not a fake node.
    let app = testapp(
        ns.name(),
        "web",
        &image,
        2,
        json!([{"name": "READY_AFTER_SECONDS", "value": "2"}]),
    );
    deployments
        .create(&PostParams::default(), &app)
        .await
        .unwrap();
    // Never ready: its pods run but stay out of the Service.
    let never = testapp(
        ns.name(),
        "never",
        &image,
        1,
        json!([{"name": "READY_AFTER_SECONDS", "value": "100000"}]),
    );
    deployments
        .create(&PostParams::default(), &never)
        .await
        .unwrap();
    let cluster_ip = create_service(&client, ns.name(), "web").await;

    wait_available(&client, ns.name(), "web").await;
    let pods = pods_of(&client, ns.name(), "web").await;
    assert_eq!(pods.len(), 2);
    let names: BTreeSet<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    for pod in &pods {
        assert_eq!(
            pod.spec.as_ref().unwrap().node_name.as_deref(),
            Some("real-node-0")
        );
        assert!(ready(pod));
    }
    let never_pod = eventually(ROLLOUT, "the never-ready pod running", || async {
        let pods = pods_of(&client, ns.name(), "never").await;
        match pods.first() {
            Some(p) if p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running") => {
                Ok(p.clone())
            }
            _ => Err(pod_states(&client, ns.name(), "never").await),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let never_pod = Api::<Pod>::namespaced(client.clone(), ns.name())
        .get(never_pod.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    assert!(
        !ready(&never_pod),
        "a pod whose /readyz answers 503 is Ready: {never_pod:?}"
    );

    // From the cluster's network namespace: the ClusterIP through kube-proxy, and a pod directly.
    let answered = eventually(
        Duration::from_secs(60),
        "the ClusterIP answering from the node",
        || async {
            let out = node::cluster_exec(&[
                "curl",
                "-fsS",
                "--max-time",
                "5",
                &format!("http://{cluster_ip}/"),
            ]);
            if out.status.success() {
                Ok(stdout(&out))
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        },
    )
    .await;
    let (version, pod) = answered.trim().split_once(' ').expect("VERSION POD");
    assert_eq!(version, "v1");
    assert!(names.contains(pod), "{pod} is not one of {names:?}");
    let pod_ip = pods[0].status.as_ref().unwrap().pod_ip.clone().unwrap();
    let metrics = node::cluster_exec(&[
        "curl",
        "-fsS",
        "--max-time",
        "5",
        &format!("http://{pod_ip}:8080/metrics"),
    ]);
    assert!(metrics.status.success(), "{metrics:?}");
    assert!(
        stdout(&metrics).contains("http_request_duration_seconds_bucket"),
        "{}",
        stdout(&metrics)
    );

    // From another pod (through `kubectl exec`, which also needs the API server to reach the
    // kubelet): the Service spreads requests over both ready pods and never the unready one.
    let client_pod = pods[1].metadata.name.clone().unwrap();
    let out = node::kubectl(&[
        "-n",
        ns.name(),
        "exec",
        &client_pod,
        "--",
        "/testapp",
        "get",
        &format!("http://{cluster_ip}/"),
        "--count",
        "40",
    ]);
    assert!(out.status.success(), "{out:?}");
    let seen: BTreeSet<String> = stdout(&out)
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            assert_eq!(words.next(), Some("200"), "{line}");
            assert_eq!(words.next(), Some("v1"), "{line}");
            words.next().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        seen, names,
        "40 requests through the Service reached {seen:?}"
    );

    // Logs come from the kubelet too.
    let logs = node::kubectl(&["-n", ns.name(), "logs", &client_pod]);
    assert!(stdout(&logs).contains("testapp v1 listening"), "{logs:?}");
    ns.cleanup(&client).await;
}

#[tokio::test]
async fn a_new_tag_rolls_out_and_missing_images_or_credentials_fail_to_pull() {
    let client = support::client().await;
    let ns = support::TestNamespace::new(&client, "pull").await;
    node::create_pull_secret(&client, ns.name()).await;
    let v1 = node::push_testapp(&["pull-v1"], &["VERSION=pull-v1"]).remove(0);
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns.name());
    deployments
        .create(
            &PostParams::default(),
            &testapp(ns.name(), "app", &v1, 1, json!([])),
        )
        .await
        .unwrap();
    let cluster_ip = create_service(&client, ns.name(), "app").await;
    wait_available(&client, ns.name(), "app").await;

    // A tag pushed with skopeo after the Deployment exists is pulled by the rollout.
    let built = node::push_testapp(&["pull-v2-build"], &["VERSION=pull-v2"]).remove(0);
    let v2 = format!("{}/testapp:pull-v2", node::registry().address);
    node::skopeo_copy(&built, &v2);
    let set_image = |image: &str| json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    deployments
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Strategic(set_image(&v2)),
        )
        .await
        .unwrap();
    wait_available(&client, ns.name(), "app").await;
    let answer = eventually(
        Duration::from_secs(60),
        "the new version answering",
        || async {
            let out = node::cluster_exec(&[
                "curl",
                "-fsS",
                "--max-time",
                "5",
                &format!("http://{cluster_ip}/"),
            ]);
            let text = stdout(&out);
            if text.starts_with("pull-v2 ") {
                Ok(text)
            } else {
                Err(format!("{text} {}", String::from_utf8_lossy(&out.stderr)))
            }
        },
    )
    .await;
    assert!(answer.starts_with("pull-v2 "));

    // A tag that does not exist: the new pod cannot pull; the old one keeps serving.
    let missing = format!("{}/testapp:no-such-tag", node::registry().address);
    deployments
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Strategic(set_image(&missing)),
        )
        .await
        .unwrap();
    let reason = eventually(ROLLOUT, "ErrImagePull for the missing tag", || async {
        let states = pod_states(&client, ns.name(), "app").await;
        if states.contains("ErrImagePull") || states.contains("ImagePullBackOff") {
            Ok(states)
        } else {
            Err(states)
        }
    })
    .await;
    assert!(
        reason.contains("Running"),
        "the old pod should keep running: {reason}"
    );

    // An existing tag without the pull secret: the registry refuses to serve it.
    let mut anonymous = testapp(ns.name(), "anonymous", &v1, 1, json!([]));
    anonymous
        .spec
        .template
        .spec
        .as_mut()
        .unwrap()
        .image_pull_secrets = None;
    deployments
        .create(&PostParams::default(), &anonymous)
        .await
        .unwrap();
    eventually(ROLLOUT, "a pull without credentials failing", || async {
        let states = pod_states(&client, ns.name(), "anonymous").await;
        if states.contains("ErrImagePull") || states.contains("ImagePullBackOff") {
            Ok(())
        } else {
            Err(states)
        }
    })
    .await;
    let events = node::kubectl(&[
        "-n",
        ns.name(),
        "get",
        "events",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    let events = stdout(&events);
    assert!(
        events.contains("401")
            || events.contains("nauthorized")
            || events.contains("authorization"),
        "the pull failure should say the registry refused: {events}"
    );
    ns.cleanup(&client).await;
}
