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
    #[serde(default, deserialize_with = "super::kustomization::nullable")]
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

    /// The path's fields; `\/` is a `/` inside a field (an annotation key).
    fn segments(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for piece in self.path.split('/') {
            match out.last_mut() {
                Some(last) if last.ends_with('\\') => {
                    last.pop();
                    last.push('/');
                    last.push_str(piece);
                }
                _ => out.push(piece.to_string()),
            }
        }
        out.retain(|s| !s.is_empty());
        out
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
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
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

/// Field specs from rows of (group, version, kind, path, create); empty means any.
fn table(rows: &[(&str, &str, &str, &str, bool)]) -> Vec<FieldSpec> {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    rows.iter()
        .map(|(group, version, kind, path, create)| FieldSpec {
            group: some(group),
            version: some(version),
            kind: some(kind),
            path: path.to_string(),
            create: *create,
        })
        .collect()
}

const TEMPLATE_LABELS: &str = "spec/template/metadata/labels";
const AFFINITY_SELECTORS: [&str; 5] = [
    "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
    "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
    "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
];

/// Where `commonLabels` (and `labels` with `includeSelectors`) go: metadata, pod templates and
/// selectors, as kustomize's built-in configuration lists them.
pub fn common_labels() -> Vec<FieldSpec> {
    let mut rows = vec![
        ("", "v1", "Service", "spec/selector", true),
        ("", "v1", "ReplicationController", "spec/selector", true),
        ("", "", "Deployment", "spec/selector/matchLabels", true),
    ];
    rows.extend(AFFINITY_SELECTORS.map(|p| ("apps", "", "Deployment", p, false)));
    rows.extend([
        ("", "", "ReplicaSet", "spec/selector/matchLabels", true),
        ("", "", "DaemonSet", "spec/selector/matchLabels", true),
        ("apps", "", "StatefulSet", "spec/selector/matchLabels", true),
    ]);
    rows.extend(AFFINITY_SELECTORS.map(|p| ("apps", "", "StatefulSet", p, false)));
    rows.extend([
        ("batch", "", "Job", "spec/selector/matchLabels", false),
        (
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/spec/selector/matchLabels",
            false,
        ),
        (
            "policy",
            "",
            "PodDisruptionBudget",
            "spec/selector/matchLabels",
            false,
        ),
        (
            "networking.k8s.io",
            "",
            "NetworkPolicy",
            "spec/podSelector/matchLabels",
            false,
        ),
        (
            "networking.k8s.io",
            "",
            "NetworkPolicy",
            "spec/ingress/from/podSelector/matchLabels",
            false,
        ),
        (
            "networking.k8s.io",
            "",
            "NetworkPolicy",
            "spec/egress/to/podSelector/matchLabels",
            false,
        ),
    ]);
    let mut specs = table(&rows);
    specs.extend(metadata_labels(true));
    specs
}

/// Where `labels` without `includeSelectors` go: metadata, and with `includeTemplates` pod
/// templates (kustomize's template labels).
pub fn metadata_labels(include_templates: bool) -> Vec<FieldSpec> {
    let mut rows = vec![("", "", "", "metadata/labels", true)];
    if include_templates {
        rows.extend([
            ("", "v1", "ReplicationController", TEMPLATE_LABELS, true),
            ("", "", "Deployment", TEMPLATE_LABELS, true),
            ("", "", "ReplicaSet", TEMPLATE_LABELS, true),
            ("", "", "DaemonSet", TEMPLATE_LABELS, true),
            ("apps", "", "StatefulSet", TEMPLATE_LABELS, true),
            (
                "apps",
                "",
                "StatefulSet",
                "spec/volumeClaimTemplates[]/metadata/labels",
                true,
            ),
            ("batch", "", "Job", TEMPLATE_LABELS, true),
            (
                "batch",
                "",
                "CronJob",
                "spec/jobTemplate/metadata/labels",
                true,
            ),
            (
                "batch",
                "",
                "CronJob",
                "spec/jobTemplate/spec/template/metadata/labels",
                true,
            ),
        ]);
    }
    table(&rows)
}

/// Where `commonAnnotations` go.
pub fn common_annotations() -> Vec<FieldSpec> {
    const TEMPLATE: &str = "spec/template/metadata/annotations";
    table(&[
        ("", "", "", "metadata/annotations", true),
        ("", "v1", "ReplicationController", TEMPLATE, true),
        ("", "", "Deployment", TEMPLATE, true),
        ("", "", "ReplicaSet", TEMPLATE, true),
        ("", "", "DaemonSet", TEMPLATE, true),
        ("", "", "StatefulSet", TEMPLATE, true),
        ("batch", "", "Job", TEMPLATE, true),
        (
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/metadata/annotations",
            true,
        ),
        (
            "batch",
            "",
            "CronJob",
            "spec/jobTemplate/spec/template/metadata/annotations",
            true,
        ),
    ])
}

/// Where the images of `images` are set besides every `containers` and `initContainers` list:
/// pod specs and image volumes, in objects of any kind.
pub fn images() -> Vec<FieldSpec> {
    ["spec", "spec/template/spec"]
        .iter()
        .flat_map(|pod| {
            [
                "containers[]/image",
                "initContainers[]/image",
                "volumes[]/image/reference",
            ]
            .map(|field| FieldSpec::new(None, &format!("{pod}/{field}"), false))
        })
        .collect()
}

/// Where `namespace` goes besides `metadata.namespace` and RoleBinding subjects: the name of a
/// Namespace, the service of an APIService and of a CustomResourceDefinition's conversion
/// webhook.
pub fn namespace() -> Vec<FieldSpec> {
    table(&[
        ("", "", "Namespace", "metadata/name", true),
        (
            "apiregistration.k8s.io",
            "",
            "APIService",
            "spec/service/namespace",
            true,
        ),
        (
            "apiextensions.k8s.io",
            "",
            "CustomResourceDefinition",
            "spec/conversion/webhook/clientConfig/service/namespace",
            false,
        ),
    ])
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
    is_cluster_scoped_kind(obj.group(), obj.kind())
}

/// Whether a kind of a group is not namespaced (see [`is_cluster_scoped`]).
pub fn is_cluster_scoped_kind(group: &str, kind: &str) -> bool {
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
    let builtin_group = !group.contains('.') || group.ends_with(".k8s.io");
    builtin_group && CLUSTER.contains(&kind)
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
