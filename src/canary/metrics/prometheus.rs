//! The Prometheus metric provider: an instant query (`/api/v1/query`) with basic or bearer
//! authentication, whose first sample is the value. `answer` reads the HTTP answer (pure);
//! `query` does the request.

use std::time::Duration;

use serde_json::Value;

use super::{Auth, MetricError, MetricProvider, ProviderConfig};

/// How long a query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP clients shared by every query: one verifying certificates, one not
/// (`insecureSkipVerify`). Cheap to clone.
#[derive(Clone)]
pub struct Clients {
    verified: reqwest::Client,
    insecure: reqwest::Client,
}

impl Clients {
    pub fn new() -> Clients {
        let build = |insecure: bool| {
            crate::runtime::http::client_builder()
                .timeout(QUERY_TIMEOUT)
                .danger_accept_invalid_certs(insecure)
                .build()
                .expect("an HTTP client with the default TLS settings builds")
        };
        Clients {
            verified: build(false),
            insecure: build(true),
        }
    }

    pub fn client(&self, insecure: bool) -> &reqwest::Client {
        if insecure {
            &self.insecure
        } else {
            &self.verified
        }
    }
}

impl Default for Clients {
    fn default() -> Self {
        Clients::new()
    }
}

pub struct Prometheus {
    config: ProviderConfig,
    client: reqwest::Client,
}

impl Prometheus {
    pub fn new(config: ProviderConfig, clients: &Clients) -> Prometheus {
        Prometheus {
            client: clients.client(config.insecure_skip_verify).clone(),
            config,
        }
    }
}

impl MetricProvider for Prometheus {
    async fn query(&self, query: &str) -> Result<Option<f64>, MetricError> {
        let address = self.config.address.trim_end_matches('/').to_string();
        let unreachable = |e: reqwest::Error| MetricError::Unreachable {
            address: address.clone(),
            reason: crate::runtime::text::error_chain(&e),
        };
        let mut request = self
            .client
            .get(format!("{address}/api/v1/query"))
            .query(&[("query", query)]);
        request = match &self.config.auth {
            Some(Auth::Basic { username, password }) => {
                request.basic_auth(username, Some(password))
            }
            Some(Auth::Bearer(token)) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(unreachable)?;
        answer(&address, status, &body)
    }
}

/// Reads Prometheus's answer: the first sample's value, `None` for an empty result.
pub fn answer(address: &str, status: u16, body: &str) -> Result<Option<f64>, MetricError> {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let field = |key: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if field("status").as_deref() == Some("error") {
        let reason = format!(
            "{}: {}",
            field("errorType").unwrap_or_else(|| "error".into()),
            field("error").unwrap_or_default()
        );
        return Err(if (400..500).contains(&status) {
            MetricError::Rejected {
                address: address.into(),
                reason,
            }
        } else {
            MetricError::Unreachable {
                address: address.into(),
                reason,
            }
        });
    }
    if status >= 500 || status == 429 {
        return Err(MetricError::Unreachable {
            address: address.into(),
            reason: format!("HTTP {status}"),
        });
    }
    let garbage = |reason: String| MetricError::Garbage {
        address: address.into(),
        reason,
    };
    let Some(parsed) = parsed.filter(|_| status == 200) else {
        let start: String = body.chars().take(80).collect();
        return Err(garbage(format!("HTTP {status}: {start:?}")));
    };
    let data = parsed
        .get("data")
        .ok_or_else(|| garbage("no data field".into()))?;
    let sample = match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => match data.get("result").and_then(Value::as_array) {
            Some(series) if series.is_empty() => return Ok(None),
            Some(series) => series[0].get("value"),
            None => None,
        },
        Some("scalar") => data.get("result"),
        Some(other) => {
            return Err(garbage(format!(
                "a {other} result; the query must return one value"
            )));
        }
        None => None,
    };
    let text = sample
        .and_then(|s| s.get(1))
        .and_then(Value::as_str)
        .ok_or_else(|| garbage("no sample value".into()))?;
    let value: f64 = match text {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        text => text
            .parse()
            .map_err(|_| garbage(format!("{text:?} is not a number")))?,
    };
    Ok(if value.is_nan() { None } else { Some(value) })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: &str = "http://prometheus:9090";

    #[test]
    fn vectors_and_scalars_give_their_first_value() {
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1767225600.1,"99.5"]}]}}"#;
        assert_eq!(answer(AT, 200, vector), Ok(Some(99.5)));
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1767225600.1,"3"]}}"#;
        assert_eq!(answer(AT, 200, scalar), Ok(Some(3.0)));
    }

    #[test]
    fn empty_results_and_nan_are_no_data() {
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(answer(AT, 200, empty), Ok(None));
        let nan = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"NaN"]}]}}"#;
        assert_eq!(answer(AT, 200, nan), Ok(None));
    }

    #[test]
    fn bad_queries_are_rejected_and_outages_unreachable() {
        let bad = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error: unexpected \"}\""}"#;
        let err = answer(AT, 400, bad).unwrap_err();
        assert!(
            matches!(&err, MetricError::Rejected { reason, .. } if reason.starts_with("bad_data: invalid parameter")),
            "{err:?}"
        );
        assert!(matches!(
            answer(AT, 503, "Service Unavailable"),
            Err(MetricError::Unreachable { .. })
        ));
        assert!(matches!(
            answer(AT, 200, "<html>hello</html>"),
            Err(MetricError::Garbage { .. })
        ));
        let matrix = r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(
            matches!(answer(AT, 200, matrix), Err(MetricError::Garbage { reason, .. }) if reason.contains("matrix"))
        );
    }
}
