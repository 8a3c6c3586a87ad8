//! Fetching from real Git servers: every ref kind over git://, HTTPS with basic and bearer auth and
//! a custom CA, SSH with keys and known_hosts, artifacts, and failures that keep the last state.

mod support;

use std::path::Path;
use std::time::Duration;

use sluice::source::artifact::{Artifact, ArtifactStore};
use sluice::source::credentials;
use sluice::source::git::{Credentials, GitError, SshCredentials};
use sluice::source::known_hosts::HostKeyCheck;
use sluice::source::revision::{RefSpec, RevisionError, Selection};
use sluice::source::sync::{self, Current, PollOutcome, SourceSpec, SyncError, Workspace};
use sluice::source::url::RemoteUrl;
use support::git_servers::{GitDaemon, HttpsGit, SshGit};
use support::git_signing::{Signing, WorkRepo};

fn spec(url: &str, r: RefSpec, credentials: Credentials) -> SourceSpec {
    SourceSpec {
        url: RemoteUrl::parse(url).unwrap(),
        selection: Selection::from_spec(&r).unwrap(),
        credentials,
        timeout: Duration::from_secs(30),
        ignore: None,
        verification: None,
        insecure: false,
    }
}

fn tag(t: &str) -> RefSpec {
    RefSpec {
        tag: Some(t.into()),
        ..Default::default()
    }
}

fn semver(r: &str) -> RefSpec {
    RefSpec {
        semver: Some(r.into()),
        ..Default::default()
    }
}

fn named(n: &str) -> RefSpec {
    RefSpec {
        name: Some(n.into()),
        ..Default::default()
    }
}

fn branch(b: &str) -> RefSpec {
    RefSpec {
        branch: Some(b.into()),
        ..Default::default()
    }
}

async fn fetch(spec: &SourceSpec, ws: &Workspace) -> Artifact {
    match sync::poll(spec, ws, None).await {
        Ok(PollOutcome::Updated { artifact, .. }) => artifact,
        other => panic!("expected a new artifact, got {other:?}"),
    }
}

fn current(a: &Artifact) -> Current {
    Current {
        revision: a.revision.clone(),
        path: a.path.clone(),
        verified_with: None,
    }
}

fn read(a: &Artifact, path: &str) -> String {
    std::fs::read_to_string(a.path.join(path)).unwrap_or_else(|e| panic!("{path} in artifact: {e}"))
}

/// A repository on the daemon with branches, tags (light and annotated), semver tags and a pull ref.
struct Fixture {
    daemon: GitDaemon,
    work: WorkRepo,
    first: String,
    second: String,
    pr: String,
}

fn fixture() -> Fixture {
    let daemon = GitDaemon::start();
    daemon.create_repo("app.git");
    let work = WorkRepo::new(&daemon.url("app.git"));
    work.write("deploy/app.yaml", "replicas: 1\n");
    let first = work.commit("first", &Signing::None);
    work.annotated_tag("v1.2.0", &Signing::None);
    work.lightweight_tag("v1.1.0");
    work.write("deploy/app.yaml", "replicas: 2\n");
    let second = work.commit("second", &Signing::None);
    work.annotated_tag("v1.10.0", &Signing::None);
    work.lightweight_tag("v2.0.0-rc.1");
    work.git(&["checkout", "-q", "-b", "feature"]);
    work.write("feature.txt", "on a pull request\n");
    let pr = work.commit("pr", &Signing::None);
    work.git(&["checkout", "-q", "main"]);
    work.push(&["main", "feature", "--tags", "feature:refs/pull/7/head"]);
    Fixture {
        daemon,
        work,
        first,
        second,
        pr,
    }
}

