//! A small lexicon of customer-support vocabulary: words a user writes for
//! what an FAQ entry calls something else ("package" / "order", "money back"
//! / "refund"). Query words are expanded with the other members of their
//! groups, matched at [`SYNONYM_WEIGHT`] of an exact match, so an entry that
//! uses the user's own word still ranks first.
//!
//! The groups are general support vocabulary (accounts, billing, shipping,
//! devices), not the vocabulary of one FAQ; the lexical-only figures in
//! docs/retrieval.md are measured with them on both labelled sets.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::analysis::Lang;

/// How much a match through a synonym counts, relative to an exact one.
pub(crate) const SYNONYM_WEIGHT: f64 = 0.7;

/// Groups of interchangeable words, as (English, German, Korean) lists of
/// surface forms (stemmed on first use in both languages' stemmers). Words
/// are only linked within one language: a query should find the entry in
/// its own language, and a Korean "refund" pulling in the English refund
/// entry ranked it above the Korean one.
const GROUPS: &[(&[&str], &[&str], &[&str])] = &[
    // Accounts and sign-in.
    (
        &["password", "passcode"],
        &["passwort", "kennwort"],
        &["비밀번호"],
    ),
    (
        &["login", "signin", "log", "sign"],
        &["anmelden", "einloggen", "anmeldung"],
        &["로그인"],
    ),
    (&["username", "nickname"], &["benutzername"], &[]),
    (&["account", "profile"], &["konto"], &["계정", "회원"]),
    (
        &["delete", "remove", "erase", "close"],
        &["löschen", "entfernen"],
        &["삭제", "탈퇴"],
    ),
    (
        &["locked", "blocked", "suspended", "disabled"],
        &["gesperrt"],
        &["잠김", "잠겼어요"],
    ),
    (
        &["forgot", "forgotten", "lost"],
        &["vergessen"],
        &["잊어버렸어요", "잊어버렸"],
    ),
    (
        &["reset", "recover", "restore"],
        &["zurücksetzen"],
        &["재설정"],
    ),
    (
        &["verification", "confirmation", "verify", "confirm"],
        &["bestätigung"],
        &["인증"],
    ),
    (&["email", "mail", "e-mail"], &[], &[]),
    (
        &["hacked", "compromised", "breached"],
        &["gehackt"],
        &["해킹"],
    ),
    (
        &["2fa", "mfa", "two-factor", "2-step"],
        &["zwei-faktor"],
        &["2단계"],
    ),
    (
        &["enable", "activate", "setup"],
        &["aktivieren", "einrichten"],
        &["설정"],
    ),
    // Billing.
    (
        &["refund", "reimburse", "reimbursement"],
        &["rückerstattung", "erstatten", "erstattung"],
        &["환불"],
    ),
    (
        &["cancel", "terminate", "unsubscribe"],
        &["kündigen", "stornieren", "abbestellen"],
        &["취소", "해지"],
    ),
    (
        &["subscription", "membership"],
        &["abonnement", "abo"],
        &["구독"],
    ),
    (
        &["invoice", "receipt", "bill"],
        &["rechnung", "quittung", "beleg"],
        &["영수증"],
    ),
    (
        &["price", "cost", "pricing", "fee"],
        &["preis", "kosten"],
        &["가격", "요금"],
    ),
    (
        &["pay", "payment"],
        &["zahlung", "bezahlen", "zahlen"],
        &["결제"],
    ),
    (
        &["declined", "rejected", "failed"],
        &["abgelehnt"],
        &["거절"],
    ),
    (&["yearly", "annual", "annually"], &["jährlich"], &["연간"]),
    (&["monthly"], &["monatlich"], &["월간"]),
    (
        &["discount", "coupon", "voucher", "promo"],
        &["rabatt", "gutschein"],
        &["할인"],
    ),
    (&["upgrade", "switch"], &[], &[]),
    // Shipping and returns.
    (
        &["package", "parcel", "shipment", "order"],
        &["paket", "sendung", "bestellung"],
        &["택배", "주문", "배송"],
    ),
    (
        &["ship", "deliver", "shipping", "delivery"],
        &["versand", "lieferung", "liefern", "versenden"],
        &[],
    ),
    (
        &["track", "tracking", "trace"],
        &["verfolgen", "sendungsverfolgung"],
        &["조회"],
    ),
    (
        &["broken", "damaged", "defective", "cracked", "smashed"],
        &["kaputt", "beschädigt", "defekt"],
        &["파손", "고장"],
    ),
    (
        &["return", "returns"],
        &["retoure", "rücksendung", "zurückschicken", "zurücksenden"],
        &["반품"],
    ),
    (
        &["exchange", "swap", "replace", "replacement"],
        &["umtauschen", "umtausch"],
        &["교환"],
    ),
    (
        &["warranty", "guarantee"],
        &["garantie", "gewährleistung"],
        &["보증"],
    ),
    // Devices and apps.
    (&["screen", "display"], &["bildschirm"], &["화면"]),
    (&["phone", "mobile", "smartphone"], &["handy"], &["휴대폰"]),
    (&["laptop", "computer", "pc", "desktop"], &["rechner"], &[]),
    (&["wifi", "wi-fi", "wireless"], &["wlan"], &["와이파이"]),
    (
        &["sync", "synchronize", "synchronise", "syncing"],
        &["synchronisieren"],
        &["동기화"],
    ),
    (
        &["data", "information", "info"],
        &["daten"],
        &["데이터", "개인정보"],
    ),
    (
        &["download", "export"],
        &["herunterladen", "exportieren"],
        &["다운로드"],
    ),
    // People and contact.
    (
        &["support", "help", "service"],
        &["hilfe", "kundenservice", "kundendienst"],
        &["고객센터", "상담원"],
    ),
    (
        &["contact", "reach", "call", "talk", "speak"],
        &["kontaktieren", "erreichen"],
        &["문의", "연결"],
    ),
    (
        &["human", "agent", "person", "representative"],
        &["mitarbeiter"],
        &[],
    ),
    (
        &["colleague", "coworker", "teammate", "member", "employee"],
        &["kollege", "mitglied"],
        &[],
    ),
    (&["admin", "administrator", "owner"], &[], &[]),
];

