//! What the commit-status providers (GitHub, GitLab, Gitea) share: the repository named by the
//! Provider's address, the commit a notification is about, and its state. Pure.

use super::{ProviderConfig, ProviderError};
use crate::notify::{Notification, Severity};

/// A repository on a Git host, from the Provider's address (`https://host/owner/repo[.git]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `https://host[:port]`.
    pub base: String,
    pub host: String,
    /// `owner/repo` (GitLab: `group/subgroup/repo`).
    pub path: String,
    pub token: String,
    pub headers: Vec<(String, String)>,
}

impl Repository {
    pub fn of(config: &ProviderConfig) -> Result<Repository, ProviderError> {
        let bad = |why: &str| ProviderError::BadAddress(config.address.clone(), why.into());
        let url = reqwest::Url::parse(&config.address).map_err(|e| bad(&e.to_string()))?;
        let host = url.host_str().ok_or_else(|| bad("no host"))?.to_string();
        let path = url
            .path()
            .trim_matches('/')
            .trim_end_matches(".git")
            .to_string();
        if path.split('/').filter(|p| !p.is_empty()).count() < 2 {
            return Err(bad("expected https://HOST/OWNER/REPOSITORY"));
        }
        let base = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        let token = config
            .token
            .clone()
            .ok_or(ProviderError::NoToken(config.type_.as_str()))?;
        Ok(Repository {
            base,
            host,
            path,
            token,
            headers: config.headers.clone(),
        })
    }
}

/// The commit a notification is about (`main@sha1:<hex>`, `sha1:<hex>`); `None` without one.
pub fn commit(event: &Notification) -> Option<&str> {
    let revision = event.revision()?;
    let sha = revision
        .rsplit_once("sha1:")
        .map_or(revision, |(_, sha)| sha);
    (sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit())).then_some(sha)
}

/// How a notification reads as a commit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Success,
    Failure,
    Pending,
}

/// The commit a notification is about and the state it gives it; `None` when it says nothing
/// about how a commit went. Kustomizations say how applying it went (every Event: progressing,
/// applied, failed). Canaries say how releasing it went, from the Events that end or start an
/// analysis: `NewRevision` (pending), `Succeeded` (the promotion: success) and `RolledBack`
/// (failure, with the check that decided in the description); their other Events (each step,
/// a halt) would only make the status flicker.
pub fn of(event: &Notification) -> Option<(&str, State)> {
    let state = match event.involved_object.kind.as_str() {
        "Kustomization" => match event.severity {
            Severity::Error => State::Failure,
            Severity::Info if event.reason == "Progressing" => State::Pending,
            Severity::Info => State::Success,
        },
        "Canary" => match event.reason.as_str() {
            "NewRevision" => State::Pending,
            "Succeeded" => State::Success,
            "RolledBack" => State::Failure,
            _ => return None,
        },
        _ => return None,
    };
    Some((commit(event)?, state))
}

/// The status's name: one per object (`kustomization/web`), so each Kustomization applying the
/// commit has a line of its own.
pub fn context(event: &Notification) -> String {
    format!(
        "{}/{}",
        event.involved_object.kind.to_lowercase(),
        event.involved_object.name
    )
}

/// The description, within what hosts accept (GitHub: 140 characters).
pub fn description(event: &Notification) -> String {
    let line = event.message.lines().next().unwrap_or("");
    if line.chars().count() <= 140 {
        line.to_string()
    } else {
        format!("{}…", line.chars().take(139).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::notification::ProviderType;
    use crate::notify::provider::tests::event;

    fn config(address: &str) -> ProviderConfig {
        ProviderConfig {
            type_: ProviderType::Github,
            address: address.into(),
            token: Some("t".into()),
            ..Default::default()
        }
    }

    #[test]
    fn repositories_are_read_from_the_address() {
        let repo = Repository::of(&config("https://github.com/org/app.git")).unwrap();
        assert_eq!(
            (repo.base.as_str(), repo.path.as_str()),
            ("https://github.com", "org/app")
        );
        let repo = Repository::of(&config("http://127.0.0.1:3000/team/sub/app")).unwrap();
        assert_eq!(
            (repo.base.as_str(), repo.path.as_str()),
            ("http://127.0.0.1:3000", "team/sub/app")
        );
        assert!(Repository::of(&config("https://github.com/org")).is_err());
        let mut no_token = config("https://github.com/org/app");
        no_token.token = None;
        assert_eq!(
            Repository::of(&no_token),
            Err(ProviderError::NoToken("github"))
        );
    }

    #[test]
    fn commits_states_and_contexts() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let revision = format!("main@sha1:{sha}");
        let ok = event(Severity::Info, Some(&revision));
        assert_eq!(commit(&ok), Some(sha));
        assert_eq!(of(&ok), Some((sha, State::Success)));
        assert_eq!(context(&ok), "kustomization/web");
        assert_eq!(
            commit(&event(Severity::Info, Some("main@sha1:short"))),
            None
        );
        assert_eq!(commit(&event(Severity::Info, None)), None);
        assert_eq!(of(&event(Severity::Info, None)), None);
        assert_eq!(
            of(&event(Severity::Error, Some(&revision))),
            Some((sha, State::Failure))
        );
        let mut source = event(Severity::Error, Some(&revision));
        source.involved_object.kind = "GitRepository".into();
        assert_eq!(of(&source), None, "only Kustomizations and Canaries");
    }

    #[test]
    fn canaries_say_how_a_release_went_at_its_start_and_end_only() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let canary = |severity, reason: &str| {
            let mut e = event(severity, Some(&format!("main@sha1:{sha}")));
            e.involved_object.kind = "Canary".into();
            e.reason = reason.into();
            e.message = "Rolling back web.shop: failed checks threshold reached 1 (last: \
                         request-success-rate 42 outside >= 99)"
                .into();
            e
        };
        assert_eq!(
            of(&canary(Severity::Info, "NewRevision")),
            Some((sha, State::Pending))
        );
        assert_eq!(
            of(&canary(Severity::Info, "Succeeded")),
            Some((sha, State::Success))
        );
        let rolled_back = canary(Severity::Error, "RolledBack");
        assert_eq!(of(&rolled_back), Some((sha, State::Failure)));
        assert_eq!(context(&rolled_back), "canary/web");
        assert!(description(&rolled_back).contains("request-success-rate 42 outside >= 99"));
        for reason in ["Advanced", "Halted", "Failed", "Waiting"] {
            assert_eq!(of(&canary(Severity::Error, reason)), None, "{reason}");
        }
    }
}
