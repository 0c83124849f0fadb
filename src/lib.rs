//! alto runs Singer pipelines from one declarative config, Nix-style: the
//! config is evaluated into content-addressed derivations that are realized
//! from a shared store before any pipeline runs.

pub mod cli;
pub mod config;
