//! The config parser and compiler never panic, and a document they accept compiles again,
//! from its canonical form, to the same version.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = rampart_model::load(text) else {
        return;
    };
    let canonical = rampart_model::canonical_json(config.document());
    let again =
        rampart_model::load(&canonical).expect("the canonical form of a valid document is valid");
    assert_eq!(
        again.version(),
        config.version(),
        "canonical form changed the version"
    );
});
