//! Webhooks of the analysis, as Flagger calls them: a POST of the payload (`name`, `namespace`,
//! `phase`, `checksum`, `metadata`) with the webhook's timeout and retries; a 2xx answer is a
//! yes, anything else (another status, a timeout, a refused connection, a broken answer) a no
//! with the reason. `event` webhooks get every Event. The payloads are pure; `call` does the
//! request.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::machine::HookAnswer;
use super::spec::Hook;

/// Flagger's webhook payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payload {
    pub name: String,
    pub namespace: String,
    pub phase: String,
    pub checksum: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

impl Payload {
    /// The payload for one webhook: its own metadata.
    pub fn for_hook(&self, hook: &Hook) -> Payload {
        Payload {
            metadata: hook.metadata.clone(),
            ..self.clone()
        }
    }

    /// The payload of an `event` webhook: the Event in the metadata (Flagger's keys).
    pub fn for_event(&self, message: &str, warning: bool, now_millis: i64) -> Payload {
        let metadata = BTreeMap::from([
            ("eventMessage".to_string(), message.to_string()),
            (
                "eventType".to_string(),
                if warning { "Warning" } else { "Normal" }.to_string(),
            ),
            ("timestamp".to_string(), now_millis.to_string()),
        ]);
        Payload {
            metadata,
            ..self.clone()
        }
    }
}

/// Calls one webhook, retrying `retries` times; says yes on a 2xx answer.
pub async fn call(http: &reqwest::Client, hook: &Hook, payload: &Payload) -> HookAnswer {
    let payload = payload.for_hook(hook);
    let mut last = String::new();
    for attempt in 0..=hook.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        match post(http, &hook.url, hook.timeout, &payload).await {
            Ok(()) => return HookAnswer::yes(&hook.name),
            Err(why) => last = why,
        }
    }
    if hook.retries > 0 {
        last = format!("{last} (after {} attempts)", hook.retries + 1);
    }
    HookAnswer::no(&hook.name, &last)
}

/// One POST; `Err` says why it is not a yes.
pub async fn post(
    http: &reqwest::Client,
    url: &str,
    timeout: Duration,
    payload: &Payload,
) -> Result<(), String> {
    let request = http.post(url).timeout(timeout).json(payload).send();
    let response = match request.await {
        Ok(response) => response,
        Err(e) if e.is_timeout() => {
            return Err(format!("no answer within {}s", timeout.as_secs_f64()));
        }
        Err(e) => return Err(crate::runtime::text::error_chain(&e)),
    };
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = tokio::time::timeout(timeout, response.text())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let body: String = body.trim().chars().take(200).collect();
    Err(if body.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {body}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::spec::HookType;

    #[test]
    fn payloads_are_flaggers() {
        let base = Payload {
            name: "web".into(),
            namespace: "shop".into(),
            phase: "Progressing".into(),
            checksum: "abc".into(),
            metadata: BTreeMap::new(),
        };
        let hook = Hook {
            type_: HookType::Rollout,
            name: "load".into(),
            url: "http://t/".into(),
            timeout: Duration::from_secs(5),
            retries: 0,
            metadata: [(
                "cmd".to_string(),
                "hey -z 1m http://web-canary/".to_string(),
            )]
            .into(),
        };
        assert_eq!(
            serde_json::to_value(base.for_hook(&hook)).unwrap(),
            serde_json::json!({"name": "web", "namespace": "shop", "phase": "Progressing", "checksum": "abc",
                "metadata": {"cmd": "hey -z 1m http://web-canary/"}})
        );
        let event =
            serde_json::to_value(base.for_event("Advance web.shop canary weight 10", false, 1000))
                .unwrap();
        assert_eq!(event["metadata"]["eventType"], "Normal");
        assert_eq!(
            event["metadata"]["eventMessage"],
            "Advance web.shop canary weight 10"
        );
        assert_eq!(event["metadata"]["timestamp"], "1000");
        assert!(
            serde_json::to_value(&base)
                .unwrap()
                .get("metadata")
                .is_none()
        );
    }
}
