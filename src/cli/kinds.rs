//! What the Flux-shaped verbs (`get`, `reconcile`, `suspend`, `resume`, `tree`, `events`,
//! `export`) share: the kinds they know by name (with Flux's and kubectl's spellings), where each
//! kind keeps its revision, and the namespace scope flags. Pure, except `Scope::connect` (a
//! client from the kubeconfig).

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value;

/// A sluice kind the verbs work on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    GitRepository,
    Kustomization,
    Receiver,
    Provider,
    Alert,
    ImageRepository,
    ImagePolicy,
    ImageUpdateAutomation,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::GitRepository,
        Kind::Kustomization,
        Kind::Receiver,
        Kind::Provider,
        Kind::Alert,
        Kind::ImageRepository,
        Kind::ImagePolicy,
        Kind::ImageUpdateAutomation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::GitRepository => "GitRepository",
            Kind::Kustomization => "Kustomization",
            Kind::Receiver => "Receiver",
            Kind::Provider => "Provider",
            Kind::Alert => "Alert",
            Kind::ImageRepository => "ImageRepository",
            Kind::ImagePolicy => "ImagePolicy",
            Kind::ImageUpdateAutomation => "ImageUpdateAutomation",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::GitRepository => "gitrepositories",
            Kind::Kustomization => "kustomizations",
            Kind::Receiver => "receivers",
            Kind::Provider => "providers",
            Kind::Alert => "alerts",
            Kind::ImageRepository => "imagerepositories",
            Kind::ImagePolicy => "imagepolicies",
            Kind::ImageUpdateAutomation => "imageupdateautomations",
        }
    }

    /// Names people type: the kind, its plural, short names and Flux's (`source-git`,
    /// `alert-provider`, `image-policy`).
    fn spellings(self) -> &'static [&'static str] {
        match self {
            Kind::GitRepository => &[
                "gitrepository",
                "gitrepositories",
                "gitrepo",
                "gitrepos",
                "source-git",
                "sources-git",
            ],
            Kind::Kustomization => &["kustomization", "kustomizations", "ks"],
            Kind::Receiver => &["receiver", "receivers"],
            Kind::Provider => &["provider", "providers", "alert-provider", "alert-providers"],
            Kind::Alert => &["alert", "alerts"],
            Kind::ImageRepository => &[
                "imagerepository",
                "imagerepositories",
                "imagerepo",
                "image-repository",
                "image-repositories",
            ],
            Kind::ImagePolicy => &[
                "imagepolicy",
                "imagepolicies",
                "imagepol",
                "image-policy",
                "image-policies",
            ],
            Kind::ImageUpdateAutomation => &[
                "imageupdateautomation",
                "imageupdateautomations",
                "imageupdate",
                "image-update",
                "image-updates",
            ],
        }
    }

    pub fn resource(self) -> ApiResource {
        let gvk = GroupVersionKind::gvk(crate::api::GROUP, "v1alpha1", self.name());
        ApiResource::from_gvk_with_plural(&gvk, self.plural())
    }

    pub fn api(self, client: &Client, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.resource()),
            None => Api::all_with(client.clone(), &self.resource()),
        }
    }

    /// The revision an object of this kind is at, as `sluice get` shows it: the artifact, the
    /// applied revision, the tags a scan found, the image a policy chose, the last commit pushed.
    pub fn revision(self, obj: &Value) -> Option<String> {
        let text = |pointer: &str| obj.pointer(pointer).and_then(Value::as_str);
        match self {
            Kind::GitRepository => text("/status/artifact/revision").map(String::from),
            Kind::Kustomization => text("/status/lastAppliedRevision").map(String::from),
            Kind::ImageRepository => obj
                .pointer("/status/lastScanResult/tagCount")
                .and_then(Value::as_i64)
                .map(|n| format!("{n} tags")),
            Kind::ImagePolicy => Some(format!(
                "{}:{}",
                text("/status/latestRef/name")?,
                text("/status/latestRef/tag")?
            )),
            Kind::ImageUpdateAutomation => text("/status/lastPushCommit").map(String::from),
            Kind::Receiver | Kind::Provider | Kind::Alert => None,
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a kind as typed on the command line.
pub fn parse_kind(text: &str) -> Result<Kind, String> {
    let lower = text.to_ascii_lowercase();
    Kind::ALL
        .into_iter()
        .find(|k| k.spellings().contains(&lower.as_str()))
        .ok_or_else(|| {
            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.spellings()[0]).collect();
            format!("unknown kind {text:?} (known: {})", known.join(", "))
        })
}

/// `KIND/NAME` as typed to `--for`.
pub fn parse_kind_name(text: &str) -> Result<(Kind, String), String> {
    let (kind, name) = text
        .split_once('/')
        .filter(|(_, name)| !name.is_empty())
        .ok_or_else(|| format!("{text:?} is not KIND/NAME"))?;
    Ok((parse_kind(kind)?, name.to_string()))
}

/// The namespace flags every verb takes.
#[derive(Debug, Clone, clap::Args)]
pub struct Scope {
    /// Namespace of the objects (default: the kubeconfig context's).
    #[arg(long, short = 'n', env = "SLUICE_NAMESPACE")]
    pub namespace: Option<String>,
}

impl Scope {
    /// A client from the kubeconfig (or in-cluster configuration) and the namespace to use.
    pub async fn connect(&self) -> anyhow::Result<(Client, String)> {
        let client = Client::try_default().await?;
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| client.default_namespace().to_string());
        Ok((client, namespace))
    }
}

