//! SSH signatures (`gpg.format ssh`) checked with `ssh-keygen -Y` against an allowed-signers file
//! built from the trusted `.pub` keys, in the `git` namespace. Spawns processes.

use std::process::Stdio;

use tokio::process::Command;

use super::{Signer, Subject, TrustedKey, Untrusted, VerifyError};

const NAMESPACE: &str = "git";

/// A `.pub` entry must hold one or more `type base64 [comment]` lines.
pub(super) fn check_key_file(key: &TrustedKey) -> Result<(), VerifyError> {
    let text = std::str::from_utf8(&key.data).map_err(|_| VerifyError::ParseSshKey {
        name: key.name.clone(),
        line: 1,
    })?;
    let mut any = false;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let ok = matches!((f.next(), f.next()), (Some(t), Some(b)) if (t.starts_with("ssh-") || t.starts_with("ecdsa-") || t.starts_with("sk-"))
            && base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).is_ok());
        if !ok {
            return Err(VerifyError::ParseSshKey {
                name: key.name.clone(),
                line: i + 1,
            });
        }
        any = true;
    }
    if any {
        Ok(())
    } else {
        Err(VerifyError::ParseSshKey {
            name: key.name.clone(),
            line: 1,
        })
    }
}

pub(super) async fn verify(
    signature: &[u8],
    data: &[u8],
    keys: &[TrustedKey],
    subject: Subject,
) -> Result<Result<Signer, Untrusted>, VerifyError> {
    let dir = tempfile::Builder::new()
        .prefix("sluice-ssh-")
        .tempdir()
        .map_err(VerifyError::SshKeygen)?;
    // Principals are the Secret entry names, so the answer says which key signed.
    let mut allowed = String::new();
    for key in keys {
        for line in String::from_utf8_lossy(&key.data)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let mut f = line.split_whitespace();
            if let (Some(t), Some(b)) = (f.next(), f.next()) {
                allowed.push_str(&format!(
                    "{} namespaces=\"{NAMESPACE}\" {t} {b}\n",
                    key.name
                ));
            }
        }
    }
    let allowed_path = dir.path().join("allowed_signers");
    let sig_path = dir.path().join("signature");
    std::fs::write(&allowed_path, allowed).map_err(VerifyError::SshKeygen)?;
    std::fs::write(&sig_path, signature).map_err(VerifyError::SshKeygen)?;

    let find = Command::new("ssh-keygen")
        .args(["-Y", "find-principals", "-f"])
        .arg(&allowed_path)
        .arg("-s")
        .arg(&sig_path)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(VerifyError::SshKeygen)?;
    let principal = String::from_utf8_lossy(&find.stdout)
        .lines()
        .next()
        .map(str::to_owned);
    let Some(principal) = principal.filter(|_| find.status.success()) else {
        let key = signing_key_fingerprint(&sig_path)
            .await
            .unwrap_or_else(|| "(unreadable signature)".into());
        return Ok(Err(Untrusted::UnknownKey { subject, key }));
    };

    let data_path = dir.path().join("data");
    std::fs::write(&data_path, data).map_err(VerifyError::SshKeygen)?;
    let data_file = std::fs::File::open(&data_path).map_err(VerifyError::SshKeygen)?;
    let out = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", NAMESPACE, "-f"])
        .arg(&allowed_path)
        .arg("-I")
        .arg(&principal)
        .arg("-s")
        .arg(&sig_path)
        .stdin(Stdio::from(data_file))
        .output()
        .await
        .map_err(VerifyError::SshKeygen)?;
    if !out.status.success() {
        let detail = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Ok(Err(Untrusted::BadSignature { subject, detail }));
    }
    // "Good "git" signature for <principal> with ED25519 key SHA256:..."
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let fingerprint = text
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_default()
        .to_owned();
    Ok(Ok(Signer {
        subject,
        key_name: principal,
        fingerprint,
    }))
}

/// The fingerprint of the key that made a signature, for messages about unknown keys.
async fn signing_key_fingerprint(sig_path: &std::path::Path) -> Option<String> {
    let out = Command::new("ssh-keygen")
        .args(["-Y", "check-novalidate", "-n", NAMESPACE, "-s"])
        .arg(sig_path)
        .stdin(Stdio::null())
        .output()
        .await
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    text.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(str::to_owned)
}
