//! Traffic routing of canaries: one trait (`Router`), one file per provider, one factory
//! (`for_routing`). Every router keeps the apex, primary and canary Services; `kubernetes`
//! switches the apex Service's selector (blue/green), `pod_ratio` weighs by the number of canary
//! and primary pods behind it, `gateway_api` sets HTTPRoute weights and matches, `istio`
//! VirtualService weights and matches, `contour` HTTPProxy weights and conditions, `traefik` a
//! weighted (or mirroring) TraefikService, `nginx` the annotations of a canary Ingress. The
//! routers that can also mirror requests (`istio`, `gateway_api`, `traefik`) and route by session
//! affinity cookies (`istio`, `gateway_api`) read what the live object does as a `Live`. Talks to
//! the API server; the objects come from `objects` and each router's pure builder.

pub mod contour;
mod endpoints;
pub mod gateway_api;
pub mod istio;
pub mod kubernetes;
pub mod nginx;
pub mod pod_ratio;
pub mod traefik;

use std::collections::BTreeMap;

use kube::Client;
use serde_json::{Value, json};

use super::cluster;
use super::machine::{Routes, Traffic};
use super::objects::{self, ObjectsError, Owner};
use super::spec::{Routing, Settings};
use crate::api::canary::CanaryService;

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Objects(#[from] ObjectsError),
    #[error("applying {what} failed")]
    Apply {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("reading {what} failed")]
    Read {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{what} does not exist")]
    Missing { what: String },
    #[error(
        "the API server does not serve {api_version} {kind} (are the router's CustomResourceDefinitions installed?)"
    )]
    NotServed { api_version: String, kind: String },
}

/// What a router needs to know about one canary.
pub struct Context<'a> {
    pub client: &'a Client,
    pub settings: &'a Settings,
    pub service: &'a CanaryService,
    /// The target Deployment, as last read.
    pub target: &'a Value,
    pub owner: &'a Owner,
    /// The primary's replicas (what the canary is sized against).
    pub primary_replicas: i64,
    pub now: k8s_openapi::jiff::Timestamp,
}

impl Context<'_> {
    pub fn namespace(&self) -> &str {
        &self.owner.namespace
    }

    pub fn target_selector(&self) -> Result<BTreeMap<String, String>, ObjectsError> {
        objects::target_selector(self.target)
    }

    pub fn primary_selector(&self) -> Result<BTreeMap<String, String>, ObjectsError> {
        Ok(objects::primary_selector(&self.target_selector()?))
    }

    /// Reads an object of the Canary's namespace; `None` when it does not exist.
    pub async fn read(
        &self,
        api_version: &str,
        kind: &str,
        name: &str,
    ) -> Result<Option<Value>, RouterError> {
        cluster::get(self.client, self.namespace(), api_version, kind, name)
            .await
            .map_err(|source| RouterError::Read {
                what: format!("{kind} {}/{name}", self.namespace()),
                source: Box::new(source),
            })
    }

    /// Whether the route object of `kind` named after the apex Service sends traffic as
    /// `traffic` says, what it does read by `live_of`.
    pub async fn observe_apex_route(
        &self,
        api_version: &str,
        kind: &str,
        traffic: &Traffic,
        live_of: impl Fn(&Value, &Settings) -> Live,
    ) -> Result<Routes, RouterError> {
        Ok(self
            .read_apex_route(api_version, kind, traffic, live_of)
            .await?
            .1)
    }

    /// The route object of `kind` named after the apex Service, if it exists, and whether it
    /// sends traffic as `traffic` says.
    pub async fn read_apex_route(
        &self,
        api_version: &str,
        kind: &str,
        traffic: &Traffic,
        live_of: impl Fn(&Value, &Settings) -> Live,
    ) -> Result<(Option<Value>, Routes), RouterError> {
        let apex = &self.settings.apex;
        let what = format!("{kind} {}/{apex}", self.namespace());
        Ok(match self.read(api_version, kind, apex).await? {
            None => (
                None,
                Routes::Converging(format!("{what} does not exist yet")),
            ),
            Some(live) => {
                let routes = live_of(&live, self.settings).routes(&what, traffic);
                (Some(live), routes)
            }
        })
    }

    /// Applies the three Services, the apex selecting `apex_selector`.
    pub async fn apply_services(
        &self,
        apex_selector: &BTreeMap<String, String>,
    ) -> Result<(), RouterError> {
        let services = objects::services(
            self.settings,
            self.service,
            self.target,
            self.owner,
            apex_selector,
        )?;
        for service in &services {
            apply(self.client, service).await?;
        }
        Ok(())
    }
}

