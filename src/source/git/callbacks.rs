//! libgit2 callbacks of a remote: credentials, SSH host keys against known_hosts, TLS certificates
//! against a custom CA, and cancellation. Called on the blocking fetch thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};

use super::{GitError, GitRemote};
use crate::source::known_hosts::{HostKeyCheck, KnownHosts};

impl GitRemote {
    pub(super) fn callbacks(
        &self,
        cancel: Arc<AtomicBool>,
        failure: CallbackFailure,
    ) -> Result<RemoteCallbacks<'static>, GitError> {
        let mut cb = RemoteCallbacks::new();
        let creds = self.credentials.clone();
        let attempts = Arc::new(AtomicUsize::new(0));
        let url_for_creds = self.url.to_string();
        let origin = self.url.clone();
        let fail_creds = failure.clone();
        cb.credentials(move |url, username_from_url, allowed| {
            // libgit2 asks again with the new URL after a redirect: only the URL's own host
            // gets the Secret's credentials.
            if !crate::source::credentials::same_host(&origin, url) {
                let message = format!("{url_for_creds} redirected to {url}");
                fail_creds.set(GitError::CrossHostCredentials {
                    url: url_for_creds.clone(),
                    to: url.to_owned(),
                });
                return Err(git2::Error::from_str(&message));
            }
            // libgit2 asks again after a rejection; one try per kind is enough.
            if attempts.fetch_add(1, Ordering::SeqCst) >= 2 {
                let message = "the server rejected the credentials".to_owned();
                fail_creds.set(GitError::Authenticate {
                    url: url_for_creds.clone(),
                    message: message.clone(),
                });
                return Err(git2::Error::from_str(&message));
            }
            if allowed.contains(CredentialType::SSH_KEY)
                && let Some(ssh) = &creds.ssh
            {
                return Cred::ssh_key_from_memory(
                    username_from_url.unwrap_or("git"),
                    None,
                    &ssh.identity,
                    ssh.passphrase.as_deref(),
                );
            }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
                && let Some((u, p)) = &creds.basic
            {
                return Cred::userpass_plaintext(u, p);
            }
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(username_from_url.unwrap_or("git"));
            }
            let message = "the server asks for credentials the Secret does not have".to_owned();
            fail_creds.set(GitError::Authenticate {
                url: url_for_creds.clone(),
                message: message.clone(),
            });
            Err(git2::Error::from_str(&message))
        });

        let known_hosts = match &self.credentials.ssh {
            Some(ssh) => Some(KnownHosts::parse(&ssh.known_hosts)?),
            None => None,
        };
        let ca = match &self.credentials.ca_pem {
            Some(pem) => Some(openssl::x509::X509::stack_from_pem(pem).map_err(GitError::ParseCa)?),
            None => None,
        };
        let port = self.url.effective_port();
        cb.certificate_check(move |cert, host| {
            if let Some(hostkey) = cert.as_hostkey() {
                let check = match (&known_hosts, hostkey.hostkey()) {
                    (Some(kh), Some(key)) => kh.check(host, port, key),
                    _ => HostKeyCheck::UnknownHost,
                };
                if check == HostKeyCheck::Trusted {
                    return Ok(CertificateCheckStatus::CertificateOk);
                }
                failure.set(GitError::HostKey {
                    host: format!("{host}:{port}"),
                    check,
                });
                return Err(git2::Error::from_str("host key not trusted"));
            }
            if let (Some(x509), Some(ca)) = (cert.as_x509(), &ca) {
                return match verify_with_ca(x509.data(), ca, host) {
                    Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                    Err(reason) => {
                        failure.set(GitError::Certificate {
                            host: host.to_owned(),
                            reason: reason.clone(),
                        });
                        Err(git2::Error::from_str(&reason))
                    }
                };
            }
            Ok(CertificateCheckStatus::CertificatePassthrough)
        });
        let c1 = cancel.clone();
        cb.transfer_progress(move |_| !c1.load(Ordering::SeqCst));
        cb.sideband_progress(move |_| !cancel.load(Ordering::SeqCst));
        Ok(cb)
    }
}

/// Checks a DER leaf certificate against a CA bundle and the host name.
fn verify_with_ca(der: &[u8], ca: &[openssl::x509::X509], host: &str) -> Result<(), String> {
    use openssl::x509::store::X509StoreBuilder;
    use openssl::x509::{X509, X509StoreContext};
    let leaf = X509::from_der(der).map_err(|e| format!("server certificate unreadable: {e}"))?;
    let mut store = X509StoreBuilder::new().map_err(|e| e.to_string())?;
    for c in ca {
        store.add_cert(c.clone()).map_err(|e| e.to_string())?;
    }
    let param = {
        let mut p = openssl::x509::verify::X509VerifyParam::new().map_err(|e| e.to_string())?;
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => p.set_ip(ip).map_err(|e| e.to_string())?,
            Err(_) => p.set_host(host).map_err(|e| e.to_string())?,
        }
        p
    };
    store.set_param(&param).map_err(|e| e.to_string())?;
    let store = store.build();
    let chain = openssl::stack::Stack::new().map_err(|e| e.to_string())?;
    let mut ctx = X509StoreContext::new().map_err(|e| e.to_string())?;
    let (ok, err) = ctx
        .init(&store, &leaf, &chain, |c| Ok((c.verify_cert()?, c.error())))
        .map_err(|e| e.to_string())?;
    if ok {
        Ok(())
    } else {
        Err(err.error_string().to_owned())
    }
}

/// The precise failure a callback saw, which libgit2 reports only as a generic error.
#[derive(Clone, Default)]
pub(super) struct CallbackFailure(Arc<std::sync::Mutex<Option<GitError>>>);

impl CallbackFailure {
    pub(super) fn set(&self, e: GitError) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(e);
        }
    }

    pub(super) fn take(&self) -> Option<GitError> {
        self.0.lock().ok().and_then(|mut s| s.take())
    }
}
