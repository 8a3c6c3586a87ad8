//! `sluice apply` and `sluice diff` on the real control plane, and the crash-point matrix: the
//! process is killed at each step of a reconcile, restarted, and the cluster must converge on the
//! desired set with no orphaned objects.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Api;
use kube::api::ListParams;

fn sluice(args: &[&str], crash_at: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(args)
        .env("KUBECONFIG", support::kubeconfig())
        .env_remove("SLUICE_CRASH_AT");
    if let Some(point) = crash_at {
        command.env("SLUICE_CRASH_AT", point);
    }
    command.output().expect("sluice runs")
}

/// Writes one ConfigMap per name into `dir` (replacing what was there), in namespace `ns`, plus
/// the Namespace itself.
fn write_set(dir: &Path, ns: &str, names: &[&str], value: &str) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("namespace.yaml"),
        format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
    )
    .unwrap();
    for name in names {
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  value: {value}\n"
        );
        std::fs::write(dir.join(format!("{name}.yaml")), text).unwrap();
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn owned_config_maps(client: &kube::Client, ns: &str, owner: &str) -> Vec<String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let list = api
        .list(&ListParams::default().labels(&format!("sluice.dev/name={owner}")))
        .await
        .unwrap();
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter(|cm| cm.metadata.deletion_timestamp.is_none())
        .filter_map(|cm| cm.metadata.name)
        .collect();
    names.sort();
    names
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("sluice-apply-cli-{name}-{}", std::process::id()))
}

/// A set applied from a directory of its own under one owner: the test namespace holding its
/// inventory, the namespace the set creates, and `sluice` run on it.
struct CliSet {
    client: kube::Client,
    home: support::TestNamespace,
    ns: String,
    dir: std::path::PathBuf,
    owner: &'static str,
}

impl CliSet {
    async fn new(prefix: &str, owner: &'static str) -> CliSet {
        let client = support::client().await;
        let home = support::TestNamespace::new(&client, prefix).await;
        let ns = format!("{}-app", home.name());
        CliSet {
            dir: temp(prefix),
            client,
            home,
            ns,
            owner,
        }
    }

    /// `sluice VERB DIR ARGS... --name OWNER --namespace HOME`.
    fn run(&self, verb: &str, args: &[&str]) -> Output {
        let dir = self.dir.to_str().unwrap();
        let owner = ["--name", self.owner, "--namespace", self.home.name()];
        sluice(&[&[verb, dir][..], args, &owner].concat(), None)
    }

    async fn cleanup(self) {
        Api::<Namespace>::all(self.client.clone())
            .delete(&self.ns, &Default::default())
            .await
            .unwrap();
        std::fs::remove_dir_all(&self.dir).unwrap();
        self.home.cleanup(&self.client).await;
    }
}

