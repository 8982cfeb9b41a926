//! The built-in guard: lexicon, personal data, prompt injection, guardrails.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use crate::guardrail::CompiledRules;
use crate::injection::InjectionDetector;
use crate::lexicon::{self, PhraseSet};
use crate::local::LocalClassifier;
use crate::normalize::{last_boundary, last_boundary_from, normalize, Normalized};
use crate::pii::{self, PiiDetector, PiiKind};
use crate::{
    Action, Assessment, Finding, Guard, GuardPolicy, OutputScanner, ScanStep, Stage, Verdict,
};

/// Window size at which the output scanner cuts even without a sentence
/// boundary.
pub const MAX_WINDOW_BYTES: usize = 1024;
/// Bytes of released text each scan looks back at.
const CONTEXT_BYTES: usize = 256;
/// Folded bytes held back beyond the longest phrase at a forced cut.
const HOLD_MARGIN: usize = 16;
/// Compiled guardrail sets kept; the cache is emptied when full.
const RULE_CACHE_CAP: usize = 512;
const EXCERPT_CHARS: usize = 80;

/// The built-in [`Guard`]. Building it expands and compiles the lexicon
/// (about 94,000 patterns, ~0.2 s in a release build): build one at start-up
/// and share it; clones are cheap.
#[derive(Debug, Clone)]
pub struct Moderator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    lexicon: PhraseSet,
    injection: InjectionDetector,
    pii: PiiDetector,
    classifier: Option<LocalClassifier>,
    rules: Mutex<HashMap<Vec<String>, Arc<CompiledRules>>>,
}

/// A match in a scanned text, at raw byte offsets of that text.
#[derive(Debug, Clone)]
struct Hit {
    category: &'static str,
    rule: String,
    action: Action,
    start: usize,
    end: usize,
    pii: Option<PiiKind>,
}

impl Default for Moderator {
    fn default() -> Self {
        Self::new()
    }
}

impl Moderator {
    /// The lexical guard (no classifier).
    pub fn new() -> Self {
        Self::with_classifier(None)
    }

