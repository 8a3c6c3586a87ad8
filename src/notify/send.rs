//! Sends what a provider built: one HTTP POST with a timeout, retried on network errors and
//! 5xx/429 answers (three tries), counted in the metrics. Network I/O.

use std::sync::Arc;
use std::time::Duration;

use super::Notification;
use super::provider::{self, HttpRequest, ProviderConfig, ProviderError};
use crate::runtime::metrics::metrics;

/// Tries of one delivery.
const TRIES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error("building the HTTP client failed: {0}")]
    Client(String),
    #[error("POST {url} failed")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("POST {url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
}

/// The HTTP client notifications go out with (rustls with the system's roots).
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
}

impl Sender {
    pub fn new() -> Result<Sender, SendError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            // A system certificate rustls cannot read is no reason to send nothing.
            let _ = roots.add(cert);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| SendError::Client(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SendError::Client(e.to_string()))?;
        Ok(Sender { client })
    }

    /// Delivers `event` to the provider `config` describes. `Ok(false)` when the provider had
    /// nothing to send for it.
    pub async fn deliver(
        &self,
        config: &ProviderConfig,
        event: &Notification,
        timeout: Duration,
    ) -> Result<bool, SendError> {
        let request = provider::from_config(config)?.request(event)?;
        let Some(request) = request else {
            return Ok(false);
        };
        let result = self.post(&request, timeout).await;
        metrics().notification(config.type_.as_str(), result.is_ok());
        result.map(|()| true)
    }

    async fn post(&self, request: &HttpRequest, timeout: Duration) -> Result<(), SendError> {
        let mut attempt = 1;
        loop {
            let result = self.post_once(request, timeout).await;
            let retry = match &result {
                Ok(()) => return Ok(()),
                Err(SendError::Status { status, .. }) => *status >= 500 || *status == 429,
                Err(_) => true,
            };
            if !retry || attempt >= TRIES {
                return result;
            }
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            attempt += 1;
        }
    }

    async fn post_once(&self, request: &HttpRequest, timeout: Duration) -> Result<(), SendError> {
        let mut builder = self
            .client
            .post(&request.url)
            .timeout(timeout)
            .body(request.body.clone());
        for (key, value) in &request.headers {
            builder = builder.header(key, value);
        }
        let failed = |source| SendError::Request {
            url: redact(&request.url),
            source,
        };
        let response = builder.send().await.map_err(failed)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(SendError::Status {
            url: redact(&request.url),
            status: status.as_u16(),
            body: crate::runtime::text::truncate(body.trim(), 200),
        })
    }
}

/// A URL for logs: webhook URLs carry their secret in the path or query, so only scheme, host
/// and the first path segment are shown.
fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let first = u.path().split('/').find(|s| !s.is_empty()).unwrap_or("");
            format!("{}://{}/{first}/…", u.scheme(), u.host_str().unwrap_or(""))
        }
        Err(_) => "(an invalid URL)".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_in_webhook_urls_stay_out_of_logs() {
        assert_eq!(
            super::redact("https://hooks.slack.com/services/T0/B0/secret"),
            "https://hooks.slack.com/services/…"
        );
    }
}