/// Applies one generated object, naming it in the error.
pub(super) async fn apply(client: &Client, object: &Value) -> Result<Value, RouterError> {
    cluster::apply(client, object)
        .await
        .map_err(|source| match source {
            // A kind the server does not serve answers 404 to an apply (which creates).
            kube::Error::Api(status) if status.code == 404 => RouterError::NotServed {
                api_version: field(object, "/apiVersion").into(),
                kind: field(object, "/kind").into(),
            },
            source => RouterError::Apply {
                what: describe(object),
                source: Box::new(source),
            },
        })
}

fn field<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("?")
}

fn describe(object: &Value) -> String {
    format!(
        "{} {}/{}",
        field(object, "/kind"),
        field(object, "/metadata/namespace"),
        field(object, "/metadata/name")
    )
}

/// The weight of the entry of `list` (a route's destinations or backends) whose name, at
/// `name_at`, is `canary_service`.
pub(super) fn canary_weight(
    list: Option<&Value>,
    name_at: &str,
    canary_service: &str,
) -> Option<u64> {
    list?
        .as_array()?
        .iter()
        .find(|entry| entry.pointer(name_at).and_then(Value::as_str) == Some(canary_service))?
        .get("weight")?
        .as_u64()
}

/// What a live route object does with a canary's traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Live {
    /// The canary's weight, if the object names the canary.
    pub weight: Option<u64>,
    /// Requests are copied to the canary.
    pub mirror: bool,
    /// A route sends the holders of the session affinity cookie to the canary.
    pub sticky: bool,
}

impl Live {
    /// A route object that weighs the canary at `weight`, neither mirroring nor sticky.
    pub fn weighted(weight: Option<u64>) -> Live {
        Live {
            weight,
            mirror: false,
            sticky: false,
        }
    }

    /// Whether the object (`what`) sends traffic as `traffic` says.
    pub fn routes(&self, what: &str, traffic: &Traffic) -> Routes {
        let weight = traffic.weight;
        if self.weight != Some(u64::from(weight)) {
            return Routes::Converging(format!(
                "{what} sends {} percent to the canary, not {weight}",
                self.weight.map_or("no".into(), |w| w.to_string())
            ));
        }
        if self.mirror != traffic.mirror {
            let does = if traffic.mirror { "does not" } else { "still" };
            return Routes::Converging(format!("{what} {does} mirror requests to the canary"));
        }
        if self.sticky != traffic.cookies.is_some() {
            let does = if self.sticky { "still" } else { "does not" };
            return Routes::Converging(format!(
                "{what} {does} route the session affinity cookie to the canary"
            ));
        }
        Routes::Converged
    }
}

/// The session affinity cookies a route object sets and routes by, each as `name=value`.
pub(super) struct Sticky {
    pub canary: String,
    /// The primary's cookie, when the Canary names one.
    pub primary: Option<String>,
    pub max_age: u64,
}

impl Sticky {
    /// The cookies to route by, when `traffic` has them and the Canary asks for session affinity.
    pub fn of(s: &Settings, traffic: &Traffic) -> Option<Sticky> {
        let (affinity, cookies) = (s.affinity.as_ref()?, traffic.cookies.as_ref()?);
        Some(Sticky {
            canary: format!("{}={}", affinity.cookie, cookies.canary),
            primary: affinity
                .primary_cookie
                .as_ref()
                .map(|name| format!("{name}={}", cookies.primary)),
            max_age: affinity.max_age,
        })
    }

    /// The `Set-Cookie` value that gives a client `cookie` (`name=value`).
    pub fn set_cookie(&self, cookie: &str) -> String {
        format!("{cookie}; Max-Age={}", self.max_age)
    }

