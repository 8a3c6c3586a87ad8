//! Gitea (and Forgejo) commit statuses: `POST /api/v1/repos/OWNER/REPO/statuses/SHA` with a
//! `token` authorization. Pure.

use serde_json::json;

use super::commit_status::{self, Repository, State};
use super::{HttpRequest, Provider, ProviderError};
use crate::notify::Notification;

pub struct Gitea(pub Repository);

impl Provider for Gitea {
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError> {
        let repo = &self.0;
        let Some((sha, state)) = commit_status::of(event) else {
            return Ok(None);
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
        headers.push(("Authorization".into(), format!("token {}", repo.token)));
        let url = format!("{}/api/v1/repos/{}/statuses/{sha}", repo.base, repo.path);
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

    #[test]
    fn statuses_go_to_api_v1() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let gitea = Gitea(
            Repository::of(&ProviderConfig {
                type_: ProviderType::Gitea,
                address: "http://127.0.0.1:3000/team/app".into(),
                token: Some("t0k".into()),
                ..Default::default()
            })
            .unwrap(),
        );
        let failed = event(Severity::Error, Some(&format!("main@sha1:{sha}")));
        let request = gitea.request(&failed).unwrap().unwrap();
        assert_eq!(
            request.url,
            format!("http://127.0.0.1:3000/api/v1/repos/team/app/statuses/{sha}")
        );
        assert!(
            request
                .headers
                .contains(&("Authorization".into(), "token t0k".into()))
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["state"], "failure");
    }
}
