//! The category lexicon: phrase-level entries in English, German and Korean.
//!
//! Entries are phrases, not single ambiguous words ("how to kill someone", not
//! "kill"), so support-chat lines such as "kill the process" stay allowed.
//! A template `{a|b|}` expands to each alternative (an empty alternative makes
//! the group optional); a trailing `*` makes an entry a prefix (no word boundary
//! required after it). Every expansion is folded with [`normalize_term`] and
//! matched on the folded text with one Aho-Corasick automaton. Latin-script
//! entries must start and end on word boundaries; Korean entries match anywhere
//! (Korean attaches particles to words and spaces freely, and the folded form
//! drops spaces between Hangul). Latin entries also get a spaceless variant, so
//! `k i l l y o u r s e l f` (folded to `kiiiyourseif`) is caught.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

use crate::normalize::normalize_term;

/// One lexicon entry after folding. Kept small (16 bytes): the built-in
/// lexicon has ~94,000 of them, resident for the life of the process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    /// Index into [`PhraseSet::categories`].
    category: u8,
    /// Caller-defined (the guardrail index for `block-terms:`).
    tag: u32,
    /// The expansion as written (before folding), used as the finding's
    /// rule: a range of [`PhraseSet::phrases`].
    phrase_start: u32,
    phrase_len: u16,
    /// No word boundary needed at the start / at the end.
    open_start: bool,
    open_end: bool,
}

/// A lexicon hit on folded text.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) entry: usize,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// A set of folded phrases matched with word-boundary rules.
#[derive(Debug)]
pub(crate) struct PhraseSet {
    automaton: Option<AhoCorasick>,
    entries: Vec<Entry>,
    /// Every entry's phrase as written, back to back.
    phrases: String,
    /// The distinct categories (an entry holds an index).
    categories: Vec<&'static str>,
    /// Longest folded pattern in bytes.
    pub(crate) max_len: usize,
}

fn is_hangul(c: char) -> bool {
    matches!(c, '\u{AC00}'..='\u{D7A3}' | '\u{1100}'..='\u{11FF}' | '\u{3130}'..='\u{318F}')
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() && !is_hangul(c)
}

