//! Signature verification against commits and tags signed by `git` with real GnuPG and ssh-keygen
//! keys, served by a real git daemon; and the `sluice verify` command's exit codes.

mod support;

use std::process::Command;
use std::time::Duration;

use sluice::source::git::Credentials;
use sluice::source::revision::{RefSpec, Selection};
use sluice::source::sync::{
    self, Current, PollOutcome, SourceSpec, SyncError, Verification, Workspace,
};
use sluice::source::url::RemoteUrl;
use sluice::source::verify::{Subject, TrustedKeys, Untrusted, VerifyError, VerifyMode};
use support::git_servers::{GitDaemon, ssh_keygen};
use support::git_signing::{GpgHome, GpgKey, Signing, WorkRepo};

struct Keys {
    gpg: GpgHome,
    good: GpgKey,
    other: GpgKey,
    expired: GpgKey,
    revoked: GpgKey,
    _ssh_dir: tempfile::TempDir,
    ssh_good: std::path::PathBuf,
    ssh_good_pub: String,
    ssh_other: std::path::PathBuf,
}

fn keys() -> Keys {
    let gpg = GpgHome::new();
    let good = gpg.key("Release Bot", "release@example.com");
    let other = gpg.key("Somebody Else", "else@example.com");
    let expired = gpg.expired_key("Old Bot", "old@example.com");
    let revoked = gpg.key("Leaked Bot", "leaked@example.com");
    let ssh_dir = tempfile::tempdir().unwrap();
    let ssh_good = ssh_keygen(ssh_dir.path(), "signer", "", "signer@example.com");
    let ssh_other = ssh_keygen(ssh_dir.path(), "other", "", "other@example.com");
    Keys {
        gpg,
        good,
        other,
        expired,
        revoked,
        ssh_good: ssh_good.private,
        ssh_good_pub: ssh_good.public,
        ssh_other: ssh_other.private,
        _ssh_dir: ssh_dir,
    }
}

/// The trusted set: the good, expired and revoked OpenPGP keys and the good SSH key; not `other`.
fn trusted(k: &Keys, extra: &[(&str, &[u8])]) -> TrustedKeys {
    let mut entries = vec![
        ("release.asc".to_owned(), k.gpg.export(&k.good)),
        ("old.asc".to_owned(), k.gpg.export(&k.expired)),
        ("leaked.asc".to_owned(), k.gpg.export(&k.revoked)),
        ("signer.pub".to_owned(), k.ssh_good_pub.clone().into_bytes()),
    ];
    entries.extend(extra.iter().map(|(n, d)| (n.to_string(), d.to_vec())));
    TrustedKeys::from_entries(entries).unwrap()
}

fn spec(url: &str, r: RefSpec, mode: VerifyMode, keys: TrustedKeys) -> SourceSpec {
    SourceSpec {
        url: RemoteUrl::parse(url).unwrap(),
        selection: Selection::from_spec(&r).unwrap(),
        credentials: Credentials::default(),
        timeout: Duration::from_secs(30),
        ignore: None,
        verification: Some(Verification { mode, keys }),
        insecure: false,
    }
}

fn branch(b: &str) -> RefSpec {
    RefSpec {
        branch: Some(b.into()),
        ..Default::default()
    }
}

fn tag(t: &str) -> RefSpec {
    RefSpec {
        tag: Some(t.into()),
        ..Default::default()
    }
}

async fn untrusted(s: &SourceSpec) -> Untrusted {
    let dir = tempfile::tempdir().unwrap();
    match sync::poll(s, &Workspace::under(dir.path()), None).await {
        Err(SyncError::Untrusted { reason, .. }) => reason,
        other => panic!("expected an untrusted revision, got {other:?}"),
    }
}

async fn trusted_key(s: &SourceSpec) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    match sync::poll(s, &Workspace::under(dir.path()), None).await {
        Ok(PollOutcome::Updated { signers, .. }) => {
            signers.into_iter().map(|s| s.key_name).collect()
        }
        other => panic!("expected a trusted revision, got {other:?}"),
    }
}

