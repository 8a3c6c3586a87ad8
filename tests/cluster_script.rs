//! `scripts/cluster` on its own ports and state directory: `up` twice is harmless, `down` stops
//! exactly the processes `up` started and frees every port; a busy port is reported, not hung on.

mod support;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};

const PORT: u16 = 18443; // the components use the five ports below it too

fn cluster(dir: &Path, command: &str) -> Output {
    Command::new(support::repo_root().join("scripts/cluster"))
        .arg(command)
        .env("SLUICE_CLUSTER_DIR", dir)
        .env("SLUICE_CLUSTER_PORT", PORT.to_string())
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
            std::fs::read_to_string(e.path())
                .unwrap()
                .trim()
                .parse()
                .unwrap()
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

#[test]
fn up_twice_then_down_leaves_nothing_behind() {
    let dir = tempdir("twice");
    let first = cluster(&dir, "up");
    assert!(first.status.success(), "first up failed: {first:?}");
    let started = pids(&dir);
    assert_eq!(started.len(), 5, "expected five components: {started:?}");

    let second = cluster(&dir, "up");
    assert!(second.status.success(), "second up failed: {second:?}");
    assert_eq!(pids(&dir), started, "the second up restarted components");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !stderr.contains("started"),
        "the second up started something: {stderr}"
    );
    assert!(cluster(&dir, "status").status.success());

    let down = cluster(&dir, "down");
    assert!(down.status.success(), "down failed: {down:?}");
    for pid in &started {
        assert!(
            !running(*pid),
            "process {pid} still runs after down: {}",
            String::from_utf8_lossy(&down.stderr)
        );
    }
    for port in PORT - 5..=PORT {
        assert!(!listening(port), "port {port} still listens after down");
    }
    assert!(!dir.exists(), "down left its state directory");
}

#[test]
fn a_busy_port_is_reported_and_nothing_is_started() {
    let dir = tempdir("busy");
    // Hold the kube-apiserver port of a second cluster layout.
    let port = PORT - 100;
    let _holder = TcpListener::bind(("127.0.0.1", port)).expect("a free port to hold");
    let out = Command::new(support::repo_root().join("scripts/cluster"))
        .arg("up")
        .env("SLUICE_CLUSTER_DIR", &dir)
        .env("SLUICE_CLUSTER_PORT", port.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("port {port}")) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(
        pids(&dir).is_empty(),
        "something was started: {:?}",
        pids(&dir)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-cluster-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