impl PhraseSet {
    /// Builds a set from `(category, tag, phrase)`; phrases are already
    /// expanded. Empty phrases (after folding) are skipped.
    pub(crate) fn build(items: Vec<(&'static str, usize, String)>) -> Self {
        let mut patterns: Vec<String> = Vec::with_capacity(items.len() * 2);
        let mut entries = Vec::with_capacity(items.len() * 2);
        let mut phrases = String::new();
        let mut categories: Vec<&'static str> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (category, tag, phrase) in items {
            let (body, prefix) = match phrase.strip_suffix('*') {
                Some(b) => (b, true),
                None => (phrase.as_str(), false),
            };
            let folded = normalize_term(body);
            if folded.is_empty() {
                continue;
            }
            let (Ok(tag), Ok(phrase_len)) = (u32::try_from(tag), u16::try_from(body.len())) else {
                continue;
            };
            let mut forms = vec![folded.clone()];
            let squashed: String = folded.chars().filter(|c| *c != ' ').collect();
            if squashed != folded && !folded.chars().any(is_hangul) {
                forms.push(squashed);
            }
            let cat = match categories.iter().position(|c| *c == category) {
                Some(i) => i,
                None => {
                    categories.push(category);
                    categories.len() - 1
                }
            };
            let Ok(cat) = u8::try_from(cat) else {
                continue;
            };
            let mut phrase_start = None;
            for form in forms {
                if !seen.insert((category, tag, form.clone())) {
                    continue;
                }
                // The forms of one phrase share its text.
                let start = *phrase_start.get_or_insert_with(|| {
                    phrases.push_str(body);
                    phrases.len() - body.len()
                });
                let Ok(start) = u32::try_from(start) else {
                    continue;
                };
                entries.push(Entry {
                    category: cat,
                    tag,
                    phrase_start: start,
                    phrase_len,
                    open_start: form.chars().next().is_some_and(is_hangul),
                    open_end: prefix || form.chars().next_back().is_some_and(is_hangul),
                });
                patterns.push(form);
            }
        }
        entries.shrink_to_fit();
        phrases.shrink_to_fit();
        let max_len = patterns.iter().map(String::len).max().unwrap_or(0);
        let automaton = if patterns.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .map_err(|e| tracing::error!(error = %e, "lexicon automaton could not be built"))
                .ok()
        };
        Self {
            automaton,
            entries,
            phrases,
            categories,
            max_len,
        }
    }

    /// The category of entry `i`.
    pub(crate) fn category(&self, i: usize) -> &'static str {
        self.categories[usize::from(self.entries[i].category)]
    }

    /// Entry `i`'s phrase as written.
    pub(crate) fn phrase(&self, i: usize) -> &str {
        let e = self.entries[i];
        let start = e.phrase_start as usize;
        &self.phrases[start..start + usize::from(e.phrase_len)]
    }

    /// The caller's tag of entry `i`.
    pub(crate) fn tag(&self, i: usize) -> usize {
        self.entries[i].tag as usize
    }

    /// All hits in folded `text` that satisfy the boundary rules. With
    /// `final_text` false, a hit ending at the very end whose end boundary is
    /// not yet known is left for a later scan.
    pub(crate) fn find(&self, text: &str, final_text: bool) -> Vec<Hit> {
        let Some(ac) = &self.automaton else {
            return Vec::new();
        };
        let mut hits = Vec::new();
        for m in ac.find_overlapping_iter(text) {
            let entry = &self.entries[m.pattern().as_usize()];
            let (start, end) = (m.start(), m.end());
            if !entry.open_start && text[..start].chars().next_back().is_some_and(is_word) {
                continue;
            }
            if !entry.open_end {
                match text[end..].chars().next() {
                    Some(c) if is_word(c) => continue,
                    None if !final_text => continue,
                    _ => {}
                }
            }
            hits.push(Hit {
                entry: m.pattern().as_usize(),
                start,
                end,
            });
        }
        hits
    }
}

/// Expands `{a|b|}` groups. Groups do not nest.
pub(crate) fn expand(template: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}').map(|c| c + open) else {
            break;
        };
        let lit = &rest[..open];
        for o in &mut out {
            o.push_str(lit);
        }
        let alts: Vec<&str> = rest[open + 1..close].split('|').collect();
        out = out
            .iter()
            .flat_map(|o| alts.iter().map(move |a| format!("{o}{a}")))
            .collect();
        rest = &rest[close + 1..];
    }
    for o in &mut out {
        o.push_str(rest);
    }
    out
}

// The lexicon data. Phrases, written naturally; folding happens at build time.

