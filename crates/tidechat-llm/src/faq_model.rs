//! The built-in `faq` model: answers from the FAQ, no LLM involved.

use futures_util::stream::{self, BoxStream, StreamExt};
use unicode_segmentation::UnicodeSegmentation;

use crate::model::{ChatModel, LlmError, ModelEvent, ModelRequest, Usage};
use crate::tokens;

/// Answers with the best FAQ answer when the request's retrieval is in scope,
/// otherwise with the request's `fallback_reply`.
///
/// The answer is streamed as word-sized [`ModelEvent::Delta`]s (each word
/// with its trailing whitespace, so the concatenation equals the answer
/// exactly), followed by [`ModelEvent::Usage`] (counted with
/// [`tokens`], `estimated: false` since the count *is* this model's usage)
/// and `Done { finish_reason: "stop" }`. It never fails, never sleeps and
/// ignores temperature and `max_output_tokens`.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaqModel;

impl FaqModel {
    /// The text this model replies with for `request`.
    pub fn answer(request: &ModelRequest) -> &str {
        match &request.retrieval {
            Some(r) if !r.out_of_scope => r
                .hits
                .first()
                .map_or(request.fallback_reply.as_str(), |hit| hit.answer.as_str()),
            _ => request.fallback_reply.as_str(),
        }
    }
}

/// Splits text into chunks of one word (or symbol) plus trailing whitespace.
pub(crate) fn word_chunks(text: &str) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    for segment in text.split_word_bounds() {
        let is_space = segment.chars().all(char::is_whitespace);
        let has_content = current.chars().any(|c| !c.is_whitespace());
        if !is_space && has_content && current.ends_with(char::is_whitespace) {
            chunks.push(std::mem::take(&mut current));
        }
        current.push_str(segment);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

impl ChatModel for FaqModel {
    fn stream(&self, request: ModelRequest) -> BoxStream<'static, Result<ModelEvent, LlmError>> {
        let answer = Self::answer(&request);
        let usage = Usage {
            input_tokens: tokens::count_messages(&request.messages),
            output_tokens: tokens::count(answer),
            estimated: false,
        };
        let mut events: Vec<ModelEvent> = word_chunks(answer)
            .into_iter()
            .map(ModelEvent::Delta)
            .collect();
        events.push(ModelEvent::Usage(usage));
        events.push(ModelEvent::Done {
            finish_reason: "stop".to_string(),
        });
        stream::iter(events.into_iter().map(Ok)).boxed()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::faq::{FaqDoc, FaqIndex, DEFAULT_CONFIDENCE_THRESHOLD};
    use crate::model::{ChatMessage, Retrieval};

    const FALLBACK: &str = "Sorry, I can only help with questions about your account.";
    const ANSWER: &str = "Open Settings → Security and click \"Reset password\".\n\nWe email you a link — it's valid for 24 h. 🔑";

    fn index() -> FaqIndex {
        FaqIndex::build(vec![
            FaqDoc {
                id: "pw".into(),
                question: "How can I reset my password?".into(),
                answer: ANSWER.into(),
                organization_id: None,
                embedding: None,
                chunk: None,
            },
            FaqDoc {
                id: "invoice".into(),
                question: "Where can I download my invoices?".into(),
                answer: "Under Billing → Invoices.".into(),
                organization_id: None,
                embedding: None,
                chunk: None,
            },
        ])
    }

    fn request(question: &str, retrieval: Option<Retrieval>) -> ModelRequest {
        ModelRequest {
            messages: vec![
                ChatMessage::system("You are the support assistant."),
                ChatMessage::user(question),
            ],
            temperature: 0.2,
            max_output_tokens: 256,
            retrieval,
            fallback_reply: FALLBACK.into(),
            ..ModelRequest::default()
        }
    }

    async fn run(req: ModelRequest) -> (String, Vec<ModelEvent>) {
        let events: Vec<ModelEvent> = FaqModel
            .stream(req)
            .map(|e| e.unwrap())
            .collect::<Vec<_>>()
            .await;
        let text = events
            .iter()
            .filter_map(|e| match e {
                ModelEvent::Delta(d) => Some(d.as_str()),
                _ => None,
            })
            .collect();
        (text, events)
    }

    #[test]
    fn chunks_concatenate_exactly() {
        for text in [
            ANSWER,
            "",
            " ",
            "one",
            "  lead and trail  ",
            "a\n\nb",
            "重置密码。好的",
        ] {
            let chunks = word_chunks(text);
            assert_eq!(chunks.concat(), text);
            assert!(chunks.iter().all(|c| !c.is_empty()));
        }
        assert!(word_chunks(ANSWER).len() > 5);
        assert_eq!(word_chunks("Hello, world!"), vec!["Hello, ", "world!"]);
    }

    #[tokio::test]
    async fn answers_from_the_faq_when_in_scope() {
        let q = "How do I reset my password?";
        let retrieval = index().retrieve(q, None, 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
        assert!(!retrieval.out_of_scope);
        let req = request(q, Some(retrieval));
        let input = tokens::count_messages(&req.messages);
        let (text, events) = run(req).await;
        assert_eq!(text, ANSWER);
        let deltas = events
            .iter()
            .filter(|e| matches!(e, ModelEvent::Delta(_)))
            .count();
        assert!(deltas > 5, "{deltas}");
        let n = events.len();
        assert_eq!(
            events[n - 2],
            ModelEvent::Usage(Usage {
                input_tokens: input,
                output_tokens: tokens::count(ANSWER),
                estimated: false,
            })
        );
        assert!(input > 0);
        assert_eq!(
            events[n - 1],
            ModelEvent::Done {
                finish_reason: "stop".into()
            }
        );
    }

    #[tokio::test]
    async fn falls_back_when_out_of_scope() {
        let q = "what's the weather on mars";
        let retrieval = index().retrieve(q, None, 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
        assert!(retrieval.out_of_scope);
        let (text, events) = run(request(q, Some(retrieval))).await;
        assert_eq!(text, FALLBACK);
        assert!(events.iter().any(|e| matches!(
            e,
            ModelEvent::Usage(Usage { output_tokens, .. }) if *output_tokens == tokens::count(FALLBACK)
        )));

        // Out of scope wins even if there are hits.
        let mut retrieval =
            index().retrieve("password", None, 3, None, DEFAULT_CONFIDENCE_THRESHOLD);
        retrieval.out_of_scope = true;
        let (text, _) = run(request("password", Some(retrieval))).await;
        assert_eq!(text, FALLBACK);

        // No retrieval at all, or an in-scope retrieval without hits.
        let (text, _) = run(request("hi", None)).await;
        assert_eq!(text, FALLBACK);
        let empty = Retrieval {
            hits: Vec::new(),
            out_of_scope: false,
        };
        let (text, _) = run(request("hi", Some(empty))).await;
        assert_eq!(text, FALLBACK);
    }

    #[tokio::test]
    async fn empty_fallback_still_finishes() {
        let mut req = request("hi", None);
        req.fallback_reply = String::new();
        let (text, events) = run(req).await;
        assert_eq!(text, "");
        assert_eq!(events.len(), 2);
        assert!(matches!(events[1], ModelEvent::Done { .. }));
    }
}
