//! The `ImagePolicy` kind: which tag of a scanned repository counts as the latest (semver range,
//! alphabetical or numerical order, after a tag filter) and whether to reflect its digest. Field
//! names follow Flux's image.toolkit.fluxcd.io. No I/O.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::{Condition, ReconcileStatus};

/// Chooses the latest tag of an ImageRepository.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "ImagePolicy",
    namespaced,
    status = "ImagePolicyStatus",
    shortname = "imagepol",
    category = "sluice",
    printcolumn = r#"{"name":"Image","type":"string","jsonPath":".status.latestRef.name"}"#,
    printcolumn = r#"{"name":"Tag","type":"string","jsonPath":".status.latestRef.tag"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicySpec {
    /// The ImageRepository whose tags to choose from (same namespace).
    pub image_repository_ref: NamespacedObjectReference,
    /// How to order the tags: exactly one of `semver`, `alphabetical`, `numerical`.
    pub policy: ImagePolicyChoice,
    /// Which tags take part, and what part of them is compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_tags: Option<TagFilter>,
    /// Whether `status.latestRef.digest` is filled: `Never` (default), `IfNotPresent` (once per
    /// chosen tag) or `Always` (re-read every `interval`, to follow a moving tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_reflection_policy: Option<String>,
    /// How often to re-read the digest with `digestReflectionPolicy: Always`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub interval: Option<String>,
    /// Stop choosing while true: `status.latestRef` stays as it is, new scans are not looked at.
    #[serde(default)]
    pub suspend: bool,
}

/// A reference to an object, optionally in another namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NamespacedObjectReference {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicyChoice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<SemVerPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alphabetical: Option<OrderPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical: Option<OrderPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SemVerPolicy {
    /// A range such as `>=1.0.0 <2.0.0`, `~1.2` or `1.x`; pre-releases only when the range
    /// names one.
    pub range: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderPolicy {
    /// `asc` (default: the highest wins) or `desc` (the lowest wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TagFilter {
    /// A regular expression tags must match (named groups allowed: `(?P<ts>[0-9]+)`).
    #[serde(default)]
    pub pattern: String,
    /// What of a matching tag is ordered, e.g. `$ts` or `$1` (default: the whole tag).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extract: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImagePolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The latest image the policy chose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest_ref: Option<ImageRef>,
    /// The image chosen before the latest one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_previous_ref: Option<ImageRef>,
    /// The manual-trigger annotation value last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// An image as a policy chose it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct ImageRef {
    /// The image name without tag, as the ImageRepository spells it.
    pub name: String,
    pub tag: String,
    /// `sha256:<hex>` of the tag's manifest, when digests are reflected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

impl ImageRef {
    /// `name:tag`, or `name:tag@digest` when the digest is known.
    pub fn reference(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}:{}@{d}", self.name, self.tag),
            None => format!("{}:{}", self.name, self.tag),
        }
    }
}

impl ReconcileStatus for ImagePolicyStatus {
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
    fn flux_shaped_manifest_parses() {
        let spec: ImagePolicySpec = serde_json::from_value(serde_json::json!({
            "imageRepositoryRef": {"name": "app"},
            "policy": {"numerical": {"order": "asc"}},
            "filterTags": {"pattern": "^main-[a-f0-9]+-(?P<ts>[0-9]+)", "extract": "$ts"},
            "digestReflectionPolicy": "IfNotPresent",
        }))
        .unwrap();
        assert_eq!(spec.image_repository_ref.name, "app");
        assert_eq!(spec.policy.numerical.unwrap().order.as_deref(), Some("asc"));
        assert_eq!(spec.filter_tags.unwrap().extract.as_deref(), Some("$ts"));
    }

    #[test]
    fn references_carry_the_digest_when_known() {
        let mut r = ImageRef {
            name: "reg/app".into(),
            tag: "1.0.0".into(),
            digest: None,
        };
        assert_eq!(r.reference(), "reg/app:1.0.0");
        r.digest = Some("sha256:ab".into());
        assert_eq!(r.reference(), "reg/app:1.0.0@sha256:ab");
    }
}
