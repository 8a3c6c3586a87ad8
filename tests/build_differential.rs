//! Differential test of `sluice build` against the real `kubectl kustomize`: every case under
//! fixtures/build/ must render to the same set of objects, equal object for object. kubectl
//! comes from SLUICE_KUBECTL or PATH; without one the test fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sluice::build::{self, BuildOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/build")
}

/// The kubectl to compare with: $SLUICE_KUBECTL, else `kubectl` on PATH.
fn kubectl() -> PathBuf {
    if let Some(p) = std::env::var_os("SLUICE_KUBECTL").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "SLUICE_KUBECTL={} is not a file", p.display());
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|d| d.join("kubectl")).find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "no kubectl found: set SLUICE_KUBECTL to a kubectl binary (scripts/test builds one with \
             hack/kube/build.sh) or put kubectl on PATH; this test compares against `kubectl kustomize`"
        )
    })
}

type Key = (String, String, String, String);

fn key(v: &Value) -> Key {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let group = s("/apiVersion")
        .rsplit_once('/')
        .map(|(g, _)| g.to_string())
        .unwrap_or_default();
    (
        group,
        s("/kind"),
        s("/metadata/namespace"),
        s("/metadata/name"),
    )
}

fn by_key(values: Vec<Value>) -> BTreeMap<Key, Value> {
    values.into_iter().map(|v| (key(&v), v)).collect()
}

/// Line diff of two pretty-printed values: lines only on one side, marked - (kubectl) and + (sluice).
fn diff(want: &Value, got: &Value) -> String {
    let a = serde_json::to_string_pretty(want).unwrap();
    let b = serde_json::to_string_pretty(got).unwrap();
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    // Longest common subsequence, small inputs.
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push_str(&format!("    + {}\n", b[j]));
            j += 1;
        } else {
            out.push_str(&format!("    - {}\n", a[i]));
            i += 1;
        }
    }
    out
}

