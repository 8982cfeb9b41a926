//! A SentencePiece *unigram* tokenizer: reads a `.model` file (a protobuf
//! `ModelProto`), normalises text with the model's precompiled charsmap
//! (`nmt_nfkc` for USE-m3) and segments it with the unigram Viterbi search.
//!
//! It reproduces the reference tokenizer of the USE-m3 Python package (which
//! is byte-identical to the C++ `sentencepiece` for that model), including its
//! choices: every piece of the vocabulary may match (control pieces too), a
//! character that no piece covers becomes `<unk>` (id 0), an input that
//! normalises to nothing is `[<unk>]`, and scores add up in `f64`.
//!
//! # Normaliser
//! The charsmap is a darts-clone double-array trie (4-byte length, the trie's
//! `u32` units, then a table of NUL-terminated replacement strings). At each
//! position the longest key of the trie that prefixes the remaining bytes is
//! replaced by its string; without a match one UTF-8 character passes as is.
//! Then whitespace is handled like sentencepiece's defaults: leading and
//! trailing spaces dropped, runs of spaces collapsed, a space prepended
//! (`add_dummy_prefix`), and every space written as `▁` (U+2581).

use std::hash::{BuildHasher, BuildHasherDefault};

use hashbrown::HashTable;
use rustc_hash::FxHasher;

/// Piece ids with a fixed meaning in sentencepiece models.
pub const UNK_ID: u32 = 0;
pub const BOS_ID: u32 = 1;
pub const EOS_ID: u32 = 2;

const SPACE_SYMBOL: &str = "\u{2581}";

/// Why a `.model` file could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ModelFileError {
    #[error("not a valid sentencepiece model (truncated or malformed protobuf)")]
    Protobuf,
    #[error("the model has no pieces")]
    NoPieces,
    #[error("a piece is not valid UTF-8")]
    PieceNotUtf8,
    #[error("the precompiled charsmap is malformed")]
    Charsmap,
    #[error("the model has too many pieces")]
    TooManyPieces,
}

/// A loaded unigram model.
pub struct Tokenizer {
    /// All piece strings, concatenated; pieces and prefixes are slices of it.
    arena: String,
    /// Start and end (byte offsets into `arena`) of each piece, by id.
    spans: Vec<(u32, u32)>,
    scores: Vec<f32>,
    /// Every piece and every proper prefix of a piece, as a slice of `arena`,
    /// with `id + 1` for a piece and 0 for a prefix that is only a prefix:
    /// the Viterbi walk from a position stops at the first substring that is
    /// not in here.
    prefixes: HashTable<Prefix>,
    hasher: BuildHasherDefault<FxHasher>,
    /// Longest piece, in characters.
    max_chars: usize,
    unk_score: f64,
    normalizer: Normalizer,
}

#[derive(Clone, Copy)]
struct Prefix {
    start: u32,
    len: u32,
    value: u32,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("pieces", &self.spans.len())
            .field("max_chars", &self.max_chars)
            .finish_non_exhaustive()
    }
}

// ----- protobuf -----

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Bytes(&'a [u8]),
    Fixed32([u8; 4]),
    Other,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, ModelFileError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.data.get(self.pos).ok_or(ModelFileError::Protobuf)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ModelFileError::Protobuf)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelFileError> {
        let end = self.pos.checked_add(n).ok_or(ModelFileError::Protobuf)?;
        let bytes = self
            .data
            .get(self.pos..end)
            .ok_or(ModelFileError::Protobuf)?;
        self.pos = end;
        Ok(bytes)
    }

    /// The next `(field number, value)`, or `None` at the end.
    fn next_field(&mut self) -> Result<Option<(u64, Field<'a>)>, ModelFileError> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let field = tag >> 3;
        let value = match tag & 7 {
            0 => {
                self.varint()?;
                Field::Other
            }
            1 => {
                self.take(8)?;
                Field::Other
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| ModelFileError::Protobuf)?;
                Field::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32([b[0], b[1], b[2], b[3]])
            }
            _ => return Err(ModelFileError::Protobuf),
        };
        Ok(Some((field, value)))
    }
}

/// What the tokenizer needs from a `.model` file.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelFile {
    /// `ModelProto.pieces` (field 1: `piece` = 1, `score` = 2), by id.
    pub pieces: Vec<(String, f32)>,
    /// `ModelProto.normalizer_spec` (field 3), its `precompiled_charsmap`
    /// (field 2); `None` when absent or empty (no normalisation).
    pub charsmap: Option<Vec<u8>>,
}

