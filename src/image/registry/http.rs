//! The OCI distribution API over HTTP(S): `/v2/<name>/tags/list` with `Link` pagination, manifest
//! digests, anonymous access, basic auth and the Bearer token flow (`WWW-Authenticate` challenge →
//! token endpoint → retry), TLS with extra CAs and client certificates, and retries with backoff on
//! 429, 5xx and connection failures. Keeps the connection and the token between calls, so a
//! rescan costs one request per page. Network I/O.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, LINK, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;

use super::auth::{self, Challenge, TokenResponse};
use super::{Access, Basic, Limits, Registry, RegistryError, RetryPolicy};

/// Bytes one page of tags (or a token answer) may have.
pub const MAX_PAGE_BYTES: usize = 16 << 20;
/// Manifest media types asked for when reading a digest: indexes first, so a multi-platform
/// image has the digest a runtime resolves the tag to.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A registry reached over HTTP(S).
pub struct HttpRegistry {
    client: reqwest::Client,
    base: String,
    access: Access,
    retry: RetryPolicy,
    auth: Mutex<AuthState>,
    requests: AtomicU64,
}

/// What the registry asked for last time, and the token it accepted.
#[derive(Debug, Clone, Default)]
enum AuthState {
    /// Nothing asked yet: try without credentials.
    #[default]
    Anonymous,
    Basic,
    Bearer {
        challenge: Challenge,
        token: Option<(String, Instant)>,
    },
}

