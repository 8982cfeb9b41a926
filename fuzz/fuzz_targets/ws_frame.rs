//! A text frame sent to `/ws/chat`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        tidechat_api::fuzzing::ws_frame(text);
    }
});
