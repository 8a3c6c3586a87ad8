//! The `sluice` binary's surface: version, help, exit codes and log formats.

mod support;

use std::process::{Command, Output};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the sluice binary runs")
}

#[test]
fn version_flag_prints_the_crate_version() {
    let out = sluice(&["--version"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("sluice {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_lists_the_subcommands_and_global_flags() {
    let out = sluice(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for expected in ["version", "--log-format", "--log-level"] {
        assert!(help.contains(expected), "--help lacks {expected}:\n{help}");
    }
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = sluice(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-command"));
}

#[test]
fn unreachable_server_is_an_error_with_exit_code_2() {
    let dir = std::env::temp_dir().join(format!("sluice-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    // Port 1 on loopback: nothing listens there.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n\
         current-context: x\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["version", "--server"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains("Connection refused")),
        "{out:?}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn json_logs_are_one_object_per_line_and_the_server_version_is_real() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "version",
            "--server",
        ])
        .env("KUBECONFIG", support::kubeconfig())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("server v1."), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"))
        })
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "asking the API server for its version"
                && l["level"] == "DEBUG"
                && l["server"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("https://127.0.0.1:"))),
        "no JSON debug line for the version request:\n{stderr}"
    );
}

#[test]
fn text_logs_are_plain_lines() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--log-level", "debug", "version", "--server"])
        .env("KUBECONFIG", support::kubeconfig())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("asking the API server for its version"))
        .unwrap_or_else(|| panic!("no debug line:\n{stderr}"));
    assert!(line.contains("DEBUG") && !line.starts_with('{'), "{line}");
    assert!(
        !line.contains('\u{1b}'),
        "colour codes when stderr is not a terminal: {line}"
    );
}
