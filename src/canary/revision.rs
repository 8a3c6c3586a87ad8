//! What makes a new revision of a canary's target: the checksum of its pod template (without the
//! label the analyzer adds) and of each ConfigMap and Secret it mounts or reads, which the
//! primary gets copies of (`<name>-primary`) so it keeps the promoted configuration while the
//! canary runs a new one. Pure.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Label on the pods of the primary (and, for pod-ratio routing, of the target) naming the apex
/// Service that selects them. Not part of the revision.
pub const APEX_LABEL: &str = "sluice.dev/canary-apex";
/// Annotations that keep a ConfigMap or Secret out of tracking (sluice's and Flagger's).
pub const TRACKING_ANNOTATIONS: [&str; 2] =
    ["sluice.dev/config-tracking", "flagger.app/config-tracking"];

/// A ConfigMap or Secret the pod template reads.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigRef {
    pub kind: ConfigKind,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    ConfigMap,
    Secret,
}

impl ConfigRef {
    /// The key in `status.trackedConfigs`: `ConfigMap/name`, `Secret/name`.
    pub fn key(&self) -> String {
        let kind = match self.kind {
            ConfigKind::ConfigMap => "ConfigMap",
            ConfigKind::Secret => "Secret",
        };
        format!("{kind}/{}", self.name)
    }

    /// The name of the primary's copy.
    pub fn primary_name(&self) -> String {
        format!("{}-primary", self.name)
    }
}

fn short_sha(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

/// The checksum of a pod template: the revision a Canary records as `lastAppliedSpec`.
pub fn template_checksum(template: &Value) -> String {
    let mut template = template.clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(APEX_LABEL);
    }
    short_sha(&serde_json::to_vec(&template).expect("JSON values serialize"))
}

/// The checksum of a ConfigMap's or Secret's content (`data`, `binaryData`, `stringData`).
pub fn config_checksum(object: &Value) -> String {
    let content: BTreeMap<&str, &Value> = ["data", "binaryData", "stringData"]
        .iter()
        .filter_map(|key| Some((*key, object.get(*key)?)))
        .collect();
    short_sha(&serde_json::to_vec(&content).expect("JSON values serialize"))
}

/// Whether a ConfigMap or Secret asks to be left out of tracking.
pub fn tracking_disabled(object: &Value) -> bool {
    TRACKING_ANNOTATIONS.iter().any(|key| {
        object
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(*key))
            .and_then(Value::as_str)
            == Some("disabled")
    })
}

