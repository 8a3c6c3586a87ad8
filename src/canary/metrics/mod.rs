//! Metric checks: one trait (`MetricProvider`), one file per provider (`prometheus`), one
//! factory (`for_type`); `template` renders queries with Flagger's variables and holds the
//! built-in queries; `judge` turns an answer into a check outcome (pure). No data is never a
//! pass: it fails the check, or holds the canary when the metric says `noData: Pause`.

pub mod prometheus;
pub mod template;

use super::machine::CheckOutcome;
use super::spec::Metric;
use crate::api::canary::NoData;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricError {
    /// The server could not be asked or did not answer (refused, timed out, 5xx).
    #[error("{address} is unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    /// The server refused the query itself (invalid PromQL, a query that cannot run).
    #[error("{address} rejected the query: {reason}")]
    Rejected { address: String, reason: String },
    /// The answer was not what the provider's API returns.
    #[error("{address} answered something that is not a query result: {reason}")]
    Garbage { address: String, reason: String },
    #[error("the provider type {0:?} is not supported (prometheus is)")]
    UnknownType(String),
    #[error(
        "the provider has no address (set provider.address, spec.metricsServer or the agent's --metrics-server)"
    )]
    NoAddress,
}

/// How to authenticate to a metric provider (from its `secretRef`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    Basic { username: String, password: String },
    Bearer(String),
}

/// Where and how to ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub address: String,
    pub auth: Option<Auth>,
    pub insecure_skip_verify: bool,
}

/// A metric provider answers a query with one number, or none.
pub trait MetricProvider: Send + Sync {
    fn query(&self, query: &str) -> impl Future<Output = Result<Option<f64>, MetricError>> + Send;
}

/// The provider of a type; only `prometheus` is implemented.
pub fn for_type(
    type_: &str,
    config: ProviderConfig,
    http: &prometheus::Clients,
) -> Result<prometheus::Prometheus, MetricError> {
    match type_ {
        "prometheus" => Ok(prometheus::Prometheus::new(config, http)),
        other => Err(MetricError::UnknownType(other.into())),
    }
}

/// What an answer means for a check of `metric`.
pub fn judge(metric: &Metric, answer: Result<Option<f64>, MetricError>) -> CheckOutcome {
    let pause = metric.no_data == NoData::Pause;
    match answer {
        Ok(Some(value)) if !value.is_nan() => CheckOutcome::Value {
            value,
            accepted: metric.accepts(value),
            range: metric.range(),
        },
        Ok(_) => CheckOutcome::NoData {
            reason: "the query returned no data (is the canary receiving traffic?)".into(),
            pause,
        },
        Err(e @ (MetricError::Unreachable { .. } | MetricError::Garbage { .. })) => {
            CheckOutcome::NoData {
                reason: e.to_string(),
                pause,
            }
        }
        Err(e) => CheckOutcome::Broken(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::spec::{Builtin, Query};

    fn metric(no_data: NoData) -> Metric {
        Metric {
            name: "request-success-rate".into(),
            query: Query::Builtin(Builtin::RequestSuccessRate),
            interval: "1m".into(),
            min: Some(99.0),
            max: None,
            variables: Default::default(),
            no_data,
        }
    }

    #[test]
    fn values_are_judged_against_the_range() {
        let m = metric(NoData::Fail);
        assert!(matches!(
            judge(&m, Ok(Some(99.5))),
            CheckOutcome::Value { accepted: true, .. }
        ));
        assert!(matches!(
            judge(&m, Ok(Some(98.0))),
            CheckOutcome::Value {
                accepted: false,
                ..
            }
        ));
    }

    #[test]
    fn no_data_and_an_unreachable_server_are_never_a_pass() {
        for policy in [NoData::Fail, NoData::Pause] {
            let m = metric(policy);
            let pause = policy == NoData::Pause;
            for answer in [
                Ok(None),
                Ok(Some(f64::NAN)),
                Err(MetricError::Unreachable {
                    address: "http://p".into(),
                    reason: "connection refused".into(),
                }),
                Err(MetricError::Garbage {
                    address: "http://p".into(),
                    reason: "not JSON".into(),
                }),
            ] {
                let outcome = judge(&m, answer.clone());
                assert!(
                    matches!(&outcome, CheckOutcome::NoData { pause: p, .. } if *p == pause),
                    "{answer:?} -> {outcome:?}"
                );
            }
        }
        let rejected = judge(
            &metric(NoData::Pause),
            Err(MetricError::Rejected {
                address: "http://p".into(),
                reason: "parse error".into(),
            }),
        );
        assert!(matches!(rejected, CheckOutcome::Broken(m) if m.contains("parse error")));
    }
}
