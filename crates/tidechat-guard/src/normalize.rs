//! The matching form of a text: what the lexicon, the injection patterns and
//! `block-terms:` guardrails are matched against.
//!
//! Each raw character is folded on its own (so every output byte can point
//! back to the raw byte it came from):
//!
//! 1. format and zero-width characters (`U+200B..U+200F`, `U+2060..U+2064`,
//!    `U+FEFF`, soft hyphen, …) are dropped, so `ki\u{200b}ll` is `kill`;
//! 2. compatibility decomposition (the K of NFKC: fullwidth `ｋ`, `ﬁ`,
//!    mathematical `𝐤`, circled `ⓚ` become plain letters) with combining marks
//!    removed, so `kíll`, `töten` fold to `kill`, `toten`. Hangul syllables are
//!    kept composed;
//! 3. lower-casing (`ß` → `ss`);
//! 4. look-alikes: every non-ASCII character is replaced by its UTS #39
//!    confusable skeleton (the `unicode-security` crate's tables, so Cyrillic
//!    `е`, Greek `ο`, Cherokee or mathematical look-alikes become the Latin
//!    letter they imitate), then a small hand table covers the rest: digits and
//!    symbols used as letters map to letters (`0→o 1→i 3→e 4→a 5→s 7→t @→a
//!    $→s`, `!` between letters → `i`), and — as in the skeleton — `l`, `1` and
//!    `|` all become `i`, so `k1ll`, `ki11`, `kill` share one form. The form is
//!    only ever compared with itself, never shown;
//! 5. Hangul: compatibility or conjoining jamo typed one by one (`ㅈㅜㄱㅇㅕ`)
//!    are recomposed into syllables (`죽여`), also a lone final consonant after
//!    an open syllable (`주ㄱ여` → `죽여`). Lone consonants that form no
//!    syllable (`ㅅㅂ`) stay as they are.
//!
//! Then words are rebuilt: any run of non-alphanumeric characters becomes one
//! space, runs of one-letter words are joined (`k i l l`, `k.i.l.l`, `k-i-l-l`
//! → `kill`), spaces between two Hangul characters are dropped (Korean spacing
//! varies freely), a run of one repeated non-Hangul letter becomes one letter
//! (`kiiiill`, `idddiot`; so `kill` itself folds to `ki`, and `see`/`se` are
//! one form: phrases make that harmless), and a sentence boundary becomes
//! `\n`, which no pattern contains, so nothing matches across a sentence
//! boundary.
//!
//! A sentence boundary is `\n`, `。！？`, or `. ! ? …` followed by white space;
//! a `.` only counts after a word of two or more characters, so `e.g. ` and
//! `k. i. l. l.` are not boundaries. The output scanner releases text only at
//! these same boundaries (see [`crate::OutputScanner`]).

use unicode_normalization::char::{decompose_compatible, is_combining_mark};
use unicode_security::confusable_detection::skeleton;

/// The matching form of a text with a map back to raw byte offsets.
#[derive(Debug, Default, Clone)]
pub(crate) struct Normalized {
    pub(crate) text: String,
    /// For every byte of `text`: the raw byte offset of the character it came
    /// from (separators point at the first raw separator of their run).
    pub(crate) raw: Vec<u32>,
}

