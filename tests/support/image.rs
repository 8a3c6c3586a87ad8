//! The ImageRepository and ImagePolicy controllers run inside a test binary, and the objects and
//! statuses their tests read: a repository and a policy as JSON, waiting for a status, the Secrets
//! of the cluster's registry. Does I/O (the API server).

use std::time::Duration;

use kube::Client;
use kube::api::Api;
use serde_json::{Value, json};
use sluice::api::condition::{self, ConditionStatus};
use sluice::api::image_policy::{ImagePolicy, ImagePolicyStatus};
use sluice::api::image_repository::{ImageRepository, ImageRepositoryStatus};
use sluice::image::registry::Limits;
use sluice::image::tags::TagStore;

use super::node::{self, eventually};
use super::registry;

pub const WAIT: Duration = Duration::from_secs(90);

/// Runs the ImageRepository and ImagePolicy controllers for one namespace in this process.
pub fn start_controllers(client: &Client, ns: &str, storage: &std::path::Path, max_tags: usize) {
    let tags = std::sync::Arc::new(TagStore::new(storage));
    let limits = Limits {
        max_tags,
        ..Limits::default()
    };
    tokio::spawn(sluice::image::repository::run(
        client.clone(),
        Some(ns.to_owned()),
        tags.clone(),
        limits,
    ));
    tokio::spawn(sluice::image::policy_controller::run(
        client.clone(),
        Some(ns.to_owned()),
        tags,
    ));
}

pub fn repository(name: &str, image: &str, extra: Value) -> Value {
    let mut spec = json!({"image": image, "interval": "2s"});
    spec.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "ImageRepository", "metadata": {"name": name}, "spec": spec})
}

pub fn policy(name: &str, repo: &str, spec: Value) -> Value {
    let mut spec = spec;
    spec.as_object_mut()
        .unwrap()
        .insert("imageRepositoryRef".into(), json!({"name": repo}));
    json!({"apiVersion": "sluice.dev/v1alpha1", "kind": "ImagePolicy", "metadata": {"name": name}, "spec": spec})
}

pub async fn repo_status(
    api: &Api<ImageRepository>,
    name: &str,
    what: &str,
    check: impl Fn(&ImageRepositoryStatus) -> bool,
) -> ImageRepositoryStatus {
    eventually(WAIT, &format!("ImageRepository {name} {what}"), || async {
        let s = api
            .get(name)
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        if check(&s) {
            Ok(s)
        } else {
            Err(format!("{s:#?}"))
        }
    })
    .await
}

pub async fn latest_tag(api: &Api<ImagePolicy>, name: &str, tag: &str) -> ImagePolicyStatus {
    policy_status(api, name, &format!("choosing {tag}"), |s| {
        s.latest_ref.as_ref().is_some_and(|r| r.tag == tag)
    })
    .await
}

pub fn not_ready_because(conditions: &[condition::Condition], reason: &str) -> bool {
    condition::find(conditions, "Ready")
        .is_some_and(|c| c.status == ConditionStatus::False && c.reason == reason)
}

/// The Secrets of the cluster's registry: credentials and its CA.
pub async fn cluster_registry_secrets(client: &Client, ns: &str) {
    node::create_pull_secret(client, ns).await;
    cluster_registry_ca(client, ns).await;
}

/// The Secret `registry-ca` holding the cluster's CA, which signed the registry's certificate.
pub async fn cluster_registry_ca(client: &Client, ns: &str) {
    let ca = std::fs::read_to_string(registry::cluster_ca()).unwrap();
    registry::create_secret(client, ns, "registry-ca", "Opaque", json!({"ca.crt": ca})).await;
}

/// The ImageRepository fields that read the cluster's registry with the Secrets of
/// `cluster_registry_secrets`.
pub fn cluster_registry_access() -> Value {
    json!({"secretRef": {"name": "registry"}, "certSecretRef": {"name": "registry-ca"}})
}

/// The status of ImagePolicy `name` once `check` accepts it.
pub async fn policy_status(
    api: &Api<ImagePolicy>,
    name: &str,
    what: &str,
    check: impl Fn(&ImagePolicyStatus) -> bool,
) -> ImagePolicyStatus {
    eventually(WAIT, &format!("ImagePolicy {name} {what}"), || async {
        let s = api
            .get(name)
            .await
            .map_err(|e| e.to_string())?
            .status
            .unwrap_or_default();
        if check(&s) {
            Ok(s)
        } else {
            Err(format!("{s:#?}"))
        }
    })
    .await
}