/// The condition `type_` of an object as (status, message).
pub fn condition<'a>(obj: &'a Value, type_: &str) -> Option<(&'a str, &'a str)> {
    let c = obj
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?;
    Some((
        c["status"].as_str().unwrap_or("Unknown"),
        c["message"].as_str().unwrap_or(""),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_known_by_every_usual_spelling() {
        for text in ["ks", "Kustomization", "kustomizations"] {
            assert_eq!(parse_kind(text), Ok(Kind::Kustomization));
        }
        for text in ["gitrepo", "GitRepository", "source-git"] {
            assert_eq!(parse_kind(text), Ok(Kind::GitRepository));
        }
        for text in ["alert-providers", "Provider"] {
            assert_eq!(parse_kind(text), Ok(Kind::Provider));
        }
        assert_eq!(parse_kind("receivers"), Ok(Kind::Receiver));
        assert_eq!(parse_kind("alert"), Ok(Kind::Alert));
        let err = parse_kind("helmrelease").unwrap_err();
        assert!(err.contains("known: gitrepository, kustomization"), "{err}");
        assert_eq!(
            parse_kind_name("ks/app"),
            Ok((Kind::Kustomization, "app".into()))
        );
        assert!(parse_kind_name("ks/").is_err());
        assert!(parse_kind_name("app").is_err());
    }

    #[test]
    fn revisions_and_conditions_are_read_per_kind() {
        let source = serde_json::json!({"status": {"artifact": {"revision": "main@sha1:ab"},
            "conditions": [{"type": "Ready", "status": "True", "message": "stored"}]}});
        assert_eq!(
            Kind::GitRepository.revision(&source).as_deref(),
            Some("main@sha1:ab")
        );
        assert_eq!(condition(&source, "Ready"), Some(("True", "stored")));
        assert_eq!(condition(&source, "Stalled"), None);
        let ks = serde_json::json!({"status": {"lastAppliedRevision": "v1@sha1:cd"}});
        assert_eq!(
            Kind::Kustomization.revision(&ks).as_deref(),
            Some("v1@sha1:cd")
        );
        let policy = serde_json::json!({"status": {"latestRef": {"name": "ghcr.io/org/app", "tag": "1.2.3"}}});
        assert_eq!(
            Kind::ImagePolicy.revision(&policy).as_deref(),
            Some("ghcr.io/org/app:1.2.3")
        );
        let repository = serde_json::json!({"status": {"lastScanResult": {"tagCount": 12}}});
        assert_eq!(
            Kind::ImageRepository.revision(&repository).as_deref(),
            Some("12 tags")
        );
        for text in ["image-policy", "ImagePolicy", "imagepol"] {
            assert_eq!(parse_kind(text), Ok(Kind::ImagePolicy));
        }
        assert_eq!(parse_kind("image-update"), Ok(Kind::ImageUpdateAutomation));
        assert_eq!(parse_kind("imagerepo"), Ok(Kind::ImageRepository));
    }
}
