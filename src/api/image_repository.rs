//! The `ImageRepository` kind: which image to scan, how to authenticate and trust its registry,
//! and what the last scan found. Field names follow Flux's image.toolkit.fluxcd.io. No I/O.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalObjectReference;
use super::condition::{Condition, ReconcileStatus};

/// Timeout of one scan when `spec.timeout` is not set.
pub const DEFAULT_SCAN_TIMEOUT: &str = "60s";
/// `spec.exclusionList` when it is not set: cosign signatures are not images.
pub const DEFAULT_EXCLUSION: &str = r"^.*\.sig$";
/// How many tags `status.lastScanResult.latestTags` lists.
pub const LATEST_TAGS: usize = 10;

/// A container image repository to scan for tags.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "ImageRepository",
    namespaced,
    status = "ImageRepositoryStatus",
    shortname = "imagerepo",
    category = "sluice",
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".spec.image"}"#,
    printcolumn = r#"{"name":"Tags","type":"integer","jsonPath":".status.lastScanResult.tagCount"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImageRepositorySpec {
    /// The image without tag, e.g. `ghcr.io/org/app` or `registry.local:5000/team/app`.
    pub image: String,
    /// How often to scan, e.g. `5m`.
    #[serde(default = "default_interval")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub interval: String,
    /// Timeout of one scan (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub timeout: Option<String>,
    /// A `kubernetes.io/dockerconfigjson` Secret with credentials for the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// A ServiceAccount whose `imagePullSecrets` hold credentials for the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// A Secret with `ca.crt` (a CA the registry's certificate chains to) and optionally
    /// `tls.crt` + `tls.key` (a client certificate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<LocalObjectReference>,
    /// Talk plain HTTP to the registry.
    #[serde(default)]
    pub insecure: bool,
    /// Regular expressions of tags to leave out (default `^.*\.sig$`).
    #[serde(default = "default_exclusion_list")]
    pub exclusion_list: Vec<String>,
    /// Stop scanning while true.
    #[serde(default)]
    pub suspend: bool,
}

fn default_interval() -> String {
    "5m".into()
}

fn default_exclusion_list() -> Vec<String> {
    vec![DEFAULT_EXCLUSION.into()]
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRepositoryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The image's full name, e.g. `docker.io/library/nginx` for `nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_image_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scan_result: Option<ScanResult>,
    /// The exclusion list the last scan applied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed_exclusion_list: Vec<String>,
    /// The manual-trigger annotation value last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// What the last scan that changed the tag list found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScanResult {
    /// `sha256:<hex>` of the sorted tag list: ImagePolicies re-evaluate when it changes.
    #[serde(default)]
    pub revision: String,
    pub tag_count: i64,
    /// RFC 3339 time of the scan that found this tag list.
    pub scan_time: String,
    /// The last tags in descending alphabetical order (at most ten), for people.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latest_tags: Vec<String>,
}

impl ReconcileStatus for ImageRepositoryStatus {
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
    fn flux_shaped_manifest_parses_with_defaults() {
        let spec: ImageRepositorySpec = serde_json::from_value(serde_json::json!({
            "image": "ghcr.io/org/app",
            "interval": "1m",
            "secretRef": {"name": "regcred"},
            "certSecretRef": {"name": "ca"},
        }))
        .unwrap();
        assert_eq!(spec.exclusion_list, vec![DEFAULT_EXCLUSION.to_string()]);
        assert_eq!(spec.secret_ref.unwrap().name, "regcred");
        let minimal: ImageRepositorySpec =
            serde_json::from_value(serde_json::json!({"image": "nginx"})).unwrap();
        assert_eq!((minimal.interval.as_str(), minimal.insecure), ("5m", false));
    }
}
