//! Telling that an object needs no write without asking the API server: the digest sluice stamps
//! on what it applies, and whether a live object still holds every value of the desired one.
//! Pure.
//!
//! An object is unchanged when (1) the live object carries the digest of the desired manifest
//! (so the manifest is exactly what sluice last applied: no field was added to or removed from
//! it since), (2) every value the manifest sets is the live value (so no other manager changed,
//! removed or reset one: drift and deletions are caught), and (3) no kubectl manager owns fields
//! that sluice would take over. Defaults the API server or admission added are fields the
//! manifest does not set, so they do not matter; a value that admission rewrites fails (2) and
//! goes through a dry run every time, which is correct, only slower. Anything the rules cannot
//! tell (a number spelt differently, a quantity in another unit) also falls back to the dry run.

use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::plan::{SsaMode, takeover};

/// The annotation carrying the digest of the manifest sluice applied.
pub const DIGEST_ANNOTATION: &str = "sluice.dev/digest";

/// The digest of a manifest as sluice applies it (owner labels included, digest annotation
/// excluded).
pub fn digest(object: &Value) -> String {
    let mut hasher = Sha256::new();
    hash_value(&mut hasher, object, true);
    format!("sha256:{}", hex::encode(hasher.finalize()))
}

/// Feeds `value` to the hasher in a canonical form (map keys sorted, types tagged), leaving the
/// digest annotation out.
fn hash_value(hasher: &mut Sha256, value: &Value, top: bool) {
    match value {
        Value::Null => hasher.update(b"n"),
        Value::Bool(b) => hasher.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            hasher.update(b"#");
            hasher.update(n.to_string().as_bytes());
            hasher.update(b";");
        }
        Value::String(s) => {
            hasher.update(b"s");
            hasher.update((s.len() as u64).to_le_bytes());
            hasher.update(s.as_bytes());
        }
        Value::Array(items) => {
            hasher.update(b"[");
            hasher.update((items.len() as u64).to_le_bytes());
            for item in items {
                hash_value(hasher, item, false);
            }
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            hasher.update(b"{");
            for key in keys {
                let child = &map[key];
                if top && key == "metadata" {
                    hash_metadata(hasher, child);
                    continue;
                }
                hash_key(hasher, key);
                hash_value(hasher, child, false);
            }
            hasher.update(b"}");
        }
    }
}

fn hash_key(hasher: &mut Sha256, key: &str) {
    hasher.update((key.len() as u64).to_le_bytes());
    hasher.update(key.as_bytes());
}

fn hash_metadata(hasher: &mut Sha256, metadata: &Value) {
    let Some(map) = metadata.as_object() else {
        hash_key(hasher, "metadata");
        hash_value(hasher, metadata, false);
        return;
    };
    let mut without = map.clone();
    if let Some(Value::Object(annotations)) = without.get_mut("annotations") {
        annotations.remove(DIGEST_ANNOTATION);
        if annotations.is_empty() {
            // The map the stamp made: hash as if it were not there.
            without.remove("annotations");
        }
    }
    hash_key(hasher, "metadata");
    hash_value(hasher, &Value::Object(without), false);
}

/// Puts `digest` on the manifest.
pub fn stamp(object: &mut Value, digest: &str) {
    let annotations = &mut object["metadata"]["annotations"];
    if !annotations.is_object() {
        *annotations = Value::Object(Default::default());
    }
    annotations[DIGEST_ANNOTATION] = Value::from(digest);
}

/// Whether applying `desired` (stamped with `digest`) over `live` would change nothing, decided
/// from the two objects alone; `false` means "ask the API server", not "changed".
pub fn unchanged(desired: &Value, digest: &str, live: &Value, ssa: SsaMode) -> bool {
    let stamped = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(DIGEST_ANNOTATION))
        .and_then(Value::as_str);
    if stamped != Some(digest) {
        return false;
    }
    if ssa == SsaMode::Override {
        let managed = live
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if takeover(managed).is_some() {
            return false;
        }
    }
    covers(live, desired, true)
}

/// Whether `live` holds every value `desired` sets. A null in `desired` asks for the field to be
/// absent; lists must have the same length and hold each desired item at its place.
fn covers(live: &Value, desired: &Value, top: bool) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, value)| {
            if top && key == "stringData" {
                return string_data_covered(have.get("data"), value);
            }
            match (value, have.get(key)) {
                (Value::Null, None | Some(Value::Null)) => true,
                (_, None) => false,
                (value, Some(found)) => covers(found, value, false),
            }
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| covers(h, w, false))
        }
        (want, have) => want == have,
    }
}