/// Compares one case; returns a readable report of the differences.
fn compare(case: &Path, kubectl: &Path) -> Option<String> {
    let name = case.file_name().unwrap().to_string_lossy().to_string();
    let in_case = |file: &str| {
        std::fs::read_to_string(case.join(file))
            .ok()
            .map(|d| case.join(d.trim()))
    };
    // build-dir: the directory both build (a tree such as config/default); sluice-dir: the one
    // sluice builds when kubectl needs a kustomization around a plain directory.
    let build_dir = in_case("build-dir").unwrap_or_else(|| case.to_path_buf());
    let sluice_dir = in_case("sluice-dir").unwrap_or_else(|| build_dir.clone());
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(&build_dir)
        .output()
        .expect("kubectl runs");
    if !out.status.success() {
        return Some(format!(
            "{name}: kubectl kustomize failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8(out.stdout).unwrap();
    let want: Vec<Value> = serde_saphyr::from_str_multiple(&text).expect("kubectl output parses");
    let want = by_key(want.into_iter().filter(|v| !v.is_null()).collect());
    let got = match build::render(&fixtures(), &sluice_dir, &BuildOptions::default()) {
        Ok(objects) => by_key(objects.into_iter().map(|o| o.into_value()).collect()),
        Err(e) => return Some(format!("{name}: sluice build failed: {e}")),
    };
    report(&want, &got).map(|r| {
        format!(
            "{name} (kubectl: {} objects, sluice: {}):\n{r}",
            want.len(),
            got.len()
        )
    })
}

/// The differences between kubectl's objects and sluice's, or None.
fn report(want: &BTreeMap<Key, Value>, got: &BTreeMap<Key, Value>) -> Option<String> {
    let mut report = String::new();
    for (k, w) in want {
        match got.get(k) {
            None => report.push_str(&format!("  missing from sluice: {k:?}\n")),
            Some(g) if g != w => report.push_str(&format!("  differs: {k:?}\n{}", diff(w, g))),
            Some(_) => {}
        }
    }
    for k in got.keys().filter(|k| !want.contains_key(*k)) {
        report.push_str(&format!("  only in sluice: {k:?}\n"));
    }
    (!report.is_empty()).then_some(report)
}

#[test]
fn sluice_build_matches_kubectl_kustomize() {
    let kubectl = kubectl();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('_'))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the fixture cases under {}",
        fixtures().display()
    );
    let failures: Vec<String> = cases.iter().filter_map(|c| compare(c, &kubectl)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from kubectl kustomize:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Bad input sluice refuses is refused by kustomize too, except the cases marked `kubectl-skip`.
#[test]
fn kubectl_kustomize_also_refuses_bad_input() {
    let kubectl = kubectl();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/build-errors");
    let mut accepted = Vec::new();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        // kubectl-skip says why kubectl is not asked (sluice stricter on purpose, network, unbounded).
        if name.starts_with('_') || case.join("kubectl-skip").exists() {
            continue;
        }
        let build_dir = match std::fs::read_to_string(case.join("build-dir")) {
            Ok(d) => case.join(d.trim()),
            Err(_) => case.clone(),
        };
        let out = Command::new(&kubectl)
            .arg("kustomize")
            .arg(&build_dir)
            .output()
            .expect("kubectl runs");
        if out.status.success() {
            accepted.push(name);
        }
    }
    assert!(
        accepted.is_empty(),
        "kubectl kustomize accepted cases sluice refuses: {accepted:?}"
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Writes the Flux Kustomization fields into a copy of the case's kustomization.yaml the way
/// Flux does before it runs kustomize.
fn flux_kustomization(k: &mut Value, spec: &Value) {
    let k = k.as_object_mut().unwrap();
    for (from, to) in [
        ("targetNamespace", "namespace"),
        ("namePrefix", "namePrefix"),
        ("nameSuffix", "nameSuffix"),
    ] {
        if let Some(v) = spec.get(from) {
            k.insert(to.into(), v.clone());
        }
    }
    for field in ["patches", "images"] {
        if let Some(Value::Array(extra)) = spec.get(field) {
            let list = k.entry(field).or_insert(Value::Array(vec![]));
            list.as_array_mut().unwrap().extend(extra.clone());
        }
    }
    if let Some(labels) = spec.pointer("/commonMetadata/labels") {
        let list = k.entry("labels").or_insert(Value::Array(vec![]));
        list.as_array_mut()
            .unwrap()
            .push(serde_json::json!({"pairs": labels}));
    }
    if let Some(Value::Object(extra)) = spec.pointer("/commonMetadata/annotations") {
        let map = k
            .entry("commonAnnotations")
            .or_insert(Value::Object(Default::default()));
        map.as_object_mut().unwrap().extend(extra.clone());
    }
}

/// The Flux Kustomization extras render as kustomize renders them once Flux has written them
/// into the kustomization.
#[test]
fn flux_extras_match_kubectl_kustomize() {
    let kubectl = kubectl();
    let tmp = std::env::temp_dir().join(format!("sluice-flux-diff-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_tree(&fixtures(), &tmp);
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("flux-kustomization.yaml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 2);
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(case.join("flux-kustomization.yaml")).unwrap();
        let doc: Value = serde_saphyr::from_str(&text).unwrap();
        let (flux, _) = build::flux_options_from_spec(&doc["spec"]).unwrap();
        let copy = tmp.join(&name);
        let kfile = copy.join("kustomization.yaml");
        let mut k: Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&kfile).unwrap()).unwrap();
        flux_kustomization(&mut k, &doc["spec"]);
        std::fs::write(&kfile, serde_saphyr::to_string(&k).unwrap()).unwrap();
        let out = Command::new(&kubectl)
            .arg("kustomize")
            .arg(&copy)
            .output()
            .expect("kubectl runs");
        if !out.status.success() {
            failures.push(format!(
                "{name}: kubectl kustomize failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let text = String::from_utf8(out.stdout).unwrap();
        let want: Vec<Value> = serde_saphyr::from_str_multiple(&text).unwrap();
        let want = by_key(want.into_iter().filter(|v| !v.is_null()).collect());
        let opts = BuildOptions {
            flux,
            ..Default::default()
        };
        let got = match build::render(&fixtures(), case, &opts) {
            Ok(objects) => by_key(objects.into_iter().map(|o| o.into_value()).collect()),
            Err(e) => {
                failures.push(format!("{name}: sluice build failed: {e}"));
                continue;
            }
        };
        if let Some(report) = report(&want, &got) {
            failures.push(format!("{name}:\n{report}"));
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
