#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::OnceLock;
use std::thread;

use serde::Deserialize;

#[path = "guard/eval.rs"]
mod eval;
use tidechat_guard::{
    ewma, validate_guardrail, Action, ClassifierConfig, ClassifierFormat, DriftModel,
    ExternalClassifier, Guard, GuardPolicy, ModerationSettings, Moderator, OutputScanner,
    PassThrough, ScanStep, Stage, Verdict,
};

fn moderator() -> &'static Moderator {
    static M: OnceLock<Moderator> = OnceLock::new();
    M.get_or_init(Moderator::new)
}

fn policy(redact_pii: bool, guardrails: &[&str]) -> GuardPolicy {
    GuardPolicy {
        guardrails: guardrails.iter().map(|g| (*g).to_owned()).collect(),
        redact_pii,
    }
}

/// Splits `text` into deltas of about `n` bytes on char boundaries.
fn deltas(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + n).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

/// Streams `text` in `n`-byte deltas; returns (released text, block if any,
/// scanner).
fn stream(
    text: &str,
    n: usize,
    p: &GuardPolicy,
) -> (String, Option<String>, Box<dyn OutputScanner>) {
    let mut s = moderator().output_scanner(p);
    let mut released = String::new();
    for d in deltas(text, n) {
        match s.push(d) {
            ScanStep::Release(r) => released.push_str(&r),
            ScanStep::Block(f) => return (released, Some(f.category), s),
        }
    }
    match s.finish() {
        ScanStep::Release(r) => released.push_str(&r),
        ScanStep::Block(f) => return (released, Some(f.category), s),
    }
    (released, None, s)
}

#[derive(Deserialize)]
struct Labelled {
    text: String,
    expected: String,
    category: Option<String>,
    lang: String,
}

fn labelled() -> Vec<Labelled> {
    parse_set(include_str!("data/labelled.jsonl"))
}

