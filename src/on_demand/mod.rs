//! The on-demand tier: references in the index, bodies fetched through a `kube::Client`
//! into a bounded cache, misses merged by a singleflight, and the tier's handles
//! (`CachedStore`, `CachedReader`).

pub(crate) mod cached;
pub(crate) mod fetch;
pub(crate) mod singleflight;
pub(crate) mod store;
