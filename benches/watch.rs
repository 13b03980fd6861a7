//! The watch write path: what each store costs per watch event, measured side by side
//! in one process on the same pre-built `kube_runtime::watcher::Event`s.
//!
//! Workload: the 100,000 ConfigMaps of about 1 KB of `common/mod.rs` in 100 namespaces
//! of 1,000, converted to `DynamicObject`s (a serde round trip) before measuring, keyed
//! by `[namespace, name]`. Row `apply_one_1m` has 1,000,000 of them in 1,000 namespaces
//! (the same generator, bodies of the same size), generated for that row only and freed
//! after it.
//!
//! Stores, in every group, run in this order and adjacent (criterion runs a group's
//! functions one after another):
//! - `ours`: `k8s_store::watch::Feeder` over a `MemoryStore<DynamicObject>` (default
//!   settings) with an `Indexer` of `["metadata.namespace", "metadata.name"]`, fed
//!   owned events: a single one with `feeder.handle(event)`, several at once (a burst,
//!   a relist) with `feeder.handle_batch(events)`, the feeder's own batching, which is
//!   what `Feeder::run` does with the events already ready on a stream (batches of up
//!   to 1,024, the default `max_batch`; relist events are never batched). Through
//!   `watch::reflect`, which passes every event on, it clones each one first, as
//!   kube-runtime's writer does.
//! - `ours_batch`: the same, but a burst goes to the store as one hand-built
//!   `MemoryStore::apply(Batch)`, prepared as the feeder prepares an `Apply` (managed
//!   fields dropped, keys from the same `Indexer`, the stored resourceVersion read and
//!   compared) and published once: the store's batch alone, without the feeder's
//!   bookkeeping. Single events and relists go through its `Feeder`, as `ours`.
//! - `kube`: kube-runtime 5's reflector `Writer<DynamicObject>` (`Writer::new` with the
//!   ConfigMap's `ApiResource`), fed by `writer.apply_watcher_event(&event)`, which
//!   clones every applied object into an `Arc` of its own. It only borrows the event;
//!   the event is handed back and dropped outside the timing, as `reflect` passes it
//!   on to whatever consumes the stream.
//! - `go`: the Go-shaped global-lock store of `baselines/go_store.rs` behind the
//!   smallest adapter with client-go's reflector semantics: `Apply` is `update` (an
//!   upsert) under `[namespace, name]`, `Delete` is `delete`, and `Init` ..
//!   `InitApply`s .. `InitDone` collect the objects (`Arc::new`, no copy) and build a
//!   new store from them, which replaces the old one, as client-go's `Replace` builds a
//!   new map and swaps it in. (Its map grows by doubling: client-go pre-sizes it.)
//! - `imbl`: a persistent map off the shelf, one `imbl::OrdMap` of (namespace, name)
//!   to the object, each version published through an `ArcSwap` and the previous one
//!   dropped (see `Persistent`): a store whose `list()` is an O(1) immutable snapshot,
//!   built the general-purpose way, without the indexes ours keeps beside it. Not a
//!   floor: its node copies clone every key (two `String`s) and every value (an `Arc`
//!   increment on a cold object), which ours avoids.
//! - `floor`: the floor of a write, not a store (see `Floor`): one hashed table of the
//!   owned objects, no lock, no clone, no key allocated, no snapshot published. An
//!   `Apply` is a hash, a probe, the object put in place and the one it replaces freed,
//!   the least any store that replaces an object by key does. A relist builds a new
//!   table, as the Go adapter does.
//! - `floor_snapshot`: the floor of a write to a store that publishes immutable
//!   versions, not a store (see `SnapFloor`): `floor`'s table plus one path copy in a
//!   persistent array of the objects' addresses (four 256-byte nodes, each copied into
//!   a new allocation that replaces and frees the old one). Lower than any ordered
//!   design: no comparisons on the way down, no order for lists or prefixes, nothing
//!   published to readers, replaced nodes freed at once.
//!
//! Every event a store is fed is a clone of a pre-built one, made in criterion's
//! untimed setup (`iter_batched`), so each store gets a freshly allocated event, as from
//! a watch's decoder; no object, version or event is built in the timed code.
//!
//! Rows (criterion groups):
//! - `apply_one_100k`, `apply_one_1m`: one `Event::Apply` of an existing object with a
//!   new resourceVersion. The objects are drawn uniformly at random from the whole store
//!   (a pre-generated sequence of 16,384 draws, each with two pre-built versions of its
//!   own; pass `p` over the sequence applies version `p % 2`). Every version's
//!   resourceVersion is unique and each store's position in the sequence carries on from
//!   row to row, so no apply ever repeats the stored resourceVersion and our feeder's
//!   unchanged-version skip never triggers: checked before measuring (the first applies
//!   of each store are read back) and after (its `unchanged` counter is 0). The 1M
//!   stores are built one at a time, each just before its store's measurement, and
//!   dropped after it (the three would not fit in memory together with their objects).
//! - `burst_1000_100k`: 1,000 such events (the next 1,000 of the same sequence), fed
//!   as one burst (`ours`: `Feeder::handle_batch`, one batch; `ours_batch`: one
//!   hand-built batch; `kube` and `go`: one by one); the time is per burst, the table
//!   also gives it per event.
//! - `initial_sync_100k`: `Event::Init`, the 100k as `Event::InitApply`, `Event::InitDone`
//!   into an empty store. Each iteration gets a new store (or writer) and the 100,002
//!   events from the untimed setup, and returns the filled store, which criterion drops
//!   after stopping the clock (`iter_batched` with `PerIteration`): neither building the
//!   empty store nor dropping the previous iteration's is timed.
//! - `relist_100k`: the same sequence over a store that holds the 100k, with 1% of the
//!   objects (1,000, a fixed random sample) in a new version and the rest identical.
//!   Each store is relisted back to the original objects first (untimed); iteration `k`
//!   sends the changed 1% in version `k % 2`, so every relist changes exactly 1% of what
//!   the store holds. The old state is dropped inside the timed relist, where each store
//!   drops it (kube-runtime and ours when the new state is swapped in, the Go adapter
//!   when its new store replaces the old one; Go's garbage collector would do that
//!   later, off the watch's path).
//! - Memory of a relist (not criterion, printed at the end): a counting global
//!   allocator (as in `benches/memory.rs`, here also tracking the peak, and counting
//!   only in this phase) measures, for a new store of each kind, the bytes live in
//!   steady state (100k stored, objects included: each store holds its own copies)
//!   and the peak during one relist of the 100k (with the 1% changed), when the old and
//!   the new state are both alive, as offsets from the bytes live before the store was
//!   created. Every event is cloned just before it is fed, as a watch decodes one at a
//!   time, so the input costs at most one event at a time.
//!
//! Criterion settings are those of `benches/store.rs` (`fast_group` for `apply_one_*`,
//! `slow_group` for the bursts); the two rows of a 100k sync take a `sync_group`
//! of flat sampling, since criterion's linear sampling would need at least 55
//! iterations of a quarter of a second or more for ten samples.
//!
//! The VM's memory latency drifts over minutes, and criterion measures one store after
//! another: compare the ratios within one run (the stores of a row are measured
//! back to back), not medians across runs.
//!
//! At the end a markdown table of this run's medians (read from criterion's
//! `estimates.json`, as `benches/store.rs` does) with the ratios `kube ÷ ours` and
//! `go ÷ ours` and `imbl ÷ ours`, and the memory table, are printed.
//!
//! Run: `cargo bench --bench watch` (about five minutes on two cores, one and a half
//! of them generating the 1M objects and filling their stores; the process peaks at
//! about 12 GB resident then). Criterion warns that it cannot complete the samples
//! of the burst and sync rows in their target time: its estimate counts the untimed
//! setup (cloning the events), so those rows take longer than their target, as
//! expected. `K8S_STORE_BENCH_QUICK=1 cargo bench --bench watch` uses
//! short measurements; `cargo bench --bench watch -- apply_one_100k` (any criterion
//! filter) runs some rows only, and builds the 1M stores only for `apply_one_1m`.
//! Without `--bench` (as `cargo test --benches` runs it) every size is divided by 10.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, Criterion, SamplingMode, Throughput};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store::watch::{FeedOptions, Feeder};
use k8s_store::{Batch, Indexer, MemoryReader, MemoryStore};
use kube::core::{ApiResource, DynamicObject};
use kube_runtime::reflector::{self, ObjectRef, store::Writer};
use kube_runtime::watcher::Event;
use rand::SeedableRng;
use rand::rngs::StdRng;

