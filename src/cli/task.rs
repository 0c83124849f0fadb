//! Task names are resolved where the project is typed (`config::task`): jobs
//! name them too, and are checked when the config loads.

pub use crate::config::task::*;
