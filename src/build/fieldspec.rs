//! Field specs: which field of which kinds a transformer touches (kustomize's `fieldSpecs`), the
//! built-in tables, and walking an object to those fields. Pure.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::object::Object;

/// A field in objects of some kinds, as a `/`-separated path; `[]` after a segment, or a list met on
/// the way, means every element.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldSpec {
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub path: String,
    #[serde(default)]
    pub create: bool,
}

impl FieldSpec {
    pub fn new(kind: Option<&str>, path: &str, create: bool) -> Self {
        Self {
            group: None,
            version: None,
            kind: kind.map(str::to_string),
            path: path.into(),
            create,
        }
    }

    pub fn applies_to(&self, obj: &Object) -> bool {
        self.kind.as_deref().is_none_or(|k| k == obj.kind())
            && self.group.as_deref().is_none_or(|g| g == obj.group())
            && self.version.as_deref().is_none_or(|v| v == obj.version())
    }

    fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }
}

/// Calls `f` on the field named by `spec` in `obj` when the spec applies to it. With `create`, missing
/// mappings on the way are made and `f` gets a null to fill in.
pub fn visit<E>(
    obj: &mut Object,
    spec: &FieldSpec,
    f: &mut dyn FnMut(&mut Value) -> Result<(), E>,
) -> Result<(), E> {
    if !spec.applies_to(obj) {
        return Ok(());
    }
    let segs = spec.segments();
    walk(obj.value_mut(), &segs, spec.create, f)
}

fn walk<E>(
    v: &mut Value,
    segs: &[&str],
    create: bool,
    f: &mut dyn FnMut(&mut Value) -> Result<(), E>,
) -> Result<(), E> {
    if let Value::Array(items) = v {
        for item in items {
            walk(item, segs, create, f)?;
        }
        return Ok(());
    }
    let Some((first, rest)) = segs.split_first() else {
        return f(v);
    };
    let (name, each) = match first.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (*first, false),
    };
    let Value::Object(map) = v else { return Ok(()) };
    if !map.contains_key(name) || map.get(name).is_some_and(Value::is_null) {
        if !create || each {
            return Ok(());
        }
        let fresh = if rest.is_empty() {
            Value::Null
        } else {
            Value::Object(Map::new())
        };
        map.insert(name.to_string(), fresh);
    }
    let child = map.get_mut(name).expect("present");
    if each && !child.is_array() {
        return Ok(());
    }
    walk(child, rest, create, f)
}

const WORKLOADS: [&str; 5] = [
    "ReplicationController",
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "StatefulSet",
];

/// Where `commonLabels` (and `labels` with `includeSelectors`) go.
pub fn common_labels() -> Vec<FieldSpec> {
    let mut v = vec![FieldSpec::new(None, "metadata/labels", true)];
    v.push(FieldSpec::new(Some("Service"), "spec/selector", true));
    v.push(FieldSpec::new(
        Some("ReplicationController"),
        "spec/selector",
        true,
    ));
    for k in &WORKLOADS[1..] {
        v.push(FieldSpec::new(Some(k), "spec/selector/matchLabels", true));
    }
    for k in WORKLOADS {
        v.push(FieldSpec::new(
            Some(k),
            "spec/template/metadata/labels",
            true,
        ));
    }
    v.push(FieldSpec::new(
        Some("StatefulSet"),
        "spec/volumeClaimTemplates[]/metadata/labels",
        true,
    ));
    v.push(FieldSpec::new(
        Some("Job"),
        "spec/selector/matchLabels",
        false,
    ));
    v.push(FieldSpec::new(
        Some("Job"),
        "spec/template/metadata/labels",
        true,
    ));
    v.push(FieldSpec::new(
        Some("CronJob"),
        "spec/jobTemplate/spec/selector/matchLabels",
        false,
    ));
    v.push(FieldSpec::new(
        Some("CronJob"),
        "spec/jobTemplate/metadata/labels",
        true,
    ));
    v.push(FieldSpec::new(
        Some("CronJob"),
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ));
    v.push(FieldSpec::new(
        Some("PodDisruptionBudget"),
        "spec/selector/matchLabels",
        false,
    ));
    for p in [
        "spec/podSelector/matchLabels",
        "spec/ingress/from/podSelector/matchLabels",
        "spec/egress/to/podSelector/matchLabels",
    ] {
        v.push(FieldSpec::new(Some("NetworkPolicy"), p, false));
    }
    v
}

