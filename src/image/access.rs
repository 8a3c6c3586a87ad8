//! How to reach an ImageRepository's registry: credentials from its `secretRef` or its
//! ServiceAccount's `imagePullSecrets` (`.dockerconfigjson`), CA and client certificate from its
//! `certSecretRef`. Reads Secrets and ServiceAccounts from the API server.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::Api;
use kube::{Client, ResourceExt};
use sha2::{Digest, Sha256};

use super::reference::ImageName;
use super::registry::Access;
use super::registry::auth::{self, AuthError};
use crate::api::image_repository::ImageRepository;

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("Secret {namespace}/{name} not found")]
    SecretNotFound { namespace: String, name: String },
    #[error("ServiceAccount {namespace}/{name} not found")]
    ServiceAccountNotFound { namespace: String, name: String },
    #[error("reading {what} failed")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name} has no {key:?}")]
    MissingKey {
        namespace: String,
        name: String,
        key: &'static str,
    },
    #[error(transparent)]
    Credentials(#[from] AuthError),
}

impl AccessError {
    /// Whether the Secret is there but unusable (as opposed to missing or unreadable).
    pub fn is_invalid_secret(&self) -> bool {
        matches!(
            self,
            AccessError::MissingKey { .. } | AccessError::Credentials(_)
        )
    }
}

/// Builds the access to `name`'s registry that `repo`'s spec describes.
pub async fn access(
    client: &Client,
    repo: &ImageRepository,
    name: &ImageName,
) -> Result<Access, AccessError> {
    let ns = repo.namespace().unwrap_or_default();
    let spec = &repo.spec;
    let mut access = Access {
        host: name.api_host().to_owned(),
        insecure: spec.insecure,
        ..Access::default()
    };
    // The pull secrets to look in, first the spec's own, then the ServiceAccount's.
    let mut pull_secrets: Vec<String> = spec.secret_ref.iter().map(|r| r.name.clone()).collect();
    if let Some(sa) = &spec.service_account_name {
        let api: Api<ServiceAccount> = Api::namespaced(client.clone(), &ns);
        let account = api
            .get_opt(sa)
            .await
            .map_err(|source| AccessError::Read {
                what: format!("ServiceAccount {ns}/{sa}"),
                source,
            })?
            .ok_or_else(|| AccessError::ServiceAccountNotFound {
                namespace: ns.clone(),
                name: sa.clone(),
            })?;
        pull_secrets.extend(
            account
                .image_pull_secrets
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name),
        );
    }
    for secret in &pull_secrets {
        let data = read_secret(client, &ns, secret).await?;
        let origin = format!("Secret {ns}/{secret}");
        let config = data
            .get(".dockerconfigjson")
            .or_else(|| data.get(".dockercfg"))
            .ok_or_else(|| AccessError::MissingKey {
                namespace: ns.clone(),
                name: secret.clone(),
                key: ".dockerconfigjson",
            })?;
        if let Some(basic) = auth::from_docker_config(config, &name.registry, &origin)? {
            access.credentials = Some(basic);
            access.origin = origin;
            break;
        }
    }
    if let Some(r) = &spec.cert_secret_ref {
        let data = read_secret(client, &ns, &r.name).await?;
        let get = |keys: [&str; 2]| keys.iter().find_map(|k| data.get(*k).cloned());
        access.ca_pem = get(["ca.crt", "caFile"]);
        match (get(["tls.crt", "certFile"]), get(["tls.key", "keyFile"])) {
            (Some(cert), Some(key)) => access.client_cert = Some((cert, key)),
            (Some(_), None) => {
                return Err(AccessError::MissingKey {
                    namespace: ns,
                    name: r.name.clone(),
                    key: "tls.key",
                });
            }
            _ => {}
        }
    }
    Ok(access)
}

/// A fingerprint of everything in `access`, to reuse a registry client while it holds.
pub fn fingerprint(access: &Access) -> String {
    let mut h = Sha256::new();
    h.update(access.host.as_bytes());
    h.update([u8::from(access.insecure)]);
    if let Some(b) = &access.credentials {
        h.update(b"\0user\0");
        h.update(b.username.as_bytes());
        h.update(b"\0");
        h.update(b.password.as_bytes());
    }
    for part in [
        &access.ca_pem,
        &access.client_cert.as_ref().map(|c| c.0.clone()),
    ] {
        h.update(b"\0part\0");
        h.update(part.as_deref().unwrap_or_default());
    }
    if let Some((_, key)) = &access.client_cert {
        h.update(key);
    }
    hex::encode(h.finalize())
}

async fn read_secret(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, AccessError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = api
        .get_opt(name)
        .await
        .map_err(|source| AccessError::Read {
            what: format!("Secret {ns}/{name}"),
            source,
        })?
        .ok_or_else(|| AccessError::SecretNotFound {
            namespace: ns.to_owned(),
            name: name.to_owned(),
        })?;
    Ok(secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}
