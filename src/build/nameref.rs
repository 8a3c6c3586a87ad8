//! Name references: after prefixes, suffixes and hash suffixes rename ConfigMaps, Secrets,
//! Services, ServiceAccounts, roles and claims, the fields that refer to them follow. Pure.

use std::collections::HashMap;

use serde_json::Value;

use super::config::NameReference;
use super::fieldspec::{self, FieldSpec, is_cluster_scoped};
use super::object::Resource;

/// Where kinds keep their pod spec.
const POD: [(&str, &str); 9] = [
    ("Pod", "spec"),
    ("PodTemplate", "template/spec"),
    ("Deployment", "spec/template/spec"),
    ("ReplicaSet", "spec/template/spec"),
    ("DaemonSet", "spec/template/spec"),
    ("StatefulSet", "spec/template/spec"),
    ("Job", "spec/template/spec"),
    ("ReplicationController", "spec/template/spec"),
    ("CronJob", "spec/jobTemplate/spec/template/spec"),
];

/// `paths` in the pod spec of each of `kinds`.
fn pod_fields(kinds: &[&str], paths: &[&str]) -> Vec<FieldSpec> {
    let mut out = Vec::new();
    for (kind, base) in POD.iter().filter(|(k, _)| kinds.contains(k)) {
        for p in paths {
            out.push(FieldSpec::new(Some(kind), &format!("{base}/{p}"), false));
        }
    }
    out
}

fn fields(rows: &[(&str, &str)]) -> Vec<FieldSpec> {
    rows.iter()
        .map(|(kind, path)| FieldSpec::new(Some(kind), path, false))
        .collect()
}

/// For each kind that can be renamed, the fields that name it (kustomize's built-in name
/// references; role bindings and autoscalers are handled on their own below).
fn references() -> Vec<(&'static str, Vec<FieldSpec>)> {
    const CONFIG_KINDS: [&str; 8] = [
        "Pod",
        "PodTemplate",
        "Deployment",
        "ReplicaSet",
        "DaemonSet",
        "StatefulSet",
        "Job",
        "CronJob",
    ];
    const SPEC_KINDS: [&str; 7] = [
        "Pod",
        "StatefulSet",
        "Deployment",
        "ReplicationController",
        "CronJob",
        "Job",
        "DaemonSet",
    ];
    let mut configmap = pod_fields(
        &CONFIG_KINDS,
        &[
            "volumes/configMap/name",
            "volumes/projected/sources/configMap/name",
            "containers/env/valueFrom/configMapKeyRef/name",
            "initContainers/env/valueFrom/configMapKeyRef/name",
            "containers/envFrom/configMapRef/name",
            "initContainers/envFrom/configMapRef/name",
        ],
    );
    configmap.extend(fields(&[
        ("Node", "spec/configSource/configMap/name"),
        ("Role", "rules/resourceNames"),
        ("ClusterRole", "rules/resourceNames"),
        (
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap",
        ),
    ]));
    let mut secret = pod_fields(
        &CONFIG_KINDS,
        &[
            "volumes/secret/secretName",
            "volumes/projected/sources/secret/name",
            "containers/env/valueFrom/secretKeyRef/name",
            "initContainers/env/valueFrom/secretKeyRef/name",
            "containers/envFrom/secretRef/name",
            "initContainers/envFrom/secretRef/name",
            "imagePullSecrets/name",
        ],
    );
    secret.extend(fields(&[
        ("Ingress", "spec/tls/secretName"),
        (
            "Ingress",
            "metadata/annotations/ingress.kubernetes.io\\/auth-secret",
        ),
        (
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret",
        ),
        (
            "Ingress",
            "metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret",
        ),
        ("ServiceAccount", "imagePullSecrets/name"),
        ("StorageClass", "parameters/secretName"),
        ("StorageClass", "parameters/adminSecretName"),
        ("StorageClass", "parameters/userSecretName"),
        ("StorageClass", "parameters/secretRef"),
        ("Role", "rules/resourceNames"),
        ("ClusterRole", "rules/resourceNames"),
        ("PersistentVolume", "spec/azureFile/secretName"),
    ]));
    secret.push(FieldSpec {
        group: Some("serving.knative.dev".into()),
        ..FieldSpec::new(
            Some("Service"),
            "spec/template/spec/containers/env/valueFrom/secretKeyRef/name",
            false,
        )
    });
    let service = fields(&[
        ("StatefulSet", "spec/serviceName"),
        ("Ingress", "spec/rules/http/paths/backend/serviceName"),
        ("Ingress", "spec/backend/serviceName"),
        ("Ingress", "spec/rules/http/paths/backend/service/name"),
        ("Ingress", "spec/defaultBackend/service/name"),
        ("APIService", "spec/service/name"),
        (
            "ValidatingWebhookConfiguration",
            "webhooks/clientConfig/service/name",
        ),
        (
            "MutatingWebhookConfiguration",
            "webhooks/clientConfig/service/name",
        ),
    ]);
    let account = pod_fields(&SPEC_KINDS, &["serviceAccountName"]);
    let claim = pod_fields(&SPEC_KINDS, &["volumes/persistentVolumeClaim/claimName"]);
    let mut volume = fields(&[("PersistentVolumeClaim", "spec/volumeName")]);
    volume.extend(fields(&[("ClusterRole", "rules/resourceNames")]));
    let storage = fields(&[
        ("PersistentVolume", "spec/storageClassName"),
        ("PersistentVolumeClaim", "spec/storageClassName"),
        (
            "StatefulSet",
            "spec/volumeClaimTemplates/spec/storageClassName",
        ),
    ]);
    let priority = pod_fields(&SPEC_KINDS, &["priorityClassName"]);
    let policy = fields(&[("ValidatingAdmissionPolicyBinding", "spec/policyName")]);
    vec![
        ("ConfigMap", configmap),
        ("Secret", secret),
        ("Service", service),
        ("ServiceAccount", account),
        ("PersistentVolumeClaim", claim),
        ("PersistentVolume", volume),
        ("StorageClass", storage),
        ("PriorityClass", priority),
        ("ValidatingAdmissionPolicy", policy),
    ]
}