#[tokio::test]
async fn every_ref_kind_over_git_daemon() {
    let f = fixture();
    let url = f.daemon.url("app.git");
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(RefSpec, String, &str)> = vec![
        (
            RefSpec::default(),
            format!("main@sha1:{}", f.second),
            "replicas: 2\n",
        ),
        (
            branch("feature"),
            format!("feature@sha1:{}", f.pr),
            "replicas: 2\n",
        ),
        (
            tag("v1.2.0"),
            format!("v1.2.0@sha1:{}", f.first),
            "replicas: 1\n",
        ),
        (
            tag("v1.1.0"),
            format!("v1.1.0@sha1:{}", f.first),
            "replicas: 1\n",
        ),
        (
            semver(">=1.2.0 <2.0.0"),
            format!("v1.10.0@sha1:{}", f.second),
            "replicas: 2\n",
        ),
        (
            semver("~1.2"),
            format!("v1.2.0@sha1:{}", f.first),
            "replicas: 1\n",
        ),
        (
            semver("1.1.x || 1.2.x"),
            format!("v1.2.0@sha1:{}", f.first),
            "replicas: 1\n",
        ),
        (
            named("refs/pull/7/head"),
            format!("refs/pull/7/head@sha1:{}", f.pr),
            "replicas: 2\n",
        ),
        (
            RefSpec {
                commit: Some(f.first.clone()),
                ..Default::default()
            },
            format!("sha1:{}", f.first),
            "replicas: 1\n",
        ),
        (
            RefSpec {
                commit: Some(f.first.clone()),
                branch: Some("main".into()),
                ..Default::default()
            },
            format!("main@sha1:{}", f.first),
            "replicas: 1\n",
        ),
    ];
    for (i, (r, revision, content)) in cases.into_iter().enumerate() {
        let ws = Workspace::under(&dir.path().join(i.to_string()));
        let a = fetch(&spec(&url, r.clone(), Credentials::default()), &ws).await;
        assert_eq!(a.revision.to_string(), revision, "{r:?}");
        assert_eq!(read(&a, "deploy/app.yaml"), content, "{r:?}");
    }
}

#[tokio::test]
async fn fetch_is_shallow_and_skipped_when_the_revision_is_current() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::under(dir.path());
    let s = spec(
        &f.daemon.url("app.git"),
        branch("main"),
        Credentials::default(),
    );
    let a = fetch(&s, &ws).await;
    let shallow = std::fs::read_to_string(ws.cache.join("shallow")).expect("the cache is shallow");
    assert_eq!(shallow.trim(), f.second, "only the tip commit was fetched");
    let cache = git2::Repository::open_bare(&ws.cache).unwrap();
    assert!(
        cache
            .find_commit(git2::Oid::from_str(&f.first).unwrap())
            .is_err(),
        "history was not fetched"
    );

    // Unchanged remote: no fetch at all, the cache stays byte-for-byte as it was.
    let before = dir_listing(&ws.cache);
    match sync::poll(&s, &ws, Some(&current(&a))).await.unwrap() {
        PollOutcome::Unchanged(r) => assert_eq!(r, a.revision),
        other => panic!("expected Unchanged, got {other:?}"),
    }
    assert_eq!(dir_listing(&ws.cache), before);

    // A new commit is picked up incrementally and descends from the current one.
    f.work.write("deploy/new.yaml", "x: 1\n");
    let third = f.work.commit("third", &Signing::None);
    f.work.push(&["main"]);
    let b = match sync::poll(&s, &ws, Some(&current(&a))).await.unwrap() {
        PollOutcome::Updated { artifact, .. } => artifact,
        other => panic!("expected Updated, got {other:?}"),
    };
    assert_eq!(b.revision.sha, third);
    let cache = git2::Repository::open_bare(&ws.cache).unwrap();
    assert!(
        cache
            .find_commit(git2::Oid::from_str(&f.first).unwrap())
            .is_err(),
        "the incremental fetch brought only the new commit, not the old history"
    );
    assert_eq!(read(&b, "deploy/new.yaml"), "x: 1\n");
    assert_ne!(a.digest, b.digest);
}

fn dir_listing(path: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![path.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().display().to_string(), e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn rewritten_history_keeps_the_last_artifact() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::under(dir.path());
    let s = spec(
        &f.daemon.url("app.git"),
        branch("main"),
        Credentials::default(),
    );
    let a = fetch(&s, &ws).await;
    f.work.git(&["reset", "-q", "--hard", &f.first]);
    f.work.write("other.yaml", "rewritten: true\n");
    f.work.commit("rewritten", &Signing::None);
    f.work.push(&["main"]);
    let err = sync::poll(&s, &ws, Some(&current(&a))).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Git(GitError::HistoryRewritten { .. })),
        "{err}"
    );
    assert!(
        a.path.join("deploy/app.yaml").exists(),
        "the previous artifact stays"
    );
}

