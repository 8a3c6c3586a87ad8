//! The TLS settings of a registry client: the system's roots plus an ImageRepository's CA, and its
//! client certificate. Reads the system's certificate store; no network I/O.

use std::sync::Arc;

use super::Access;

/// rustls with the system's roots plus the access's CA, and its client certificate.
pub fn client_config(access: &Access) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A system certificate rustls cannot read is not this registry's problem.
        let _ = roots.add(cert);
    }
    if let Some(pem) = &access.ca_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| format!("ca.crt is not PEM certificates: {e}"))?;
            roots
                .add(cert)
                .map_err(|e| format!("ca.crt holds a certificate rustls refuses: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("ca.crt holds no PEM certificate".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    match &access.client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("tls.crt is not PEM certificates: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key_pem)
                .map_err(|e| format!("tls.key is not a PEM private key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls.crt and tls.key do not make a client certificate: {e}"))
        }
    }
}
