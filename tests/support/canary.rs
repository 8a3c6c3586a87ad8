//! Support for canary tests: a Prometheus server (Debian's `prometheus`) inside the cluster's
//! network namespace that scrapes the pods of a namespace every second, discovered through the
//! API server (Debian builds Prometheus without its Kubernetes discovery, so a watch in the test
//! writes the targets Prometheus reads with `file_sd_configs`); the load tester (`sluice loadtester`) there too, so its requests go through
//! kube-proxy; the analyzer (and its hand-off) run in the test process; the test app's
//! Deployment on the real node; waiting on a Canary. Both servers listen on the node's address,
//! which the host reaches. Does I/O (processes, HTTP, the API server).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Service};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use sluice::api::canary::{Canary, CanaryStatus};
use sluice::api::condition;

use super::node::{self, eventually};
use super::repo_root;

/// The real node's address: where the host reaches what listens inside the cluster's network
/// namespace.
pub fn node_ip() -> &'static str {
    static IP: OnceLock<String> = OnceLock::new();
    IP.get_or_init(|| {
        let out = node::kubectl(&[
            "get",
            "node",
            "real-node-0",
            "-o",
            "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
        ]);
        let ip = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!ip.is_empty(), "no InternalIP on real-node-0: {out:?}");
        ip
    })
}

/// A port nothing else of this test binary uses, inside the network namespace.
fn next_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let _ = NEXT.compare_exchange(
        0,
        20000 + (std::process::id() % 20000) as u16,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    NEXT.fetch_add(1, Ordering::SeqCst)
}

/// A process inside the cluster's network namespace, killed when dropped.
pub struct NetnsProcess {
    child: Option<Child>,
    pub log: PathBuf,
}

impl NetnsProcess {
    fn spawn(args: &[&str], log: PathBuf) -> NetnsProcess {
        let out = std::fs::File::create(&log).expect("a log file");
        let child = Command::new(repo_root().join("scripts/cluster"))
            .arg("exec")
            .arg("--")
            .args(args)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting {args:?} in the cluster's network namespace: {e}")
            });
        NetnsProcess {
            child: Some(child),
            log,
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NetnsProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn get(url: &str) -> Result<String, String> {
    let response = sluice::runtime::http::client()
        .get(url)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("{status}: {text}"))
    }
}

/// A Prometheus server scraping the test app's pods in one namespace.
pub struct Prometheus {
    pub url: String,
    port: u16,
    dir: tempfile::TempDir,
    process: NetnsProcess,
    discovery: tokio::task::JoinHandle<()>,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.discovery.abort();
    }
}

/// Keeps `file` listing the pods of `namespace` that have an `http` port, as Prometheus's
/// file discovery reads them, with `namespace` and `pod` labels.
async fn discover(client: Client, namespace: String, file: PathBuf) {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::Pod;
    use kube::runtime::{WatchStreamExt, reflector, watcher};
    let (store, writer) = reflector::store();
    let pods: Api<Pod> = Api::namespaced(client, &namespace);
    let mut events = std::pin::pin!(
        reflector::reflector(writer, watcher(pods, watcher::Config::default())).touched_objects()
    );
    while events.next().await.is_some() {
        let targets: Vec<Value> = store
            .state()
            .iter()
            .filter_map(|pod| {
                let ip = pod.status.as_ref()?.pod_ip.clone()?;
                let port = pod.spec.as_ref()?.containers.iter().flat_map(|c| c.ports.iter().flatten())
                    .find(|p| p.name.as_deref() == Some("http"))?.container_port;
                let name = pod.metadata.name.clone()?;
                Some(json!({"targets": [format!("{ip}:{port}")], "labels": {"namespace": namespace, "pod": name}}))
            })
            .collect();
        let tmp = file.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&targets).unwrap()).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
    }
}

