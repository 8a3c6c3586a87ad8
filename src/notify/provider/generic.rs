//! A generic webhook: the notification as JSON, optionally signed with an HMAC of the body
//! (`X-Signature: sha256=<hex>`, keyed with the Secret's token). Pure.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{HttpRequest, Provider, ProviderConfig, ProviderError};
use crate::notify::Notification;

pub struct Generic {
    pub config: ProviderConfig,
    pub hmac: bool,
}

impl Provider for Generic {
    fn request(&self, event: &Notification) -> Result<Option<HttpRequest>, ProviderError> {
        let body = serde_json::to_value(event).expect("notifications serialize");
        let mut request = HttpRequest::json(
            self.config.address.clone(),
            &body,
            self.config.headers.clone(),
        );
        if self.hmac {
            let key = self
                .config
                .token
                .as_deref()
                .ok_or(ProviderError::NoToken("generic-hmac"))?;
            request.headers.push((
                "X-Signature".into(),
                format!("sha256={}", sign(key, &request.body)),
            ));
        }
        Ok(Some(request))
    }
}

/// The hex HMAC-SHA256 of `body` with `key`.
pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Severity;
    use crate::notify::provider::tests::event;

    #[test]
    fn the_event_as_json_signed_when_asked() {
        let config = ProviderConfig {
            address: "https://hooks.example.com/sluice".into(),
            token: Some("s3cret".into()),
            headers: vec![("X-Team".into(), "shop".into())],
            ..Default::default()
        };
        let plain = Generic {
            config: config.clone(),
            hmac: false,
        };
        let request = plain
            .request(&event(Severity::Info, Some("main@sha1:0123")))
            .unwrap()
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(body["involvedObject"]["kind"], "Kustomization");
        assert_eq!(body["severity"], "info");
        assert_eq!(body["metadata"]["revision"], "main@sha1:0123");
        assert!(request.headers.contains(&("X-Team".into(), "shop".into())));
        assert!(!request.headers.iter().any(|(k, _)| k == "X-Signature"));

        let signed = Generic { config, hmac: true };
        let request = signed
            .request(&event(Severity::Info, None))
            .unwrap()
            .unwrap();
        let signature = request
            .headers
            .iter()
            .find(|(k, _)| k == "X-Signature")
            .unwrap();
        assert_eq!(
            signature.1,
            format!("sha256={}", sign("s3cret", &request.body))
        );
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
