//! A widget upload form (`multipart/form-data`, boundary `XyZ`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tidechat_api::fuzzing::upload_form("multipart/form-data; boundary=XyZ", data);
});