const VIOLENCE: &[&str] = &[
    "{how do i|how can i|how to|how would i|how should i|how could i|best way to|easiest way to|ways to|tell me how to|teach me how to|help me} {kill|murder|poison|strangle|stab|shoot|behead|assassinate|suffocate|drown} {someone|somebody|a person|people|a human|a child|a kid|a cop|my wife|my husband|my boss|my neighbor|my neighbour|my mother|my father|my mom|my dad|my brother|my sister|my teacher|my coworker|my colleague|my girlfriend|my boyfriend|my ex|my family|my parents|my roommate|my landlord}",
    "{kill|murder|poison} {someone|somebody|a person} {without getting caught|and get away with it|quietly|slowly}",
    "{how to|how do i|how can i|best way to} {kill|murder} {a person|someone|somebody} {quietly|slowly|silently|without a trace}",
    "{i m|im|i am|i will|i ll|i m gonna|im gonna|i am gonna|gonna|i m about to|i am about to|i swear i ll|i swear i will|i want to|i wanna|i m going to|i am going to|i d like to} {kill|murder|stab|shoot|strangle|slaughter|butcher|behead|gut} {you|u|ya|him|her|them|your family|your whole family|your kids|everyone|every one of you|all of you|you all|y all}",
    "{i m|im|i am|i will|i ll|i m gonna|i am gonna|gonna|i m going to|i am going to} {kill|murder|stab|shoot} {my wife|my husband|my boss|my neighbor|my neighbour|my teacher|my coworker|my colleague|my ex|my family|my parents|my mother|my father}",
    "{i will|i ll|i m going to|i am going to|i m gonna|gonna|going to} shoot up {the|my|this|our|your} {office|school|place|building|mall|church|mosque|synagogue|class|company|workplace}",
    "{make|build|assemble|construct|making|building|assembling|instructions for|recipe for|blueprint for|plans for} {a|an} {pipe |nail |car |homemade |home made |fertilizer |dirty |}{bomb|explosive device|ied}",
    "{make|build|making} {a molotov|molotov cocktails|a molotov cocktail|explosives at home|napalm}",
    "i know where you live",
    "you re going to die",
    "you are going to die",
    "you will die {tonight|tomorrow|soon}",
    "i will find you and {kill|hurt} you",
    "{mass shooting|school shooting} {plan|plans|tonight|tomorrow}",
    "{plan|planning} a {mass shooting|school shooting|terror attack|terrorist attack|massacre}",
    // German
    "ich {bringe|bring|werde|will|mach|mache|knall|knalle|stech|steche} dich {um|umbringen|töten|abstechen|erschießen|abknallen|kaltmachen|fertig machen|ab|kalt}",
    "ich {bringe|bring} {euch|ihn|sie|dich} alle um",
    "ich {bringe|bring} {euch|ihn} um",
    "ich werde {euch|ihn|sie} {umbringen|töten|abstechen|erschießen|abknallen}",
    "wie {kann ich|könnte ich|soll ich|kann man} {jemanden|einen menschen|eine person|meine frau|meinen mann|meinen chef|meinen nachbarn|meine mutter|meinen vater|meine ex|meinen ex} {umbringen|töten|ermorden|vergiften|erstechen|erschießen|erwürgen}",
    "wie {bringe|töte|ermorde|vergifte|ersteche|erschieße} ich {jemanden|einen menschen|eine person|meine frau|meinen mann|meinen chef|meinen nachbarn}",
    "{wie baue ich|wie baut man|anleitung für|anleitung zum bau} {eine|einer} {bombe|rohrbombe|sprengsatz}",
    "{eine |}{bombe|rohrbombe|sprengsatz|molotowcocktail} {bauen|basteln|herstellen}",
    "ich weiß wo du wohnst",
    // Korean
    "죽여버*",
    "죽여 버릴*",
    "죽여 버리겠*",
    "죽일 거야",
    "죽일거다",
    "죽일 것이다",
    "죽이겠다",
    "죽이겠어",
    "죽여 줄게",
    "찔러 죽*",
    "쏴 죽*",
    "때려 죽*",
    "{사람을|사람|남을|누군가를|사람 하나} {죽이는|살해하는|죽일 수 있는} {방법|법}",
    "살인 {방법|하는 법|하는 방법}",
    "{폭탄|사제폭탄|화염병} {만드는|제조하는|만들기} {법|방법}",
    "폭탄 제조*",
    "{너를|널|너} 죽이*",
    "너 죽는다",
    "어디 사는지 알아",
];