#[allow(dead_code)] // shared with the other benchmarks, which use other parts
mod common;
#[allow(dead_code)] // shared with the other benchmarks, which use other parts
#[path = "baselines/go_store.rs"]
mod go_store;

use go_store::GoStore;

type Obj = DynamicObject;
type Ev = Event<DynamicObject>;

/// Draws in the apply sequence (a power of two), each with two pre-built versions.
const SLOTS: usize = 1 << 14;
/// Events in a burst.
const BURST: usize = 1_000;
/// The share of a relist's objects in a new version: one in this many.
const RELIST_CHANGED_ONE_IN: usize = 100;
/// resourceVersions: the workload's are `1_000_000 + i` (below 2,000,000 for 1M
/// objects); the apply sequence's start here, the relists' changed versions at
/// `RELIST_RV`, so no two versions of an object share one.
const APPLY_RV: u64 = 10_000_000;
const RELIST_RV: u64 = 30_000_000;

// ---------------------------------------------------------------------------------
// The counting allocator (see `benches/memory.rs`), counting only while `COUNTING` is
// set (the memory phase): the criterion rows pay one relaxed load per allocation.

static COUNTING: AtomicBool = AtomicBool::new(false);
/// Live bytes as requested from the allocator, since counting started.
static BYTES: AtomicIsize = AtomicIsize::new(0);
/// The highest value `BYTES` reached since the last `reset_peak`.
static PEAK: AtomicIsize = AtomicIsize::new(0);

struct Counting;

