//! Fuzzes manifest text to objects: any input gives objects or an error, never a panic or an
//! unbounded allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(objects) = sluice::build::parse_manifests(text, "fuzz.yaml") {
            for o in &objects {
                let _ = sluice::build::to_yaml(o.value());
            }
        }
    }
});