impl Normalized {
    /// Raw byte range covered by the normalised byte range `start..end`.
    pub(crate) fn raw_range(&self, raw_text: &str, start: usize, end: usize) -> (usize, usize) {
        let s = self.raw.get(start).map_or(raw_text.len(), |&o| o as usize);
        let mut e = match end.checked_sub(1).and_then(|i| self.raw.get(i)) {
            Some(&o) => {
                let o = o as usize;
                o + raw_text[o..].chars().next().map_or(0, char::len_utf8)
            }
            None => s,
        };
        // Extend over raw letters the folding dropped (a collapsed repeat such
        // as the `ll` of `kill`, zero-width characters), up to the raw
        // character the next folded byte came from.
        let limit = self.raw.get(end).map_or(raw_text.len(), |&o| o as usize);
        while e < limit {
            match raw_text[e..].chars().next() {
                Some(c) if c.is_alphanumeric() || is_invisible(c) || is_combining_mark(c) => {
                    e += c.len_utf8();
                }
                _ => break,
            }
        }
        (s, e.max(s))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Letter,
    Sep,
    Break,
}

#[derive(Clone, Copy)]
struct Unit {
    ch: char,
    kind: Kind,
    raw: u32,
}

fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

fn is_hangul(c: char) -> bool {
    matches!(c, '\u{AC00}'..='\u{D7A3}' | '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}')
}

/// Look-alike and leet folding of one already lower-cased character.
fn fold_lookalike(c: char) -> char {
    match c {
        // Latin skeleton: l, 1, | and i look the same.
        'l' | '1' | '|' | 'ı' => 'i',
        '0' => 'o',
        '3' => 'e',
        '4' | '@' => 'a',
        '5' | '$' => 's',
        '7' => 't',
        // Cyrillic.
        'а' => 'a',
        'в' => 'b',
        'е' | 'ё' | 'є' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'у' => 'y',
        'х' => 'x',
        'і' | 'ї' | 'ӏ' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'ɡ' => 'g',
        // Greek.
        'α' => 'a',
        'β' => 'b',
        'ε' => 'e',
        'η' => 'n',
        'ι' => 'i',
        'κ' => 'k',
        'ν' => 'v',
        'ο' => 'o',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        'γ' => 'y',
        'ω' => 'w',
        other => other,
    }
}

fn push_folded(units: &mut Vec<Unit>, c: char, raw: u32) {
    if c == 'ß' || c == 'ẞ' {
        units.push(Unit {
            ch: 's',
            kind: Kind::Letter,
            raw,
        });
        units.push(Unit {
            ch: 's',
            kind: Kind::Letter,
            raw,
        });
        return;
    }
    // The hand table first (the skeleton maps Cyrillic `к` to `ĸ`, not `k`),
    // then the UTS #39 skeleton for everything it does not know.
    let mut push = |f: char| {
        let kind = if f.is_alphanumeric() {
            Kind::Letter
        } else {
            Kind::Sep
        };
        units.push(Unit {
            ch: if kind == Kind::Letter { f } else { ' ' },
            kind,
            raw,
        });
    };
    let hand: Vec<char> = c.to_lowercase().map(fold_lookalike).collect();
    if hand.iter().all(|f| f.is_ascii() || is_hangul(*f)) {
        hand.into_iter().for_each(push);
        return;
    }
    {
        let mut buf = [0u8; 4];
        for p in skeleton(c.encode_utf8(&mut buf)) {
            if is_combining_mark(p) || is_invisible(p) {
                continue;
            }
            for l in p.to_lowercase() {
                push(match fold_lookalike(l) {
                    'ĸ' => 'k',
                    other => other,
                });
            }
        }
    }
}

const JAMO_INITIALS: &str = "ㄱㄲㄴㄷㄸㄹㅁㅂㅃㅅㅆㅇㅈㅉㅊㅋㅌㅍㅎ";
const JAMO_FINALS: &str = "ㄱㄲㄳㄴㄵㄶㄷㄹㄺㄻㄼㄽㄾㄿㅀㅁㅂㅄㅅㅆㅇㅈㅊㅋㅌㅍㅎ";

/// Index of an initial consonant (compatibility or conjoining jamo).
fn jamo_initial(c: char) -> Option<u32> {
    match c {
        '\u{1100}'..='\u{1112}' => Some(c as u32 - 0x1100),
        _ => JAMO_INITIALS.chars().position(|j| j == c).map(|i| i as u32),
    }
}

fn jamo_vowel(c: char) -> Option<u32> {
    match c {
        '\u{314F}'..='\u{3163}' => Some(c as u32 - 0x314F),
        '\u{1161}'..='\u{1175}' => Some(c as u32 - 0x1161),
        _ => None,
    }
}

/// Index (1..=27) of a final consonant.
fn jamo_final(c: char) -> Option<u32> {
    match c {
        '\u{11A8}'..='\u{11C2}' => Some(c as u32 - 0x11A7),
        _ => JAMO_FINALS
            .chars()
            .position(|j| j == c)
            .map(|i| i as u32 + 1),
    }
}

fn syllable(l: u32, v: u32, t: u32) -> char {
    char::from_u32(0xAC00 + (l * 21 + v) * 28 + t).unwrap_or('\u{FFFD}')
}

/// Recomposes jamo typed one by one into Hangul syllables (see module docs).
fn compose_jamo(units: &mut Vec<Unit>) {
    let is_jamo = |c: char| matches!(c, '\u{1100}'..='\u{11FF}' | '\u{3131}'..='\u{318E}');
    if !units.iter().any(|u| is_jamo(u.ch)) {
        return;
    }
    let ch = |units: &[Unit], i: usize| units.get(i).map(|u| u.ch);
    let vowel_at = |units: &[Unit], i: usize| ch(units, i).and_then(jamo_vowel).is_some();
    let mut out: Vec<Unit> = Vec::with_capacity(units.len());
    let mut i = 0;
    while i < units.len() {
        let u = units[i];
        if let (Some(l), Some(v)) = (jamo_initial(u.ch), ch(units, i + 1).and_then(jamo_vowel)) {
            let t = ch(units, i + 2)
                .and_then(jamo_final)
                .filter(|_| !vowel_at(units, i + 3));
            out.push(Unit {
                ch: syllable(l, v, t.unwrap_or(0)),
                ..u
            });
            i += if t.is_some() { 3 } else { 2 };
            continue;
        }
        // A lone final consonant after an open syllable: `주ㄱ` → `죽`.
        if let (Some(t), Some(prev)) = (jamo_final(u.ch), out.last_mut()) {
            let p = prev.ch as u32;
            if (0xAC00..=0xD7A3).contains(&p)
                && (p - 0xAC00).is_multiple_of(28)
                && !vowel_at(units, i + 1)
            {
                prev.ch = char::from_u32(p + t).unwrap_or(prev.ch);
                i += 1;
                continue;
            }
        }
        out.push(u);
        i += 1;
    }
    *units = out;
}

/// True when the character before byte `i` of `text` ends a word of two or
/// more alphanumeric characters.
fn long_word_before(text: &str, i: usize) -> bool {
    text[..i]
        .chars()
        .rev()
        .take(2)
        .filter(|c| c.is_alphanumeric())
        .count()
        == 2
}

/// Is the character `c` at byte `i` (with `next` after it) a sentence boundary?
pub(crate) fn is_boundary(text: &str, i: usize, c: char, next: Option<char>) -> bool {
    match c {
        '\n' | '。' | '！' | '？' | '\u{2029}' => true,
        '!' | '?' | '…' => next.is_some_and(char::is_whitespace),
        '.' => next.is_some_and(char::is_whitespace) && long_word_before(text, i),
        _ => false,
    }
}

/// Folds `text` into its matching form. `final_text` says whether more text may
/// follow: if not, a `.`/`!`/`?` at the very end counts as a boundary.
pub(crate) fn normalize(text: &str, final_text: bool) -> Normalized {
    let mut units: Vec<Unit> = Vec::with_capacity(text.len());
    let mut chars = text.char_indices().peekable();
    let mut prev_letter = false;
    while let Some((i, c)) = chars.next() {
        let raw = u32::try_from(i).unwrap_or(u32::MAX);
        let next = chars.peek().map(|&(_, n)| n);
        let boundary = is_boundary(text, i, c, next)
            || (final_text && next.is_none() && matches!(c, '.' | '!' | '?'));
        if boundary {
            units.push(Unit {
                ch: '\n',
                kind: Kind::Break,
                raw,
            });
            prev_letter = false;
            continue;
        }
        if c.is_ascii() {
            let ch = if c == '!' && prev_letter && next.is_some_and(char::is_alphanumeric) {
                'i'
            } else {
                fold_lookalike(c.to_ascii_lowercase())
            };
            prev_letter = ch.is_ascii_alphanumeric();
            let kind = if prev_letter { Kind::Letter } else { Kind::Sep };
            units.push(Unit {
                ch: if prev_letter { ch } else { ' ' },
                kind,
                raw,
            });
            continue;
        }
        if is_invisible(c) || is_combining_mark(c) {
            continue;
        }
        if is_hangul(c) {
            units.push(Unit {
                ch: c,
                kind: Kind::Letter,
                raw,
            });
            prev_letter = true;
            continue;
        }
        let before = units.len();
        decompose_compatible(c, |d| {
            if !is_combining_mark(d) && !is_invisible(d) {
                push_folded(&mut units, d, raw);
            }
        });
        prev_letter = units[before..]
            .last()
            .is_some_and(|u| u.kind == Kind::Letter);
    }
    compose_jamo(&mut units);
    rebuild(text, units)
}

/// Words from units: separators collapsed, one-letter runs and Hangul joined.
fn rebuild(text: &str, units: Vec<Unit>) -> Normalized {
    // Word spans over `units`.
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < units.len() {
        if units[i].kind == Kind::Letter {
            let s = i;
            while i < units.len() && units[i].kind == Kind::Letter {
                i += 1;
            }
            words.push((s, i));
        } else {
            i += 1;
        }
    }
    let mut out = Normalized {
        text: String::with_capacity(text.len()),
        raw: Vec::with_capacity(text.len()),
    };
    let emit = |out: &mut Normalized, ch: char, raw: u32| {
        out.text.push(ch);
        for _ in 0..ch.len_utf8() {
            out.raw.push(raw);
        }
    };
    let mut cursor = 0;
    // The last letter emitted in the current (possibly joined) word.
    let mut last: Option<char> = None;
    for (w, &(s, e)) in words.iter().enumerate() {
        // The gap before this word.
        if s > cursor {
            let gap = &units[cursor..s];
            let hard = gap.iter().find(|u| u.kind == Kind::Break);
            let join = w > 0 && hard.is_none() && {
                let (ps, pe) = words[w - 1];
                let single = pe - ps == 1 && e - s == 1;
                let hangul = is_hangul(units[pe - 1].ch) && is_hangul(units[s].ch);
                single || hangul
            };
            if let Some(b) = hard {
                emit(&mut out, '\n', b.raw);
                last = None;
            } else if !join {
                emit(&mut out, ' ', gap[0].raw);
                last = None;
            }
        }
        for u in &units[s..e] {
            if last == Some(u.ch) && u.ch.is_alphabetic() && !is_hangul(u.ch) {
                continue;
            }
            emit(&mut out, u.ch, u.raw);
            last = Some(u.ch);
        }
        cursor = e;
    }
    if cursor < units.len() {
        let gap = &units[cursor..];
        let hard = gap.iter().find(|u| u.kind == Kind::Break);
        let b = hard.unwrap_or(&gap[0]);
        emit(&mut out, if hard.is_some() { '\n' } else { ' ' }, b.raw);
    }
    out
}

/// A readable form of `text` for the sentence encoder: evasions undone but
/// words kept as people write them (the matching form's `l → i` or collapsed
/// double letters would make text an encoder no longer understands).
/// Zero-width characters go, full-width and mathematical letters become ASCII,
/// Cyrillic or Greek look-alikes next to Latin letters become Latin, jamo are
/// recomposed, leetspeak inside words with letters is decoded, runs of three
/// or more equal letters become one, and letters or Hangul syllables written
/// one by one (`k i l l`, `j.e.w.s`, `아 동`) are joined.
pub(crate) fn readable(text: &str) -> String {
    let mut chars: Vec<char> = Vec::with_capacity(text.len());
    for c in text.chars() {
        if is_invisible(c) {
            continue;
        }
        match c {
            '\u{FF01}'..='\u{FF5E}' => {
                chars.push(char::from_u32(c as u32 - 0xFEE0).unwrap_or(c));
            }
            '\u{3000}' => chars.push(' '),
            '\u{1D400}'..='\u{1D7FF}' | '\u{2460}'..='\u{24FF}' | '\u{1F130}'..='\u{1F189}' => {
                decompose_compatible(c, |d| chars.push(d));
            }
            _ => chars.push(c),
        }
    }
    // Look-alikes next to a Latin letter.
    let latin = |c: Option<&char>| c.is_some_and(char::is_ascii_alphabetic);
    for i in 0..chars.len() {
        let c = chars[i];
        if matches!(c as u32, 0x0370..=0x052F)
            && (latin(chars.get(i.wrapping_sub(1))) || latin(chars.get(i + 1)))
        {
            let f = c.to_lowercase().next().map_or(c, fold_lookalike);
            if f.is_ascii_alphabetic() {
                chars[i] = f;
            }
        }
    }
    let mut units: Vec<Unit> = chars
        .iter()
        .map(|&ch| Unit {
            ch,
            kind: Kind::Letter,
            raw: 0,
        })
        .collect();
    compose_jamo(&mut units);
    let text: String = units.iter().map(|u| u.ch).collect();

    let mut words: Vec<String> = Vec::new();
    for token in text.split_whitespace() {
        let mut w: String = token.to_owned();
        // `j.e.w.s`, `k-i-l-l`: single letters joined by dots or hyphens.
        let parts: Vec<&str> = token.split(['.', '-', '_', '*']).collect();
        if parts.len() >= 3 && parts.iter().all(|p| p.chars().count() == 1) {
            w = parts.concat();
        }
        let letters = w.chars().any(|c| c.is_ascii_alphabetic());
        let leety = w
            .chars()
            .any(|c| c.is_ascii_digit() || c == '@' || c == '$');
        if letters && leety && !w.contains("://") {
            w = w
                .chars()
                .map(|c| match c {
                    '0' => 'o',
                    '1' => 'i',
                    '3' => 'e',
                    '4' | '@' => 'a',
                    '5' | '$' => 's',
                    '7' => 't',
                    other => other,
                })
                .collect();
        }
        // Runs of three or more equal letters.
        let mut out = String::with_capacity(w.len());
        let wc: Vec<char> = w.chars().collect();
        let mut i = 0;
        while i < wc.len() {
            let mut j = i;
            while j < wc.len() && wc[j] == wc[i] {
                j += 1;
            }
            let run = if j - i >= 3 && wc[i].is_alphabetic() {
                1
            } else {
                j - i
            };
            out.extend(std::iter::repeat_n(wc[i], run));
            i = j;
        }
        words.push(out);
    }
    // Runs of three or more one-character words are joined.
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < words.len() {
        let single = |w: &String| w.chars().count() == 1 && w.chars().all(char::is_alphanumeric);
        let mut j = i;
        while j < words.len() && single(&words[j]) {
            j += 1;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        if j - i >= 3 {
            out.push_str(&words[i..j].concat());
            i = j;
        } else {
            out.push_str(&words[i]);
            i += 1;
        }
    }
    out
}

/// The matching form of a lexicon entry or `block-terms:` term.
pub(crate) fn normalize_term(term: &str) -> String {
    normalize(term, false).text.trim().to_owned()
}

/// Byte offset just after the last sentence boundary of `text`, if any.
pub(crate) fn last_boundary(text: &str) -> Option<usize> {
    last_boundary_from(text, 0)
}

/// Like [`last_boundary`], looking only at boundary characters at or after
/// byte `from` (a char boundary); the look-behind still sees all of `text`.
pub(crate) fn last_boundary_from(text: &str, from: usize) -> Option<usize> {
    let mut last = None;
    let mut chars = text[from..].char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(
            c,
            '\n' | '。' | '！' | '？' | '\u{2029}' | '!' | '?' | '…' | '.'
        ) {
            let next = chars.peek().map(|&(_, n)| n);
            if is_boundary(text, from + i, c, next) {
                last = Some(from + i + c.len_utf8());
            }
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s, true).text
    }

    #[test]
    fn folds_evasions_to_one_form() {
        let plain = n("kill yourself");
        for evasion in [
            "KILL YOURSELF",
            "k1ll y0urs3lf",
            "ki\u{200b}ll your\u{200d}self",
            "kíll yoursélf",
            "\u{043a}ill \u{0443}ourself",
            "ｋｉｌｌ yourself",
            "k!ll yourself",
            "kill   ---   yourself",
        ] {
            assert_eq!(n(evasion), plain, "{evasion}");
        }
        assert_eq!(n("k i l l yourself"), plain);
        assert_eq!(n("k.i.l.l yourself"), plain);
        assert_eq!(n("k-i-l-l"), n("kill"));
        assert_eq!(n("kiiiilllll yourself"), plain);
        // Confusables beyond the hand table: Cherokee, mathematical, Armenian.
        assert_eq!(n("\u{13DA}\u{13A2}\u{0585}p"), n("STOP"));
        assert_eq!(
            n("worthl\u{0435}ss stupid bit\u{0441}h"),
            n("worthless stupid bitch")
        );
    }

    #[test]
    fn readable_form_undoes_evasions_and_keeps_words() {
        assert_eq!(
            readable("you are a worthl\u{0435}ss stupid bit\u{0441}h"),
            "you are a worthless stupid bitch"
        );
        assert_eq!(readable("73ll m3 how 70 po15on"), "tell me how 70 poison");
        assert_eq!(readable("I will m u r d e r you"), "I will murder you");
        assert_eq!(readable("gas the j.e.w.s"), "gas the jews");
        assert_eq!(readable("ki\u{200b}ll a lliiiife"), "kill a llife");
        assert_eq!(readable("ｋｉｌｌ　ｍｅ"), "kill me");
        assert_eq!(readable("그냥 ㅈㅜㄱㄱㅗ 싶어"), "그냥 죽고 싶어");
        assert_eq!(readable("난 민 들 은 다 벌 레 야"), "난민들은다벌레야");
        assert_eq!(readable("Port 8080, 2 PCs"), "Port 8080, 2 PCs");
    }

    #[test]
    fn hangul_jamo_and_spacing_fold_to_syllables() {
        assert_eq!(n("ㅈㅜㄱㅇㅕ버려"), n("죽여버려"));
        assert_eq!(n("주ㄱ여 버려"), n("죽여버려"));
        assert_eq!(n("\u{1109}\u{1175}\u{1107}\u{1161}\u{11AF}"), n("시발"));
        assert_eq!(n("ㅂㅕㅇㅅㅣㄴ"), n("병신"));
        assert_eq!(n("아 동 음 란 물"), n("아동음란물"));
        assert_eq!(n("자.살"), n("자살"));
        assert_eq!(n("ㅅㅂ"), "ㅅㅂ");
    }

    #[test]
    fn sentence_boundaries_are_hard_breaks() {
        assert_eq!(n("Fine. Kill it"), "fine\nki it");
        assert_eq!(n("e.g. this"), "eg this");
        assert_eq!(n("3.5 ok"), "es ok");
        assert_eq!(n("죽여 버릴"), "죽여버릴");
        assert_eq!(n("Straße"), "strase");
    }

    #[test]
    fn raw_offsets_point_back() {
        let raw = "Hi, ｋill you";
        let norm = normalize(raw, true);
        let at = norm.text.find("ki you").unwrap_or(0);
        let (s, e) = norm.raw_range(raw, at, at + 2);
        assert_eq!(&raw[s..e], "ｋill");
        let raw = "you idiooot";
        let norm = normalize(raw, true);
        let at = norm.text.find("idiot").unwrap_or(0);
        let (s, e) = norm.raw_range(raw, at, at + 5);
        assert_eq!(&raw[s..e], "idiooot");
    }
}
