//! A Canary's own alerts (Flagger's `analysis.alerts`): how severe each Event of the analysis is,
//! which alerts hear it, and what its notifications carry. Pure; the notification dispatcher delivers them through the
//! Providers they name, as it delivers Alerts.

use std::collections::BTreeMap;

use super::machine::{CanaryReason, Note};
use super::spec::{Settings, Strategy};
use crate::api::canary::{CanaryAlert, CanaryStatus};
use crate::runtime::events::Recipient;

/// How severe an Event of the analysis is, and the least an alert hears (Flagger's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warn,
    Error,
}

impl Severity {
    /// `info` (also when not given), `warn` or `error`.
    pub fn parse(severity: Option<&str>) -> Option<Severity> {
        match severity.unwrap_or("info") {
            "info" => Some(Severity::Info),
            "warn" => Some(Severity::Warn),
            "error" => Some(Severity::Error),
            _ => None,
        }
    }
}

/// One alert of `analysis.alerts`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub name: String,
    pub severity: Severity,
    pub provider: String,
    /// Defaults to the Canary's namespace.
    pub provider_namespace: Option<String>,
}

impl Alert {
    /// The alert as `analysis.alerts` gives it; `None` for a severity that is not a level.
    pub fn of(alert: &CanaryAlert) -> Option<Alert> {
        Some(Alert {
            name: alert.name.clone(),
            severity: Severity::parse(alert.severity.as_deref())?,
            provider: alert.provider_ref.name.clone(),
            provider_namespace: alert.provider_ref.namespace.clone(),
        })
    }
}

/// How severe `note` is: a Normal Event is info; a Warning is an error when the analysis failed
/// (a rollback, a target or template that does not exist) and a warning otherwise (a halted
/// step, a wait).
pub fn severity(note: &Note) -> Severity {
    match (note.warning, note.reason) {
        (false, _) => Severity::Info,
        (
            true,
            CanaryReason::RolledBack
            | CanaryReason::Failed
            | CanaryReason::TargetNotFound
            | CanaryReason::MetricTemplateNotFound,
        ) => Severity::Error,
        (true, _) => Severity::Warn,
    }
}

/// What a Canary's notifications carry besides the message (which names the metric values that
/// decided): where the analysis stands once the step is written.
pub fn metadata(status: &CanaryStatus, s: &Settings) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        ("target".to_string(), format!("Deployment/{}", s.target)),
        (
            "phase".to_string(),
            status.phase.unwrap_or_default().as_str().to_string(),
        ),
        ("canaryWeight".to_string(), status.canary_weight.to_string()),
        (
            "failedChecks".to_string(),
            format!("{}/{}", status.failed_checks, s.threshold),
        ),
    ]);
    if let Some(of) = s.iterations() {
        out.insert("iterations".into(), format!("{}/{of}", status.iterations));
    } else if let Strategy::Progressive { weights } = &s.strategy {
        let steps: Vec<String> = weights.iter().map(u32::to_string).collect();
        out.insert("weights".into(), steps.join(","));
    }
    out
}

/// The alerts that hear `note` (those whose severity it reaches: `info` hears everything,
/// `warn` warnings and errors, `error` errors only), as recipients of a Canary in `namespace`.
pub fn recipients(alerts: &[Alert], note: &Note, namespace: &str) -> Vec<Recipient> {
    let level = severity(note);
    alerts
        .iter()
        .filter(|alert| level >= alert.severity)
        .map(|alert| Recipient {
            name: alert.name.clone(),
            namespace: alert
                .provider_namespace
                .clone()
                .unwrap_or_else(|| namespace.to_string()),
            provider: alert.provider.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, severity: Severity) -> Alert {
        Alert {
            name: name.into(),
            severity,
            provider: format!("{name}-provider"),
            provider_namespace: None,
        }
    }

    fn note(warning: bool, reason: CanaryReason) -> Note {
        Note {
            warning,
            reason,
            message: String::new(),
        }
    }

    fn heard_by(alerts: &[Alert], note: &Note) -> Vec<String> {
        recipients(alerts, note, "shop")
            .into_iter()
            .map(|r| r.name)
            .collect()
    }

    #[test]
    fn each_alert_hears_what_reaches_its_severity() {
        let alerts = [
            alert("all", Severity::Info),
            alert("warnings", Severity::Warn),
            alert("errors", Severity::Error),
        ];
        let promoted = note(false, CanaryReason::Succeeded);
        let halted = note(true, CanaryReason::Halted);
        let rolled_back = note(true, CanaryReason::RolledBack);
        assert_eq!(severity(&promoted), Severity::Info);
        assert_eq!(severity(&halted), Severity::Warn);
        assert_eq!(severity(&rolled_back), Severity::Error);
        assert_eq!(heard_by(&alerts, &promoted), ["all"]);
        assert_eq!(heard_by(&alerts, &halted), ["all", "warnings"]);
        assert_eq!(
            heard_by(&alerts, &rolled_back),
            ["all", "warnings", "errors"]
        );
    }

    #[test]
    fn providers_default_to_the_canary_namespace() {
        let mut elsewhere = alert("elsewhere", Severity::Info);
        elsewhere.provider_namespace = Some("ops".into());
        let got = recipients(
            &[alert("here", Severity::Info), elsewhere],
            &note(false, CanaryReason::Initialized),
            "shop",
        );
        assert_eq!(
            got,
            [
                Recipient {
                    name: "here".into(),
                    namespace: "shop".into(),
                    provider: "here-provider".into()
                },
                Recipient {
                    name: "elsewhere".into(),
                    namespace: "ops".into(),
                    provider: "elsewhere-provider".into()
                },
            ]
        );
    }

    #[test]
    fn notifications_carry_the_phase_the_weights_and_the_failed_checks() {
        let spec: crate::api::canary::CanarySpec = serde_json::from_value(serde_json::json!({
            "targetRef": {"name": "web"}, "service": {"port": 80},
            "analysis": {"threshold": 3, "maxWeight": 30, "stepWeight": 10},
        }))
        .unwrap();
        let s = crate::canary::spec::settings(&spec).unwrap();
        let status = CanaryStatus {
            phase: Some(crate::api::canary::Phase::Progressing),
            canary_weight: 20,
            failed_checks: 1,
            ..Default::default()
        };
        let got = metadata(&status, &s);
        assert_eq!(got["target"], "Deployment/web");
        assert_eq!(got["phase"], "Progressing");
        assert_eq!(got["canaryWeight"], "20");
        assert_eq!(got["failedChecks"], "1/3");
        assert_eq!(got["weights"], "10,20,30");
    }

    #[test]
    fn severities_are_flaggers_words() {
        assert_eq!(Severity::parse(None), Some(Severity::Info));
        assert_eq!(Severity::parse(Some("warn")), Some(Severity::Warn));
        assert_eq!(Severity::parse(Some("error")), Some(Severity::Error));
        assert_eq!(Severity::parse(Some("critical")), None);
    }
}
