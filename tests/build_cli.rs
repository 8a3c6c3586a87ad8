//! `sluice build` as a user runs it: output order and formats, the Flux options on the command
//! line, and bad input (exit 1, `file:line: message` on stderr, nothing on stdout).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("sluice runs")
}

fn docs(out: &Output) -> Vec<Value> {
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(&text).expect("output is YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn prints_yaml_in_apply_order() {
    let out = sluice(&["build", "fixtures/build/namespace"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kinds: Vec<String> = docs(&out)
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds[0], "Namespace");
    assert_eq!(kinds[1], "CustomResourceDefinition");
    assert_eq!(kinds.len(), 7);
}

#[test]
fn prints_json_list() {
    let out = sluice(&["build", "fixtures/build/base-app", "--output", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 7);
    let cm = items.iter().find(|i| i["kind"] == "ConfigMap").unwrap();
    assert!(
        cm["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("app-config-")
    );
}

#[test]
fn flux_options_on_the_command_line() {
    let out = sluice(&[
        "build",
        "fixtures/build/flux-substitute",
        "--set-namespace",
        "team-b",
        "--name-prefix",
        "b-",
        "--image",
        "nginx=registry.local/nginx:1.27",
        "--label",
        "owner=team-b",
        "--annotation",
        "reviewed=yes",
        "--substitute",
        "REPLICAS=3",
        "--substitute",
        "DOMAIN=example.org",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = docs(&out);
    let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(deploy["metadata"]["namespace"], "team-b");
    assert_eq!(deploy["metadata"]["name"], "b-web");
    assert_eq!(deploy["metadata"]["labels"]["owner"], "team-b");
    assert_eq!(deploy["metadata"]["annotations"]["reviewed"], "yes");
    assert_eq!(
        deploy["spec"]["replicas"], 3,
        "a substituted number stays a number"
    );
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/nginx:1.27"
    );
    assert!(
        deploy["spec"]["selector"]["matchLabels"]
            .get("owner")
            .is_none(),
        "commonMetadata is not a selector"
    );
    let cm = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap" && d["metadata"]["name"] == "b-settings")
        .unwrap();
    assert_eq!(cm["data"]["url"], "https://example.org/app");
    assert_eq!(cm["data"]["region"], "eu-west-1", "default used");
    assert_eq!(
        cm["data"]["literal"], "${NOT_SUBSTITUTED}",
        "escaped with $$"
    );
    let raw = docs
        .iter()
        .find(|d| d["metadata"]["name"] == "b-raw")
        .unwrap();
    assert_eq!(raw["data"]["kept"], "${DOMAIN}", "opted out");
}

#[test]
fn flux_kustomization_file() {
    let out = sluice(&[
        "build",
        "fixtures/build/flux-substitute",
        "--kustomization",
        "fixtures/build/flux-substitute/flux-kustomization.yaml",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let docs = docs(&out);
    let deploy = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    assert_eq!(deploy["metadata"]["namespace"], "apps");
    assert_eq!(deploy["metadata"]["name"], "web-prod");
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert_eq!(deploy["metadata"]["annotations"]["patched"], "by-flux");
}

/// Every case under fixtures/build-errors/ fails with its expected message, exit 1, and no stdout.
#[test]
fn bad_input_fails_with_file_and_line() {
    let dir = repo().join("fixtures/build-errors");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .collect();
    cases.sort();
    assert!(cases.len() >= 15);
    let mut failures = Vec::new();
    for case in &cases {
        let rel = |p: &Path| {
            p.strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .to_string()
        };
        let build_dir = match std::fs::read_to_string(case.join("build-dir")) {
            Ok(d) => case.join(d.trim()),
            Err(_) => case.clone(),
        };
        let mut args = vec!["build".to_string(), rel(&build_dir)];
        if let Ok(extra) = std::fs::read_to_string(case.join("args")) {
            args.extend(extra.split_whitespace().map(|a| {
                if a == "ROOT" {
                    rel(case)
                } else {
                    a.to_string()
                }
            }));
        }
        let expect = std::fs::read_to_string(case.join("expect"))
            .unwrap()
            .trim()
            .to_string();
        let out = sluice(&args.iter().map(String::as_str).collect::<Vec<_>>());
        let err = stderr(&out);
        let name = case.file_name().unwrap().to_string_lossy();
        if out.status.code() != Some(1) || !out.stdout.is_empty() || !err.contains(&expect) {
            failures.push(format!(
                "{name}: exit {:?}, {} bytes on stdout, stderr {err:?}, expected it to contain {expect:?}",
                out.status.code(),
                out.stdout.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