#[tokio::test]
async fn artifacts_are_deterministic_filtered_and_bounded() {
    let daemon = GitDaemon::start();
    daemon.create_repo("files.git");
    let work = WorkRepo::new(&daemon.url("files.git"));
    work.write("deploy/app.yaml", "a: 1\n");
    work.write("deploy/secret.enc.yaml", "hidden\n");
    work.write("deploy/.sourceignore", "*.enc.yaml\n");
    work.write("docs/logo.png", "png\n");
    work.write(".github/workflows/ci.yaml", "on: push\n");
    work.write("scripts/run.sh", "#!/bin/sh\n");
    work.symlink("deploy/inside", "app.yaml");
    work.symlink("deploy/outside", "../../../etc/passwd");
    work.symlink("deploy/absolute", "/etc/passwd");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        work.path().join("scripts/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    work.commit("files", &Signing::None);
    work.push(&["main"]);
    let url = daemon.url("files.git");

    let dir = tempfile::tempdir().unwrap();
    let a = fetch(
        &spec(&url, branch("main"), Credentials::default()),
        &Workspace::under(&dir.path().join("a")),
    )
    .await;
    let b = fetch(
        &spec(&url, branch("main"), Credentials::default()),
        &Workspace::under(&dir.path().join("b")),
    )
    .await;
    assert_eq!(a.digest, b.digest, "same revision, same digest");
    assert!(a.digest.starts_with("sha256:") && a.digest.len() == 71);
    assert_eq!(read(&a, "deploy/app.yaml"), "a: 1\n");
    assert!(
        !a.path.join("deploy/secret.enc.yaml").exists(),
        ".sourceignore applies"
    );
    assert!(
        !a.path.join("docs/logo.png").exists(),
        "default exclusions apply"
    );
    assert!(!a.path.join(".github").exists());
    assert_eq!(
        std::fs::read_link(a.path.join("deploy/inside")).unwrap(),
        Path::new("app.yaml")
    );
    assert!(
        std::fs::symlink_metadata(a.path.join("deploy/outside")).is_err(),
        "symlink out of the tree is left out"
    );
    assert!(std::fs::symlink_metadata(a.path.join("deploy/absolute")).is_err());
    assert_eq!(
        std::fs::metadata(a.path.join("scripts/run.sh"))
            .unwrap()
            .permissions()
            .mode()
            & 0o111,
        0o111
    );

    // spec.ignore replaces the defaults.
    let mut s = spec(&url, branch("main"), Credentials::default());
    s.ignore = Some("/scripts/\n".into());
    let c = fetch(&s, &Workspace::under(&dir.path().join("c"))).await;
    assert!(c.path.join("docs/logo.png").exists());
    assert!(!c.path.join("scripts").exists());
    assert_ne!(c.digest, a.digest);

    // Too large: refused, nothing published.
    let mut ws = Workspace::under(&dir.path().join("d"));
    ws.store = ArtifactStore {
        max_size: 4,
        ..ws.store
    };
    let err = sync::poll(
        &spec(&url, branch("main"), Credentials::default()),
        &ws,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains("more than the limit of 4 bytes"),
        "{err}"
    );
    let published = std::fs::read_dir(&ws.store.root)
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(published, 0);

    // Too many files, too deep: refused while walking, nothing published.
    for (store, expected) in [
        (
            ArtifactStore {
                max_files: 2,
                ..ArtifactStore::new(dir.path().join("e"))
            },
            "more than the limit of 2 files",
        ),
        (
            ArtifactStore {
                max_depth: 0,
                ..ArtifactStore::new(dir.path().join("f"))
            },
            "nested deeper than the limit of 0 directories",
        ),
    ] {
        let mut ws = Workspace::under(&dir.path().join("g"));
        ws.store = store;
        let err = sync::poll(
            &spec(&url, branch("main"), Credentials::default()),
            &ws,
            None,
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
        assert!(!ws.store.root.exists() || std::fs::read_dir(&ws.store.root).unwrap().count() == 0);
    }
}

#[tokio::test]
async fn missing_refs_and_unmatched_ranges_are_clear() {
    let f = fixture();
    let url = f.daemon.url("app.git");
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::under(dir.path());
    let err = sync::poll(
        &spec(&url, branch("nope"), Credentials::default()),
        &ws,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Resolve(RevisionError::RefNotFound { kind: "branch", .. })
        ),
        "{err}"
    );
    let r = semver(">=5.0.0");
    let err = sync::poll(&spec(&url, r, Credentials::default()), &ws, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::Resolve(RevisionError::NoTagMatches { .. })),
        "{err}"
    );
    let r = RefSpec {
        commit: Some("0".repeat(40)),
        ..Default::default()
    };
    let err = sync::poll(&spec(&url, r, Credentials::default()), &ws, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::Git(GitError::NotFound { .. })),
        "{err}"
    );
    let r = RefSpec {
        commit: Some(f.pr.clone()),
        branch: Some("main".into()),
        ..Default::default()
    };
    let err = sync::poll(&spec(&url, r, Credentials::default()), &ws, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, SyncError::Git(GitError::CommitNotOnBranch { .. })),
        "{err}"
    );
    let err = sync::poll(
        &spec(
            &f.daemon.url("missing.git"),
            branch("main"),
            Credentials::default(),
        ),
        &ws,
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, SyncError::Git(GitError::ListRefs { .. })),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut s = spec(
        &format!("git://127.0.0.1:{port}/repo.git"),
        branch("main"),
        Credentials::default(),
    );
    s.timeout = Duration::from_millis(500);
    let ws = Workspace::under(tempfile::tempdir().unwrap().path());
    let err = sync::poll(&s, &ws, None).await.unwrap_err();
    assert!(
        matches!(err, SyncError::Git(GitError::Timeout { .. })),
        "{err}"
    );
    drop(listener);
}

