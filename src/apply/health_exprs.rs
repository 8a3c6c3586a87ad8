//! Health decided by CEL expressions (a Kustomization's `healthCheckExprs`, as in Flux):
//! compiled once per reconcile, then evaluated against the live objects of the kinds they name.
//! Pure.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program};
use serde_json::Value;

use super::health::Health;
use crate::api::kustomization::CustomHealthCheck;

/// The CEL environment: the standard library with its macros (`has`, `all`, `exists`,
/// `filter`, ...), optional fields (`status.?phase.orValue('')`) and the string functions.
static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| {
    let mut env = Env::stdlib();
    env.add_extension(cel::extensions::strings)
        .expect("the string functions register on a fresh environment");
    Arc::new(env)
});

#[derive(Debug, thiserror::Error)]
pub enum HealthExprError {
    #[error(
        "healthCheckExprs[{index}] ({api_version} {kind}): {field} expression `{expression}` does not compile: {message}"
    )]
    Compile {
        index: usize,
        api_version: String,
        kind: String,
        field: &'static str,
        expression: String,
        message: String,
    },
}

#[derive(Debug)]
struct Expr {
    field: &'static str,
    source: String,
    program: Program,
}

#[derive(Debug)]
struct Rule {
    group: String,
    kind: String,
    in_progress: Option<Expr>,
    failed: Option<Expr>,
    current: Expr,
}

/// The compiled expressions of one Kustomization (none: every kind keeps its built-in rules).
#[derive(Debug, Default)]
pub struct HealthExprs {
    rules: Vec<Rule>,
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(group, _)| group)
}

impl HealthExprs {
    /// Compiles every expression; the first that does not compile is the error, naming the kind,
    /// the field and the expression.
    pub fn compile(checks: &[CustomHealthCheck]) -> Result<HealthExprs, HealthExprError> {
        let mut rules = Vec::with_capacity(checks.len());
        for (index, check) in checks.iter().enumerate() {
            let compile = |field: &'static str, source: &str| {
                ENV.compile(source)
                    .map(|program| Expr {
                        field,
                        source: source.to_string(),
                        program,
                    })
                    .map_err(|e| HealthExprError::Compile {
                        index,
                        api_version: check.api_version.clone(),
                        kind: check.kind.clone(),
                        field,
                        expression: source.to_string(),
                        message: e.to_string(),
                    })
            };
            rules.push(Rule {
                group: group_of(&check.api_version).to_string(),
                kind: check.kind.clone(),
                in_progress: check
                    .in_progress
                    .as_deref()
                    .map(|s| compile("inProgress", s))
                    .transpose()?,
                failed: check
                    .failed
                    .as_deref()
                    .map(|s| compile("failed", s))
                    .transpose()?,
                current: compile("current", &check.current)?,
            });
        }
        Ok(HealthExprs { rules })
    }

    /// The health of `object` when an expression names its kind (the first one that does);
    /// `None` leaves it to the built-in rules.
    pub fn assess(&self, object: &Value) -> Option<Health> {
        let field = |key| object.get(key).and_then(Value::as_str).unwrap_or("");
        let (group, kind) = (group_of(field("apiVersion")), field("kind"));
        let rule = self
            .rules
            .iter()
            .find(|r| r.group == group && r.kind == kind)?;
        Some(rule.judge(object))
    }
}

impl Rule {
    /// `inProgress`, then `failed`, then `current`: the first that is true decides. An
    /// expression that cannot be evaluated (a field the object does not have yet) or gives no
    /// bool leaves the object in progress, saying why: the wait ends at its timeout.
    fn judge(&self, object: &Value) -> Health {
        let mut context = Context::with_env(ENV.clone());
        if let Value::Object(fields) = object {
            for (name, value) in fields {
                context.add_variable_from_value(name.as_str(), to_cel(value));
            }
        }
        let holds = |expr: &Expr| -> Result<bool, String> {
            match expr.program.execute(&context) {
                Ok(cel::Value::Bool(b)) => Ok(b),
                Ok(other) => Err(format!(
                    "{} expression `{}` gives a {}, not a bool",
                    expr.field,
                    expr.source,
                    other.type_of()
                )),
                Err(e) => Err(format!(
                    "{} expression `{}` cannot be evaluated: {e}",
                    expr.field, expr.source
                )),
            }
        };
        let said = |expr: &Expr| format!("{} expression `{}` is true", expr.field, expr.source);
        let decide = || -> Result<Health, String> {
            if let Some(expr) = &self.in_progress
                && holds(expr)?
            {
                return Ok(Health::InProgress(said(expr)));
            }
            if let Some(expr) = &self.failed
                && holds(expr)?
            {
                return Ok(Health::Failed(said(expr)));
            }
            if holds(&self.current)? {
                return Ok(Health::Current);
            }
            Ok(Health::InProgress(format!(
                "current expression `{}` is not true yet",
                self.current.source
            )))
        };
        decide().unwrap_or_else(Health::InProgress)
    }
}

