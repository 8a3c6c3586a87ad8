//! A manifest held as its JSON text from the moment it is prepared until it is written: a parsed
//! `Value` of a small object takes about eight times the memory of its text, and a large set
//! holds every manifest until its stage is written. Readers parse it when they need a value, one
//! object at a time. Pure; no I/O.

use serde_json::Value;
use serde_json::value::RawValue;

/// One object's manifest, as the JSON text sent to the API server.
#[derive(Clone, Debug)]
pub(super) struct Manifest(Box<RawValue>);

impl Manifest {
    pub(super) fn new(object: &Value) -> Self {
        Self(serde_json::value::to_raw_value(object).expect("a JSON value serializes"))
    }

    /// The manifest as a value to read or edit.
    pub(super) fn value(&self) -> Value {
        serde_json::from_str(self.0.get()).expect("the text was serialized from a value")
    }

    /// The manifest as it is sent.
    pub(super) fn raw(&self) -> &RawValue {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_manifest_reads_back_as_the_value_it_was_made_from() {
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "labels": {"z": "1", "a": "2"}}, "data": {"k": "v\n\"q\""}});
        let manifest = Manifest::new(&object);
        assert_eq!(manifest.value(), object);
        let sent: Value = serde_json::from_str(manifest.raw().get()).unwrap();
        assert_eq!(sent, object);
    }
}