/// Where a pod template names ConfigMaps and Secrets: JSON pointers relative to the template,
/// with the kind each names.
fn reference_sites(template: &Value) -> Vec<(String, ConfigKind)> {
    let mut sites = Vec::new();
    let spec = "/spec";
    let volumes = template
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for v in 0..volumes {
        sites.push((
            format!("{spec}/volumes/{v}/configMap/name"),
            ConfigKind::ConfigMap,
        ));
        sites.push((
            format!("{spec}/volumes/{v}/secret/secretName"),
            ConfigKind::Secret,
        ));
        let sources = template
            .pointer(&format!("{spec}/volumes/{v}/projected/sources"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for s in 0..sources {
            let at = format!("{spec}/volumes/{v}/projected/sources/{s}");
            sites.push((format!("{at}/configMap/name"), ConfigKind::ConfigMap));
            sites.push((format!("{at}/secret/name"), ConfigKind::Secret));
        }
    }
    for list in ["containers", "initContainers"] {
        let containers = template
            .pointer(&format!("{spec}/{list}"))
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        for c in 0..containers {
            let at = format!("{spec}/{list}/{c}");
            let env = template
                .pointer(&format!("{at}/env"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for e in 0..env {
                let from = format!("{at}/env/{e}/valueFrom");
                sites.push((
                    format!("{from}/configMapKeyRef/name"),
                    ConfigKind::ConfigMap,
                ));
                sites.push((format!("{from}/secretKeyRef/name"), ConfigKind::Secret));
            }
            let env_from = template
                .pointer(&format!("{at}/envFrom"))
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            for e in 0..env_from {
                sites.push((
                    format!("{at}/envFrom/{e}/configMapRef/name"),
                    ConfigKind::ConfigMap,
                ));
                sites.push((
                    format!("{at}/envFrom/{e}/secretRef/name"),
                    ConfigKind::Secret,
                ));
            }
        }
    }
    sites
        .into_iter()
        .filter(|(pointer, _)| template.pointer(pointer).is_some_and(Value::is_string))
        .collect()
}

/// The ConfigMaps and Secrets a pod template reads.
pub fn config_refs(template: &Value) -> BTreeSet<ConfigRef> {
    reference_sites(template)
        .into_iter()
        .filter_map(|(pointer, kind)| {
            let name = template.pointer(&pointer)?.as_str()?.to_string();
            Some(ConfigRef { kind, name })
        })
        .collect()
}

/// The pod template with every reference to a tracked config renamed to its primary copy.
pub fn with_primary_configs(template: &Value, tracked: &BTreeSet<ConfigRef>) -> Value {
    let mut template = template.clone();
    for (pointer, kind) in reference_sites(&template) {
        if let Some(slot) = template.pointer_mut(&pointer)
            && let Some(name) = slot.as_str()
        {
            let reference = ConfigRef {
                kind,
                name: name.to_string(),
            };
            if tracked.contains(&reference) {
                *slot = Value::from(reference.primary_name());
            }
        }
    }
    template
}

/// The checksum the webhook payload carries (Flagger's `checksum`): the revision and its
/// configuration together.
pub fn payload_checksum(spec: &str, configs: &BTreeMap<String, String>) -> String {
    let text = serde_json::json!({"spec": spec, "configs": configs});
    short_sha(text.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn template() -> Value {
        json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {
                "volumes": [
                    {"name": "conf", "configMap": {"name": "web-config"}},
                    {"name": "tls", "secret": {"secretName": "web-tls"}},
                    {"name": "all", "projected": {"sources": [{"configMap": {"name": "extra"}}, {"secret": {"name": "token"}}]}},
                    {"name": "scratch", "emptyDir": {}},
                ],
                "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
                "containers": [{
                    "name": "app",
                    "env": [
                        {"name": "A", "value": "1"},
                        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "web-config", "key": "b"}}},
                        {"name": "C", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                        {"name": "D", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    ],
                    "envFrom": [{"configMapRef": {"name": "env"}}],
                }],
            },
        })
    }

    #[test]
    fn every_config_a_template_reads_is_found() {
        let keys: Vec<String> = config_refs(&template())
            .iter()
            .map(ConfigRef::key)
            .collect();
        assert_eq!(
            keys,
            [
                "ConfigMap/env",
                "ConfigMap/extra",
                "ConfigMap/web-config",
                "Secret/db",
                "Secret/init-env",
                "Secret/token",
                "Secret/web-tls"
            ]
        );
    }

    #[test]
    fn the_primary_reads_copies_of_tracked_configs_only() {
        let tracked: BTreeSet<ConfigRef> = [
            ConfigRef {
                kind: ConfigKind::ConfigMap,
                name: "web-config".into(),
            },
            ConfigRef {
                kind: ConfigKind::Secret,
                name: "db".into(),
            },
        ]
        .into();
        let primary = with_primary_configs(&template(), &tracked);
        assert_eq!(
            primary["spec"]["volumes"][0]["configMap"]["name"],
            "web-config-primary"
        );
        assert_eq!(
            primary["spec"]["containers"][0]["env"][1]["valueFrom"]["configMapKeyRef"]["name"],
            "web-config-primary"
        );
        assert_eq!(
            primary["spec"]["containers"][0]["env"][2]["valueFrom"]["secretKeyRef"]["name"],
            "db-primary"
        );
        assert_eq!(
            primary["spec"]["volumes"][1]["secret"]["secretName"], "web-tls",
            "untracked"
        );
        assert_eq!(
            primary["spec"]["containers"][0]["envFrom"][0]["configMapRef"]["name"],
            "env"
        );
    }

    #[test]
    fn the_apex_label_is_not_a_new_revision_but_any_other_change_is() {
        let base = template();
        let mut labelled = base.clone();
        labelled["metadata"]["labels"][APEX_LABEL] = json!("web");
        assert_eq!(template_checksum(&base), template_checksum(&labelled));
        let mut image = base.clone();
        image["spec"]["containers"][0]["image"] = json!("web:2");
        assert_ne!(template_checksum(&base), template_checksum(&image));
        assert_eq!(template_checksum(&base).len(), 16);
    }

    #[test]
    fn config_checksums_follow_the_content_and_opt_outs_are_read() {
        let a = json!({"metadata": {"name": "c", "resourceVersion": "1"}, "data": {"k": "v"}});
        let b = json!({"metadata": {"name": "c", "resourceVersion": "2"}, "data": {"k": "v"}});
        let c = json!({"metadata": {"name": "c"}, "data": {"k": "w"}});
        assert_eq!(config_checksum(&a), config_checksum(&b));
        assert_ne!(config_checksum(&a), config_checksum(&c));
        let off = json!({"metadata": {"annotations": {"flagger.app/config-tracking": "disabled"}}});
        assert!(tracking_disabled(&off));
        assert!(!tracking_disabled(&a));
    }
}
