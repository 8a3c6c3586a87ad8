//! OpenPGP signatures through gpgme, in a throwaway GnuPG home that holds only the trusted keys.
//! Blocking I/O (gpg processes); callers run it under `spawn_blocking`.

use std::collections::HashMap;

use gpgme::{Context, Protocol, SignatureSummary};

use super::{Signer, Subject, TrustedKey, Untrusted, VerifyError};

/// Checks a detached OpenPGP signature over `data` against `keys` only.
pub(super) fn verify(
    signature: &[u8],
    data: &[u8],
    keys: &[TrustedKey],
    subject: Subject,
) -> Result<Result<Signer, Untrusted>, VerifyError> {
    let home = tempfile::Builder::new()
        .prefix("sluice-gpg-")
        .tempdir()
        .map_err(VerifyError::GnupgHome)?;
    let gpgme_err = |step| move |source| VerifyError::Gpgme { step, source };
    let mut ctx = Context::from_protocol(Protocol::OpenPgp).map_err(gpgme_err("starting"))?;
    let home_str = home
        .path()
        .to_str()
        .ok_or_else(|| VerifyError::GnupgHome(std::io::Error::other("non-UTF-8 temp dir")))?;
    ctx.set_engine_home_dir(home_str)
        .map_err(gpgme_err("setting the GnuPG home"))?;

    // Every fingerprint (primary and subkeys) of each trusted key, mapped to its Secret entry.
    let mut owners: HashMap<String, String> = HashMap::new();
    for key in keys {
        let result = ctx
            .import(&key.data)
            .map_err(gpgme_err("importing a key"))?;
        let imported: Vec<String> = result
            .imports()
            .filter_map(|i| i.fingerprint().ok().map(str::to_owned))
            .collect();
        if imported.is_empty() {
            return Err(VerifyError::ParseOpenPgpKey {
                name: key.name.clone(),
            });
        }
        for fpr in imported {
            let k = ctx
                .get_key(fpr.as_str())
                .map_err(gpgme_err("reading an imported key"))?;
            for sub in k.subkeys() {
                if let Ok(f) = sub.fingerprint() {
                    owners.insert(f.to_ascii_uppercase(), key.name.clone());
                }
            }
        }
    }

    let outcome = {
        let result = ctx.verify_detached(signature, data);
        match result {
            Err(e) => Err(Untrusted::BadSignature {
                subject: subject.clone(),
                detail: e.to_string(),
            }),
            Ok(result) => match result.signatures().next() {
                None => Err(Untrusted::BadSignature {
                    subject: subject.clone(),
                    detail: "no signature found".into(),
                }),
                Some(sig) => {
                    let fpr = sig.fingerprint().unwrap_or_default().to_ascii_uppercase();
                    let owner = owners
                        .iter()
                        .find(|(f, _)| !fpr.is_empty() && f.ends_with(&fpr))
                        .map(|(f, n)| (f.clone(), n.clone()));
                    let summary = sig.summary();
                    let key = fpr.clone();
                    match (sig.status(), owner) {
                        (Err(e), _) if e.code() == gpgme::Error::NO_PUBKEY.code() => {
                            Err(Untrusted::UnknownKey {
                                subject: subject.clone(),
                                key,
                            })
                        }
                        (_, None) => Err(Untrusted::UnknownKey {
                            subject: subject.clone(),
                            key,
                        }),
                        (Err(e), _) if e.code() == gpgme::Error::KEY_EXPIRED.code() => {
                            Err(Untrusted::ExpiredKey {
                                subject: subject.clone(),
                                key,
                            })
                        }
                        (Err(e), _) if e.code() == gpgme::Error::CERT_REVOKED.code() => {
                            Err(Untrusted::RevokedKey {
                                subject: subject.clone(),
                                key,
                            })
                        }
                        (Err(e), _) => Err(Untrusted::BadSignature {
                            subject: subject.clone(),
                            detail: e.to_string(),
                        }),
                        (Ok(()), _) if summary.contains(SignatureSummary::KEY_REVOKED) => {
                            Err(Untrusted::RevokedKey {
                                subject: subject.clone(),
                                key,
                            })
                        }
                        (Ok(()), _) if summary.contains(SignatureSummary::KEY_EXPIRED) => {
                            Err(Untrusted::ExpiredKey {
                                subject: subject.clone(),
                                key,
                            })
                        }
                        (Ok(()), Some((fingerprint, key_name))) => Ok(Signer {
                            subject: subject.clone(),
                            key_name,
                            fingerprint,
                        }),
                    }
                }
            },
        }
    };
    drop(ctx);
    stop_agent(home.path());
    Ok(outcome)
}

/// gpg may start an agent in the throwaway home; stop it before the home is removed.
fn stop_agent(home: &std::path::Path) {
    if home.join("S.gpg-agent").exists() {
        let _ = std::process::Command::new("gpgconf")
            .arg("--homedir")
            .arg(home)
            .args(["--kill", "all"])
            .status();
    }
}
