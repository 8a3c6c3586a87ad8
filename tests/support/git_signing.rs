//! Real signing material for tests: GnuPG keys (good, expired, revoked) made with `gpg
//! --quick-gen-key`, SSH signing keys from ssh-keygen, and a work tree whose commits and tags `git`
//! itself signs and pushes.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use super::git_servers::run;

/// A GnuPG home with generated keys; its agent is stopped on drop.
pub struct GpgHome {
    pub dir: tempfile::TempDir,
}

/// One generated OpenPGP key.
#[derive(Clone)]
pub struct GpgKey {
    pub fingerprint: String,
    pub email: String,
    /// `gpg.program` for git that signs with this home (and, for expired keys, at a past time).
    pub program: PathBuf,
}

impl GpgHome {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        GpgHome { dir }
    }

    fn gpg(&self, faked_time: Option<&str>) -> Command {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(self.dir.path()).args([
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        if let Some(t) = faked_time {
            c.arg("--faked-system-time").arg(t);
        }
        c
    }

    fn wrapper(&self, name: &str, faked_time: Option<&str>) -> PathBuf {
        let path = self.dir.path().join(name);
        let faked = faked_time
            .map(|t| format!("--faked-system-time {t} "))
            .unwrap_or_default();
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\nexec gpg --homedir {} {faked}\"$@\"\n",
                self.dir.path().display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    fn generate(&self, name: &str, email: &str, expire: &str, faked_time: Option<&str>) -> GpgKey {
        run(self.gpg(faked_time).args([
            "--quick-gen-key",
            &format!("{name} <{email}>"),
            "ed25519",
            "sign",
            expire,
        ]));
        let listing = run(self
            .gpg(faked_time)
            .args(["--with-colons", "--list-keys", email]));
        let fingerprint = listing
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_owned())
            })
            .expect("a fingerprint");
        let program = self.wrapper(&format!("gpg-{}.sh", &fingerprint[..8]), faked_time);
        GpgKey {
            fingerprint,
            email: email.to_owned(),
            program,
        }
    }

    /// A key valid for a year.
    pub fn key(&self, name: &str, email: &str) -> GpgKey {
        self.generate(name, email, "1y", None)
    }

    /// A key created in 2020 that expired in 2021; git signs with it at a time it was still valid.
    pub fn expired_key(&self, name: &str, email: &str) -> GpgKey {
        let mut k = self.generate(name, email, "1y", Some("20200101T000000!"));
        k.program = self.wrapper(
            &format!("gpg-{}-past.sh", &k.fingerprint[..8]),
            Some("20200601T000000!"),
        );
        k
    }

    /// Revokes a key with the revocation certificate gpg made when generating it.
    pub fn revoke(&self, key: &GpgKey) {
        let rev = self
            .dir
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{}.rev", key.fingerprint));
        let text = std::fs::read_to_string(&rev).unwrap().replace(
            ":-----BEGIN PGP PUBLIC KEY BLOCK-----",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        );
        let armored = self.dir.path().join("revoke.asc");
        std::fs::write(&armored, text).unwrap();
        run(self.gpg(None).arg("--import").arg(&armored));
    }

    /// The armoured public key.
    pub fn export(&self, key: &GpgKey) -> Vec<u8> {
        run(self
            .gpg(None)
            .args(["--armor", "--export", &key.fingerprint]))
        .into_bytes()
    }

    /// The armoured private key (the keys here have no passphrase).
    pub fn export_secret(&self, key: &GpgKey) -> Vec<u8> {
        run(self
            .gpg(None)
            .args(["--armor", "--export-secret-keys", &key.fingerprint]))
        .into_bytes()
    }
}

impl Drop for GpgHome {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.dir.path())
            .args(["--kill", "all"])
            .status();
    }
}

/// How git signs a commit or tag.
#[derive(Clone)]
pub enum Signing {
    None,
    Gpg(GpgKey),
    /// Path to a private SSH key.
    Ssh(PathBuf),
}

impl Signing {
    fn config(&self) -> Vec<String> {
        match self {
            Signing::None => vec![],
            Signing::Gpg(k) => vec![
                "-c".into(),
                "gpg.format=openpgp".into(),
                "-c".into(),
                format!("gpg.program={}", k.program.display()),
                "-c".into(),
                format!("user.signingkey={}", k.fingerprint),
            ],
            Signing::Ssh(key) => vec![
                "-c".into(),
                "gpg.format=ssh".into(),
                "-c".into(),
                format!("user.signingkey={}", key.display()),
            ],
        }
    }
}

/// A work tree that commits, tags and pushes with the real `git`.
pub struct WorkRepo {
    pub dir: tempfile::TempDir,
    pub remote: String,
    /// Committer and tagger email used for the next commits and tags.
    pub email: String,
}

impl WorkRepo {
    /// A fresh work tree on branch main pushing to `remote` (a URL or a bare repository path).
    pub fn new(remote: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("git")
            .args(["init", "-q", "-b", "main"])
            .arg(dir.path()));
        let repo = WorkRepo {
            dir,
            remote: remote.to_owned(),
            email: "dev@example.com".into(),
        };
        repo.git(&["remote", "add", "origin", remote]);
        repo
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn git(&self, args: &[&str]) -> String {
        let mut c = Command::new("git");
        c.arg("-C")
            .arg(self.dir.path())
            .args([
                "-c",
                "user.name=Dev",
                "-c",
                &format!("user.email={}", self.email),
                "-c",
                "commit.gpgsign=false",
                "-c",
                "tag.gpgsign=false",
            ])
            .env("GIT_TERMINAL_PROMPT", "0")
            .args(args);
        run(&mut c).trim().to_owned()
    }

    fn git_signed(&self, signing: &Signing, args: &[&str]) -> String {
        let mut all: Vec<String> = signing.config();
        all.extend(args.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.git(&refs)
    }

    pub fn write(&self, path: &str, content: &str) {
        let p = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    pub fn symlink(&self, path: &str, target: &str) {
        let p = self.dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    /// Commits everything (signed as asked) and returns the commit SHA.
    pub fn commit(&self, message: &str, signing: &Signing) -> String {
        self.git(&["add", "-A"]);
        let mut args = vec!["commit", "-q", "--allow-empty", "-m", message];
        if !matches!(signing, Signing::None) {
            args.push("-S");
        }
        self.git_signed(signing, &args);
        self.git(&["rev-parse", "HEAD"])
    }

    /// An annotated tag (signed as asked) on HEAD.
    pub fn annotated_tag(&self, name: &str, signing: &Signing) {
        let flag = if matches!(signing, Signing::None) {
            "-a"
        } else {
            "-s"
        };
        self.git_signed(
            signing,
            &["tag", flag, name, "-m", &format!("release {name}")],
        );
    }

    pub fn lightweight_tag(&self, name: &str) {
        self.git(&["tag", name]);
    }

    pub fn push(&self, refspecs: &[&str]) {
        let mut args = vec!["push", "-q", "--force", "origin"];
        args.extend_from_slice(refspecs);
        self.git(&args);
    }
}