fn parse_set(jsonl: &str) -> Vec<Labelled> {
    jsonl
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[derive(Default)]
struct Row {
    n: usize,
    caught: usize,
    right_category: usize,
    predicted: usize,
    predicted_right: usize,
}

#[test]
fn labelled_set_meets_precision_and_recall_floors() {
    let set = labelled();
    assert!(set.len() >= 200, "labelled set has {} texts", set.len());
    let (fp, recall) = evaluate("labelled.jsonl", &set);
    assert!(fp <= 0.02, "false-positive rate {fp:.3} above 2%");
    assert!(recall >= 0.95, "recall {recall:.3} below 95%");
}

/// A second set written after the matcher, never tuned against: its figures
/// estimate how the lexicon does on phrasings it was not written for.
#[test]
fn holdout_set_figures() {
    let set = parse_set(include_str!("data/holdout.jsonl"));
    let (fp, recall) = evaluate("holdout.jsonl", &set);
    assert!(fp <= HOLDOUT_MAX_FP, "holdout false-positive rate {fp:.3}");
    assert!(recall >= HOLDOUT_MIN_RECALL, "holdout recall {recall:.3}");
}

const HOLDOUT_MAX_FP: f64 = 0.03;
const HOLDOUT_MIN_RECALL: f64 = 0.55;

/// Prints a per-category table; returns (share of safe texts blocked, share
/// of unsafe texts blocked).
fn evaluate(name: &str, set: &[Labelled]) -> (f64, f64) {
    let p = policy(true, &[]);
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut by_lang: BTreeMap<(String, bool), (usize, usize)> = BTreeMap::new();
    let (mut safe, mut safe_blocked, mut unsafe_n, mut unsafe_caught) = (0, 0, 0, 0);
    let mut misses = Vec::new();
    for item in set {
        let a = moderator().check_input(&item.text, &p);
        let predicted_cat = a
            .findings
            .iter()
            .find(|f| f.action == Action::Block)
            .or_else(|| a.findings.iter().find(|f| f.action == Action::Redact))
            .map(|f| f.category.clone());
        let expected_cat = item.category.clone().unwrap_or_else(|| "(safe)".to_owned());
        let row = rows.entry(expected_cat.clone()).or_default();
        row.n += 1;
        let ok = a.verdict.as_str() == item.expected;
        if ok {
            row.caught += 1;
        }
        if ok && (item.category.is_none() || predicted_cat.as_deref() == item.category.as_deref()) {
            row.right_category += 1;
        }
        if let Some(pc) = &predicted_cat {
            let r = rows.entry(pc.clone()).or_default();
            r.predicted += 1;
            if item.category.as_deref() == Some(pc.as_str()) {
                r.predicted_right += 1;
            }
        }
        let lang = by_lang
            .entry((item.lang.clone(), item.category.is_some()))
            .or_default();
        lang.0 += 1;
        if ok {
            lang.1 += 1;
        }
        match item.expected.as_str() {
            "allowed" => {
                safe += 1;
                if a.verdict == Verdict::Blocked {
                    safe_blocked += 1;
                }
            }
            "blocked" => {
                unsafe_n += 1;
                if a.verdict == Verdict::Blocked {
                    unsafe_caught += 1;
                }
            }
            _ => {}
        }
        if !ok {
            misses.push(format!(
                "  expected {:<7} got {:<7} {:?} [{}] {:?}",
                item.expected,
                a.verdict.as_str(),
                item.category,
                item.lang,
                item.text
            ));
        }
    }
    println!("\n== {name} ==\ncategory          texts  recall  cat-ok  predicted  precision");
    for (cat, r) in &rows {
        let recall = if r.n > 0 {
            r.caught as f64 / r.n as f64
        } else {
            f64::NAN
        };
        let precision = if r.predicted > 0 {
            r.predicted_right as f64 / r.predicted as f64
        } else {
            f64::NAN
        };
        println!(
            "{cat:<17} {:>5}  {:>6.3}  {:>6}  {:>9}  {:>9.3}",
            r.n, recall, r.right_category, r.predicted, precision
        );
    }
    println!("\nlanguage  kind    texts  correct");
    for ((lang, risky), (n, ok)) in &by_lang {
        println!(
            "{lang:<9} {:<7} {n:>5}  {ok:>7}",
            if *risky { "labelled" } else { "safe" }
        );
    }
    let fp = safe_blocked as f64 / safe as f64;
    let recall = unsafe_caught as f64 / unsafe_n as f64;
    println!("\nsafe texts blocked: {safe_blocked}/{safe} = {fp:.3}; unsafe caught: {unsafe_caught}/{unsafe_n} = {recall:.3}");
    println!("misses:\n{}", misses.join("\n"));
    (fp, recall)
}

#[test]
fn streaming_agrees_with_whole_text_and_releases_only_safe_sentences() {
    let p = policy(true, &[]);
    let prefix = "Thanks for waiting, I checked your account. The refund was issued today.\n";
    for item in labelled() {
        let whole = moderator().check_output(&item.text, &p);
        for n in [1, 3, 7] {
            let (released, block, s) = stream(&item.text, n, &p);
            let a = s.assessment();
            assert_eq!(
                released, a.text,
                "releases == assessment text for {:?}",
                item.text
            );
            assert_eq!(
                a.verdict, whole.verdict,
                "delta size {n} for {:?}",
                item.text
            );
            assert_eq!(block.is_some(), whole.verdict == Verdict::Blocked);
        }
        if whole.verdict == Verdict::Blocked {
            // Safe sentences before the unsafe one are released; nothing of it.
            let text = format!("{prefix}{} And more text follows here.", item.text);
            let (released, block, _) = stream(&text, 4, &p);
            assert!(block.is_some(), "{text:?}");
            assert!(
                prefix.starts_with(&released),
                "released {released:?} for {text:?}"
            );
        }
    }
}

#[test]
fn output_stage_catches_unsafe_replies_but_not_injection_wording() {
    let p = policy(false, &[]);
    let set = labelled();
    let unsafe_output: Vec<_> = set
        .iter()
        .filter(|i| i.expected == "blocked" && i.category.as_deref() != Some("prompt_injection"))
        .collect();
    let caught = unsafe_output
        .iter()
        .filter(|i| moderator().check_output(&i.text, &p).verdict == Verdict::Blocked)
        .count();
    println!(
        "output stage: {caught}/{} unsafe caught",
        unsafe_output.len()
    );
    assert!(caught as f64 >= 0.95 * unsafe_output.len() as f64);
    let a = moderator().check_output(
        "To ignore all previous instructions in the form, press reset.",
        &p,
    );
    assert_eq!(a.verdict, Verdict::Allowed);
}

#[test]
fn a_term_split_across_a_forced_window_cut_is_caught_and_never_released() {
    // No sentence boundary for well over a window: the scanner must cut by size.
    let filler = "and then we kept on talking about invoices and plans ".repeat(22);
    assert!(filler.len() > 1024);
    for evasion in [
        "kill yourself",
        "k i l l  y o u r s e l f",
        "ki\u{200b}ll your\u{200b}self",
        "k1ll y0urs3lf",
    ] {
        let text = format!("{filler}{evasion} {filler}");
        for n in [1, 5, 64] {
            let (released, block, _) = stream(&text, n, &policy(false, &[]));
            assert_eq!(
                block.as_deref(),
                Some("harassment"),
                "{evasion:?} at delta {n}"
            );
            assert!(
                filler.starts_with(&released),
                "released part of the term: {evasion:?}"
            );
        }
    }
    // Without the term the same text is released whole, in more than one piece.
    let mut s = moderator().output_scanner(&policy(false, &[]));
    let text = format!("{filler}{filler}");
    let mut pieces = 0;
    let mut released = String::new();
    for d in deltas(&text, 16) {
        if let ScanStep::Release(r) = s.push(d) {
            pieces += usize::from(!r.is_empty());
            released.push_str(&r);
        }
    }
    assert!(
        pieces >= 1 && released.len() >= 1024,
        "forced cuts release text"
    );
    if let ScanStep::Release(r) = s.finish() {
        released.push_str(&r);
    }
    assert_eq!(released, text);
}

#[test]
fn pii_is_redacted_when_asked_even_across_windows() {
    let card = "4111 1111 1111 1111";
    let filler = "we looked at the account history together ".repeat(24);
    let text = format!("{filler}your card {card} was charged twice, also mail jane.doe@example.com or call +49 170 1234567. Bye.");
    for n in [1, 3, 17, 200] {
        let (released, block, s) = stream(&text, n, &policy(true, &[]));
        assert!(block.is_none());
        assert!(!released.contains("1111"), "delta {n}: {released}");
        assert!(released.contains("[card redacted]") && released.contains("[email redacted]"));
        assert!(released.contains("[phone redacted]"), "{released}");
        let a = s.assessment();
        assert_eq!(a.verdict, Verdict::Flagged);
        assert_eq!(a.text, released);
        let card_finding = a
            .findings
            .iter()
            .find(|f| f.category == "pii.card")
            .unwrap();
        assert_eq!(card_finding.excerpt, "***1111");
        assert_eq!(&text[card_finding.span.clone()], card);
    }
    // Not asked: delivered unchanged; a card in a reply is still flagged for
    // review, an email is only noted.
    let a = moderator().check_output(&text, &policy(false, &[]));
    assert_eq!(a.text, text);
    assert_eq!(a.verdict, Verdict::Flagged);
    let a = moderator().check_output("Write to support@tidechat.io.", &policy(false, &[]));
    assert_eq!(a.verdict, Verdict::Allowed);
    assert_eq!(a.categories(), ["pii.email"]);
    // Input: IBAN redacted for the model, verdict flagged.
    let a = moderator().check_input("IBAN DE89 3704 0044 0532 0130 00 bitte", &policy(true, &[]));
    assert_eq!(a.text, "IBAN [iban redacted] bitte");
    assert_eq!(a.findings[0].stage, Stage::Input);
}

#[test]
fn guardrails_block_on_input_and_output() {
    let p = policy(
        false,
        &[
            "Stay friendly.",
            "block: (?i)acme\\s+corp",
            "block-terms: cheaper elsewhere, Rabattcode",
        ],
    );
    let a = moderator().check_input("Is ACME  Corp better?", &p);
    assert_eq!(a.verdict, Verdict::Blocked);
    assert_eq!(a.findings[0].category, "guardrail");
    assert_eq!(a.findings[0].rule, "block: (?i)acme\\s+corp");
    let a = moderator().check_output("You could buy it ch3aper  e-l-s-e-w-h-e-r-e, honestly.", &p);
    assert_eq!(a.verdict, Verdict::Blocked);
    assert_eq!(
        a.findings[0].rule,
        "block-terms: cheaper elsewhere, Rabattcode"
    );
    assert_eq!(
        moderator()
            .check_output("Hier ist kein RABATTCODEX.", &p)
            .verdict,
        Verdict::Allowed
    );
    // An invalid guardrail is reported by validation and ignored by checks.
    assert!(validate_guardrail("block: (unclosed").is_err());
    let bad = policy(false, &["block: (unclosed", "block: [z-a]"]);
    assert_eq!(
        moderator().check_input("(unclosed", &bad).verdict,
        Verdict::Allowed
    );
}

#[test]
fn pass_through_keeps_working() {
    let p = policy(true, &["block: x"]);
    assert_eq!(
        PassThrough.check_input("kill yourself x", &p).verdict,
        Verdict::Allowed
    );
    assert_eq!(
        PassThrough.check_output("kill yourself x", &p).text,
        "kill yourself x"
    );
}

#[test]
fn drift_separates_on_topic_from_off_topic_replies() {
    let refs = vec![
        "You are the billing assistant of Tidechat. Answer questions about invoices, payments, refunds and subscription plans.\n- Never give legal advice.".to_owned(),
        "How do I get a refund? Refunds for annual plans are issued within 14 days of the request to the original payment method.".to_owned(),
        "Where can I download my invoice? Invoices are available as PDF under Settings > Billing > Invoices.".to_owned(),
        "Can I change my payment method? Yes, add a new credit card or SEPA mandate under Settings > Billing > Payment methods.".to_owned(),
        "Wie kündige ich mein Abonnement? Sie können Ihr Abonnement unter Einstellungen > Abrechnung zum Monatsende kündigen.".to_owned(),
        "환불은 어떻게 받나요? 연간 요금제 환불은 요청 후 14일 이내에 원래 결제 수단으로 처리됩니다.".to_owned(),
    ];
    let model = DriftModel::build(&refs);
    let on_topic = model.score("Your refund for the annual plan will be issued to your original payment method within 14 days.");
    let on_topic_de =
        model.score("Ihr Abonnement können Sie in den Einstellungen unter Abrechnung kündigen.");
    let on_topic_ko = model.score("연간 요금제 환불은 14일 이내에 원래 결제 수단으로 처리됩니다.");
    let off_topic = model.score("Preheat the oven to 180 degrees, whisk three eggs with sugar and flour, and bake the sponge cake for 25 minutes.");
    let off_topic_de = model
        .score("Für den Kuchen Eier mit Zucker und Mehl verrühren und eine halbe Stunde backen.");
    println!("drift on-topic {on_topic:.3} / de {on_topic_de:.3} / ko {on_topic_ko:.3}, off-topic {off_topic:.3} / de {off_topic_de:.3}");
    assert!(on_topic < 0.5 && on_topic_de < 0.5 && on_topic_ko < 0.5);
    assert!(off_topic > 0.8 && off_topic_de > 0.8);
    assert_eq!(model.score("Thanks, you're welcome!"), 0.0);
    assert_eq!(
        model.score(&refs[2]),
        model.score(&refs[2]),
        "deterministic"
    );
    let session = [on_topic, off_topic, off_topic]
        .iter()
        .fold(None, |prev, &s| Some(ewma(prev, s, 0.3)));
    assert!(session.unwrap() > on_topic && session.unwrap() < off_topic);
}

// ---- external classifier against a local server speaking the wire format ----

/// Serves one canned HTTP response; returns the URL and a handle yielding the
/// raw request.
fn one_shot_server(
    status: &'static str,
    body: &'static str,
    delay_ms: u64,
) -> (String, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/moderations", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).unwrap();
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(head_end) = text.find("\r\n\r\n") {
                let len = text[..head_end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= head_end + 4 + len {
                    break;
                }
            }
        }
        thread::sleep(std::time::Duration::from_millis(delay_ms));
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(response.as_bytes());
        String::from_utf8_lossy(&buf).to_string()
    });
    (url, handle)
}