/// A Secret's `stringData` is stored base64-encoded in `data`.
fn string_data_covered(data: Option<&Value>, string_data: &Value) -> bool {
    let Some(wanted) = string_data.as_object() else {
        return false;
    };
    wanted.iter().all(|(key, value)| {
        let (Some(text), Some(stored)) = (value.as_str(), data.and_then(|d| d.get(key))) else {
            return false;
        };
        stored.as_str() == Some(&base64::engine::general_purpose::STANDARD.encode(text))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desired() -> (Value, String) {
        let mut object = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "app", "labels": {"sluice.dev/name": "k"}},
            "spec": {"replicas": 2, "template": {"metadata": {"creationTimestamp": null},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]}}}});
        let d = digest(&object);
        stamp(&mut object, &d);
        (object, d)
    }

    /// What the API server returns for `desired`: defaults added, server fields set.
    fn live_of(desired: &Value) -> Value {
        let mut live = desired.clone();
        live["metadata"]["resourceVersion"] = json!("42");
        live["metadata"]["uid"] = json!("u");
        live["metadata"]["managedFields"] =
            json!([{"manager": "sluice", "operation": "Apply", "fieldsV1": {}}]);
        live["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        live["spec"]["template"]["metadata"] = json!({});
        live["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] =
            json!("IfNotPresent");
        live["status"] = json!({"replicas": 2});
        live
    }

    #[test]
    fn the_digest_ignores_key_order_and_its_own_annotation() {
        let (object, d) = desired();
        assert_eq!(digest(&object), d, "the stamp does not change the digest");
        let reordered: Value =
            serde_json::from_str(&serde_json::to_string_pretty(&object).unwrap()).unwrap();
        assert_eq!(digest(&reordered), d);
        let mut changed = object.clone();
        changed["spec"]["replicas"] = json!(3);
        assert_ne!(digest(&changed), d);
        let mut one = json!({"data": {"k": 1}});
        let string = json!({"data": {"k": "1"}});
        assert_ne!(digest(&one), digest(&string), "types count");
        one["metadata"] = json!({"annotations": {"other": "x"}});
        assert_ne!(digest(&one), digest(&json!({"data": {"k": 1}})));
    }

    #[test]
    fn a_live_object_with_defaults_is_unchanged() {
        let (object, d) = desired();
        assert!(unchanged(&object, &d, &live_of(&object), SsaMode::Override));
    }

    #[test]
    fn drift_deletion_and_new_manifests_need_the_server() {
        let (object, d) = desired();
        let live = live_of(&object);
        let mut drifted = live.clone();
        drifted["spec"]["replicas"] = json!(5);
        assert!(
            !unchanged(&object, &d, &drifted, SsaMode::Override),
            "another manager changed a value"
        );
        let mut label_gone = live.clone();
        label_gone["metadata"]["labels"] = json!({});
        assert!(
            !unchanged(&object, &d, &label_gone, SsaMode::Override),
            "a label was removed"
        );
        let mut extra_container = live.clone();
        extra_container["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "sidecar"}));
        assert!(!unchanged(&object, &d, &extra_container, SsaMode::Override));
        let mut unstamped = live.clone();
        unstamped["metadata"]["annotations"] = json!({});
        assert!(
            !unchanged(&object, &d, &unstamped, SsaMode::Override),
            "applied by someone else"
        );
        // A field removed from the manifest: the digest differs, though the live object still
        // holds every remaining value.
        let mut smaller = object.clone();
        smaller["spec"].as_object_mut().unwrap().remove("replicas");
        let smaller_digest = digest(&smaller);
        stamp(&mut smaller, &smaller_digest);
        assert!(!unchanged(
            &smaller,
            &smaller_digest,
            &live,
            SsaMode::Override
        ));
        // A null asks for absence.
        let mut set_timestamp = live.clone();
        set_timestamp["spec"]["template"]["metadata"]["creationTimestamp"] =
            json!("2026-01-01T00:00:00Z");
        assert!(!unchanged(&object, &d, &set_timestamp, SsaMode::Override));
    }

    #[test]
    fn kubectl_owned_fields_go_to_the_server_unless_merging() {
        let (object, d) = desired();
        let mut live = live_of(&object);
        live["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"manager": "kubectl-edit", "operation": "Update", "fieldsV1": {"f:spec": {}}}));
        assert!(!unchanged(&object, &d, &live, SsaMode::Override));
        assert!(unchanged(&object, &d, &live, SsaMode::Merge));
    }

    #[test]
    fn secret_string_data_is_compared_with_the_stored_data() {
        let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"password": "hunter2"}});
        let d = digest(&secret);
        stamp(&mut secret, &d);
        let mut live = secret.clone();
        live.as_object_mut().unwrap().remove("stringData");
        live["data"] = json!({"password": "aHVudGVyMg=="});
        assert!(unchanged(&secret, &d, &live, SsaMode::Override));
        live["data"]["password"] = json!("b3RoZXI=");
        assert!(!unchanged(&secret, &d, &live, SsaMode::Override));
    }
}
