//! A provider's streamed reply (OpenAI and Anthropic SSE), cut into network
//! chunks where the first four bytes say.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (cuts, body) = data.split_at(data.len().min(4));
    tidechat_llm::providers::decode_for_fuzzing(body, cuts);
});
