use serde_json::{Value, json};

use super::*;
use crate::build::object::Object;

fn objects(values: Vec<Value>) -> Vec<Resource> {
    values
        .into_iter()
        .map(|v| Resource::new(Object::new(v).unwrap(), Loc::default()))
        .collect()
}

fn replacement(v: Value) -> Replacement {
    serde_json::from_value(v).unwrap()
}

fn service() -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "webhook-service", "namespace": "system"},
           "spec": {"ports": [{"port": 443, "targetPort": 9443}]}})
}

fn certificate() -> Value {
    json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
           "metadata": {"name": "serving-cert", "namespace": "system"},
           "spec": {"dnsNames": ["SERVICE_NAME.SERVICE_NAMESPACE.svc",
                                 "SERVICE_NAME.SERVICE_NAMESPACE.svc.cluster.local"]}})
}

#[test]
fn copies_a_field_into_parts_of_targets() {
    let mut res = objects(vec![service(), certificate()]);
    for (field, index) in [("metadata.name", 0), ("metadata.namespace", 1)] {
        let r = replacement(json!({
            "source": {"kind": "Service", "version": "v1", "name": "webhook-service", "fieldPath": field},
            "targets": [{"select": {"kind": "Certificate", "group": "cert-manager.io"},
                         "fieldPaths": [".spec.dnsNames.0", ".spec.dnsNames.1"],
                         "options": {"delimiter": ".", "index": index, "create": true}}]}));
        apply(&mut res, &r).unwrap();
    }
    assert_eq!(
        res[1].obj.value()["spec"]["dnsNames"],
        json!([
            "webhook-service.system.svc",
            "webhook-service.system.svc.cluster.local"
        ])
    );
}

#[test]
fn scalar_targets_keep_their_type_and_created_fields_read_as_yaml() {
    let mut res = objects(vec![
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
               "data": {"port": "8080"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "app", "ports": [{"containerPort": 1}], "env": [{"name": "P", "value": "x"}]}]}}}}),
    ]);
    let r = replacement(json!({
        "source": {"kind": "ConfigMap", "name": "c", "fieldPath": "data.port"},
        "targets": [{"select": {"kind": "Deployment"},
                     "fieldPaths": ["spec.template.spec.containers.[name=app].ports.0.containerPort",
                                    "spec.template.spec.containers.[name=app].env.[name=P].value",
                                    "spec.template.metadata.annotations.port"],
                     "options": {"create": true}}]}));
    apply(&mut res, &r).unwrap();
    let d = res[1].obj.value();
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        json!(8080)
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
        json!("8080")
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["annotations"]["port"],
        json!(8080)
    );
}

#[test]
fn reject_and_label_selectors_narrow_targets() {
    let cm = |name: &str, team: &str| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "labels": {"team": team}}, "data": {"v": "old"}})
    };
    let mut res = objects(vec![cm("a", "x"), cm("b", "x"), cm("c", "y")]);
    let r = replacement(json!({
        "sourceValue": "new",
        "targets": [{"select": {"kind": "ConfigMap", "labelSelector": "team=x"},
                     "reject": [{"name": "b"}],
                     "fieldPaths": ["data.v"]}]}));
    apply(&mut res, &r).unwrap();
    let values: Vec<&Value> = res.iter().map(|r| &r.obj.value()["data"]["v"]).collect();
    assert_eq!(values, [&json!("new"), &json!("old"), &json!("old")]);
}

#[test]
fn a_missing_source_or_target_field_is_an_error() {
    let mut res = objects(vec![service(), certificate()]);
    let r = replacement(json!({
        "source": {"kind": "Service", "name": "nope"},
        "targets": [{"select": {"kind": "Certificate"}}]}));
    let Failure::Invalid(m) = apply(&mut res, &r).unwrap_err() else {
        panic!()
    };
    assert!(m.contains("no object matches"), "{m}");
    let r = replacement(json!({
        "source": {"kind": "Service", "fieldPath": "spec.clusterIP"},
        "targets": [{"select": {"kind": "Certificate"}}]}));
    let Failure::Invalid(m) = apply(&mut res, &r).unwrap_err() else {
        panic!()
    };
    assert!(m.contains("spec.clusterIP is missing"), "{m}");
    let r = replacement(json!({
        "source": {"kind": "Service"},
        "targets": [{"select": {"kind": "Certificate"}, "fieldPaths": ["spec.issuerRef.name"]}]}));
    let Failure::Invalid(m) = apply(&mut res, &r).unwrap_err() else {
        panic!()
    };
    assert!(
        m.contains("unable to find field spec.issuerRef.name"),
        "{m}"
    );
}

#[test]
fn writes_into_json_text_and_refuses_yaml_text() {
    let mut res = objects(vec![json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"j": "{\"server\": {\"name\": \"x\"}, \"z\": \"<\"}", "y": "a:\n  b: 1\n"}})]);
    let r = replacement(json!({"sourceValue": "web",
        "targets": [{"select": {"kind": "ConfigMap"}, "fieldPaths": ["data.j.server.name"]}]}));
    apply(&mut res, &r).unwrap();
    assert_eq!(
        res[0].obj.value()["data"]["j"],
        json!(r#"{"server":{"name":"web"},"z":"\u003c"}"#)
    );
    let r = replacement(json!({"sourceValue": "2",
        "targets": [{"select": {"kind": "ConfigMap"}, "fieldPaths": ["data.y.a.b"]}]}));
    assert!(matches!(apply(&mut res, &r), Err(Failure::Unsupported(_))));
}
