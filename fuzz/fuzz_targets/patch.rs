//! Fuzzes patching: the input is an object, a line `#patch`, and a patch (strategic merge or
//! JSON 6902). Any input gives a result or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some((object, patch)) = text.split_once("\n#patch\n") else { return };
    let Ok(objects) = sluice::build::parse_manifests(object, "object.yaml") else { return };
    if let Some(first) = objects.first() {
        let _ = sluice::build::apply_patch(first, patch);
    }
});