fn grow(size: usize) {
    let now = BYTES.fetch_add(size as isize, Ordering::Relaxed) + size as isize;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrink(size: usize) {
    BYTES.fetch_sub(size as isize, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; the counting has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), as `System` needs.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            grow(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            grow(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with
        // `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            shrink(layout.size());
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`, and `new_size` is valid
        // for it, as the caller guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            // The peak as if the new block were allocated before the old one is freed,
            // as a moving realloc does.
            grow(new_size);
            shrink(layout.size());
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    BYTES.load(Ordering::Relaxed)
}

fn reset_peak() {
    PEAK.store(live(), Ordering::Relaxed);
}

fn peak() -> isize {
    PEAK.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------
// The stores under test.

/// A store fed watch events. Everything measured goes through `handle` and `burst`.
trait Feed {
    /// Applies one event; returns it if the store only borrowed it (to be dropped
    /// outside the timing).
    fn handle(&mut self, event: Ev) -> Option<Ev>;
    /// Applies `events` in order (a burst, or a whole relist); returns what was only
    /// borrowed. A store with a batch API overrides this.
    fn burst(&mut self, events: Vec<Ev>) -> Vec<Ev> {
        events.into_iter().filter_map(|e| self.handle(e)).collect()
    }
    /// The resourceVersion stored under `key`.
    fn resource_version(&self, key: &[String; 2]) -> Option<String>;
    fn len(&self) -> usize;
    /// Panics if the store skipped or refused something it was fed.
    fn check(&self) {}
}

/// k8s-store: a `Feeder` over a `MemoryStore`.
struct Ours {
    feeder: Feeder<Obj, MemoryStore<Obj>>,
    reader: MemoryReader<Obj>,
}

impl Ours {
    fn new() -> Self {
        let store = MemoryStore::<Obj>::new(2).expect("two keys");
        let reader = store.reader();
        let indexer = Indexer::new(["metadata.namespace", "metadata.name"]).expect("valid paths");
        let feeder = Feeder::new(store, indexer, FeedOptions::new("configmaps"))
            .expect("matching key counts");
        Self { feeder, reader }
    }
}

impl Feed for Ours {
    fn handle(&mut self, event: Ev) -> Option<Ev> {
        self.feeder.handle(event);
        None
    }
    fn burst(&mut self, events: Vec<Ev>) -> Vec<Ev> {
        // The feeder's own batching (what `Feeder::run` and `watch::reflect` do with the
        // events ready on a stream): batches of up to `max_batch` (1,024).
        self.feeder.handle_batch(events);
        Vec::new()
    }
    fn resource_version(&self, [ns, name]: &[String; 2]) -> Option<String> {
        let obj = self.reader.get_one(&[ns, name]).expect("two keys")?;
        obj.metadata.resource_version.clone()
    }
    fn len(&self) -> usize {
        self.reader.len()
    }
    fn check(&self) {
        check_feeder(&self.feeder.status());
    }
}

/// Panics if a feeder skipped or refused anything it was fed.
fn check_feeder(status: &k8s_store::watch::WatchStatus) {
    let s = status.stats();
    assert_eq!(s.unchanged, 0, "an apply was skipped as unchanged: {s:?}");
    assert_eq!(
        s.index_errors + s.store_errors + s.stray_relist_events + s.watch_errors,
        0,
        "{s:?}"
    );
}

/// k8s-store with bursts as one write: the same `Feeder` for single events and
/// relists, and `MemoryStore::apply` for a burst. The feeder does not gather events
/// into batches itself yet; this does what it would: for each `Apply`, managed fields
/// dropped, keys from the same `Indexer`, the unchanged-version check against the
/// store, then one batch for the whole burst.
struct OursBatch {
    store: Arc<MemoryStore<Obj>>,
    feeder: Feeder<Obj, Arc<MemoryStore<Obj>>>,
    indexer: Indexer,
}

impl OursBatch {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::<Obj>::new(2).expect("two keys"));
        let indexer = Indexer::new(["metadata.namespace", "metadata.name"]).expect("valid paths");
        let feeder = Feeder::new(
            Arc::clone(&store),
            indexer.clone(),
            FeedOptions::new("configmaps"),
        )
        .expect("matching key counts");
        Self {
            store,
            feeder,
            indexer,
        }
    }
}

impl Feed for OursBatch {
    fn handle(&mut self, event: Ev) -> Option<Ev> {
        self.feeder.handle(event);
        None
    }
    fn burst(&mut self, events: Vec<Ev>) -> Vec<Ev> {
        if !events.iter().all(|e| matches!(e, Event::Apply(_))) {
            // A relist: the feeder's own path.
            events.into_iter().for_each(|e| self.feeder.handle(e));
            return Vec::new();
        }
        let mut batch = Batch::with_capacity(events.len());
        for event in events {
            let Event::Apply(mut obj) = event else {
                continue;
            };
            obj.metadata.managed_fields = None;
            let keys = self.indexer.key_list(&obj).expect("namespace and name");
            let stored = self
                .store
                .get_one(&keys.iter().collect::<Vec<_>>())
                .expect("two keys")
                .and_then(|s| s.metadata.resource_version.clone());
            assert_ne!(stored, obj.metadata.resource_version, "an unchanged apply");
            batch.upsert_keys(Arc::new(obj), keys);
        }
        self.store.apply(batch).expect("a valid batch");
        Vec::new()
    }
    fn resource_version(&self, [ns, name]: &[String; 2]) -> Option<String> {
        let obj = self.store.get_one(&[ns, name]).expect("two keys")?;
        obj.metadata.resource_version.clone()
    }
    fn len(&self) -> usize {
        self.store.len()
    }
    fn check(&self) {
        check_feeder(&self.feeder.status());
    }
}

/// kube-runtime's reflector writer.
struct Kube {
    writer: Writer<Obj>,
    reader: reflector::Store<Obj>,
    ar: ApiResource,
}

impl Kube {
    fn new() -> Self {
        let ar = ApiResource::erase::<ConfigMap>(&());
        let writer = Writer::new(ar.clone());
        let reader = writer.as_reader();
        Self { writer, reader, ar }
    }
}

impl Feed for Kube {
    fn handle(&mut self, event: Ev) -> Option<Ev> {
        self.writer.apply_watcher_event(&event);
        Some(event)
    }
    fn burst(&mut self, events: Vec<Ev>) -> Vec<Ev> {
        for e in &events {
            self.writer.apply_watcher_event(e);
        }
        events
    }
    fn resource_version(&self, [ns, name]: &[String; 2]) -> Option<String> {
        let key = ObjectRef::new_with(name, self.ar.clone()).within(ns);
        self.reader.get(&key)?.metadata.resource_version.clone()
    }
    fn len(&self) -> usize {
        self.reader.len()
    }
}

/// The Go-shaped store behind client-go's reflector semantics.
struct Go {
    store: GoStore<Obj>,
    /// The objects of the relist in progress.
    relist: Option<Vec<Arc<Obj>>>,
}

impl Go {
    fn new() -> Self {
        Self {
            store: GoStore::new(2),
            relist: None,
        }
    }
    fn upsert(&self, obj: Obj) {
        let obj = Arc::new(obj);
        self.store.update(Arc::clone(&obj), &go_key(&obj));
    }
}

/// client-go's `MetaNamespaceKeyFunc` as the store's two key components.
fn go_key(obj: &Obj) -> [&str; 2] {
    [
        obj.metadata.namespace.as_deref().unwrap_or(""),
        obj.metadata.name.as_deref().unwrap_or(""),
    ]
}

impl Feed for Go {
    fn handle(&mut self, event: Ev) -> Option<Ev> {
        match event {
            Event::Apply(obj) => self.upsert(obj),
            Event::Delete(obj) => {
                self.store.delete(&go_key(&obj));
            }
            Event::Init => self.relist = Some(Vec::new()),
            Event::InitApply(obj) => match &mut self.relist {
                Some(items) => items.push(Arc::new(obj)),
                None => self.upsert(obj),
            },
            Event::InitDone => {
                if let Some(items) = self.relist.take() {
                    let store = GoStore::new(2);
                    for obj in items {
                        store.add(Arc::clone(&obj), &go_key(&obj));
                    }
                    self.store = store;
                }
            }
        }
        None
    }
    fn resource_version(&self, key: &[String; 2]) -> Option<String> {
        let found = self.store.get(key);
        found.first()?.metadata.resource_version.clone()
    }
    fn len(&self) -> usize {
        self.store.len()
    }
}

/// A persistent map off the shelf: one persistent ordered map (imbl's `OrdMap`, a
/// B-tree whose nodes are copied on write and shared between versions) from
/// (namespace, name) to the object, each version published whole through an `ArcSwap`
/// as our state is, the previous one dropped when the next is published (with the
/// nodes and the object it alone held). No prefix index, no exact-key table, no
/// identity table, no versions and no batch. A relist collects the objects and builds
/// a new map, as the Go adapter does.
struct Persistent {
    map: imbl::OrdMap<(String, String), Arc<Obj>>,
    published: arc_swap::ArcSwap<imbl::OrdMap<(String, String), Arc<Obj>>>,
    relist: Option<Vec<Arc<Obj>>>,
}

impl Persistent {
    fn new() -> Self {
        Self {
            map: imbl::OrdMap::new(),
            published: arc_swap::ArcSwap::from_pointee(imbl::OrdMap::new()),
            relist: None,
        }
    }
    fn publish(&self) {
        self.published.store(Arc::new(self.map.clone()));
    }
}

fn map_key(obj: &Obj) -> (String, String) {
    let [ns, name] = go_key(obj);
    (ns.to_owned(), name.to_owned())
}

impl Feed for Persistent {
    fn handle(&mut self, event: Ev) -> Option<Ev> {
        match event {
            Event::Apply(obj) => {
                let obj = Arc::new(obj);
                self.map.insert(map_key(&obj), obj);
                self.publish();
            }
            Event::Delete(obj) => {
                self.map.remove(&map_key(&obj));
                self.publish();
            }
            Event::Init => self.relist = Some(Vec::new()),
            Event::InitApply(obj) => match &mut self.relist {
                Some(items) => items.push(Arc::new(obj)),
                None => {
                    let obj = Arc::new(obj);
                    self.map.insert(map_key(&obj), obj);
                    self.publish();
                }
            },
            Event::InitDone => {
                if let Some(items) = self.relist.take() {
                    self.map = items.into_iter().map(|o| (map_key(&o), o)).collect();
                    self.publish();
                }
            }
        }
        None
    }
    fn resource_version(&self, [ns, name]: &[String; 2]) -> Option<String> {
        let map = self.published.load();
        let obj = map.get(&(ns.clone(), name.clone()))?;
        obj.metadata.resource_version.clone()
    }
    fn len(&self) -> usize {
        self.published.load().len()
    }
}

/// The floor of a write: one hashed table of the objects themselves (hashbrown's
/// `HashTable`, foldhash over namespace and name read from the object, as our identity
/// table hashes), with no lock, no key allocated, no clone, no version check and no
/// snapshot. An `Apply` hashes the key, probes, puts the owned object in place and
/// frees the one it replaces: what every store that replaces a stored object by key
/// does at the least. Not a usable store (nothing publishes it to readers).
struct Floor {
    table: hashbrown::HashTable<Arc<Obj>>,
    hasher: foldhash::fast::FixedState,
    relist: Option<Vec<Arc<Obj>>>,
}

impl Floor {
    fn new() -> Self {
        Self {
            table: hashbrown::HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(7),
            relist: None,
        }
    }
    fn hash(&self, key: [&str; 2]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }
    fn insert(&mut self, hash: u64, obj: Arc<Obj>) {
        use std::hash::BuildHasher;
        let Self { table, hasher, .. } = self;
        table.insert_unique(hash, obj, |o| hasher.hash_one(go_key(o)));
    }
    fn upsert(&mut self, obj: Obj) {
        let obj = Arc::new(obj);
        let hash = self.hash(go_key(&obj));
        match self.table.find_mut(hash, |o| go_key(o) == go_key(&obj)) {
            Some(slot) => drop(std::mem::replace(slot, obj)),
            None => self.insert(hash, obj),
        }
    }
}

impl Feed for Floor {
    fn handle(&mut self, event: Ev) -> Option<Ev> {
        match event {
            Event::Apply(obj) => self.upsert(obj),
            Event::Delete(obj) => {
                let key = go_key(&obj);
                if let Ok(e) = self.table.find_entry(self.hash(key), |o| go_key(o) == key) {
                    e.remove();
                }
            }
            Event::Init => self.relist = Some(Vec::new()),
            Event::InitApply(obj) => match &mut self.relist {
                Some(items) => items.push(Arc::new(obj)),
                None => self.upsert(obj),
            },
            Event::InitDone => {
                if let Some(items) = self.relist.take() {
                    self.table = hashbrown::HashTable::with_capacity(items.len());
                    for obj in items {
                        let hash = self.hash(go_key(&obj));
                        self.insert(hash, obj);
                    }
                }
            }
        }
        None
    }
    fn resource_version(&self, [ns, name]: &[String; 2]) -> Option<String> {
        let key = [ns.as_str(), name.as_str()];
        let obj = self.table.find(self.hash(key), |o| go_key(o) == key)?;
        obj.metadata.resource_version.clone()
    }
    fn len(&self) -> usize {
        self.table.len()
    }
}

/// The floor of a write to a store that publishes immutable versions (as ours does, so
/// that `list()` is O(1) and a snapshot never changes): `Floor`'s hashed table, plus the
/// least such a version costs, one path copy in a persistent array of the objects'
/// addresses. Each object gets a slot when first stored; an `Apply` replaces it in the
/// table as `Floor` does and copies the 4 nodes from the root to its slot (a radix tree
/// of 32-wide nodes, 2^20 slots), each a new 256-byte allocation that replaces and frees
/// the old one. Lower than any real design: the array is unordered (no comparison on
/// the way down, no order kept for lists or prefixes), its entries are 8 bytes (ours
/// carry a 32-byte separator in inner nodes), nothing is published to readers, and each
/// replaced node is freed at once, as if no reader ever held a version. Not a store.
struct SnapFloor {
    table: hashbrown::HashTable<(Arc<Obj>, u32)>,
    hasher: foldhash::fast::FixedState,
    root: Option<Box<PNode>>,
    next: u32,
    relist: Option<Vec<Arc<Obj>>>,
}

/// A node of `SnapFloor`'s array: 32 children, or 32 objects' addresses (the table owns
/// the objects).
enum PNode {
    Inner([Option<Box<PNode>>; 32]),
    Leaf([usize; 32]),
}

/// Levels of `SnapFloor`'s array: 32^4 = 2^20 slots.
const SNAP_LEVELS: u32 = 4;

impl PNode {
    fn empty(level: u32) -> Box<Self> {
        Box::new(if level == 1 {
            PNode::Leaf([0; 32])
        } else {
            PNode::Inner(std::array::from_fn(|_| None))
        })
    }

    /// Sets `slot` to `addr` under `node` (at `level`, 1 being the leaves), copying
    /// every node on the way into a new allocation that replaces (and frees) it.
    fn set(node: &mut Box<Self>, level: u32, slot: usize, addr: usize) {
        let taken = std::mem::replace(&mut **node, PNode::Leaf([0; 32]));
        let mut copy = std::hint::black_box(Box::new(taken));
        match &mut *copy {
            PNode::Leaf(items) => items[slot & 31] = addr,
            PNode::Inner(children) => {
                let child = children[(slot >> (5 * (level - 1))) & 31]
                    .get_or_insert_with(|| Self::empty(level - 1));
                Self::set(child, level - 1, slot, addr);
            }
        }
        *node = copy;
    }

    /// Sets `slot` to `addr` in place: how a relist builds the new array whole (nothing
    /// else can hold it yet).
    fn put(node: &mut Self, level: u32, slot: usize, addr: usize) {
        match node {
            PNode::Leaf(items) => items[slot & 31] = addr,
            PNode::Inner(children) => {
                let child = children[(slot >> (5 * (level - 1))) & 31]
                    .get_or_insert_with(|| Self::empty(level - 1));
                Self::put(child, level - 1, slot, addr);
            }
        }
    }
}

impl SnapFloor {
    fn new() -> Self {
        Self {
            table: hashbrown::HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(7),
            root: None,
            next: 0,
            relist: None,
        }
    }
    fn hash(&self, key: [&str; 2]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(key)
    }
    fn set(&mut self, slot: u32, obj: &Arc<Obj>) {
        assert!(
            slot < 1 << (5 * SNAP_LEVELS),
            "SnapFloor holds 2^20 objects"
        );
        let root = self.root.get_or_insert_with(|| PNode::empty(SNAP_LEVELS));
        PNode::set(root, SNAP_LEVELS, slot as usize, Arc::as_ptr(obj) as usize);
    }
    fn insert(&mut self, hash: u64, obj: Arc<Obj>, in_place: bool) {
        use std::hash::BuildHasher;
        let slot = self.next;
        self.next += 1;
        if in_place {
            let root = self.root.get_or_insert_with(|| PNode::empty(SNAP_LEVELS));
            PNode::put(root, SNAP_LEVELS, slot as usize, Arc::as_ptr(&obj) as usize);
        } else {
            self.set(slot, &obj);
        }
        let Self { table, hasher, .. } = self;
        table.insert_unique(hash, (obj, slot), |(o, _)| hasher.hash_one(go_key(o)));
    }
    fn upsert(&mut self, obj: Obj) {
        let obj = Arc::new(obj);
        let hash = self.hash(go_key(&obj));
        match self
            .table
            .find_mut(hash, |(o, _)| go_key(o) == go_key(&obj))
        {
            Some((stored, slot)) => {
                let slot = *slot;
                let old = std::mem::replace(stored, Arc::clone(&obj));
                self.set(slot, &obj);
                drop(old);
            }
            None => self.insert(hash, obj, false),
        }
    }
}

impl Feed for SnapFloor {
    fn handle(&mut self, event: Ev) -> Option<Ev> {
        match event {
            Event::Apply(obj) => self.upsert(obj),
            Event::Delete(obj) => {
                let key = go_key(&obj);
                if let Ok(e) = self
                    .table
                    .find_entry(self.hash(key), |(o, _)| go_key(o) == key)
                {
                    let ((_, slot), _) = e.remove();
                    if let Some(root) = &mut self.root {
                        PNode::set(root, SNAP_LEVELS, slot as usize, 0);
                    }
                }
            }
            Event::Init => self.relist = Some(Vec::new()),
            Event::InitApply(obj) => match &mut self.relist {
                Some(items) => items.push(Arc::new(obj)),
                None => self.upsert(obj),
            },
            Event::InitDone => {
                if let Some(items) = self.relist.take() {
                    self.table = hashbrown::HashTable::with_capacity(items.len());
                    self.root = None;
                    self.next = 0;
                    for obj in items {
                        let hash = self.hash(go_key(&obj));
                        self.insert(hash, obj, true);
                    }
                }
            }
        }
        None
    }
    fn resource_version(&self, [ns, name]: &[String; 2]) -> Option<String> {
        let key = [ns.as_str(), name.as_str()];
        let (obj, _) = self.table.find(self.hash(key), |(o, _)| go_key(o) == key)?;
        obj.metadata.resource_version.clone()
    }
    fn len(&self) -> usize {
        self.table.len()
    }
}

/// A constructor of an empty store.
type Make = fn() -> Box<dyn Feed>;

/// The stores: their ids and constructors, in the order of every group and of the
/// summary's columns; the first is the one the others are compared with.
fn stores() -> Vec<(&'static str, Make)> {
    vec![
        ("ours", || Box::new(Ours::new())),
        ("ours_batch", || Box::new(OursBatch::new())),
        ("kube", || Box::new(Kube::new())),
        ("go", || Box::new(Go::new())),
        ("imbl", || Box::new(Persistent::new())),
        ("floor", || Box::new(Floor::new())),
        ("floor_snapshot", || Box::new(SnapFloor::new())),
    ]
}

/// A store under test and its position in the apply sequence, which carries on from
/// row to row.
struct Subject {
    id: &'static str,
    make: Make,
    feed: Box<dyn Feed>,
    next: usize,
}

impl Subject {
    fn new((id, make): (&'static str, Make)) -> Self {
        Self {
            id,
            make,
            feed: make(),
            next: 0,
        }
    }
}

// ---------------------------------------------------------------------------------
// The events.

/// `cm` as the `DynamicObject` a dynamic watch decodes.
fn dynamic(cm: &ConfigMap) -> Obj {
    let json = serde_json::to_value(cm).expect("a ConfigMap serializes");
    serde_json::from_value(json).expect("a ConfigMap is a DynamicObject")
}

/// A new version of `obj`: resourceVersion `rv` and one changed value, as an edit.
fn version(obj: &Obj, rv: u64, level: &str) -> Obj {
    let mut next = obj.clone();
    next.metadata.resource_version = Some(rv.to_string());
    if let Some(data) = next.data.get_mut("data").and_then(|d| d.as_object_mut()) {
        data.insert("LOG_LEVEL".into(), level.into());
    }
    next
}

fn rv_of(event: &Ev) -> Option<&str> {
    match event {
        Event::Apply(o) | Event::InitApply(o) | Event::Delete(o) => {
            o.metadata.resource_version.as_deref()
        }
        Event::Init | Event::InitDone => None,
    }
}

/// The objects of one store size, as a watch delivers them.
struct Base {
    objects: Vec<Obj>,
    keys: Vec<[String; 2]>,
}

impl Base {
    fn generate(namespaces: usize, seed: u64) -> Self {
        let wl = common::Workload::generate(namespaces, seed);
        let objects = wl.objects.iter().map(|cm| dynamic(cm)).collect();
        Self {
            objects,
            keys: wl.keys,
        }
    }

    /// The mean number of bytes in the `data` keys and values (the "~1 KB").
    fn mean_data_bytes(&self) -> usize {
        let total: usize = self
            .objects
            .iter()
            .filter_map(|o| o.data.get("data")?.as_object())
            .map(|d| {
                d.iter()
                    .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
                    .sum::<usize>()
            })
            .sum();
        total / self.len().max(1)
    }

    fn len(&self) -> usize {
        self.objects.len()
    }
}

/// The apply sequence: `SLOTS` uniform draws over a store, two versions of each.
struct Applies {
    /// `index[slot]`: the object of that draw.
    index: Vec<u32>,
    events: Vec<[Ev; 2]>,
}

impl Applies {
    fn new(base: &Base, seed: u64) -> Self {
        let index = common::uniform_indices(base.len(), SLOTS, seed);
        let events = index
            .iter()
            .enumerate()
            .map(|(slot, &i)| {
                let obj = &base.objects[i as usize];
                let rv = APPLY_RV + 2 * slot as u64;
                [
                    Event::Apply(version(obj, rv, "debug")),
                    Event::Apply(version(obj, rv + 1, "trace")),
                ]
            })
            .collect();
        Self { index, events }
    }

    /// Apply `n` of the sequence (cyclic; pass `n / SLOTS` takes version `pass % 2`).
    fn event(&self, n: usize) -> &Ev {
        &self.events[n % SLOTS][(n / SLOTS) & 1]
    }

    fn key<'a>(&self, base: &'a Base, n: usize) -> &'a [String; 2] {
        &base.keys[self.index[n % SLOTS] as usize]
    }
}

/// The relists: the base objects with a fixed 1% in a new version (two, alternating).
struct Relists {
    /// Ascending indices of the changed objects.
    changed: Vec<usize>,
    versions: Vec<[Obj; 2]>,
}

impl Relists {
    fn new(base: &Base, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = base.len();
        let mut changed =
            rand::seq::index::sample(&mut rng, n, n / RELIST_CHANGED_ONE_IN).into_vec();
        changed.sort_unstable();
        let versions = changed
            .iter()
            .map(|&i| {
                let rv = RELIST_RV + 2 * i as u64;
                let obj = &base.objects[i];
                [version(obj, rv, "warn"), version(obj, rv + 1, "error")]
            })
            .collect();
        Self { changed, versions }
    }

    /// Object `i` of relist `k`: the base object, or version `k % 2` of a changed one.
    fn objects<'a>(&'a self, base: &'a Base, k: usize) -> impl Iterator<Item = &'a Obj> + 'a {
        let mut next = 0;
        base.objects.iter().enumerate().map(move |(i, obj)| {
            if self.changed.get(next) == Some(&i) {
                next += 1;
                &self.versions[next - 1][k & 1]
            } else {
                obj
            }
        })
    }
}

/// `Init`, every object as `InitApply`, `InitDone`: a (re)list, freshly cloned.
fn list_events<'a>(objects: impl Iterator<Item = &'a Obj>, len: usize) -> Vec<Ev> {
    let mut events = Vec::with_capacity(len + 2);
    events.push(Event::Init);
    events.extend(objects.map(|o| Event::InitApply(o.clone())));
    events.push(Event::InitDone);
    events
}

/// Lists `objects` into `feed` (untimed): each event cloned just before it is fed.
fn list_into<'a>(feed: &mut dyn Feed, objects: impl Iterator<Item = &'a Obj>) {
    drop(feed.handle(Event::Init));
    for o in objects {
        drop(feed.handle(Event::InitApply(o.clone())));
    }
    drop(feed.handle(Event::InitDone));
}

// ---------------------------------------------------------------------------------
// Criterion settings (those of `benches/store.rs`).

fn quick() -> bool {
    std::env::var("K8S_STORE_BENCH_QUICK").is_ok_and(|v| v == "1")
}

type Group<'c> = BenchmarkGroup<'c, WallTime>;

/// A group for operations of nanoseconds to microseconds.
fn fast_group<'c>(c: &'c mut Criterion, name: &str) -> Group<'c> {
    let mut g = c.benchmark_group(name);
    if quick() {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(400));
    } else {
        g.sample_size(60)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
    }
    g.throughput(Throughput::Elements(1));
    g
}

/// A group where some stores take milliseconds per operation.
fn slow_group<'c>(c: &'c mut Criterion, name: &str, events: u64) -> Group<'c> {
    let mut g = c.benchmark_group(name);
    if quick() {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_millis(600));
    } else {
        g.sample_size(30)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4));
    }
    g.throughput(Throughput::Elements(events));
    g
}

/// A group of a 100k sync, a quarter of a second or more per iteration (and as much
/// again in its untimed setup): flat sampling, one or a few iterations per sample.
fn sync_group<'c>(c: &'c mut Criterion, name: &str, events: u64) -> Group<'c> {
    let mut g = c.benchmark_group(name);
    g.sampling_mode(SamplingMode::Flat);
    if quick() {
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
    } else {
        g.sample_size(20)
            .warm_up_time(Duration::from_secs(2))
            .measurement_time(Duration::from_secs(10));
    }
    g.throughput(Throughput::Elements(events));
    g
}

// ---------------------------------------------------------------------------------
// The rows.

/// Feeds the first applies of `s`'s sequence one by one and reads each back: the store
/// must hold the new resourceVersion (nothing skipped as unchanged).
fn verify_applies(s: &mut Subject, base: &Base, applies: &Applies, count: usize) {
    let before = s.feed.len();
    for _ in 0..count {
        let event = applies.event(s.next);
        let key = applies.key(base, s.next);
        let old = s.feed.resource_version(key);
        drop(s.feed.handle(event.clone()));
        let now = s.feed.resource_version(key);
        assert_ne!(old, now, "{}: apply {} changed nothing", s.id, s.next);
        assert_eq!(now.as_deref(), rv_of(event), "{}: apply {}", s.id, s.next);
        s.next += 1;
    }
    assert_eq!(
        s.feed.len(),
        before,
        "{}: applies of existing objects",
        s.id
    );
}

fn bench_apply_one(g: &mut Group<'_>, s: &mut Subject, applies: &Applies) {
    let Subject { id, feed, next, .. } = s;
    g.bench_function(*id, |b| {
        b.iter_batched(
            || {
                let e = applies.event(*next).clone();
                *next += 1;
                e
            },
            |e| feed.handle(e),
            BatchSize::SmallInput,
        );
    });
}

fn bench_burst(g: &mut Group<'_>, s: &mut Subject, applies: &Applies) {
    let Subject { id, feed, next, .. } = s;
    g.bench_function(*id, |b| {
        b.iter_batched(
            || {
                let burst: Vec<Ev> = (*next..*next + BURST)
                    .map(|n| applies.event(n).clone())
                    .collect();
                *next += BURST;
                burst
            },
            |events| feed.burst(events),
            BatchSize::SmallInput,
        );
    });
}

fn bench_initial_sync(g: &mut Group<'_>, s: &Subject, base: &Base) {
    let make = s.make;
    g.bench_function(s.id, |b| {
        b.iter_batched(
            || (make(), list_events(base.objects.iter(), base.len())),
            |(mut feed, events)| {
                let left = feed.burst(events);
                (feed, left)
            },
            BatchSize::PerIteration,
        );
    });
}

fn bench_relist(g: &mut Group<'_>, s: &mut Subject, base: &Base, relists: &Relists) {
    let Subject { id, feed, .. } = s;
    let mut k = 0;
    g.bench_function(*id, |b| {
        b.iter_batched(
            || {
                let events = list_events(relists.objects(base, k), base.len());
                k += 1;
                events
            },
            |events| feed.burst(events),
            BatchSize::PerIteration,
        );
    });
}

/// Relist `k` into `s` (untimed) and check that it changed what it should.
fn verify_relist(s: &mut Subject, base: &Base, relists: &Relists, k: usize) {
    list_into(&mut *s.feed, relists.objects(base, k));
    assert_eq!(s.feed.len(), base.len(), "{}: after a relist", s.id);
    let i = relists.changed[0];
    assert_eq!(
        s.feed.resource_version(&base.keys[i]).as_deref(),
        relists.versions[0][k & 1]
            .metadata
            .resource_version
            .as_deref(),
        "{}: a changed object after a relist",
        s.id
    );
    let j = (0..base.len())
        .find(|j| relists.changed.binary_search(j).is_err())
        .expect("unchanged objects");
    assert_eq!(
        s.feed.resource_version(&base.keys[j]).as_deref(),
        base.objects[j].metadata.resource_version.as_deref(),
        "{}: an unchanged object after a relist",
        s.id
    );
}

/// `apply_one_1m`: each store built just before its measurement and dropped after.
fn run_apply_one_big(c: &mut Criterion, namespaces: usize, group: &str) {
    // Built on the first call of a benchmark of this group (not at all when a filter
    // leaves the group out).
    let mut data: Option<(Base, Applies)> = None;
    let mut g = fast_group(c, group);
    for (id, make) in stores() {
        let mut s: Option<Subject> = None;
        g.bench_function(id, |b| {
            let (base, applies) = data.get_or_insert_with(|| {
                let t = Instant::now();
                let base = Base::generate(namespaces, 43);
                let applies = Applies::new(&base, 5);
                println!(
                    "\n[{group}] {} objects generated in {:.1?}",
                    base.len(),
                    t.elapsed()
                );
                (base, applies)
            });
            let s = s.get_or_insert_with(|| {
                let t = Instant::now();
                let mut s = Subject::new((id, make));
                list_into(&mut *s.feed, base.objects.iter());
                assert_eq!(s.feed.len(), base.len());
                verify_applies(&mut s, base, applies, 64);
                println!("[{group}/{id}] store filled in {:.1?}", t.elapsed());
                s
            });
            let Subject { feed, next, .. } = s;
            b.iter_batched(
                || {
                    let e = applies.event(*next).clone();
                    *next += 1;
                    e
                },
                |e| feed.handle(e),
                BatchSize::SmallInput,
            );
        });
        if let Some(s) = &s {
            s.feed.check();
        }
        // Freeing a million objects takes seconds: off the measurements, but freed,
        // since the next store needs the memory.
        drop(s);
    }
    g.finish();
    drop(data);
}

// ---------------------------------------------------------------------------------
// Memory of a relist.

struct MemoryRow {
    id: &'static str,
    steady: isize,
    peak: isize,
    after: isize,
}

/// For a new store of each kind: the bytes live with the 100k stored, the peak during
/// a relist with 1% changed, and what is live after it.
fn relist_memory(base: &Base, relists: &Relists) -> Vec<MemoryRow> {
    let mut rows = Vec::new();
    for (id, make) in stores() {
        COUNTING.store(true, Ordering::Relaxed);
        let start = live();
        let mut feed = make();
        list_into(&mut *feed, base.objects.iter());
        let steady = live() - start;
        reset_peak();
        list_into(&mut *feed, relists.objects(base, 0));
        let peak = peak() - start;
        let after = live() - start;
        assert_eq!(feed.len(), base.len());
        drop(feed);
        COUNTING.store(false, Ordering::Relaxed);
        rows.push(MemoryRow {
            id,
            steady,
            peak,
            after,
        });
    }
    rows
}

fn mib(bytes: isize) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

// ---------------------------------------------------------------------------------

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let started = SystemTime::now();
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    // Criterion's own modes (`--list`, `--test`, `--profile-time`) skip the extra work.
    let measuring = bench
        && !args
            .iter()
            .any(|a| matches!(a.as_str(), "--list" | "--test" | "--profile-time"));
    // `cargo test --benches` runs every benchmark once, without `--bench`: a tenth.
    let scale = if bench { 1 } else { 10 };
    let namespaces = common::NAMESPACES / scale;
    let big_namespaces = 10 * common::NAMESPACES / scale;

    let t = Instant::now();
    let base = Base::generate(namespaces, 42);
    let applies = Applies::new(&base, 1);
    let relists = Relists::new(&base, 2);
    let mut subjects: Vec<Subject> = stores().into_iter().map(Subject::new).collect();
    for s in &mut subjects {
        list_into(&mut *s.feed, base.objects.iter());
        assert_eq!(s.feed.len(), base.len(), "{}: initial list", s.id);
        verify_applies(s, &base, &applies, 64);
    }
    let n = base.len();
    println!(
        "workload: {n} ConfigMaps as DynamicObjects in {namespaces} namespaces \
         ({} bytes of data each on average, {} bytes inline), {} pre-built applies; \
         the stores filled in {:.1?}{}",
        base.mean_data_bytes(),
        std::mem::size_of::<Obj>(),
        2 * SLOTS,
        t.elapsed(),
        if quick() { "; QUICK mode" } else { "" },
    );

    let group = format!("apply_one_{}", label(n));
    let mut g = fast_group(&mut c, &group);
    for s in &mut subjects {
        bench_apply_one(&mut g, s, &applies);
    }
    g.finish();

    run_apply_one_big(
        &mut c,
        big_namespaces,
        &format!("apply_one_{}", label(10 * n)),
    );

    let mut g = slow_group(&mut c, &format!("burst_{BURST}_{}", label(n)), BURST as u64);
    for s in &mut subjects {
        bench_burst(&mut g, s, &applies);
    }
    g.finish();

    let mut g = sync_group(&mut c, &format!("initial_sync_{}", label(n)), n as u64 + 2);
    for s in &subjects {
        bench_initial_sync(&mut g, s, &base);
    }
    g.finish();

    let mut g = sync_group(&mut c, &format!("relist_{}", label(n)), n as u64 + 2);
    for s in &mut subjects {
        // Back to the original objects, then one checked relist (k = 1); the measured
        // ones go on from k = 0, which changes the 1% again.
        list_into(&mut *s.feed, base.objects.iter());
        verify_relist(s, &base, &relists, 1);
        bench_relist(&mut g, s, &base, &relists);
    }
    g.finish();

    for s in &subjects {
        assert_eq!(s.feed.len(), n, "{}", s.id);
        s.feed.check();
    }
    c.final_summary();

    if measuring {
        // The criterion rows' stores are not needed any more; leave them to the OS.
        std::mem::forget(subjects);
        let memory = relist_memory(&base, &relists);
        summary::print(started, n, &memory);
    }

    // Freeing millions of allocations takes seconds and measures nothing.
    std::mem::forget((base, applies, relists));
}

/// `100k`, `1m`: the object count in the group names.
fn label(n: usize) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}m", n / 1_000_000)
    } else if n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}

mod summary {
    use super::*;
    use crate::common::criterion_results::{dir as criterion_dir, median_ns, time};

    pub(super) fn print(since: SystemTime, n: usize, memory: &[MemoryRow]) {
        let dir = criterion_dir();
        let get = |g: &str, id: &str| median_ns(&dir, since, g, id);
        let rows = [
            (format!("apply_one_{}", label(n)), "one Apply", 1),
            (format!("apply_one_{}", label(10 * n)), "one Apply", 1),
            (
                format!("burst_{BURST}_{}", label(n)),
                "1,000 Applies (ours, ours_batch: one batch)",
                BURST,
            ),
            (
                format!("initial_sync_{}", label(n)),
                "Init, InitApply × n, InitDone into an empty store",
                n + 2,
            ),
            (
                format!("relist_{}", label(n)),
                "the same over the n stored, 1% changed",
                n + 2,
            ),
        ];
        let ids: Vec<&str> = stores().iter().map(|(id, _)| *id).collect();
        let (reference, others) = ids.split_first().expect("stores");

        println!();
        println!("## Summary: medians of this run ({})", dir.display());
        println!();
        print!("| row | events |");
        for id in &ids {
            print!(" {id} |");
        }
        for id in others {
            print!(" {id} ÷ {reference} |");
        }
        println!();
        print!("|---|---|");
        for _ in 0..ids.len() + others.len() {
            print!("---:|");
        }
        println!();
        let mut any = false;
        for (group, what, events) in &rows {
            let medians: Vec<Option<f64>> = ids.iter().map(|id| get(group, id)).collect();
            if medians.iter().all(Option::is_none) {
                continue;
            }
            any = true;
            print!("| `{group}` | {what} |");
            for m in &medians {
                match m {
                    Some(ns) if *events > 1 => {
                        print!(" {} ({}/event) |", time(*ns), time(ns / *events as f64))
                    }
                    Some(ns) => print!(" {} |", time(*ns)),
                    None => print!(" – |"),
                }
            }
            for m in &medians[1..] {
                match (m, medians[0]) {
                    (Some(x), Some(r)) => print!(" {:.2}× |", x / r),
                    _ => print!(" – |"),
                }
            }
            println!();
        }
        if !any {
            println!("(no results from this run: filtered out, or criterion in test/list mode)");
        } else {
            println!();
            println!(
                "Ratios within this run are what count: the VM's memory latency drifts \
                 between runs."
            );
            let small = format!("apply_one_{}", label(n));
            let big = format!("apply_one_{}", label(10 * n));
            let growth: Vec<String> = ids
                .iter()
                .filter_map(|id| Some(format!("{id} {:.2}×", get(&big, id)? / get(&small, id)?)))
                .collect();
            if !growth.is_empty() {
                println!(
                    "One apply, {} ÷ {} objects: {}.",
                    label(10 * n),
                    label(n),
                    growth.join(", ")
                );
            }
        }

        println!();
        println!(
            "## Memory of a relist of {n} ({} changed), bytes requested from the allocator, \
             objects included",
            n / RELIST_CHANGED_ONE_IN
        );
        println!();
        println!(
            "| store | steady state | per object | peak during the relist | peak ÷ steady | \
             after the relist |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for r in memory {
            println!(
                "| {} | {} | {:.0} B | {} | {:.2} | {} |",
                r.id,
                mib(r.steady),
                r.steady as f64 / n as f64,
                mib(r.peak),
                r.peak as f64 / r.steady as f64,
                mib(r.after)
            );
        }
    }
}