const FLAGGED: &str = r#"{"id":"modr-1","model":"omni-moderation-latest","results":[{"flagged":true,"categories":{"hate":true,"violence":false},"category_scores":{"hate":0.91,"violence":0.12}}]}"#;

fn config(
    url: String,
    thresholds: &[(&str, f64)],
    fail_open: bool,
    timeout_ms: u64,
) -> ClassifierConfig {
    ClassifierConfig {
        url,
        format: ClassifierFormat::Moderation,
        api_key_env: "UNUSED".to_owned(),
        model: Some("omni-moderation-latest".to_owned()),
        thresholds: thresholds
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect(),
        timeout_ms,
        fail_open,
    }
}

#[tokio::test]
async fn classifier_enforces_thresholds_and_sends_the_wire_format() {
    let (url, server) = one_shot_server("200 OK", FLAGGED, 0);
    let c = ExternalClassifier::with_api_key(
        config(url, &[("hate", 0.5), ("violence", 0.5)], true, 2000),
        Some("sk-test".into()),
    )
    .unwrap();
    let findings = c.check("some text", Stage::Output).await;
    let request = server.join().unwrap();
    assert!(request.starts_with("POST /v1/moderations "), "{request}");
    assert!(request
        .to_ascii_lowercase()
        .contains("authorization: bearer sk-test"));
    let body: serde_json::Value =
        serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"input": "some text", "model": "omni-moderation-latest"})
    );
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].category, "classifier.hate");
    assert_eq!(findings[0].action, Action::Block);
    assert_eq!(findings[0].stage, Stage::Output);

    // No thresholds: the classifier's own `flagged` decides.
    let (url, server) = one_shot_server("200 OK", FLAGGED, 0);
    let c = ExternalClassifier::with_api_key(config(url, &[], true, 2000), None).unwrap();
    let findings = c.check("x", Stage::Input).await;
    assert!(!server
        .join()
        .unwrap()
        .to_ascii_lowercase()
        .contains("authorization"));
    assert_eq!(
        findings
            .iter()
            .map(|f| f.category.as_str())
            .collect::<Vec<_>>(),
        ["classifier.hate"]
    );
}

