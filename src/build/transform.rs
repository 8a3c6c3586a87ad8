//! The built-in transformers that rewrite fields in place: namespace, name prefix/suffix, labels,
//! annotations, images and replica counts. Pure.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::BuildError;
use super::fieldspec::{self, FieldSpec};
use super::kustomization::{ImageSpec, ReplicaSpec};
use super::object::{Loc, Resource};

fn set_pairs(field: &mut Value, pairs: &BTreeMap<String, String>) -> Result<(), String> {
    if field.is_null() {
        *field = Value::Object(Map::new());
    }
    let Value::Object(map) = field else {
        return Err(format!(
            "expected a mapping, found {}",
            super::object::type_name(field)
        ));
    };
    for (k, v) in pairs {
        map.insert(k.clone(), Value::String(v.clone()));
    }
    Ok(())
}

/// Adds `pairs` at every field named by `specs` (labels or annotations).
pub fn add_pairs(
    resources: &mut [Resource],
    pairs: &BTreeMap<String, String>,
    specs: &[FieldSpec],
    at: &Loc,
) -> Result<(), BuildError> {
    if pairs.is_empty() {
        return Ok(());
    }
    for res in resources.iter_mut() {
        for spec in specs {
            let key = res.obj.key();
            fieldspec::visit(&mut res.obj, spec, &mut |v| set_pairs(v, pairs)).map_err(
                |message| BuildError::Transform {
                    at: at.clone(),
                    message: format!("{key}: {}: {message}", spec.path),
                },
            )?;
        }
    }
    Ok(())
}

/// How the namespace transformer treats RoleBinding subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectMode {
    DefaultOnly,
    AllServiceAccounts,
    None,
}

/// Sets the namespace of every namespaced object, of matching RoleBinding subjects, and at
/// `specs` (a Namespace's `metadata/name` renames it; with `unset_only`, only empty fields are
/// set).
pub fn set_namespace(
    resources: &mut [Resource],
    ns: &str,
    unset_only: bool,
    subjects: SubjectMode,
    specs: &[FieldSpec],
) -> Result<(), BuildError> {
    for res in resources.iter_mut() {
        if !(fieldspec::is_cluster_scoped(&res.obj) || unset_only && res.obj.namespace().is_some())
        {
            res.set_namespace(Some(ns));
        }
        let binding = matches!(res.obj.kind(), "RoleBinding" | "ClusterRoleBinding");
        if let (true, Some(Value::Array(subs))) = (
            binding && subjects != SubjectMode::None,
            res.obj.value_mut().get_mut("subjects"),
        ) {
            for s in subs.iter_mut() {
                let is_sa = s.get("kind").and_then(Value::as_str) == Some("ServiceAccount");
                let is_default = s.get("name").and_then(Value::as_str) == Some("default");
                let hit = is_sa && (subjects == SubjectMode::AllServiceAccounts || is_default);
                if let (true, Value::Object(m)) = (hit, s) {
                    m.insert("namespace".into(), Value::String(ns.into()));
                }
            }
        }
        for spec in specs.iter().filter(|s| s.path != "metadata/namespace") {
            if spec.path == "metadata/name" {
                // Only v1 Namespaces are renamed, as kustomize does.
                let renamed =
                    spec.applies_to(&res.obj) && res.obj.api_version() == "v1" && !unset_only;
                if renamed {
                    res.rename(ns);
                }
                continue;
            }
            fieldspec::visit::<()>(&mut res.obj, spec, &mut |v| {
                let set = v.as_str().is_some_and(|s| !s.is_empty());
                if !(unset_only && set) {
                    *v = Value::String(ns.into());
                }
                Ok(())
            })
            .ok();
        }
    }
    Ok(())
}