    /// A regular expression matching a whole `Cookie` header that carries `cookie` (`name=value`).
    pub fn cookie_regex(cookie: &str) -> String {
        format!("^(.*?;\\s*)?{}(;.*)?$", regex::escape(cookie))
    }
}

/// Sends traffic between a canary's primary and canary.
pub trait Router: Send + Sync {
    /// The provider's name, for messages.
    fn name(&self) -> &'static str;

    /// How many pods the canary runs while it is analysed at `weight`, given the primary's (as
    /// many, at least one, unless the router weighs by pods).
    fn canary_replicas(&self, _weight: u32, primary_replicas: i64) -> i64 {
        primary_replicas.max(1)
    }

    /// Whether the target's pods must carry the apex label (the apex Service selects them).
    fn labels_target(&self) -> bool {
        false
    }

    /// Sends traffic as `traffic` says (its weight to the canary and the rest to the primary,
    /// mirrored, sticky), creating what is missing. Routers that cannot mirror or route by cookie
    /// are never asked to (the spec check refuses such Canaries).
    fn route(
        &self,
        ctx: &Context<'_>,
        traffic: &Traffic,
    ) -> impl Future<Output = Result<(), RouterError>> + Send;

    /// Whether traffic is as `traffic` says (what clients see, as far as the cluster tells).
    fn observe(
        &self,
        ctx: &Context<'_>,
        traffic: &Traffic,
    ) -> impl Future<Output = Result<Routes, RouterError>> + Send;
}

/// The route object a router leaves behind when a Canary with `revertOnDeletion` goes: what it
/// carries from outside (a gateway, the mesh) goes to the apex Service, and the Canary no longer
/// owns it. `None` where the apex Service itself carries the traffic (`kubernetes`, and `nginx`,
/// whose canary Ingress goes with the Canary).
pub fn left_to_apex(s: &Settings, service: &CanaryService, owner: &Owner) -> Option<Value> {
    let (apex, port) = (s.apex.as_str(), service.port);
    let mut route = match s.routing {
        Routing::GatewayApi => {
            let mut route = gateway_api::http_route(s, service, owner, &Traffic::weight(0));
            route["spec"]["rules"] = json!([{"backendRefs": [{"group": "", "kind": "Service", "name": apex, "port": port, "weight": 100}]}]);
            route
        }
        Routing::Istio => {
            let mut vs = istio::virtual_service(s, service, owner, &Traffic::weight(0));
            for http in vs["spec"]["http"].as_array_mut().into_iter().flatten() {
                http["route"] = json!([{"destination": {"host": apex}, "weight": 100}]);
            }
            vs
        }
        Routing::Contour => {
            let mut proxy = contour::http_proxy(s, service, owner, 0);
            for route in proxy["spec"]["routes"].as_array_mut().into_iter().flatten() {
                route["services"] = json!([{"name": apex, "port": port, "weight": 100}]);
            }
            proxy
        }
        Routing::Traefik => {
            let mut ts = traefik::traefik_service(s, service, owner, &Traffic::weight(0));
            ts["spec"]["weighted"]["services"] =
                json!([{"name": apex, "port": port, "weight": 100}]);
            ts
        }
        Routing::ServiceSelector | Routing::PodRatio | Routing::Nginx => return None,
    };
    if let Some(metadata) = route["metadata"].as_object_mut() {
        metadata.remove("ownerReferences");
    }
    Some(route)
}

/// The router a canary's routing needs.
pub enum AnyRouter {
    Kubernetes(kubernetes::Kubernetes),
    PodRatio(pod_ratio::PodRatio),
    GatewayApi(gateway_api::GatewayApi),
    Nginx(nginx::Nginx),
    Istio(istio::Istio),
    Contour(contour::Contour),
    Traefik(traefik::Traefik),
}

/// The factory: one router per routing.
pub fn for_routing(routing: Routing) -> AnyRouter {
    match routing {
        Routing::ServiceSelector => AnyRouter::Kubernetes(kubernetes::Kubernetes),
        Routing::PodRatio => AnyRouter::PodRatio(pod_ratio::PodRatio),
        Routing::GatewayApi => AnyRouter::GatewayApi(gateway_api::GatewayApi),
        Routing::Nginx => AnyRouter::Nginx(nginx::Nginx),
        Routing::Istio => AnyRouter::Istio(istio::Istio),
        Routing::Contour => AnyRouter::Contour(contour::Contour),
        Routing::Traefik => AnyRouter::Traefik(traefik::Traefik),
    }
}