/// Kinds an autoscaler's scaleTargetRef may name.
const SCALABLE: [&str; 4] = [
    "Deployment",
    "StatefulSet",
    "ReplicaSet",
    "ReplicationController",
];

/// HorizontalPodAutoscaler scaleTargetRef: the name follows the kind it names.
fn fix_scale_target(res: &mut Resource, index: &Index) {
    if res.obj.kind() != "HorizontalPodAutoscaler" {
        return;
    }
    let ns = res.obj.namespace().map(str::to_string);
    let Some(target) = res.obj.value_mut().pointer_mut("/spec/scaleTargetRef") else {
        return;
    };
    let kind = target
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !SCALABLE.contains(&kind.as_str()) {
        return;
    }
    let new = target
        .get("name")
        .and_then(Value::as_str)
        .and_then(|old| index.resolve(&kind, old, Some(ns.as_deref())));
    if let Some(new) = new {
        target["name"] = Value::String(new);
    }
}

/// What name resolution needs to know about one object.
struct Known {
    names: Vec<String>,
    namespaces: Vec<Option<String>>,
    current_ns: Option<String>,
    cluster: bool,
}

/// Objects by kind and every name they had.
struct Index {
    known: Vec<Known>,
    by_name: HashMap<(String, String), Vec<usize>>,
}

fn norm(n: Option<&str>) -> &str {
    n.unwrap_or("default")
}

impl Index {
    fn new(resources: &[Resource]) -> Self {
        let mut by_name: HashMap<(String, String), Vec<usize>> = HashMap::new();
        let mut known = Vec::with_capacity(resources.len());
        for (i, r) in resources.iter().enumerate() {
            let names: Vec<String> = r.names().map(str::to_string).collect();
            let mut distinct = names.clone();
            distinct.dedup();
            for n in distinct {
                let slot = by_name.entry((r.obj.kind().to_string(), n)).or_default();
                if slot.last() != Some(&i) {
                    slot.push(i);
                }
            }
            known.push(Known {
                names,
                namespaces: r.namespaces().map(|n| n.map(str::to_string)).collect(),
                current_ns: r.obj.namespace().map(str::to_string),
                cluster: is_cluster_scoped(&r.obj),
            });
        }
        Self { known, by_name }
    }

