//! Signature check and payload parsing: `nango_sync::fuzzing::check_webhook`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    nango_sync::fuzzing::check_webhook(data);
});