#[tokio::test]
async fn classifier_failure_follows_fail_open() {
    for fail_open in [true, false] {
        let (url, server) = one_shot_server("200 OK", FLAGGED, 1500);
        let c =
            ExternalClassifier::with_api_key(config(url, &[("hate", 0.5)], fail_open, 200), None)
                .unwrap();
        let findings = c.check("x", Stage::Input).await;
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].category, "classifier_unavailable");
        assert_eq!(findings[0].rule, "timed out");
        let expected = if fail_open {
            Action::Note
        } else {
            Action::Block
        };
        assert_eq!(findings[0].action, expected);
        let _ = server.join();
    }
    let (url, server) = one_shot_server("500 Internal Server Error", "{}", 0);
    let c = ExternalClassifier::with_api_key(config(url, &[], false, 2000), None).unwrap();
    let findings = c.check("x", Stage::Input).await;
    assert_eq!(findings[0].rule, "HTTP 500 Internal Server Error");
    assert_eq!(Verdict::from_findings(&findings), Verdict::Blocked);
    let _ = server.join();
}

const GUARD_UNSAFE: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","model":"llama-guard-3-1b","choices":[{"index":0,"message":{"role":"assistant","content":"\n\nunsafe\nS1,S10"},"finish_reason":"stop"}]}"#;
const GUARD_SAFE: &str = r#"{"id":"chatcmpl-2","object":"chat.completion","model":"llama-guard-3-1b","choices":[{"index":0,"message":{"role":"assistant","content":"safe"},"finish_reason":"stop"}]}"#;