fn https_fixture() -> (HttpsGit, String) {
    let server = HttpsGit::start();
    let bare = server.create_repo("app.git");
    let work = WorkRepo::new(bare.to_str().unwrap());
    work.write("deploy/app.yaml", "over: https\n");
    let sha = work.commit("https", &Signing::None);
    work.push(&["main"]);
    (server, sha)
}

#[tokio::test]
async fn https_with_basic_auth_bearer_token_and_custom_ca() {
    let (server, sha) = https_fixture();
    let dir = tempfile::tempdir().unwrap();
    let data = |pairs: &[(&str, &[u8])]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    };
    let url = RemoteUrl::parse(&server.url("app.git")).unwrap();
    let good = credentials::from_secret_data(
        &url,
        &data(&[
            ("username", server.username.as_bytes()),
            ("password", server.password.as_bytes()),
            ("ca.crt", &server.ca.ca_pem),
        ]),
        "test/https",
    )
    .unwrap();
    let a = fetch(
        &spec(&server.url("app.git"), branch("main"), good.clone()),
        &Workspace::under(&dir.path().join("a")),
    )
    .await;
    assert_eq!(a.revision.to_string(), format!("main@sha1:{sha}"));
    assert_eq!(read(&a, "deploy/app.yaml"), "over: https\n");

    // Plain HTTP with the same credentials: refused unless the spec opts in.
    let plain = Credentials {
        basic: good.basic.clone(),
        ..Default::default()
    };
    let mut in_clear = spec(&server.http_url("app.git"), branch("main"), plain.clone());
    let err = sync::poll(&in_clear, &Workspace::under(&dir.path().join("h")), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SyncError::Git(GitError::InsecureCredentials { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("spec.insecure"), "{err}");
    in_clear.insecure = true;
    let h = fetch(&in_clear, &Workspace::under(&dir.path().join("h"))).await;
    assert_eq!(h.digest, a.digest);

    // A redirect to another host name never carries the credentials there.
    let seen_before = server.access_log().lines().count();
    let mut redirected = spec(&server.redirect_url("app.git"), branch("main"), plain);
    redirected.insecure = true;
    let err = sync::poll(&redirected, &Workspace::under(&dir.path().join("r")), None)
        .await
        .unwrap_err();
    let log = server.access_log();
    let after: Vec<&str> = log.lines().skip(seen_before).collect();
    assert!(
        after.iter().any(|l| l.contains("/redirect/")),
        "the redirect was not asked for: {after:?}"
    );
    assert!(
        !after
            .iter()
            .any(|l| l.contains(&format!(" - {} [", server.username))),
        "credentials followed the redirect ({err}): {after:#?}"
    );
    let err = sync::poll(
        &spec(
            &server.http_url("app.git"),
            branch("main"),
            Credentials::default(),
        ),
        &Workspace::under(&dir.path().join("i")),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, SyncError::Git(e) if e.is_auth()),
        "no credentials: {err}"
    );

    // Wrong password.
    let mut wrong = good.clone();
    wrong.basic = Some((server.username.clone(), "wrong".into()));
    let err = sync::poll(
        &spec(&server.url("app.git"), branch("main"), wrong),
        &Workspace::under(&dir.path().join("b")),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(&err, SyncError::Git(e) if e.is_auth()), "{err}");

    // No CA: the server's certificate is not trusted.
    let mut no_ca = good.clone();
    no_ca.ca_pem = None;
    let err = sync::poll(
        &spec(&server.url("app.git"), branch("main"), no_ca),
        &Workspace::under(&dir.path().join("c")),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Git(GitError::ListRefs { .. } | GitError::Certificate { .. })
        ),
        "{err}"
    );
    assert!(
        format!("{:?}", err).to_lowercase().contains("certificate"),
        "{err:?}"
    );

    // A different CA: refused by our check.
    let other = support::git_servers::TestCa::new();
    let mut wrong_ca = good.clone();
    wrong_ca.ca_pem = Some(other.ca_pem.clone());
    let err = sync::poll(
        &spec(&server.url("app.git"), branch("main"), wrong_ca),
        &Workspace::under(&dir.path().join("d")),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, SyncError::Git(GitError::Certificate { .. })),
        "{err}"
    );

    // Bearer token.
    let bearer = Credentials {
        bearer_token: Some(server.token.clone()),
        ca_pem: Some(server.ca.ca_pem.clone()),
        ..Default::default()
    };
    let e = fetch(
        &spec(
            &server.bearer_url("app.git"),
            branch("main"),
            bearer.clone(),
        ),
        &Workspace::under(&dir.path().join("e")),
    )
    .await;
    assert_eq!(e.digest, a.digest);
    let bad_bearer = Credentials {
        bearer_token: Some("nope".into()),
        ..bearer
    };
    let err = sync::poll(
        &spec(&server.bearer_url("app.git"), branch("main"), bad_bearer),
        &Workspace::under(&dir.path().join("f")),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(&err, SyncError::Git(e) if e.is_auth()), "{err}");
}

