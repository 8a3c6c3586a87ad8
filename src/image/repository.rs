//! The ImageRepository controller: scans each repository's tags every interval, stores them for
//! ImagePolicies (`tags`) and reports the scan. Runs on the `runtime::controller` scaffold; talks
//! to the API server (Secrets) and registries. A scan that finds the same tags writes nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kube::api::Api;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use regex::Regex;

use super::access::{self, AccessError};
use super::reference::ImageName;
use super::registry::http::HttpRegistry;
use super::registry::{Limits, Registry, RegistryError, RetryPolicy};
use super::status::{self, Outcome};
use super::tags::{TagStore, Tags};
use crate::api::duration;
use crate::api::image_repository::{
    DEFAULT_SCAN_TIMEOUT, ImageRepository, ImageRepositoryStatus, LATEST_TAGS, ScanResult,
};
use crate::runtime::conditions::{Stamp, reasons};
use crate::runtime::controller::{Attempt, Plan, Reconciler, Scaffold};
use crate::runtime::text::error_chain;

reasons! {
    /// Reasons of an ImageRepository's conditions and Events, besides the `Common` ones.
    pub enum ScanReason {
        /// Event: the scan found a different tag list.
        NewTags,
        SecretNotFound,
        InvalidSecret,
        AuthenticationFailed,
        RepositoryNotFound,
        TooManyTags,
        ScanFailed,
        StorageFailed,
    }
}

/// An object's namespace and name.
type ObjectKey = (String, String);

/// The ImageRepository reconciler.
pub struct Scanner {
    client: Client,
    tags: Arc<TagStore>,
    limits: Limits,
    /// One registry client per object while its access is unchanged: connections and tokens are
    /// reused across scans.
    registries: Mutex<HashMap<ObjectKey, (String, Arc<HttpRegistry>)>>,
}

impl Reconciler for Scanner {
    type Object = ImageRepository;
    type Inputs = ();
    type Error = std::convert::Infallible;
    const REPORTER: &'static str = "sluice-image-reflector";

    async fn inputs(&self, _obj: &ImageRepository) {}

    fn suspended(obj: &ImageRepository) -> bool {
        obj.spec.suspend
    }

