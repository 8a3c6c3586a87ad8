use super::*;

fn latest(name: &str, tag: &str, digest: Option<&str>) -> Option<ImageRef> {
    Some(ImageRef {
        name: name.into(),
        tag: tag.into(),
        digest: digest.map(str::to_owned),
    })
}

fn scope() -> Scope {
    let mut selected = BTreeMap::new();
    selected.insert(
        "web".to_string(),
        latest("reg.local:5000/web", "1.2.0", None),
    );
    selected.insert(
        "api".to_string(),
        latest("reg.local:5000/api", "2.0.0", Some("sha256:abc")),
    );
    selected.insert("pending".to_string(), None);
    Scope {
        namespace: "apps".into(),
        existing: Some(
            selected
                .keys()
                .cloned()
                .chain(["unselected".into()])
                .collect(),
        ),
        selected,
    }
}

fn apply(text: &str) -> Result<Option<(String, Vec<Change>)>, SetterError> {
    update_file("f.yaml", text.as_bytes(), &scope())
        .map(|o| o.map(|u| (String::from_utf8(u.bytes).unwrap(), u.changes)))
}

fn updated(text: &str) -> String {
    apply(text).unwrap().expect("a change").0
}

#[test]
fn whole_name_tag_and_digest_markers() {
    let text = "\
spec:
  containers:
  - image: reg.local:5000/web:1.0.0 # {\"$imagepolicy\": \"apps:web\"}
  - image: reg.local:5000/api:1.0.0 # {\"$imagepolicy\": \"apps:api\"}
images:
- name: web
  newName: old/web # {\"$imagepolicy\": \"apps:web:name\"}
  newTag: 1.0.0 # {\"$imagepolicy\": \"apps:web:tag\"}
  digest: sha256:old # {\"$imagepolicy\": \"apps:api:digest\"}
";
    let (out, changes) = apply(text).unwrap().unwrap();
    assert_eq!(
        out,
        "\
spec:
  containers:
  - image: reg.local:5000/web:1.2.0 # {\"$imagepolicy\": \"apps:web\"}
  - image: reg.local:5000/api:2.0.0@sha256:abc # {\"$imagepolicy\": \"apps:api\"}
images:
- name: web
  newName: reg.local:5000/web # {\"$imagepolicy\": \"apps:web:name\"}
  newTag: 1.2.0 # {\"$imagepolicy\": \"apps:web:tag\"}
  digest: sha256:abc # {\"$imagepolicy\": \"apps:api:digest\"}
"
    );
    let setters: Vec<&str> = changes.iter().map(|c| c.setter.as_str()).collect();
    assert_eq!(
        setters,
        [
            "apps:web",
            "apps:api",
            "apps:web:name",
            "apps:web:tag",
            "apps:api:digest"
        ]
    );
    assert_eq!(
        (changes[0].line, changes[0].old.as_str()),
        (3, "reg.local:5000/web:1.0.0")
    );
}

#[test]
fn only_the_value_bytes_change() {
    // CRLF, quotes, anchors, flow style, comments, blank lines and multi-documents.
    let text = "# top comment\r\n\
---\r\n\
a: &img 'reg.local:5000/web:1.0.0' # {\"$imagepolicy\": \"apps:web\"}\r\n\
b: *img\r\n\
\r\n\
c:   \"1.0.0\"    # {\"$imagepolicy\": \"apps:web:tag\"}  trailing words\r\n\
---\r\n\
d: {name: x, image: reg.local:5000/web:0.1} # {\"$imagepolicy\": \"apps:web\"}\r\n\
e: [keep, this]   # unrelated comment\r\n";
    let out = updated(text);
    assert_eq!(
        out,
        "# top comment\r\n\
---\r\n\
a: &img 'reg.local:5000/web:1.2.0' # {\"$imagepolicy\": \"apps:web\"}\r\n\
b: *img\r\n\
\r\n\
c:   \"1.2.0\"    # {\"$imagepolicy\": \"apps:web:tag\"}  trailing words\r\n\
---\r\n\
d: {name: x, image: reg.local:5000/web:1.2.0} # {\"$imagepolicy\": \"apps:web\"}\r\n\
e: [keep, this]   # unrelated comment\r\n"
    );
}

