//! Hostile repositories against one agent on the real control plane: symlink loops (direct and
//! through a chain), component and base cycles (self and through several directories), deeply
//! nested YAML, a file of millions of lines, a `.sourceignore` over its size cap, a tree of a
//! hundred thousand files and absurd durations. Each gets a clear error on its own object, while
//! a healthy Kustomization on the same agent keeps reconciling throughout. The fixtures are
//! generated here, not committed.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use kube::Api;
use serde_json::json;
use sluice::api::condition::ConditionStatus;
use sluice::api::git_repository::GitRepository;
use sluice::api::kustomization::Kustomization;
use support::agent::{self, Agent, ready};
use support::git_servers::GitDaemon;
use support::git_signing::{Signing, WorkRepo};

const COMPONENT: &str = "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n";

fn config_map(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

/// One hostile case: a branch of its own, and what its error must say.
struct Case {
    name: &'static str,
    /// The object that reports it: the Kustomization (build errors) or its GitRepository.
    on_source: bool,
    reason: &'static str,
    says: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "symlink-self",
        on_source: false,
        reason: "BuildFailed",
        says: "cycle: deploy -> deploy/again (a symlink to deploy)",
    },
    Case {
        name: "symlink-chain",
        on_source: false,
        reason: "BuildFailed",
        says: "deploy/a -> deploy/a/to-b -> deploy/a/to-b/to-a (a symlink to deploy/a)",
    },
    Case {
        name: "component-self",
        on_source: false,
        reason: "BuildFailed",
        says: "cycle: comp/kustomization.yaml -> comp/kustomization.yaml",
    },
    Case {
        name: "component-chain",
        on_source: false,
        reason: "BuildFailed",
        says: "cycle: c1/kustomization.yaml -> c2/kustomization.yaml -> c3/kustomization.yaml -> c1/kustomization.yaml",
    },
    Case {
        name: "base-self",
        on_source: false,
        reason: "BuildFailed",
        says: "cycle: deploy/kustomization.yaml -> deploy/kustomization.yaml",
    },
    Case {
        name: "base-chain",
        on_source: false,
        reason: "BuildFailed",
        says: "cycle: deploy/kustomization.yaml -> b1/kustomization.yaml -> b2/kustomization.yaml -> deploy/kustomization.yaml",
    },
    Case {
        name: "deep-yaml",
        on_source: false,
        reason: "BuildFailed",
        says: "deploy/deep.yaml:1: invalid YAML",
    },
    Case {
        name: "million-lines",
        on_source: false,
        reason: "BuildFailed",
        says: "deploy/lines.yaml: the build is over its limit of 20000 objects",
    },
    Case {
        name: "huge-file",
        on_source: false,
        reason: "BuildFailed",
        says: "over the limit of 33554432 bytes",
    },
    Case {
        name: "big-sourceignore",
        on_source: true,
        reason: "ArtifactFailed",
        says: ".sourceignore is 1048577 bytes, more than the limit of 1048576 bytes for ignore files",
    },
    Case {
        name: "many-files",
        on_source: true,
        reason: "ArtifactFailed",
        says: "more than the limit of 50000 files",
    },
];