#[tokio::test]
async fn apply_diff_and_prune_from_the_command_line() {
    let set = CliSet::new("cli-home", "shop").await;
    let (client, ns, dir) = (&set.client, &set.ns, &set.dir);

    write_set(dir, ns, &["a", "b"], "one");
    let out = set.run("apply", &["--prune"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("Namespace/{ns} created")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ConfigMap/{ns}/a created")),
        "{stdout}"
    );

    let out = set.run("diff", &["--prune"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "no changes expected: {}",
        text(&out)
    );

    write_set(dir, ns, &["a"], "two");
    let out = set.run("diff", &["--prune"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ConfigMap/{ns}/a drifted")),
        "{stdout}"
    );
    assert!(stdout.contains("+  value: two"), "{stdout}");
    assert!(
        stdout.contains(&format!("ConfigMap/{ns}/b deleted")),
        "{stdout}"
    );

    let out = set.run("apply", &["--prune", "--wait"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ConfigMap/{ns}/a configured")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("ConfigMap/{ns}/b deleted")),
        "{stdout}"
    );
    assert_eq!(owned_config_maps(client, ns, "shop").await, ["a"]);

    // Bad input: nothing is applied and the exit code says so.
    std::fs::write(
        dir.join("broken.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: [oops\n",
    )
    .unwrap();
    let out = set.run("apply", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.yaml"),
        "{}",
        text(&out)
    );

    set.cleanup().await;
}

/// Waits (up to 60 s) until a dry-run deletion of `name` is denied, or allowed: admission
/// policies take effect a moment after they are created or unbound.
async fn deletion_denied(api: &Api<ConfigMap>, name: &str, denied: bool) {
    let dry_run = kube::api::DeleteParams {
        dry_run: true,
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while api.delete(name, &dry_run).await.is_err() != denied {
        assert!(
            std::time::Instant::now() < deadline,
            "a deletion of {name} was not {} within 60 s",
            if denied { "denied" } else { "allowed" }
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A deletion the API server refuses (here a ValidatingAdmissionPolicy denying it) fails `sluice
/// apply --prune` with the object and the server's reason; the object stays in the inventory and
/// is pruned by the next run once the server allows it.
#[tokio::test]
async fn a_refused_prune_fails_the_command_and_is_tried_again() {
    let set = CliSet::new("cli-refused", "guarded").await;
    let (client, ns, dir) = (&set.client, &set.ns, &set.dir);

    write_set(dir, ns, &["a", "keep-b"], "one");
    let out = set.run("apply", &["--prune"]);
    assert!(out.status.success(), "{}", text(&out));

    // Deleting a ConfigMap whose name starts with keep- is denied in this namespace.
    let policy_name = format!("{}-no-delete", set.home.name());
    let policies: Api<ValidatingAdmissionPolicy> = Api::all(client.clone());
    let bindings: Api<ValidatingAdmissionPolicyBinding> = Api::all(client.clone());
    let policy = serde_json::from_value(serde_json::json!({
        "metadata": {"name": policy_name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                "resourceRules": [{
                    "apiGroups": [""], "apiVersions": ["v1"],
                    "operations": ["DELETE"], "resources": ["configmaps"],
                }],
            },
            "validations": [{
                "expression": "!oldObject.metadata.name.startsWith('keep-')",
                "message": "keep- objects are not deleted here",
            }],
        },
    }))
    .unwrap();
    policies.create(&Default::default(), &policy).await.unwrap();
    let binding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": policy_name},
        "spec": {"policyName": policy_name, "validationActions": ["Deny"]},
    }))
    .unwrap();
    bindings
        .create(&Default::default(), &binding)
        .await
        .unwrap();
    // The policy is in force once a dry-run deletion of another keep- object is denied.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let probe: ConfigMap = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "keep-probe"},
    }))
    .unwrap();
    config_maps
        .create(&Default::default(), &probe)
        .await
        .unwrap();
    deletion_denied(&config_maps, "keep-probe", true).await;

    // Refused by the server, as a refused apply is: exit code 2.
    write_set(dir, ns, &["a"], "one");
    let out = set.run("apply", &["--prune"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("ConfigMap/{ns}/keep-b failed")),
        "{}",
        text(&out)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 object(s) could not be pruned")
            && stderr.contains("keep-b")
            && stderr.contains("keep- objects are not deleted here"),
        "{}",
        text(&out)
    );
    assert_eq!(
        owned_config_maps(client, ns, "guarded").await,
        ["a", "keep-b"]
    );

    // Allowed again: the next run prunes it.
    bindings
        .delete(&policy_name, &Default::default())
        .await
        .unwrap();
    deletion_denied(&config_maps, "keep-probe", false).await;
    let out = set.run("apply", &["--prune"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("ConfigMap/{ns}/keep-b deleted")),
        "{}",
        text(&out)
    );
    assert_eq!(owned_config_maps(client, ns, "guarded").await, ["a"]);

    policies
        .delete(&policy_name, &Default::default())
        .await
        .unwrap();
    set.cleanup().await;
}

/// The points `SLUICE_CRASH_AT` can name, in the order a reconcile passes them.
const CRASH_POINTS: &[&str] = &[
    "after-intent",
    "after-stage-Definitions",
    "after-stage-Resources",
    "after-apply",
    "after-delete",
    "after-prune",
];

#[tokio::test]
async fn a_crash_at_any_step_converges_on_restart() {
    let client = support::client().await;
    let home = support::TestNamespace::new(&client, "crash").await;
    for (i, point) in CRASH_POINTS.iter().enumerate() {
        let ns = format!("{}-{i}", home.name());
        let owner = format!("crash-{i}");
        let dir = temp(&format!("crash-{i}"));
        let dir_arg = dir.to_str().unwrap();
        let args = [
            "apply",
            dir_arg,
            "--prune",
            "--name",
            &owner,
            "--namespace",
            home.name(),
        ];

        write_set(&dir, &ns, &["keep", "drop-1", "drop-2"], "v1");
        let out = sluice(&args, None);
        assert!(out.status.success(), "{point}: first apply: {}", text(&out));

        // The next revision drops two objects and adds one; the process dies at `point`.
        write_set(&dir, &ns, &["keep", "new"], "v2");
        let out = sluice(&args, Some(point));
        assert!(
            !out.status.success(),
            "{point}: the crash point was not reached: {}",
            text(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(&format!("crash point {point}")),
            "{}",
            text(&out)
        );

        let out = sluice(&args, None);
        assert!(out.status.success(), "{point}: restart: {}", text(&out));
        assert_eq!(
            owned_config_maps(&client, &ns, &owner).await,
            ["keep", "new"],
            "after a crash at {point}"
        );
        let keep: ConfigMap = Api::namespaced(client.clone(), &ns)
            .get("keep")
            .await
            .unwrap();
        assert_eq!(
            keep.data.unwrap()["value"],
            "v2",
            "after a crash at {point}"
        );

        // The inventory is exact again: a second run changes nothing.
        let out = sluice(&args, None);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && !stdout.contains("created") && !stdout.contains("deleted"),
            "{point}: {}",
            text(&out)
        );

        Api::<Namespace>::all(client.clone())
            .delete(&ns, &Default::default())
            .await
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }
    home.cleanup(&client).await;
}
