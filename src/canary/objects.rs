//! The objects the analyzer generates for a Canary, built from its target: the primary
//! Deployment (the target's pod template with its selector labels renamed `<value>-primary`), the
//! primary's autoscaler, the apex, primary and canary Services, the primary's copies of tracked
//! configuration, and the fields the analyzer owns on the target itself. Each is a complete
//! server-side-apply body for the analyzer's field manager. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::revision::{APEX_LABEL, ConfigRef, with_primary_configs};
use super::spec::Settings;
use crate::api::canary::{CanaryService, CustomMetadata};

/// The field manager of everything the analyzer writes.
pub const FIELD_MANAGER: &str = "sluice-canary";
/// Annotation on the primary Deployment: the revision (template checksum) its template holds.
pub const REVISION_ANNOTATION: &str = "sluice.dev/canary-revision";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectsError {
    #[error("the target {0} has no spec.selector.matchLabels (matchExpressions are not supported)")]
    NoSelector(String),
    #[error("the target {0} has no spec.template")]
    NoTemplate(String),
}

/// The Canary that owns the generated objects (deleted with it).
#[derive(Debug, Clone)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

impl Owner {
    /// Metadata of a generated object: its name and namespace, the Canary as its controller.
    pub fn metadata(&self, name: &str) -> Value {
        json!({
            "name": name,
            "namespace": self.namespace,
            "ownerReferences": [{
                "apiVersion": "sluice.dev/v1alpha1",
                "kind": "Canary",
                "name": self.name,
                "uid": self.uid,
                "controller": true,
            }],
        })
    }
}

/// The target's selector labels.
pub fn target_selector(target: &Value) -> Result<BTreeMap<String, String>, ObjectsError> {
    let name = target
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let labels = target
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ObjectsError::NoSelector(name.into()))?;
    Ok(labels
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect())
}

/// The primary's selector: every value of the target's selector with `-primary` appended.
pub fn primary_selector(target_selector: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    target_selector
        .iter()
        .map(|(k, v)| (k.clone(), format!("{v}-primary")))
        .collect()
}

fn labels_value(labels: &BTreeMap<String, String>) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
            .collect(),
    )
}

/// The primary for `revision`, of the target's kind (Deployment or DaemonSet): the target's
/// template with renamed selector labels, the apex label and copies of tracked configuration.
/// `replicas` is left out when an autoscaler owns it, and for a DaemonSet.
pub fn primary_workload(
    target: &Value,
    s: &Settings,
    owner: &Owner,
    tracked: &BTreeSet<ConfigRef>,
    revision: &str,
    replicas: Option<i64>,
) -> Result<Value, ObjectsError> {
    let selector = target_selector(target)?;
    let renamed = primary_selector(&selector);
    let template = target
        .pointer("/spec/template")
        .ok_or_else(|| ObjectsError::NoTemplate(s.target.clone()))?;
    let mut template = with_primary_configs(template, tracked);
    let labels = template["metadata"]["labels"]
        .as_object_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut labels: Map<String, Value> = labels;
    for (k, v) in &renamed {
        labels.insert(k.clone(), Value::from(v.as_str()));
    }
    labels.insert(APEX_LABEL.into(), Value::from(s.apex.as_str()));
    template["metadata"]["labels"] = Value::Object(labels);
    let mut metadata = owner.metadata(&s.primary());
    metadata["labels"] = labels_value(&renamed);
    metadata["annotations"] = json!({ REVISION_ANNOTATION: revision });
    let mut spec = json!({
        "selector": {"matchLabels": labels_value(&renamed)},
        "template": template,
    });
    let daemon_set = kind(target) == "DaemonSet";
    let fields: &[&str] = if daemon_set {
        &["minReadySeconds", "revisionHistoryLimit", "updateStrategy"]
    } else {
        &[
            "minReadySeconds",
            "revisionHistoryLimit",
            "progressDeadlineSeconds",
            "strategy",
        ]
    };
    for field in fields {
        if let Some(value) = target.pointer(&format!("/spec/{field}")) {
            spec[*field] = value.clone();
        }
    }
    if let Some(replicas) = replicas.filter(|_| !daemon_set) {
        spec["replicas"] = Value::from(replicas);
    }
    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": kind(target),
        "metadata": metadata,
        "spec": spec,
    }))
}

/// The kind of a target or primary (`Deployment` unless it says otherwise).
fn kind(object: &Value) -> &str {
    object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Deployment")
}

