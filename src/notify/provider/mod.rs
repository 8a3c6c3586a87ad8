//! Where notifications go: one file per service, each turning a `Notification` into the HTTP
//! request that service expects (pure, so each is tested without a network), and the one factory
//! `match`. Sending is `notify::send`'s job.

mod commit_status;
mod discord;
mod generic;
mod gitea;
mod github;
mod gitlab;
mod googlechat;
mod msteams;
mod rocket;
mod slack;

use crate::api::notification::ProviderType;

use super::Notification;

/// What a provider needs to know: the Provider's spec with its Secret read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderConfig {
    pub type_: ProviderType,
    /// Webhook URL, or the repository URL for commit statuses.
    pub address: String,
    pub channel: Option<String>,
    pub username: Option<String>,
    /// API token, or the HMAC key of `generic-hmac`.
    pub token: Option<String>,
    /// Extra HTTP headers.
    pub headers: Vec<(String, String)>,
}

/// One HTTP POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    fn json(url: String, body: &serde_json::Value, headers: Vec<(String, String)>) -> HttpRequest {
        let mut all = vec![("Content-Type".to_string(), "application/json".to_string())];
        all.extend(headers);
        HttpRequest {
            url,
            headers: all,
            body: serde_json::to_vec(body).expect("payloads serialize"),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProviderError {
    #[error("the provider has no address (spec.address or the Secret's address)")]
    NoAddress,
    #[error("{0:?} is not a URL the provider can use: {1}")]
    BadAddress(String, String),
    #[error("a {0} provider needs a token in its Secret")]
    NoToken(&'static str),
}

/// Builds requests for one service.
pub trait Provider: Send + Sync {
    /// The request for `event`; `None` when the service has nothing to say about it (a commit
    /// status for an Event without a revision).
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError>;
}

/// The provider for `config`, checked as far as can be without sending anything.
pub fn from_config(config: &ProviderConfig) -> Result<Box<dyn Provider>, ProviderError> {
    if config.address.is_empty() {
        return Err(ProviderError::NoAddress);
    }
    let url = reqwest::Url::parse(&config.address)
        .map_err(|e| ProviderError::BadAddress(config.address.clone(), e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ProviderError::BadAddress(
            config.address.clone(),
            "only http and https are supported".into(),
        ));
    }
    Ok(match config.type_ {
        ProviderType::Slack => Box::new(slack::Slack(config.clone())),
        ProviderType::Msteams => Box::new(msteams::Teams(config.clone())),
        ProviderType::Discord => Box::new(discord::Discord(config.clone())),
        ProviderType::Googlechat | ProviderType::Gchat => {
            Box::new(googlechat::GoogleChat(config.clone()))
        }
        ProviderType::Rocket => Box::new(rocket::Rocket(config.clone())),
        ProviderType::Generic => Box::new(generic::Generic {
            config: config.clone(),
            hmac: false,
        }),
        ProviderType::GenericHmac => {
            if config.token.is_none() {
                return Err(ProviderError::NoToken("generic-hmac"));
            }
            Box::new(generic::Generic {
                config: config.clone(),
                hmac: true,
            })
        }
        ProviderType::Github => Box::new(github::Github(commit_status::Repository::of(config)?)),
        ProviderType::Gitlab => Box::new(gitlab::Gitlab(commit_status::Repository::of(config)?)),
        ProviderType::Gitea => Box::new(gitea::Gitea(commit_status::Repository::of(config)?)),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::notify::{InvolvedObject, Severity};

    pub fn event(severity: Severity, revision: Option<&str>) -> Notification {
        Notification {
            involved_object: InvolvedObject {
                kind: "Kustomization".into(),
                namespace: "shop".into(),
                name: "web".into(),
                api_version: Some("sluice.dev/v1alpha1".into()),
                uid: None,
            },
            severity,
            timestamp: "2026-01-01T00:00:00Z".into(),
            message: "Applied revision: main@sha1:0123".into(),
            reason: "ReconciliationSucceeded".into(),
            metadata: revision
                .map(|r| [("revision".to_string(), r.to_string())].into())
                .unwrap_or_default(),
            reporting_controller: "sluice-kustomize".into(),
            reporting_instance: None,
        }
    }

    #[test]
    fn addresses_are_checked_up_front() {
        let config = |type_, address: &str| ProviderConfig {
            type_,
            address: address.into(),
            ..Default::default()
        };
        assert_eq!(
            from_config(&config(ProviderType::Slack, "")).err(),
            Some(ProviderError::NoAddress)
        );
        assert!(matches!(
            from_config(&config(ProviderType::Slack, "not a url")).err(),
            Some(ProviderError::BadAddress(..))
        ));
        assert!(matches!(
            from_config(&config(ProviderType::Slack, "ftp://x/y")).err(),
            Some(ProviderError::BadAddress(..))
        ));
        assert_eq!(
            from_config(&config(ProviderType::GenericHmac, "https://h/x")).err(),
            Some(ProviderError::NoToken("generic-hmac"))
        );
        assert!(from_config(&config(ProviderType::Discord, "https://h/x")).is_ok());
    }
}
