//! The ImagePolicy controller: chooses the latest tag of an ImageRepository's last scan whenever
//! the scan or the policy changes, and reads its digest when `digestReflectionPolicy` asks.
//! Runs on the `runtime::controller` scaffold; talks to the API server and, for digests, to the
//! registry. The choice itself is `policy::Selector` (pure).

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

use super::access;
use super::policy::Selector;
use super::reference::ImageName;
use super::registry::http::HttpRegistry;
use super::registry::{Registry, RetryPolicy};
use super::repository::{ScanReason, access_failure, registry_failure, scan_timeout, timed_out};
use super::status::{self, Outcome};
use super::tags::TagStore;
use crate::api::duration;
use crate::api::image_policy::{ImagePolicy, ImagePolicyStatus, ImageRef};
use crate::api::image_repository::ImageRepository;
use crate::runtime::conditions::{Stamp, reasons};
use crate::runtime::controller::{Attempt, Plan, Reconciler, Scaffold};
use crate::runtime::text::error_chain;

reasons! {
    /// Reasons of an ImagePolicy's conditions and Events, besides the `Common` ones.
    pub enum PolicyReason {
        /// Event: the latest image changed.
        NewLatestImage,
        /// The ImageRepository is missing or has not scanned yet.
        DependencyNotReady,
        /// No tag of the repository satisfies the policy.
        NoMatchingTag,
        // Reading a digest from the registry failed.
        SecretNotFound,
        InvalidSecret,
        AuthenticationFailed,
        RepositoryNotFound,
        TooManyTags,
        ScanFailed,
        StorageFailed,
    }
}

impl From<ScanReason> for PolicyReason {
    fn from(r: ScanReason) -> Self {
        match r {
            ScanReason::SecretNotFound => PolicyReason::SecretNotFound,
            ScanReason::InvalidSecret => PolicyReason::InvalidSecret,
            ScanReason::AuthenticationFailed => PolicyReason::AuthenticationFailed,
            ScanReason::RepositoryNotFound => PolicyReason::RepositoryNotFound,
            ScanReason::TooManyTags => PolicyReason::TooManyTags,
            ScanReason::StorageFailed => PolicyReason::StorageFailed,
            ScanReason::ScanFailed | ScanReason::NewTags => PolicyReason::ScanFailed,
        }
    }
}

/// How often a policy is re-evaluated without a new scan (and digests re-read with `Always`).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(600);

/// When digests are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestReflection {
    Never,
    IfNotPresent,
    Always,
}

impl DigestReflection {
    pub fn parse(value: Option<&str>) -> Result<DigestReflection, String> {
        match value.unwrap_or("Never") {
            "" | "Never" => Ok(DigestReflection::Never),
            "IfNotPresent" => Ok(DigestReflection::IfNotPresent),
            "Always" => Ok(DigestReflection::Always),
            other => Err(format!(
                "spec.digestReflectionPolicy: {other:?} is not Never, IfNotPresent or Always"
            )),
        }
    }
}

/// The ImagePolicy reconciler.
pub struct Selectors {
    client: Client,
    tags: Arc<TagStore>,
}

impl Reconciler for Selectors {
    type Object = ImagePolicy;
    /// The revision of the referenced repository's last scan.
    type Inputs = Option<String>;
    type Error = std::convert::Infallible;
    const REPORTER: &'static str = "sluice-image-reflector";

    async fn inputs(&self, obj: &ImagePolicy) -> Option<String> {
        let ns = obj.namespace().unwrap_or_default();
        let api: Api<ImageRepository> = Api::namespaced(self.client.clone(), &ns);
        let repo = api
            .get_opt(&obj.spec.image_repository_ref.name)
            .await
            .ok()??;
        repo.status?.last_scan_result.map(|r| r.revision)
    }

    fn suspended(obj: &ImagePolicy) -> bool {
        obj.spec.suspend
    }

    async fn reconcile(
        &self,
        obj: &ImagePolicy,
        revision: Option<String>,
        attempt: &Attempt<'_>,
    ) -> Result<Plan<ImagePolicyStatus>, Self::Error> {
        let interval = obj
            .spec
            .interval
            .as_deref()
            .and_then(|i| duration::parse(i).ok())
            .unwrap_or(DEFAULT_INTERVAL);
        let current = obj.status.clone().unwrap_or_default();
        let mut status = current.clone();
        status.observed_generation = obj.metadata.generation;
        if let Some(r) = attempt.requested_at {
            status.last_handled_reconcile_at = Some(r.to_owned());
        }
        let outcome = self.choose(obj, revision, &mut status).await;
        let now = k8s_openapi::jiff::Timestamp::now().to_string();
        let ctx = status::Context {
            stamp: Stamp {
                generation: obj.metadata.generation,
                now: &now,
            },
            interval,
            failures: attempt.failures,
        };
        let (event, requeue) = status::settle(&mut status.conditions, &ctx, outcome);
        Ok(Plan {
            status: (status != current).then_some(status),
            event,
            requeue,
        })
    }
}

/// Runs until a shutdown signal.
pub async fn run(client: Client, namespace: Option<String>, tags: Arc<TagStore>) {
    let (policies, repositories): (Api<ImagePolicy>, Api<ImageRepository>) = match &namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (Api::all(client.clone()), Api::all(client.clone())),
    };
    let selectors = Selectors {
        client: client.clone(),
        tags,
    };
    let scaffold = Scaffold::new(selectors, client, policies, watcher::Config::default());
    let store = scaffold.store();
    scaffold
        .watches(repositories, move |repo: ImageRepository| {
            let ns = repo.namespace();
            let name = repo.name_any();
            store
                .state()
                .into_iter()
                .filter(|p| p.namespace() == ns && p.spec.image_repository_ref.name == name)
                .map(|p| ObjectRef::from_obj(&*p))
                .collect::<Vec<_>>()
        })
        .run()
        .await;
}