impl Prometheus {
    pub async fn start(client: &Client, namespace: &str) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let targets = dir.path().join("targets.json");
        std::fs::write(&targets, "[]").unwrap();
        let prometheus_yml = format!(
            r#"global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: pods
    file_sd_configs:
      - files: [{targets}]
        refresh_interval: 1s
"#,
            targets = targets.display(),
        );
        std::fs::write(dir.path().join("prometheus.yml"), prometheus_yml).unwrap();
        let port = next_port();
        let process = Prometheus::spawn(dir.path(), port);
        let discovery = tokio::spawn(discover(client.clone(), namespace.to_string(), targets));
        let mut prometheus = Prometheus {
            url: format!("http://{}:{port}", node_ip()),
            port,
            dir,
            process,
            discovery,
        };
        prometheus.wait_ready().await;
        prometheus
    }

    fn spawn(dir: &std::path::Path, port: u16) -> NetnsProcess {
        let config = dir.join("prometheus.yml");
        let data = dir.join("data");
        NetnsProcess::spawn(
            &[
                "prometheus",
                &format!("--config.file={}", config.display()),
                &format!("--storage.tsdb.path={}", data.display()),
                &format!("--web.listen-address=0.0.0.0:{port}"),
                "--log.level=warn",
            ],
            dir.join("prometheus.log"),
        )
    }

    async fn wait_ready(&mut self) {
        let ready = format!("{}/-/ready", self.url);
        for _ in 0..120 {
            if get(&ready).await.is_ok() {
                return;
            }
            assert!(
                !self.process.exited(),
                "prometheus exited:\n{}",
                self.process.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("prometheus not ready:\n{}", self.process.log_text());
    }

    /// Stops the server (a crash, as far as the analysis can tell).
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts it again on the same address and data.
    pub async fn restart(&mut self) {
        self.process.stop();
        self.process = Prometheus::spawn(self.dir.path(), self.port);
        self.wait_ready().await;
    }

    /// The value of an instant query, if any.
    pub async fn value(&self, query: &str) -> Option<f64> {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/v1/query", self.url),
            &[("query", query)],
        )
        .unwrap();
        let body: Value = serde_json::from_str(&get(url.as_str()).await.ok()?).ok()?;
        body.pointer("/data/result/0/value/1")?
            .as_str()?
            .parse()
            .ok()
    }
}

/// `sluice loadtester`, serving Flagger's loadtester API inside the network namespace.
pub struct Loadtester {
    pub url: String,
    _process: NetnsProcess,
    _dir: tempfile::TempDir,
}

impl Loadtester {
    pub async fn start() -> Loadtester {
        let dir = tempfile::tempdir().unwrap();
        let port = next_port();
        let mut process = NetnsProcess::spawn(
            &[
                env!("CARGO_BIN_EXE_sluice"),
                "loadtester",
                "--listen",
                &format!("0.0.0.0:{port}"),
            ],
            dir.path().join("loadtester.log"),
        );
        let url = format!("http://{}:{port}/", node_ip());
        for _ in 0..120 {
            if get(&format!("{url}healthz")).await.is_ok() {
                return Loadtester {
                    url,
                    _process: process,
                    _dir: dir,
                };
            }
            assert!(
                !process.exited(),
                "the loadtester exited:\n{}",
                process.log_text()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("the loadtester did not answer:\n{}", process.log_text());
    }

    /// Starts a load the way a Canary's webhook does.
    pub async fn start_load(&self, canary: &str, namespace: &str, command: &str) {
        let payload = json!({"name": canary, "namespace": namespace, "phase": "Progressing", "checksum": "",
            "metadata": {"type": "cmd", "cmd": command}});
        let response = sluice::runtime::http::client()
            .post(&self.url)
            .json(&payload)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            202,
            "{:?}",
            response.text().await
        );
    }

    /// What the loads got back: `{"tasks": {KEY: STATS}, "total": STATS}`.
    pub async fn stats(&self) -> Value {
        serde_json::from_str(&get(&format!("{}stats", self.url)).await.unwrap()).unwrap()
    }
}

/// Counts of one load's answers.
#[derive(Debug, Clone, Default)]
pub struct Answers {
    pub requests: u64,
    pub by_status: BTreeMap<String, u64>,
    pub by_answer: BTreeMap<String, u64>,
}

impl Answers {
    pub fn of(stats: &Value) -> Answers {
        let map = |key: &str| -> BTreeMap<String, u64> {
            stats
                .get(key)
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default()
        };
        Answers {
            requests: stats.get("requests").and_then(Value::as_u64).unwrap_or(0),
            by_status: map("by_status"),
            by_answer: map("by_answer"),
        }
    }

