//! Registry credentials and challenges: reading a `.dockerconfigjson` for one registry, parsing
//! `WWW-Authenticate` challenges (Basic, and the Bearer token flow Docker Hub and GHCR use), the
//! token endpoint's answer (and how long to reuse it) and `Link` pagination headers. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// Username and password (or an identity token as password) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Basic {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Basic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Basic")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("{origin}: .dockerconfigjson is not valid JSON: {reason}")]
    ConfigJson { origin: String, reason: String },
    #[error(
        "{origin}: the entry for {registry} has an \"auth\" that is not base64 of user:password"
    )]
    ConfigAuth { origin: String, registry: String },
}

#[derive(Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The credentials `config` (a `.dockerconfigjson`) holds for `registry` (`host[:port]`), if
/// any. Keys may be written with a scheme and path (`https://index.docker.io/v1/`).
pub fn from_docker_config(
    config: &[u8],
    registry: &str,
    origin: &str,
) -> Result<Option<Basic>, AuthError> {
    let parsed: DockerConfig =
        serde_json::from_slice(config).map_err(|e| AuthError::ConfigJson {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
    let wanted = host_of(registry);
    let Some((key, entry)) = parsed.auths.iter().find(|(key, _)| host_of(key) == wanted) else {
        return Ok(None);
    };
    if let Some(encoded) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = || AuthError::ConfigAuth {
            origin: origin.to_owned(),
            registry: key.clone(),
        };
        let decoded = STANDARD.decode(encoded.trim()).map_err(|_| bad())?;
        let text = String::from_utf8(decoded).map_err(|_| bad())?;
        let (username, password) = text.split_once(':').ok_or_else(bad)?;
        return Ok(Some(Basic {
            username: username.to_owned(),
            password: password.to_owned(),
        }));
    }
    if let Some(token) = &entry.identitytoken {
        return Ok(Some(Basic {
            username: entry.username.clone().unwrap_or_else(|| "<token>".into()),
            password: token.clone(),
        }));
    }
    Ok(match (&entry.username, &entry.password) {
        (Some(u), Some(p)) => Some(Basic {
            username: u.clone(),
            password: p.clone(),
        }),
        _ => None,
    })
}

/// A config key or registry as a comparable host: no scheme, no path, Docker Hub's aliases
/// folded into `docker.io`.
fn host_of(key: &str) -> String {
    let without_scheme = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = without_scheme
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => host,
    }
}

/// How a registry asks to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Reads a `WWW-Authenticate` header; Bearer wins when both are offered.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let mut basic = false;
    let mut bearer = None;
    for (scheme, params) in split_challenges(header) {
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => basic = true,
            "bearer" => {
                let get = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.clone())
                };
                if let Some(realm) = get("realm") {
                    bearer = Some(Challenge::Bearer {
                        realm,
                        service: get("service"),
                        scope: get("scope"),
                    });
                }
            }
            _ => {}
        }
    }
    bearer.or(basic.then_some(Challenge::Basic))
}

/// Splits a header into challenges: a scheme followed by `key=value` or `key="value"` pairs.
fn split_challenges(header: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    let mut rest = header.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches([',', ' ']);
        let token_end = rest.find([' ', '=', ',']).unwrap_or(rest.len());
        let token = &rest[..token_end];
        let after = &rest[token_end..];
        if after.trim_start().starts_with('=') && !out.is_empty() {
            // A parameter of the current challenge.
            let value_start = after.trim_start()[1..].trim_start();
            let (value, remainder) = if let Some(quoted) = value_start.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = quoted.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, escaped)) = chars.next() {
                                value.push(escaped);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => value.push(c),
                    }
                }
                (value, &quoted[end.min(quoted.len())..])
            } else {
                let end = value_start.find(',').unwrap_or(value_start.len());
                (value_start[..end].trim().to_owned(), &value_start[end..])
            };
            if let Some((_, params)) = out.last_mut() {
                params.push((token.to_owned(), value));
            }
            rest = remainder;
        } else if token.is_empty() {
            break;
        } else {
            out.push((token.to_owned(), Vec::new()));
            rest = after;
        }
    }
    out
}