/// Pushes one branch per signing case, plus signed, unsigned and lightweight tags.
fn publish(daemon: &GitDaemon, k: &Keys) -> String {
    daemon.create_repo("signed.git");
    let url = daemon.url("signed.git");
    let w = WorkRepo::new(&url);
    let on_branch = |name: &str, signing: Signing, email: &str| {
        w.git(&["checkout", "-q", "--orphan", name]);
        w.write("app.yaml", &format!("branch: {name}\n"));
        WorkRepoEmail { w: &w, email }.commit(name, &signing);
        w.push(&[&format!("HEAD:refs/heads/{name}")]);
    };
    on_branch(
        "gpg-good",
        Signing::Gpg(k.good.clone()),
        "release@example.com",
    );
    on_branch("unsigned", Signing::None, "dev@example.com");
    on_branch(
        "gpg-other",
        Signing::Gpg(k.other.clone()),
        "else@example.com",
    );
    on_branch(
        "gpg-expired",
        Signing::Gpg(k.expired.clone()),
        "old@example.com",
    );
    on_branch(
        "gpg-revoked",
        Signing::Gpg(k.revoked.clone()),
        "leaked@example.com",
    );
    on_branch(
        "ssh-good",
        Signing::Ssh(k.ssh_good.clone()),
        "signer@example.com",
    );
    on_branch(
        "ssh-other",
        Signing::Ssh(k.ssh_other.clone()),
        "other@example.com",
    );

    // Tags: a signed annotated tag on an unsigned commit, a signed tag on a signed commit, an
    // unsigned annotated tag and a lightweight tag.
    w.git(&["checkout", "-q", "unsigned"]);
    w.annotated_tag("v1.0.0", &Signing::Gpg(k.good.clone()));
    w.annotated_tag("v1.0.1-ssh", &Signing::Ssh(k.ssh_good.clone()));
    w.annotated_tag("v0.9.0", &Signing::None);
    w.lightweight_tag("v0.8.0");
    w.git(&["checkout", "-q", "gpg-good"]);
    w.annotated_tag("v2.0.0", &Signing::Gpg(k.good.clone()));
    w.push(&["--tags"]);

    // A downgrade: the old signed tag object of v1.0.0 under the new name v3.0.0.
    let old_tag = w.git(&["rev-parse", "refs/tags/v1.0.0"]);
    w.push(&[&format!("{}:refs/tags/v3.0.0", old_tag.trim())]);

    // A bad signature: the good commit's signature over different content.
    w.git(&["checkout", "-q", "gpg-good"]);
    let raw = w.git(&["cat-file", "commit", "HEAD"]);
    let forged = raw.replacen("gpg-good", "gpg-forged", 1) + "\n";
    let path = w.path().join("forged-commit");
    std::fs::write(&path, forged.replace("\ngpg-good\n", "\nforged\n")).unwrap();
    let forged_sha = w.git(&["hash-object", "-t", "commit", "-w", path.to_str().unwrap()]);
    w.push(&[&format!("{forged_sha}:refs/heads/gpg-bad")]);

    // The key is revoked after it signed.
    k.gpg.revoke(&k.revoked);
    url
}

/// Commits as a given committer email (the allowlists check it).
struct WorkRepoEmail<'a> {
    w: &'a WorkRepo,
    email: &'a str,
}

impl WorkRepoEmail<'_> {
    fn commit(&self, message: &str, signing: &Signing) -> String {
        self.w.git(&["add", "-A"]);
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(self.w.path()).args([
            "-c",
            "user.name=Signer",
            "-c",
            &format!("user.email={}", self.email),
        ]);
        match signing {
            Signing::None => {}
            Signing::Gpg(k) => {
                cmd.args([
                    "-c",
                    "gpg.format=openpgp",
                    "-c",
                    &format!("gpg.program={}", k.program.display()),
                    "-c",
                    &format!("user.signingkey={}", k.fingerprint),
                ]);
            }
            Signing::Ssh(p) => {
                cmd.args([
                    "-c",
                    "gpg.format=ssh",
                    "-c",
                    &format!("user.signingkey={}", p.display()),
                ]);
            }
        }
        cmd.args(["commit", "-q", "--allow-empty", "-m", message]);
        if !matches!(signing, Signing::None) {
            cmd.arg("-S");
        }
        support::git_servers::run(&mut cmd);
        self.w.git(&["rev-parse", "HEAD"])
    }
}