const SELF_HARM: &[&str] = &[
    "{kill|killing|hang|hanging|cut|cutting|starve|starving|poison|poisoning|drown|drowning} myself {tonight|today|tomorrow|again|deeper|soon|now}",
    "{i want to|i wanna|i m going to|i am going to|i m gonna|i will|i ll|i should|i need to|i have to|i m thinking about|i am thinking about|i keep thinking about|i think about|i m planning to|i am planning to|i m trying to|i tried to|i m about to|want to|going to|gonna|planning to|thinking about|thinking of} {kill|killing|hang|hanging|hurt|hurting|harm|harming|cut|cutting|starve|starving|poison|shoot|drown} myself",
    "{kill|killing} myself",
    "hang myself",
    "commit suicide",
    "committing suicide",
    "suicidal",
    "{end|ending|take|taking} my {own |}life",
    "end it all {tonight|today|now|soon}",
    "i want to end it all",
    "{i don t|i do not|i dont} want to {live|be alive|exist|wake up} {anymore|any more|again}",
    "{i don t|i do not|i dont} want to live",
    "{i want to|i wanna|i just want to} die",
    "i wish i {was|were} dead",
    "i want to be dead",
    "better off dead",
    "no reason to live",
    "nothing to live for",
    "{painless|easiest|quickest|fastest|best|surest} way to {die|commit suicide|kill myself|end my life|end it}",
    "how many {pills|tablets|sleeping pills|painkillers} {does it take to|do i need to|to|would it take to} {overdose|od|die|kill myself|end it}",
    "{been |}cutting myself",
    "self harm",
    "slit my wrists",
    "jump off a {bridge|building|roof} {tonight|today|and die}",
    // German
    "ich {will|möchte|werde|sollte|muss} mich {umbringen|töten|selbst töten|ritzen|aufhängen|erhängen|erschießen|vergiften}",
    "ich {bringe|bring} mich um",
    "ich {will|möchte|mag|kann} nicht mehr leben",
    "will nicht mehr leben",
    "{mir|mich|sich} das leben {nehmen|zu nehmen}",
    "das leben nehmen",
    "selbstmord*",
    "suizid*",
    "ich ritze mich",
    "mich {ritzen|ritze|aufschneiden}",
    "ich {will|möchte} sterben",
    "ich will tot sein",
    "{schmerzlos|am schmerzlosesten|am besten} sterben",
    // Korean
    "자살하*",
    "자살할*",
    "자살 방법",
    "자살 충동",
    "자살 생각",
    "죽고 싶*",
    "죽고싶*",
    "고통 없이 죽*",
    "{편하게|쉽게|조용히} 죽는 {방법|법}",
    "죽는 방법",
    "손목을 긋*",
    "손목 긋*",
    "{살고 싶지 않|살기 싫|사는 게 싫}*",
    "목을 매*",
    "뛰어내리고 싶*",
    "죽어 버리고 싶*",
];

const SEXUAL_MINORS: &[&str] = &[
    "{child|children|kid|kiddie|kiddy|minor|underage|preteen|pre teen|toddler|infant|baby|teen} porn*",
    "child pornography",
    "child sexual abuse material",
    "csam",
    "{nude|naked|nudes|sexual|sexy|explicit|erotic|lewd|porn|porno|pornographic|xxx} {pictures|pics|photos|images|videos|content|material|story|stories|roleplay|role play|fantasy|acts} {of|with|about|involving|featuring} {kids|children|a child|a kid|minors|a minor|little girls|little boys|a little girl|a little boy|underage girls|underage boys|underage kids|an underage|a preteen|preteens|toddlers|babies|schoolgirls|a schoolgirl|a 10 year old|a 12 year old|a 13 year old|a 14 year old|a 15 year old}",
    "{sexual|erotic|sex} {content|acts|story|stories|roleplay|role play} {involving|about|with|featuring} {a |}{child|children|kid|kids|minor|minors|little girl|little boy|underage}",
    "{have |had |having |}sex with {a minor|minors|a child|children|kids|a kid|underage|an underage|a little girl|a little boy|a 12 year old|a 13 year old|a 14 year old}",
    "year old to send {me |you |}{nudes|nude pics|nude pictures|naked pictures|naked pics|explicit pictures}",
    "{underage|preteen|pre teen} {nudes|sex|nude|naked}",
    "{groom|grooming} {a child|children|kids|a minor|minors}",
    "lolicon",
    "shotacon",
    // German
    "kinderporn*",
    "kinder porn*",
    "nacktbilder von {kindern|minderjährigen|kids|kleinen mädchen|kleinen jungen|einem kind}",
    "nacktfotos von {kindern|minderjährigen|kids|kleinen mädchen|kleinen jungen|einem kind}",
    "sex mit {minderjährigen|kindern|einem kind|einer minderjährigen|einem minderjährigen|kids}",
    "{sexuelle|erotische|sexy} {inhalte|geschichte|geschichten|bilder|fotos} {mit|über|von} {kindern|minderjährigen|einem kind}",
    // Korean
    "아동 포르노*",
    "아동포르노*",
    "아동 음란물*",
    "아동음란물*",
    "아동 성착취*",
    "미성년자와 {성관계|섹스|성행위}*",
    "미성년자 {성관계|섹스|성행위|음란물|야동}*",
    "{어린이|아동|아이|초등학생|미성년자} {나체|누드|알몸|야동}*",
    "초딩 야동",
];