    /// Answers that were not a 2xx (errors included), as a share of all.
    pub fn error_share(&self) -> f64 {
        let ok: u64 = self
            .by_status
            .iter()
            .filter(|(code, _)| code.starts_with('2'))
            .map(|(_, n)| n)
            .sum();
        if self.requests == 0 {
            0.0
        } else {
            (self.requests - ok) as f64 / self.requests as f64
        }
    }

    /// The stats of the load whose key contains `part`.
    pub fn of_task(stats: &Value, part: &str) -> Answers {
        let task = stats["tasks"]
            .as_object()
            .and_then(|tasks| {
                tasks
                    .iter()
                    .find(|(k, _)| k.contains(part))
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or(Value::Null);
        Answers::of(&task)
    }
}

/// The analyzer of one namespace, run in the test process.
pub struct Analyzer {
    task: tokio::task::JoinHandle<()>,
    pub handoff: sluice::apply::handoff::HandoffRef,
}

impl Analyzer {
    pub fn start(client: &Client, namespace: &str, metrics_server: Option<&str>) -> Analyzer {
        // The agent's log lines in the test's output (`RUST_LOG` filters them).
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "sluice=info".into()),
            )
            .with_test_writer()
            .try_init();
        let analyzer = sluice::canary::controller::Analyzer::new(
            client.clone(),
            sluice::canary::controller::AnalyzerSettings {
                namespace: Some(namespace.into()),
                metrics_server: metrics_server.map(str::to_string),
                ..Default::default()
            },
        );
        let handoff = analyzer.handoff();
        Analyzer {
            task: tokio::spawn(analyzer.run()),
            handoff,
        }
    }
}

impl Drop for Analyzer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Deployment on kwok's node (its pods are Ready at once and run nothing).
pub fn kwok_deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {
                "containers": [{"name": "app", "image": "example.com/app:v1", "ports": [{"name": "http", "containerPort": 8080}]}],
            }},
        },
    })
}

/// The test app's Deployment on the real node: probes, the `http` port Prometheus scrapes, and a
/// short pause before stopping so kube-proxy stops sending it connections first.
pub fn testapp(namespace: &str, name: &str, image: &str, replicas: i32) -> Value {
    let mut pod = json!({
        "imagePullSecrets": [{"name": "registry"}],
        "terminationGracePeriodSeconds": 5,
        "containers": [{
            "name": "app",
            "image": image,
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 1},
            "lifecycle": {"preStop": {"sleep": {"seconds": 2}}},
        }],
    });
    pod.as_object_mut()
        .unwrap()
        .extend(node::on_real_node().as_object().unwrap().clone());
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod},
        },
    })
}

/// Creates an object from its manifest.
pub async fn create(client: &Client, namespace: &str, manifest: Value) {
    let api_version = manifest["apiVersion"].as_str().unwrap().to_string();
    let kind = manifest["kind"].as_str().unwrap().to_string();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = kube::api::GroupVersionKind::gvk(group, version, &kind);
    let (resource, _) = kube::discovery::pinned_kind(client, &gvk).await.unwrap();
    let api: Api<kube::api::DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &resource);
    let object: kube::api::DynamicObject = serde_json::from_value(manifest).unwrap();
    api.create(&PostParams::default(), &object)
        .await
        .unwrap_or_else(|e| panic!("creating {kind}: {e}"));
}

/// Waits until the Canary's status passes `check`.
pub async fn wait_canary(
    client: &Client,
    namespace: &str,
    name: &str,
    limit: Duration,
    what: &str,
    check: impl Fn(&CanaryStatus) -> bool,
) -> CanaryStatus {
    let api: Api<Canary> = Api::namespaced(client.clone(), namespace);
    eventually(limit, &format!("Canary {name}: {what}"), || async {
        let canary = api.get(name).await.map_err(|e| e.to_string())?;
        let status = canary.status.unwrap_or_default();
        if check(&status) {
            Ok(status)
        } else {
            let events = events(client, namespace, name).await;
            Err(format!("{status:#?}\nevents:\n{}", events.join("\n")))
        }
    })
    .await
}

