//! Discord: a channel webhook with one embed coloured by severity. Pure.

use serde_json::json;

use super::{HttpRequest, Provider, ProviderConfig, ProviderError};
use crate::notify::{Notification, Severity};

pub struct Discord(pub ProviderConfig);

impl Provider for Discord {
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError> {
        let fields: Vec<_> = event
            .metadata
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let body = json!({
            "username": self.0.username.as_deref().unwrap_or("sluice"),
            "embeds": [{
                "title": event.title(),
                "description": event.message,
                "color": if event.severity == Severity::Error { 0xa3_02_00 } else { 0x2e_b8_86 },
                "fields": fields,
            }],
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
    fn one_embed() {
        let discord = Discord(ProviderConfig {
            address: "https://discord.com/api/webhooks/1/x".into(),
            ..Default::default()
        });
        let request = discord
            .request(&event(Severity::Error, None))
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(
            body["embeds"][0]["title"],
            "Kustomization/shop/web ReconciliationSucceeded"
        );
        assert_eq!(body["embeds"][0]["color"], 0xa30200);
    }
}