/// Adds a prefix and a suffix to the strings at fields besides `metadata/name` that a
/// transformer configuration names.
pub fn affix_fields(resources: &mut [Resource], specs: &[FieldSpec], prefix: &str, suffix: &str) {
    if prefix.is_empty() && suffix.is_empty() {
        return;
    }
    for res in resources.iter_mut() {
        for spec in specs.iter().filter(|s| s.path != "metadata/name") {
            let spec = FieldSpec {
                create: false,
                ..spec.clone()
            };
            fieldspec::visit::<()>(&mut res.obj, &spec, &mut |v| {
                if let Some(s) = v.as_str() {
                    *v = Value::String(format!("{prefix}{s}{suffix}"));
                }
                Ok(())
            })
            .ok();
        }
    }
}

/// Adds a name prefix and suffix, except to kinds kustomize leaves alone.
pub fn add_prefix_suffix(
    resources: &mut [Resource],
    prefix: &str,
    suffix: &str,
    specs: Option<&[FieldSpec]>,
) {
    if prefix.is_empty() && suffix.is_empty() {
        return;
    }
    for res in resources.iter_mut() {
        let skip = matches!(res.obj.kind(), "CustomResourceDefinition" | "Namespace")
            || (res.obj.kind() == "APIService" && res.obj.group() == "apiregistration.k8s.io");
        if skip {
            continue;
        }
        let named = |specs: &[FieldSpec]| {
            specs
                .iter()
                .any(|s| s.path == "metadata/name" && s.applies_to(&res.obj))
        };
        if specs.is_some_and(|specs| !named(specs)) {
            continue;
        }
        let name = format!("{prefix}{}{suffix}", res.obj.name());
        res.rename(&name);
    }
}

/// Sets the replica count of the named workloads; naming an object of another kind is an error.
pub fn set_replicas(
    resources: &mut [Resource],
    replicas: &[ReplicaSpec],
    specs: &[FieldSpec],
    at: &Loc,
) -> Result<(), BuildError> {
    for r in replicas {
        let (mut named, mut set) = (None, false);
        for res in resources
            .iter_mut()
            .filter(|res| res.names().any(|n| n == r.name))
        {
            if !specs.iter().any(|s| s.applies_to(&res.obj)) {
                named.get_or_insert_with(|| res.obj.key());
                continue;
            }
            set = true;
            for spec in specs {
                fieldspec::visit::<()>(&mut res.obj, spec, &mut |v| {
                    *v = Value::from(r.count);
                    Ok(())
                })
                .ok();
            }
        }
        if let (Some(key), false) = (named, set) {
            return Err(BuildError::Transform {
                at: at.clone(),
                message: format!("replicas: {key} is not a kind whose replicas can be set"),
            });
        }
    }
    Ok(())
}

/// Splits an image reference into name, tag and digest.
pub fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..]), digest),
        None => (rest, None, digest),
    }
}

fn new_image(current: &str, spec: &ImageSpec) -> Option<String> {
    let (name, tag, digest) = split_image(current);
    if name != spec.name {
        return None;
    }
    let name = spec.new_name.as_deref().unwrap_or(name);
    let new_tag = spec.new_tag.as_deref().filter(|t| !t.is_empty());
    let new_digest = spec.digest.as_deref().filter(|d| !d.is_empty());
    let suffix = spec.tag_suffix.as_deref().filter(|s| !s.is_empty());
    // A new tag or digest replaces both; a tag suffix extends the tag and drops the digest.
    let (tag, digest) = match (new_tag, new_digest, suffix) {
        (Some(t), d, _) => (Some(t.to_string()), d),
        (None, Some(d), _) => (None, Some(d)),
        (None, None, Some(s)) => (Some(format!("{}{s}", tag.unwrap_or_default())), None),
        (None, None, None) => (tag.map(str::to_string), digest),
    };
    let mut out = name.to_string();
    if let Some(t) = tag.filter(|t| !t.is_empty()) {
        out.push(':');
        out.push_str(&t);
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Some(out)
}

/// Sets every `image` of the lists named `containers` or `initContainers`, wherever they are.
fn update_containers(v: &mut Value, image: &ImageSpec) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                if (k == "containers" || k == "initContainers") && child.is_array() {
                    for c in child.as_array_mut().expect("checked") {
                        if let Some(field) = c.get_mut("image") {
                            set_image(field, image);
                        }
                    }
                } else {
                    update_containers(child, image);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| update_containers(i, image)),
        _ => {}
    }
}

