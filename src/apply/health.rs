//! Health of applied objects, in the spirit of kstatus: `assess` reads one live object and says
//! Current, InProgress or Failed, and `judge` lets another controller or the Kustomization's CEL
//! expressions decide first (pure); `wait` polls a set until all are Current, one fails, or time
//! runs out (I/O).

use std::time::Duration;

use kube::Client;
use serde_json::Value;

use super::discovery::Discovery;
use super::handoff::Handoff;
use super::health_exprs::HealthExprs;
use super::inventory::ObjectId;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    Current,
    InProgress(String),
    Failed(String),
}

fn int(object: &Value, pointer: &str) -> Option<i64> {
    object.pointer(pointer).and_then(Value::as_i64)
}

fn condition<'a>(object: &'a Value, kind: &str) -> Option<&'a Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

fn condition_is(object: &Value, kind: &str, status: &str) -> bool {
    condition(object, kind)
        .and_then(|c| c.get("status"))
        .and_then(Value::as_str)
        == Some(status)
}

fn message_of(condition: Option<&Value>) -> String {
    let field = |key| {
        condition
            .and_then(|c| c.get(key))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    match (field("reason"), field("message")) {
        ("", "") => "no reason given".into(),
        (reason, "") => reason.into(),
        ("", message) => message.into(),
        (reason, message) => format!("{reason}: {message}"),
    }
}

/// Assesses one live object.
pub fn assess(object: &Value) -> Health {
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    if let (Some(generation), Some(observed)) = (
        int(object, "/metadata/generation"),
        int(object, "/status/observedGeneration"),
    ) && observed < generation
    {
        return Health::InProgress(format!(
            "the controller has not observed generation {generation} yet"
        ));
    }
    match kind {
        "Deployment" => deployment(object),
        "ReplicaSet" => replicas(object, "/status/availableReplicas", "available"),
        "StatefulSet" => stateful_set(object),
        "DaemonSet" => daemon_set(object),
        "Job" => job(object),
        "PersistentVolumeClaim" => phase(object, "Bound"),
        "Namespace" => phase(object, "Active"),
        "Pod" => pod(object),
        "CustomResourceDefinition" if !condition_is(object, "Established", "True") => {
            Health::InProgress("not Established yet".into())
        }
        _ => generic(object),
    }
}

/// The health of `live`: the hand-off's word for the objects another controller manages, then
/// the CEL expressions for the kinds they name, then the built-in rules.
pub fn judge(
    id: &ObjectId,
    live: &Value,
    handoff: Option<&dyn Handoff>,
    exprs: &HealthExprs,
) -> Health {
    handoff
        .and_then(|h| h.health(id, live))
        .or_else(|| exprs.assess(live))
        .unwrap_or_else(|| assess(live))
}

fn wanted_replicas(object: &Value) -> i64 {
    int(object, "/spec/replicas").unwrap_or(1)
}

fn deployment(object: &Value) -> Health {
    let progressing = condition(object, "Progressing");
    if progressing
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
        == Some("ProgressDeadlineExceeded")
    {
        return Health::Failed(format!("rollout stalled: {}", message_of(progressing)));
    }
    if object.pointer("/status/observedGeneration").is_none() {
        return Health::InProgress("the Deployment controller has not seen it yet".into());
    }
    let wanted = wanted_replicas(object);
    let updated = int(object, "/status/updatedReplicas").unwrap_or(0);
    let total = int(object, "/status/replicas").unwrap_or(0);
    let available = int(object, "/status/availableReplicas").unwrap_or(0);
    if updated < wanted {
        return Health::InProgress(format!("{updated} of {wanted} replicas updated"));
    }
    if total > updated {
        return Health::InProgress(format!(
            "{} old replicas pending termination",
            total - updated
        ));
    }
    if available < wanted {
        return Health::InProgress(format!("{available} of {wanted} replicas available"));
    }
    Health::Current
}

fn replicas(object: &Value, pointer: &str, word: &str) -> Health {
    let wanted = wanted_replicas(object);
    let have = int(object, pointer).unwrap_or(0);
    if have < wanted {
        Health::InProgress(format!("{have} of {wanted} replicas {word}"))
    } else {
        Health::Current
    }
}

fn stateful_set(object: &Value) -> Health {
    if let Health::InProgress(message) = replicas(object, "/status/readyReplicas", "ready") {
        return Health::InProgress(message);
    }
    let rolling = object
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        != Some("OnDelete");
    let partitioned = int(object, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0) > 0;
    let current = object.pointer("/status/currentRevision");
    if rolling
        && !partitioned
        && current.is_some()
        && current != object.pointer("/status/updateRevision")
    {
        return Health::InProgress("rolling update in progress".into());
    }
    Health::Current
}

fn daemon_set(object: &Value) -> Health {
    if object.pointer("/status/observedGeneration").is_none() {
        return Health::InProgress("the DaemonSet controller has not seen it yet".into());
    }
    let desired = int(object, "/status/desiredNumberScheduled").unwrap_or(0);
    let updated = int(object, "/status/updatedNumberScheduled").unwrap_or(0);
    let available = int(object, "/status/numberAvailable").unwrap_or(0);
    if updated < desired {
        Health::InProgress(format!("{updated} of {desired} pods updated"))
    } else if available < desired {
        Health::InProgress(format!("{available} of {desired} pods available"))
    } else {
        Health::Current
    }
}

fn job(object: &Value) -> Health {
    if condition_is(object, "Failed", "True") {
        return Health::Failed(format!(
            "job failed: {}",
            message_of(condition(object, "Failed"))
        ));
    }
    if condition_is(object, "Complete", "True") {
        return Health::Current;
    }
    Health::InProgress("job not complete yet".into())
}

fn phase(object: &Value, wanted: &str) -> Health {
    match object.pointer("/status/phase").and_then(Value::as_str) {
        Some(phase) if phase == wanted => Health::Current,
        Some(phase) => Health::InProgress(format!("phase {phase}")),
        None => Health::InProgress("no phase yet".into()),
    }
}

fn pod(object: &Value) -> Health {
    match object.pointer("/status/phase").and_then(Value::as_str) {
        Some("Succeeded") => Health::Current,
        Some("Failed") => Health::Failed("pod failed".into()),
        Some("Running") if condition_is(object, "Ready", "True") => Health::Current,
        _ => Health::InProgress("pod not ready".into()),
    }
}

/// Objects with conventional conditions: Stalled=True fails, Ready decides, Reconciling waits.
fn generic(object: &Value) -> Health {
    if condition_is(object, "Stalled", "True") {
        return Health::Failed(message_of(condition(object, "Stalled")));
    }
    if condition(object, "Ready").is_some() {
        return if condition_is(object, "Ready", "True") {
            Health::Current
        } else {
            Health::InProgress(message_of(condition(object, "Ready")))
        };
    }
    if condition_is(object, "Reconciling", "True") {
        return Health::InProgress(message_of(condition(object, "Reconciling")));
    }
    Health::Current
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("{id} failed: {reason}")]
    Failed { id: ObjectId, reason: String },
    #[error("timed out after {timeout:?} waiting for: {}", .waiting.join("; "))]
    Timeout {
        timeout: Duration,
        waiting: Vec<String>,
    },
    #[error("reading {id} failed: {reason}")]
    Read { id: ObjectId, reason: String },
}

