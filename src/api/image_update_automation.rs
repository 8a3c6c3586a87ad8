//! The `ImageUpdateAutomation` kind: which Git repository and path to update from which
//! ImagePolicies, how to commit (author, message template, signing key) and where to push (one
//! branch, or one branch per update). Field names follow Flux's image.toolkit.fluxcd.io. No I/O.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::LocalObjectReference;
use super::condition::{Condition, ReconcileStatus};
use super::git_repository::GitRepositoryRef;
use super::image_policy::ImageRef;

/// Commits image updates to a Git repository.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "sluice.dev",
    version = "v1alpha1",
    kind = "ImageUpdateAutomation",
    namespaced,
    status = "ImageUpdateAutomationStatus",
    shortname = "imageupdate",
    category = "sluice",
    printcolumn = r#"{"name":"Last run","type":"string","jsonPath":".status.lastAutomationRunTime"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Status","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdateAutomationSpec {
    /// The GitRepository to update (its URL and credentials are used).
    pub source_ref: CrossNamespaceSourceReference,
    /// How to check out, commit and push.
    #[serde(default)]
    pub git: GitSpec,
    /// How often to run, e.g. `10m`.
    #[serde(default = "default_interval")]
    #[schemars(pattern(super::duration::PATTERN))]
    pub interval: String,
    /// Which files to update and how.
    #[serde(default)]
    pub update: UpdateStrategy,
    /// Which ImagePolicies of the namespace count (default: all of them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_selector: Option<LabelSelector>,
    /// Stop running while true.
    #[serde(default)]
    pub suspend: bool,
    /// When commits may be pushed: outside every window the automation waits (none: at any
    /// time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub release_windows: Vec<super::window::ReleaseWindow>,
}

fn default_interval() -> String {
    "10m".into()
}

/// A Kubernetes label selector (`matchLabels`, `matchExpressions`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// `key` `operator` (`In`, `NotIn`, `Exists`, `DoesNotExist`) `values`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LabelSelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CrossNamespaceSourceReference {
    /// `GitRepository`.
    #[serde(default = "default_source_kind")]
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

fn default_source_kind() -> String {
    "GitRepository".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GitSpec {
    /// What to check out (default: the GitRepository's own branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkout: Option<GitCheckoutSpec>,
    #[serde(default)]
    pub commit: CommitSpec,
    /// Where to push (default: the checked-out branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GitCheckoutSpec {
    /// Only `branch` is supported.
    #[serde(rename = "ref")]
    pub reference: GitRepositoryRef,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommitSpec {
    /// Author (and committer) of the commits.
    #[serde(default)]
    pub author: CommitUser,
    /// A Secret whose `git.asc` holds an armoured OpenPGP private key (and `passphrase` its
    /// passphrase) to sign commits with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<SigningKey>,
    /// A Go template (text/template syntax) of the commit message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_template: Option<String>,
    /// Values the template reads as `.Values`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub message_template_values: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CommitUser {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKey {
    pub secret_ref: LocalObjectReference,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSpec {
    /// The branch to push to (default: the checked-out branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A refspec pushed as well, e.g. `refs/heads/main:refs/heads/auto`; never forced (`+`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refspec: Option<String>,
    /// Git push options (`git push -o key=value`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    /// Beyond Flux: one branch per update. Each ImagePolicy whose change the run commits gets a
    /// branch of its own, named by this template (Go template: `.AutomationObject`,
    /// `.Policy.Name`, `.Policy.Namespace`, `.Tag`, `.Image`), based on the checked-out
    /// branch and fast-forwarded while it is unmerged. `branch` and `refspec` are then ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_template: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateStrategy {
    /// Directory of the repository to update, relative to its root (default: the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `Setters`: markers in YAML comments say which value each policy sets.
    #[serde(default = "default_strategy")]
    pub strategy: String,
}

impl Default for UpdateStrategy {
    fn default() -> Self {
        UpdateStrategy {
            path: None,
            strategy: default_strategy(),
        }
    }
}

fn default_strategy() -> String {
    "Setters".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageUpdateAutomationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// RFC 3339 time of the last run that committed, or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_automation_run_time: Option<String>,
    /// The commit last pushed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_commit: Option<String>,
    /// RFC 3339 time of the last push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_push_time: Option<String>,
    /// The latest images of the policies the last run applied, by policy name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub observed_policies: BTreeMap<String, ImageRef>,
    /// The revision of the checked-out branch the last run started from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_source_revision: Option<String>,
    /// The manual-trigger annotation value last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
}

impl ReconcileStatus for ImageUpdateAutomationStatus {
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
        let spec: ImageUpdateAutomationSpec = serde_json::from_value(serde_json::json!({
            "interval": "30m",
            "sourceRef": {"kind": "GitRepository", "name": "flux-system"},
            "git": {
                "checkout": {"ref": {"branch": "main"}},
                "commit": {
                    "author": {"name": "bot", "email": "bot@example.com"},
                    "signingKey": {"secretRef": {"name": "gpg"}},
                    "messageTemplate": "update {{ .AutomationObject }}",
                },
                "push": {"branch": "auto", "options": {"ci.skip": ""}},
            },
            "update": {"path": "./clusters/prod", "strategy": "Setters"},
            "policySelector": {"matchLabels": {"team": "a"}},
        }))
        .unwrap();
        assert_eq!(spec.source_ref.name, "flux-system");
        assert_eq!(spec.git.commit.author.name, "bot");
        assert_eq!(
            spec.git.push.unwrap().branch.as_deref(),
            Some("auto"),
            "push branch"
        );
        assert_eq!(spec.update.path.as_deref(), Some("./clusters/prod"));
        let minimal: ImageUpdateAutomationSpec =
            serde_json::from_value(serde_json::json!({"sourceRef": {"name": "repo"}})).unwrap();
        assert_eq!(minimal.source_ref.kind, "GitRepository");
        assert_eq!(minimal.update.strategy, "Setters");
    }
}