#[tokio::test]
async fn chat_guard_model_verdicts_map_to_categories() {
    let chat = |url: String| {
        let mut c = config(
            url.replace("/v1/moderations", "/v1/chat/completions"),
            &[],
            true,
            2000,
        );
        c.format = ClassifierFormat::ChatGuard;
        c.model = Some("llama-guard-3-1b".to_owned());
        ExternalClassifier::with_api_key(c, None).unwrap()
    };
    let (url, server) = one_shot_server("200 OK", GUARD_UNSAFE, 0);
    let (findings, latency) = chat(url)
        .check_with("a reply", Stage::Output, &ModerationSettings::default())
        .await;
    let request = server.join().unwrap();
    assert!(
        request.starts_with("POST /v1/chat/completions "),
        "{request}"
    );
    let body: serde_json::Value =
        serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["model"], "llama-guard-3-1b");
    assert_eq!(body["messages"][1]["role"], "assistant");
    assert_eq!(body["messages"][1]["content"], "a reply");
    assert_eq!(
        findings
            .iter()
            .map(|f| f.category.as_str())
            .collect::<Vec<_>>(),
        ["classifier.violence", "classifier.hate"]
    );
    assert!(findings.iter().all(|f| f.action == Action::Block));
    assert!(latency > std::time::Duration::ZERO);

    let (url, server) = one_shot_server("200 OK", GUARD_SAFE, 0);
    let findings = chat(url).check("hello", Stage::Input).await;
    let request = server.join().unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&request[request.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["messages"][0]["role"], "user");
    assert!(findings.is_empty());

    // A reply that is no verdict is a failure; the persona says fail closed.
    let (url, server) = one_shot_server(
        "200 OK",
        r#"{"choices":[{"message":{"role":"assistant","content":"Sure! Here is"}}]}"#,
        0,
    );
    let closed = ModerationSettings::from_guardrails(&["moderation: fail-closed".to_owned()]);
    let (findings, _) = chat(url).check_with("x", Stage::Input, &closed).await;
    let _ = server.join();
    assert_eq!(findings[0].category, "classifier_unavailable");
    assert_eq!(findings[0].action, Action::Block);
}

