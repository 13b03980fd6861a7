//! Composite-key in-memory stores for Kubernetes controllers.
//!
//! Controllers read the resources they watch far more often than those change. This
//! crate keeps them indexed by a fixed number of key components pulled from their
//! fields (namespace and name, labels, spec fields), so that reconcilers and renders
//! can look them up without locking each other or the watch that feeds them. Which
//! resources to watch, and how to index and store each, can be loaded from YAML with
//! [`config::Config`].
//!
//! # The index contract
//!
//! - A store has `num_keys >= 1` key components, fixed when it is built (`0` is an
//!   error). Keys need not be unique: many objects may share one composite key.
//! - **Identity** of an object is its UID when set, else its (namespace, name). At any
//!   moment an identity lives under exactly one composite key.
//! - `add` and `update` are upserts by identity. If the keys changed, the object moves;
//!   nothing stays behind under the old key. They take exactly `num_keys` components.
//! - `get` takes `1..=num_keys` components. All of them: the objects under exactly that
//!   key. Fewer: every object whose leading components equal them, compared component by
//!   component (never as a joined string). Results are sorted by (namespace, name, uid).
//!   No match is `Ok(vec![])`.
//! - `delete(keys)` removes every object under exactly that key and returns how many;
//!   `remove(obj)` removes one object by identity and keeps its siblings. Removing what
//!   is absent is `Ok(0)` / `Ok(false)`.
//! - `list()` returns an immutable [`Snapshot`] in the same order.
//! - Keys are arbitrary UTF-8 (empty strings, `/`, `:`, NUL, any unicode); two different
//!   key vectors never collide (see [`key`]).
//! - Wrong key counts return a [`StoreError`] naming the operation, the keys and the
//!   expected and given counts, and change nothing.
//!
//! # Guarantees
//!
//! - **Linearizable.** Once a write has returned, every later `get`/`list`/`len` on any
//!   thread sees it; a snapshot is the state after some prefix of the writes, never a
//!   torn mix.
//! - **No read takes a lock.** Exact gets, prefix gets and `list` read the published
//!   state without waiting for each other or for the writer; an exact get answers for
//!   the state it loaded, however far the writer has moved on since.
//! - **The writer never waits for a reader:** nothing a reader holds is a lock the
//!   writer takes.
//! - **Snapshots never change** and cost O(1) to take; a write after a snapshot copies
//!   only the O(log n) tree nodes on its path.
//! - Objects are shared as `Arc<K>`: nothing is deep-copied, nothing is mutable.
//! - No `Debug` output of this crate prints object bodies (they may be Secrets).
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use k8s_store::{Indexer, MemoryStore};
//!
//! let indexer = Indexer::new(["metadata.namespace", "metadata.name"])?;
//! let store = MemoryStore::<ConfigMap>::new(indexer.len())?;
//!
//! let mut cm = ConfigMap::default();
//! cm.metadata.namespace = Some("default".into());
//! cm.metadata.name = Some("settings".into());
//! let keys = indexer.keys(&cm)?;
//! store.add(Arc::new(cm), &keys)?;
//!
//! assert_eq!(store.get(&["default", "settings"])?.len(), 1); // exact
//! assert_eq!(store.get(&["default"])?.len(), 1);             // prefix
//! assert_eq!(store.list().len(), 1);                         // snapshot
//! assert!(store.get(&["default", "settings", "extra"]).is_err());
//! # Ok::<(), k8s_store::StoreError>(())
//! ```

// The crate's one use of `unsafe` is the published trees' uncounted pointers, to
// objects and to nodes: `index::retire` defines the objects' (`Unowned`) and the
// reclamation of both, and argues why they are sound; `index::ptree`'s `Uncounted`
// link is the nodes' (each `unsafe` block with a `// SAFETY:` comment). Objects enter
// the published trees only through `Unowned`'s `unsafe` constructor (`index::memory`'s
// writes, `Snapshot::owning`). loom-tests/tests/reclamation.rs models the
// reclamation, and Miri runs the library's unit tests and the contract tests over it
// (see `docs::verifying`). Everything else is denied.
#![deny(unsafe_code)]

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

pub mod docs;
mod error;
mod feed;
pub mod freshness;
mod index;
#[cfg(feature = "metrics")]
pub mod metrics;
mod object;
pub mod objects;
mod on_demand;
mod readiness;
mod selector;
mod store;
mod sync;

pub use error::{Cause, ErrorKind, FetchError, Operation, StoreError, TooManyValues};
pub use feed::indexer::{Indexer, MAX_ENTRIES_PER_OBJECT, MissingField};
pub use feed::keys::{KeyIter, Keys};
pub use feed::{config, stores, watch};
pub use freshness::{FreshnessStats, WaitError};
pub use index::batch::{Applied, Batch};
pub use index::key;
pub use index::memory::{MAX_KEYS, MAX_SHARDS, MemoryStoreBuilder, SelectStats};
pub use index::secondary::LabelIndex;
pub use index::snapshot::{Iter, Snapshot};
pub use index::store::{MemoryReader, MemoryStore};
pub use object::{Object, OwnerRef, PathStep, via};
pub use objects::Objects;
pub use on_demand::cached::{CacheStats, CachedStoreBuilder, FETCH_LATENCY_BUCKETS, Reference};
pub use on_demand::fetch::{ApiFetcher, Fetch, Fetched, Stripper};
pub use on_demand::store::{CachedReader, CachedStore};
pub use readiness::WriterDropped;
pub use selector::{Requirement, Selector};
pub use store::Store;
