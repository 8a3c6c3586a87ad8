//! Google Chat: a space webhook with a text message. Pure.

use serde_json::json;

use super::{HttpRequest, Provider, ProviderConfig, ProviderError};
use crate::notify::{Notification, Severity};

pub struct GoogleChat(pub ProviderConfig);

impl Provider for GoogleChat {
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError> {
        let mark = if event.severity == Severity::Error {
            "⚠"
        } else {
            "✔"
        };
        let mut text = format!("{mark} *{}*\n{}", event.title(), event.message);
        for (k, v) in &event.metadata {
            text.push_str(&format!("\n_{k}_: {v}"));
        }
        let body = json!({"text": text});
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
    fn a_text_message() {
        let chat = GoogleChat(ProviderConfig {
            address: "https://chat.googleapis.com/v1/spaces/X/messages?key=k".into(),
            ..Default::default()
        });
        let request = chat
            .request(&event(Severity::Info, Some("main@sha1:0123")))
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with("✔ *Kustomization/shop/web"), "{text}");
        assert!(text.contains("_revision_: main@sha1:0123"), "{text}");
    }
}
