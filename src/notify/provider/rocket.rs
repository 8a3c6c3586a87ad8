//! Rocket.Chat: an incoming webhook with one attachment coloured by severity (Rocket.Chat reads
//! Slack's attachment fields). Pure.

use serde_json::json;

use super::{HttpRequest, Provider, ProviderConfig, ProviderError};
use crate::notify::{Notification, Severity};

pub struct Rocket(pub ProviderConfig);

impl Provider for Rocket {
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError> {
        let config = &self.0;
        let fields: Vec<_> = event
            .metadata
            .iter()
            .map(|(k, v)| json!({"title": k, "value": v, "short": false}))
            .collect();
        let mut body = json!({
            "alias": config.username.as_deref().unwrap_or("sluice"),
            "text": event.title(),
            "attachments": [{
                "color": if event.severity == Severity::Error { "#a30200" } else { "#2eb886" },
                "title": event.reason,
                "text": event.message,
                "fields": fields,
            }],
        });
        if let Some(channel) = &config.channel {
            body["channel"] = channel.as_str().into();
        }
        Ok(Some(HttpRequest::json(
            config.address.clone(),
            &body,
            config.headers.clone(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::provider::tests::event;

    #[test]
    fn one_attachment_with_the_metadata_as_fields() {
        let rocket = Rocket(ProviderConfig {
            address: "https://chat.example.com/hooks/x/y".into(),
            channel: Some("#deploys".into()),
            ..Default::default()
        });
        let request = rocket
            .request(&event(Severity::Error, Some("main@sha1:0123")))
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["channel"], "#deploys");
        assert_eq!(
            body["text"],
            "Kustomization/shop/web ReconciliationSucceeded"
        );
        assert_eq!(body["attachments"][0]["color"], "#a30200");
        assert_eq!(
            body["attachments"][0]["fields"][0]["value"],
            "main@sha1:0123"
        );
    }
}
