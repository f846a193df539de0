//! Record -> DynamoDB item -> record: `nango_sync::fuzzing::check_record`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    nango_sync::fuzzing::check_record(data);
});
