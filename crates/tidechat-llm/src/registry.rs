//! The set of models a deployment offers, by id.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::faq_model::FaqModel;
use crate::model::ChatModel;
use crate::pricing::Pricing;

/// Id of the built-in FAQ model.
pub const FAQ_MODEL_ID: &str = "faq";

/// A model offered under an id, with what the engine needs to budget it.
#[derive(Clone)]
pub struct ModelEntry {
    pub id: String,
    pub model: Arc<dyn ChatModel>,
    pub pricing: Pricing,
    /// Total tokens (prompt + output) the model accepts.
    pub context_window: u32,
    /// Upper bound for `ModelRequest::max_output_tokens`.
    pub max_output_tokens: u32,
}

impl fmt::Debug for ModelEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelEntry")
            .field("id", &self.id)
            .field("pricing", &self.pricing)
            .field("context_window", &self.context_window)
            .field("max_output_tokens", &self.max_output_tokens)
            .finish_non_exhaustive()
    }
}

/// Models by id. Cloning is cheap-ish (models are shared `Arc`s).
#[derive(Clone, Debug)]
pub struct ModelRegistry {
    entries: BTreeMap<String, ModelEntry>,
}

impl ModelRegistry {
    /// A registry with only the built-in [`FAQ_MODEL_ID`] model
    /// ([`FaqModel`], free).
    pub fn builtin() -> Self {
        let mut registry = Self {
            entries: BTreeMap::new(),
        };
        registry.insert(ModelEntry {
            id: FAQ_MODEL_ID.to_string(),
            model: Arc::new(FaqModel),
            pricing: Pricing::FREE,
            context_window: 16_384,
            max_output_tokens: 2_048,
        });
        registry
    }

    /// Adds `entry`, replacing any entry with the same id.
    pub fn insert(&mut self, entry: ModelEntry) {
        self.entries.insert(entry.id.clone(), entry);
    }

    pub fn get(&self, id: &str) -> Option<&ModelEntry> {
        self.entries.get(id)
    }

    /// All ids, sorted.
    pub fn ids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builtin_has_only_faq() {
        let registry = ModelRegistry::builtin();
        assert_eq!(registry.ids(), vec![FAQ_MODEL_ID.to_string()]);
        let faq = registry.get("faq").unwrap();
        assert_eq!(faq.id, "faq");
        assert_eq!(faq.pricing, Pricing::FREE);
        assert!(faq.context_window > faq.max_output_tokens);
        assert!(registry.get("gpt-4o").is_none());
        assert!(registry.get("").is_none());
    }

    #[test]
    fn insert_adds_and_replaces() {
        let mut registry = ModelRegistry::builtin();
        let paid = ModelEntry {
            id: "echo".into(),
            model: Arc::new(FaqModel),
            pricing: Pricing::new(1.0, 2.0),
            context_window: 1_000,
            max_output_tokens: 100,
        };
        registry.insert(paid.clone());
        registry.insert(ModelEntry {
            id: "alpha".into(),
            ..paid.clone()
        });
        assert_eq!(registry.ids(), vec!["alpha", "echo", "faq"]);
        registry.insert(ModelEntry {
            context_window: 2_000,
            ..paid
        });
        assert_eq!(registry.get("echo").unwrap().context_window, 2_000);
        assert_eq!(registry.ids().len(), 3);
        let copy = registry.clone();
        assert_eq!(copy.ids(), registry.ids());
        assert!(format!("{:?}", copy.get("echo").unwrap()).contains("echo"));
    }
}
