//! Container registries: the `Registry` trait (list a repository's tags, read a tag's digest),
//! how to reach one (`Access`: credentials, CA, client certificate, plain HTTP) and its errors.
//! The one implementation speaks the OCI distribution API over HTTP (`http`).

pub mod auth;
pub mod http;
mod tls;

use std::future::Future;
use std::time::Duration;

pub use auth::Basic;

/// What a registry holds that sluice reads.
pub trait Registry: Send + Sync {
    /// Every tag of `repository`, in the registry's order, at most `limits.max_tags`.
    fn list_tags(
        &self,
        repository: &str,
        limits: &Limits,
    ) -> impl Future<Output = Result<Vec<String>, RegistryError>> + Send;

    /// The digest (`sha256:...`) of the manifest (or index) `tag` points at.
    fn digest(
        &self,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<String, RegistryError>> + Send;
}

/// How to reach a registry.
#[derive(Clone, Default)]
pub struct Access {
    /// `host[:port]` serving `/v2/`.
    pub host: String,
    pub credentials: Option<Basic>,
    /// PEM CA certificates trusted besides the system's.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM client certificate chain and key.
    pub client_cert: Option<(Vec<u8>, Vec<u8>)>,
    /// Plain HTTP instead of HTTPS.
    pub insecure: bool,
    /// Where the credentials came from, for messages (e.g. `Secret apps/regcred`).
    pub origin: String,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("host", &self.host)
            .field("credentials", &self.credentials)
            .field("ca_pem", &self.ca_pem.is_some())
            .field("client_cert", &self.client_cert.is_some())
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Bounds of one tag listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// More tags than this is an error, not a partial list.
    pub max_tags: usize,
    /// Tags asked for per page (`n`); `None` asks for no size and lets the registry choose, as
    /// skopeo and Flux do. Either way a registry may send fewer and link to the next page.
    pub page_size: Option<usize>,
}

/// Tags a repository may have before a scan refuses it.
pub const DEFAULT_MAX_TAGS: usize = 100_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tags: DEFAULT_MAX_TAGS,
            page_size: None,
        }
    }
}

/// How often and how patiently requests are retried after 429, 5xx and connection failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first wait; doubled after each retry.
    pub first_wait: Duration,
    /// No wait (including a `Retry-After`) is longer than this.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 4,
            first_wait: Duration::from_millis(500),
            max_wait: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("the TLS settings for {host} are not usable: {reason}")]
    Tls { host: String, reason: String },
    #[error(
        "refusing to send the credentials of {origin} to {url} over plain HTTP; use HTTPS (spec.insecure: false) or no credentials"
    )]
    CredentialsInClear { origin: String, url: String },
    #[error("{url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("{url}: authentication failed: {reason}")]
    Authentication { url: String, reason: String },
    #[error("repository {repository} was not found on {host}")]
    NotFound { host: String, repository: String },
    #[error("tag {tag} of {repository} was not found on {host}")]
    TagNotFound {
        host: String,
        repository: String,
        tag: String,
    },
    #[error("{url} answered {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("{url} answered {status} {attempts} times in a row; giving up")]
    Unavailable {
        url: String,
        status: String,
        attempts: u32,
    },
    #[error("{url} sent an answer that is not a tag list: {reason}")]
    Decode { url: String, reason: String },
    #[error("{url} sent more than {limit} bytes for one page")]
    PageTooLarge { url: String, limit: usize },
    #[error("{repository} on {host} has more than {limit} tags; narrow it down or raise the limit")]
    TooManyTags {
        host: String,
        repository: String,
        limit: usize,
    },
    #[error("{url}: pagination does not advance (the next page is {next})")]
    Pagination { url: String, next: String },
    #[error("{url} sent no digest for tag {tag}")]
    NoDigest { url: String, tag: String },
}

impl RegistryError {
    /// Whether only a spec or Secret change helps (wrong password, missing repository).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            RegistryError::Authentication { .. } | RegistryError::CredentialsInClear { .. }
        )
    }
}
