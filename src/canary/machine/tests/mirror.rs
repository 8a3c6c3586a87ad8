//! Traffic mirroring and session affinity through whole analyses: what the route actions ask
//! of the router at each step, and the Events that say so.

use super::*;

/// Each change of traffic the steps asked for, in order.
fn traffic_of(steps: &[Step]) -> Vec<Traffic> {
    let mut seen: Vec<Traffic> = steps
        .iter()
        .flat_map(|s| &s.actions)
        .filter_map(|a| match a {
            Action::Route(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    seen.dedup();
    seen
}

fn mirrored(weight: u32) -> Traffic {
    Traffic {
        mirror: true,
        ..Traffic::weight(weight)
    }
}

fn istio(analysis: serde_json::Value) -> Settings {
    settings_with(json!({"provider": "istio"}), analysis)
}

fn mirrored_progressive() -> Settings {
    istio(
        json!({"interval": "10s", "threshold": 2, "stepWeights": [20, 50],
        "mirror": true, "mirrorWeight": 40,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}],
        "webhooks": [{"name": "warm", "type": "pre-rollout", "url": "http://t/"}]}),
    )
}

#[test]
fn a_mirrored_progressive_canary_mirrors_for_one_step_then_shifts_weight() {
    let mut sim = Sim::initialized(mirrored_progressive());
    sim.revision = rev("v2");
    let mut steps = vec![sim.tick()];
    assert_eq!(sim.phase(), Phase::Progressing);
    sim.later(10);

    // The first tick asks the pre-rollout webhooks, measures nothing and mirrors.
    steps.push(sim.tick());
    assert!(sim.asked.contains(&Need::Hooks(HookType::PreRollout)));
    assert!(!sim.asked.contains(&Need::Checks), "{:?}", sim.asked);
    assert_eq!((sim.status.canary_weight, sim.status.iterations), (0, 1));
    assert_eq!(traffic(&sim.s, &sim.status), mirrored(0));
    assert_eq!(
        sim.events.last().unwrap(),
        "Start traffic mirroring to web-canary.shop (40 percent of requests)"
    );
    assert!(sim.ready().message.starts_with("Start traffic mirroring"));
    sim.later(10);

    // The next measures what the mirrored requests did, then shifts the first weight.
    steps.push(sim.tick());
    assert!(sim.asked.contains(&Need::Checks), "{:?}", sim.asked);
    assert_eq!(sim.status.canary_weight, 20);
    let stop = sim
        .events
        .iter()
        .position(|e| e == "Stop traffic mirroring to web-canary.shop")
        .expect("mirroring stops");
    assert!(sim.events[stop + 1].starts_with("Advance web.shop canary weight 20"));
    sim.later(10);

    steps.extend(sim.run_until(Phase::Succeeded, 20));
    assert_eq!(
        traffic_of(&steps),
        vec![
            Traffic::weight(0),
            mirrored(0),
            Traffic::weight(20),
            Traffic::weight(50),
            Traffic::weight(0),
        ]
    );
    assert_eq!(
        sim.events
            .iter()
            .filter(|e| e.contains("traffic mirroring"))
            .count(),
        2,
        "{:#?}",
        sim.events
    );
}

#[test]
fn failed_checks_while_mirroring_keep_mirroring_until_the_rollback_ends_it() {
    let mut sim = Sim::initialized(mirrored_progressive());
    sim.revision = rev("v2");
    sim.tick();
    sim.later(10);
    sim.tick();
    assert_eq!(traffic(&sim.s, &sim.status), mirrored(0));
    sim.checks = vec![fail("request-success-rate", 80.0)];
    sim.later(10);
    let held = sim.tick();
    assert_eq!(sim.status.failed_checks, 1);
    assert_eq!(traffic_of(&[held]), vec![mirrored(0)]);
    sim.later(10);
    let failed = sim.tick();
    assert_eq!(sim.phase(), Phase::Failed);
    assert_eq!(traffic_of(&[failed]), vec![Traffic::weight(0)]);
    assert!(
        sim.events
            .contains(&"Stop traffic mirroring to web-canary.shop".to_string())
    );
}

#[test]
fn a_mirrored_blue_green_canary_mirrors_every_iteration_then_promotes() {
    let s = istio(
        json!({"interval": "10s", "threshold": 2, "iterations": 3, "mirror": true,
        "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}]}),
    );
    let mut sim = Sim::initialized(s);
    sim.revision = rev("v2");
    let steps = sim.run_until(Phase::Succeeded, 20);
    assert_eq!(
        traffic_of(&steps),
        vec![Traffic::weight(0), mirrored(0), Traffic::weight(0)]
    );
    let at = |text: &str| sim.events.iter().position(|e| e.starts_with(text)).unwrap();
    assert!(
        at("Start traffic mirroring to web-canary.shop")
            < at("Advance web.shop canary iteration 2/3")
    );
    assert!(at("Advance web.shop canary iteration 3/3") < at("Stop traffic mirroring"));
    assert!(at("Stop traffic mirroring") <= at("Copying web.shop template spec"));
}

#[test]
fn session_affinity_cookies_follow_the_revision_while_the_canary_takes_traffic() {
    let s = istio(
        json!({"interval": "10s", "threshold": 2, "stepWeights": [20, 50],
        "sessionAffinity": {"cookieName": "canary", "primaryCookieName": "primary"}}),
    );
    let mut sim = Sim::initialized(s);
    sim.revision = rev("v2");
    let steps = sim.run_until(Phase::Succeeded, 20);
    let sticky = |weight: u32| Traffic {
        cookies: Some(Cookies {
            canary: "v2".into(),
            primary: format!("v2-{weight}"),
        }),
        ..Traffic::weight(weight)
    };
    assert_eq!(
        traffic_of(&steps),
        vec![
            Traffic::weight(0),
            sticky(20),
            sticky(50),
            Traffic::weight(0)
        ],
        "cookies only while the canary takes traffic; the primary's changes each step"
    );
    // Another revision, another cookie.
    sim.revision = rev("v3");
    sim.later(10);
    let steps = sim.run_until(Phase::Succeeded, 20);
    let cookies: Vec<String> = traffic_of(&steps)
        .into_iter()
        .filter_map(|t| Some(t.cookies?.canary))
        .collect();
    assert_eq!(cookies, ["v3", "v3"]);
}