/// Writes each case's tree on a branch of its own and pushes it.
fn publish_cases(work: &WorkRepo) {
    for case in CASES {
        work.git(&["checkout", "-q", "--orphan", case.name]);
        work.git(&["rm", "-rfq", "--ignore-unmatch", "."]);
        let _ = std::fs::remove_dir_all(work.path().join("deploy"));
        match case.name {
            "symlink-self" => {
                work.write("deploy/cm.yaml", &config_map("a", "1"));
                work.symlink("deploy/again", ".");
            }
            "symlink-chain" => {
                work.write("deploy/a/cm.yaml", &config_map("a", "1"));
                work.write("deploy/b/cm.yaml", &config_map("b", "1"));
                work.symlink("deploy/a/to-b", "../b");
                work.symlink("deploy/b/to-a", "../a");
            }
            "component-self" => {
                work.write(
                    "deploy/kustomization.yaml",
                    "resources: [cm.yaml]\ncomponents: [../comp]\n",
                );
                work.write("deploy/cm.yaml", &config_map("a", "1"));
                work.write(
                    "comp/kustomization.yaml",
                    &format!("{COMPONENT}components: [.]\n"),
                );
            }
            "component-chain" => {
                work.write("deploy/kustomization.yaml", "components: [../c1]\n");
                for (me, next) in [("c1", "c2"), ("c2", "c3"), ("c3", "c1")] {
                    work.write(
                        &format!("{me}/kustomization.yaml"),
                        &format!("{COMPONENT}components: [../{next}]\n"),
                    );
                }
            }
            "base-self" => work.write("deploy/kustomization.yaml", "resources: [.]\n"),
            "base-chain" => {
                work.write("deploy/kustomization.yaml", "resources: [../b1]\n");
                work.write("b1/kustomization.yaml", "resources: [../b2]\n");
                work.write("b2/kustomization.yaml", "resources: [../deploy]\n");
            }
            "deep-yaml" => {
                let depth = 100_000;
                work.write(
                    "deploy/deep.yaml",
                    &format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth)),
                );
            }
            "million-lines" => {
                // 2.4 million lines: 400,000 ConfigMaps in one 24 MB file.
                let mut text = String::with_capacity(25_000_000);
                for i in 0..400_000 {
                    text.push_str(&format!(
                        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c{i}\n"
                    ));
                }
                work.write("deploy/lines.yaml", &text);
            }
            "huge-file" => {
                let mut text = config_map("big", "1");
                text.push_str(&"# filler line of a file far too large to read\n".repeat(800_000));
                work.write("deploy/big.yaml", &text);
            }
            "big-sourceignore" => {
                // Its size is checked before it is read: one byte over the cap of 1 MiB.
                work.write("deploy/cm.yaml", &config_map("a", "1"));
                work.write(".sourceignore", &"#".repeat(1024 * 1024 + 1));
            }
            "many-files" => {
                work.write("deploy/cm.yaml", &config_map("a", "1"));
                work.commit("base", &Signing::None);
                add_many_files(work, 100, 1_000);
                work.push(&[&format!("HEAD:refs/heads/{}", case.name)]);
                continue;
            }
            other => unreachable!("{other}"),
        }
        work.commit(case.name, &Signing::None);
        work.push(&[&format!("HEAD:refs/heads/{}", case.name)]);
    }
}

/// Adds `dirs` × `per_dir` files to HEAD with git's plumbing (one blob, trees made with
/// mktree), so the tree exists in Git without a hundred thousand files on disk.
fn add_many_files(work: &WorkRepo, dirs: usize, per_dir: usize) {
    let git_stdin = |args: &[&str], input: &str| -> String {
        let mut child = Command::new("git")
            .arg("-C")
            .arg(work.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "git {args:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let blob = git_stdin(&["hash-object", "-w", "--stdin"], "x: 1\n");
    let leaf: String = (0..per_dir)
        .map(|i| format!("100644 blob {blob}\tf{i:05}.yaml\n"))
        .collect();
    let subtree = git_stdin(&["mktree"], &leaf);
    let head_tree = work.git(&["rev-parse", "HEAD^{tree}"]);
    let mut top = work.git(&["ls-tree", &head_tree]);
    top.push('\n');
    for d in 0..dirs {
        top.push_str(&format!("040000 tree {subtree}\tfiles{d:03}\n"));
    }
    let tree = git_stdin(&["mktree"], &top);
    let commit = work.git(&["commit-tree", &tree, "-p", "HEAD", "-m", "many files"]);
    work.git(&["reset", "-q", "--soft", &commit]);
}

fn git_repository(
    name: &str,
    url: &str,
    branch: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut spec =
        json!({"url": url, "interval": "1s", "timeout": "120s", "ref": {"branch": branch}});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "GitRepository", "metadata": {"name": name}, "spec": spec})
}

fn kustomization(
    name: &str,
    source: &str,
    ns: &str,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut spec = json!({"interval": "1m", "retryInterval": "2s", "timeout": "60s",
        "sourceRef": {"kind": "GitRepository", "name": source}, "path": "./deploy",
        "prune": true, "targetNamespace": ns});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization", "metadata": {"name": name}, "spec": spec})
}