#[tokio::test]
async fn openpgp_and_ssh_signatures_in_every_mode() {
    let daemon = GitDaemon::start();
    let k = keys();
    let url = publish(&daemon, &k);
    let keys = trusted(&k, &[]);
    let head = |b: &str| spec(&url, branch(b), VerifyMode::Head, keys.clone());

    assert_eq!(trusted_key(&head("gpg-good")).await, vec!["release.asc"]);
    assert_eq!(trusted_key(&head("ssh-good")).await, vec!["signer.pub"]);
    assert!(matches!(
        untrusted(&head("unsigned")).await,
        Untrusted::Unsigned(Subject::Commit(_))
    ));
    assert!(matches!(
        untrusted(&head("gpg-other")).await,
        Untrusted::UnknownKey { .. }
    ));
    assert!(matches!(
        untrusted(&head("ssh-other")).await,
        Untrusted::UnknownKey { .. }
    ));
    let expired = untrusted(&head("gpg-expired")).await;
    assert!(
        matches!(expired, Untrusted::ExpiredKey { .. }),
        "{expired:?}"
    );
    assert!(matches!(
        untrusted(&head("gpg-revoked")).await,
        Untrusted::RevokedKey { .. }
    ));
    let bad = untrusted(&head("gpg-bad")).await;
    assert!(matches!(bad, Untrusted::BadSignature { .. }), "{bad}");

    let mode = |r: RefSpec, m: VerifyMode| spec(&url, r, m, keys.clone());
    assert_eq!(
        trusted_key(&mode(tag("v1.0.0"), VerifyMode::Tag)).await,
        vec!["release.asc"]
    );
    assert_eq!(
        trusted_key(&mode(tag("v1.0.1-ssh"), VerifyMode::Tag)).await,
        vec!["signer.pub"]
    );
    let semver = RefSpec {
        semver: Some("~1.0".into()),
        ..Default::default()
    };
    assert_eq!(
        trusted_key(&mode(semver, VerifyMode::Tag)).await,
        vec!["release.asc"]
    );
    assert!(matches!(
        untrusted(&mode(tag("v0.9.0"), VerifyMode::Tag)).await,
        Untrusted::Unsigned(Subject::Tag(_))
    ));
    assert!(matches!(
        untrusted(&mode(tag("v0.8.0"), VerifyMode::Tag)).await,
        Untrusted::LightweightTag(_)
    ));
    assert!(matches!(
        untrusted(&mode(branch("gpg-good"), VerifyMode::Tag)).await,
        Untrusted::NotATag
    ));
    // A signed tag moved to a new name is not a signed release of that name: semver would
    // pick v3.0.0, whose tag object says it is v1.0.0.
    let any = RefSpec {
        semver: Some(">=1.0.0".into()),
        ..Default::default()
    };
    let moved = untrusted(&mode(any, VerifyMode::Tag)).await;
    assert!(
        matches!(&moved, Untrusted::TagMismatch { name, signed_name, .. } if name == "v3.0.0" && signed_name == "v1.0.0"),
        "{moved}"
    );

    // TagAndHEAD: a signed tag on an unsigned commit is not enough; both signed is.
    assert!(matches!(
        untrusted(&mode(tag("v1.0.0"), VerifyMode::TagAndHead)).await,
        Untrusted::Unsigned(Subject::Commit(_))
    ));
    assert_eq!(
        trusted_key(&mode(tag("v2.0.0"), VerifyMode::TagAndHead)).await,
        vec!["release.asc", "release.asc"]
    );
}

#[tokio::test]
async fn email_allowlists_and_bad_key_material() {
    let daemon = GitDaemon::start();
    let k = keys();
    let url = publish(&daemon, &k);

    let allow = trusted(
        &k,
        &[
            ("release.emails", b"release@example.com\n"),
            ("signer.emails", b"*@corp.example\n"),
        ],
    );
    let s = |b: &str| spec(&url, branch(b), VerifyMode::Head, allow.clone());
    assert_eq!(trusted_key(&s("gpg-good")).await, vec!["release.asc"]);
    let reason = untrusted(&s("ssh-good")).await;
    assert!(
        matches!(&reason, Untrusted::EmailNotAllowed { email, .. } if email == "signer@example.com"),
        "{reason}"
    );
    assert!(reason.to_string().contains("signer@example.com"));

    // Garbage armour and a Secret without keys are errors, not verdicts.
    let garbage = TrustedKeys::from_entries([(
        "bad.asc".to_owned(),
        b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nnope\n".to_vec(),
    )])
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let err = sync::poll(
        &spec(&url, branch("gpg-good"), VerifyMode::Head, garbage),
        &Workspace::under(dir.path()),
        None,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, SyncError::Verify(VerifyError::ParseOpenPgpKey { ref name }) if name == "bad.asc"),
        "{err}"
    );
    assert!(matches!(
        TrustedKeys::from_entries([("x.txt".to_owned(), vec![])]),
        Err(VerifyError::NoKeys)
    ));
}

