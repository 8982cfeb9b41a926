//! Real LLM providers through the public API, against the mock upstream.