/// The phase of a status, as written.
pub fn phase(status: &CanaryStatus) -> &'static str {
    status.phase.map_or("", |p| p.as_str())
}

pub fn ready_message(status: &CanaryStatus) -> String {
    condition::find(&status.conditions, "Ready")
        .map(|c| format!("{:?} {}: {}", c.status, c.reason, c.message))
        .unwrap_or_default()
}

/// The messages of the Events about a Canary, oldest first.
pub async fn events(client: &Client, namespace: &str, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let selector = format!("involvedObject.kind=Canary,involvedObject.name={name}");
    let mut list = api
        .list(&ListParams::default().fields(&selector))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    list.sort_by_key(|e| {
        e.event_time
            .as_ref()
            .map(|t| t.0)
            .or(e.metadata.creation_timestamp.as_ref().map(|t| t.0))
    });
    list.iter()
        .map(|e| {
            format!(
                "{} {}: {}",
                e.type_.as_deref().unwrap_or(""),
                e.reason.as_deref().unwrap_or(""),
                e.message.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// A Service's ClusterIP.
pub async fn cluster_ip(client: &Client, namespace: &str, name: &str) -> String {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    api.get(name)
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap()
}

/// The statically linked test app, to run in the network namespace as a client.
pub fn testapp_binary() -> &'static str {
    static PATH: OnceLock<String> = OnceLock::new();
    PATH.get_or_init(|| {
        let out = Command::new(repo_root().join("scripts/image"))
            .arg("testapp-binary")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// Sends `count` requests to `url` from the network namespace, each on a new connection (as
/// kube-proxy spreads connections); counts the answers by version (`error` for failures). Off
/// the async workers, so the analyzer running in the test keeps going.
pub async fn burst(url: &str, count: u32) -> BTreeMap<String, u64> {
    let url = url.to_string();
    let out = tokio::task::spawn_blocking(move || {
        node::cluster_exec(&[testapp_binary(), "get", &url, "--count", &count.to_string()])
    })
    .await
    .unwrap();
    let mut versions = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut words = line.split_whitespace();
        let key = match (words.next(), words.next()) {
            (Some("200"), Some(version)) => version.to_string(),
            _ => "error".to_string(),
        };
        *versions.entry(key).or_default() += 1;
    }
    versions
}

/// Bursts of `count` requests to `url` until one satisfies `done` or `timeout` passes; the last
/// burst. The node's proxy follows an EndpointSlice change a moment after the API server shows it,
/// so a check of what users see after a change waits for that, not for a fixed time.
pub async fn burst_until(
    url: &str,
    count: u32,
    timeout: Duration,
    done: impl Fn(&BTreeMap<String, u64>) -> bool,
) -> BTreeMap<String, u64> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answers = burst(url, count).await;
        if done(&answers) || tokio::time::Instant::now() >= deadline {
            return answers;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The apex Service's ready endpoints: (the primary's pods, the canary's pods).
pub async fn apex_endpoints(
    client: &Client,
    namespace: &str,
    apex: &str,
    target: &str,
) -> (usize, usize) {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
    let slices = api
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={apex}")))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let (mut primary, mut canary) = (0, 0);
    for endpoint in slices.iter().flat_map(|s| s.endpoints.iter().flatten()) {
        if endpoint.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
            continue;
        }
        let pod = endpoint
            .target_ref
            .as_ref()
            .and_then(|r| r.name.clone())
            .unwrap_or_default();
        if pod.starts_with(&format!("{target}-primary-")) {
            primary += 1;
        } else if pod.starts_with(&format!("{target}-")) {
            canary += 1;
        }
    }
    (primary, canary)
}

/// The image of a Deployment's first container.
pub async fn image_of(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), namespace);
    let d = api.get_opt(name).await.ok()??;
    d.spec.template.spec?.containers.first()?.image.clone()
}

/// Sets the image of a Deployment's first container, as `kubectl set image` does.
pub async fn set_image(client: &Client, namespace: &str, name: &str, image: &str) {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), namespace);
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Strategic(patch),
    )
    .await
    .unwrap();
}

