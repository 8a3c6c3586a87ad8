//! Slack: an incoming webhook (or `chat.postMessage` with a bot token), one attachment coloured
//! by severity. Pure.

use serde_json::json;

use super::{HttpRequest, Provider, ProviderConfig, ProviderError};
use crate::notify::{Notification, Severity};

pub struct Slack(pub ProviderConfig);

impl Provider for Slack {
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError> {
        let config = &self.0;
        let fields: Vec<_> = event
            .metadata
            .iter()
            .map(|(k, v)| json!({"title": k, "value": v, "short": false}))
            .collect();
        let mut body = json!({
            "username": config.username.as_deref().unwrap_or("sluice"),
            "attachments": [{
                "color": if event.severity == Severity::Error { "danger" } else { "good" },
                "author_name": event.involved_object.display(),
                "title": event.reason,
                "text": event.message,
                "mrkdwn_in": ["text"],
                "fields": fields,
            }],
        });
        if let Some(channel) = &config.channel {
            body["channel"] = channel.as_str().into();
        }
        let mut headers = config.headers.clone();
        if let Some(token) = &config.token {
            headers.push(("Authorization".into(), format!("Bearer {token}")));
        }
        Ok(Some(HttpRequest::json(
            config.address.clone(),
            &body,
            headers,
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::provider::tests::event;

    #[test]
    fn one_attachment_coloured_by_severity() {
        let slack = Slack(ProviderConfig {
            address: "https://hooks.slack.com/services/T/B/X".into(),
            channel: Some("#deploys".into()),
            ..Default::default()
        });
        let request = slack
            .request(&event(Severity::Error, Some("main@sha1:0123")))
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["channel"], "#deploys");
        assert_eq!(body["attachments"][0]["color"], "danger");
        assert_eq!(
            body["attachments"][0]["author_name"],
            "Kustomization/shop/web"
        );
        assert_eq!(
            body["attachments"][0]["fields"][0]["value"],
            "main@sha1:0123"
        );
    }
}
