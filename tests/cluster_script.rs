//! `scripts/cluster` on its own ports and state directory: `up` twice is harmless; `down` stops
//! exactly what `up` started and leaves nothing behind: no process, port, mount, network
//! namespace, network interface, cgroup or file outside the state directory, even after a pod
//! ran on the real node. A busy port, a component that fails and a user who is not root are
//! reported, and nothing stays started.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Ports for the clusters these tests make: away from the test cluster's own (which
/// `scripts/test` passes in SLUICE_CLUSTER_PORT), so runs on different ports never meet.
fn port(offset: u16) -> u16 {
    let base: u16 = std::env::var("SLUICE_CLUSTER_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(17443);
    base + offset
}

fn cluster(dir: &Path, port: u16, command: &[&str]) -> Output {
    Command::new(support::repo_root().join("scripts/cluster"))
        .args(command)
        .env("SLUICE_CLUSTER_DIR", dir)
        .env("SLUICE_CLUSTER_PORT", port.to_string())
        .env_remove("KUBECONFIG")
        .output()
        .expect("scripts/cluster runs")
}

fn pids(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(dir.join("run")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "pid"))
        .map(|e| {
            let text = std::fs::read_to_string(e.path()).unwrap();
            text.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect()
}

/// Running, as opposed to gone or a zombie waiting to be reaped by whoever adopted it.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Every process whose command line or working files mention `dir`.
fn processes_mentioning(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if cmdline.contains(&needle) && running(pid) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|line| line.contains(&needle))
        .map(String::from)
        .collect()
}

/// The cgroup `up` makes for the node's pods, in every v1 hierarchy where it exists.
fn cgroups_of(port: u16) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let own = own
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .unwrap_or_else(|| "/".into());
    let leaf = format!("{}/sluice-{port}", own.trim_end_matches('/'));
    std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| PathBuf::from(format!("{}{leaf}", e.path().display())))
        .filter(|path| path.exists())
        .collect()
}

fn cni_results() -> Vec<String> {
    std::fs::read_dir("/var/lib/cni/results")
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `down` when a test ends early, so a failed assertion leaves no cluster running.
struct DownOnDrop<'a>(&'a Path, u16);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        if self.0.exists() {
            cluster(self.0, self.1, &["down"]);
        }
    }
}

#[test]
fn up_twice_then_down_leaves_nothing_behind() {
    let port = port(500);
    let registry_port = port - 6;
    let dir = tempdir("twice");
    let _down = DownOnDrop(&dir, port);
    let first = cluster(&dir, port, &["up"]);
    assert!(
        first.status.success(),
        "first up failed: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let started = pids(&dir);
    assert_eq!(started.len(), 11, "expected eleven components: {started:?}");

    let second = cluster(&dir, port, &["up"]);
    assert!(second.status.success(), "second up failed: {second:?}");
    assert_eq!(pids(&dir), started, "the second up restarted components");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !stderr.contains("started"),
        "the second up started something: {stderr}"
    );
    assert!(cluster(&dir, port, &["status"]).status.success());

    // A pod on the real node, so that down has containers, mounts and cgroups to clean up.
    let kubectl = |args: &[&str]| {
        let out =
            Command::new(std::env::var("SLUICE_KUBECTL").unwrap_or_else(|_| "kubectl".into()))
                .arg("--kubeconfig")
                .arg(dir.join("kubeconfig"))
                .args(args)
                .output()
                .unwrap();
        assert!(out.status.success(), "kubectl {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let nodes = kubectl(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.status.nodeInfo.containerRuntimeVersion} {end}",
    ]);
    assert!(nodes.contains("real-node-0=containerd://"), "{nodes}");
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
        "spec": {"nodeSelector": {"sluice.dev/node": "real"},
          "tolerations": [{"key": "sluice.dev/node", "operator": "Exists"}],
          "containers": [{"name": "c", "image": "sluice.dev/pause:1", "imagePullPolicy": "Never"}]}}"#;
    let file = dir.join("pod.json");
    std::fs::write(&file, pod).unwrap();
    kubectl(&["apply", "-f", file.to_str().unwrap()]);
    kubectl(&["wait", "--for=condition=Ready", "pod/p", "--timeout=120s"]);
    assert!(
        !mounts_under(&dir).is_empty(),
        "a running pod has mounts under the state dir"
    );
    assert!(!cgroups_of(port).is_empty());
    // CNI caches each sandbox's results on the host, by network name and sandbox id.
    let network = format!("sluice-{port}-");
    let sandboxes: Vec<String> = cni_results()
        .iter()
        .filter_map(|f| Some(f.strip_prefix(&network)?.split('-').next()?.to_string()))
        .collect();
    assert!(
        !sandboxes.is_empty(),
        "no CNI result for the pod: {:?}",
        cni_results()
    );

    let down = cluster(&dir, port, &["down"]);
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(down.status.success(), "down failed: {said}");
    for pid in &started {
        assert!(
            !running(*pid),
            "process {pid} still runs after down: {said}"
        );
    }
    assert_eq!(
        processes_mentioning(&dir),
        Vec::<String>::new(),
        "processes left: {said}"
    );
    for port in [port, registry_port] {
        assert!(!listening(port), "port {port} still listens after down");
    }
    assert_eq!(mounts_under(&dir), Vec::<String>::new(), "mounts left");
    assert_eq!(cgroups_of(port), Vec::<PathBuf>::new(), "cgroups left");
    assert!(
        !ip(&["netns", "list"]).contains(&format!("sluice-{port}")),
        "network namespace left"
    );
    assert!(
        ip(&["link", "show", &format!("sl{port}")]).is_empty(),
        "host interface left"
    );
    assert!(
        !Path::new(&format!(
            "/etc/containers/certs.d/127.0.0.1:{registry_port}"
        ))
        .exists()
    );
    let left: Vec<String> = cni_results()
        .into_iter()
        .filter(|f| f.starts_with(&network) || sandboxes.iter().any(|id| f.contains(id.as_str())))
        .collect();
    assert_eq!(left, Vec::<String>::new(), "CNI results left");
    let host_rules = Command::new("iptables-save").output().unwrap();
    assert!(
        !String::from_utf8_lossy(&host_rules.stdout).contains("KUBE-"),
        "kube-proxy's rules reached the host's tables"
    );
    assert!(!dir.exists(), "down left its state directory");
}

