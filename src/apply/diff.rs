//! What `sluice diff` prints for one object: a unified diff between the live object and the
//! server's dry-run result, as YAML, without server-maintained fields and with Secret values
//! masked. Pure.

use serde_json::Value;
use similar::TextDiff;

use super::inventory::ObjectId;
use super::plan::comparable;

const MASK: &str = "*****";

/// Masks the values of a Secret's `data` and `stringData`, marking which ones changed.
pub fn mask_secrets(before: Option<&Value>, after: &Value) -> (Option<Value>, Value) {
    if after.get("kind").and_then(Value::as_str) != Some("Secret") {
        return (before.cloned(), after.clone());
    }
    let mut before = before.cloned();
    let mut after = after.clone();
    for field in ["data", "stringData"] {
        let old = before.as_ref().and_then(|b| b.get(field)).cloned();
        if let Some(Value::Object(new)) = after.get_mut(field) {
            for (key, value) in new.iter_mut() {
                let unchanged = old.as_ref().and_then(|o| o.get(key)) == Some(value);
                *value = Value::from(if unchanged { MASK } else { "***** (after)" });
            }
        }
        if let Some(Value::Object(map)) = before.as_mut().and_then(|b| b.get_mut(field)) {
            let new = after.get(field).cloned();
            for (key, value) in map.iter_mut() {
                let unchanged = new
                    .as_ref()
                    .and_then(|n| n.get(key))
                    .and_then(Value::as_str)
                    == Some(MASK);
                *value = Value::from(if unchanged { MASK } else { "***** (before)" });
            }
        }
    }
    (before, after)
}

/// A unified diff of `before` (live; `None` when the object does not exist yet) and `after`.
pub fn render(id: &ObjectId, before: Option<&Value>, after: &Value) -> String {
    let (before, after) = mask_secrets(before, after);
    let yaml = |v: &Value| {
        serde_saphyr::to_string(&comparable(v))
            .unwrap_or_else(|e| format!("# not printable: {e}\n"))
    };
    let old = before.as_ref().map(yaml).unwrap_or_default();
    let new = yaml(&after);
    let name = id.display_name();
    TextDiff::from_lines(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("live/{name}"), &format!("merged/{name}"))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_values_never_show_but_changes_do() {
        let before =
            json!({"kind": "Secret", "data": {"same": "c2FtZQ==", "old": "b2xk", "gone": "eA=="}});
        let after =
            json!({"kind": "Secret", "data": {"same": "c2FtZQ==", "old": "bmV3", "added": "eQ=="}});
        let (b, a) = mask_secrets(Some(&before), &after);
        assert_eq!(
            a["data"],
            json!({"same": "*****", "old": "***** (after)", "added": "***** (after)"})
        );
        assert_eq!(
            b.unwrap()["data"],
            json!({"same": "*****", "old": "***** (before)", "gone": "***** (before)"})
        );
        let text = render(
            &ObjectId::of(
                &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
            )
            .unwrap()
            .0,
            Some(&before),
            &after,
        );
        for secret in ["c2FtZQ==", "b2xk", "bmV3"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    #[test]
    fn a_diff_shows_only_what_changed_and_not_server_fields() {
        let before = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "5"}, "data": {"a": "1", "b": "2"}});
        let after = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "6"}, "data": {"a": "1", "b": "3"}});
        let text = render(&ObjectId::of(&after).unwrap().0, Some(&before), &after);
        assert!(
            text.contains("--- live/ConfigMap/c") && text.contains("+++ merged/ConfigMap/c"),
            "{text}"
        );
        assert!(
            text.contains("-  b: '2'") || text.contains("-  b: \"2\""),
            "{text}"
        );
        assert!(!text.contains("resourceVersion"), "{text}");
    }
}