#[tokio::test]
async fn untrusted_revision_keeps_the_previous_artifact() {
    let daemon = GitDaemon::start();
    let k = keys();
    daemon.create_repo("flow.git");
    let url = daemon.url("flow.git");
    let w = WorkRepo::new(&url);
    w.write("app.yaml", "v: 1\n");
    WorkRepoEmail {
        w: &w,
        email: "release@example.com",
    }
    .commit("signed", &Signing::Gpg(k.good.clone()));
    w.push(&["main"]);
    let s = spec(&url, branch("main"), VerifyMode::Head, trusted(&k, &[]));
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::under(dir.path());
    let PollOutcome::Updated { artifact, .. } = sync::poll(&s, &ws, None).await.unwrap() else {
        panic!("first poll fetches")
    };
    let cur = Current {
        revision: artifact.revision.clone(),
        path: artifact.path.clone(),
        verified_with: s.verification.as_ref().map(|v| v.fingerprint()),
    };

    // The same revision is served as verified only under the keys it was verified with: after
    // the keys change it is verified again (here: found untrusted), and the old keys still
    // accept it without a fetch.
    let other_keys =
        TrustedKeys::from_entries([("else.asc".to_owned(), k.gpg.export(&k.other))]).unwrap();
    let rekeyed = spec(&url, branch("main"), VerifyMode::Head, other_keys);
    let err = sync::poll(&rekeyed, &ws, Some(&cur)).await.unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Untrusted {
                reason: Untrusted::UnknownKey { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        sync::poll(&s, &ws, Some(&cur)).await.unwrap(),
        PollOutcome::Unchanged(_)
    ));

    w.write("app.yaml", "v: 2\n");
    w.commit("unsigned", &Signing::None);
    w.push(&["main"]);
    let err = sync::poll(&s, &ws, Some(&cur)).await.unwrap_err();
    assert!(
        matches!(
            err,
            SyncError::Untrusted {
                reason: Untrusted::Unsigned(_),
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(artifact.path.join("app.yaml")).unwrap(),
        "v: 1\n",
        "the trusted artifact stays"
    );
    let stored: Vec<_> = std::fs::read_dir(&ws.store.root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert_eq!(stored.len(), 1, "nothing new was published");
}

fn sluice(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn verify_command_exit_codes() {
    let daemon = GitDaemon::start();
    let k = keys();
    let url = publish(&daemon, &k);
    let key_dir = tempfile::tempdir().unwrap();
    std::fs::write(key_dir.path().join("release.asc"), k.gpg.export(&k.good)).unwrap();
    std::fs::write(key_dir.path().join("signer.pub"), &k.ssh_good_pub).unwrap();
    let keys = key_dir.path().to_str().unwrap();

    let (code, out, err) = sluice(&["verify", &url, "--ref", "gpg-good", "--keys", keys]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("release.asc"), "{out}");
    let (code, _, err) = sluice(&["verify", &url, "--ref", "unsigned", "--keys", keys]);
    assert_eq!(code, 1);
    assert!(err.contains("is not signed"), "{err}");
    let (code, _, err) = sluice(&[
        "verify", &url, "--ref", "v1.0.0", "--keys", keys, "--mode", "tag",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = sluice(&[
        "verify", &url, "--ref", "v0.8.0", "--keys", keys, "--mode", "tag",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("lightweight"), "{err}");
    let (code, _, err) = sluice(&[
        "verify",
        &url,
        "--ref",
        "v1.0.0",
        "--keys",
        keys,
        "--mode",
        "tag-and-head",
    ]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = sluice(&["verify", &url, "--ref", "no-such-branch", "--keys", keys]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = sluice(&["verify", "ftp://x/y", "--keys", keys]);
    assert_eq!(code, 2, "{err}");

    // A local clone works the same way.
    let clone = tempfile::tempdir().unwrap();
    support::git_servers::run(
        Command::new("git")
            .args(["clone", "-q", "--mirror", &url])
            .arg(clone.path().join("m.git")),
    );
    let local = clone.path().join("m.git");
    let (code, _, err) = sluice(&[
        "verify",
        local.to_str().unwrap(),
        "--ref",
        "ssh-good",
        "--keys",
        keys,
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = sluice(&[
        "verify",
        local.to_str().unwrap(),
        "--ref",
        "gpg-other",
        "--keys",
        keys,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not among the trusted keys"), "{err}");

    // source pull writes the tree.
    let to = clone.path().join("out");
    let (code, out, err) = sluice(&[
        "source",
        "pull",
        &url,
        "--ref",
        "tag:v2.0.0",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("v2.0.0@sha1:"), "{out}");
    assert_eq!(
        std::fs::read_to_string(to.join("app.yaml")).unwrap(),
        "branch: gpg-good\n"
    );
}
