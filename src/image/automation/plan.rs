//! What an ImageUpdateAutomation's spec asks for, checked (`Settings`), which policies it
//! selects, where each commit goes (one branch, or one branch per policy) and which commit an
//! update builds on. Pure.

use std::collections::BTreeMap;

use super::message::{self, PolicyData, TemplateData, TemplateError};
use crate::api::image_update_automation::{ImageUpdateAutomationSpec, LabelSelector};
use crate::image::setters::Scope;

/// The branch checked out when neither the automation nor its GitRepository names one.
pub const DEFAULT_BRANCH: &str = "main";

/// A checked spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The directory to update, `/`-separated from the root; empty for the root.
    pub path: String,
    pub checkout: String,
    pub push: PushMode,
    pub author_name: String,
    pub author_email: String,
    pub message_template: String,
    pub values: BTreeMap<String, String>,
    /// `key=value` Git push options.
    pub push_options: Vec<String>,
}

/// Where commits go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushMode {
    /// One commit for every change, pushed to `branch` (and to `also`, from `refspec`).
    Branch {
        branch: String,
        also: Option<String>,
    },
    /// One branch per policy, named by the template.
    PerUpdate { template: String },
}

/// Checks the spec; `source_branch` is the GitRepository's `ref.branch`. The error names the
/// field.
pub fn settings(
    spec: &ImageUpdateAutomationSpec,
    source_branch: Option<&str>,
) -> Result<Settings, String> {
    if spec.source_ref.kind != "GitRepository" {
        return Err(format!(
            "spec.sourceRef.kind: {:?} is not supported; use GitRepository",
            spec.source_ref.kind
        ));
    }
    if spec.update.strategy != "Setters" {
        return Err(format!(
            "spec.update.strategy: {:?} is not supported; use Setters",
            spec.update.strategy
        ));
    }
    let path = normalise_path(spec.update.path.as_deref())?;
    let checkout = match &spec.git.checkout {
        Some(c) => {
            let r = &c.reference;
            if r.tag.is_some() || r.semver.is_some() || r.name.is_some() || r.commit.is_some() {
                return Err(
                    "spec.git.checkout.ref: only branch is supported (commits go on a branch)"
                        .into(),
                );
            }
            r.branch.clone()
        }
        None => None,
    }
    .or_else(|| source_branch.map(str::to_owned))
    .unwrap_or_else(|| DEFAULT_BRANCH.to_owned());
    check_branch("spec.git.checkout.ref.branch", &checkout)?;
    let push = spec.git.push.clone().unwrap_or_default();
    let mode = match &push.branch_template {
        Some(template) => {
            message::check("spec.git.push.branchTemplate", template).map_err(|e| e.to_string())?;
            PushMode::PerUpdate {
                template: template.clone(),
            }
        }
        None => {
            let branch = push.branch.clone().unwrap_or_else(|| checkout.clone());
            check_branch("spec.git.push.branch", &branch)?;
            let also = push.refspec.as_deref().map(refspec_target).transpose()?;
            PushMode::Branch { branch, also }
        }
    };
    let commit = &spec.git.commit;
    if commit.author.email.trim().is_empty() {
        return Err("spec.git.commit.author.email: must be set".into());
    }
    let message_template = commit
        .message_template
        .clone()
        .filter(|t| !t.trim().is_empty())
        .unwrap_or_else(|| message::DEFAULT_MESSAGE.to_owned());
    message::check("spec.git.commit.messageTemplate", &message_template)
        .map_err(|e| e.to_string())?;
    Ok(Settings {
        path,
        checkout,
        push: mode,
        author_name: match commit.author.name.trim() {
            "" => "sluice".to_owned(),
            name => name.to_owned(),
        },
        author_email: commit.author.email.trim().to_owned(),
        message_template,
        values: commit.message_template_values.clone(),
        push_options: push
            .options
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect(),
    })
}

/// `spec.update.path` as a `/`-separated path below the root, refusing anything that leaves it.
pub fn normalise_path(path: Option<&str>) -> Result<String, String> {
    let raw = path.unwrap_or("").trim();
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(format!("spec.update.path: {raw:?} leaves the repository"));
            }
            p => parts.push(p),
        }
    }
    // A leading `/` is the repository root, as in Flux.
    Ok(parts.join("/"))
}