/// Where `labels` without `includeSelectors` go: metadata, and pod templates with `includeTemplates`.
pub fn metadata_labels(include_templates: bool) -> Vec<FieldSpec> {
    let mut v = vec![FieldSpec::new(None, "metadata/labels", true)];
    if include_templates {
        v.extend(
            common_labels()
                .into_iter()
                .filter(|f| f.path.contains("emplate/metadata/labels")),
        );
    }
    v
}

/// Where `commonAnnotations` go.
pub fn common_annotations() -> Vec<FieldSpec> {
    let mut v = vec![FieldSpec::new(None, "metadata/annotations", true)];
    for k in WORKLOADS.iter().chain(&["Job"]) {
        v.push(FieldSpec::new(
            Some(k),
            "spec/template/metadata/annotations",
            true,
        ));
    }
    v.push(FieldSpec::new(
        Some("CronJob"),
        "spec/jobTemplate/metadata/annotations",
        true,
    ));
    v.push(FieldSpec::new(
        Some("CronJob"),
        "spec/jobTemplate/spec/template/metadata/annotations",
        true,
    ));
    v
}

/// Where `replicas` go.
pub fn replicas() -> Vec<FieldSpec> {
    [
        "Deployment",
        "ReplicationController",
        "ReplicaSet",
        "StatefulSet",
    ]
    .iter()
    .map(|k| FieldSpec::new(Some(k), "spec/replicas", true))
    .collect()
}

/// Kinds that are not namespaced. Kinds not listed (custom resources) are taken as namespaced.
pub fn is_cluster_scoped(obj: &Object) -> bool {
    const CLUSTER: &[&str] = &[
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterTrustBundle",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "DeviceClass",
        "FlowSchema",
        "IngressClass",
        "IPAddress",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "ResourceSlice",
        "RuntimeClass",
        "SelfSubjectAccessReview",
        "SelfSubjectReview",
        "SelfSubjectRulesReview",
        "ServiceCIDR",
        "StorageClass",
        "StorageVersionMigration",
        "SubjectAccessReview",
        "TokenReview",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "VolumeAttributesClass",
    ];
    let builtin_group = !obj.group().contains('.') || obj.group().ends_with(".k8s.io");
    builtin_group && CLUSTER.contains(&obj.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deploy() -> Object {
        Object::new(
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}}),
        )
        .unwrap()
    }

    #[test]
    fn creates_missing_maps() {
        let mut o = deploy();
        let spec = FieldSpec::new(Some("Deployment"), "spec/selector/matchLabels", true);
        visit::<()>(&mut o, &spec, &mut |v| {
            *v = json!({"x": "y"});
            Ok(())
        })
        .unwrap();
        assert_eq!(
            o.value()["spec"]["selector"]["matchLabels"],
            json!({"x": "y"})
        );
    }

    #[test]
    fn visits_every_list_element() {
        let mut o = deploy();
        let spec = FieldSpec::new(None, "spec/template/spec/containers[]/image", true);
        visit::<()>(&mut o, &spec, &mut |v| {
            *v = json!("img");
            Ok(())
        })
        .unwrap();
        assert_eq!(
            o.value()["spec"]["template"]["spec"]["containers"][1]["image"],
            "img"
        );
    }

    #[test]
    fn skips_other_kinds() {
        let mut o = deploy();
        let spec = FieldSpec::new(Some("Service"), "spec/selector", true);
        visit::<()>(&mut o, &spec, &mut |_| panic!("not a Service")).unwrap();
    }
}