    /// The guard, with the local classifier judging every input and every
    /// released output window that the lexical checks let through.
    pub fn with_classifier(classifier: Option<LocalClassifier>) -> Self {
        Self {
            inner: Arc::new(Inner {
                lexicon: PhraseSet::build(lexicon::builtin()),
                injection: InjectionDetector::new(),
                pii: PiiDetector::new(),
                classifier,
                rules: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Whether the local classifier is in use.
    pub fn has_classifier(&self) -> bool {
        self.inner.classifier.is_some()
    }
}

impl Inner {
    fn rules(&self, policy: &GuardPolicy) -> Arc<CompiledRules> {
        if policy.guardrails.is_empty() {
            return Arc::new(CompiledRules::default());
        }
        let mut cache = self.rules.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = cache.get(&policy.guardrails) {
            return r.clone();
        }
        if cache.len() >= RULE_CACHE_CAP {
            cache.clear();
        }
        let compiled = Arc::new(CompiledRules::compile(&policy.guardrails));
        cache.insert(policy.guardrails.clone(), compiled.clone());
        compiled
    }

    /// Every match except `block:` regexes in `text` (raw) whose folded form
    /// is `norm`, sorted by start.
    fn scan(
        &self,
        rules: &CompiledRules,
        redact_pii: bool,
        stage: Stage,
        text: &str,
        norm: &Normalized,
        final_text: bool,
    ) -> Vec<Hit> {
        let mut hits = Vec::new();
        for h in self.lexicon.find(&norm.text, final_text) {
            let (start, end) = norm.raw_range(text, h.start, h.end);
            hits.push(Hit {
                category: self.lexicon.category(h.entry),
                rule: self.lexicon.phrase(h.entry).to_owned(),
                action: Action::Block,
                start,
                end,
                pii: None,
            });
        }
        if let Some(terms) = &rules.terms {
            for h in terms.find(&norm.text, final_text) {
                let (start, end) = norm.raw_range(text, h.start, h.end);
                hits.push(Hit {
                    category: "guardrail",
                    rule: rules
                        .term_rules
                        .get(terms.tag(h.entry))
                        .cloned()
                        .unwrap_or_default(),
                    action: Action::Block,
                    start,
                    end,
                    pii: None,
                });
            }
        }
        if stage == Stage::Input {
            for (rule, s, e) in self.injection.find(&norm.text) {
                let (start, end) = norm.raw_range(text, s, e);
                hits.push(Hit {
                    category: "prompt_injection",
                    rule: rule.to_owned(),
                    action: Action::Block,
                    start,
                    end,
                    pii: None,
                });
            }
        }
        for m in self.pii.find(text) {
            let action = if redact_pii {
                Action::Redact
            } else if stage == Stage::Output && m.kind == PiiKind::Card {
                // The assistant has no business producing a card number: it can
                // only come from leaked context. Surface it for review.
                Action::Flag
            } else {
                Action::Note
            };
            hits.push(Hit {
                category: m.kind.category(),
                rule: m.kind.rule().to_owned(),
                action,
                start: m.start,
                end: m.end,
                pii: Some(m.kind),
            });
        }
        hits.sort_by_key(|h| (h.start, h.end));
        hits
    }
}

impl Inner {
    /// The local classifier's finding about `text` (raw, `span` in the
    /// checked text), if it blocks or cannot run.
    fn classify(
        &self,
        rules: &CompiledRules,
        text: &str,
        stage: Stage,
        span: Range<usize>,
    ) -> Option<Finding> {
        let classifier = self.classifier.as_ref()?;
        if text.trim().is_empty() {
            return None;
        }
        let excerpt = || {
            let t = text.trim();
            if t.chars().count() > EXCERPT_CHARS {
                let mut s: String = t.chars().take(EXCERPT_CHARS - 1).collect();
                s.push('…');
                s
            } else {
                t.to_owned()
            }
        };
        match classifier.scores(text) {
            Ok(scores) => {
                let (category, score, threshold) = scores.blocking(&rules.settings)?;
                Some(Finding {
                    category: category.to_owned(),
                    rule: format!("local classifier {score:.3} ≥ {threshold:.3}"),
                    stage,
                    action: Action::Block,
                    excerpt: excerpt(),
                    span,
                })
            }
            Err(error) => {
                tracing::warn!(%error, "local moderation classifier failed; lexical checks only");
                Some(Finding {
                    category: "classifier_unavailable".to_owned(),
                    rule: error.to_string(),
                    stage,
                    action: Action::Note,
                    excerpt: String::new(),
                    span,
                })
            }
        }
    }
}

/// Matches of the `block:` guardrails in raw `text`.
fn regex_hits(rules: &CompiledRules, text: &str) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (rule, re) in &rules.regexes {
        for m in re.find_iter(text).filter(|m| !m.is_empty()) {
            hits.push(Hit {
                category: "guardrail",
                rule: rule.clone(),
                action: Action::Block,
                start: m.start(),
                end: m.end(),
                pii: None,
            });
        }
    }
    hits
}

/// Where the folded scan starts inside the released tail: after its last
/// white space (at most 64 bytes back), so a window that starts mid-word
/// (a forced cut without white space) is still folded and bounded correctly.
fn word_context_start(context: &str) -> usize {
    let mut from = context
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace())
        .map_or(0, |(i, c)| i + c.len_utf8());
    if context.len() - from > 64 {
        from = context.len() - 64;
        while !context.is_char_boundary(from) {
            from += 1;
        }
    }
    from
}

fn excerpt(hit: &Hit, text: &str) -> String {
    let matched = &text[hit.start..hit.end];
    match hit.pii {
        Some(kind) => pii::mask(kind, matched),
        None if matched.chars().count() > EXCERPT_CHARS => {
            let mut s: String = matched.chars().take(EXCERPT_CHARS - 1).collect();
            s.push('…');
            s
        }
        None => matched.to_owned(),
    }
}

fn finding(hit: &Hit, text: &str, stage: Stage, offset: usize) -> Finding {
    Finding {
        category: hit.category.to_owned(),
        rule: hit.rule.clone(),
        stage,
        action: hit.action,
        excerpt: excerpt(hit, text),
        span: hit.start + offset..hit.end + offset,
    }
}

/// `text[from..to]` with the redacting hits inside it replaced.
fn redacted(text: &str, from: usize, to: usize, hits: &[Hit]) -> String {
    let mut out = String::with_capacity(to - from);
    let mut at = from;
    for h in hits {
        if h.action == Action::Redact && h.start >= at && h.end <= to {
            out.push_str(&text[at..h.start]);
            out.push_str(h.pii.map_or("[redacted]", PiiKind::placeholder));
            at = h.end;
        }
    }
    out.push_str(&text[at..to]);
    out
}

impl Guard for Moderator {
    fn check_input(&self, text: &str, policy: &GuardPolicy) -> Assessment {
        let rules = self.inner.rules(policy);
        let norm = normalize(text, true);
        let mut hits = self
            .inner
            .scan(&rules, policy.redact_pii, Stage::Input, text, &norm, true);
        hits.extend(regex_hits(&rules, text));
        hits.sort_by_key(|h| (h.start, h.end));
        let mut findings: Vec<Finding> = hits
            .iter()
            .map(|h| finding(h, text, Stage::Input, 0))
            .collect();
        if !hits.iter().any(|h| h.action == Action::Block) {
            findings.extend(
                self.inner
                    .classify(&rules, text, Stage::Input, 0..text.len()),
            );
        }
        Assessment {
            verdict: Verdict::from_findings(&findings),
            text: redacted(text, 0, text.len(), &hits),
            findings,
        }
    }

    fn output_scanner(&self, policy: &GuardPolicy) -> Box<dyn OutputScanner> {
        let rules = self.inner.rules(policy);
        let terms_len = rules.terms.as_ref().map_or(0, |t| t.max_len);
        Box::new(Scanner {
            hold: self.inner.lexicon.max_len.max(terms_len) + HOLD_MARGIN,
            inner: self.inner.clone(),
            rules,
            redact_pii: policy.redact_pii,
            pending: String::new(),
            context: String::new(),
            released: String::new(),
            consumed: 0,
            findings: Vec::new(),
            blocked: None,
            finished: false,
            searched: 0,
        })
    }
}

/// The sentence-window scanner described in the crate docs.
struct Scanner {
    inner: Arc<Inner>,
    rules: Arc<CompiledRules>,
    redact_pii: bool,
    /// Folded bytes held back at a forced cut.
    hold: usize,
    /// Received, not yet released (raw).
    pending: String,
    /// Tail of the released raw text, starting at white space.
    context: String,
    /// Everything released (redacted).
    released: String,
    /// Raw bytes of the reply before `pending`.
    consumed: usize,
    findings: Vec<Finding>,
    blocked: Option<Finding>,
    finished: bool,
    /// `pending` up to here holds no sentence boundary.
    searched: usize,
}

/// Number-like or e-mail-like: could be part of a phone, card or IBAN.
/// Words with a few digits (`token12`, `v2`, `mp3`) are not: holding them
/// back would stop text full of codes from streaming.
fn pii_like(token: &str) -> bool {
    let digits = token.bytes().filter(u8::is_ascii_digit).count();
    let alnum = token.chars().filter(char::is_ascii_alphanumeric).count();
    let charset = token
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "+()./-".contains(c));
    token.contains('@')
        || (digits > 0 && charset && digits * 2 >= alnum)
        || (token.len() <= 4
            && token
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()))
}