/// Merges `patch` into a Canary's spec.
pub async fn patch_canary(client: &Client, namespace: &str, name: &str, patch: Value) {
    let api: Api<Canary> = Api::namespaced(client.clone(), namespace);
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": patch})),
    )
    .await
    .unwrap();
}

/// A namespace of its own with a pull secret for the registry, Prometheus scraping it, the load
/// tester and the analyzer (asking that Prometheus); dropping it stops them.
pub struct Env {
    pub client: Client,
    pub ns: super::TestNamespace,
    pub prometheus: Prometheus,
    pub loadtester: Loadtester,
    pub analyzer: Analyzer,
}

impl Env {
    pub async fn start(prefix: &str) -> Env {
        testapp_binary();
        let client = super::client().await;
        super::install_crds(&client).await;
        let ns = super::TestNamespace::new(&client, prefix).await;
        node::create_pull_secret(&client, ns.name()).await;
        let prometheus = Prometheus::start(&client, ns.name()).await;
        let loadtester = Loadtester::start().await;
        let analyzer = Analyzer::start(&client, ns.name(), Some(&prometheus.url));
        Env {
            client,
            ns,
            prometheus,
            loadtester,
            analyzer,
        }
    }

    pub fn name(&self) -> &str {
        self.ns.name()
    }

    pub async fn finish(self) {
        self.ns.cleanup(&self.client).await;
    }

    /// Waits until `url` answers through kube-proxy with only `version`.
    pub async fn answering(&self, url: &str, version: &str) {
        eventually(
            Duration::from_secs(120),
            &format!("{url} answering {version}"),
            || async {
                let answers = burst(url, 10).await;
                if answers.keys().eq([version]) {
                    Ok(())
                } else {
                    Err(format!("{answers:?}"))
                }
            },
        )
        .await;
    }