/// Reads the pieces and the charsmap of a serialised model.
pub fn parse_model(data: &[u8]) -> Result<ModelFile, ModelFileError> {
    let mut pieces = Vec::new();
    let mut charsmap = None;
    let mut top = Reader::new(data);
    while let Some((field, value)) = top.next_field()? {
        match (field, value) {
            (1, Field::Bytes(bytes)) => {
                let mut piece = None;
                let mut score = 0.0f32;
                let mut inner = Reader::new(bytes);
                while let Some((f, v)) = inner.next_field()? {
                    match (f, v) {
                        (1, Field::Bytes(s)) if piece.is_none() => {
                            piece = Some(
                                std::str::from_utf8(s)
                                    .map_err(|_| ModelFileError::PieceNotUtf8)?
                                    .to_string(),
                            )
                        }
                        (2, Field::Fixed32(b)) => score = f32::from_le_bytes(b),
                        _ => {}
                    }
                }
                // A piece without text is skipped, as the reference does.
                if let Some(piece) = piece {
                    pieces.push((piece, score));
                }
            }
            (3, Field::Bytes(bytes)) if charsmap.is_none() => {
                let mut inner = Reader::new(bytes);
                while let Some((f, v)) = inner.next_field()? {
                    if let (2, Field::Bytes(map)) = (f, v) {
                        charsmap = Some(map.to_vec());
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(ModelFile {
        pieces,
        charsmap: charsmap.filter(|m| !m.is_empty()),
    })
}

// ----- normaliser -----

struct Normalizer {
    /// Double-array units; empty when the model has no charsmap.
    units: Vec<u32>,
    /// NUL-terminated replacement strings.
    replacements: Vec<u8>,
}

fn offset(unit: u32) -> usize {
    ((unit >> 10) << ((unit & 0x200) >> 6)) as usize
}

impl Normalizer {
    fn new(charsmap: Option<&[u8]>) -> Result<Self, ModelFileError> {
        let Some(map) = charsmap else {
            return Ok(Self {
                units: Vec::new(),
                replacements: Vec::new(),
            });
        };
        let size = map
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or(ModelFileError::Charsmap)?;
        let trie = map
            .get(4..4usize.saturating_add(size))
            .filter(|t| t.len() % 4 == 0 && !t.is_empty())
            .ok_or(ModelFileError::Charsmap)?;
        let units = trie
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Self {
            units,
            replacements: map.get(4 + size..).unwrap_or_default().to_vec(),
        })
    }

    /// The normalised form of the longest charsmap key at the start of
    /// `data` and its length, or one UTF-8 character unchanged.
    fn prefix<'s>(&'s self, data: &'s [u8]) -> (&'s [u8], usize) {
        let mut best_len = 0;
        let mut best_value = 0usize;
        if let Some(&root) = self.units.first() {
            let mut node = offset(root);
            for (i, &c) in data.iter().enumerate() {
                node ^= usize::from(c);
                let Some(&unit) = self.units.get(node) else {
                    break;
                };
                if unit & 0x8000_00FF != u32::from(c) {
                    break;
                }
                node ^= offset(unit);
                if unit & 0x100 != 0 {
                    let Some(&leaf) = self.units.get(node) else {
                        break;
                    };
                    best_len = i + 1;
                    best_value = (leaf & 0x7FFF_FFFF) as usize;
                }
            }
        }
        if best_len > 0 && best_value < self.replacements.len() {
            let rest = &self.replacements[best_value..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            return (&rest[..end], best_len);
        }
        let len = utf8_len(data);
        (&data[..len], len)
    }

    fn normalize(&self, text: &str) -> String {
        let raw = text.as_bytes();
        let mut pos = 0;
        while pos < raw.len() {
            let (piece, consumed) = self.prefix(&raw[pos..]);
            if piece != b" " {
                break;
            }
            pos += consumed;
        }
        if pos >= raw.len() {
            return String::new();
        }
        let mut out: Vec<u8> = Vec::with_capacity(raw.len() * 2);
        out.extend_from_slice(SPACE_SYMBOL.as_bytes());
        let mut prev_space = true;
        while pos < raw.len() {
            let (mut piece, consumed) = self.prefix(&raw[pos..]);
            pos += consumed.max(1);
            if prev_space {
                while let Some(rest) = piece.strip_prefix(b" ") {
                    piece = rest;
                }
            }
            if let Some(&last) = piece.last() {
                for &b in piece {
                    if b == b' ' {
                        out.extend_from_slice(SPACE_SYMBOL.as_bytes());
                    } else {
                        out.push(b);
                    }
                }
                prev_space = last == b' ';
            }
        }
        while out.ends_with(SPACE_SYMBOL.as_bytes()) {
            out.truncate(out.len() - SPACE_SYMBOL.len());
        }
        // Replacement strings come from the model file; a broken one must not
        // panic, so invalid UTF-8 is replaced.
        match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
}

/// Length of the UTF-8 character at the start of `data` (1 for a byte that
/// does not start a valid sequence); `data` is not empty.
fn utf8_len(data: &[u8]) -> usize {
    let first = data[0];
    let len = match first {
        0x00..=0x7F => 1,
        _ if first >> 5 == 0x6 => 2,
        _ if first >> 4 == 0xE => 3,
        _ if first >> 3 == 0x1E => 4,
        _ => 1,
    };
    if len > data.len() || data[1..len].iter().any(|&b| b & 0xC0 != 0x80) {
        1
    } else {
        len
    }
}

// ----- tokenizer -----

impl Tokenizer {
    /// Reads a serialised `ModelProto`.
    pub fn from_bytes(data: &[u8]) -> Result<Self, ModelFileError> {
        let ModelFile { pieces, charsmap } = parse_model(data)?;
        if pieces.is_empty() {
            return Err(ModelFileError::NoPieces);
        }
        if u32::try_from(pieces.len()).is_err() {
            return Err(ModelFileError::TooManyPieces);
        }
        let normalizer = Normalizer::new(charsmap.as_deref())?;
        let mut arena = String::new();
        let mut spans = Vec::with_capacity(pieces.len());
        let mut scores = Vec::with_capacity(pieces.len());
        for (piece, score) in &pieces {
            let start = arena.len();
            arena.push_str(piece);
            let end = arena.len();
            let span = (
                u32::try_from(start).map_err(|_| ModelFileError::TooManyPieces)?,
                u32::try_from(end).map_err(|_| ModelFileError::TooManyPieces)?,
            );
            spans.push(span);
            scores.push(*score);
        }
        let min_score = scores.iter().copied().fold(f32::INFINITY, f32::min);
        let mut tokenizer = Self {
            arena,
            spans,
            scores,
            prefixes: HashTable::new(),
            hasher: BuildHasherDefault::default(),
            max_chars: 0,
            unk_score: f64::from(min_score) - 10.0,
            normalizer,
        };
        tokenizer.index();
        Ok(tokenizer)
    }

    /// Builds `prefixes` and `max_chars`.
    fn index(&mut self) {
        let mut table: HashTable<Prefix> = HashTable::with_capacity(self.spans.len() * 2);
        let arena = &self.arena;
        let hasher = &self.hasher;
        let text = |p: &Prefix| &arena[p.start as usize..(p.start + p.len) as usize];
        let mut max_chars = 0;
        for (id, &(start, end)) in self.spans.iter().enumerate() {
            let piece = &arena[start as usize..end as usize];
            max_chars = max_chars.max(piece.chars().count());
            let ends = piece
                .char_indices()
                .skip(1)
                .map(|(i, _)| i)
                .chain(std::iter::once(piece.len()));
            for cut in ends {
                let key = &piece[..cut];
                let is_piece = cut == piece.len();
                let hash = hasher.hash_one(key);
                match table.find_mut(hash, |p| text(p) == key) {
                    Some(entry) => {
                        // A piece that was only a prefix so far becomes a
                        // piece; of duplicate pieces the last id wins, as in
                        // the reference's dict.
                        if is_piece {
                            entry.value = id as u32 + 1;
                        }
                    }
                    None => {
                        table.insert_unique(
                            hash,
                            Prefix {
                                start,
                                len: cut as u32,
                                value: if is_piece { id as u32 + 1 } else { 0 },
                            },
                            |p| hasher.hash_one(text(p)),
                        );
                    }
                }
            }
        }
        self.prefixes = table;
        self.max_chars = max_chars;
    }

    fn lookup(&self, key: &str) -> Option<u32> {
        let hash = self.hasher.hash_one(key);
        self.prefixes
            .find(hash, |p| {
                &self.arena[p.start as usize..(p.start + p.len) as usize] == key
            })
            .map(|p| p.value)
    }

    /// Number of pieces (the largest id is one less).
    pub fn vocab_size(&self) -> usize {
        self.spans.len()
    }

    /// The piece with id `id`.
    pub fn piece(&self, id: u32) -> Option<&str> {
        let &(start, end) = self.spans.get(id as usize)?;
        self.arena.get(start as usize..end as usize)
    }

    /// `text` normalised as the model sees it (with `▁` for spaces).
    pub fn normalize(&self, text: &str) -> String {
        self.normalizer.normalize(text)
    }

    /// Piece ids of `text`, with `<s>` before and `</s>` after.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut ids = vec![BOS_ID];
        self.encode_into(text, &mut ids);
        ids.push(EOS_ID);
        ids
    }

    /// Appends the piece ids of `text` (no `<s>`/`</s>`) to `out`.
    pub fn encode_into(&self, text: &str, out: &mut Vec<u32>) {
        let normalized = self.normalizer.normalize(text);
        if normalized.is_empty() {
            out.push(UNK_ID);
            return;
        }
        // Char boundaries: position k of the lattice is byte bounds[k].
        let bounds: Vec<usize> = normalized
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(normalized.len()))
            .collect();
        let chars = bounds.len() - 1;
        // For every end position, the best path's score and its last node
        // (start position, piece id). Nodes from a position share the best
        // predecessor, so a left-to-right pass is the lattice's Viterbi; a
        // strictly greater score wins, so ties go to the earliest start.
        let mut best = vec![-1e38f64; chars + 1];
        best[0] = 0.0;
        let mut start_of = vec![0usize; chars + 1];
        let mut piece_of = vec![UNK_ID; chars + 1];
        for i in 0..chars {
            let base = best[i];
            let stop = (i + self.max_chars).min(chars);
            let mut single = false;
            for j in i + 1..=stop {
                let Some(value) = self.lookup(&normalized[bounds[i]..bounds[j]]) else {
                    break;
                };
                if value == 0 {
                    continue;
                }
                let id = value - 1;
                let score = base + f64::from(self.scores[id as usize]);
                if score > best[j] {
                    best[j] = score;
                    start_of[j] = i;
                    piece_of[j] = id;
                }
                single |= j == i + 1;
            }
            if !single {
                let score = base + self.unk_score;
                if score > best[i + 1] {
                    best[i + 1] = score;
                    start_of[i + 1] = i;
                    piece_of[i + 1] = UNK_ID;
                }
            }
        }
        let first = out.len();
        let mut p = chars;
        while p > 0 {
            out.push(piece_of[p]);
            p = start_of[p];
        }
        out[first..].reverse();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(field << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn model(pieces: &[(&str, f32)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (piece, score) in pieces {
            let mut p = Vec::new();
            field_bytes(1, piece.as_bytes(), &mut p);
            p.push(2 << 3 | 5);
            p.extend_from_slice(&score.to_le_bytes());
            varint(3 << 3, &mut p); // type = 1 (varint), skipped
            varint(1, &mut p);
            field_bytes(1, &p, &mut out);
        }
        // An unknown field with a two-byte tag, which must be skipped.
        varint(40 << 3, &mut out);
        varint(7, &mut out);
        out
    }

    #[test]
    fn viterbi_prefers_the_best_total_score() {
        let t = Tokenizer::from_bytes(&model(&[
            ("<unk>", 0.0),
            ("<s>", 0.0),
            ("</s>", 0.0),
            ("\u{2581}ab", -1.0),
            ("\u{2581}a", -1.0),
            ("b", -1.0),
            ("c", -2.0),
            ("\u{2581}", -3.0),
        ]))
        .unwrap();
        assert_eq!(t.encode("ab"), vec![1, 3, 2]);
        assert_eq!(t.encode("  ab   c "), vec![1, 3, 7, 6, 2]);
        assert_eq!(t.encode("abx"), vec![1, 3, 0, 2]);
        assert_eq!(t.encode(""), vec![1, 0, 2]);
        assert_eq!(t.encode("   "), vec![1, 0, 2]);
        assert_eq!(t.normalize(" a  b "), "\u{2581}a\u{2581}b");
        assert_eq!(t.piece(3), Some("\u{2581}ab"));
        assert_eq!(t.vocab_size(), 8);
    }

    #[test]
    fn malformed_models_are_errors() {
        assert_eq!(
            Tokenizer::from_bytes(&[]).unwrap_err(),
            ModelFileError::NoPieces
        );
        let good = model(&[("a", 0.0)]);
        assert_eq!(
            Tokenizer::from_bytes(&good[..good.len() - 4]).unwrap_err(),
            ModelFileError::Protobuf
        );
        let mut bad = Vec::new();
        field_bytes(1, &[0x0A, 0x01, 0xFF], &mut bad);
        assert_eq!(
            Tokenizer::from_bytes(&bad).unwrap_err(),
            ModelFileError::PieceNotUtf8
        );
        let mut bad_map = model(&[("a", 0.0)]);
        let mut spec = Vec::new();
        field_bytes(2, &[9, 0, 0, 0, 1], &mut spec);
        field_bytes(3, &spec, &mut bad_map);
        assert_eq!(
            Tokenizer::from_bytes(&bad_map).unwrap_err(),
            ModelFileError::Charsmap
        );
    }

    #[test]
    fn utf8_lengths() {
        assert_eq!(utf8_len("a".as_bytes()), 1);
        assert_eq!(utf8_len("ä".as_bytes()), 2);
        assert_eq!(utf8_len("한".as_bytes()), 3);
        assert_eq!(utf8_len("😀".as_bytes()), 4);
        assert_eq!(utf8_len(&[0xE2, 0x41]), 1);
    }
}