fn set_image(field: &mut Value, image: &ImageSpec) {
    if let Some(new) = field.as_str().and_then(|current| new_image(current, image)) {
        *field = Value::String(new);
    }
}

/// Rewrites container images as kustomize's image transformer does, one entry after the other:
/// first in every `containers` and `initContainers` list, then at `specs` (kustomize's
/// defaults cover pod specs again, so a tag suffix lands twice there, as in kustomize).
/// CustomResourceDefinitions are left alone.
pub fn set_images(resources: &mut [Resource], images: &[ImageSpec], specs: &[FieldSpec]) {
    for image in images {
        for res in resources.iter_mut() {
            if res.obj.kind() == "CustomResourceDefinition" {
                continue;
            }
            update_containers(res.obj.value_mut(), image);
            for spec in specs {
                let spec = FieldSpec {
                    create: false,
                    ..spec.clone()
                };
                fieldspec::visit::<()>(&mut res.obj, &spec, &mut |v| {
                    set_image(v, image);
                    Ok(())
                })
                .ok();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(
        name: &str,
        new_name: Option<&str>,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> ImageSpec {
        ImageSpec {
            name: name.into(),
            new_name: new_name.map(Into::into),
            new_tag: tag.map(Into::into),
            digest: digest.map(Into::into),
            tag_suffix: None,
        }
    }

    #[test]
    fn splits_images_with_registry_ports() {
        assert_eq!(
            split_image("localhost:5000/app:1.0"),
            ("localhost:5000/app", Some("1.0"), None)
        );
        assert_eq!(
            split_image("nginx@sha256:ab"),
            ("nginx", None, Some("sha256:ab"))
        );
        assert_eq!(split_image("nginx"), ("nginx", None, None));
    }

    #[test]
    fn rewrites_matching_images_only() {
        let s = spec("nginx", Some("reg/nginx"), Some("1.25"), None);
        assert_eq!(
            new_image("nginx:1.0", &s).as_deref(),
            Some("reg/nginx:1.25")
        );
        assert_eq!(new_image("nginx-other:1.0", &s), None);
        let d = spec("nginx", None, None, Some("sha256:ff"));
        assert_eq!(
            new_image("nginx:1.0", &d).as_deref(),
            Some("nginx@sha256:ff")
        );
        let n = spec("nginx", Some("x/nginx"), None, None);
        assert_eq!(new_image("nginx:1.0", &n).as_deref(), Some("x/nginx:1.0"));
    }

    #[test]
    fn tag_suffix_extends_the_tag_unless_a_tag_or_digest_is_set() {
        let suffixed = |tag: Option<&str>, digest: Option<&str>| ImageSpec {
            tag_suffix: Some("-alpine".into()),
            ..spec("nginx", None, tag, digest)
        };
        let s = suffixed(None, None);
        assert_eq!(
            new_image("nginx:1.25", &s).as_deref(),
            Some("nginx:1.25-alpine")
        );
        assert_eq!(new_image("nginx", &s).as_deref(), Some("nginx:-alpine"));
        assert_eq!(
            new_image("nginx:1@sha256:ab", &s).as_deref(),
            Some("nginx:1-alpine")
        );
        let t = suffixed(Some("2"), None);
        assert_eq!(new_image("nginx:1", &t).as_deref(), Some("nginx:2"));
        let d = suffixed(None, Some("sha256:ff"));
        assert_eq!(new_image("nginx:1", &d).as_deref(), Some("nginx@sha256:ff"));
    }
}