impl Selectors {
    /// Chooses the latest image and fills `status.latestRef`.
    async fn choose(
        &self,
        obj: &ImagePolicy,
        revision: Option<String>,
        status: &mut ImagePolicyStatus,
    ) -> Outcome<PolicyReason> {
        let spec = &obj.spec;
        if spec.suspend {
            return Outcome::Suspended;
        }
        let ns = obj.namespace().unwrap_or_default();
        let invalid = |message: String| Outcome::InvalidSpec { message };
        let selector = match Selector::from_spec(&spec.policy, spec.filter_tags.as_ref()) {
            Ok(s) => s,
            Err(e) => return invalid(e.to_string()),
        };
        let reflection = match DigestReflection::parse(spec.digest_reflection_policy.as_deref()) {
            Ok(r) => r,
            Err(message) => return invalid(message),
        };
        if let Some(i) = &spec.interval
            && let Err(e) = duration::parse(i)
        {
            return invalid(format!("spec.interval: {e}"));
        }
        let repo_ref = &spec.image_repository_ref;
        if repo_ref.namespace.as_ref().is_some_and(|n| *n != ns) {
            return invalid(
                "spec.imageRepositoryRef.namespace: only ImageRepositories of the policy's own namespace can be used"
                    .into(),
            );
        }
        let not_ready = |message: String| Outcome::Failed {
            reason: PolicyReason::DependencyNotReady,
            message,
        };
        let api: Api<ImageRepository> = Api::namespaced(self.client.clone(), &ns);
        let repo = match api.get_opt(&repo_ref.name).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return not_ready(format!("ImageRepository {ns}/{} not found", repo_ref.name));
            }
            Err(e) => {
                return not_ready(format!(
                    "reading ImageRepository {ns}/{}: {e}",
                    repo_ref.name
                ));
            }
        };
        let tags = match (revision, self.tags.get(&ns, &repo_ref.name).await) {
            (Some(rev), Some(tags)) if tags.revision == rev => tags,
            _ => {
                return not_ready(format!(
                    "ImageRepository {ns}/{} has no scan result yet",
                    repo_ref.name
                ));
            }
        };
        let Some(tag) = selector.latest(tags.tags.iter().map(String::as_str)) else {
            return Outcome::Failed {
                reason: PolicyReason::NoMatchingTag,
                message: format!(
                    "none of the {} tags of ImageRepository {ns}/{} satisfies the policy",
                    tags.tags.len(),
                    repo_ref.name
                ),
            };
        };
        let image = repo.spec.image.trim().to_owned();
        let previous = status.latest_ref.clone();
        let digest = match reflection {
            DigestReflection::Never => None,
            DigestReflection::IfNotPresent
                if previous
                    .as_ref()
                    .is_some_and(|p| p.tag == tag && p.name == image) =>
            {
                match previous.as_ref().and_then(|p| p.digest.clone()) {
                    Some(d) => Some(d),
                    None => match self.digest(&repo, tag).await {
                        Ok(d) => Some(d),
                        Err(o) => return o,
                    },
                }
            }
            _ => match self.digest(&repo, tag).await {
                Ok(d) => Some(d),
                Err(o) => return o,
            },
        };
        let latest = ImageRef {
            name: image,
            tag: tag.to_owned(),
            digest,
        };
        let message = format!("Latest image tag for {} resolved to {tag}", latest.name);
        if previous.as_ref() == Some(&latest) {
            return Outcome::Ready {
                message,
                event: None,
            };
        }
        let event = match &previous {
            Some(p) => format!(
                "Latest image tag for {} updated from {} to {}",
                latest.name, p.tag, latest.tag
            ),
            None => message.clone(),
        };
        if previous.is_some() {
            status.observed_previous_ref = previous;
        }
        status.latest_ref = Some(latest);
        Outcome::Ready {
            message,
            event: Some((PolicyReason::NewLatestImage, event)),
        }
    }

    /// Reads `tag`'s digest from `repo`'s registry, within the repository's `spec.timeout`.
    async fn digest(
        &self,
        repo: &ImageRepository,
        tag: &str,
    ) -> Result<String, Outcome<PolicyReason>> {
        let not_ready = |message: String| Outcome::Failed {
            reason: PolicyReason::DependencyNotReady,
            message: format!("ImageRepository {}: {message}", repo.name_any()),
        };
        let name = ImageName::parse(&repo.spec.image)
            .map_err(|e| not_ready(format!("spec.image: {e}")))?;
        let timeout = scan_timeout(repo).map_err(not_ready)?;
        let access = access::access(&self.client, repo, &name)
            .await
            .map_err(|e| access_failure(&e))?;
        let registry =
            HttpRegistry::new(access, RetryPolicy::default()).map_err(|e| Outcome::Failed {
                reason: PolicyReason::InvalidSecret,
                message: error_chain(&e),
            })?;
        match tokio::time::timeout(timeout, registry.digest(&name.repository, tag)).await {
            Ok(read) => read.map_err(|e| registry_failure(&e)),
            Err(_) => Err(timed_out(
                &format!("reading the digest of {name}:{tag}"),
                timeout,
            )),
        }
    }
}