/// A JSON value as CEL sees it: integers are `int` (as Kubernetes' CEL has them), so
/// `status.replicas + 1` and `metadata.generation == status.observedGeneration` both work.
fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => cel::Value::Int(i),
            (None, Some(u)) => cel::Value::UInt(u),
            (None, None) => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Object(fields) => {
            let map: HashMap<String, cel::Value> =
                fields.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            cel::Value::Map(map.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(current: &str, in_progress: Option<&str>, failed: Option<&str>) -> CustomHealthCheck {
        CustomHealthCheck {
            api_version: "example.com/v1".into(),
            kind: "Widget".into(),
            current: current.into(),
            in_progress: in_progress.map(Into::into),
            failed: failed.map(Into::into),
        }
    }

    fn widget(status: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
            "metadata": {"name": "w", "generation": 2}, "spec": {"size": 3}, "status": status})
    }

    const READY: &str = "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')";
    const FAILED: &str = "status.conditions.exists(c, c.type == 'Ready' && c.status == 'False')";

    #[test]
    fn the_first_true_expression_decides_in_flux_order() {
        let exprs = HealthExprs::compile(&[check(
            READY,
            Some("status.?phase.orValue('') == 'Provisioning'"),
            Some(FAILED),
        )])
        .unwrap();
        let ready = |status: &str| json!({"conditions": [{"type": "Ready", "status": status}]});
        assert_eq!(exprs.assess(&widget(ready("True"))), Some(Health::Current));
        assert!(matches!(
            exprs.assess(&widget(ready("False"))),
            Some(Health::Failed(m)) if m.contains("failed expression") && m.contains("'False'")
        ));
        // inProgress is asked first, even when failed would hold too.
        let mut provisioning = ready("False");
        provisioning["phase"] = json!("Provisioning");
        assert!(matches!(
            exprs.assess(&widget(provisioning)),
            Some(Health::InProgress(m)) if m.starts_with("inProgress expression")
        ));
        // None true: in progress.
        assert!(matches!(
            exprs.assess(&widget(ready("Unknown"))),
            Some(Health::InProgress(m)) if m.contains("not true yet")
        ));
    }

    #[test]
    fn fields_not_there_yet_and_non_bools_wait_saying_why() {
        let exprs = HealthExprs::compile(&[check("status.ready", None, None)]).unwrap();
        let no_status =
            json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}});
        assert!(matches!(
            exprs.assess(&no_status),
            Some(Health::InProgress(m)) if m.contains("cannot be evaluated") && m.contains("status")
        ));
        assert!(matches!(
            exprs.assess(&widget(json!({"ready": "yes"}))),
            Some(Health::InProgress(m)) if m.contains("gives a string, not a bool")
        ));
        assert_eq!(
            exprs.assess(&widget(json!({"ready": true}))),
            Some(Health::Current)
        );
    }

    #[test]
    fn integers_are_ints() {
        let exprs = HealthExprs::compile(&[check(
            "status.readyReplicas + 1 > spec.size && metadata.generation == status.observedGeneration",
            None,
            None,
        )])
        .unwrap();
        let status = json!({"readyReplicas": 3, "observedGeneration": 2});
        assert_eq!(exprs.assess(&widget(status)), Some(Health::Current));
    }

    #[test]
    fn only_the_named_kind_of_the_named_group_in_any_version() {
        let exprs = HealthExprs::compile(&[check("true", None, None)]).unwrap();
        let mut v2 = widget(json!({}));
        v2["apiVersion"] = json!("example.com/v2");
        assert_eq!(exprs.assess(&v2), Some(Health::Current));
        let mut other_group = widget(json!({}));
        other_group["apiVersion"] = json!("other.io/v1");
        assert_eq!(exprs.assess(&other_group), None);
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment"});
        assert_eq!(exprs.assess(&deployment), None);
        assert!(HealthExprs::default().assess(&widget(json!({}))).is_none());
    }

    #[test]
    fn an_expression_that_does_not_compile_names_kind_field_and_expression() {
        let err = HealthExprs::compile(&[
            check("true", None, None),
            check("true", None, Some("status.phase ==")),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("healthCheckExprs[1] (example.com/v1 Widget): failed expression `status.phase ==` does not compile: "), "{err}");
        assert!(err.contains("Syntax error"), "{err}");
    }
}
