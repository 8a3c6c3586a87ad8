//! Signature verification of fetched revisions: which objects a mode checks, which keys are
//! trusted, and why a revision is not trusted. The decision here is pure; `openpgp` and `ssh` do
//! the cryptography (gpgme, ssh-keygen) with I/O.

mod openpgp;
mod ssh;

use std::fmt;

use crate::git::{SignedObjects, SignedPayload, TagHeaders, TagObject};

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the verification Secret has no keys ending in .asc, .pub or .sshpub")]
    NoKeys,
    #[error("key {name:?} is not a usable ASCII-armoured OpenPGP public key")]
    ParseOpenPgpKey { name: String },
    #[error("key {name:?} line {line} is not an SSH public key")]
    ParseSshKey { name: String, line: usize },
    #[error("email allowlist {name:?} is not UTF-8 text")]
    ParseEmails { name: String },
    #[error("mode {mode:?} is not one of HEAD, Tag, TagAndHEAD")]
    ParseMode { mode: String },
    #[error("a throwaway GnuPG home could not be prepared")]
    GnupgHome(#[source] std::io::Error),
    #[error("gpgme failed while {step}")]
    Gpgme {
        step: &'static str,
        #[source]
        source: gpgme::Error,
    },
    #[error("running ssh-keygen failed")]
    SshKeygen(#[source] std::io::Error),
    #[error("the blocking verification task stopped unexpectedly")]
    Join(#[source] tokio::task::JoinError),
}

/// Which objects must carry a trusted signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyMode {
    #[default]
    Head,
    Tag,
    TagAndHead,
}

impl VerifyMode {
    /// Accepts Flux's spellings (`HEAD`, `Tag`, `TagAndHEAD`) and the CLI's (`head`, `tag`, `tag-and-head`).
    pub fn parse(mode: &str) -> Result<Self, VerifyError> {
        match mode.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "head" => Ok(VerifyMode::Head),
            "tag" => Ok(VerifyMode::Tag),
            "tagandhead" => Ok(VerifyMode::TagAndHead),
            _ => Err(VerifyError::ParseMode {
                mode: mode.to_owned(),
            }),
        }
    }

    fn checks_head(self) -> bool {
        matches!(self, VerifyMode::Head | VerifyMode::TagAndHead)
    }

    fn checks_tag(self) -> bool {
        matches!(self, VerifyMode::Tag | VerifyMode::TagAndHead)
    }
}

/// One trusted public key, with the emails its signatures may carry (any when `None`).
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: String,
    pub data: Vec<u8>,
    pub emails: Option<Vec<String>>,
}

/// The keys of a verification Secret: `*.asc` OpenPGP keys, `*.pub` and `*.sshpub` SSH keys, and optional
/// `<stem>.emails` files listing the committer/tagger emails each key may sign for (one per line,
/// `*@example.com` allowed).
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    pub openpgp: Vec<TrustedKey>,
    pub ssh: Vec<TrustedKey>,
}

impl TrustedKeys {
    pub fn from_entries(
        entries: impl IntoIterator<Item = (String, Vec<u8>)>,
    ) -> Result<Self, VerifyError> {
        let entries: Vec<(String, Vec<u8>)> = entries.into_iter().collect();
        let emails_for = |stem: &str| -> Result<Option<Vec<String>>, VerifyError> {
            let Some((name, data)) = entries
                .iter()
                .find(|(n, _)| n.strip_suffix(".emails") == Some(stem))
            else {
                return Ok(None);
            };
            let text = std::str::from_utf8(data)
                .map_err(|_| VerifyError::ParseEmails { name: name.clone() })?;
            let list = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_ascii_lowercase);
            Ok(Some(list.collect()))
        };
        let mut keys = TrustedKeys::default();
        for (name, data) in &entries {
            // `.sshpub` is what Flux's documentation names SSH keys; `.pub` is ssh-keygen's.
            let ssh = name
                .strip_suffix(".sshpub")
                .or_else(|| name.strip_suffix(".pub"));
            let (stem, is_pgp) = match (name.strip_suffix(".asc"), ssh) {
                (Some(s), _) => (s, true),
                (_, Some(s)) => (s, false),
                _ => continue,
            };
            let key = TrustedKey {
                name: name.clone(),
                data: data.clone(),
                emails: emails_for(stem)?,
            };
            if is_pgp {
                keys.openpgp.push(key);
            } else {
                ssh::check_key_file(&key)?;
                keys.ssh.push(key);
            }
        }
        if keys.openpgp.is_empty() && keys.ssh.is_empty() {
            return Err(VerifyError::NoKeys);
        }
        Ok(keys)
    }

    /// Reads a directory the way a mounted Secret looks: one file per key.
    pub fn from_dir(dir: &std::path::Path) -> std::io::Result<Result<Self, VerifyError>> {
        let mut entries = Vec::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if e.file_type()?.is_file() {
                entries.push((
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path())?,
                ));
            }
        }
        entries.sort();
        Ok(Self::from_entries(entries))
    }
}

