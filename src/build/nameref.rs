//! Name references: after prefixes, suffixes and hash suffixes rename ConfigMaps, Secrets,
//! Services, ServiceAccounts, roles and claims, the fields that refer to them follow. Pure.

use serde_json::Value;

use super::fieldspec::{self, FieldSpec, is_cluster_scoped};
use super::object::Resource;

const POD_KINDS: [(&str, &str); 8] = [
    ("Pod", "spec"),
    ("Deployment", "spec/template/spec"),
    ("ReplicaSet", "spec/template/spec"),
    ("DaemonSet", "spec/template/spec"),
    ("StatefulSet", "spec/template/spec"),
    ("Job", "spec/template/spec"),
    ("ReplicationController", "spec/template/spec"),
    ("CronJob", "spec/jobTemplate/spec/template/spec"),
];

fn pod_fields(paths: &[&str]) -> Vec<FieldSpec> {
    let mut out = Vec::new();
    for (kind, base) in POD_KINDS {
        for p in paths {
            out.push(FieldSpec::new(Some(kind), &format!("{base}/{p}"), false));
        }
    }
    out
}

/// For each kind that can be renamed, the fields that name it.
fn references() -> Vec<(&'static str, Vec<FieldSpec>)> {
    let mut configmap = pod_fields(&[
        "volumes/configMap/name",
        "volumes/projected/sources/configMap/name",
        "containers/env/valueFrom/configMapKeyRef/name",
        "initContainers/env/valueFrom/configMapKeyRef/name",
        "containers/envFrom/configMapRef/name",
        "initContainers/envFrom/configMapRef/name",
    ]);
    configmap.push(FieldSpec::new(Some("Pod"), "spec/volumes/configMap/name", false));
    let mut secret = pod_fields(&[
        "volumes/secret/secretName",
        "volumes/projected/sources/secret/name",
        "containers/env/valueFrom/secretKeyRef/name",
        "initContainers/env/valueFrom/secretKeyRef/name",
        "containers/envFrom/secretRef/name",
        "initContainers/envFrom/secretRef/name",
        "imagePullSecrets/name",
    ]);
    secret.push(FieldSpec::new(Some("ServiceAccount"), "imagePullSecrets/name", false));
    secret.push(FieldSpec::new(Some("ServiceAccount"), "secrets/name", false));
    secret.push(FieldSpec::new(Some("Ingress"), "spec/tls/secretName", false));
    let service = vec![
        FieldSpec::new(Some("Ingress"), "spec/rules/http/paths/backend/service/name", false),
        FieldSpec::new(Some("Ingress"), "spec/defaultBackend/service/name", false),
        FieldSpec::new(Some("Ingress"), "spec/rules/http/paths/backend/serviceName", false),
        FieldSpec::new(Some("Ingress"), "spec/backend/serviceName", false),
        FieldSpec::new(Some("StatefulSet"), "spec/serviceName", false),
        FieldSpec::new(Some("APIService"), "spec/service/name", false),
        FieldSpec::new(Some("ValidatingWebhookConfiguration"), "webhooks/clientConfig/service/name", false),
        FieldSpec::new(Some("MutatingWebhookConfiguration"), "webhooks/clientConfig/service/name", false),
    ];
    let account = pod_fields(&["serviceAccountName", "serviceAccount"]);
    let claim = pod_fields(&["volumes/persistentVolumeClaim/claimName"]);
    let volume = vec![FieldSpec::new(Some("PersistentVolumeClaim"), "spec/volumeName", false)];
    let priority = pod_fields(&["priorityClassName"]);
    vec![
        ("ConfigMap", configmap),
        ("Secret", secret),
        ("Service", service),
        ("ServiceAccount", account),
        ("PersistentVolumeClaim", claim),
        ("PersistentVolume", volume),
        ("PriorityClass", priority),
    ]
}

