//! alto runs Singer pipelines from one declarative config, Nix-style: the
//! config is evaluated into content-addressed derivations that are realized
//! from a shared store before any pipeline runs.

// Errors carry their source text and spans so `main` can render a diagnostic
// that points into the file; they are rare, so their size does not matter.
#![allow(clippy::result_large_err)]

pub mod cli;
pub mod config;
pub mod eval;
pub mod interrupt;
pub mod orchestrate;
pub mod pipeline;
pub mod realize;
pub mod reservoir;
pub mod run;
pub mod singer;
pub mod store;
