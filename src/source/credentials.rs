//! Reading Git credentials from the data of a Secret (or a directory laid out the same way):
//! `username`/`password`, `bearerToken`, `ca.crt`, `identity` + `known_hosts` (+ `password`). Pure.

use std::collections::BTreeMap;

use super::git::{Credentials, SshCredentials};
use super::url::{RemoteUrl, Scheme};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error("{origin}: key {key:?} is not UTF-8 text")]
    NotText { origin: String, key: &'static str },
    #[error("{origin}: has {present:?} but not {missing:?}")]
    Missing {
        origin: String,
        present: &'static str,
        missing: &'static str,
    },
    #[error("{origin}: an SSH URL needs keys \"identity\" and \"known_hosts\"")]
    SshIncomplete { origin: String },
    #[error("{origin}: {key:?} is not PEM (expected -----BEGIN ...)")]
    NotPem { origin: String, key: &'static str },
}

/// Builds credentials for `url` from Secret data. `origin` names the Secret in errors.
pub fn from_secret_data(
    url: &RemoteUrl,
    data: &BTreeMap<String, Vec<u8>>,
    origin: &str,
) -> Result<Credentials, CredentialsError> {
    let text =
        |key: &'static str| -> Result<Option<String>, CredentialsError> {
            match data.get(key) {
                None => Ok(None),
                Some(bytes) => String::from_utf8(bytes.clone()).map(Some).map_err(|_| {
                    CredentialsError::NotText {
                        origin: origin.to_owned(),
                        key,
                    }
                }),
            }
        };
    let mut creds = Credentials::default();
    if url.scheme == Scheme::Ssh {
        let (identity, known_hosts) = (text("identity")?, text("known_hosts")?);
        match (identity, known_hosts) {
            (Some(identity), Some(known_hosts)) => {
                if !identity.contains("-----BEGIN") {
                    return Err(CredentialsError::NotPem {
                        origin: origin.to_owned(),
                        key: "identity",
                    });
                }
                creds.ssh = Some(SshCredentials {
                    identity,
                    passphrase: text("password")?,
                    known_hosts,
                });
            }
            _ => {
                return Err(CredentialsError::SshIncomplete {
                    origin: origin.to_owned(),
                });
            }
        }
        return Ok(creds);
    }
    match (text("username")?, text("password")?) {
        (Some(u), Some(p)) => {
            creds.basic = Some((
                u.trim_end_matches('\n').to_owned(),
                p.trim_end_matches('\n').to_owned(),
            ))
        }
        (Some(_), None) => {
            return Err(CredentialsError::Missing {
                origin: origin.to_owned(),
                present: "username",
                missing: "password",
            });
        }
        (None, Some(_)) => {
            return Err(CredentialsError::Missing {
                origin: origin.to_owned(),
                present: "password",
                missing: "username",
            });
        }
        (None, None) => {}
    }
    creds.bearer_token = text("bearerToken")?.map(|t| t.trim().to_owned());
    if let Some(ca) = data.get("ca.crt") {
        if !ca.windows(10).any(|w| w == b"-----BEGIN") {
            return Err(CredentialsError::NotPem {
                origin: origin.to_owned(),
                key: "ca.crt",
            });
        }
        creds.ca_pem = Some(ca.clone());
    }
    Ok(creds)
}

/// What of `creds` would travel in the clear to `url`: basic auth or a bearer token over plain
/// `http://` or `git://`. `None` when nothing would (or the transport encrypts).
pub fn sent_in_clear(url: &RemoteUrl, creds: &Credentials) -> Option<&'static str> {
    if !matches!(url.scheme, Scheme::Http | Scheme::Git) {
        return None;
    }
    if creds.basic.is_some() {
        Some("username and password")
    } else if creds.bearer_token.is_some() {
        Some("bearer token")
    } else {
        None
    }
}

/// Whether `other` (a URL libgit2 is about to send credentials to, after a redirect for
/// instance) is on the same host and port as `url`.
pub fn same_host(url: &RemoteUrl, other: &str) -> bool {
    RemoteUrl::parse(other).is_ok_and(|o| {
        o.host.eq_ignore_ascii_case(&url.host) && o.effective_port() == url.effective_port()
    })
}

/// Reads a directory whose file names are Secret keys.
pub fn read_dir(dir: &std::path::Path) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut data = BTreeMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            data.insert(
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path())?,
            );
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn each_kind_is_read() {
        let https = RemoteUrl::parse("https://h/r").unwrap();
        let c = from_secret_data(
            &https,
            &data(&[("username", "u"), ("password", "p\n")]),
            "s",
        )
        .unwrap();
        assert_eq!(c.basic, Some(("u".into(), "p".into())));
        let c = from_secret_data(
            &https,
            &data(&[
                ("bearerToken", "t\n"),
                ("ca.crt", "-----BEGIN CERTIFICATE-----"),
            ]),
            "s",
        )
        .unwrap();
        assert_eq!(c.bearer_token.as_deref(), Some("t"));
        assert!(c.ca_pem.is_some());
        let ssh = RemoteUrl::parse("git@h:r").unwrap();
        let c = from_secret_data(
            &ssh,
            &data(&[
                ("identity", "-----BEGIN OPENSSH PRIVATE KEY-----"),
                ("known_hosts", "h ssh-ed25519 AAAA"),
            ]),
            "s",
        )
        .unwrap();
        assert!(c.ssh.is_some());
    }

    #[test]
    fn credentials_in_the_clear_and_other_hosts_are_spotted() {
        let basic = Credentials {
            basic: Some(("u".into(), "p".into())),
            ..Default::default()
        };
        let bearer = Credentials {
            bearer_token: Some("t".into()),
            ..Default::default()
        };
        let url = |u: &str| RemoteUrl::parse(u).unwrap();
        assert_eq!(
            sent_in_clear(&url("http://h/r"), &basic),
            Some("username and password")
        );
        assert_eq!(
            sent_in_clear(&url("git://h/r"), &bearer),
            Some("bearer token")
        );
        assert_eq!(sent_in_clear(&url("https://h/r"), &basic), None);
        assert_eq!(
            sent_in_clear(&url("http://h/r"), &Credentials::default()),
            None
        );
        let origin = url("https://git.example.com/org/app.git");
        assert!(same_host(
            &origin,
            "https://GIT.example.com/org/app.git/info/refs"
        ));
        assert!(!same_host(&origin, "https://evil.example.com/org/app.git"));
        assert!(!same_host(
            &origin,
            "https://git.example.com:8443/org/app.git"
        ));
        assert!(!same_host(&origin, "not a url"));
    }

    #[test]
    fn missing_keys_are_named() {
        let https = RemoteUrl::parse("https://h/r").unwrap();
        let e = from_secret_data(&https, &data(&[("username", "u")]), "ns/auth").unwrap_err();
        assert_eq!(
            e.to_string(),
            "ns/auth: has \"username\" but not \"password\""
        );
        let ssh = RemoteUrl::parse("ssh://h/r").unwrap();
        assert!(matches!(
            from_secret_data(&ssh, &data(&[("identity", "-----BEGIN x")]), "s"),
            Err(CredentialsError::SshIncomplete { .. })
        ));
        assert!(matches!(
            from_secret_data(&https, &data(&[("ca.crt", "garbage")]), "s"),
            Err(CredentialsError::NotPem { .. })
        ));
    }
}