    /// Objects of `kind` once called `old`, seen (now or before) in namespace `ns` when given.
    fn candidates<'a>(
        &'a self,
        kind: &str,
        old: &str,
        ns: Option<Option<&'a str>>,
    ) -> impl Iterator<Item = &'a Known> {
        let hits = self
            .by_name
            .get(&(kind.to_string(), old.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        hits.iter()
            .map(|i| &self.known[*i])
            .filter(move |k| match (ns, k.cluster) {
                (Some(want), false) => {
                    norm(k.current_ns.as_deref()) == norm(want)
                        || k.namespaces
                            .iter()
                            .any(|n| norm(n.as_deref()) == norm(want))
                }
                _ => true,
            })
    }

    /// The current name of the one object of `kind` once called `old` (None when there is none,
    /// or several with different current names).
    fn resolve(&self, kind: &str, old: &str, ns: Option<Option<&str>>) -> Option<String> {
        let mut found: Option<&String> = None;
        for k in self.candidates(kind, old, ns) {
            let current = k.names.last().expect("names end with the current one");
            match found {
                Some(f) if f != current => return None,
                _ => found = Some(current),
            }
        }
        found.cloned()
    }
}

/// Rewrites every reference to a renamed object to its current name; `extra`: name references
/// from transformer configurations.
pub fn fix(resources: &mut [Resource], extra: &[NameReference]) {
    let index = Index::new(resources);
    let mut table: Vec<(&str, Vec<FieldSpec>)> = references();
    for r in extra {
        table.push((r.kind.as_str(), r.field_specs.clone()));
    }
    for res in resources.iter_mut() {
        let ns = res.obj.namespace().map(str::to_string);
        // A cluster-scoped object may refer to objects in any namespace.
        let within = (!is_cluster_scoped(&res.obj)).then_some(ns.as_deref());
        for (kind, specs) in &table {
            for spec in specs {
                fieldspec::visit::<()>(&mut res.obj, spec, &mut |v| {
                    let new = v.as_str().and_then(|old| index.resolve(kind, old, within));
                    if let Some(new) = new {
                        *v = Value::String(new);
                    }
                    Ok(())
                })
                .ok();
            }
        }
        fix_bindings(res, &index);
        fix_scale_target(res, &index);
    }
}

/// RoleBinding and ClusterRoleBinding: roleRef and ServiceAccount subjects.
fn fix_bindings(res: &mut Resource, index: &Index) {
    if !matches!(res.obj.kind(), "RoleBinding" | "ClusterRoleBinding") {
        return;
    }
    let ns = res.obj.namespace().map(str::to_string);
    let v = res.obj.value_mut();
    if let Some(role) = v.get_mut("roleRef") {
        let kind = role
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(old) = role.get("name").and_then(Value::as_str) {
            let want = if kind == "Role" {
                Some(ns.as_deref())
            } else {
                None
            };
            if let Some(new) = index.resolve(&kind, old, want) {
                role["name"] = Value::String(new);
            }
        }
    }
    if let Some(Value::Array(subjects)) = v.get_mut("subjects") {
        for s in subjects {
            if s.get("kind").and_then(Value::as_str) != Some("ServiceAccount") {
                continue;
            }
            let Some(old) = s.get("name").and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            let sns = s
                .get("namespace")
                .and_then(Value::as_str)
                .map(str::to_string)
                .or(ns.clone());
            let hit = index
                .candidates("ServiceAccount", &old, Some(sns.as_deref()))
                .next();
            if let Some(k) = hit {
                s["name"] = Value::String(k.names.last().expect("current name").clone());
                if let Some(cns) = &k.current_ns {
                    s["namespace"] = Value::String(cns.clone());
                }
            }
        }
    }
}
