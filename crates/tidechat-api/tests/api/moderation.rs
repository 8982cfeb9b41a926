//! Moderation and drift through the public API.