fn ssh_creds(server: &SshGit, encrypted: bool, known_hosts: &str) -> Credentials {
    let key = if encrypted {
        &server.client_encrypted
    } else {
        &server.client
    };
    Credentials {
        ssh: Some(SshCredentials {
            identity: std::fs::read_to_string(&key.private).unwrap(),
            passphrase: encrypted.then(|| server.client_passphrase.clone()),
            known_hosts: known_hosts.to_owned(),
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn ssh_with_key_auth_and_known_hosts() {
    let server = SshGit::start();
    let bare = server.create_repo("app.git");
    let work = WorkRepo::new(bare.to_str().unwrap());
    work.write("deploy/app.yaml", "over: ssh\n");
    let sha = work.commit("ssh", &Signing::None);
    work.push(&["main"]);
    let dir = tempfile::tempdir().unwrap();
    let url = server.url("app.git");

    let a = fetch(
        &spec(
            &url,
            branch("main"),
            ssh_creds(&server, false, &server.known_hosts),
        ),
        &Workspace::under(&dir.path().join("a")),
    )
    .await;
    assert_eq!(a.revision.to_string(), format!("main@sha1:{sha}"));
    let b = fetch(
        &spec(
            &url,
            branch("main"),
            ssh_creds(&server, true, &server.known_hosts),
        ),
        &Workspace::under(&dir.path().join("b")),
    )
    .await;
    assert_eq!(
        b.digest, a.digest,
        "an encrypted identity with its password works too"
    );

    // A host key that is not in known_hosts: unknown host, then a changed key.
    let elsewhere = format!("[127.0.0.2]:{} {}\n", server.port, server.host_public);
    let err = sync::poll(
        &spec(&url, branch("main"), ssh_creds(&server, false, &elsewhere)),
        &Workspace::under(&dir.path().join("c")),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Git(GitError::HostKey {
                check: HostKeyCheck::UnknownHost,
                ..
            })
        ),
        "{err}"
    );
    let stranger = support::git_servers::ssh_keygen(dir.path(), "stranger", "", "x");
    let changed = format!(
        "[127.0.0.1]:{} {}\n",
        server.port,
        stranger
            .public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let err = sync::poll(
        &spec(&url, branch("main"), ssh_creds(&server, false, &changed)),
        &Workspace::under(&dir.path().join("d")),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Git(GitError::HostKey {
                check: HostKeyCheck::Changed,
                ..
            })
        ),
        "{err}"
    );

    // A key the server does not accept.
    let mut unknown = ssh_creds(&server, false, &server.known_hosts);
    unknown.ssh.as_mut().unwrap().identity = std::fs::read_to_string(&stranger.private).unwrap();
    let err = sync::poll(
        &spec(&url, branch("main"), unknown),
        &Workspace::under(&dir.path().join("e")),
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(&err, SyncError::Git(e) if e.is_auth()), "{err}");
}

#[tokio::test]
async fn scp_like_url_on_port_22() {
    let server = SshGit::start_on(22);
    let bare = server.create_repo("scp.git");
    let work = WorkRepo::new(bare.to_str().unwrap());
    work.write("a.yaml", "scp: true\n");
    let sha = work.commit("scp", &Signing::None);
    work.push(&["main"]);
    let url = server.scp_url("scp.git");
    assert!(!url.contains("://"));
    let dir = tempfile::tempdir().unwrap();
    let a = fetch(
        &spec(
            &url,
            branch("main"),
            ssh_creds(&server, false, &server.known_hosts),
        ),
        &Workspace::under(dir.path()),
    )
    .await;
    assert_eq!(a.revision.sha, sha);
    assert_eq!(read(&a, "a.yaml"), "scp: true\n");
}