impl HttpRegistry {
    pub fn new(access: Access, retry: RetryPolicy) -> Result<HttpRegistry, RegistryError> {
        let tls_error = |reason: String| RegistryError::Tls {
            host: access.host.clone(),
            reason,
        };
        let tls = super::tls::client_config(&access).map_err(tls_error)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(15))
            .pool_idle_timeout(Duration::from_secs(90))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| tls_error(crate::runtime::text::error_chain(&e)))?;
        let scheme = if access.insecure { "http" } else { "https" };
        Ok(HttpRegistry {
            client,
            base: format!("{scheme}://{}", access.host),
            access,
            retry,
            auth: Mutex::new(AuthState::Anonymous),
            requests: AtomicU64::new(0),
        })
    }

    /// HTTP requests sent so far (token requests included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn auth_state(&self) -> AuthState {
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set_auth_state(&self, state: AuthState) {
        *self
            .auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = state;
    }

    /// Sends a request with whatever authentication the registry asked for, answering one new
    /// challenge and retrying 429, 5xx and connection failures with backoff.
    async fn send(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
        scope: &str,
    ) -> Result<reqwest::Response, RegistryError> {
        let mut challenged = false;
        let mut failures = 0u32;
        loop {
            let authorization = self.authorization(url, scope).await?;
            let mut request = self.client.request(method.clone(), url);
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value);
            }
            self.requests.fetch_add(1, Ordering::Relaxed);
            let outcome = request.send().await;
            let (retry_after, status_text) = match outcome {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED => {
                    if challenged {
                        return Err(self.rejected(url, &response));
                    }
                    challenged = true;
                    self.answer_challenge(url, response.headers())?;
                    continue;
                }
                Ok(response) if retryable(response.status()) => (
                    retry_after(response.headers()),
                    response.status().to_string(),
                ),
                Ok(response) => return Ok(response),
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                    (None, crate::runtime::text::error_chain(&e))
                }
                Err(e) => {
                    return Err(RegistryError::Connect {
                        url: url.to_owned(),
                        reason: crate::runtime::text::error_chain(&e),
                    });
                }
            };
            failures += 1;
            if failures > self.retry.retries {
                return Err(RegistryError::Unavailable {
                    url: url.to_owned(),
                    status: status_text,
                    attempts: failures,
                });
            }
            let backoff = self
                .retry
                .first_wait
                .saturating_mul(1 << (failures - 1).min(16));
            let wait = retry_after.unwrap_or(backoff).min(self.retry.max_wait);
            tracing::debug!(%url, status = %status_text, ?wait, "registry busy; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// The `Authorization` header for the current state, fetching a Bearer token when needed.
    async fn authorization(&self, url: &str, scope: &str) -> Result<Option<String>, RegistryError> {
        match self.auth_state() {
            AuthState::Anonymous => Ok(None),
            AuthState::Basic => {
                let basic =
                    self.credentials_for(url)?
                        .ok_or_else(|| {
                            RegistryError::Authentication {
                        url: url.to_owned(),
                        reason:
                            "the registry asks for a username and password and none are configured"
                                .into(),
                    }
                        })?;
                Ok(Some(basic_header(basic)))
            }
            AuthState::Bearer { challenge, token } => {
                if let Some((token, until)) = token
                    && Instant::now() < until
                {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let (token, until) = self.fetch_token(&challenge, scope).await?;
                self.set_auth_state(AuthState::Bearer {
                    challenge,
                    token: Some((token.clone(), until)),
                });
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// The credentials to send to `url`, refusing plain HTTP.
    fn credentials_for(&self, url: &str) -> Result<Option<&Basic>, RegistryError> {
        match &self.access.credentials {
            Some(_) if url.starts_with("http://") => Err(RegistryError::CredentialsInClear {
                origin: self.access.origin.clone(),
                url: url.to_owned(),
            }),
            credentials => Ok(credentials.as_ref()),
        }
    }

    fn answer_challenge(&self, url: &str, headers: &HeaderMap) -> Result<(), RegistryError> {
        let header = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let state = match auth::parse_challenge(header) {
            Some(Challenge::Basic) => AuthState::Basic,
            Some(challenge @ Challenge::Bearer { .. }) => AuthState::Bearer {
                challenge,
                token: None,
            },
            None => {
                return Err(RegistryError::Authentication {
                    url: url.to_owned(),
                    reason: format!("401 with a challenge sluice does not speak: {header:?}"),
                });
            }
        };
        self.set_auth_state(state);
        Ok(())
    }

    /// The error for a request the registry still refuses after its challenge was answered.
    fn rejected(&self, url: &str, response: &reqwest::Response) -> RegistryError {
        let reason = match (&self.access.credentials, self.auth_state()) {
            (None, _) => {
                "the registry refuses anonymous access and no credentials are configured".to_owned()
            }
            (Some(b), _) => format!(
                "the registry rejected the credentials of {} (user {:?})",
                self.access.origin, b.username
            ),
        };
        RegistryError::Authentication {
            url: format!("{url} ({})", response.status()),
            reason,
        }
    }

    /// Asks a challenge's token endpoint for a token for `scope`.
    async fn fetch_token(
        &self,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<(String, Instant), RegistryError> {
        let Challenge::Bearer {
            realm,
            service,
            scope: offered,
        } = challenge
        else {
            unreachable!("only Bearer challenges have tokens");
        };
        let mut url = reqwest::Url::parse(realm).map_err(|e| RegistryError::Authentication {
            url: realm.clone(),
            reason: format!("the token realm is not a URL: {e}"),
        })?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", offered.as_deref().unwrap_or(scope));
        }
        let mut request = self.client.get(url.clone());
        if let Some(basic) = self.credentials_for(url.as_str())? {
            request = request.header(AUTHORIZATION, basic_header(basic));
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| RegistryError::Connect {
            url: url.to_string(),
            reason: crate::runtime::text::error_chain(&e),
        })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(RegistryError::Authentication {
                url: url.to_string(),
                reason: match &self.access.credentials {
                    Some(b) => format!(
                        "the token endpoint rejected the credentials of {} (user {:?})",
                        self.access.origin, b.username
                    ),
                    None => "the token endpoint refuses anonymous access".into(),
                },
            });
        }
        let body = read_capped(response, url.as_str()).await?;
        if !status.is_success() {
            return Err(status_error(url.as_str(), status, &body));
        }
        let answer: TokenResponse =
            serde_json::from_slice(&body).map_err(|e| RegistryError::Authentication {
                url: url.to_string(),
                reason: format!("the token endpoint's answer is not JSON: {e}"),
            })?;
        let token = answer
            .token()
            .ok_or_else(|| RegistryError::Authentication {
                url: url.to_string(),
                reason: "the token endpoint's answer has no token".into(),
            })?
            .to_owned();
        Ok((token, Instant::now() + answer.reuse_for()))
    }

    fn url(&self, path_and_query: &str) -> String {
        if path_and_query.starts_with("http://") || path_and_query.starts_with("https://") {
            path_and_query.to_owned()
        } else {
            format!("{}{path_and_query}", self.base)
        }
    }
}

impl Registry for HttpRegistry {
    async fn list_tags(
        &self,
        repository: &str,
        limits: &Limits,
    ) -> Result<Vec<String>, RegistryError> {
        let scope = format!("repository:{repository}:pull");
        let mut url = self.url(&match limits.page_size {
            Some(n) => format!("/v2/{repository}/tags/list?n={}", n.max(1)),
            None => format!("/v2/{repository}/tags/list"),
        });
        let mut tags: Vec<String> = Vec::new();
        let mut seen_pages = std::collections::HashSet::new();
        loop {
            let response = self.send(Method::GET, &url, None, &scope).await?;
            let status = response.status();
            let next = response
                .headers()
                .get(LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(auth::next_link);
            let body = read_capped(response, &url).await?;
            if status == StatusCode::NOT_FOUND {
                return Err(RegistryError::NotFound {
                    host: self.access.host.clone(),
                    repository: repository.to_owned(),
                });
            }
            if !status.is_success() {
                return Err(status_error(&url, status, &body));
            }
            let page: TagPage =
                serde_json::from_slice(&body).map_err(|e| RegistryError::Decode {
                    url: url.clone(),
                    reason: e.to_string(),
                })?;
            let added = page.tags.unwrap_or_default();
            let progressed = !added.is_empty();
            tags.extend(added);
            if tags.len() > limits.max_tags {
                return Err(RegistryError::TooManyTags {
                    host: self.access.host.clone(),
                    repository: repository.to_owned(),
                    limit: limits.max_tags,
                });
            }
            let Some(next) = next else {
                return Ok(tags);
            };
            let next_url = self.url(&next);
            if !progressed || !seen_pages.insert(next_url.clone()) {
                return Err(RegistryError::Pagination {
                    url,
                    next: next_url,
                });
            }
            url = next_url;
        }
    }

    async fn digest(&self, repository: &str, tag: &str) -> Result<String, RegistryError> {
        let scope = format!("repository:{repository}:pull");
        let url = self.url(&format!("/v2/{repository}/manifests/{tag}"));
        for method in [Method::HEAD, Method::GET] {
            let response = self
                .send(method.clone(), &url, Some(MANIFEST_TYPES), &scope)
                .await?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND {
                return Err(RegistryError::TagNotFound {
                    host: self.access.host.clone(),
                    repository: repository.to_owned(),
                    tag: tag.to_owned(),
                });
            }
            let header = response
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if method == Method::HEAD {
                match header {
                    Some(d) if status.is_success() => return Ok(d),
                    // Some registries send the digest only with the body.
                    _ => continue,
                }
            }
            let body = read_capped(response, &url).await?;
            if !status.is_success() {
                return Err(status_error(&url, status, &body));
            }
            return Ok(header.unwrap_or_else(|| {
                use sha2::Digest;
                format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)))
            }));
        }
        Err(RegistryError::NoDigest {
            url,
            tag: tag.to_owned(),
        })
    }
}

#[derive(serde::Deserialize)]
struct TagPage {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// A `Retry-After` given in seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

fn basic_header(basic: &Basic) -> String {
    use base64::Engine;
    let pair = format!("{}:{}", basic.username, basic.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// Reads a body, refusing more than `MAX_PAGE_BYTES`.
async fn read_capped(mut response: reqwest::Response, url: &str) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::PageTooLarge {
        url: url.to_owned(),
        limit: MAX_PAGE_BYTES,
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_PAGE_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| RegistryError::Connect {
        url: url.to_owned(),
        reason: crate::runtime::text::error_chain(&e),
    })? {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn status_error(url: &str, status: StatusCode, body: &[u8]) -> RegistryError {
    RegistryError::Status {
        url: url.to_owned(),
        status: status.as_u16(),
        body: crate::runtime::text::truncate(String::from_utf8_lossy(body).trim(), 300),
    }
}
