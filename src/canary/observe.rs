//! What the analyzer sees of a canary's Deployments and configuration: whether a Deployment's
//! pods are ready (pure, from its status, Flagger's messages), what revision the target holds,
//! and the checksums of the ConfigMaps and Secrets it reads (a GET each).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use kube::Client;
use serde_json::Value;

use super::cluster;
use super::machine::{Pods, Revision};
use super::revision::{self, ConfigKind};

/// Whether `deployment`'s pods are ready: its controller saw the latest spec, every replica is
/// updated, `threshold` percent are available, no old ones are left.
pub fn pods(deployment: &Deployment, threshold: u32) -> Pods {
    let name = deployment.metadata.name.as_deref().unwrap_or("?");
    let status = deployment.status.clone().unwrap_or_default();
    let generation = deployment.metadata.generation.unwrap_or(0);
    if status.observed_generation.unwrap_or(0) < generation {
        return Pods::NotReady(format!(
            "the Deployment controller has not seen generation {generation} of {name} yet"
        ));
    }
    let stalled = status.conditions.iter().flatten().find(|c| {
        c.type_.as_deref() == Some("Progressing")
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    });
    if let Some(c) = stalled {
        return Pods::Failed(format!(
            "{name} exceeded its progress deadline: {}",
            c.message.as_deref().unwrap_or("")
        ));
    }
    let wanted = deployment.spec.replicas.unwrap_or(1);
    if wanted == 0 {
        return Pods::NotReady(format!("{name} is scaled to zero"));
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    let needed = ((i64::from(wanted) * i64::from(threshold) + 99) / 100).max(1);
    if updated < wanted {
        return Pods::NotReady(format!(
            "waiting for {name} rollout to finish: {updated} of {wanted} updated replicas are available"
        ));
    }
    if i64::from(available) < needed {
        return Pods::NotReady(format!(
            "waiting for {name} rollout to finish: {available} of {wanted} replicas are available (ready threshold {threshold}%)"
        ));
    }
    let old = status.replicas.unwrap_or(0) - updated;
    if old > 0 {
        return Pods::NotReady(format!(
            "waiting for {name} rollout to finish: {old} old replicas are pending termination"
        ));
    }
    Pods::Ready
}

/// The pod template of a Deployment, as JSON.
pub fn template(deployment: &Deployment) -> Value {
    serde_json::to_value(&deployment.spec.template).expect("templates serialize")
}

/// The revision `target` holds: its template's checksum and the checksums of the ConfigMaps and
/// Secrets it reads (those that exist and are not opted out of tracking).
pub async fn revision(client: &Client, target: &Deployment) -> Result<Revision, kube::Error> {
    let template = template(target);
    let namespace = target.metadata.namespace.as_deref().unwrap_or_default();
    let mut configs = BTreeMap::new();
    for reference in revision::config_refs(&template) {
        let kind = match reference.kind {
            ConfigKind::ConfigMap => "ConfigMap",
            ConfigKind::Secret => "Secret",
        };
        if let Some(object) = cluster::get(client, namespace, "v1", kind, &reference.name).await?
            && !revision::tracking_disabled(&object)
        {
            configs.insert(reference.key(), revision::config_checksum(&object));
        }
    }
    Ok(Revision {
        spec: revision::template_checksum(&template),
        configs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(replicas: i32, status: Value) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}}, "template": {}},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn readiness_follows_the_rollout_and_the_threshold() {
        let ready = deployment(
            4,
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}),
        );
        assert_eq!(pods(&ready, 100), Pods::Ready);
        let three = deployment(
            4,
            json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 3}),
        );
        assert!(matches!(pods(&three, 100), Pods::NotReady(m) if m.contains("3 of 4 replicas")));
        assert_eq!(pods(&three, 75), Pods::Ready);
        let stale = deployment(
            4,
            json!({"observedGeneration": 1, "replicas": 4, "updatedReplicas": 4, "availableReplicas": 4}),
        );
        assert!(matches!(pods(&stale, 100), Pods::NotReady(m) if m.contains("generation 2")));
        let rolling = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
        );
        assert!(
            matches!(pods(&rolling, 100), Pods::NotReady(m) if m.contains("pending termination"))
        );
        let updating = deployment(
            2,
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 2}),
        );
        assert!(matches!(pods(&updating, 100), Pods::NotReady(m) if m.contains("1 of 2 updated")));
        let zero = deployment(0, json!({"observedGeneration": 2}));
        assert!(matches!(pods(&zero, 100), Pods::NotReady(m) if m.contains("scaled to zero")));
        let stuck = deployment(
            2,
            json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "status": "False",
            "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-1 has timed out progressing."}]}),
        );
        assert!(matches!(pods(&stuck, 100), Pods::Failed(m) if m.contains("timed out")));
    }
}
