//! Leader election with two real `sluice agent` processes on one Lease: one leads and reconciles,
//! the other stands by (ready, but reconciling nothing); killing the leader with SIGKILL hands
//! the Lease to the standby within the lease duration, and no reconcile of one ever overlaps a
//! reconcile of the other (read from their JSON logs). A leader that finds the Lease taken steps
//! down and exits. Also the operational endpoints: /healthz, /readyz, /metrics.

mod support;

use std::io::Read;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use support::git_servers::free_port;
use support::in_process::Agent;
use support::node::eventually;

const LEASE: Duration = Duration::from_secs(6);
const RETRY: Duration = Duration::from_secs(1);

/// One `sluice agent` process, its JSON log in a file.
struct Replica {
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
    metrics: u16,
    _storage: tempfile::TempDir,
}

impl Replica {
    fn start(name: &'static str, ns: &str, dir: &std::path::Path) -> Replica {
        let storage = tempfile::tempdir().unwrap();
        let log = dir.join(format!("{name}.log"));
        let metrics = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["--log-format", "json", "agent", "--leader-elect"])
            .args(["--namespace", ns, "--leader-election-namespace", ns])
            .args(["--leader-election-lease-duration", "6s"])
            .args(["--leader-election-renew-deadline", "4s"])
            .args(["--leader-election-retry-period", "1s"])
            .arg("--storage-dir")
            .arg(storage.path())
            .arg(format!("--metrics-addr=127.0.0.1:{metrics}"))
            .arg(format!("--receiver-addr=127.0.0.1:{}", free_port()))
            .env("KUBECONFIG", support::kubeconfig())
            .env("POD_NAME", name)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica {
            name,
            child,
            log,
            metrics,
            _storage: storage,
        }
    }

    /// GET `path` on the metrics port: status code and body.
    fn get(&self, path: &str) -> Result<(u16, String), String> {
        let mut stream =
            TcpStream::connect(("127.0.0.1", self.metrics)).map_err(|e| e.to_string())?;
        use std::io::Write;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| e.to_string())?;
        let code = answer
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| answer.clone())?;
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        Ok((code, body.to_string()))
    }

    /// The log's JSON lines.
    fn lines(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The time span of every reconcile it logged: (start, end) in seconds since the epoch.
    fn reconciles(&self) -> Vec<(f64, f64)> {
        self.lines()
            .iter()
            .filter(|l| l["message"] == "reconciled")
            .map(|l| {
                let end = epoch(l["timestamp"].as_str().unwrap());
                (end - l["seconds"].as_f64().unwrap(), end)
            })
            .collect()
    }

    /// When it logged `message` first, in seconds since the epoch.
    fn logged(&self, message: &str) -> Option<f64> {
        self.lines()
            .iter()
            .find(|l| l["message"] == message)
            .map(|l| epoch(l["timestamp"].as_str().unwrap()))
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn epoch(timestamp: &str) -> f64 {
    let t: k8s_openapi::jiff::Timestamp = timestamp.parse().unwrap();
    t.as_nanosecond() as f64 / 1e9
}

fn now() -> f64 {
    epoch(&k8s_openapi::jiff::Timestamp::now().to_string())
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt("sluice-leader")
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
}

#[tokio::test]
async fn two_replicas_take_turns_and_a_killed_leader_is_replaced() {
    // The test's agent is the two processes below: no controllers in the test process.
    let agent = Agent::start("leader").await;
    agent.stop_controllers();
    let ns = agent.ns().to_string();
    let logs = tempfile::tempdir().unwrap();
    let leases: Api<Lease> = Api::namespaced(agent.client.clone(), &ns);

    let mut a = Replica::start("replica-a", &ns, logs.path());
    eventually(Duration::from_secs(30), "replica-a leads", || async {
        match holder(&leases).await {
            Some(h) if h == "replica-a" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let b = Replica::start("replica-b", &ns, logs.path());

    // Both answer health and readiness; only the leader says so in its metrics.
    for replica in [&a, &b] {
        eventually(Duration::from_secs(30), "ready", || async {
            match replica.get("/readyz") {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await;
        assert_eq!(replica.get("/healthz").unwrap().0, 200);
    }

    let first = agent.push(&[(
        "deploy/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n",
    )]);
    agent.create_source("app", "1s").await;
    agent
        .create_kustomization("app", "app", "./deploy", json!({"prune": true}))
        .await;
    agent.wait_applied("app", &first).await;

    let (_, leader_metrics) = a.get("/metrics").unwrap();
    let (_, standby_metrics) = b.get("/metrics").unwrap();
    assert!(
        leader_metrics.contains("sluice_leader 1"),
        "{leader_metrics}"
    );
    assert!(
        leader_metrics.contains(r#"sluice_reconcile_total{kind="Kustomization",result="success"}"#),
        "{leader_metrics}"
    );
    assert!(leader_metrics.contains(r#"sluice_build_info{version=""#));
    assert!(
        standby_metrics.contains("sluice_leader 0"),
        "{standby_metrics}"
    );
    assert!(
        !standby_metrics.contains("sluice_reconcile_total{"),
        "the standby reconciled:\n{standby_metrics}"
    );

    // Kill the leader: the standby takes over once the Lease has gone unrenewed for its duration.
    a.child.kill().unwrap();
    let killed = now();
    a.child.wait().unwrap();
    // The Lease names the new holder a moment before its log line is written: wait for both.
    eventually(Duration::from_secs(30), "replica-b leads", || async {
        match (holder(&leases).await, b.logged("became the leader")) {
            (Some(h), Some(_)) if h == "replica-b" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let took_over = b.logged("became the leader").unwrap() - killed;
    println!("takeover {took_over:.1}s after SIGKILL (lease {LEASE:?}, retry {RETRY:?})");
    // The protocol's bound: the last renewal was at most a retry period before the kill, and the
    // standby looks every retry period.
    assert!(
        took_over <= (LEASE + RETRY * 2).as_secs_f64(),
        "takeover took {took_over:.1}s"
    );

    // The new leader reconciles what comes next.
    let second = agent.push(&[(
        "deploy/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: green\n",
    )]);
    agent.wait_applied("app", &second).await;
    let cms: Api<ConfigMap> = Api::namespaced(agent.client.clone(), &ns);
    assert_eq!(
        cms.get("settings").await.unwrap().data.unwrap()["color"],
        "green"
    );

    // Never two reconciles at once: every reconcile of the old leader ended before the first of
    // the new one started, and the new one reconciled nothing before it led.
    let (old, new) = (a.reconciles(), b.reconciles());
    assert!(!old.is_empty() && !new.is_empty());
    let old_end = old.iter().map(|r| r.1).fold(f64::MIN, f64::max);
    let new_start = new.iter().map(|r| r.0).fold(f64::MAX, f64::min);
    assert!(
        old_end < new_start,
        "{} reconciled until {old_end}, {} from {new_start}",
        a.name,
        b.name
    );
    assert!(new_start >= b.logged("became the leader").unwrap());

    // Someone else takes the Lease: the leader steps down at its next renewal and exits.
    let mut lease = leases.get("sluice-leader").await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("intruder".into());
    leases
        .replace("sluice-leader", &PostParams::default(), &lease)
        .await
        .unwrap();
    let mut b = b;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = b.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica-b did not step down"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!status.success());
    let log = std::fs::read_to_string(&b.log).unwrap();
    assert!(log.contains("lost the Lease"), "{log}");

    agent.finish().await;
}