/// Which object a reason is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Commit(String),
    Tag(String),
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Commit(c) => write!(f, "commit {c}"),
            Subject::Tag(t) => write!(f, "tag {t}"),
        }
    }
}

/// Why a revision is not trusted, in words a person understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("{0} is not signed")]
    Unsigned(Subject),
    #[error("{subject} is signed by key {key}, which is not among the trusted keys")]
    UnknownKey { subject: Subject, key: String },
    #[error("{subject} has a bad signature (the content does not match it)")]
    BadSignature { subject: Subject, detail: String },
    #[error("{subject} is signed by key {key}, which has expired")]
    ExpiredKey { subject: Subject, key: String },
    #[error("{subject} is signed by key {key}, which has been revoked")]
    RevokedKey { subject: Subject, key: String },
    #[error("{subject} is signed by {key} for {email:?}, an email that key may not sign for")]
    EmailNotAllowed {
        subject: Subject,
        key: String,
        email: String,
    },
    #[error("tag {0} is a lightweight tag; mode Tag needs an annotated, signed tag")]
    LightweightTag(String),
    #[error("the reference is not a tag; modes Tag and TagAndHEAD need a tag or semver reference")]
    NotATag,
    #[error(
        "tag {name} was signed as tag {signed_name:?} of object {signed_object:?}, not as {name} of commit {commit}; a signed tag is only good for the name and commit it was made for"
    )]
    TagMismatch {
        name: String,
        commit: String,
        signed_name: String,
        signed_object: String,
    },
}

/// Whether an annotated tag's own headers say it tags `commit` under `name` (pure). Otherwise
/// an old signed tag moved to a new name (or a new name pointed at an old signed tag object)
/// would pass as a signed release.
pub fn tag_binding(headers: &TagHeaders, name: &str, commit: &str) -> Result<(), Untrusted> {
    let object = headers.object.as_deref().unwrap_or_default();
    let tag = headers.tag.as_deref().unwrap_or_default();
    if object == commit && tag == name {
        return Ok(());
    }
    Err(Untrusted::TagMismatch {
        name: name.to_owned(),
        commit: commit.to_owned(),
        signed_name: tag.to_owned(),
        signed_object: object.to_owned(),
    })
}

/// A good signature by a trusted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    pub subject: Subject,
    /// The Secret entry holding the key.
    pub key_name: String,
    pub fingerprint: String,
}

/// Verifies the objects a mode requires. `Ok(Err(_))` is a clear "not trusted".
pub async fn verify(
    objects: &SignedObjects,
    commit: &str,
    tag_name: Option<&str>,
    mode: VerifyMode,
    keys: &TrustedKeys,
) -> Result<Result<Vec<Signer>, Untrusted>, VerifyError> {
    let mut signers = Vec::new();
    if mode.checks_tag() {
        let tag = tag_name.unwrap_or_default().to_owned();
        match &objects.tag {
            TagObject::NotATag => return Ok(Err(Untrusted::NotATag)),
            TagObject::Lightweight => return Ok(Err(Untrusted::LightweightTag(tag))),
            TagObject::Annotated { payload, headers } => {
                if let Err(u) = tag_binding(headers, &tag, commit) {
                    return Ok(Err(u));
                }
                match verify_payload(payload, Subject::Tag(tag), keys).await? {
                    Ok(s) => signers.push(s),
                    Err(u) => return Ok(Err(u)),
                }
            }
        }
    }
    if mode.checks_head() {
        match verify_payload(&objects.commit, Subject::Commit(commit.to_owned()), keys).await? {
            Ok(s) => signers.push(s),
            Err(u) => return Ok(Err(u)),
        }
    }
    Ok(Ok(signers))
}

