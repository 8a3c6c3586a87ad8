//! Where the apex Service sends traffic, as its EndpointSlices say: how many ready endpoints are
//! primary and canary pods, and whether that has been so long enough for kube-proxy to follow.
//! `count` and `judge` are pure; `read` lists the slices.

use std::time::Duration;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;

use super::{Context, RouterError};
use crate::canary::machine::Routes;

/// How long endpoints must be unchanged before traffic counts as moved: kube-proxy applies
/// endpoint changes within about a second.
pub const SETTLE: Duration = Duration::from_secs(2);

/// The apex Service's ready endpoints by the Deployment whose pod they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub primary: usize,
    pub canary: usize,
    pub other: usize,
    /// When a slice last changed.
    pub changed: Option<Timestamp>,
}

/// How many endpoints of one side a weight wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    None,
    Some,
    Exactly(usize),
}

impl Want {
    fn met(self, have: usize) -> bool {
        match self {
            Want::None => have == 0,
            Want::Some => have > 0,
            Want::Exactly(n) => have == n,
        }
    }

    fn describe(self) -> String {
        match self {
            Want::None => "none".into(),
            Want::Some => "at least one".into(),
            Want::Exactly(n) => n.to_string(),
        }
    }
}

/// Counts the ready endpoints of `slices` by pod name: `<target>-primary-…` is the primary's,
/// other `<target>-…` pods are the canary's.
pub fn count(slices: &[EndpointSlice], target: &str) -> Endpoints {
    let primary_prefix = format!("{target}-primary-");
    let canary_prefix = format!("{target}-");
    let mut endpoints = Endpoints::default();
    for slice in slices {
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            let pod = endpoint
                .target_ref
                .as_ref()
                .and_then(|r| r.name.as_deref())
                .unwrap_or("");
            if pod.starts_with(&primary_prefix) {
                endpoints.primary += 1;
            } else if pod.starts_with(&canary_prefix) {
                endpoints.canary += 1;
            } else {
                endpoints.other += 1;
            }
        }
        let times = slice
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|f| f.time.as_ref().map(|t| t.0))
            .chain(slice.metadata.creation_timestamp.as_ref().map(|t| t.0));
        for time in times {
            if endpoints.changed.is_none_or(|c| c < time) {
                endpoints.changed = Some(time);
            }
        }
    }
    endpoints
}

/// Whether the endpoints are what a weight wants, and have been for `SETTLE`.
pub fn judge(endpoints: &Endpoints, primary: Want, canary: Want, now: Timestamp) -> Routes {
    if !primary.met(endpoints.primary) || !canary.met(endpoints.canary) {
        return Routes::Converging(format!(
            "the apex Service has {} primary and {} canary endpoints ready, wants {} and {}",
            endpoints.primary,
            endpoints.canary,
            primary.describe(),
            canary.describe()
        ));
    }
    let age = endpoints
        .changed
        .filter(|&changed| changed < now)
        .and_then(|changed| Duration::try_from(now.duration_since(changed)).ok())
        .unwrap_or_default();
    if age < SETTLE {
        return Routes::Converging(
            "the apex Service's endpoints just changed; giving kube-proxy a moment".into(),
        );
    }
    Routes::Converged
}

/// The apex Service's EndpointSlices, counted.
pub async fn read(ctx: &Context<'_>) -> Result<Endpoints, RouterError> {
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), ctx.namespace());
    let params =
        ListParams::default().labels(&format!("kubernetes.io/service-name={}", ctx.settings.apex));
    let slices = api
        .list(&params)
        .await
        .map_err(|source| RouterError::Read {
            what: format!(
                "the EndpointSlices of Service {}/{}",
                ctx.namespace(),
                ctx.settings.apex
            ),
            source: Box::new(source),
        })?;
    Ok(count(&slices.items, &ctx.settings.target))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slice(pods: &[(&str, bool)], changed: &str) -> EndpointSlice {
        let endpoints: Vec<_> = pods
            .iter()
            .map(|(pod, ready)| {
                json!({"addresses": ["10.0.0.1"], "conditions": {"ready": ready},
                "targetRef": {"kind": "Pod", "name": pod}})
            })
            .collect();
        serde_json::from_value(json!({
            "metadata": {"name": "web-x", "managedFields": [{"manager": "endpointslice-controller", "operation": "Update", "time": changed}]},
            "addressType": "IPv4",
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn endpoints_are_counted_by_deployment_and_unready_ones_skipped() {
        let slices = [
            slice(
                &[
                    ("web-primary-7d9f-abcde", true),
                    ("web-primary-7d9f-fghij", true),
                    ("web-5c4b-klmno", true),
                ],
                "2026-01-01T00:00:00Z",
            ),
            slice(
                &[("web-5c4b-pqrst", false), ("other-1-2", true)],
                "2026-01-01T00:00:05Z",
            ),
        ];
        let counted = count(&slices, "web");
        assert_eq!((counted.primary, counted.canary, counted.other), (2, 1, 1));
        assert_eq!(
            counted.changed,
            Some("2026-01-01T00:00:05Z".parse().unwrap())
        );
    }

    #[test]
    fn traffic_has_moved_once_endpoints_match_and_settle() {
        let at = |t: &str| -> Timestamp { t.parse().unwrap() };
        let endpoints = Endpoints {
            primary: 2,
            canary: 0,
            other: 0,
            changed: Some(at("2026-01-01T00:00:00Z")),
        };
        assert_eq!(
            judge(
                &endpoints,
                Want::Some,
                Want::None,
                at("2026-01-01T00:00:03Z")
            ),
            Routes::Converged
        );
        let young = judge(
            &endpoints,
            Want::Some,
            Want::None,
            at("2026-01-01T00:00:01Z"),
        );
        assert!(matches!(young, Routes::Converging(m) if m.contains("kube-proxy")));
        let wrong = judge(
            &endpoints,
            Want::Some,
            Want::Exactly(1),
            at("2026-01-01T00:01:00Z"),
        );
        assert!(matches!(wrong, Routes::Converging(m) if m.contains("2 primary and 0 canary")),);
    }
}
