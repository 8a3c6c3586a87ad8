//! Reading Git credentials from the data of a Secret (or a directory laid out the same way):
//! `username`/`password`, `bearerToken`, `ca.crt`, `identity` + `known_hosts` (+ `password`). Pure.

use std::collections::BTreeMap;

use super::url::{RemoteUrl, Scheme};
use super::{Credentials, SshCredentials};

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