async fn verify_payload(
    payload: &SignedPayload,
    subject: Subject,
    keys: &TrustedKeys,
) -> Result<Result<Signer, Untrusted>, VerifyError> {
    let Some(signature) = &payload.signature else {
        return Ok(Err(Untrusted::Unsigned(subject)));
    };
    let found = if signature.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        ssh::verify(signature, &payload.signed_data, &keys.ssh, subject.clone()).await?
    } else {
        let (sig, data, pgp) = (
            signature.clone(),
            payload.signed_data.clone(),
            keys.openpgp.clone(),
        );
        let subject = subject.clone();
        tokio::task::spawn_blocking(move || openpgp::verify(&sig, &data, &pgp, subject))
            .await
            .map_err(VerifyError::Join)??
    };
    let signer = match found {
        Ok(s) => s,
        Err(u) => return Ok(Err(u)),
    };
    let all_keys = keys.openpgp.iter().chain(&keys.ssh);
    let allowlist = all_keys
        .filter(|k| k.name == signer.key_name)
        .find_map(|k| k.emails.as_ref());
    if let Some(allowed) = allowlist {
        let email = payload
            .email
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !allowed.iter().any(|pattern| email_matches(pattern, &email)) {
            return Ok(Err(Untrusted::EmailNotAllowed {
                subject,
                key: signer.key_name,
                email,
            }));
        }
    }
    Ok(Ok(signer))
}

/// `alice@example.com` matches itself; `*@example.com` matches any user at that domain.
fn email_matches(pattern: &str, email: &str) -> bool {
    match pattern.strip_prefix("*@") {
        Some(domain) => email.rsplit_once('@').is_some_and(|(_, d)| d == domain),
        None => pattern == email,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_in_flux_and_cli_spelling() {
        assert_eq!(VerifyMode::parse("HEAD").unwrap(), VerifyMode::Head);
        assert_eq!(VerifyMode::parse("Tag").unwrap(), VerifyMode::Tag);
        assert_eq!(
            VerifyMode::parse("TagAndHEAD").unwrap(),
            VerifyMode::TagAndHead
        );
        assert_eq!(
            VerifyMode::parse("tag-and-head").unwrap(),
            VerifyMode::TagAndHead
        );
        assert!(VerifyMode::parse("strict").is_err());
    }

    #[test]
    fn a_tag_is_bound_to_its_signed_name_and_commit() {
        let headers = |object: &str, tag: &str| TagHeaders {
            object: Some(object.into()),
            tag: Some(tag.into()),
        };
        assert!(tag_binding(&headers("abc", "v1.0.0"), "v1.0.0", "abc").is_ok());
        let renamed = tag_binding(&headers("abc", "v1.0.0"), "v2.0.0", "abc").unwrap_err();
        assert!(
            renamed.to_string().contains("signed as tag \"v1.0.0\""),
            "{renamed}"
        );
        assert!(tag_binding(&headers("abc", "v1.0.0"), "v1.0.0", "def").is_err());
        assert!(tag_binding(&TagHeaders::default(), "v1.0.0", "abc").is_err());
    }

    #[test]
    fn email_patterns() {
        assert!(email_matches("a@x.org", "a@x.org"));
        assert!(email_matches("*@x.org", "b@x.org"));
        assert!(!email_matches("*@x.org", "b@evil.x.org.com"));
        assert!(!email_matches("a@x.org", "b@x.org"));
    }

    #[test]
    fn secret_without_keys_is_refused() {
        let r = TrustedKeys::from_entries([("README".to_owned(), b"x".to_vec())]);
        assert!(matches!(r, Err(VerifyError::NoKeys)));
        let r = TrustedKeys::from_entries([("a.pub".to_owned(), b"garbage".to_vec())]);
        assert!(matches!(r, Err(VerifyError::ParseSshKey { .. })));
        // Flux's spelling of an SSH key is read as one too.
        let r = TrustedKeys::from_entries([("a.sshpub".to_owned(), b"garbage".to_vec())]);
        assert!(matches!(r, Err(VerifyError::ParseSshKey { .. })));
    }

    #[tokio::test]
    async fn unsigned_and_lightweight_are_named() {
        let keys = TrustedKeys {
            openpgp: vec![],
            ssh: vec![],
        };
        let unsigned = SignedPayload {
            signature: None,
            signed_data: vec![],
            email: None,
        };
        let objects = SignedObjects {
            commit: unsigned.clone(),
            tag: TagObject::Lightweight,
        };
        let r = verify(&objects, "abc", Some("v1"), VerifyMode::Head, &keys)
            .await
            .unwrap();
        assert_eq!(r, Err(Untrusted::Unsigned(Subject::Commit("abc".into()))));
        let r = verify(&objects, "abc", Some("v1"), VerifyMode::Tag, &keys)
            .await
            .unwrap();
        assert_eq!(r, Err(Untrusted::LightweightTag("v1".into())));
        let objects = SignedObjects {
            commit: unsigned,
            tag: TagObject::NotATag,
        };
        let r = verify(&objects, "abc", None, VerifyMode::TagAndHead, &keys)
            .await
            .unwrap();
        assert_eq!(r, Err(Untrusted::NotATag));
    }
}
