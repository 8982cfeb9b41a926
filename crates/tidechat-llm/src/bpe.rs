//! A compact byte-pair-encoding token counter for OpenAI's `o200k_base`.
//!
//! tidechat only needs token *counts* (context trimming, usage estimates),
//! never token ids or decoding, so this keeps just what counting needs:
//! every token's bytes back to back in one buffer, the start of each token
//! (indexed by rank: the ranks of `o200k_base` are the line numbers of its
//! rank file), and a hash table of ranks keyed by the token's bytes. That is
//! about 3.5 MiB resident, against ~32 MiB for tiktoken-rs' `CoreBPE` (two
//! hash maps of owned byte vectors, a sorted copy, and 128 clones of the
//! pre-tokenizer regex); see docs/benchmarks.md, "Idle memory".
//!
//! The algorithm is the one every tiktoken implementation uses: split the
//! text with the encoding's pre-tokenizer regex, then within each piece merge
//! adjacent parts, lowest rank first, until no adjacent pair is a token. The
//! counts equal tiktoken's (`tests/tokenizer.rs` compares them with
//! tiktoken-rs on a few thousand texts).
//!
//! Data: `assets/o200k_base.tiktoken`, OpenAI's rank file for `o200k_base`
//! (from the tiktoken project, MIT licence; see `assets/README.md`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use fancy_regex::Regex;
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use std::hash::BuildHasher;

const RANKS: &str = include_str!("../assets/o200k_base.tiktoken");

/// `o200k_base`'s pre-tokenizer: how text is split before merging.
const PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

thread_local! {
    /// Each thread's own copy of the pre-tokenizer. A regex shared between
    /// threads hands its matching caches out of a pool whose fast path only
    /// serves the thread that created it; the others queued for it
    /// (`regex_automata` `Pool::get_slow`/`put_value` at ~6.5 % of tidechat's
    /// CPU at 1,400 streams/s, docs/benchmarks.md). A copy is ~55 KB.
    static SPLIT: std::cell::OnceCell<Regex> = const { std::cell::OnceCell::new() };
}

type Rank = u32;
const NONE: Rank = Rank::MAX;

/// The `o200k_base` vocabulary, as far as counting needs it.
pub struct Bpe {
    /// Every token's bytes, in rank order, back to back.
    bytes: Vec<u8>,
    /// `starts[r]..starts[r + 1]` are the bytes of rank `r`.
    starts: Vec<u32>,
    /// Ranks, found by their bytes' hash.
    table: HashTable<Rank>,
    hasher: FxBuildHasher,
    split: Regex,
}

/// Why the vocabulary could not be built (a corrupt rank file or pattern).
#[derive(Debug, thiserror::Error)]
#[error("o200k vocabulary: {0}")]
pub struct BpeError(String);

impl Bpe {
    /// Parses the embedded rank file (~40 ms).
    pub fn o200k() -> Result<Self, BpeError> {
        let lines = RANKS.lines().filter(|l| !l.is_empty());
        let mut bytes = Vec::with_capacity(1 << 21);
        let mut starts = Vec::with_capacity(200_001);
        for (i, line) in lines.enumerate() {
            let (token, rank) = line
                .split_once(' ')
                .ok_or_else(|| BpeError(format!("line {}: no rank", i + 1)))?;
            if rank.parse::<usize>().ok() != Some(i) {
                return Err(BpeError(format!(
                    "line {}: ranks are not sequential",
                    i + 1
                )));
            }
            starts.push(u32::try_from(bytes.len()).map_err(|e| BpeError(e.to_string()))?);
            STANDARD
                .decode_vec(token, &mut bytes)
                .map_err(|e| BpeError(format!("line {}: {e}", i + 1)))?;
        }
        starts.push(u32::try_from(bytes.len()).map_err(|e| BpeError(e.to_string()))?);
        bytes.shrink_to_fit();
        let hasher = FxBuildHasher;
        let n = starts.len() - 1;
        let mut table = HashTable::with_capacity(n);
        for rank in 0..n {
            let token = &bytes[starts[rank] as usize..starts[rank + 1] as usize];
            let rank = Rank::try_from(rank).map_err(|e| BpeError(e.to_string()))?;
            let hash = hasher.hash_one(token);
            table.insert_unique(hash, rank, |r| {
                let r = *r as usize;
                hasher.hash_one(&bytes[starts[r] as usize..starts[r + 1] as usize])
            });
        }
        let split = Regex::new(PATTERN).map_err(|e| BpeError(e.to_string()))?;
        Ok(Self {
            bytes,
            starts,
            table,
            hasher,
            split,
        })
    }

