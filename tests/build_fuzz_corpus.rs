//! Replays the fuzz corpus (fuzz/corpus/) through the same entry points the fuzz targets use, so
//! every input a fuzzer kept is checked on stable in every test run: a result or an error, never
//! a panic.

use std::path::Path;

fn corpus(target: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if let Ok(text) = String::from_utf8(std::fs::read(&path).unwrap()) {
            out.push((
                path.file_name().unwrap().to_string_lossy().to_string(),
                text,
            ));
        }
    }
    assert!(out.len() >= 4, "corpus {} is missing", dir.display());
    out
}

#[test]
fn yaml_objects_corpus() {
    let mut parsed = 0;
    for (_, text) in corpus("yaml_objects") {
        if let Ok(objects) = sluice::build::parse_manifests(&text, "fuzz.yaml") {
            parsed += 1;
            for o in &objects {
                sluice::build::to_yaml(o.value()).expect("objects serialize");
            }
        }
    }
    assert!(parsed >= 3, "the seed manifests parse");
}

#[test]
fn patch_corpus() {
    let mut applied = 0;
    for (name, text) in corpus("patch") {
        let Some((object, patch)) = text.split_once("\n#patch\n") else {
            continue;
        };
        let Ok(objects) = sluice::build::parse_manifests(object, "object.yaml") else {
            continue;
        };
        if let Some(first) = objects.first() {
            if sluice::build::apply_patch(first, patch).is_ok() {
                applied += 1;
            } else {
                eprintln!("{name}: patch refused");
            }
        }
    }
    assert!(applied >= 3, "the seed patches apply");
}

#[test]
fn replacement_corpus() {
    let mut applied = 0;
    for (name, text) in corpus("replacement") {
        let Some((objects, replacements)) = text.split_once("\n#replacements\n") else {
            continue;
        };
        let Ok(objects) = sluice::build::parse_manifests(objects, "objects.yaml") else {
            continue;
        };
        match sluice::build::apply_replacements(&objects, replacements) {
            Ok(out) => {
                applied += 1;
                for o in &out {
                    sluice::build::to_yaml(o.value()).expect("objects serialize");
                }
            }
            Err(e) => eprintln!("{name}: {e}"),
        }
    }
    assert!(applied >= 3, "the seed replacements apply");
}
