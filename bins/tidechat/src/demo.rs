//! The demo organization created on an empty database, so a fresh clone can
//! hold a conversation with no LLM account.

use std::io::Write;

use anyhow::Result;
use tidechat_domain::FaqDraft;
use tidechat_engine::Engine;

const DEMO_FAQ: &[(&str, &str)] = &[
    ("How do I reset my password?", "Open the sign-in page, choose \"Forgot password\" and follow the link we email you. The link is valid for 30 minutes."),
    ("How do I change the email address on my account?", "Go to Settings → Account, enter the new address and confirm it from the message we send there."),
    ("What payment methods do you accept?", "We accept Visa, Mastercard, American Express, SEPA direct debit and PayPal."),
    ("How can I cancel my subscription?", "Go to Settings → Billing and choose \"Cancel subscription\". You keep access until the end of the paid period."),
    ("Do you offer refunds?", "Yes: annual plans can be refunded in full within 14 days of purchase. Write to support@example.com."),
    ("Where can I download my invoices?", "Every invoice is under Settings → Billing → Invoices, as PDF."),
    ("Wie setze ich mein Passwort zurück?", "Öffnen Sie die Anmeldeseite, wählen Sie „Passwort vergessen“ und folgen Sie dem Link in unserer E-Mail."),
    ("비밀번호를 어떻게 재설정하나요?", "로그인 페이지에서 \"비밀번호 찾기\"를 누르고 이메일로 받은 링크를 따라가세요."),
];

pub async fn seed(engine: &Engine, address: &str) -> Result<()> {
    let bundle = engine.create_org("Demo").await?;
    let drafts = DEMO_FAQ
        .iter()
        .map(|(q, a)| FaqDraft {
            question: (*q).to_owned(),
            answer: (*a).to_owned(),
            organization_id: None,
            tags: vec!["demo".to_owned()],
        })
        .collect();
    engine
        .import_faqs_for(&bundle.org.id, &bundle.workspace.id, drafts)
        .await?;
    let base = format!("http://{address}");
    // A closed stdout (e.g. a supervisor that stopped reading) must not stop the server.
    let _ = writeln!(
        std::io::stdout(),
        "\nCreated the demo organization {org}.\n\
         API key (shown once): {key}\n\n\
         Try it:\n  export TIDECHAT_KEY={key}\n  \
         curl -s -X POST {base}/v1/chat/sessions -H \"Authorization: Bearer $TIDECHAT_KEY\" -H 'Content-Type: application/json' -d '{{\"userId\":\"demo-user\"}}'\n  \
         curl -s -X POST {base}/v1/chat/sessions/<sessionId>/messages -H \"Authorization: Bearer $TIDECHAT_KEY\" -H 'Content-Type: application/json' -d '{{\"userText\":\"How do I reset my password?\"}}'\n\n\
         API docs: {base}/docs\n",
        org = bundle.org.id,
        key = bundle.api_key,
    );
    Ok(())
}
