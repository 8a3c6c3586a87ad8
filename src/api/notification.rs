//! The notification kinds: `Receiver` (webhooks from Git hosts that trigger reconciles),
//! `Provider` (where notifications go: chat, a webhook, Git commit statuses) and `Alert` (which
//! Events go to which Provider). Field names follow Flux's notification.toolkit.fluxcd.io
//! (Receiver v1, Provider and Alert v1beta3). No I/O.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalObjectReference;
use super::condition::{Condition, ReconcileStatus};

/// Receives webhooks on `status.webhookPath` and asks the named objects to reconcile at once.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Receiver",
    namespaced,
    status = "ReceiverStatus",
    category = "sluice",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverSpec {
    /// Who sends the webhooks, and so how they are verified.
    #[serde(rename = "type")]
    pub type_: ReceiverType,
    /// Event types to act on (e.g. `push`, `Push Hook`); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// The objects to reconcile when a webhook arrives.
    pub resources: Vec<CrossNamespaceObjectReference>,
    /// Secret whose `token` key is the shared secret.
    pub secret_ref: LocalObjectReference,
    /// How often the Receiver's own status is checked (default `10m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub interval: Option<String>,
    /// Ignore webhooks while true.
    #[serde(default)]
    pub suspend: bool,
}

/// The webhook senders sluice verifies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ReceiverType {
    /// No signature: the secret path alone protects it.
    #[default]
    #[serde(rename = "generic")]
    Generic,
    /// `X-Signature: sha1|sha256|sha512=<hex HMAC of the body>`.
    #[serde(rename = "generic-hmac")]
    GenericHmac,
    /// `X-Hub-Signature-256` (or `X-Hub-Signature`) HMAC; `X-GitHub-Event`.
    #[serde(rename = "github")]
    Github,
    /// `X-Gitlab-Token` equal to the token; `X-Gitlab-Event`.
    #[serde(rename = "gitlab")]
    Gitlab,
    /// `X-Gitea-Signature` HMAC-SHA256; `X-Gitea-Event`.
    #[serde(rename = "gitea")]
    Gitea,
    /// Bitbucket Server / Data Center: `X-Hub-Signature` HMAC; `X-Event-Key`.
    #[serde(rename = "bitbucket")]
    Bitbucket,
}

/// An object, possibly in another namespace; `name: "*"` with `matchLabels` selects by label.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CrossNamespaceObjectReference {
    /// Default `sluice.dev/v1alpha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    pub kind: String,
    pub name: String,
    /// Default: the referring object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiverStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where to send webhooks: `/hook/<sha256 of token, name and namespace>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

impl ReconcileStatus for ReceiverStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn last_handled_reconcile_at(&self) -> Option<&str> {
        self.last_handled_reconcile_at.as_deref()
    }
}

/// Where notifications go.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Provider",
    namespaced,
    status = "NotificationStatus",
    category = "sluice",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProviderSpec {
    #[serde(rename = "type")]
    pub type_: ProviderType,
    /// Webhook URL, or for commit statuses the repository's URL (`https://github.com/org/repo`);
    /// the Secret's `address` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Chat channel (Slack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Name the messages are posted as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Timeout of one delivery (default `15s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub timeout: Option<String>,
    /// Secret with `address`, `token` (API token, or the HMAC key of `generic-hmac`) and
    /// `headers` (YAML map of extra HTTP headers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Send nothing while true.
    #[serde(default)]
    pub suspend: bool,
}

/// The services sluice delivers to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ProviderType {
    #[serde(rename = "slack")]
    Slack,
    #[serde(rename = "msteams")]
    Msteams,
    #[serde(rename = "discord")]
    Discord,
    #[serde(rename = "googlechat")]
    Googlechat,
    /// Google Chat under Flagger's name.
    #[serde(rename = "gchat")]
    Gchat,
    /// Rocket.Chat.
    #[serde(rename = "rocket")]
    Rocket,
    /// The Event as JSON.
    #[default]
    #[serde(rename = "generic")]
    Generic,
    /// The Event as JSON with `X-Signature: sha256=<HMAC>`.
    #[serde(rename = "generic-hmac")]
    GenericHmac,
    /// Commit statuses.
    #[serde(rename = "github")]
    Github,
    #[serde(rename = "gitlab")]
    Gitlab,
    #[serde(rename = "gitea")]
    Gitea,
}

impl ProviderType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Slack => "slack",
            ProviderType::Msteams => "msteams",
            ProviderType::Discord => "discord",
            ProviderType::Googlechat => "googlechat",
            ProviderType::Gchat => "gchat",
            ProviderType::Rocket => "rocket",
            ProviderType::Generic => "generic",
            ProviderType::GenericHmac => "generic-hmac",
            ProviderType::Github => "github",
            ProviderType::Gitlab => "gitlab",
            ProviderType::Gitea => "gitea",
        }
    }
}

/// Which Events go to which Provider.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Alert",
    namespaced,
    status = "NotificationStatus",
    category = "sluice",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AlertSpec {
    /// A Provider in the Alert's namespace.
    pub provider_ref: LocalObjectReference,
    /// `info` (every Event) or `error` (only errors).
    #[serde(default)]
    pub event_severity: EventSeverity,
    /// The objects whose Events are sent; `name: "*"` for every object of the kind.
    pub event_sources: Vec<CrossNamespaceObjectReference>,
    /// Regular expressions: when set, only Events whose message matches one are sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inclusion_list: Vec<String>,
    /// Regular expressions: Events whose message matches one are not sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclusion_list: Vec<String>,
    /// Added to every Event's metadata (e.g. `cluster: prod`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub event_metadata: BTreeMap<String, String>,
    /// Send nothing while true.
    #[serde(default)]
    pub suspend: bool,
}

/// How severe an Event is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EventSeverity {
    #[default]
    Info,
    Error,
}

/// The status of a Provider or an Alert: whether it can work.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

impl ReconcileStatus for NotificationStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn last_handled_reconcile_at(&self) -> Option<&str> {
        self.last_handled_reconcile_at.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flux_shaped_notification_objects_parse() {
        let receiver: ReceiverSpec = serde_json::from_value(serde_json::json!({
            "type": "github", "events": ["push"],
            "secretRef": {"name": "webhook-token"},
            "resources": [{"kind": "GitRepository", "name": "app"},
                {"apiVersion": "sluice.dev/v1alpha1", "kind": "Kustomization", "name": "*", "matchLabels": {"team": "a"}}],
        }))
        .unwrap();
        assert_eq!(receiver.type_, ReceiverType::Github);
        assert_eq!(receiver.resources[1].match_labels["team"], "a");
        let alert: AlertSpec = serde_json::from_value(serde_json::json!({
            "providerRef": {"name": "slack"}, "eventSeverity": "error",
            "eventSources": [{"kind": "Kustomization", "name": "*"}],
            "exclusionList": ["^Dependencies"],
        }))
        .unwrap();
        assert_eq!(alert.event_severity, EventSeverity::Error);
        let provider: ProviderSpec = serde_json::from_value(serde_json::json!({
            "type": "generic-hmac", "address": "https://hooks.example.com", "secretRef": {"name": "hmac"},
        }))
        .unwrap();
        assert_eq!(provider.type_, ProviderType::GenericHmac);
        assert!(
            serde_json::from_value::<ProviderSpec>(serde_json::json!({"type": "pagerduty"}))
                .is_err()
        );
    }
}