/// The current name of the single object of `kind` that was once called `old` in `ns` (any
/// namespace when `ns` is None).
fn resolve(all: &[(String, Vec<String>, Vec<Option<String>>, Option<String>, bool)], kind: &str, old: &str, ns: Option<Option<&str>>) -> Option<String> {
    let mut found: Option<&String> = None;
    for (k, names, namespaces, current_ns, cluster) in all {
        if k != kind || !names.iter().any(|n| n == old) {
            continue;
        }
        if let (Some(want), false) = (ns, *cluster) {
            let norm = |n: Option<&str>| n.unwrap_or("default").to_string();
            let same = norm(current_ns.as_deref()) == norm(want) || namespaces.iter().any(|n| norm(n.as_deref()) == norm(want));
            if !same {
                continue;
            }
        }
        let current = names.last().expect("names end with the current one");
        match found {
            Some(f) if f != current => return None,
            _ => found = Some(current),
        }
    }
    found.cloned()
}

/// Rewrites every reference to a renamed object to its current name.
pub fn fix(resources: &mut [Resource]) {
    let all: Vec<_> = resources
        .iter()
        .map(|r| {
            (
                r.obj.kind().to_string(),
                r.names().map(str::to_string).collect::<Vec<_>>(),
                r.namespaces().map(|n| n.map(str::to_string)).collect::<Vec<_>>(),
                r.obj.namespace().map(str::to_string),
                is_cluster_scoped(&r.obj),
            )
        })
        .collect();
    if !all.iter().any(|(_, names, ..)| names.windows(2).any(|w| w[0] != w[1])) {
        return;
    }
    let table = references();
    for res in resources.iter_mut() {
        let ns = res.obj.namespace().map(str::to_string);
        for (kind, specs) in &table {
            for spec in specs {
                fieldspec::visit::<()>(&mut res.obj, spec, &mut |v| {
                    if let Some(old) = v.as_str() {
                        if let Some(new) = resolve(&all, kind, old, Some(ns.as_deref())) {
                            *v = Value::String(new);
                        }
                    }
                    Ok(())
                })
                .ok();
            }
        }
        fix_bindings(res, &all);
    }
}

/// RoleBinding and ClusterRoleBinding: roleRef and ServiceAccount subjects.
fn fix_bindings(res: &mut Resource, all: &[(String, Vec<String>, Vec<Option<String>>, Option<String>, bool)]) {
    if !matches!(res.obj.kind(), "RoleBinding" | "ClusterRoleBinding") {
        return;
    }
    let ns = res.obj.namespace().map(str::to_string);
    let v = res.obj.value_mut();
    if let Some(role) = v.get_mut("roleRef") {
        let kind = role.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
        if let Some(old) = role.get("name").and_then(Value::as_str) {
            let want = if kind == "Role" { Some(ns.as_deref()) } else { None };
            if let Some(new) = resolve(all, &kind, old, want) {
                role["name"] = Value::String(new);
            }
        }
    }
    if let Some(Value::Array(subjects)) = v.get_mut("subjects") {
        for s in subjects {
            if s.get("kind").and_then(Value::as_str) != Some("ServiceAccount") {
                continue;
            }
            let Some(old) = s.get("name").and_then(Value::as_str).map(str::to_string) else { continue };
            let sns = s.get("namespace").and_then(Value::as_str).map(str::to_string).or(ns.clone());
            let hit = all.iter().find(|(k, names, namespaces, ..)| {
                k == "ServiceAccount"
                    && names.iter().any(|n| *n == old)
                    && namespaces.iter().any(|n| n.as_deref().unwrap_or("default") == sns.as_deref().unwrap_or("default"))
            });
            if let Some((_, names, _, current_ns, _)) = hit {
                s["name"] = Value::String(names.last().expect("current name").clone());
                if let Some(cns) = current_ns {
                    if s.get("namespace").is_some() {
                        s["namespace"] = Value::String(cns.clone());
                    }
                }
            }
        }
    }
}