#[tokio::test]
async fn hostile_repositories_fail_alone_and_the_agent_keeps_reconciling() {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::TestNamespace::new(&client, "hostile").await;
    let n = ns.name().to_string();
    let agent = Agent::start(agent::admin_config().await, &n, &[]).await;
    let daemon = GitDaemon::start();
    let kustomizations: Api<Kustomization> = Api::namespaced(client.clone(), &n);
    let sources: Api<GitRepository> = Api::namespaced(client.clone(), &n);
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), &n);

    // The healthy tenant: applied before the hostile ones arrive.
    daemon.create_repo("good.git");
    let good = WorkRepo::new(&daemon.url("good.git"));
    good.write("deploy/cm.yaml", &config_map("healthy", "1"));
    good.commit("one", &Signing::None);
    good.push(&["main"]);
    agent::create(
        &client,
        &n,
        git_repository("good", &daemon.url("good.git"), "main", json!({})),
    )
    .await
    .unwrap();
    agent::create(&client, &n, kustomization("healthy", "good", &n, json!({})))
        .await
        .unwrap();
    let applied = |value: &'static str| {
        let config_maps = config_maps.clone();
        async move {
            agent::wait_for(
                &config_maps,
                "healthy",
                &format!("held value {value}"),
                |cm| {
                    cm.data
                        .as_ref()
                        .and_then(|d| d.get("value"))
                        .map(String::as_str)
                        == Some(value)
                },
            )
            .await;
        }
    };
    applied("1").await;

    // The hostile repository, one branch per case, each with its source and Kustomization.
    daemon.create_repo("hostile.git");
    let hostile = WorkRepo::new(&daemon.url("hostile.git"));
    publish_cases(&hostile);
    for case in CASES {
        let url = daemon.url("hostile.git");
        agent::create(
            &client,
            &n,
            git_repository(case.name, &url, case.name, json!({})),
        )
        .await
        .unwrap();
        agent::create(
            &client,
            &n,
            kustomization(case.name, case.name, &n, json!({})),
        )
        .await
        .unwrap();
    }
    // Absurd durations: the API server refuses what is not a duration; what is one but absurd
    // stalls its own object with a message.
    let refused = agent::create(
        &client,
        &n,
        kustomization("one-day", "good", &n, json!({"interval": "1d"})),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("spec.interval"), "{refused}");
    agent::create(
        &client,
        &n,
        kustomization(
            "absurd",
            "good",
            &n,
            json!({"interval": "99999999999999999999s"}),
        ),
    )
    .await
    .unwrap();
    agent::create(
        &client,
        &n,
        git_repository(
            "absurd-timeout",
            &daemon.url("good.git"),
            "main",
            json!({"timeout": "99999999999999999999s"}),
        ),
    )
    .await
    .unwrap();

    // Meanwhile the healthy Kustomization takes a new revision.
    good.write("deploy/cm.yaml", &config_map("healthy", "2"));
    good.commit("two", &Signing::None);
    good.push(&["main"]);
    applied("2").await;

    for case in CASES {
        let conditions = if case.on_source {
            let source = agent::wait_for(&sources, case.name, "reported its failure", |s| {
                s.status
                    .as_ref()
                    .and_then(|s| ready(&s.conditions))
                    .is_some_and(|c| c.status == ConditionStatus::False)
            })
            .await;
            source.status.unwrap().conditions
        } else {
            let k = agent::wait_for(&kustomizations, case.name, "reported its failure", |k| {
                k.status
                    .as_ref()
                    .and_then(|s| ready(&s.conditions))
                    .is_some_and(|c| {
                        c.status == ConditionStatus::False && c.reason != "ArtifactFailed"
                    })
            })
            .await;
            k.status.unwrap().conditions
        };
        let cond = ready(&conditions).unwrap();
        assert_eq!(cond.reason, case.reason, "{}: {cond:?}", case.name);
        assert!(
            cond.message.contains(case.says),
            "{}: {}",
            case.name,
            cond.message
        );
    }
    let absurd = agent::wait_for(&kustomizations, "absurd", "stalled", |k| {
        k.status
            .as_ref()
            .and_then(|s| ready(&s.conditions))
            .is_some()
    })
    .await;
    let cond = ready(&absurd.status.as_ref().unwrap().conditions)
        .unwrap()
        .clone();
    assert_eq!(cond.reason, "InvalidSpec", "{cond:?}");
    assert!(
        cond.message.contains("longer than the limit of 8760h"),
        "{cond:?}"
    );
    let absurd = agent::wait_for(&sources, "absurd-timeout", "stalled", |s| {
        s.status
            .as_ref()
            .and_then(|s| ready(&s.conditions))
            .is_some()
    })
    .await;
    let cond = ready(&absurd.status.as_ref().unwrap().conditions)
        .unwrap()
        .clone();
    assert!(
        cond.message.contains("spec.timeout") && cond.message.contains("longer than the limit"),
        "{cond:?}"
    );

    // Nothing of the hostile builds reached the cluster, and the agent still works: one more
    // revision of the healthy source is applied after every hostile object has failed.
    let names: Vec<String> = config_maps
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .filter(|name| name != "kube-root-ca.crt")
        .collect();
    assert_eq!(names, vec!["healthy".to_string()]);
    good.write("deploy/cm.yaml", &config_map("healthy", "3"));
    good.commit("three", &Signing::None);
    good.push(&["main"]);
    applied("3").await;
    assert!(agent.is_running(), "a controller stopped");
    agent.stop();
    ns.cleanup(&client).await;
}
