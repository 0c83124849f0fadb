//! Singer: message scanning, the catalog model, select/metadata rules, state merging.

pub mod catalog;
pub mod json;
pub mod line;
mod md5x8;
pub mod message;
pub mod metric;
pub mod state;