#[test]
fn nothing_to_do_is_none() {
    assert_eq!(apply("a: b\n").unwrap(), None, "no marker: not even parsed");
    assert_eq!(
        apply("a: reg.local:5000/web:1.2.0 # {\"$imagepolicy\": \"apps:web\"}\n").unwrap(),
        None,
        "already up to date"
    );
    // Other namespaces, unselected policies and policies without a choice yet are left alone.
    for marker in ["other:web", "apps:unselected", "apps:pending"] {
        let text = format!("a: x # {{\"$imagepolicy\": \"{marker}\"}}\n");
        assert_eq!(apply(&text).unwrap(), None, "{marker}");
    }
    // Not a file that fails to parse, when it has no marker at all.
    assert_eq!(apply("{{ template }}: [\n").unwrap(), None);
}

#[test]
fn values_that_would_change_type_are_quoted() {
    let mut s = scope();
    s.selected
        .insert("web".into(), latest("reg.local:5000/web", "1.20", None));
    let out = update_file(
        "f.yaml",
        b"tag: 1.10 # {\"$imagepolicy\": \"apps:web:tag\"}\n",
        &s,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        out.bytes,
        b"tag: \"1.20\" # {\"$imagepolicy\": \"apps:web:tag\"}\n"
    );
}

#[test]
fn bad_input_is_named_with_file_and_line() {
    let err = |text: &str| apply(text).unwrap_err().to_string();
    assert_eq!(
        err("a: 1\nb: x # {\"$imagepolicy\": \"apps:nope\"}\n"),
        "f.yaml:2: marker names ImagePolicy apps/nope, which does not exist"
    );
    assert!(
        err("a: [x # {\"$imagepolicy\": \"apps:web\"}\n")
            .starts_with("f.yaml: has an image policy marker but is not YAML: line"),
        "{}",
        err("a: [x # {\"$imagepolicy\": \"apps:web\"}\n")
    );
    assert_eq!(
        err("a: x # {\"$imagepolicy\": \"apps\"}\n"),
        "f.yaml:1: image policy marker is not valid: \"apps\" is not NAMESPACE:NAME[:tag|:name|:digest]"
    );
    assert!(err("a: x # {\"$imagepolicy\": \"apps:web:size\"}\n").contains("unknown field"));
    assert!(err("a: x # {\"$imagepolicy\": apps:web}\n").contains("not a JSON object"));
    assert_eq!(
        err("a: # {\"$imagepolicy\": \"apps:web\"}\n  b: c\n"),
        "f.yaml:1: marker apps:web is not on a scalar value"
    );
    assert!(err("a: &x v\nb: *x # {\"$imagepolicy\": \"apps:web\"}\n").contains("alias"));
    assert!(err("a: x # {\"$imagepolicy\": \"apps:web:digest\"}\n").contains("has none"));
    assert!(matches!(
        update_file("f.yaml", b"\xff\xfe $imagepolicy", &scope()),
        Err(SetterError::NotUtf8 { .. })
    ));
}

/// The corpus of fixtures/image-automation: every byte outside the replaced values stays.
#[test]
fn the_corpus_changes_only_the_values() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/image-automation");
    let mut scope = Scope {
        namespace: "NAMESPACE".into(),
        ..Scope::default()
    };
    scope.selected.insert(
        "web".into(),
        latest("registry.example:5000/web", "1.2.0", None),
    );
    scope.selected.insert(
        "api".into(),
        latest(
            "registry.example:5000/api",
            "2.0.0",
            Some("sha256:1111111111111111111111111111111111111111111111111111111111111111"),
        ),
    );
    for name in [
        "deploy.yaml",
        "crlf.yaml",
        "kustomization.yaml",
        "helmrelease.yaml",
        "untouched.yaml",
        "chart/templates/deploy.yaml",
    ] {
        let original = std::fs::read(root.join("corpus").join(name)).unwrap();
        let expected =
            std::fs::read(root.join("expected").join(name)).unwrap_or_else(|_| original.clone());
        let got = update_file(name, &original, &scope)
            .unwrap()
            .map_or(original.clone(), |u| u.bytes);
        assert!(
            got == expected,
            "{name}:\n{}",
            String::from_utf8_lossy(&got)
        );
    }
}
