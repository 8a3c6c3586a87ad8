//! Image names as users write them (`nginx`, `ghcr.io/org/app`, `127.0.0.1:5000/team/app`): which
//! registry they live on, their repository path and canonical spelling. Pure.

use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// Where images without a registry live, and the host that serves its API.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("image {image:?} is not valid: {reason}")]
    Invalid { image: String, reason: &'static str },
    #[error(
        "image {image:?} names a tag or digest; give the repository only (the policy chooses the tag)"
    )]
    HasTag { image: String },
}

/// An image repository: the registry host and the repository path on it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageName {
    /// `host[:port]`; `docker.io` for images without one.
    pub registry: String,
    /// The repository path, e.g. `library/nginx` or `team/app`.
    pub repository: String,
}

static COMPONENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$").expect("a valid regex")
});
static TAG: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$").expect("a valid regex"));

impl ImageName {
    /// Parses a repository reference without tag or digest.
    pub fn parse(image: &str) -> Result<ImageName, ReferenceError> {
        let raw = image.trim();
        let invalid = |reason| ReferenceError::Invalid {
            image: raw.to_owned(),
            reason,
        };
        if raw.is_empty() {
            return Err(invalid("it is empty"));
        }
        if raw.contains("://") {
            return Err(invalid("give host/path without a scheme"));
        }
        let (registry, path) = match raw.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DOCKER_HUB.to_owned(), raw.to_owned()),
        };
        if registry.is_empty() || registry.contains(['@', ' ']) {
            return Err(invalid("its registry host is not valid"));
        }
        let last = path.rsplit('/').next().unwrap_or_default();
        if path.contains('@') || last.contains(':') {
            return Err(ReferenceError::HasTag {
                image: raw.to_owned(),
            });
        }
        if path.split('/').any(|c| !COMPONENT.is_match(c)) {
            return Err(invalid(
                "each path component must be lowercase letters and digits, separated by . _ or -",
            ));
        }
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_owned(),
            _ => registry,
        };
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Ok(ImageName {
            registry,
            repository,
        })
    }

    /// The host (and port) whose `/v2/` API serves the repository.
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API
        } else {
            &self.registry
        }
    }

    /// Whether the registry is this machine (plain HTTP is the default for those in Docker).
    pub fn is_loopback(&self) -> bool {
        let host = self
            .registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h);
        host == "localhost" || host.starts_with("127.") || host == "[::1]"
    }
}

impl fmt::Display for ImageName {
    /// The canonical name, e.g. `docker.io/library/nginx`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)
    }
}

/// Whether `tag` is a valid image tag.
pub fn is_valid_tag(tag: &str) -> bool {
    TAG.is_match(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(image: &str) -> String {
        ImageName::parse(image).unwrap().to_string()
    }

    #[test]
    fn names_are_canonicalised_as_docker_does() {
        assert_eq!(canonical("nginx"), "docker.io/library/nginx");
        assert_eq!(canonical("org/app"), "docker.io/org/app");
        assert_eq!(canonical("index.docker.io/org/app"), "docker.io/org/app");
        assert_eq!(canonical("ghcr.io/org/team/app"), "ghcr.io/org/team/app");
        assert_eq!(canonical("127.0.0.1:5000/app"), "127.0.0.1:5000/app");
        assert_eq!(canonical("localhost/app"), "localhost/app");
        let hub = ImageName::parse("nginx").unwrap();
        assert_eq!(hub.api_host(), "registry-1.docker.io");
        assert!(
            ImageName::parse("127.0.0.1:5000/app")
                .unwrap()
                .is_loopback()
        );
        assert!(!hub.is_loopback());
    }

    #[test]
    fn tags_digests_and_bad_names_are_refused() {
        assert!(matches!(
            ImageName::parse("ghcr.io/org/app:1.0"),
            Err(ReferenceError::HasTag { .. })
        ));
        assert!(matches!(
            ImageName::parse("app@sha256:abc"),
            Err(ReferenceError::HasTag { .. })
        ));
        for bad in [
            "",
            "Upper/Case",
            "https://ghcr.io/app",
            "ghcr.io/a//b",
            "a/-b",
        ] {
            assert!(ImageName::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(is_valid_tag("1.0.0-rc.1"));
        assert!(is_valid_tag("build_20261130-7"));
        assert!(!is_valid_tag(".hidden"));
        assert!(!is_valid_tag(&"a".repeat(129)));
    }
}
