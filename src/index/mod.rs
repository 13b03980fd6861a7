//! The composite-key index of both tiers: the key encoding, the exact-key buckets, the
//! persistent tree of the published state, snapshots, the index itself and the full
//! tier's handles (`MemoryStore`, `MemoryReader`).

pub(crate) mod batch;
pub(crate) mod bucket;
pub mod key;
pub(crate) mod memory;
pub(crate) mod ptree;
pub(crate) mod snapshot;
pub(crate) mod store;