#[test]
fn classifier_config_reads_toml_and_env() {
    let c: ClassifierConfig = toml::from_str(
        r#"
        url = "http://localhost:9/v1/moderations"
        model = "omni-moderation-latest"
        [thresholds]
        hate = 0.5
        "self-harm" = 0.4
        "#,
    )
    .unwrap();
    assert_eq!(c.timeout_ms, 2000);
    assert!(c.fail_open);
    assert_eq!(c.api_key_env, "TIDECHAT_CLASSIFIER_API_KEY");
    assert_eq!(c.thresholds["self-harm"], 0.4);

    let env: BTreeMap<&str, &str> = [
        (
            "TIDECHAT_CLASSIFIER_URL",
            "http://localhost:9/v1/moderations",
        ),
        ("TIDECHAT_CLASSIFIER_THRESHOLDS", "hate=0.5, violence=0.7"),
        ("TIDECHAT_CLASSIFIER_FAIL_OPEN", "false"),
        ("TIDECHAT_CLASSIFIER_TIMEOUT_MS", "500"),
    ]
    .into_iter()
    .collect();
    let from_env = ClassifierConfig::from_env(|k| env.get(k).map(|v| (*v).to_owned()))
        .unwrap()
        .unwrap();
    assert_eq!(from_env.thresholds.len(), 2);
    assert!(!from_env.fail_open);
    assert_eq!(from_env.timeout_ms, 500);
    assert!(ClassifierConfig::from_env(|_| None).unwrap().is_none());
    assert!(
        ClassifierConfig::from_env(|k| (k == "TIDECHAT_CLASSIFIER_URL")
            .then(|| "http://x".to_owned())
            .or_else(|| (k == "TIDECHAT_CLASSIFIER_THRESHOLDS").then(|| "hate".to_owned())))
        .is_err()
    );
    assert!(
        ExternalClassifier::with_api_key(config("ftp://x".into(), &[], true, 1), None).is_err()
    );
}

