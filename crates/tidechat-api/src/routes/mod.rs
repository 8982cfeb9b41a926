pub mod faq_chat;
pub mod faqs;
pub mod keys;
pub mod limits;
pub mod personas;
pub mod sessions;
pub mod system;
pub mod tools;
