//! The on-demand tier: references in the index, bodies fetched through a `kube::Client`
//! into a bounded cache, misses merged by a singleflight, and the tier's handles
//! (`CachedStore`, `CachedReader`).

pub(crate) mod builder;
pub(crate) mod cached;
pub(crate) mod entry;
pub(crate) mod fetch;
pub(crate) mod reference;
pub(crate) mod singleflight;
pub(crate) mod stats;
pub(crate) mod store;
