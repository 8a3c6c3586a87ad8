//! Remote Git URLs: which transports are accepted and where they point. Pure, no I/O.

use std::fmt;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UrlError {
    #[error("URL {url:?} is not valid: {reason}")]
    Parse { url: String, reason: &'static str },
    #[error(
        "URL {url:?} uses scheme {scheme:?}; supported are https, http, ssh, git and user@host:path"
    )]
    UnsupportedScheme { url: String, scheme: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Https,
    Http,
    Ssh,
    Git,
}

/// A parsed remote URL. `as_libgit2` is what the transport is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteUrl {
    pub scheme: Scheme,
    pub username: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub path: String,
    raw: String,
}

impl RemoteUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let raw = url.trim();
        let bad = |reason| UrlError::Parse {
            url: raw.to_owned(),
            reason,
        };
        if raw.is_empty() {
            return Err(bad("it is empty"));
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains whitespace or control characters"));
        }
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Self::parse_scp_like(raw);
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            "ssh" => Scheme::Ssh,
            "git" => Scheme::Git,
            other => {
                return Err(UrlError::UnsupportedScheme {
                    url: raw.to_owned(),
                    scheme: other.to_owned(),
                });
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if path.len() <= 1 {
            return Err(bad("it has no repository path"));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if userinfo.is_some_and(|u| u.contains(':')) {
            return Err(bad("credentials belong in the Secret, not in the URL"));
        }
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| bad("its port is not a number"))?;
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        Ok(RemoteUrl {
            scheme,
            username: userinfo.map(str::to_owned),
            host,
            port,
            path: path.to_owned(),
            raw: raw.to_owned(),
        })
    }

    /// `user@host:path`, the form `git clone` accepts for SSH.
    fn parse_scp_like(raw: &str) -> Result<Self, UrlError> {
        let bad = |reason| UrlError::Parse {
            url: raw.to_owned(),
            reason,
        };
        let (user, rest) = raw
            .split_once('@')
            .ok_or_else(|| bad("it has no scheme and is not of the form user@host:path"))?;
        let (host, path) = rest
            .split_once(':')
            .ok_or_else(|| bad("it has no scheme and is not of the form user@host:path"))?;
        if user.is_empty() || host.is_empty() || path.is_empty() || host.contains('/') {
            return Err(bad(
                "it has no scheme and is not of the form user@host:path",
            ));
        }
        Ok(RemoteUrl {
            scheme: Scheme::Ssh,
            username: Some(user.to_owned()),
            host: host.to_owned(),
            port: None,
            path: path.to_owned(),
            raw: raw.to_owned(),
        })
    }

    pub fn as_libgit2(&self) -> &str {
        &self.raw
    }

    /// The port the transport connects to.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            Scheme::Https => 443,
            Scheme::Http => 80,
            Scheme::Ssh => 22,
            Scheme::Git => 9418,
        })
    }
}

impl fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn split_host_port(hostport: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            Some(p) => Some((host.to_owned(), Some(p.parse().ok()?))),
            None if after.is_empty() => Some((host.to_owned(), None)),
            None => None,
        };
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) => Some((h.to_owned(), Some(p.parse().ok()?))),
        None => Some((hostport.to_owned(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_form() {
        let u = RemoteUrl::parse("https://example.com/org/repo.git").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.effective_port()),
            (Scheme::Https, "example.com", 443)
        );
        let u = RemoteUrl::parse("http://127.0.0.1:8080/repo").unwrap();
        assert_eq!((u.scheme, u.port), (Scheme::Http, Some(8080)));
        let u = RemoteUrl::parse("ssh://git@127.0.0.1:2222/srv/repo.git").unwrap();
        assert_eq!(
            (u.scheme, u.username.as_deref(), u.effective_port()),
            (Scheme::Ssh, Some("git"), 2222)
        );
        let u = RemoteUrl::parse("git://localhost/repo.git").unwrap();
        assert_eq!((u.scheme, u.effective_port()), (Scheme::Git, 9418));
        let u = RemoteUrl::parse("git@github.com:org/repo.git").unwrap();
        assert_eq!(
            (u.scheme, u.host.as_str(), u.path.as_str()),
            (Scheme::Ssh, "github.com", "org/repo.git")
        );
        let u = RemoteUrl::parse("ssh://[::1]:22/repo").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", Some(22)));
    }

    #[test]
    fn malformed_urls_are_named() {
        for bad in [
            "",
            "not a url",
            "ftp://x/y",
            "file:///tmp/repo",
            "https://",
            "https://host",
            "https://u:p@host/r",
            "https://h:xx/r",
            "host:path",
        ] {
            assert!(RemoteUrl::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