    fn token(&self, rank: Rank) -> &[u8] {
        let r = rank as usize;
        &self.bytes[self.starts[r] as usize..self.starts[r + 1] as usize]
    }

    /// The rank of `piece` if it is one token.
    fn rank(&self, piece: &[u8]) -> Option<Rank> {
        self.table
            .find(self.hasher.hash_one(piece), |r| self.token(*r) == piece)
            .copied()
    }

    /// Tokens of `text` without special tokens (tiktoken's
    /// `encode_ordinary(text).len()`). A pre-tokenizer failure (its
    /// backtracking limit) counts the rest as one token per 4 bytes.
    pub fn count(&self, text: &str) -> usize {
        SPLIT.with(|split| {
            let split = split.get_or_init(|| self.split.clone());
            let mut n = 0;
            let mut at = 0;
            for piece in split.find_iter(text) {
                match piece {
                    Ok(m) => {
                        n += self.count_piece(m.as_str().as_bytes());
                        at = m.end();
                    }
                    Err(_) => return n + (text.len() - at).div_ceil(4),
                }
            }
            n
        })
    }

    /// Tokens of one pre-tokenized piece: merge the adjacent pair of lowest
    /// rank until none is left.
    fn count_piece(&self, piece: &[u8]) -> usize {
        if piece.len() < 2 || self.rank(piece).is_some() {
            return usize::from(!piece.is_empty());
        }
        // parts[i] = (start of part i, rank of part i joined with part i + 1).
        let pair = |parts: &[(usize, Rank)], i: usize| -> Rank {
            match parts.get(i + 2) {
                Some(&(end, _)) => self.rank(&piece[parts[i].0..end]).unwrap_or(NONE),
                None => NONE,
            }
        };
        let mut parts: Vec<(usize, Rank)> = (0..=piece.len()).map(|i| (i, NONE)).collect();
        for i in 0..parts.len().saturating_sub(2) {
            parts[i].1 = pair(&parts, i);
        }
        while let Some((i, _)) = parts[..parts.len() - 1]
            .iter()
            .enumerate()
            .filter(|(_, p)| p.1 != NONE)
            .min_by_key(|(_, p)| p.1)
        {
            parts.remove(i + 1);
            parts[i].1 = pair(&parts, i);
            if i > 0 {
                parts[i - 1].1 = pair(&parts, i - 1);
            }
        }
        parts.len() - 1
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_known_texts() {
        let bpe = Bpe::o200k().unwrap();
        assert_eq!(bpe.count(""), 0);
        assert_eq!(bpe.count("hello"), 1);
        assert_eq!(bpe.count("Hello, world!"), 4);
        assert_eq!(bpe.starts.len() - 1, 199_998);
    }

    /// Texts of every kind the server sees: the FAQ and query sets, the
    /// moderation sets (English, German, Korean, leetspeak), and generated
    /// strings mixing scripts, digits, punctuation, whitespace runs and emoji.
    fn corpus() -> Vec<String> {
        let mut texts = Vec::new();
        let root = env!("CARGO_MANIFEST_DIR");
        for path in [
            "tests/data/retrieval_faq.json",
            "tests/data/retrieval_queries.json",
            "../tidechat-guard/tests/data/labelled.jsonl",
            "../tidechat-guard/tests/data/holdout.jsonl",
        ] {
            let raw = std::fs::read_to_string(format!("{root}/{path}")).unwrap();
            texts.extend(raw.lines().map(str::to_owned));
            texts.push(raw);
        }
        let alphabet: Vec<char> = "aZé ß\n\t  1234567890.,;:'\"!?-_/()[]{}@#$%^&*+=<>|~`\r\nabcXYZ한국어日本語中文Ωπ😀👍🏽\u{301}\u{200b}\u{a0}'s're'LL"
            .chars()
            .collect();
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        for len in 0..3000 {
            let mut s = String::new();
            for _ in 0..(len % 97) {
                seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                s.push(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            texts.push(s);
        }
        texts
    }

    #[test]
    fn counts_equal_tiktoken() {
        let ours = Bpe::o200k().unwrap();
        let reference = tiktoken_rs::o200k_base().unwrap();
        let mut checked = 0;
        for text in corpus() {
            assert_eq!(
                ours.count(&text),
                reference.encode_ordinary(&text).len(),
                "{text:?}"
            );
            checked += 1;
        }
        assert!(checked > 3000);
    }
}
