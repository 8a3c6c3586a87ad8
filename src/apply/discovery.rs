//! Which resource and scope serve a group/version/kind, cached per group-version and refreshed
//! when a kind is not found (it may come from a CRD applied a moment ago). Does I/O (discovery).

use std::collections::HashMap;
use std::sync::Mutex;

use kube::api::DynamicObject;
use kube::core::{ApiResource, GroupVersion};
use kube::discovery::{self, ApiCapabilities, Scope};
use kube::{Api, Client};

/// A resolved kind: the resource to call and whether it is namespaced.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub resource: ApiResource,
    pub namespaced: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error(
        "the API server has no kind {kind} in {api_version} (is its CustomResourceDefinition installed?)"
    )]
    UnknownKind { api_version: String, kind: String },
    #[error("discovery of {api_version} failed")]
    Query {
        api_version: String,
        #[source]
        source: Box<kube::Error>,
    },
}

impl Resolved {
    /// The API of this kind in `namespace` (which cluster-scoped kinds ignore).
    pub fn api(&self, client: Client, namespace: &str) -> Api<DynamicObject> {
        if self.namespaced {
            Api::namespaced_with(client, namespace, &self.resource)
        } else {
            Api::all_with(client, &self.resource)
        }
    }
}

type Resources = Vec<(ApiResource, ApiCapabilities)>;

pub struct Discovery {
    client: Client,
    cache: Mutex<HashMap<String, Resources>>,
}

impl Discovery {
    pub fn new(client: Client) -> Discovery {
        Discovery {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Resolves a kind, asking the API server when the cached group-version lacks it.
    pub async fn resolve(
        &self,
        group: &str,
        version: &str,
        kind: &str,
    ) -> Result<Resolved, DiscoveryError> {
        let gv = GroupVersion::gv(group, version);
        let api_version = gv.api_version();
        if let Some(found) = self.cached(&api_version, kind) {
            return Ok(found);
        }
        let fetched = match discovery::pinned_group(&self.client, &gv).await {
            Ok(group) => group.versioned_resources(version),
            Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
            Err(source) => {
                return Err(DiscoveryError::Query {
                    api_version,
                    source: Box::new(source),
                });
            }
        };
        self.cache
            .lock()
            .expect("discovery cache lock")
            .insert(api_version.clone(), fetched);
        self.cached(&api_version, kind)
            .ok_or_else(|| DiscoveryError::UnknownKind {
                api_version,
                kind: kind.to_string(),
            })
    }

    /// Forgets a group-version, so the next `resolve` asks again (after its CRD changed).
    pub fn forget(&self, group: &str, version: &str) {
        let gv = GroupVersion::gv(group, version);
        self.cache
            .lock()
            .expect("discovery cache lock")
            .remove(&gv.api_version());
    }

    fn cached(&self, api_version: &str, kind: &str) -> Option<Resolved> {
        let cache = self.cache.lock().expect("discovery cache lock");
        let (resource, caps) = cache
            .get(api_version)?
            .iter()
            .find(|(r, _)| r.kind == kind)?;
        Some(Resolved {
            resource: resource.clone(),
            namespaced: caps.scope == Scope::Namespaced,
        })
    }
}
