//! Prompt-injection and jailbreak patterns, checked on user input only.
//!
//! The patterns run on the folded text (see [`crate::normalize`]), so they are
//! written in lower case with single spaces, and every `l` is turned into `i`
//! when compiled (the folded form maps `l`/`1`/`|` to `i`). Korean has no spaces
//! between Hangul in the folded form. Each pattern needs an instruction-like
//! shape ("ignore … previous instructions", "reveal … system prompt"), not one
//! keyword, so "ignore the previous email" stays allowed.

use regex::{Regex, RegexSet};

const PATTERNS: &[(&str, &str)] = &[
    (
        "ignore previous instructions",
        r"\b(ignore|disregard|forget|override|bypass|skip|overrule)( (all|any|every|of|the|your|my|these|those|its|everything|above|prior))* (previous|prior|above|earlier|preceding|initial|original|old|system|developer|former|current|given)( [a-z]+)? (instructions?|prompts?|rules?|directions?|guidelines?|commands?|orders?|directives?|constraints?)\b",
    ),
    (
        "ignore system prompt",
        r"\b(ignore|disregard|forget|bypass|override)( (the|your|its|this|that|all))* (system ?prompt|system message|system instructions?|instructions? above|prompt above)\b",
    ),
    (
        "reveal system prompt",
        r"\b(reveal|show|print|repeat|display|output|leak|dump|tell me|give me|what is|what s|whats|write out|copy)( (me|us|your|the|its|my|full|entire|exact|original|hidden|secret|initial|whole|complete))* (system ?prompt|system message|initial prompt|hidden prompt|secret prompt|hidden instructions|secret instructions|initial instructions|original instructions|pre ?prompt|instructions verbatim|prompt verbatim)\b",
    ),
    (
        "repeat text above",
        r"\b(repeat|print|output|reveal) (everything|all|the text|the words|the instructions|all text) above\b",
    ),
    (
        "drop your rules",
        r"\b(forget|ignore|disregard|abandon|drop|remove|disable|lift|bypass)( (all|of|your|any|its))* your (rules?|guidelines?|restrictions?|programming|training|policies|policy|filters?|limitations?|safety|guardrails?|constraints?|ethics)\b",
    ),
    (
        "you are now unrestricted",
        r"\byou (are|re) now (dan|an? (unrestricted|unfiltered|uncensored|jailbroken|evil|rogue)|in (developer|god|dan|jailbreak|unrestricted) mode|free (of|from)|no longer bound|jailbroken|unrestricted|unfiltered|uncensored)\b",
    ),
    (
        "do anything now",
        r"\b(do anything now|dan mode|jailbreak mode|jailbroken mode)\b",
    ),
    (
        "act unrestricted",
        r"\b(act|pretend|behave|roleplay|role play|respond) (as|like|to be) (an? )?(unrestricted|unfiltered|uncensored|jailbroken|evil|amoral) (ai|assistant|model|chatbot|bot|version)\b",
    ),
    (
        "pretend no restrictions",
        r"\b(pretend|imagine|assume|act as if|suppose) (that )?you (have|had|are under|were under) no (restrictions|rules|guidelines|filters|limits|limitations|policies|content policy)\b",
    ),
    (
        "mode with restrictions lifted",
        r"\b(developer mode|god mode|jailbreak)\b[^\n]{0,80}\b(restrictions?|rules|filters?|guidelines|limits|limitations|censorship|content policy|safety)\b|\b(restrictions?|rules|filters?|guidelines|limits|limitations|censorship|content policy)\b[^\n]{0,80}\b(developer mode|god mode|jailbreak)\b",
    ),
    // German
    (
        "ignoriere vorherige anweisungen",
        r"\b(ignoriere|ignorier|vergiss|missachte|uberschreibe|umgehe)( (alle|jegliche|samtliche|die|deine|meine|bisherigen|obigen|vorherigen|vorigen))* (vorherigen |bisherigen |obigen |vorigen |fruheren |vorangegangenen |ursprunglichen )?(anweisungen|anweisung|instruktionen|regeln|befehle|vorgaben|richtlinien|systemanweisungen|systemanweisung|einschrankungen|programmierung|systemprompt|system prompt)\b",
    ),
    (
        "zeige systemprompt",
        r"\b(zeig|zeige|verrate|nenne|gib|drucke|wiederhole|gib mir|sag mir)( (mir|uns|deinen|den|dein|das|die|deine|ganzen|kompletten|versteckten|geheimen))* (system ?prompt|systemanweisungen|systemanweisung|anfangsanweisungen|versteckten anweisungen|initialen anweisungen|ursprunglichen anweisungen)\b",
    ),
    (
        "du bist jetzt uneingeschraenkt",
        r"\bdu bist (jetzt|nun|ab sofort|ab jetzt) (dan|im entwicklermodus|im developer mode|im dan modus|uneingeschrankt|ohne regeln|ohne einschrankungen|frei von|ein uneingeschrankte)",
    ),
    (
        "aktiviere entwicklermodus",
        r"\b(aktiviere|starte|wechsle in den|wechsel in den|schalte) (den )?(entwicklermodus|developer mode|dan modus)\b[^\n]{0,80}\b(regeln|einschrankungen|filter|richtlinien)\b",
    ),
    // Korean (no spaces between Hangul in the folded text)
    (
        "이전 지시 무시",
        r"(이전|앞의|앞선|위의|기존|모든|이전의|지금까지의)(의)?(모든)?(지시|명령|지침|규칙|프롬프트|설정|안내)(사항|들)?(을|를|은|는)?(모두|전부|다)?(무시|잊어|잊고|어기)",
    ),
    (
        "시스템 프롬프트 공개",
        r"(시스템 ?프롬프트|시스템 ?메시지|시스템 ?지시|초기 ?지시|숨겨진 ?지시)(사항)?(를|을|의 ?내용을)?(보여|알려|출력|공개|말해|그대로)",
    ),
    (
        "개발자 모드",
        r"(개발자 ?모드|탈옥 ?모드|dan ?모드)(를|을|로)?(활성화|켜|전환|진입|실행)",
    ),
    (
        "너는 이제 dan",
        r"(너는|넌) ?(이제|지금부터)? ?dan\b|(지금부터|이제) ?(너는|넌) ?dan",
    ),
    (
        "제한 무시",
        r"(모든|너의|네)(제한|규칙|필터|제약|검열)(을|를|은|는)?(모두|전부|다)?(무시|해제|풀어|없애)",
    ),
];

#[derive(Debug)]
pub(crate) struct InjectionDetector {
    set: RegexSet,
    each: Vec<Regex>,
}

impl InjectionDetector {
    pub(crate) fn new() -> Self {
        // ASCII word boundaries keep the lazy DFA usable on non-ASCII text.
        let folded: Vec<String> = PATTERNS
            .iter()
            .map(|(_, p)| p.replace('l', "i").replace(r"\b", r"(?-u:\b)"))
            .collect();
        // Constant patterns covered by tests; a failure here is a bug.
        #[allow(clippy::expect_used)]
        let set = RegexSet::new(&folded).expect("built-in injection patterns compile");
        #[allow(clippy::expect_used)]
        let each = folded
            .iter()
            .map(|p| Regex::new(p).expect("built-in injection pattern compiles"))
            .collect();
        Self { set, each }
    }

    /// `(rule name, folded start, folded end)` for each pattern that matches.
    pub(crate) fn find(&self, folded: &str) -> Vec<(&'static str, usize, usize)> {
        self.set
            .matches(folded)
            .into_iter()
            .filter_map(|i| {
                let m = self.each[i].find(folded)?;
                Some((PATTERNS[i].0, m.start(), m.end()))
            })
            .collect()
    }
}
