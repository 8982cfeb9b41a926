//! An FAQ import file (`POST /v1/faqs/import`, `tidechat faq import`): CSV,
//! JSON, and whatever the format detection makes of it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tidechat_engine::{parse_faq_csv, parse_faq_json, ImportFormat};

fuzz_target!(|data: &[u8]| {
    let _ = parse_faq_csv(data);
    let _ = parse_faq_json(data);
    let _ = ImportFormat::detect(None, data).parse(data);
});
