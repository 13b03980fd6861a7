//! The composite-key index of both tiers: the key encoding, the exact-key buckets, the
//! persistent tree of the published state, snapshots, the index itself and the full
//! tier's handles (`MemoryStore`, `MemoryReader`).

pub(crate) mod batch;
pub(crate) mod bucket;
pub(crate) mod exact;
pub(crate) mod group;
pub(crate) mod ids;
pub mod key;
pub(crate) mod latest;
pub(crate) mod memory;
pub(crate) mod ptree;
#[allow(unsafe_code)] // The one module with `unsafe` code; its docs hold the argument.
pub(crate) mod retire;
pub(crate) mod secondary;
pub(crate) mod snapshot;
pub(crate) mod store;
