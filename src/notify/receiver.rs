//! Webhooks from Git hosts: the path a Receiver listens on (`webhook_path`), and whether a
//! request is genuine and wanted (`verify`: each host's signature or token, and its event
//! header). Pure.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::api::notification::ReceiverType;

/// Where a Receiver listens: `/hook/` and the SHA-256 of its token, name and namespace (as
/// Flux computes it), so the path itself is a secret.
pub fn webhook_path(token: &str, name: &str, namespace: &str) -> String {
    let digest = Sha256::digest(format!("{token}{name}{namespace}"));
    format!("/hook/{}", hex::encode(digest))
}

/// What to do with a genuine request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Reconcile the Receiver's resources.
    Trigger,
    /// Answer, but do nothing (a ping, an event type the Receiver does not want).
    Ignore(String),
}

/// Why a request was refused: nothing is triggered.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReceiverError {
    #[error("the request has no {0} header")]
    MissingSignature(&'static str),
    #[error("the {0} header does not match the request (wrong secret or altered body)")]
    BadSignature(&'static str),
    #[error("the {0} header names no supported algorithm (sha1, sha256, sha512)")]
    Algorithm(&'static str),
}

/// Checks a request of a Receiver of type `kind` with shared secret `token`; `events` is the
/// Receiver's list of wanted event types (empty: all).
pub fn verify(
    kind: ReceiverType,
    events: &[String],
    headers: &HeaderMap,
    body: &[u8],
    token: &str,
) -> Result<Verdict, ReceiverError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (event, ping) = match kind {
        ReceiverType::Generic => (None, None),
        ReceiverType::GenericHmac => {
            prefixed_hmac("X-Signature", header("X-Signature"), body, token)?;
            (None, None)
        }
        ReceiverType::Github => {
            match header("X-Hub-Signature-256") {
                Some(sig) => prefixed_hmac("X-Hub-Signature-256", Some(sig), body, token)?,
                None => prefixed_hmac("X-Hub-Signature", header("X-Hub-Signature"), body, token)?,
            }
            (header("X-GitHub-Event"), Some("ping"))
        }
        ReceiverType::Gitlab => {
            let sent = header("X-Gitlab-Token")
                .ok_or(ReceiverError::MissingSignature("X-Gitlab-Token"))?;
            if Sha256::digest(sent) != Sha256::digest(token) {
                return Err(ReceiverError::BadSignature("X-Gitlab-Token"));
            }
            (header("X-Gitlab-Event"), None)
        }
        ReceiverType::Gitea => {
            let sent = header("X-Gitea-Signature")
                .ok_or(ReceiverError::MissingSignature("X-Gitea-Signature"))?;
            check::<Hmac<Sha256>>("X-Gitea-Signature", sent, body, token)?;
            (header("X-Gitea-Event"), None)
        }
        ReceiverType::Bitbucket => {
            prefixed_hmac("X-Hub-Signature", header("X-Hub-Signature"), body, token)?;
            (header("X-Event-Key"), Some("diagnostics:ping"))
        }
    };
    if let Some(event) = event {
        if Some(event) == ping {
            return Ok(Verdict::Ignore(format!("{event} event")));
        }
        if !events.is_empty() && !events.iter().any(|e| e.eq_ignore_ascii_case(event)) {
            return Ok(Verdict::Ignore(format!(
                "event {event:?} is not one of {events:?}"
            )));
        }
    }
    Ok(Verdict::Trigger)
}

/// Checks `<algorithm>=<hex HMAC>`.
fn prefixed_hmac(
    name: &'static str,
    value: Option<&str>,
    body: &[u8],
    token: &str,
) -> Result<(), ReceiverError> {
    let value = value.ok_or(ReceiverError::MissingSignature(name))?;
    let (algorithm, sig) = value
        .split_once('=')
        .ok_or(ReceiverError::BadSignature(name))?;
    match algorithm {
        "sha1" => check::<Hmac<sha1::Sha1>>(name, sig, body, token),
        "sha256" => check::<Hmac<Sha256>>(name, sig, body, token),
        "sha512" => check::<Hmac<Sha512>>(name, sig, body, token),
        _ => Err(ReceiverError::Algorithm(name)),
    }
}

/// Compares in constant time.
fn check<M: Mac + hmac::digest::KeyInit>(
    name: &'static str,
    hex_sig: &str,
    body: &[u8],
    token: &str,
) -> Result<(), ReceiverError> {
    let sig = hex::decode(hex_sig.trim()).map_err(|_| ReceiverError::BadSignature(name))?;
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig)
        .map_err(|_| ReceiverError::BadSignature(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;

    fn sign<M: Mac + hmac::digest::KeyInit>(token: &str) -> String {
        let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(token.as_bytes()).unwrap();
        mac.update(BODY);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn paths_are_flux_digests() {
        let path = webhook_path("token", "app", "flux-system");
        assert_eq!(
            path,
            format!(
                "/hook/{}",
                hex::encode(Sha256::digest("tokenappflux-system"))
            )
        );
        assert_ne!(path, webhook_path("other", "app", "flux-system"));
    }

    #[test]
    fn github_signatures_and_events() {
        let good = headers(&[
            (
                "X-Hub-Signature-256",
                format!("sha256={}", sign::<Hmac<Sha256>>("s")),
            ),
            ("X-GitHub-Event", "push".into()),
        ]);
        let push = vec!["push".to_string()];
        assert_eq!(
            verify(ReceiverType::Github, &push, &good, BODY, "s"),
            Ok(Verdict::Trigger)
        );
        assert_eq!(
            verify(ReceiverType::Github, &push, &good, BODY, "wrong"),
            Err(ReceiverError::BadSignature("X-Hub-Signature-256"))
        );
        assert_eq!(
            verify(ReceiverType::Github, &push, &good, b"{}", "s"),
            Err(ReceiverError::BadSignature("X-Hub-Signature-256"))
        );
        assert_eq!(
            verify(ReceiverType::Github, &push, &HeaderMap::new(), BODY, "s"),
            Err(ReceiverError::MissingSignature("X-Hub-Signature"))
        );
        let legacy = headers(&[
            (
                "X-Hub-Signature",
                format!("sha1={}", sign::<Hmac<sha1::Sha1>>("s")),
            ),
            ("X-GitHub-Event", "ping".into()),
        ]);
        assert!(matches!(
            verify(ReceiverType::Github, &push, &legacy, BODY, "s"),
            Ok(Verdict::Ignore(_))
        ));
        let tag = headers(&[
            (
                "X-Hub-Signature-256",
                format!("sha256={}", sign::<Hmac<Sha256>>("s")),
            ),
            ("X-GitHub-Event", "create".into()),
        ]);
        assert!(matches!(
            verify(ReceiverType::Github, &push, &tag, BODY, "s"),
            Ok(Verdict::Ignore(_))
        ));
    }

    #[test]
    fn gitlab_gitea_bitbucket_and_generic() {
        let gitlab = headers(&[
            ("X-Gitlab-Token", "s".into()),
            ("X-Gitlab-Event", "Push Hook".into()),
        ]);
        assert_eq!(
            verify(ReceiverType::Gitlab, &[], &gitlab, BODY, "s"),
            Ok(Verdict::Trigger)
        );
        assert!(verify(ReceiverType::Gitlab, &[], &gitlab, BODY, "t").is_err());
        let gitea = headers(&[("X-Gitea-Signature", sign::<Hmac<Sha256>>("s"))]);
        assert_eq!(
            verify(ReceiverType::Gitea, &[], &gitea, BODY, "s"),
            Ok(Verdict::Trigger)
        );
        assert!(verify(ReceiverType::Gitea, &[], &gitea, BODY, "t").is_err());
        let bitbucket = headers(&[
            (
                "X-Hub-Signature",
                format!("sha256={}", sign::<Hmac<Sha256>>("s")),
            ),
            ("X-Event-Key", "repo:refs_changed".into()),
        ]);
        assert_eq!(
            verify(ReceiverType::Bitbucket, &[], &bitbucket, BODY, "s"),
            Ok(Verdict::Trigger)
        );
        let hmac = headers(&[(
            "X-Signature",
            format!("sha512={}", sign::<Hmac<Sha512>>("s")),
        )]);
        assert_eq!(
            verify(ReceiverType::GenericHmac, &[], &hmac, BODY, "s"),
            Ok(Verdict::Trigger)
        );
        let md5 = headers(&[("X-Signature", "md5=00".into())]);
        assert_eq!(
            verify(ReceiverType::GenericHmac, &[], &md5, BODY, "s"),
            Err(ReceiverError::Algorithm("X-Signature"))
        );
        assert_eq!(
            verify(ReceiverType::Generic, &[], &HeaderMap::new(), BODY, "s"),
            Ok(Verdict::Trigger)
        );
    }
}