    /// Waits until the apex Service's endpoints are `primary` and `canary` pods.
    pub async fn endpoints(&self, apex: &str, target: &str, primary: usize, canary: usize) {
        eventually(
            Duration::from_secs(300),
            &format!("{primary} primary and {canary} canary endpoints"),
            || async {
                match apex_endpoints(&self.client, self.name(), apex, target).await {
                    found if found == (primary, canary) => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }
}

/// The load a Flagger user gives a canary: started before traffic shifts (`pre-rollout`), kept
/// up by every step (`rollout`); a new connection per request, as kube-proxy spreads connections.
pub fn load_webhooks(loadtester: &str, target_ip: &str) -> Value {
    let cmd = format!("hey -z 10m -q 20 -c 2 -disable-keepalive http://{target_ip}/");
    json!([
        {"name": "load", "type": "pre-rollout", "url": loadtester, "timeout": "5s", "metadata": {"cmd": cmd}},
        {"name": "load", "type": "rollout", "url": loadtester, "timeout": "5s", "metadata": {"cmd": cmd}},
    ])
}

/// The Go modules whose CRDs the router tests install.
pub const ISTIO_API: &str = "istio.io/api@v1.32.0";
pub const CONTOUR: &str = "github.com/projectcontour/contour@v1.33.8";
pub const TRAEFIK: &str = "github.com/traefik/traefik/v3@v3.7.13";
pub const GATEWAY_API: &str = "sigs.k8s.io/gateway-api@v1.3.0";

/// Installs Istio's CRDs (VirtualService, DestinationRule) from the module; their file.
pub fn install_istio_crds() -> String {
    let crds = module_file(ISTIO_API, "kubernetes/customresourcedefinitions.gen.yaml");
    install_crds_from(
        &crds,
        &[
            "virtualservices.networking.istio.io",
            "destinationrules.networking.istio.io",
        ],
    );
    crds
}

/// Installs Traefik's TraefikService CRD from the module.
pub fn install_traefik_crds() {
    install_crds_from(
        &module_file(
            TRAEFIK,
            "docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml",
        ),
        &["traefikservices.traefik.io"],
    );
}

/// Installs the Gateway API standard channel's CRDs from the module.
pub fn install_gateway_api_crds() {
    install_crds_from(
        &module_file(GATEWAY_API, "config/crd/standard"),
        &["httproutes.gateway.networking.k8s.io"],
    );
}

/// The objects of `kind` (served as `plural` at `api_version`) in `namespace`.
pub fn api(
    client: &Client,
    namespace: &str,
    api_version: &str,
    kind: &str,
    plural: &str,
) -> Api<kube::api::DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap();
    let resource = kube::discovery::ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: api_version.into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    Api::namespaced_with(client.clone(), namespace, &resource)
}

/// A file of a Go module (downloaded through the Go proxy).
pub fn module_file(module: &str, path: &str) -> String {
    let out = std::process::Command::new("go")
        .args(["mod", "download", "-json", module])
        .env("GOFLAGS", "-mod=mod")
        .current_dir(std::env::temp_dir())
        .output()
        .expect("running go");
    assert!(out.status.success(), "go mod download {module}: {out:?}");
    let module: Value = serde_json::from_slice(&out.stdout).unwrap();
    format!("{}/{path}", module["Dir"].as_str().unwrap())
}

/// Installs CRDs from a file (or directory) and waits until `names` are Established.
pub fn install_crds_from(file: &str, names: &[&str]) {
    let out = node::kubectl(&["apply", "--server-side", "-f", file]);
    assert!(out.status.success(), "installing {file}: {out:?}");
    let mut args = vec!["wait", "--for=condition=Established"];
    let crds: Vec<String> = names.iter().map(|n| format!("crd/{n}")).collect();
    args.extend(crds.iter().map(String::as_str));
    // `kubectl wait` fails outright on a CRD whose status has no conditions yet: ask again.
    for _ in 0..60 {
        let out = node::kubectl(&args);
        if out.status.success() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    panic!("{names:?} not Established");
}

/// Polls `read` every 200 ms and records each new value it returns, until aborted.
pub fn record(
    read: impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Option<Value>> + Send>> + Send + 'static,
) -> (Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    let task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                if let Some(value) = read().await {
                    let mut seen = seen.lock().unwrap();
                    if seen.last() != Some(&value) {
                        seen.push(value);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    (seen, task)
}

/// Deletes the Canaries in the foreground and waits until each of `generated` lists nothing but
/// its `keep` names: the objects the Canaries owned went with them.
pub async fn delete_canaries_and_wait(
    client: &Client,
    namespace: &str,
    names: &[&str],
    generated: &[(&Api<kube::api::DynamicObject>, &[&str])],
) {
    let canaries = Api::<Canary>::namespaced(client.clone(), namespace);
    for name in names {
        canaries
            .delete(name, &kube::api::DeleteParams::foreground())
            .await
            .unwrap();
    }
    for (objects, keep) in generated {
        eventually(
            Duration::from_secs(300),
            "the generated objects deleted with their Canaries",
            || async {
                let left: Vec<String> = objects
                    .list(&Default::default())
                    .await
                    .map_err(|e| e.to_string())?
                    .items
                    .iter()
                    .filter_map(|r| r.metadata.name.clone())
                    .filter(|name| !keep.contains(&name.as_str()))
                    .collect();
                if left.is_empty() {
                    Ok(())
                } else {
                    Err(format!("{left:?}"))
                }
            },
        )
        .await;
    }
}

/// The Canary's Events once one contains `last`, oldest first: a step's status is written before
/// its Events are published, so a test that saw the status waits for the step's last Event.
pub async fn events_including(
    client: &Client,
    namespace: &str,
    name: &str,
    last: &str,
) -> Vec<String> {
    eventually(
        Duration::from_secs(30),
        &format!("an Event saying {last:?}"),
        || async {
            let events = events(client, namespace, name).await;
            if events.iter().any(|e| e.contains(last)) {
                Ok(events)
            } else {
                Err(events.join("\n"))
            }
        },
    )
    .await
}