    async fn reconcile(
        &self,
        obj: &ImageRepository,
        (): (),
        attempt: &Attempt<'_>,
    ) -> Result<Plan<ImageRepositoryStatus>, Self::Error> {
        let interval = duration::parse(&obj.spec.interval).unwrap_or(Duration::from_secs(300));
        let current = obj.status.clone().unwrap_or_default();
        let mut status = current.clone();
        status.observed_generation = obj.metadata.generation;
        if let Some(r) = attempt.requested_at {
            status.last_handled_reconcile_at = Some(r.to_owned());
        }
        let outcome = self.scan(obj, &mut status).await;
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
pub async fn run(client: Client, namespace: Option<String>, tags: Arc<TagStore>, limits: Limits) {
    let api: Api<ImageRepository> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let scanner = Scanner {
        client: client.clone(),
        tags,
        limits,
        registries: Mutex::default(),
    };
    Scaffold::new(scanner, client, api, watcher::Config::default())
        .run()
        .await;
}

impl Scanner {
    /// Scans once and fills `status`'s scan fields.
    async fn scan(
        &self,
        obj: &ImageRepository,
        status: &mut ImageRepositoryStatus,
    ) -> Outcome<ScanReason> {
        let spec = &obj.spec;
        if spec.suspend {
            return Outcome::Suspended;
        }
        let invalid = |message: String| Outcome::InvalidSpec { message };
        if let Err(e) = duration::parse(&spec.interval) {
            return invalid(format!("spec.interval: {e}"));
        }
        let timeout = match scan_timeout(obj) {
            Ok(t) => t,
            Err(message) => return invalid(message),
        };
        let name = match ImageName::parse(&spec.image) {
            Ok(n) => n,
            Err(e) => return invalid(format!("spec.image: {e}")),
        };
        let exclusions = match compile_exclusions(&spec.exclusion_list) {
            Ok(e) => e,
            Err(message) => return invalid(message),
        };
        let registry = match self.registry(obj, &name).await {
            Ok(r) => r,
            Err(outcome) => return outcome,
        };
        let listed =
            tokio::time::timeout(timeout, registry.list_tags(&name.repository, &self.limits)).await;
        let listed = match listed {
            Ok(Ok(tags)) => tags,
            Ok(Err(e)) => return registry_failure(&e),
            Err(_) => return timed_out(&format!("scanning {name}"), timeout),
        };
        let kept = listed
            .into_iter()
            .filter(|t| !exclusions.iter().any(|re| re.is_match(t)))
            .collect();
        let tags = Tags::new(kept);
        status.canonical_image_name = Some(name.to_string());
        status.observed_exclusion_list = spec.exclusion_list.clone();
        let (ns, obj_name) = (obj.namespace().unwrap_or_default(), obj.name_any());
        let message = format!("successful scan: found {} tags", tags.tags.len());
        let stored = self.tags.get(&ns, &obj_name).await;
        let known = status
            .last_scan_result
            .as_ref()
            .is_some_and(|r| r.revision == tags.revision)
            && stored.is_some_and(|s| s.revision == tags.revision);
        if known {
            return Outcome::Ready {
                message,
                event: None,
            };
        }
        status.last_scan_result = Some(ScanResult {
            revision: tags.revision.clone(),
            tag_count: tags.tags.len() as i64,
            scan_time: k8s_openapi::jiff::Timestamp::now().to_string(),
            latest_tags: tags.tags.iter().rev().take(LATEST_TAGS).cloned().collect(),
        });
        if let Err(e) = self.tags.put(&ns, &obj_name, tags).await {
            return Outcome::Failed {
                reason: ScanReason::StorageFailed,
                message: format!("storing the tags failed: {e}"),
            };
        }
        Outcome::Ready {
            message: message.clone(),
            event: Some((ScanReason::NewTags, message)),
        }
    }

    /// The registry client for `obj`, reused while its access is unchanged.
    async fn registry(
        &self,
        obj: &ImageRepository,
        name: &ImageName,
    ) -> Result<Arc<HttpRegistry>, Outcome<ScanReason>> {
        let access = access::access(&self.client, obj, name)
            .await
            .map_err(|e| access_failure(&e))?;
        let key = (obj.namespace().unwrap_or_default(), obj.name_any());
        let fingerprint = access::fingerprint(&access);
        let mut registries = self
            .registries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((f, r)) = registries.get(&key)
            && *f == fingerprint
        {
            return Ok(r.clone());
        }
        let registry =
            HttpRegistry::new(access, RetryPolicy::default()).map_err(|e| Outcome::Failed {
                reason: ScanReason::InvalidSecret,
                message: error_chain(&e),
            })?;
        let registry = Arc::new(registry);
        registries.insert(key, (fingerprint, registry.clone()));
        Ok(registry)
    }
}

/// How long one registry operation for `obj` may take: `spec.timeout`, by default 60 s.
pub fn scan_timeout(obj: &ImageRepository) -> Result<Duration, String> {
    duration::parse(obj.spec.timeout.as_deref().unwrap_or(DEFAULT_SCAN_TIMEOUT))
        .map_err(|e| format!("spec.timeout: {e}"))
}

/// The outcome of `what` (e.g. `scanning IMAGE`) outlasting the timeout.
pub fn timed_out<R: From<ScanReason>>(what: &str, timeout: Duration) -> Outcome<R> {
    Outcome::Failed {
        reason: ScanReason::ScanFailed.into(),
        message: format!("{what} took longer than the timeout of {timeout:?}"),
    }
}

/// Compiles `spec.exclusionList`.
pub fn compile_exclusions(list: &[String]) -> Result<Vec<Regex>, String> {
    list.iter()
        .enumerate()
        .map(|(i, pattern)| {
            Regex::new(pattern).map_err(|e| {
                format!(
                    "spec.exclusionList[{i}] {pattern:?} is not a valid regular expression: {e}"
                )
            })
        })
        .collect()
}

/// The outcome of a Secret or ServiceAccount that cannot be used.
pub fn access_failure<R: From<ScanReason>>(e: &AccessError) -> Outcome<R> {
    let reason = match e {
        AccessError::SecretNotFound { .. } | AccessError::ServiceAccountNotFound { .. } => {
            ScanReason::SecretNotFound
        }
        e if e.is_invalid_secret() => ScanReason::InvalidSecret,
        _ => ScanReason::ScanFailed,
    };
    Outcome::Failed {
        reason: reason.into(),
        message: error_chain(e),
    }
}

/// The outcome of a registry failure.
pub fn registry_failure<R: From<ScanReason>>(e: &RegistryError) -> Outcome<R> {
    let reason = match e {
        e if e.is_auth() => ScanReason::AuthenticationFailed,
        RegistryError::NotFound { .. } | RegistryError::TagNotFound { .. } => {
            ScanReason::RepositoryNotFound
        }
        RegistryError::TooManyTags { .. } => ScanReason::TooManyTags,
        RegistryError::Tls { .. } => ScanReason::InvalidSecret,
        _ => ScanReason::ScanFailed,
    };
    Outcome::Failed {
        reason: reason.into(),
        message: error_chain(e),
    }
}
