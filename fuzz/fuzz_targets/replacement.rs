//! Fuzzes replacements: the input is objects, a line `#replacements`, and replacements (one or
//! a list). Any input gives objects or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some((objects, replacements)) = text.split_once("\n#replacements\n") else { return };
    let Ok(objects) = sluice::build::parse_manifests(objects, "objects.yaml") else { return };
    if let Ok(out) = sluice::build::apply_replacements(&objects, replacements) {
        for o in &out {
            let _ = sluice::build::to_yaml(o.value());
        }
    }
});
