//! GitLab commit statuses: `POST /api/v4/projects/<url-encoded path>/statuses/SHA` with a
//! `PRIVATE-TOKEN`. Pure.

use serde_json::json;

use super::commit_status::{self, Repository, State};
use super::{HttpRequest, Provider, ProviderError};
use crate::notify::Notification;

pub struct Gitlab(pub Repository);

impl Provider for Gitlab {
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError> {
        let repo = &self.0;
        let Some((sha, state)) = commit_status::of(event) else {
            return Ok(None);
        };
        let state = match state {
            State::Success => "success",
            State::Failure => "failed",
            State::Pending => "running",
        };
        let body = json!({
            "state": state,
            "name": commit_status::context(event),
            "description": commit_status::description(event),
        });
        let mut headers = repo.headers.clone();
        headers.push(("PRIVATE-TOKEN".into(), repo.token.clone()));
        let project = repo.path.replace('/', "%2F");
        let url = format!("{}/api/v4/projects/{project}/statuses/{sha}", repo.base);
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
    fn statuses_go_to_the_encoded_project() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let gitlab = Gitlab(
            Repository::of(&ProviderConfig {
                type_: ProviderType::Gitlab,
                address: "https://gitlab.com/group/sub/app".into(),
                token: Some("glpat".into()),
                ..Default::default()
            })
            .unwrap(),
        );
        let request = gitlab
            .request(&event(Severity::Error, Some(&format!("sha1:{sha}"))))
            .unwrap()
            .unwrap();
        assert_eq!(
            request.url,
            format!("https://gitlab.com/api/v4/projects/group%2Fsub%2Fapp/statuses/{sha}")
        );
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["state"], "failed");
        assert_eq!(body["name"], "kustomization/web");
    }
}
