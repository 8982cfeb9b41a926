//! Personal data: emails, phone numbers, payment cards (Luhn), IBANs (mod-97).
//!
//! Matched on the raw text (not the folded form) so redaction can replace the
//! exact bytes. Candidates come from regexes; cards and IBANs are kept only when
//! their checksum holds, phone numbers only with a plausible digit count and a
//! `+`, a leading `0` or North-American grouping, and no match may touch a
//! letter or digit on either side. Where candidates overlap, IBAN beats card
//! beats phone beats email.

use regex::Regex;

/// Which kind of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PiiKind {
    Email,
    Phone,
    Card,
    Iban,
}

impl PiiKind {
    pub(crate) fn category(self) -> &'static str {
        match self {
            Self::Email => "pii.email",
            Self::Phone => "pii.phone",
            Self::Card => "pii.card",
            Self::Iban => "pii.iban",
        }
    }

    pub(crate) fn rule(self) -> &'static str {
        match self {
            Self::Email => "email address",
            Self::Phone => "phone number",
            Self::Card => "payment card number (Luhn)",
            Self::Iban => "IBAN (mod-97)",
        }
    }

    /// What replaces the item when the policy asks for redaction.
    pub(crate) fn placeholder(self) -> &'static str {
        match self {
            Self::Email => "[email redacted]",
            Self::Phone => "[phone redacted]",
            Self::Card => "[card redacted]",
            Self::Iban => "[iban redacted]",
        }
    }
}

/// One item of personal data at raw byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PiiMatch {
    pub(crate) kind: PiiKind,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

#[derive(Debug)]
pub(crate) struct PiiDetector {
    email: Regex,
    phone: Regex,
    card: Regex,
    iban: Regex,
}

fn regex(pattern: &str) -> Regex {
    // The patterns are constants covered by tests; a failure is a bug here.
    #[allow(clippy::expect_used)]
    Regex::new(pattern).expect("built-in PII pattern compiles")
}

impl PiiDetector {
    pub(crate) fn new() -> Self {
        Self {
            email: regex(
                r"(?i)[a-z0-9][a-z0-9._%+-]{0,63}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,24}",
            ),
            phone: regex(concat!(
                r"\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,5}\)?){2,6}",
                r"|\(?0[1-9][0-9]{0,4}\)?(?:[ ./-]?[0-9]{2,8}){1,4}",
                r"|\(?[2-9][0-9]{2}\)?[ .-]?[2-9][0-9]{2}[ .-][0-9]{4}",
            )),
            card: regex(r"[0-9](?:[ -]?[0-9]){12,18}"),
            iban: regex(r"(?i)[a-z]{2}[0-9]{2}(?: ?[a-z0-9]{4}){2,7}(?: ?[a-z0-9]{1,4})?"),
        }
    }

    /// All items in `text`, sorted by start, not overlapping.
    pub(crate) fn find(&self, text: &str) -> Vec<PiiMatch> {
        let mut found: Vec<PiiMatch> = Vec::new();
        let add = |found: &mut Vec<PiiMatch>, m: PiiMatch| {
            if !found.iter().any(|f| f.start < m.end && m.start < f.end) {
                found.push(m);
            }
        };
        // Cheap gates: no digit means no card, IBAN or phone; no `@`, no email.
        let has_digit = text.bytes().any(|b| b.is_ascii_digit());
        if has_digit {
            for m in self.iban.find_iter(text) {
                if let Some(end) = valid_iban(text, m.start(), m.end()) {
                    add(
                        &mut found,
                        PiiMatch {
                            kind: PiiKind::Iban,
                            start: m.start(),
                            end,
                        },
                    );
                }
            }
            for m in self.card.find_iter(text) {
                if isolated(text, m.start(), m.end()) && valid_card(m.as_str()) {
                    add(
                        &mut found,
                        PiiMatch {
                            kind: PiiKind::Card,
                            start: m.start(),
                            end: m.end(),
                        },
                    );
                }
            }
            for m in self.phone.find_iter(text) {
                let digits = m.as_str().bytes().filter(u8::is_ascii_digit).count();
                let min = if m.as_str().starts_with('+') { 8 } else { 9 };
                if (min..=15).contains(&digits) && isolated(text, m.start(), m.end()) {
                    add(
                        &mut found,
                        PiiMatch {
                            kind: PiiKind::Phone,
                            start: m.start(),
                            end: m.end(),
                        },
                    );
                }
            }
        }
        if text.contains('@') {
            for m in self.email.find_iter(text) {
                if isolated(text, m.start(), m.end()) {
                    add(
                        &mut found,
                        PiiMatch {
                            kind: PiiKind::Email,
                            start: m.start(),
                            end: m.end(),
                        },
                    );
                }
            }
        }
        found.sort_by_key(|m| m.start);
        found
    }
}

