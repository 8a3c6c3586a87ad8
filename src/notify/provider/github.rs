//! GitHub (and GitHub Enterprise) commit statuses: `POST /repos/OWNER/REPO/statuses/SHA` on
//! api.github.com, or on `/api/v3` of another host. Pure.

use serde_json::json;

use super::commit_status::{self, Repository, State};
use super::{HttpRequest, Provider, ProviderError};
use crate::notify::Notification;

pub struct Github(pub Repository);

impl Provider for Github {
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError> {
        let repo = &self.0;
        let Some((sha, state)) = commit_status::of(event) else {
            return Ok(None);
        };
        let api = if repo.host == "github.com" {
            "https://api.github.com".to_string()
        } else {
            format!("{}/api/v3", repo.base)
        };
        let state = match state {
            State::Success => "success",
            State::Failure => "failure",
            State::Pending => "pending",
        };
        let body = json!({
            "state": state,
            "context": commit_status::context(event),
            "description": commit_status::description(event),
        });
        let mut headers = repo.headers.clone();
        headers.push(("Authorization".into(), format!("Bearer {}", repo.token)));
        headers.push(("Accept".into(), "application/vnd.github+json".into()));
        let url = format!("{api}/repos/{}/statuses/{sha}", repo.path);
        Ok(Some(HttpRequest::json(url, &body, headers)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::notification::ProviderType;
    use crate::notify::Severity;
    use crate::notify::provider::ProviderConfig;
    use crate::notify::provider::tests::event;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    fn github(address: &str) -> Github {
        Github(
            Repository::of(&ProviderConfig {
                type_: ProviderType::Github,
                address: address.into(),
                token: Some("ghp_x".into()),
                ..Default::default()
            })
            .unwrap(),
        )
    }

    #[test]
    fn statuses_go_to_the_api_of_the_host() {
        let ok = event(Severity::Info, Some(&format!("main@sha1:{SHA}")));
        let request = github("https://github.com/org/app")
            .request(&ok)
            .unwrap()
            .unwrap();
        assert_eq!(
            request.url,
            format!("https://api.github.com/repos/org/app/statuses/{SHA}")
        );
        assert!(
            request
                .headers
                .contains(&("Authorization".into(), "Bearer ghp_x".into()))
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["state"], "success");
        assert_eq!(body["context"], "kustomization/web");
        let enterprise = github("https://git.corp.example/org/app")
            .request(&ok)
            .unwrap()
            .unwrap();
        assert!(
            enterprise
                .url
                .starts_with("https://git.corp.example/api/v3/repos/org/app/statuses/")
        );
        assert_eq!(
            github("https://github.com/org/app")
                .request(&event(Severity::Info, None))
                .unwrap(),
            None
        );
    }
}
