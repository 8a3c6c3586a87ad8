//! The `GitRepository` kind: where to fetch from, which revision, how to authenticate and verify,
//! and the artifact it produced. Field names follow Flux's source.toolkit.fluxcd.io. No I/O.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalObjectReference;
use super::condition::{Condition, ReconcileStatus};

/// Condition type saying whether the revision's signature was verified.
pub const SOURCE_VERIFIED: &str = "SourceVerified";
/// Timeout when `spec.timeout` is not set.
pub const DEFAULT_TIMEOUT: &str = "60s";

/// A Git repository to poll; its status carries the artifact of the selected revision.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "GitRepository",
    namespaced,
    status = "GitRepositoryStatus",
    shortname = "gitrepo",
    category = "sluice",
    printcolumn = r#"{"name":"URL","type":"string","jsonPath":".spec.url"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositorySpec {
    /// `https://`, `http://`, `ssh://`, `git://` or `user@host:path`.
    pub url: String,
    /// How often to poll, e.g. `1m`.
    #[serde(default = "default_interval")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub interval: String,
    /// Timeout of Git operations (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub timeout: Option<String>,
    /// The reference to check out; the default branch `main` when empty.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<GitRepositoryRef>,
    /// Secret with `username`/`password`, `bearerToken`, `ca.crt`, or `identity` + `known_hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectReference>,
    /// Signature verification of the fetched revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<GitRepositoryVerification>,
    /// Ignore patterns (gitignore syntax) replacing the default exclusions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore: Option<String>,
    /// Stop polling while true.
    #[serde(default)]
    pub suspend: bool,
    /// Allow the Secret's username/password or bearer token over plain `http://` or `git://`,
    /// where anyone on the path can read them. Refused unless set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
}

fn default_interval() -> String {
    "1m".into()
}

/// Which revision to check out. Precedence: commit > name > semver > tag > branch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// A semver range such as `>=1.2.0 <2.0.0`, `~1.2` or `1.2.x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semver: Option<String>,
    /// Any reference name, e.g. `refs/pull/7/head`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A full commit SHA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// `mode` is `HEAD`, `Tag` or `TagAndHEAD`; the Secret holds `*.asc` OpenPGP keys, `*.pub` SSH keys
/// and optional `<key>.emails` allowlists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryVerification {
    #[serde(default = "default_mode")]
    pub mode: String,
    pub secret_ref: LocalObjectReference,
}

fn default_mode() -> String {
    "HEAD".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitRepositoryStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<ArtifactStatus>,
    /// The manual-trigger annotation value (`sluice.dev/requestedAt` or
    /// `reconcile.fluxcd.io/requestedAt`) last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

/// The stored tree of the current revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactStatus {
    /// `main@sha1:<hex>`, `v1.0.0@sha1:<hex>` or `sha1:<hex>`.
    pub revision: String,
    /// `sha256:<hex>` of the content.
    pub digest: String,
    /// Path relative to the agent's storage directory.
    pub path: String,
    /// Bytes of file content.
    #[serde(default)]
    #[schemars(with = "i64")]
    pub size: u64,
    /// RFC 3339 time the artifact was stored.
    pub last_update_time: String,
    /// `sha256:<hex>` of the verification mode and keys the revision's signature was verified
    /// with; a change of either verifies it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified_with: Option<String>,
}

impl ReconcileStatus for GitRepositoryStatus {
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
    use kube::CustomResourceExt;

    #[test]
    fn flux_shaped_manifest_parses() {
        let spec: GitRepositorySpec = serde_json::from_value(serde_json::json!({
            "url": "ssh://git@example.com/org/repo",
            "interval": "5m",
            "ref": {"semver": ">=1.0.0 <2.0.0"},
            "secretRef": {"name": "auth"},
            "verify": {"mode": "TagAndHEAD", "secretRef": {"name": "keys"}},
            "ignore": "/docs/"
        }))
        .unwrap();
        assert_eq!(
            spec.reference.unwrap().semver.as_deref(),
            Some(">=1.0.0 <2.0.0")
        );
        assert_eq!(spec.verify.unwrap().mode, "TagAndHEAD");
        let minimal: GitRepositorySpec =
            serde_json::from_value(serde_json::json!({"url": "https://h/r"})).unwrap();
        assert_eq!((minimal.interval.as_str(), minimal.suspend), ("1m", false));
    }

    #[test]
    fn crd_is_namespaced_with_status_subresource() {
        let crd = GitRepository::crd();
        assert_eq!(crd.spec.group, "sluice.dev");
        assert_eq!(crd.spec.scope, "Namespaced");
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some()
        );
    }
}