/// The primary as the analyzer applied it, read back from the live object, with other replicas
/// (the manifest changed them; the template stays what was promoted).
pub fn rescaled_primary(live: &Value, replicas: i64) -> Value {
    let at = |pointer: &str| live.pointer(pointer).cloned().unwrap_or(Value::Null);
    let mut spec = json!({
        "replicas": replicas,
        "selector": at("/spec/selector"),
        "template": at("/spec/template"),
    });
    for field in [
        "minReadySeconds",
        "revisionHistoryLimit",
        "progressDeadlineSeconds",
        "strategy",
    ] {
        if let Some(value) = live.pointer(&format!("/spec/{field}")) {
            spec[field] = value.clone();
        }
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": at("/metadata/name"),
            "namespace": at("/metadata/namespace"),
            "labels": at("/metadata/labels"),
            "annotations": {REVISION_ANNOTATION: primary_revision(live).unwrap_or_default()},
            "ownerReferences": at("/metadata/ownerReferences"),
        },
        "spec": spec,
    })
}

/// The revision a primary Deployment holds, from its annotation.
pub fn primary_revision(primary: &Value) -> Option<&str> {
    primary
        .pointer("/metadata/annotations")?
        .get(REVISION_ANNOTATION)?
        .as_str()
}

/// The primary's autoscaler: a copy of the target's, scaling the primary.
pub fn primary_autoscaler(hpa: &Value, s: &Settings, owner: &Owner) -> Value {
    let name = hpa
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or(&s.target);
    let mut spec = hpa.get("spec").cloned().unwrap_or_else(|| json!({}));
    spec["scaleTargetRef"] =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": s.primary()});
    json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": owner.metadata(&format!("{name}-primary")),
        "spec": spec,
    })
}

/// The primary's copy of a tracked ConfigMap or Secret.
pub fn config_copy(config: &Value, reference: &ConfigRef, owner: &Owner) -> Value {
    let mut copy = json!({
        "apiVersion": "v1",
        "kind": config.get("kind").cloned().unwrap_or_else(|| json!("ConfigMap")),
        "metadata": owner.metadata(&reference.primary_name()),
    });
    for key in ["data", "binaryData", "type", "immutable"] {
        if let Some(value) = config.get(key) {
            copy[key] = value.clone();
        }
    }
    copy
}

/// What the analyzer owns on the target: its size (a Deployment's replicas; on a DaemonSet
/// scaled to zero, the node selector no node matches), and for pod-ratio and blue/green routing
/// the apex label on its pods. Always applied whole: a field left out of an apply would be
/// removed.
pub fn target_fields(target: &Value, replicas: i64, apex_label: Option<&str>) -> Value {
    let mut object = json!({
        "apiVersion": "apps/v1",
        "kind": kind(target),
        "metadata": {
            "name": target.pointer("/metadata/name").cloned().unwrap_or_default(),
            "namespace": target.pointer("/metadata/namespace").cloned().unwrap_or_default(),
        },
        "spec": {},
    });
    if kind(target) == "DaemonSet" {
        // The node selector is written whole (Kubernetes merges it as one value): the target's
        // own, and while scaled to zero a key no node has.
        let mut selector = target
            .pointer("/spec/template/spec/nodeSelector")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if replicas == 0 {
            selector.insert(super::workload::SCALE_TO_ZERO.into(), json!("true"));
        }
        if !selector.is_empty() {
            object["spec"]["template"] = json!({"spec": {"nodeSelector": selector}});
        }
    } else {
        object["spec"]["replicas"] = Value::from(replicas);
    }
    if let Some(apex) = apex_label {
        object["spec"]["template"]["metadata"] = json!({"labels": {APEX_LABEL: apex}});
    }
    object
}

/// The ports of the generated Services: `service.port`, and with `portDiscovery` every other
/// container port of the target.
fn ports(service: &CanaryService, target: &Value) -> Vec<Value> {
    let target_port = match &service.target_port {
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => json!(n),
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => json!(s),
        None => json!(service.port),
    };
    let mut ports = vec![json!({
        "name": service.port_name.clone().unwrap_or_else(|| "http".into()),
        "protocol": "TCP",
        "port": service.port,
        "targetPort": target_port,
    })];
    if service.port_discovery {
        let containers = target
            .pointer("/spec/template/spec/containers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for container_port in containers
            .iter()
            .filter_map(|c| c.get("ports")?.as_array().cloned())
            .flatten()
        {
            let Some(number) = container_port.get("containerPort").and_then(Value::as_i64) else {
                continue;
            };
            let name = container_port.get("name").and_then(Value::as_str);
            let is_main = target_port.as_i64() == Some(number)
                || (name.is_some() && target_port.as_str() == name)
                || number == service.port as i64;
            if is_main {
                continue;
            }
            ports.push(json!({
                "name": name.map_or_else(|| format!("tcp-{number}"), str::to_string),
                "protocol": container_port.get("protocol").cloned().unwrap_or_else(|| json!("TCP")),
                "port": number,
                "targetPort": number,
            }));
        }
    }
    ports
}

fn service(
    owner: &Owner,
    name: &str,
    selector: &BTreeMap<String, String>,
    ports: &[Value],
    custom: Option<&CustomMetadata>,
) -> Value {
    let mut metadata = owner.metadata(name);
    if let Some(custom) = custom {
        if !custom.labels.is_empty() {
            metadata["labels"] = labels_value(&custom.labels);
        }
        if !custom.annotations.is_empty() {
            metadata["annotations"] = labels_value(&custom.annotations);
        }
    }
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata,
        "spec": {"type": "ClusterIP", "selector": labels_value(selector), "ports": ports},
    })
}

