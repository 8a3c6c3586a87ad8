//! The spec's traffic shaping besides weights, checked: traffic mirroring
//! (`analysis.mirror`, `mirrorWeight`) and session affinity (`analysis.sessionAffinity`), each
//! only where the router and the strategy can express it. Pure.

use super::{InvalidSpec, Routing, Strategy, invalid};
use crate::api::canary::{CanaryAnalysis, SessionAffinity};

/// Lifetime of the session affinity cookies, in seconds, as Flagger's default.
pub const DEFAULT_COOKIE_MAX_AGE: u64 = 86400;

/// Traffic mirroring (`analysis.mirror`): requests copied to the canary, its answers dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mirror {
    /// Percentage of requests copied (`analysis.mirrorWeight`); `None`: all of them.
    pub percent: Option<u32>,
}

/// Session affinity (`analysis.sessionAffinity`): the cookies that keep a client where it landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Affinity {
    /// Set on the canary's answers; requests carrying it go to the canary.
    pub cookie: String,
    /// Set on the primary's answers; requests carrying it go to the primary (until the next step).
    pub primary_cookie: Option<String>,
    /// Lifetime of the cookies, in seconds.
    pub max_age: u64,
}

/// Traffic mirroring, where the router can copy requests and the strategy has a step to copy
/// them in.
pub(super) fn mirror(
    analysis: &CanaryAnalysis,
    routing: Routing,
    strategy: &Strategy,
) -> Result<Option<Mirror>, InvalidSpec> {
    if !analysis.mirror {
        return Ok(None);
    }
    if !matches!(
        routing,
        Routing::Istio | Routing::GatewayApi | Routing::Traefik
    ) {
        return Err(invalid(
            "analysis.mirror",
            format!(
                "the {} provider cannot mirror traffic; use provider istio, gatewayapi:v1 or traefik",
                routing.provider()
            ),
        ));
    }
    if matches!(strategy, Strategy::AbTesting { .. }) {
        return Err(invalid(
            "analysis.mirror",
            "mirroring cannot be combined with A/B testing (analysis.match): drop one of them",
        ));
    }
    let percent = match analysis.mirror_weight {
        None => None,
        Some(w) if (1..=100).contains(&w) => Some(w as u32),
        Some(w) => {
            return Err(invalid(
                "analysis.mirrorWeight",
                format!("{w} is not a percentage from 1 to 100"),
            ));
        }
    };
    Ok(Some(Mirror { percent }))
}