/// Polls `ids` until all are Current; fails fast on the first Failed one. `progress` is called
/// after each round with what is still not ready (for terminals and logs).
pub async fn wait(
    client: &Client,
    discovery: &Discovery,
    ids: &[(ObjectId, String)],
    timeout: Duration,
    progress: impl FnMut(&[String]),
) -> Result<(), HealthError> {
    wait_with(
        client,
        discovery,
        ids,
        timeout,
        None,
        &HealthExprs::default(),
        progress,
    )
    .await
}

/// `wait`, letting the hand-off and the Kustomization's CEL expressions decide first (see
/// `judge`).
pub async fn wait_with(
    client: &Client,
    discovery: &Discovery,
    ids: &[(ObjectId, String)],
    timeout: Duration,
    handoff: Option<&dyn Handoff>,
    exprs: &HealthExprs,
    mut progress: impl FnMut(&[String]),
) -> Result<(), HealthError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let mut waiting = Vec::new();
        for (id, version) in ids {
            let read = |reason: String| HealthError::Read {
                id: id.clone(),
                reason,
            };
            let resolved = discovery
                .resolve(&id.group, version, &id.kind)
                .await
                .map_err(|e| read(e.to_string()))?;
            let api = resolved.api(client.clone(), &id.namespace);
            let live = api
                .get_opt(&id.name)
                .await
                .map_err(|e| read(e.to_string()))?;
            let health = match live {
                Some(live) => {
                    let live = serde_json::to_value(live).expect("objects serialize");
                    judge(id, &live, handoff, exprs)
                }
                None => Health::InProgress("not found".into()),
            };
            match health {
                Health::Current => {}
                Health::InProgress(reason) => waiting.push(format!("{id}: {reason}")),
                Health::Failed(reason) => {
                    return Err(HealthError::Failed {
                        id: id.clone(),
                        reason,
                    });
                }
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        progress(&waiting);
        if tokio::time::Instant::now() >= deadline {
            return Err(HealthError::Timeout { timeout, waiting });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy(spec_replicas: i64, status: Value) -> Value {
        json!({"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": spec_replicas}, "status": status})
    }

    #[test]
    fn deployments_are_current_when_updated_and_available() {
        let ready = deploy(
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(assess(&ready), Health::Current);
        let stale = deploy(
            2,
            json!({"observedGeneration": 1, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert!(matches!(assess(&stale), Health::InProgress(m) if m.contains("generation 2")));
        let rolling = deploy(
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert!(matches!(assess(&rolling), Health::InProgress(m) if m.contains("old replicas")));
        let stalled = deploy(
            2,
            json!({"observedGeneration": 2, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "too slow"}]}),
        );
        assert!(matches!(assess(&stalled), Health::Failed(m) if m.contains("too slow")));
    }

    #[test]
    fn expressions_decide_for_the_kinds_they_name() {
        let check = |kind: &str| crate::api::kustomization::CustomHealthCheck {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            current: "status.?updatedReplicas.orValue(0) >= 1".into(),
            ..Default::default()
        };
        let exprs = HealthExprs::compile(&[check("Deployment")]).unwrap();
        let id = ObjectId::of(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}})).unwrap().0;
        let mut rolling = deploy(2, json!({"observedGeneration": 2, "updatedReplicas": 1}));
        rolling["apiVersion"] = json!("apps/v1");
        assert_eq!(judge(&id, &rolling, None, &exprs), Health::Current);
        assert!(matches!(
            judge(&id, &rolling, None, &HealthExprs::default()),
            Health::InProgress(_)
        ));
        let others = HealthExprs::compile(&[check("StatefulSet")]).unwrap();
        assert_eq!(judge(&id, &rolling, None, &others), assess(&rolling));
    }

    #[test]
    fn jobs_complete_or_fail() {
        let complete = json!({"kind": "Job", "status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        let failed = json!({"kind": "Job", "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}});
        assert_eq!(assess(&complete), Health::Current);
        assert!(matches!(assess(&failed), Health::Failed(m) if m.contains("BackoffLimitExceeded")));
        assert!(matches!(
            assess(&json!({"kind": "Job", "status": {}})),
            Health::InProgress(_)
        ));
    }

    #[test]
    fn other_kinds() {
        assert_eq!(
            assess(&json!({"kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}})),
            Health::Current
        );
        assert!(matches!(
            assess(&json!({"kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}})),
            Health::InProgress(_)
        ));
        assert_eq!(
            assess(&json!({"kind": "ConfigMap", "data": {}})),
            Health::Current
        );
        let sts = json!({"kind": "StatefulSet", "spec": {"replicas": 2}, "status": {"readyReplicas": 2, "currentRevision": "a", "updateRevision": "b"}});
        assert!(matches!(assess(&sts), Health::InProgress(m) if m.contains("rolling")));
        let ds = json!({"kind": "DaemonSet", "status": {"observedGeneration": 1, "desiredNumberScheduled": 1, "updatedNumberScheduled": 1, "numberAvailable": 0}});
        assert!(matches!(assess(&ds), Health::InProgress(_)));
        let custom = json!({"kind": "Widget", "metadata": {"generation": 3}, "status": {"observedGeneration": 3,
            "conditions": [{"type": "Ready", "status": "False", "reason": "Waiting", "message": "for db"}]}});
        assert_eq!(
            assess(&custom),
            Health::InProgress("Waiting: for db".into())
        );
        let stalled = json!({"kind": "Widget", "status": {"conditions": [{"type": "Stalled", "status": "True", "message": "bad spec"}]}});
        assert_eq!(assess(&stalled), Health::Failed("bad spec".into()));
    }
}