impl Scanner {
    /// A cut for a window with no sentence boundary: `hold` folded bytes before
    /// the end, back to white space and before any number-like tokens.
    /// `norm` is the folded form of the scanned text from byte `base` on.
    fn forced_cut(&self, norm: &Normalized, base: usize, ctx_len: usize) -> usize {
        let mut idx = norm.text.len().saturating_sub(self.hold);
        while idx > 0 && !norm.text.is_char_boundary(idx) {
            idx -= 1;
        }
        let Some(&raw) = norm.raw.get(idx) else {
            return 0;
        };
        let raw = raw as usize + base;
        if idx == 0 || raw <= ctx_len {
            return 0;
        }
        let mut cut = raw - ctx_len;
        if let Some((w, c)) = self.pending[..cut]
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
        {
            cut = w + c.len_utf8();
        }
        // Walk back over number-like tokens so a phone number or card split
        // by spaces is released whole or not at all.
        loop {
            let before = self.pending[..cut].trim_end();
            let start = before
                .char_indices()
                .rev()
                .find(|(_, c)| c.is_whitespace())
                .map_or(0, |(i, c)| i + c.len_utf8());
            let token = &before[start..];
            if token.is_empty() || !pii_like(token) {
                break;
            }
            cut = start;
        }
        cut
    }

