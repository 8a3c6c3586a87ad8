//! The kinds a Canary can target, as the analysis sees them. A Deployment is itself; a DaemonSet
//! is seen as a Deployment with one replica per node it runs on: its template without the
//! analyzer's scale-to-zero node selector, its replicas zero while that selector is set (no node
//! carries the label, so no pod runs), its status counted in scheduled, updated and available
//! pods. The object itself, as JSON, goes to the builders of the primary and of the analyzer's
//! fields. Pure.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, DeploymentSpec, DeploymentStatus};
use serde_json::{Value, json};

/// The node selector that scales a DaemonSet to zero: no node has the label, so no pod runs
/// (Flagger's way, with its own key).
pub const SCALE_TO_ZERO: &str = "sluice.dev/scale-to-zero";

/// A target or primary: how the analysis sees it, and the object as JSON.
#[derive(Debug, Clone)]
pub struct Workload {
    pub view: Arc<Deployment>,
    /// With `apiVersion` and `kind`, and without the scale-to-zero selector.
    pub object: Value,
}

impl Workload {
    pub fn of_deployment(deployment: Arc<Deployment>) -> Workload {
        let mut object = serde_json::to_value(&*deployment).expect("objects serialize");
        object["apiVersion"] = json!("apps/v1");
        object["kind"] = json!("Deployment");
        Workload {
            view: deployment,
            object,
        }
    }

    pub fn of_daemon_set(daemon_set: &DaemonSet) -> Workload {
        let mut object = serde_json::to_value(daemon_set).expect("objects serialize");
        object["apiVersion"] = json!("apps/v1");
        object["kind"] = json!("DaemonSet");
        let scaled_to_zero = without_scale_to_zero(&mut object["spec"]["template"]);
        let spec = daemon_set.spec.clone();
        let status = daemon_set.status.clone().unwrap_or_default();
        // The view's template is the object's, the selector already taken out.
        let template = serde_json::from_value(object["spec"]["template"].clone())
            .expect("a template read from the API server reads back");
        let view = Deployment {
            metadata: daemon_set.metadata.clone(),
            spec: DeploymentSpec {
                selector: spec.selector,
                template,
                replicas: Some(if scaled_to_zero {
                    0
                } else {
                    status.desired_number_scheduled
                }),
                min_ready_seconds: spec.min_ready_seconds,
                revision_history_limit: spec.revision_history_limit,
                ..Default::default()
            },
            status: Some(DeploymentStatus {
                observed_generation: status.observed_generation,
                replicas: Some(status.current_number_scheduled),
                updated_replicas: status.updated_number_scheduled,
                ready_replicas: Some(status.number_ready),
                available_replicas: status.number_available,
                ..Default::default()
            }),
        };
        Workload {
            view: Arc::new(view),
            object,
        }
    }
}

/// A target's pod template as the analysis counts its revision: without the scale-to-zero
/// selector.
pub fn template(object: &Value) -> Value {
    let mut template = object
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_default();
    without_scale_to_zero(&mut template);
    template
}

/// Removes the scale-to-zero selector from a pod template (and the selector, when nothing else
/// is left in it); whether it was there.
fn without_scale_to_zero(template: &mut Value) -> bool {
    let Some(pod) = template.get_mut("spec").and_then(Value::as_object_mut) else {
        return false;
    };
    let Some(selector) = pod.get_mut("nodeSelector").and_then(Value::as_object_mut) else {
        return false;
    };
    let found = selector.remove(SCALE_TO_ZERO).is_some();
    if selector.is_empty() {
        pod.remove("nodeSelector");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon_set(node_selector: Value, status: Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "shop", "generation": 3},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "updateStrategy": {"type": "RollingUpdate"},
                "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
                    "nodeSelector": node_selector,
                    "containers": [{"name": "agent", "image": "example.com/agent:1"}]}},
            },
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn a_daemon_set_scaled_to_zero_is_a_deployment_of_zero_replicas_with_the_same_template() {
        let status = json!({"currentNumberScheduled": 0, "desiredNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0, "observedGeneration": 3});
        let zero = Workload::of_daemon_set(&daemon_set(
            json!({"kubernetes.io/os": "linux", SCALE_TO_ZERO: "true"}),
            status,
        ));
        let running = Workload::of_daemon_set(&daemon_set(
            json!({"kubernetes.io/os": "linux"}),
            json!({"currentNumberScheduled": 2, "desiredNumberScheduled": 2, "numberMisscheduled": 0,
                "numberReady": 2, "updatedNumberScheduled": 2, "numberAvailable": 2, "observedGeneration": 3}),
        ));
        assert_eq!(zero.view.spec.replicas, Some(0));
        assert_eq!(running.view.spec.replicas, Some(2));
        assert_eq!(
            zero.view.spec.template, running.view.spec.template,
            "the selector is no part of the revision"
        );
        assert_eq!(
            zero.object["spec"]["template"]["spec"]["nodeSelector"],
            json!({"kubernetes.io/os": "linux"})
        );
        assert_eq!(zero.object["kind"], "DaemonSet");
        assert_eq!(
            zero.object["spec"]["updateStrategy"]["type"],
            "RollingUpdate"
        );
        let status = running.view.status.as_ref().unwrap();
        assert_eq!(
            (
                status.updated_replicas,
                status.available_replicas,
                status.observed_generation
            ),
            (Some(2), Some(2), Some(3))
        );

        // Only the scale-to-zero selector: no node selector left at all.
        let only = Workload::of_daemon_set(&daemon_set(
            json!({SCALE_TO_ZERO: "true"}),
            json!({
            "currentNumberScheduled": 0, "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}),
        ));
        assert_eq!(
            only.object["spec"]["template"]["spec"].get("nodeSelector"),
            None
        );
        assert_eq!(
            only.view.spec.template.spec.as_ref().unwrap().node_selector,
            None
        );
    }
}