const EN_GROUPS: &str = "{jews|muslims|blacks|black people|immigrants|gays|gay people|homosexuals|lesbians|women|refugees|mexicans|asians|arabs|christians|trans people|transgender people|foreigners|migrants|indians|chinese|africans|latinos|hispanics|gypsies|roma|asylum seekers}";

const HATE: &[&str] = &[
    "{all |}{GROUPS} are {vermin|subhuman|sub human|animals|parasites|cockroaches|rats|terrorists|inferior|a disease|filth|scum|not human|apes|monkeys|savages|a plague|criminals|rapists|pedophiles|an inferior race}",
    "{all |}{GROUPS} {should|must|need to|deserve to|ought to} {die|all die|be killed|be exterminated|be gassed|be deported|be shot|be eradicated|be wiped out|not exist|be hanged|be lynched|burn|be burned|not be allowed to vote|be sterilized}",
    "{gas|kill|exterminate|hang|lynch|shoot|burn} {the|all} {GROUPS}",
    "{GROUPS} {deserve|deserved} {to die|the holocaust|to be gassed}",
    "heil hitler",
    "sieg heil",
    "white power",
    "race war now",
    "the holocaust {never happened|was a hoax|didn t happen}",
    "nigger*",
    "niggers",
    "faggot*",
    "kike",
    "kikes",
    "chink",
    "chinks",
    "wetback*",
    "raghead*",
    "sand nigger*",
    "tranny",
    "trannies",
    // German
    "{alle |die |}{juden|muslime|moslems|ausländer|flüchtlinge|migranten|schwule|schwarze|türken|araber|zigeuner|asylanten|frauen|homosexuelle|kanaken} sind {ungeziefer|untermenschen|tiere|parasiten|abschaum|minderwertig|ratten|terroristen|dreck|eine plage|affen|kakerlaken|schmarotzer}",
    "{alle |die |}{juden|muslime|moslems|ausländer|flüchtlinge|migranten|schwule|schwarze|türken|araber|zigeuner|asylanten|homosexuelle|kanaken} {sollte man|muss man|müsste man|gehören|sollten} {vergasen|vergast|ausrotten|ausgerottet|töten|getötet|umbringen|erschießen|erschossen|aufhängen|aufgehängt|verbrennen|verbrannt|ins lager|ins kz|ins gas}",
    "{ausländer|juden|türken|kanaken|flüchtlinge|asylanten|moslems|muslime|neger} raus",
    "sieg heil",
    "heil hitler",
    "judenschwein*",
    "kanake",
    "kanaken",
    "neger",
    "untermenschen",
    // Korean
    "{외국인|외국인 노동자|외노자|흑인|동성애자|게이|레즈|무슬림|이슬람|조선족|난민|유대인|중국인|여자|페미|장애인}{은|는|들은|들|이|가|}{다|전부|모두|}{죽어야|죽여야|테러리스트|열등|벌레|쓰레기|추방해야|없어져야|사라져야|박멸}*",
    "짱깨*",
    "쪽바리*",
    "똥남아*",
    "깜둥이*",
    "흑형*",
];