    fn step(&mut self, final_text: bool) -> ScanStep {
        let ctx_len = self.context.len();
        let mut text = String::with_capacity(ctx_len + self.pending.len());
        text.push_str(&self.context);
        text.push_str(&self.pending);
        // The folded checks need only the word the window may start inside;
        // the regexes get the whole released tail (see the crate docs).
        let base = word_context_start(&self.context);
        let norm = normalize(&text[base..], final_text);
        let mut hits = self.inner.scan(
            &self.rules,
            self.redact_pii,
            Stage::Output,
            &text[base..],
            &norm,
            final_text,
        );
        for h in &mut hits {
            h.start += base;
            h.end += base;
        }
        hits.extend(regex_hits(&self.rules, &text));
        hits.retain(|h| h.end > ctx_len);
        hits.sort_by_key(|h| (h.start, h.end));
        let offset = self.consumed - ctx_len;
        if let Some(b) = hits.iter().find(|h| h.action == Action::Block) {
            let f = finding(b, &text, Stage::Output, offset);
            self.findings.push(f.clone());
            self.blocked = Some(f.clone());
            return ScanStep::Block(f);
        }

        let mut cut = if final_text {
            self.pending.len()
        } else {
            let sentence = last_boundary(&self.pending).unwrap_or(0);
            let forced = if self.pending.len() >= MAX_WINDOW_BYTES {
                self.forced_cut(&norm, base, ctx_len)
            } else {
                0
            };
            sentence.max(forced)
        };
        // Never split a personal-data item (a safeguard: the cut rules above
        // already avoid it).
        if !final_text {
            for h in hits
                .iter()
                .rev()
                .filter(|h| h.pii.is_some() && h.start >= ctx_len)
            {
                let (s, e) = (h.start - ctx_len, h.end - ctx_len);
                if s < cut && e >= cut {
                    cut = s;
                }
            }
        }
        if cut == 0 {
            return ScanStep::Release(String::new());
        }

        let window_end = ctx_len + cut;
        if let Some(f) = self.inner.classify(
            &self.rules,
            &text[ctx_len..window_end],
            Stage::Output,
            offset + ctx_len..offset + window_end,
        ) {
            self.findings.push(f.clone());
            if f.action == Action::Block {
                self.blocked = Some(f.clone());
                return ScanStep::Block(f);
            }
        }
        let in_window: Vec<Hit> = hits
            .into_iter()
            .filter(|h| h.start >= ctx_len && h.end <= window_end)
            .collect();
        let out = redacted(&text, ctx_len, window_end, &in_window);
        self.findings.extend(
            in_window
                .iter()
                .map(|h| finding(h, &text, Stage::Output, offset)),
        );
        self.released.push_str(&out);

        // New context: the tail of context + window, from white space on.
        let tail_from = window_end.saturating_sub(CONTEXT_BYTES);
        let mut from = tail_from;
        while !text.is_char_boundary(from) {
            from += 1;
        }
        if tail_from > 0 {
            if let Some((i, c)) = text[from..window_end]
                .char_indices()
                .find(|(_, c)| c.is_whitespace())
            {
                from += i + c.len_utf8();
            } else {
                from = window_end;
            }
        }
        self.context = text[from..window_end].to_owned();
        self.pending.drain(..cut);
        self.consumed += cut;
        ScanStep::Release(out)
    }
}

impl OutputScanner for Scanner {
    fn push(&mut self, delta: &str) -> ScanStep {
        if let Some(b) = &self.blocked {
            return ScanStep::Block(b.clone());
        }
        if self.finished {
            tracing::warn!("output scanner fed after finish; text ignored");
            return ScanStep::Release(String::new());
        }
        self.pending.push_str(delta);
        // Only a new boundary or a full window can release anything. A `.`
        // needs the white space after it, so look back one character.
        let mut from = self.searched.saturating_sub(4);
        while !self.pending.is_char_boundary(from) {
            from -= 1;
        }
        let boundary = last_boundary_from(&self.pending, from).is_some();
        self.searched = self.pending.len();
        if !boundary && self.pending.len() < MAX_WINDOW_BYTES {
            return ScanStep::Release(String::new());
        }
        let step = self.step(false);
        self.searched = 0;
        step
    }

    fn finish(&mut self) -> ScanStep {
        if let Some(b) = &self.blocked {
            return ScanStep::Block(b.clone());
        }
        if self.finished {
            return ScanStep::Release(String::new());
        }
        let step = self.step(true);
        self.finished = true;
        step
    }

    fn assessment(&self) -> Assessment {
        Assessment {
            verdict: Verdict::from_findings(&self.findings),
            text: self.released.clone(),
            findings: self.findings.clone(),
        }
    }
}
