//! A model registry file (`models.toml`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = tidechat_llm::ModelRegistry::from_toml_str_with_env(text, |_| Some("key".into()));
    }
});