impl Router for AnyRouter {
    fn name(&self) -> &'static str {
        match self {
            AnyRouter::Kubernetes(r) => r.name(),
            AnyRouter::PodRatio(r) => r.name(),
            AnyRouter::GatewayApi(r) => r.name(),
            AnyRouter::Nginx(r) => r.name(),
            AnyRouter::Istio(r) => r.name(),
            AnyRouter::Contour(r) => r.name(),
            AnyRouter::Traefik(r) => r.name(),
        }
    }

    fn canary_replicas(&self, weight: u32, primary_replicas: i64) -> i64 {
        match self {
            AnyRouter::Kubernetes(r) => r.canary_replicas(weight, primary_replicas),
            AnyRouter::PodRatio(r) => r.canary_replicas(weight, primary_replicas),
            AnyRouter::GatewayApi(r) => r.canary_replicas(weight, primary_replicas),
            AnyRouter::Nginx(r) => r.canary_replicas(weight, primary_replicas),
            AnyRouter::Istio(r) => r.canary_replicas(weight, primary_replicas),
            AnyRouter::Contour(r) => r.canary_replicas(weight, primary_replicas),
            AnyRouter::Traefik(r) => r.canary_replicas(weight, primary_replicas),
        }
    }

    fn labels_target(&self) -> bool {
        matches!(self, AnyRouter::PodRatio(_) | AnyRouter::Kubernetes(_))
    }

    async fn route(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<(), RouterError> {
        match self {
            AnyRouter::Kubernetes(r) => r.route(ctx, traffic).await,
            AnyRouter::PodRatio(r) => r.route(ctx, traffic).await,
            AnyRouter::GatewayApi(r) => r.route(ctx, traffic).await,
            AnyRouter::Nginx(r) => r.route(ctx, traffic).await,
            AnyRouter::Istio(r) => r.route(ctx, traffic).await,
            AnyRouter::Contour(r) => r.route(ctx, traffic).await,
            AnyRouter::Traefik(r) => r.route(ctx, traffic).await,
        }
    }

    async fn observe(&self, ctx: &Context<'_>, traffic: &Traffic) -> Result<Routes, RouterError> {
        match self {
            AnyRouter::Kubernetes(r) => r.observe(ctx, traffic).await,
            AnyRouter::PodRatio(r) => r.observe(ctx, traffic).await,
            AnyRouter::GatewayApi(r) => r.observe(ctx, traffic).await,
            AnyRouter::Nginx(r) => r.observe(ctx, traffic).await,
            AnyRouter::Istio(r) => r.observe(ctx, traffic).await,
            AnyRouter::Contour(r) => r.observe(ctx, traffic).await,
            AnyRouter::Traefik(r) => r.observe(ctx, traffic).await,
        }
    }
}

/// What the routers' unit tests share: a Canary of `podinfo` in `test`.
#[cfg(test)]
pub(super) mod testing {
    use serde_json::{Value, json};

    use crate::api::canary::CanarySpec;
    use crate::canary::objects::Owner;
    use crate::canary::spec::Settings;

    /// A Canary spec targeting Deployment `podinfo`, with `fields` (provider, service, analysis,
    /// ...), and its settings.
    pub fn canary(fields: Value) -> (Settings, CanarySpec) {
        let mut spec = json!({"targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"}});
        spec.as_object_mut()
            .unwrap()
            .extend(fields.as_object().unwrap().clone());
        let spec: CanarySpec = serde_json::from_value(spec).unwrap();
        (crate::canary::spec::settings(&spec).unwrap(), spec)
    }

    /// The Canary `test/podinfo` as the owner of what a router generates.
    pub fn owner() -> Owner {
        Owner {
            name: "podinfo".into(),
            namespace: "test".into(),
            uid: "u".into(),
        }
    }
}
