//! Singer: message scanning, the catalog model, select/metadata rules, state merging.

pub mod catalog;
pub mod message;
pub mod state;