/// Session affinity, where the router can route by cookie and traffic shifts progressively.
pub(super) fn affinity(
    affinity: Option<&SessionAffinity>,
    routing: Routing,
    strategy: &Strategy,
) -> Result<Option<Affinity>, InvalidSpec> {
    let Some(affinity) = affinity else {
        return Ok(None);
    };
    if !matches!(routing, Routing::Istio | Routing::GatewayApi) {
        return Err(invalid(
            "analysis.sessionAffinity",
            format!(
                "the {} provider cannot route by cookie; use provider istio or gatewayapi:v1",
                routing.provider()
            ),
        ));
    }
    if !matches!(strategy, Strategy::Progressive { .. }) {
        return Err(invalid(
            "analysis.sessionAffinity",
            "session affinity needs progressive traffic shifting (stepWeight or stepWeights), not iterations",
        ));
    }
    let cookie = |field: &str, name: &str| {
        // A cookie name is an HTTP token (RFC 6265).
        let token = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if token {
            Ok(name.to_string())
        } else {
            Err(invalid(
                format!("analysis.sessionAffinity.{field}"),
                format!("{name:?} is not a cookie name (letters, digits and !#$%&'*+-.^_`|~)"),
            ))
        }
    };
    let canary = cookie("cookieName", &affinity.cookie_name)?;
    let primary = affinity
        .primary_cookie_name
        .as_deref()
        .map(|name| cookie("primaryCookieName", name))
        .transpose()?;
    if primary.as_ref() == Some(&canary) {
        return Err(invalid(
            "analysis.sessionAffinity.primaryCookieName",
            "must differ from cookieName",
        ));
    }
    let max_age = match affinity.max_age {
        None => DEFAULT_COOKIE_MAX_AGE,
        Some(age) if age > 0 => age as u64,
        Some(age) => {
            return Err(invalid(
                "analysis.sessionAffinity.maxAge",
                format!("{age} is not a positive number of seconds"),
            ));
        }
    };
    Ok(Some(Affinity {
        cookie: canary,
        primary_cookie: primary,
        max_age,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::settings;
    use super::super::tests::spec;
    use super::*;
    use serde_json::json;

    #[test]
    fn mirroring_and_session_affinity_need_a_router_and_strategy_that_can_express_them() {
        let with = |provider: &str, analysis: serde_json::Value| {
            let mut s = spec(analysis);
            s.provider = Some(provider.into());
            s.service.gateway_refs = vec![Default::default()];
            s.service.gateway_refs[0].name = "gw".into();
            s.ingress_ref = serde_json::from_value(json!({"name": "web"})).unwrap();
            settings(&s).map_err(|e| e.to_string())
        };
        let s = with(
            "istio",
            json!({"stepWeight": 10, "mirror": true, "mirrorWeight": 30}),
        )
        .unwrap();
        assert_eq!(s.mirror, Some(Mirror { percent: Some(30) }));
        assert_eq!(
            with("traefik", json!({"iterations": 2, "mirror": true}))
                .unwrap()
                .mirror,
            Some(Mirror { percent: None })
        );
        for provider in ["kubernetes", "nginx", "contour"] {
            let err = with(provider, json!({"stepWeight": 10, "mirror": true})).unwrap_err();
            assert!(
                err.starts_with("spec.analysis.mirror:") && err.contains(provider),
                "{err}"
            );
        }
        let ab = with(
            "istio",
            json!({"iterations": 2, "mirror": true, "match": [{"headers": {"x": {"exact": "1"}}}]}),
        )
        .unwrap_err();
        assert!(ab.contains("analysis.mirror") && ab.contains("A/B"), "{ab}");
        let weight = with(
            "istio",
            json!({"stepWeight": 10, "mirror": true, "mirrorWeight": 0}),
        );
        assert!(weight.unwrap_err().contains("analysis.mirrorWeight: 0"));

        let sticky = with(
            "gatewayapi:v1",
            json!({"stepWeight": 10, "sessionAffinity": {"cookieName": "canary"}}),
        )
        .unwrap();
        assert_eq!(
            sticky.affinity,
            Some(Affinity {
                cookie: "canary".into(),
                primary_cookie: None,
                max_age: DEFAULT_COOKIE_MAX_AGE
            })
        );
        let traefik = with(
            "traefik",
            json!({"stepWeight": 10, "sessionAffinity": {"cookieName": "canary"}}),
        )
        .unwrap_err();
        assert!(traefik.contains("analysis.sessionAffinity") && traefik.contains("traefik"));
        let bg = with(
            "istio",
            json!({"iterations": 2, "sessionAffinity": {"cookieName": "canary"}}),
        )
        .unwrap_err();
        assert!(bg.contains("progressive"), "{bg}");
        for (affinity, field) in [
            (json!({"cookieName": "a b"}), "cookieName"),
            (json!({"cookieName": ""}), "cookieName"),
            (
                json!({"cookieName": "a", "primaryCookieName": "a"}),
                "primaryCookieName",
            ),
            (json!({"cookieName": "a", "maxAge": 0}), "maxAge"),
        ] {
            let err = with(
                "istio",
                json!({"stepWeight": 10, "sessionAffinity": affinity}),
            )
            .unwrap_err();
            assert!(
                err.starts_with(&format!("spec.analysis.sessionAffinity.{field}")),
                "{err}"
            );
        }
    }
}