/// No letter or digit touches the match on either side.
fn isolated(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(|c| c.is_alphanumeric() || c == '+' || c == '@')
        && !after.is_some_and(|c| c.is_alphanumeric() || c == '@')
}

/// Luhn check on 13–19 digits with a card-network first digit (2–6).
fn valid_card(candidate: &str) -> bool {
    let digits: Vec<u32> = candidate.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) || !(2..=6).contains(&digits[0]) {
        return false;
    }
    luhn(&digits)
}

pub(crate) fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 {
                    dd - 9
                } else {
                    dd
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The longest prefix of the candidate (at least 15 characters) that is a valid
/// IBAN and ends on a word boundary; returns its raw end.
fn valid_iban(text: &str, start: usize, end: usize) -> Option<usize> {
    if text[..start]
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric)
    {
        return None;
    }
    let compact: Vec<(usize, char)> = text[start..end]
        .char_indices()
        .filter(|(_, c)| c.is_ascii_alphanumeric())
        .map(|(i, c)| (start + i + 1, c.to_ascii_uppercase()))
        .collect();
    if !compact[..2].iter().all(|(_, c)| c.is_ascii_uppercase()) {
        return None;
    }
    (15..=compact.len().min(34)).rev().find_map(|len| {
        let raw_end = compact[len - 1].0;
        let boundary = !text[raw_end..]
            .chars()
            .next()
            .is_some_and(char::is_alphanumeric);
        let s: String = compact[..len].iter().map(|(_, c)| *c).collect();
        (boundary && mod97(&s)).then_some(raw_end)
    })
}

pub(crate) fn mod97(iban: &str) -> bool {
    let rearranged = iban.chars().skip(4).chain(iban.chars().take(4));
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = match c.to_digit(36) {
            Some(v) => v,
            None => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// A short, non-identifying excerpt of an item for moderation records.
pub(crate) fn mask(kind: PiiKind, item: &str) -> String {
    match kind {
        PiiKind::Email => match item.split_once('@') {
            Some((local, domain)) => {
                format!("{}***@{domain}", local.chars().next().unwrap_or('*'))
            }
            None => "***".to_owned(),
        },
        _ => {
            let tail: String = item
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<Vec<_>>()
                .iter()
                .rev()
                .take(4)
                .rev()
                .collect();
            format!("***{tail}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(PiiKind, String)> {
        PiiDetector::new()
            .find(text)
            .into_iter()
            .map(|m| (m.kind, text[m.start..m.end].to_owned()))
            .collect()
    }

    #[test]
    fn finds_valid_items_only() {
        assert_eq!(
            kinds("card 4111 1111 1111 1111 ok"),
            [(PiiKind::Card, "4111 1111 1111 1111".to_owned())]
        );
        assert!(kinds("order 4111 1111 1111 1112").is_empty());
        assert_eq!(
            kinds("IBAN DE89 3704 0044 0532 0130 00. Danke"),
            [(PiiKind::Iban, "DE89 3704 0044 0532 0130 00".to_owned())]
        );
        assert!(kinds("IBAN DE89 3704 0044 0532 0130 01").is_empty());
        assert_eq!(
            kinds("mail jane.doe@example.com."),
            [(PiiKind::Email, "jane.doe@example.com".to_owned())]
        );
        assert_eq!(
            kinds("ring +49 170 1234567 now"),
            [(PiiKind::Phone, "+49 170 1234567".to_owned())]
        );
        assert!(kinds("version 3.5.1, ticket 12345, 2024-01-15, $49.99").is_empty());
    }

    #[test]
    fn masks_keep_little() {
        assert_eq!(mask(PiiKind::Card, "4111 1111 1111 1111"), "***1111");
        assert_eq!(mask(PiiKind::Email, "jane@example.com"), "j***@example.com");
    }
}
