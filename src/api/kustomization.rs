//! The `Kustomization` kind: which source and path to build, how to apply it (prune, wait,
//! health checks, dependencies, target namespace, service account) and what happened. Field names
//! follow Flux's kustomize.toolkit.fluxcd.io/v1. No I/O.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::condition::{Condition, ReconcileStatus};
use super::inventory::Inventory;

/// Condition type saying whether the applied objects are healthy (with `wait` or `healthChecks`).
pub const HEALTHY: &str = "Healthy";
/// How many reconciles `status.history` keeps.
pub const HISTORY_LIMIT: usize = 5;

/// Builds a path of a source artifact and reconciles the result with the cluster.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "Kustomization",
    namespaced,
    status = "KustomizationStatus",
    shortname = "ks",
    category = "sluice",
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationSpec {
    /// The source whose artifact to build (a GitRepository).
    pub source_ref: SourceReference,
    /// Path of the directory to build, relative to the artifact's root (default `./`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How often to reconcile, e.g. `10m`.
    #[schemars(pattern(super::duration::PATTERN))]
    pub interval: String,
    /// How soon to retry after a failure (default: `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub retry_interval: Option<String>,
    /// Timeout of apply and health checks (default: `interval`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub timeout: Option<String>,
    /// Delete objects that left the source.
    #[serde(default)]
    pub prune: bool,
    /// Wait for every applied object to be healthy.
    #[serde(default)]
    pub wait: bool,
    /// Objects to wait for (when `wait` is off).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_checks: Vec<ObjectReference>,
    /// CEL expressions that decide the health of the objects of a kind (checked under `wait` or
    /// `healthChecks`), in place of the built-in rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub health_check_exprs: Vec<CustomHealthCheck>,
    /// Kustomizations that must be Ready with their source's current revision first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencyReference>,
    /// Namespace of every namespaced object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_namespace: Option<String>,
    /// Apply as this ServiceAccount of the Kustomization's namespace (impersonation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Stop reconciling while true.
    #[serde(default)]
    pub suspend: bool,
    /// When changes may be applied: outside every window nothing is applied, corrected or
    /// pruned until one opens (none: at any time). The annotation
    /// `sluice.dev/release-window-open-until` opens them by hand until the time it holds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_windows: Vec<super::window::ReleaseWindow>,
    /// Recreate objects whose immutable fields changed.
    #[serde(default)]
    pub force: bool,
    /// Patches applied after the build (strategic merge or JSON 6902), with optional targets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PatchReference>,
    /// Kustomize Components added to the build, as paths relative to `path`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<String>,
    /// Image overrides applied after the build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    /// Labels and annotations set on every object's metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_metadata: Option<CommonMetadata>,
    /// Variable substitution after the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_build: Option<PostBuild>,
    /// What happens to the applied objects when the Kustomization is deleted (default
    /// `MirrorPrune`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,
}

/// What deleting a Kustomization does to the objects it applied (Flux's `deletionPolicy`). A
/// suspended Kustomization leaves them in place whatever the policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    /// Delete them when `prune` is on, leave them otherwise.
    #[default]
    MirrorPrune,
    /// Delete them, whatever `prune` says.
    Delete,
    /// Delete them and wait (up to `timeout`) until they are gone before the Kustomization goes.
    WaitForTermination,
    /// Leave them in place.
    Orphan,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceReference {
    /// `GitRepository` (the default).
    #[serde(default = "default_source_kind")]
    pub kind: String,
    pub name: String,
    /// Defaults to the Kustomization's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

fn default_source_kind() -> String {
    "GitRepository".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// How to tell the health of the objects of one kind, in CEL (Flux's `healthCheckExprs`). Each
/// expression sees the object's top-level fields (`metadata`, `spec`, `status`, ...) and must
/// give a bool. They are tried in the order `inProgress`, `failed`, `current`; the first that is
/// true decides, and an object none of them holds true for is in progress.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomHealthCheck {
    /// `group/version` of the kind; objects of any version of the group match.
    pub api_version: String,
    pub kind: String,
    /// True when the object is healthy.
    pub current: String,
    /// True while the object is still being worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<String>,
    /// True when the object failed: the health check fails at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyReference {
    pub name: String,
    /// Defaults to the Kustomization's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchReference {
    /// A strategic merge patch or a JSON 6902 patch, as YAML.
    pub patch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PatchTarget>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchTarget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_selector: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageOverride {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostBuild {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub substitute: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub substitute_from: Vec<SubstituteReference>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubstituteReference {
    /// `ConfigMap` or `Secret`, in the Kustomization's namespace.
    pub kind: String,
    pub name: String,
    /// A missing object is not an error.
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KustomizationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The source revision last applied successfully.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// The source revision last tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// The manual-trigger annotation value (`sluice.dev/requestedAt` or
    /// `reconcile.fluxcd.io/requestedAt`) last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// The objects applied, for garbage collection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// The last reconciles, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

/// One reconcile: which revision, the digest of what was built, how long it took, how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub revision: String,
    /// `sha256:<hex>` of the built objects.
    pub digest: String,
    /// RFC 3339 time the reconcile finished.
    pub time: String,
    /// Seconds, as a decimal string (e.g. `1.25`).
    pub duration: String,
    /// `Succeeded` or the failure reason.
    pub result: String,
}

impl ReconcileStatus for KustomizationStatus {
    fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
    fn last_handled_reconcile_at(&self) -> Option<&str> {
        self.last_handled_reconcile_at.as_deref()
    }
    fn revision(&self) -> Option<&str> {
        self.last_attempted_revision.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    #[test]
    fn a_flux_kustomization_spec_parses_unchanged() {
        let spec: KustomizationSpec = serde_json::from_value(serde_json::json!({
            "interval": "10m",
            "sourceRef": {"kind": "GitRepository", "name": "repo"},
            "path": "./deploy/prod",
            "prune": true,
            "wait": true,
            "timeout": "5m",
            "targetNamespace": "shop",
            "dependsOn": [{"name": "infra"}],
            "healthChecks": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "shop"}],
            "healthCheckExprs": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
                "failed": "status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'False')",
                "current": "status.conditions.filter(e, e.type == 'Synced').all(e, e.status == 'True')"}],
            "patches": [{"patch": "- op: remove\n  path: /spec/replicas", "target": {"kind": "Deployment", "labelSelector": "app=web"}}],
            "images": [{"name": "web", "newTag": "1.2.3"}],
            "postBuild": {"substitute": {"ENV": "prod"}, "substituteFrom": [{"kind": "ConfigMap", "name": "vars", "optional": true}]}
        }))
        .unwrap();
        assert_eq!(spec.source_ref.name, "repo");
        assert_eq!(spec.depends_on[0].name, "infra");
        assert_eq!(spec.health_check_exprs[0].kind, "SealedSecret");
        assert!(spec.health_check_exprs[0].in_progress.is_none());
        assert_eq!(
            spec.patches[0]
                .target
                .as_ref()
                .unwrap()
                .label_selector
                .as_deref(),
            Some("app=web")
        );
        assert!(spec.post_build.unwrap().substitute_from[0].optional);
        let crd = Kustomization::crd();
        assert_eq!(crd.spec.names.kind, "Kustomization");
    }
}