/// Multi-word phrases that mean one group's word ("money back" is a
/// refund). Matched on consecutive query words (lower-cased, unstemmed);
/// each word of the phrase gets the target as a synonym.
const PHRASES: &[(&[&str], &str)] = &[
    (&["money", "back"], "refund"),
    (&["geld", "zurück"], "erstattung"),
    (&["send", "back"], "return"),
    (&["give", "back"], "return"),
    (&["log", "in"], "login"),
    (&["sign", "in"], "login"),
    (&["get", "in"], "login"),
    (&["get", "back", "in"], "login"),
    (&["turn", "on"], "enable"),
    (&["set", "up"], "enable"),
    (&["two", "factor"], "2fa"),
    (&["came", "broken"], "damaged"),
    (&["log", "out"], "signout"),
    (&["sign", "out"], "signout"),
];

/// Stem -> the stems of its group's other members.
fn table() -> &'static HashMap<String, Vec<String>> {
    static TABLE: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (en, de, ko) in GROUPS {
            for group in [*en, *de, *ko] {
                let stems = group_stems(group);
                for s in &stems {
                    let others = map.entry(s.clone()).or_default();
                    for o in &stems {
                        if o != s && !others.contains(o) {
                            others.push(o.clone());
                        }
                    }
                }
            }
        }
        map
    })
}

/// Every form a group member may be indexed under: its English and German
/// stems (hyphens removed, as the analyzer joins hyphenated compounds).
fn group_stems(group: &[&str]) -> Vec<String> {
    let mut stems: Vec<String> = Vec::new();
    for word in group {
        let word = word.replace('-', "");
        for s in [Lang::En.stem(&word), Lang::De.stem(&word), word.clone()] {
            if !stems.contains(&s) {
                stems.push(s);
            }
        }
    }
    stems
}

/// The synonyms of a stemmed query word (stems, excluding `stem` itself).
pub(crate) fn of(stem: &str) -> &'static [String] {
    table().get(stem).map_or(&[], Vec::as_slice)
}

/// For each query word (lower-cased, unstemmed, in order), the extra stems
/// that phrases it is part of stand for.
pub(crate) fn phrase_targets(words: &[String]) -> Vec<Vec<String>> {
    let mut out = vec![Vec::new(); words.len()];
    for (phrase, target) in PHRASES {
        if phrase.len() > words.len() {
            continue;
        }
        for start in 0..=words.len() - phrase.len() {
            let matched = phrase
                .iter()
                .zip(&words[start..])
                .all(|(p, w)| *p == w.as_str());
            if !matched {
                continue;
            }
            let mut stems = group_stems(&[target]);
            for s in stems.clone() {
                stems.extend(of(&s).iter().cloned());
            }
            for slot in &mut out[start..start + phrase.len()] {
                for s in &stems {
                    if !slot.contains(s) {
                        slot.push(s.clone());
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_and_phrases_expand() {
        let refund = Lang::En.stem("refund");
        assert!(of(&Lang::En.stem("reimbursement")).contains(&refund));
        assert!(of(&Lang::En.stem("package")).contains(&Lang::En.stem("order")));
        assert!(of("nosuchword").is_empty());
        let words: Vec<String> = ["my", "money", "back"].map(String::from).to_vec();
        let targets = phrase_targets(&words);
        assert!(targets[0].is_empty());
        assert!(targets[1].contains(&refund) && targets[2].contains(&refund));
    }
}