/// A stand-in encoder (one dimension per keyword group) so the classifier's
/// wiring in the guard is tested without the model; quality comes from the
/// evaluation test with USE-m3.
#[derive(Debug)]
struct KeywordEncoder;

impl tidechat_guard::SentenceEncoder for KeywordEncoder {
    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, tidechat_guard::EncodeError> {
        const KEYS: [&[&str]; 3] = [
            &["shoot", "stab", "kill", "bomb", "töten", "죽"],
            &["invoice", "password", "help", "plan", "rechnung"],
            &["porn", "sex", "nude"],
        ];
        Ok(texts
            .iter()
            .map(|t| {
                let t = t.to_lowercase();
                let mut v: Vec<f32> = KEYS
                    .iter()
                    .map(|ks| ks.iter().filter(|k| t.contains(*k)).count() as f32)
                    .collect();
                v.push(0.5);
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.into_iter().map(|x| x / n).collect()
            })
            .collect())
    }
}

#[test]
fn local_classifier_blocks_input_and_output_windows_per_persona_settings() {
    let examples = [
        ("violence", "I shoot them"),
        ("violence", "stab and kill"),
        ("violence", "a bomb to kill"),
        ("sexual", "porn and sex"),
        ("sexual", "nude sex"),
        ("safe", "my invoice"),
        ("safe", "reset the password please"),
        ("safe", "help with the plan"),
        ("safe", "thanks, that is all"),
    ];
    let classifier =
        tidechat_guard::LocalClassifier::fit_on(std::sync::Arc::new(KeywordEncoder), &examples)
            .unwrap();
    let guard = Moderator::with_classifier(Some(classifier));
    assert!(guard.has_classifier());
    let p = policy(false, &[]);
    // Not in the lexicon, but the classifier scores it as violence.
    let text = "tomorrow I shoot and stab the bomb squad";
    let a = guard.check_input(text, &p);
    assert_eq!(a.verdict, Verdict::Blocked, "{:?}", a.findings);
    assert_eq!(a.findings[0].category, "violence");
    assert!(a.findings[0].rule.starts_with("local classifier"));
    assert_eq!(moderator().check_input(text, &p).verdict, Verdict::Allowed);
    // A persona may switch violence off ...
    let off = policy(false, &["moderation: violence=off"]);
    assert_eq!(guard.check_input(text, &off).verdict, Verdict::Allowed);
    // ... and the streamed reply is judged per released window: the first
    // sentence goes out, the second is held back and blocks.
    let mut s = guard.output_scanner(&p);
    let first = "Your invoice is ready.";
    assert_eq!(s.push(first), ScanStep::Release(String::new()));
    assert_eq!(s.push(" "), ScanStep::Release(first.to_owned()));
    match s.push(&format!("{text}. ")) {
        ScanStep::Block(f) => assert_eq!(f.category, "violence"),
        other => panic!("{other:?}"),
    }
    assert_eq!(s.assessment().text, first);
    // Ordinary text passes.
    let ok = guard.check_input("please help with my invoice password", &p);
    assert_eq!(ok.verdict, Verdict::Allowed, "{:?}", ok.findings);
}