const HARASSMENT: &[&str] = &[
    "{go |just |you should |u should |why don t you |}{kill|kil} {yourself|urself|your self|yourselves}",
    "kys",
    "{go|just} die {in a ditch|in a fire|in a hole|already|alone}",
    "go die",
    "{nobody|no one|noone} would miss you",
    "{nobody|no one} {loves|likes|wants} you",
    "{i |}hope you {die|get cancer|get raped|burn|rot}",
    "you should {die|be dead|not exist|disappear forever}",
    "the world would be better without you",
    "{you re|you are|youre|ur|you|u r|ur a|you re a|you are a|you re such a|you are such a} {fucking |f cking |fuckin |stupid |worthless |pathetic |dumb |useless |disgusting |ugly |fat |retarded |brainless |}{moron|idiot|bitch|cunt|loser|retard|whore|slut|bastard|dickhead|asshole|dumbass|imbecile|twat|scumbag|waste of space|waste of oxygen}",
    "{you re|you are|youre|you|ur} {a |such a |}{worthless |useless |stupid |fucking |pathetic |}piece of {shit|crap|garbage|trash}",
    "worthless piece of shit",
    "{shut up|shut the fuck up|stfu|fuck you|fuck off} {you|u}",
    "shut the fuck up",
    "stfu",
    "fuck you",
    "go fuck yourself",
    "{you|u} {stupid|dumb|fucking|worthless|fat|ugly|pathetic|little} {bitch|cunt|whore|slut|retard|idiot|moron|loser|bastard|twat}",
    "son of a bitch",
    // German
    "du {bist |}{so |}{ein |eine |}{dummes |blödes |verdammtes |elender |elendes |dreckiger |dreckige |dummer |blöder |dumme |blöde |hässliche |hässlicher |fette |fetter |}{arschloch|hurensohn|wichser|missgeburt|spast|spasti|fotze|schlampe|hure|bastard|drecksau|versager|vollidiot|idiot|penner|opfer|mongo|behinderter|dreckstück|stück scheiße|stück dreck}",
    "halt die fresse",
    "halt s maul",
    "halts maul",
    "halt dein maul",
    "{bring|töte} dich {doch |}{um|selbst}",
    "geh sterben",
    "verpiss dich",
    "fick dich",
    "hurensohn*",
    "wichser",
    "missgeburt",
    "niemand würde dich vermissen",
    // Korean
    "닥쳐*",
    "병신*",
    "븅신*",
    "씨발*",
    "시발*",
    "씨팔*",
    "ㅅㅂ*",
    "ㅂㅅ*",
    "꺼져라*",
    "꺼져 버려*",
    "꺼지라고*",
    "개새끼*",
    "개새기*",
    "개새*",
    "죽어 버려*",
    "죽어버려라*",
    "뒤져라*",
    "뒤져 버려*",
    "미친놈*",
    "미친년*",
    "미친 새끼*",
    "좆같*",
    "좆까*",
    "지랄*",
    "니애미*",
    "느금마*",
];

/// The built-in lexicon as `(category, phrase)` pairs, expanded.
pub(crate) fn builtin() -> Vec<(&'static str, usize, String)> {
    let mut out = Vec::new();
    for (category, templates) in [
        ("violence", VIOLENCE),
        ("self_harm", SELF_HARM),
        ("sexual_minors", SEXUAL_MINORS),
        ("hate", HATE),
        ("harassment", HARASSMENT),
    ] {
        for template in templates {
            let t = template.replace("{GROUPS}", EN_GROUPS);
            for phrase in expand(&t) {
                out.push((category, 0, phrase));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_groups_and_optional_parts() {
        assert_eq!(
            expand("a {b|c} d{e|}"),
            ["a b de", "a b d", "a c de", "a c d"]
        );
        assert_eq!(expand("plain"), ["plain"]);
    }

    #[test]
    fn word_boundaries_keep_skill_apart_from_kill() {
        let set = PhraseSet::build(vec![("violence", 0, "kill yourself".into())]);
        let hits = |t: &str| {
            set.find(&crate::normalize::normalize(t, true).text, true)
                .len()
        };
        assert_eq!(hits("just kill yourself"), 1);
        assert_eq!(hits("upskill yourself with our course"), 0);
        assert_eq!(hits("k i l l y o u r s e l f"), 1);
    }
}
