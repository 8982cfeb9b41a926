//! Token counting with a real BPE tokenizer.
//!
//! Counts use tiktoken's `o200k_base` encoding (GPT-4o family) through
//! [`crate::bpe`], a compact counter over the BPE ranks embedded in the
//! binary (no download at run time). The vocabulary is built once, lazily,
//! on first use (or eagerly via [`warm_up`]).
//!
//! For other model families the count is an estimate, which is why usage
//! computed from it is marked `estimated` unless the backend itself uses this
//! tokenizer.
//!
//! Robustness: the input is encoded in chunks of at most [`HARD_CHUNK_BYTES`]
//! bytes, cut preferably where a whitespace run starts (where the BPE
//! pre-tokenizer splits anyway, so ordinary text counts exactly as a whole).
//! This bounds the quadratic merge loop and its regex backtracking on
//! pathological input (100 KB of one letter, of spaces or of emoji), and any
//! panic inside the tokenizer is caught and replaced by a length estimate.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use crate::bpe::Bpe;

use crate::model::ChatMessage;

/// Tokens OpenAI adds around every chat message (`<|start|>role ... <|end|>`).
pub const TOKENS_PER_MESSAGE: u64 = 3;
/// Tokens that prime the assistant's reply.
pub const TOKENS_PER_REPLY: u64 = 3;

/// A chunk may end at a whitespace boundary once it is at least this long.
const SOFT_CHUNK_BYTES: usize = 256;
/// A chunk is cut (at a char boundary) once it is this long.
pub const HARD_CHUNK_BYTES: usize = 512;

fn encoder() -> Option<&'static Bpe> {
    static ENCODER: OnceLock<Option<Bpe>> = OnceLock::new();
    ENCODER
        .get_or_init(|| match catch_unwind(Bpe::o200k) {
            Ok(Ok(bpe)) => Some(bpe),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "tokenizer unavailable; counting estimates");
                None
            }
            Err(_) => None,
        })
        .as_ref()
}

/// Builds the tokenizer now, so the first request does not pay for it.
/// Returns false if the tokenizer could not be built (counts then fall back
/// to an estimate of one token per four characters).
pub fn warm_up() -> bool {
    encoder().is_some()
}

fn estimate(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

fn count_chunk(bpe: &Bpe, chunk: &str) -> u64 {
    match catch_unwind(AssertUnwindSafe(|| bpe.count(chunk))) {
        Ok(n) => n as u64,
        Err(_) => estimate(chunk),
    }
}

/// Splits `text` into chunks for encoding; see the module docs.
fn chunks(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        if rest.len() <= HARD_CHUNK_BYTES {
            let all = rest;
            rest = "";
            return Some(all);
        }
        let mut cut = None;
        let mut prev_ws = true;
        for (i, c) in rest.char_indices() {
            if i >= HARD_CHUNK_BYTES {
                cut = Some(i);
                break;
            }
            let ws = c.is_whitespace();
            if ws && !prev_ws && i >= SOFT_CHUNK_BYTES {
                cut = Some(i);
                break;
            }
            prev_ws = ws;
        }
        let cut = cut.filter(|&i| i > 0).unwrap_or(rest.len());
        let (head, tail) = rest.split_at(cut);
        rest = tail;
        Some(head)
    })
}

/// Number of BPE tokens in `text` (special-token markers such as
/// `<|endoftext|>` count as ordinary text). Never panics.
pub fn count(text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    match encoder() {
        Some(bpe) => chunks(text).map(|chunk| count_chunk(bpe, chunk)).sum(),
        None => estimate(text),
    }
}

/// Prompt tokens of a chat request, counted like OpenAI does for its chat
/// models: [`TOKENS_PER_MESSAGE`] plus role and content per message, plus
/// [`TOKENS_PER_REPLY`] for the reply primer. Tool calls of an assistant
/// turn count their name and argument text.
pub fn count_messages(messages: &[ChatMessage]) -> u64 {
    messages
        .iter()
        .map(|m| {
            let calls: u64 = m
                .tool_calls
                .iter()
                .map(|c| count(&c.name) + count(&c.arguments))
                .sum();
            TOKENS_PER_MESSAGE + count(m.role.as_str()) + count(&m.content) + calls
        })
        .fold(TOKENS_PER_REPLY, u64::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero() {
        assert_eq!(count(""), 0);
    }

    #[test]
    fn counts_real_bpe_tokens() {
        assert!(warm_up());
        assert_eq!(count("hello"), 1);
        assert_eq!(count("Hello, world!"), 4);
        let n = count("How do I reset my password?");
        assert!((6..=9).contains(&n), "{n}");
        assert!(count("Wie setze ich mein Passwort zurück?") > 0);
        assert!(count("비밀번호를 재설정하려면 어떻게 해야 하나요?") > 0);
    }

    #[test]
    fn chunking_keeps_ordinary_text_exact() {
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(200);
        let bpe = encoder().unwrap_or_else(|| panic!("tokenizer"));
        let whole = bpe.count(&text) as u64;
        assert_eq!(count(&text), whole);
        assert_eq!(chunks(&text).collect::<String>(), text);
    }

    #[test]
    fn never_panics_on_weird_input() {
        let inputs = [
            "🔥".to_string(),
            "👨‍👩‍👧‍👦🏳️‍🌈🇩🇪".to_string(),
            "\u{0}\u{1}\u{7f}\u{feff}\u{200b}\u{fffd}\u{10ffff}".to_string(),
            "e\u{301}\u{301}\u{301}".to_string(),
            "<|endoftext|><|fim_prefix|>".to_string(),
            "a".repeat(100_000),
            "A".repeat(100_000),
            " ".repeat(100_000),
            "\n\r".repeat(50_000),
            "🔥".repeat(25_000),
            "\u{301}".repeat(50_000),
            "'s".repeat(50_000),
            "1".repeat(100_000),
            "x ".repeat(50_000),
            "中文".repeat(20_000),
            "!?".repeat(50_000),
        ];
        for input in &inputs {
            let n = count(input);
            assert!(n > 0, "{:?}", input.chars().take(5).collect::<String>());
            assert_eq!(chunks(input).collect::<String>(), *input);
        }
    }

    #[test]
    fn message_overhead() {
        use tidechat_domain::Role;
        assert_eq!(count_messages(&[]), TOKENS_PER_REPLY);
        let msgs = [
            ChatMessage::new(Role::System, "You are helpful."),
            ChatMessage::new(Role::User, "hello"),
        ];
        let expected = 3 + 2 * 3 + count("system") + count("user") + count("You are helpful.") + 1;
        assert_eq!(count_messages(&msgs), expected);
    }
}