/// The apex, primary and canary Services; the apex selects `apex_selector` (the router's).
pub fn services(
    s: &Settings,
    service_spec: &CanaryService,
    target: &Value,
    owner: &Owner,
    apex_selector: &BTreeMap<String, String>,
) -> Result<[Value; 3], ObjectsError> {
    let selector = target_selector(target)?;
    let ports = ports(service_spec, target);
    Ok([
        service(
            owner,
            &s.apex,
            apex_selector,
            &ports,
            service_spec.apex.as_ref(),
        ),
        service(
            owner,
            &s.primary_service(),
            &primary_selector(&selector),
            &ports,
            service_spec.primary.as_ref(),
        ),
        service(
            owner,
            &s.canary_service(),
            &selector,
            &ports,
            service_spec.canary.as_ref(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::canary::CanarySpec;
    use crate::canary::revision::ConfigKind;

    fn target() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"team": "a"}},
            "spec": {
                "replicas": 3,
                "minReadySeconds": 2,
                "strategy": {"type": "RollingUpdate"},
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web", "tier": "front"}, "annotations": {"a": "b"}},
                    "spec": {"containers": [{"name": "app", "image": "web:1",
                        "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
                        "envFrom": [{"configMapRef": {"name": "env"}}]}]},
                },
            },
        })
    }

    fn settings(service: Value) -> (Settings, CanarySpec) {
        let spec: CanarySpec = serde_json::from_value(json!({
            "targetRef": {"name": "web"}, "service": service,
            "analysis": {"stepWeight": 10, "maxWeight": 50},
        }))
        .unwrap();
        (crate::canary::spec::settings(&spec).unwrap(), spec)
    }

    fn owner() -> Owner {
        Owner {
            name: "web".into(),
            namespace: "shop".into(),
            uid: "u-1".into(),
        }
    }

    #[test]
    fn the_primary_is_the_target_with_renamed_labels_and_config_copies() {
        let (s, _) = settings(json!({"port": 80}));
        let tracked = [ConfigRef {
            kind: ConfigKind::ConfigMap,
            name: "env".into(),
        }]
        .into();
        let primary = primary_workload(&target(), &s, &owner(), &tracked, "abc", Some(3)).unwrap();
        assert_eq!(primary["metadata"]["name"], "web-primary");
        assert_eq!(primary["metadata"]["ownerReferences"][0]["uid"], "u-1");
        assert_eq!(primary_revision(&primary), Some("abc"));
        assert_eq!(
            primary["spec"]["selector"]["matchLabels"],
            json!({"app": "web-primary"})
        );
        let labels = &primary["spec"]["template"]["metadata"]["labels"];
        assert_eq!(
            labels,
            &json!({"app": "web-primary", "tier": "front", APEX_LABEL: "web"})
        );
        assert_eq!(
            primary["spec"]["template"]["metadata"]["annotations"]["a"],
            "b"
        );
        assert_eq!(
            primary["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
            "env-primary"
        );
        assert_eq!(
            (
                primary["spec"]["replicas"].as_i64(),
                primary["spec"]["minReadySeconds"].as_i64()
            ),
            (Some(3), Some(2))
        );
        let scaled = primary_workload(&target(), &s, &owner(), &tracked, "abc", None).unwrap();
        assert!(
            scaled["spec"].get("replicas").is_none(),
            "an autoscaler owns replicas"
        );
    }

    #[test]
    fn a_target_without_match_labels_is_refused() {
        let (s, _) = settings(json!({"port": 80}));
        let mut bad = target();
        bad["spec"]["selector"] =
            json!({"matchExpressions": [{"key": "app", "operator": "Exists"}]});
        let err = primary_workload(&bad, &s, &owner(), &BTreeSet::new(), "x", None).unwrap_err();
        assert!(err.to_string().contains("matchLabels"), "{err}");
    }

    #[test]
    fn services_select_primary_and_canary_and_discover_ports() {
        let (s, spec) = settings(
            json!({"port": 80, "targetPort": "http", "portDiscovery": true,
            "apex": {"annotations": {"x": "y"}}}),
        );
        let apex_selector: BTreeMap<String, String> =
            [("app".to_string(), "web-primary".to_string())].into();
        let [apex, primary, canary] =
            services(&s, &spec.service, &target(), &owner(), &apex_selector).unwrap();
        assert_eq!(apex["metadata"]["name"], "web");
        assert_eq!(apex["metadata"]["annotations"]["x"], "y");
        assert_eq!(primary["spec"]["selector"], json!({"app": "web-primary"}));
        assert_eq!(canary["metadata"]["name"], "web-canary");
        assert_eq!(canary["spec"]["selector"], json!({"app": "web"}));
        let ports = apex["spec"]["ports"].as_array().unwrap();
        assert_eq!(ports.len(), 2, "{ports:?}");
        assert_eq!(
            ports[0],
            json!({"name": "http", "protocol": "TCP", "port": 80, "targetPort": "http"})
        );
        assert_eq!(ports[1]["port"], 9090);
    }

    #[test]
    fn the_target_fields_always_carry_everything_the_analyzer_owns() {
        let fields = target_fields(&target(), 0, Some("web"));
        assert_eq!(fields["spec"]["replicas"], 0);
        assert_eq!(
            fields["spec"]["template"]["metadata"]["labels"][APEX_LABEL],
            "web"
        );
        assert_eq!(
            fields["metadata"],
            json!({"name": "web", "namespace": "shop"})
        );
        assert!(
            target_fields(&target(), 2, None)["spec"]
                .get("template")
                .is_none()
        );
    }

    #[test]
    fn a_daemon_set_gets_a_primary_daemon_set_and_is_scaled_to_zero_by_node_selector() {
        let (s, _) = settings(json!({"port": 80}));
        let mut ds = target();
        ds["kind"] = json!("DaemonSet");
        let spec = ds["spec"].as_object_mut().unwrap();
        spec.remove("replicas");
        spec.remove("strategy");
        spec.insert("updateStrategy".into(), json!({"type": "OnDelete"}));
        let primary =
            primary_workload(&ds, &s, &owner(), &BTreeSet::new(), "abc", Some(3)).unwrap();
        assert_eq!(primary["kind"], "DaemonSet");
        assert_eq!(primary["metadata"]["name"], "web-primary");
        assert_eq!(primary["spec"].get("replicas"), None);
        assert_eq!(
            primary["spec"]["updateStrategy"],
            json!({"type": "OnDelete"})
        );
        assert_eq!(
            primary["spec"]["selector"],
            json!({"matchLabels": {"app": "web-primary"}})
        );

        let zero = target_fields(&ds, 0, Some("web"));
        assert_eq!(zero["kind"], "DaemonSet");
        assert_eq!(zero["spec"].get("replicas"), None);
        assert_eq!(
            zero["spec"]["template"]["spec"]["nodeSelector"],
            json!({super::super::workload::SCALE_TO_ZERO: "true"})
        );
        assert_eq!(
            zero["spec"]["template"]["metadata"]["labels"][APEX_LABEL],
            "web"
        );
        // Running: nothing of its size.
        assert_eq!(target_fields(&ds, 1, None)["spec"], json!({}));
        // Its own node selector is kept whole, with the key while scaled to zero.
        ds["spec"]["template"]["spec"]["nodeSelector"] = json!({"kubernetes.io/os": "linux"});
        assert_eq!(
            target_fields(&ds, 0, None)["spec"]["template"]["spec"]["nodeSelector"],
            json!({"kubernetes.io/os": "linux", super::super::workload::SCALE_TO_ZERO: "true"})
        );
        assert_eq!(
            target_fields(&ds, 1, None)["spec"]["template"]["spec"]["nodeSelector"],
            json!({"kubernetes.io/os": "linux"})
        );
    }

    #[test]
    fn the_autoscaler_and_config_copies_point_at_the_primary() {
        let (s, _) = settings(json!({"port": 80}));
        let hpa = json!({"metadata": {"name": "web-hpa"}, "spec": {"minReplicas": 2, "maxReplicas": 4,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}});
        let copy = primary_autoscaler(&hpa, &s, &owner());
        assert_eq!(copy["metadata"]["name"], "web-hpa-primary");
        assert_eq!(copy["spec"]["scaleTargetRef"]["name"], "web-primary");
        assert_eq!(copy["spec"]["maxReplicas"], 4);
        let secret = json!({"kind": "Secret", "type": "Opaque", "data": {"k": "dg=="}, "metadata": {"name": "db", "resourceVersion": "5"}});
        let reference = ConfigRef {
            kind: ConfigKind::Secret,
            name: "db".into(),
        };
        let copy = config_copy(&secret, &reference, &owner());
        assert_eq!(copy["metadata"]["name"], "db-primary");
        assert_eq!(
            (copy["kind"].as_str(), copy["type"].as_str()),
            (Some("Secret"), Some("Opaque"))
        );
        assert!(copy["metadata"].get("resourceVersion").is_none());
    }
}
