//! Longer notes for users and contributors: how the crate is built, how it performs and
//! why, and how to verify code of your own that uses it. Nothing here is code; the
//! modules are documentation pages, as arc-swap's `docs` are.
//!
//! - [`design`]: the index, the published state, the write protocol, the on-demand
//!   tier's hits, and why the crate is shaped as readers and one writer.
//! - [`performance`]: the measured tables with the commands that print them, the floors
//!   that bound exact gets, and the trade-offs behind the defaults.
//! - [`verifying`]: running loom models and fuzz targets of your own over k8s-store,
//!   and what the crate's own tests, models and fuzz targets check.

pub mod design;
pub mod performance;
pub mod verifying;