/// What a token endpoint answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    /// Seconds the token is valid (60 when absent, as the distribution spec says).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

/// The longest a token is reused, whatever the token endpoint says it lasts: a hostile or broken
/// endpoint's `expires_in` must not push a renewal past what a clock can add.
pub const MAX_TOKEN_REUSE: Duration = Duration::from_secs(3600);

impl TokenResponse {
    /// How long the token may be reused: ten seconds less than it lasts (so it never expires
    /// between check and use), at least a second, at most `MAX_TOKEN_REUSE`.
    pub fn reuse_for(&self) -> Duration {
        let seconds = self.expires_in.unwrap_or(60).saturating_sub(10).max(1);
        Duration::from_secs(seconds).min(MAX_TOKEN_REUSE)
    }

    pub fn token(&self) -> Option<&str> {
        self.token
            .as_deref()
            .or(self.access_token.as_deref())
            .filter(|t| !t.is_empty())
    }
}

/// The `rel="next"` target of a `Link` header, e.g. `</v2/app/tags/list?last=x&n=100>; rel="next"`.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|p| {
            p.trim()
                .strip_prefix("rel=")
                .is_some_and(|v| v.trim_matches('"').split(' ').any(|r| r == "next"))
        });
        is_next.then(|| target.to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_entries_are_found_by_host() {
        let config = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
            "127.0.0.1:5000": {"username": "sluice", "password": "s3cret"},
            "ghcr.io": {"identitytoken": "tok"}
        }}"#;
        let get = |r: &str| from_docker_config(config, r, "Secret a/b").unwrap();
        assert_eq!(get("docker.io").unwrap().username, "user");
        assert_eq!(get("docker.io").unwrap().password, "pass");
        assert_eq!(get("127.0.0.1:5000").unwrap().password, "s3cret");
        assert_eq!(get("ghcr.io").unwrap().password, "tok");
        assert_eq!(get("quay.io"), None);
        assert!(matches!(
            from_docker_config(b"{nope", "x", "Secret a/b"),
            Err(AuthError::ConfigJson { .. })
        ));
        assert!(matches!(
            from_docker_config(br#"{"auths": {"x": {"auth": "bm9jb2xvbg=="}}}"#, "x", "s"),
            Err(AuthError::ConfigAuth { .. })
        ));
    }

    #[test]
    fn challenges_as_registries_send_them() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/nginx:pull".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="sluice-registry""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="a", Bearer realm="https://t/x""#),
            Some(Challenge::Bearer {
                realm: "https://t/x".into(),
                service: None,
                scope: None
            })
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge(""), None);
    }

    #[test]
    fn tokens_and_links() {
        let t: TokenResponse =
            serde_json::from_str(r#"{"access_token": "a", "expires_in": 300}"#).unwrap();
        assert_eq!((t.token(), t.expires_in), (Some("a"), Some(300)));
        assert_eq!(t.reuse_for(), Duration::from_secs(290));
        let lasts = |json: &str| {
            serde_json::from_str::<TokenResponse>(json)
                .unwrap()
                .reuse_for()
        };
        assert_eq!(lasts(r#"{"token": "a"}"#), Duration::from_secs(50));
        assert_eq!(
            lasts(r#"{"token": "a", "expires_in": 0}"#),
            Duration::from_secs(1)
        );
        let forever = format!(r#"{{"token": "a", "expires_in": {}}}"#, u64::MAX);
        assert_eq!(lasts(&forever), MAX_TOKEN_REUSE);
        // What the registry client adds it to: no overflow, however long the answer says.
        let _ = tokio::time::Instant::now() + lasts(&forever);
        assert_eq!(
            next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"<https://x/y>; rel="prev""#), None);
    }
}
