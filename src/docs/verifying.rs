//! Verifying code of your own that uses k8s-store, and what the crate's own tests,
//! models and fuzz targets check.
//!
//! # Loom models of your own code
//!
//! Every lock, atomic, `ArcSwap` and cache the stores use goes through one
//! crate-private `sync` module. Built with `--cfg k8s_store_loom`, it swaps in loom's
//! primitives (the exact-key table's slots become loom `AtomicPtr`s, `ArcSwap` a loom
//! `RwLock<Arc<T>>`, the cache a loom `Mutex` around a small map), with a fixed hasher
//! and a clock that stands still, so that every execution of a model takes the same
//! decisions. A store then lives inside your own `loom::model`, and loom explores the
//! interleavings of your threads' reads and writes through it. The cfg is our own, not
//! plain `loom`, which would switch tokio and other dependencies as well.
//!
//! In your crate's `Cargo.toml`:
//!
//! ```toml
//! [target.'cfg(k8s_store_loom)'.dev-dependencies]
//! loom = { version = "0.7", features = ["futures"] }  # `futures` for loom::future::block_on
//!
//! [lints.rust]
//! unexpected_cfgs = { level = "warn", check-cfg = ["cfg(k8s_store_loom)"] }
//! ```
//!
//! A model (in `tests/`, behind `#![cfg(k8s_store_loom)]`; shown as text because it
//! builds only under the cfg, and compiled and run as `loom-tests/tests/downstream.rs`):
//!
//! ```text
//! #![cfg(k8s_store_loom)]
//! use std::sync::Arc;
//! use k8s_store::MemoryStore;
//! use loom::sync::atomic::{AtomicUsize, Ordering};
//! use serde_json::{Value, json};
//!
//! #[test]
//! fn an_announced_write_is_readable() {
//!     loom::model(|| {
//!         // Built inside the model: its locks and atomics belong to this execution.
//!         let store = MemoryStore::<Value>::builder(2).build().unwrap();
//!         let reader = store.reader();
//!         let announced = Arc::new(AtomicUsize::new(0));
//!         let writer = {
//!             let announced = Arc::clone(&announced);
//!             loom::thread::spawn(move || {
//!                 let obj = json!({"metadata": {"namespace": "ns", "name": "a"}});
//!                 store.add(Arc::new(obj), &["ns", "a"]).unwrap();
//!                 announced.store(1, Ordering::Release);
//!             })
//!         };
//!         if announced.load(Ordering::Acquire) == 1 {
//!             assert_eq!(reader.get(&["ns", "a"]).unwrap().len(), 1);
//!         }
//!         writer.join().unwrap();
//!     });
//! }
//! ```
//!
//! Run it with the cfg for the whole build, in release mode (loom explores many
//! executions), with a preemption bound:
//!
//! ```text
//! RUSTFLAGS="--cfg k8s_store_loom" LOOM_MAX_PREEMPTIONS=3 \
//!     CARGO_TARGET_DIR=target/loom cargo test --release --test my_model
//! ```
//!
//! A separate target directory keeps the normal build's artifacts. The model above is
//! `loom-tests/tests/downstream.rs` in this repository, run in CI, with a twin that
//! seeds the bug of announcing before the write and expects loom to find it.
//!
//! Rules of thumb:
//!
//! - Build stores inside the model closure, never in a `static` or before
//!   `loom::model`: loom's primitives belong to one execution.
//! - Spawn with `loom::thread`, share with `std::sync::Arc` (the stores hand out
//!   `std::sync::Arc<K>` in both builds: reference counting is not a protocol of ours).
//! - Keep models small: two or three threads, a few operations. The exact-key table
//!   starts at its smallest (16 slots) and grows only when more than 13 of them would
//!   be in use, so a model's table is small without any setting; `shards(2)`, which
//!   earlier models set, is still accepted and changes nothing.
//! - What is modelled: every read and write of both tiers, snapshots, moves, relists
//!   (`replace`), the on-demand tier's cache, hints and singleflight. What is not:
//!   readiness (a tokio `watch` channel) and the watch feed's change signal, which are
//!   tokio's; and anything that needs a runtime (an `ApiFetcher`, a watch).
//! - The on-demand tier's reads are futures. Drive them with
//!   `loom::future::block_on`, over a deterministic [`Fetch`](crate::Fetch) (below).
//!
//! # Fuzz targets of your own
//!
//! The on-demand tier is built over any [`Fetch`](crate::Fetch) implementation with
//! [`CachedStoreBuilder::build_with_fetcher`](crate::CachedStoreBuilder::build_with_fetcher):
//! a fuzz target holds the "server" it generated (a map of bodies, the answers it wants
//! to inject: 404 as `Ok(None)`, any [`FetchError`](crate::FetchError)) and drives the
//! store with no network. [`Fetch`](crate::Fetch) has an example. The full tier needs
//! nothing: a [`MemoryStore`](crate::MemoryStore) runs anywhere. Objects can be
//! `serde_json::Value`s with a `metadata` mapping, which a fuzz target generates easily
//! (identity fields of the wrong type are refused with
//! [`ErrorKind::InvalidMetadata`](crate::ErrorKind::InvalidMetadata), not read as
//! empty). No setting is needed for a short input to reach the exact-key table's corner
//! cases: a table starts at 16 slots, so a few keys already share probe sequences, and
//! a new key grows it once more than 13 slots would be in use (tombstones included).
//!
//! # What the crate's own verification checks
//!
//! - `tests/contract.rs`: every rule of the index contract, including every bad input.
//! - `tests/model.rs`: proptest runs random operation sequences (keys from an alphabet
//!   with `/`, empty strings, NUL and multibyte characters) against a `BTreeMap` model,
//!   comparing every result including order and checking every internal invariant after
//!   each step. Its stores have secondary indexes (one of two label components, one of
//!   the namespace, one multi-valued over `metadata.finalizers[*]`) and a label index
//!   on one of two label keys; every lookup and selector (in one namespace or all) is
//!   compared with a scan of the model.
//! - `tests/secondary.rs` and `tests/cached_indexes.rs`: secondary indexes and
//!   selectors case by case on both tiers (moves between values, values gained and
//!   lost, duplicates and empty arrays, the bound on values per object, objects without
//!   labels, unindexed label keys, unknown index names, a watch skipping an object its
//!   store cannot index without losing its batch or relist; on the on-demand tier
//!   through the in-process API server, queries that fetch no body).
//! - `tests/stress.rs`: one writer, several readers: whatever a reader saw through
//!   `get` is in every later `list()`, every list is a prefix of the write sequence, a
//!   moving object is never duplicated, lost or rolled back.
//! - `tests/cached.rs`, the on-demand tier through a real `kube::Client` against the
//!   in-process API server: singleflight (100 misses, one `GET`; an injected 500 reaches
//!   all 100 as one shared error), cancellation, updates racing slow fetches, the entry
//!   bound and the bodies kept alive, relists, expiry, bounded concurrency, 404, 429
//!   with `Retry-After`, timeouts, refused connections (the `kube::Error` reachable
//!   through `source()`), names that try to reach another object, bodies of another
//!   object, no Secret data in any `Debug` or error output.
//! - `tests/watch.rs`: initial sync, updates with key changes, deletes, a forced 410
//!   with deletes while the watch was down, readers never seeing a partial store during
//!   relists, a chaos run (dropped watches, 500s on lists, compactions during churn)
//!   ending equal to the server, the metadata-only feed, debounced change signals,
//!   `Stores::start`, relist events out of order, readiness failing when the writer is
//!   dropped.
//! - `tests/config.rs`: every configuration error, the example file, and errors of
//!   settings changed after loading. `tests/metrics.rs`: every series against `stats()`.
//!   `sim/tests/protocol.rs`: the in-process API server's protocol through kube.
//! - `loom-tests/`: loom models of snapshot publication, moves, siblings, relists,
//!   deletes, batches (seen whole or not at all; a twin applying the changes one by one
//!   must fail) and concurrent writers in the index; an object moving between values of
//!   a secondary index, alone, with its key, or two in a batch, racing exact and prefix
//!   lookups on the key and the index (seen under exactly one value, never going back;
//!   twins splitting the write must fail); updates that keep every key, which change
//!   only the identity's version records, alone, in a batch writing the object twice,
//!   and two in a row under one reader (each read at one state's versions; checked to
//!   fail with a reader taking the newest record, or walking back only one); the
//!   reclamation of the trees'
//!   uncounted objects (a held snapshot keeps what later writes replace; checked to
//!   fail with the generations unlinked or a version not retired); the singleflight (a
//!   leader that succeeds, fails, is cancelled), invalidation racing a fetch, and an
//!   eviction racing a hit through a reference's hint; a wait for a resourceVersion
//!   racing the update, removal, batch or relist that brings it, and a dropped writer
//!   (no lost wake-up; twins seed a registration after the check and a wake before the
//!   record, and must fail); and the downstream model above.
//! - `tests/freshness.rs`: every outcome of a wait on both tiers (already satisfied,
//!   satisfied later, timeout, zero timeout, writer dropped, relist in between,
//!   deletion, non-numeric and invalid versions, cancellation), and against the
//!   in-process API server with watch events held back, reads after a write stale
//!   without the wait and never after it.
//! - Miri, run by hand over the crate's `unsafe` parts (the trees' uncounted object and
//!   node pointers, `index::retire` and `index::ptree`, and the exact-key table's
//!   entries, `index::exact`; a unit test drives uncounted trees through writes with
//!   old versions held and frees every node through generations, so that Miri sees a
//!   node freed twice, read after its free or leaked): `cargo +nightly miri test --lib`
//!   and `cargo +nightly miri test --test contract` (with
//!   `MIRIFLAGS=-Zmiri-disable-isolation`). CI does not run it: it takes many minutes.
//! - `fuzz/`: a differential target against a model on JSON objects, single writes and
//!   batches ([`MemoryStore::apply`](crate::MemoryStore::apply)) alike, with five
//!   secondary indexes looked up exactly, by prefix and by unknown names: two
//!   single-valued and three multi-valued (`[*]` over finalizers, the owner
//!   references' uids and a spec array whose elements may be numbers, `null` or
//!   mappings), whose products straddle
//!   [`MAX_ENTRIES_PER_OBJECT`](crate::MAX_ENTRIES_PER_OBJECT); the model computes
//!   every object's keys itself, `TooManyValues` and `NotAScalar` refusals included (the
//!   object is then not stored, and a batch or relist holding it not applied). Label
//!   selectors, generated from terms (`=`, `!=`, `in`, `notin`, exists, `!`) and
//!   rendered in several styles, and arbitrary strings (a refusal must be
//!   `InvalidSelector` with a byte position at a character boundary; what parses must
//!   print as a string that parses back to it), are queried with `select` and
//!   `select_in` under a label index over every key, some keys or none, against the
//!   model's own evaluation of Kubernetes' semantics, and `select_stats` must count
//!   each query as indexed or a scan. The same target feeds a store through a
//!   [`Feeder`](crate::watch::Feeder) with any sequence of watcher events. The same
//!   model runs on typed objects in stores large enough to split and merge tree nodes;
//!   one target checks the key encoding; one drives a `CachedStore` over a
//!   deterministic fetcher against a model of the server, its references' secondary
//!   indexes (one multi-valued, over owner references) and `select_references`
//!   included. `validate()` checks every index against the objects. Each has a
//!   minimised seed corpus in `fuzz/corpus/<target>/`; CI's smoke run (`.ci/fuzz.sh`)
//!   starts each from it and prints its executions per second (in a minute from the
//!   seed corpus on 2 cores: `differential` about 800, `differential_typed` about 780,
//!   `cached` about 1,460; before the multi-valued indexes and selectors 1,330, 840 and
//!   2,330). Seeded bugs, each caught from a seed corpus: `notin` requiring its label
//!   (`differential`: 13 s, 16,000 executions, from the corpus of before the
//!   selectors); the bound on keys per object off by one, refusing exactly 256
//!   (`differential_typed`: 3 s, 4,000 executions); `select` not re-checking `notin`
//!   terms on the label index's candidates (`differential`: 145 s, 128,000
//!   executions); `!=` requiring its label (`differential` and `cached`: while loading
//!   the refreshed corpus, under a second).