#[test]
fn a_busy_port_is_reported_and_nothing_is_started() {
    let dir = tempdir("busy");
    let port = port(600);
    // Hold the registry's host port of this layout.
    let _holder = TcpListener::bind(("127.0.0.1", port - 6)).expect("a free port to hold");
    let out = cluster(&dir, port, &["up"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("port {} (for registry)", port - 6)) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(
        pids(&dir).is_empty(),
        "something was started: {:?}",
        pids(&dir)
    );
    assert!(!ip(&["netns", "list"]).contains(&format!("sluice-{port}")));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failing_component_is_named_with_its_log_and_everything_is_stopped() {
    let dir = tempdir("failing");
    let port = port(700);
    // etcd cannot use a data directory that is a file.
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/etcd"), "not a directory").unwrap();
    let out = cluster(&dir, port, &["up"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("etcd exited while waiting for etcd to be healthy"),
        "{stderr}"
    );
    assert!(
        stderr.contains("last lines of") && stderr.contains("etcd.log"),
        "{stderr}"
    );
    assert!(
        stderr.contains("stopping what this cluster runs"),
        "{stderr}"
    );
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
    assert!(
        !ip(&["netns", "list"]).contains(&format!("sluice-{port}")),
        "network namespace left"
    );
    assert!(!listening(port) && !listening(port - 6));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(dir.with_extension("logs"));
}

/// A component counts as running from the moment `start` returns, although right after the fork
/// its process still runs the shell, and stops counting once it exits. (`up` once took a
/// kube-apiserver that had not yet exec'd for one that had exited, and gave up.) The log here is
/// a named pipe, so the forked shell waits on opening it, before any exec, until it is read.
#[test]
fn a_started_component_is_running_at_once_and_not_after_it_exits() {
    let dir = tempdir("starting");
    std::fs::create_dir_all(dir.join("run")).unwrap();
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let script = r#"
        set -euo pipefail
        dir="$1"
        source "$2/scripts/cluster.d/lib.sh"
        mkfifo "$dir/logs/sleeper.log"
        start sleeper host /bin/sleep 1 2>/dev/null
        if pid_of sleeper >/dev/null; then echo "before exec: running"; else echo "before exec: gone"; fi
        cat "$dir/logs/sleeper.log" >/dev/null &
        sleep 0.2
        if pid_of sleeper >/dev/null; then echo "after exec: running"; else echo "after exec: gone"; fi
        wait
        if pid_of sleeper >/dev/null; then echo "after exit: running"; else echo "after exit: gone"; fi
    "#;
    let out = Command::new("timeout")
        .args(["20", "bash", "-c", script, "bash"])
        .arg(&dir)
        .arg(support::repo_root())
        .output()
        .expect("bash runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "before exec: running",
            "after exec: running",
            "after exit: gone"
        ],
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn up_without_root_says_so() {
    let dir = tempdir("user");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(support::repo_root().join("scripts/cluster"))
        .arg("up")
        .env("SLUICE_CLUSTER_DIR", &dir)
        .env("SLUICE_CLUSTER_PORT", port(800).to_string())
        .output()
        .expect("setpriv runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs root"), "{stderr}");
    assert!(!dir.exists());
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