/// The destination branch of a `src:refs/heads/dst` refspec; forced refspecs are refused.
fn refspec_target(refspec: &str) -> Result<String, String> {
    let bad = |why: &str| format!("spec.git.push.refspec: {refspec:?} {why}");
    if refspec.starts_with('+') {
        return Err(bad("is forced (+); sluice never force-pushes"));
    }
    let (_, dst) = refspec
        .split_once(':')
        .ok_or_else(|| bad("is not SRC:DST"))?;
    let branch = dst
        .strip_prefix("refs/heads/")
        .ok_or_else(|| bad("must push to refs/heads/<branch>"))?;
    check_branch("spec.git.push.refspec", branch)?;
    Ok(branch.to_owned())
}

fn check_branch(field: &str, branch: &str) -> Result<(), String> {
    let ok = !branch.is_empty()
        && !branch.starts_with(['-', '/'])
        && !branch.ends_with(['/', '.'])
        && !branch.contains("..")
        && !branch.contains("//")
        && !branch.ends_with(".lock")
        && !branch
            .chars()
            .any(|c| c.is_control() || " ~^:?*[\\".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!("{field}: {branch:?} is not a valid branch name"))
    }
}

/// Whether `labels` satisfy `selector` (no selector selects everything).
pub fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return true;
    };
    let labels_ok = selector
        .match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().all(|r| {
        let value = labels.get(&r.key);
        match r.operator.as_str() {
            "In" => value.is_some_and(|v| r.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !r.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// One branch to commit to and the policies its commit applies.
#[derive(Debug, Clone)]
pub struct Target {
    pub branch: String,
    /// Another branch that gets the same commit (`refspec`).
    pub also: Option<String>,
    pub scope: Scope,
    /// The policy this branch is for, in per-update mode.
    pub policy: Option<PolicyData>,
}

/// The branches one run commits to.
pub fn targets(
    settings: &Settings,
    automation: &str,
    scope: &Scope,
) -> Result<Vec<Target>, TemplateError> {
    match &settings.push {
        PushMode::Branch { branch, also } => Ok(vec![Target {
            branch: branch.clone(),
            also: also.clone(),
            scope: scope.clone(),
            policy: None,
        }]),
        PushMode::PerUpdate { template } => scope
            .selected
            .iter()
            .filter_map(|(name, latest)| Some((name, latest.as_ref()?)))
            .map(|(name, latest)| {
                let policy = PolicyData {
                    namespace: scope.namespace.clone(),
                    name: name.clone(),
                    image: latest.name.clone(),
                    tag: latest.tag.clone(),
                };
                let data = TemplateData {
                    automation: automation.to_owned(),
                    changes: &[],
                    values: &settings.values,
                    policy: Some(policy.clone()),
                };
                let branch = message::render("spec.git.push.branchTemplate", template, &data)?;
                check_branch("spec.git.push.branchTemplate", &branch).map_err(|reason| {
                    TemplateError {
                        field: "spec.git.push.branchTemplate",
                        reason,
                    }
                })?;
                let mut only = scope.clone();
                only.selected.retain(|n, _| n == name);
                Ok(Target {
                    branch,
                    also: None,
                    scope: only,
                    policy: Some(policy),
                })
            })
            .collect(),
    }
}

/// Which commit an update of a branch builds on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// The checked-out branch's tip: the target branch is it, is new, or was merged into it.
    Checkout,
    /// The target branch's tip: it has commits the checked-out branch lacks (an unmerged update).
    Target,
}

/// Decides the base from the target branch's tip and whether it is merged into the checkout.
/// Either way the push is a fast-forward of the target branch.
pub fn base(target_tip: Option<&str>, checkout_tip: &str, target_merged: bool) -> Base {
    match target_tip {
        None => Base::Checkout,
        Some(t) if t == checkout_tip || target_merged => Base::Checkout,
        Some(_) => Base::Target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::image_policy::ImageRef;
    use crate::api::image_update_automation::LabelSelectorRequirement;

    fn spec(value: serde_json::Value) -> ImageUpdateAutomationSpec {
        serde_json::from_value(value).unwrap()
    }

    fn base_spec() -> serde_json::Value {
        serde_json::json!({
            "sourceRef": {"name": "repo"},
            "git": {"commit": {"author": {"name": "bot", "email": "bot@example.com"}}},
            "update": {"path": "./clusters/prod/"},
        })
    }

    #[test]
    fn defaults_follow_the_source_branch() {
        let s = settings(&spec(base_spec()), Some("develop")).unwrap();
        assert_eq!(s.checkout, "develop");
        assert_eq!(
            s.push,
            PushMode::Branch {
                branch: "develop".into(),
                also: None
            }
        );
        assert_eq!(s.path, "clusters/prod");
        assert_eq!(s.message_template, message::DEFAULT_MESSAGE);
        assert_eq!(settings(&spec(base_spec()), None).unwrap().checkout, "main");
    }

    #[test]
    fn bad_specs_name_their_field() {
        let with = |patch: serde_json::Value| {
            let mut v = base_spec();
            json_patch::merge(&mut v, &patch);
            settings(&spec(v), None).unwrap_err()
        };
        assert!(
            with(serde_json::json!({"update": {"path": "../x"}})).starts_with("spec.update.path")
        );
        assert!(
            with(
                serde_json::json!({"git": {"push": {"refspec": "+refs/heads/main:refs/heads/x"}}})
            )
            .contains("never force-pushes")
        );
        assert!(
            with(serde_json::json!({"git": {"push": {"branch": "a b"}}}))
                .starts_with("spec.git.push.branch")
        );
        assert!(
            with(serde_json::json!({"git": {"checkout": {"ref": {"tag": "v1"}}}}))
                .starts_with("spec.git.checkout.ref")
        );
        assert!(
            with(serde_json::json!({"git": {"commit": {"messageTemplate": "{{ if }"}}}))
                .starts_with("spec.git.commit.messageTemplate")
        );
        assert!(
            with(serde_json::json!({"sourceRef": {"kind": "Bucket"}}))
                .starts_with("spec.sourceRef.kind")
        );
        assert!(
            with(serde_json::json!({"git": {"commit": {"author": {"email": ""}}}}))
                .contains("author.email")
        );
    }

    #[test]
    fn one_branch_per_moving_policy() {
        let mut v = base_spec();
        json_patch::merge(
            &mut v,
            &serde_json::json!({"git": {"push": {"branchTemplate": "update/{{ .Policy.Name }}-{{ .Tag }}"}}}),
        );
        let s = settings(&spec(v), None).unwrap();
        let latest = |tag: &str| {
            Some(ImageRef {
                name: "reg/app".into(),
                tag: tag.into(),
                digest: None,
            })
        };
        let mut scope = Scope {
            namespace: "apps".into(),
            ..Scope::default()
        };
        scope.selected.insert("web".into(), latest("1.1.0"));
        scope.selected.insert("api".into(), latest("2.0.0"));
        scope.selected.insert("pending".into(), None);
        let t = targets(&s, "apps/auto", &scope).unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.branch.as_str()).collect();
        assert_eq!(names, ["update/api-2.0.0", "update/web-1.1.0"]);
        assert_eq!(t[1].scope.selected.len(), 1);
        assert!(t[1].scope.selected.contains_key("web"));
    }

    #[test]
    fn the_base_is_never_behind_the_target() {
        assert_eq!(base(None, "c", false), Base::Checkout);
        assert_eq!(base(Some("c"), "c", true), Base::Checkout);
        assert_eq!(base(Some("t"), "c", true), Base::Checkout, "merged");
        assert_eq!(base(Some("t"), "c", false), Base::Target, "unmerged");
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("team".to_string(), "a".to_string())]
            .into_iter()
            .collect();
        let mut sel = LabelSelector::default();
        assert!(selects(None, &labels));
        assert!(selects(Some(&sel), &labels));
        sel.match_labels.insert("team".into(), "b".into());
        assert!(!selects(Some(&sel), &labels));
        sel.match_labels.clear();
        sel.match_expressions.push(LabelSelectorRequirement {
            key: "team".into(),
            operator: "In".into(),
            values: vec!["a".into(), "c".into()],
        });
        assert!(selects(Some(&sel), &labels));
        sel.match_expressions[0].operator = "DoesNotExist".into();
        assert!(!selects(Some(&sel), &labels));
    }
}
