//! Microsoft Teams: a workflow webhook posting an Adaptive Card. Pure.

use serde_json::json;

use super::{HttpRequest, Provider, ProviderConfig, ProviderError};
use crate::notify::{Notification, Severity};

pub struct Teams(pub ProviderConfig);

impl Provider for Teams {
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError> {
        let facts: Vec<_> = event
            .metadata
            .iter()
            .map(|(k, v)| json!({"title": k, "value": v}))
            .collect();
        let card = json!({
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": event.title(), "weight": "bolder", "size": "medium",
                 "color": if event.severity == Severity::Error { "attention" } else { "good" }, "wrap": true},
                {"type": "TextBlock", "text": event.message, "wrap": true},
                {"type": "FactSet", "facts": facts},
            ],
        });
        let body = json!({
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
        });
        Ok(Some(HttpRequest::json(
            self.0.address.clone(),
            &body,
            self.0.headers.clone(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::provider::tests::event;

    #[test]
    fn an_adaptive_card_with_the_metadata_as_facts() {
        let teams = Teams(ProviderConfig {
            address: "https://prod.westeurope.logic.azure.com/workflows/x".into(),
            ..Default::default()
        });
        let request = teams
            .request(&event(Severity::Info, Some("main@sha1:0123")))
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let card = &body["attachments"][0]["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["body"][1]["text"], "Applied revision: main@sha1:0123");
        assert_eq!(card["body"][2]["facts"][0]["title"], "revision");
    }
}
