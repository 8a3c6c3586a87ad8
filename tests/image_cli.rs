//! `sluice image scan|policy|update` against a real registry (an anonymous `docker-registry` with
//! the cluster's CA, tags pushed with skopeo), a scripted one that paginates, and a directory of
//! YAML files: the tags listed (every page followed), the tag a policy chooses (and its digest),
//! the diff the setters would make and `--write`; a missing repository, a range matching nothing
//! and a file that is not YAML fail with a clear message and change nothing.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use support::registry::{self, ExtraRegistry};
use support::scripted_registry::{PAGED, ScriptedRegistry};

fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn scan_policy_and_update_on_the_command_line() {
    let reg = ExtraRegistry::anonymous();
    let image = format!("{}/team/app", reg.address);
    let tags = ["1.0.0", "1.1.0", "2.0.0-rc.1", "latest"];
    for tag in tags {
        registry::copy_to(&format!("{image}:{tag}"), None);
    }
    let ca = registry::cluster_ca();
    let ca = ca.to_str().unwrap();

    let out = sluice(&["image", "scan", &image, "--ca-file", ca]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut listed: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    listed.sort();
    assert_eq!(listed, tags);

    let out = sluice(&[
        "image",
        "policy",
        &image,
        "--ca-file",
        ca,
        "--semver",
        ">=1.0.0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{image}:1.1.0"));
    let out = sluice(&[
        "image",
        "policy",
        &image,
        "--ca-file",
        ca,
        "--semver",
        ">=2.0.0-0",
        "--digest",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let chosen = text(&out.stdout);
    assert!(
        chosen.starts_with(&format!("{image}:2.0.0-rc.1@sha256:")),
        "{chosen}"
    );

    // A range matching nothing and a missing repository: exit non-zero with the reason.
    let out = sluice(&[
        "image",
        "policy",
        &image,
        "--ca-file",
        ca,
        "--semver",
        ">=9.0.0",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("none of the 4 tags"),
        "{}",
        text(&out.stderr)
    );
    let missing = format!("{}/team/nothing", reg.address);
    let out = sluice(&["image", "scan", &missing, "--ca-file", ca]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("was not found"),
        "{}",
        text(&out.stderr)
    );

    // A registry that paginates: every page is followed, one request per page.
    let scripted = ScriptedRegistry::start();
    let paged = format!("{}/paged", scripted.address);
    let out = sluice(&[
        "image",
        "scan",
        &paged,
        "--insecure",
        "--page-size",
        "100",
        "--stats",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listed: BTreeSet<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    let expected: BTreeSet<String> = (0..PAGED).map(|i| format!("1.0.{i}")).collect();
    assert_eq!(listed, expected);
    assert!(
        text(&out.stderr).contains(&format!("{PAGED} tags, 3 requests")),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(scripted.requests("/v2/paged/tags/list"), 3);
    let out = sluice(&[
        "image",
        "policy",
        &paged,
        "--insecure",
        "--page-size",
        "100",
        "--semver",
        "~1.0",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{paged}:1.0.249"));
    // Without --page-size no size is asked for: the registry chooses (here, all at once).
    let out = sluice(&["image", "scan", &paged, "--insecure", "--stats"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), PAGED);
    assert!(
        text(&out.stderr).contains(&format!("{PAGED} tags, 1 requests")),
        "{}",
        text(&out.stderr)
    );

    // The setters: the diff first (exit 1, nothing written), then --write.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("deploy.yaml");
    let original = format!(
        "# the app\nspec:\n  containers:\n    - name: app\n      image: {image}:1.0.0 # {{\"$imagepolicy\": \"apps:app\"}}\n      args: ['--port', \"8080\"]\n"
    );
    std::fs::write(&file, &original).unwrap();
    std::fs::write(dir.path().join("notes.yaml"), "plain: file\n").unwrap();
    let policy = format!("apps:app={image}:1.1.0");
    let dir_arg = dir.path().to_str().unwrap();
    let out = sluice(&["image", "update", dir_arg, "--policy", &policy]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let diff = text(&out.stdout);
    assert!(
        diff.contains(&format!("-      image: {image}:1.0.0"))
            && diff.contains(&format!("+      image: {image}:1.1.0")),
        "{diff}"
    );
    assert_eq!(read(&file), original, "no --write, no change");

    let out = sluice(&["image", "update", dir_arg, "--policy", &policy, "--write"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "updated deploy.yaml");
    assert_eq!(
        read(&file),
        original.replace(&format!("{image}:1.0.0"), &format!("{image}:1.1.0"))
    );
    let out = sluice(&["image", "update", dir_arg, "--policy", &policy]);
    assert!(out.status.success(), "up to date: {}", text(&out.stdout));
    assert!(out.stdout.is_empty());

    // A file with a marker that is not YAML, sorted after one that would change: the error names
    // it and no file is written.
    let before = read(&file);
    let broken = format!("image: [{image}:1.0.0 # {{\"$imagepolicy\": \"apps:app\"}}\n");
    let broken_path = dir.path().join("zz-broken.yaml");
    std::fs::write(&broken_path, &broken).unwrap();
    let newer = format!("apps:app={image}:1.2.0");
    let out = sluice(&["image", "update", dir_arg, "--policy", &newer, "--write"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("zz-broken.yaml"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(read(&broken_path), broken);
    assert_eq!(read(&file), before, "nothing written when one file is bad");
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}
