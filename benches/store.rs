//! Read and write costs of [`MemoryStore`] against the two stores it replaces, measured
//! side by side in one process on the same objects.
//!
//! Workload: 100,000 ConfigMaps of about 1 KB (see `common/mod.rs`) in 100 namespaces
//! of 1,000, stored under the composite key `[namespace, name]`.
//!
//! Stores, in every group:
//! - `go`: the original Go package's design (`baselines/go_store.rs`): one `RwLock`
//!   over `HashMap<String, Vec<Arc<K>>>` keyed by `/`-joined keys, a dirty-flag list
//!   cache, prefix gets by scanning every key.
//! - `kube`: kube-runtime 5's reflector `Store`, fed through its `Writer` with
//!   `apply_watcher_event(&Event::Apply(obj))` (which clones the object into its own
//!   `Arc`). Exact gets build the `ObjectRef` from the two key strings on every call, as
//!   a caller holding `(namespace, name)` must; `kube_prebuilt_ref` looks up `ObjectRef`s
//!   built before measuring, the cheapest way to use it. Prefix gets use
//!   `state_filter(namespace == ns)` (cheaper than `state()` and then filtering: it does
//!   not clone the non-matching 99%). `list()` is `state()`.
//! - `ours`: `k8s_store::MemoryStore::<ConfigMap>::new(2)`, filled by `replace` (a
//!   watch's initial list) and then updated by `update`. Its `list()` returns an O(1)
//!   `Snapshot`, while the baselines return a `Vec<Arc<K>>`; `ours_to_vec` also copies
//!   the snapshot into a `Vec`, to compare like with like.
//!
//! Cases (criterion group names):
//! - a. `get_exact_uniform`, `get_exact_hot1pct`: one thread, keys drawn uniformly from
//!   all 100k / from a fixed 1% of them, from index arrays generated before measuring.
//! - b. `get_exact_2_threads`: two threads at once, started together by a barrier; the
//!   time reported is the mean of the two threads' times, so the rate is per thread.
//! - `get_exact_bg_writer`: (a) while another thread updates the same store flat out
//!   (each store's writer runs at its own speed: see the noted rates);
//!   `get_exact_bg_writer_paced`: the same with the writer paced to 10,000 updates/s,
//!   the same write load for every store.
//! - c. `get_prefix_ns`: all 1,000 objects of one random namespace, in a 100k store and
//!   in a 10k store (10 namespaces), to show whether the cost grows with the store.
//!   `ours_*_same_ns` ask for the same namespace every time, a diagnostic that keeps
//!   its objects in the CPU caches. `get_prefix_ns_bg_writer`: 100k under a background
//!   writer.
//! - d. `list_unchanged`: `list()` on a store nothing writes to.
//! - e. `list_after_write`: one update and then `list()`, timed as a pair, so eager
//!   publication (ours) and cache rebuilds (go) are both counted.
//! - `list_bg_writer`: `list()` while another thread updates objects flat out.
//! - f. `write_alone`: updates of random objects (new `Arc`s with a new
//!   resourceVersion, built before measuring); `write_2_readers`: the same while one
//!   reader thread does exact gets and another does `list()`, both flat out.
//!
//! Background threads are started before a benchmark and stopped by a flag after it, as
//! in arc-swap's `benches/background.rs`; their achieved rates are printed with the
//! results, since a store that starves them would look faster than it is.
//!
//! After the criterion groups, exact gets are measured again in paired rounds
//! (`common/paired.rs`): criterion's rows of (a) and (b) are measured seconds to
//! minutes apart, while this machine's memory latency drifts by up to 2× within
//! minutes. Each round times one short batch of gets (2,000 uniform keys, 20,000 hot
//! ones; each case its own stretch of the same index arrays `fx.uniform` and `fx.hot`,
//! through the same `Reads` impls) of `ours_get_one`, `ours`, `kube`,
//! `kube_prebuilt_ref` and `floor_keyed` back to back, in an order that changes from
//! round to round; a ratio is taken within each round, and the tables give the medians
//! over the rounds (201, or 21 in quick mode), for uniform keys, hot 1% keys, and
//! uniform keys on two threads at once (per-thread times). They run whatever
//! criterion's filter (about 1 s in quick mode, 10-15 s in a full run); `-- paired`,
//! which matches no criterion group, runs them without any criterion group, and
//! `K8S_STORE_BENCH_PAIRED=0` skips them.
//!
//! Then single exact gets are timed one by one under the paced writer, for latency
//! percentiles (p50 .. max) that medians hide.
//!
//! At the end a markdown table of the medians of this run (read from criterion's
//! `estimates.json`, written by this process) and the ratios is printed, followed by
//! the paired rounds' table.
//!
//! `K8S_STORE_BENCH_QUICK=1` uses short measurements (a smoke run of a minute or two).
//!
//! [`MemoryStore`]: k8s_store::MemoryStore

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store::MemoryStore;
use kube_runtime::reflector::{self, ObjectRef, store::Writer};
use kube_runtime::watcher::Event;

#[allow(dead_code)] // shared with the memory benchmark, which uses other parts
mod common;
#[allow(dead_code)] // shared with the memory benchmark, which uses other parts
#[path = "baselines/go_store.rs"]
mod go_store;

use common::paired::{self, Rounds, Spread};
use common::{Workload, next_version};
use go_store::GoStore;

/// Index arrays are this long (a power of two): about ten draws per key of the 100k.
const INDICES: usize = 1 << 20;
/// Pre-built updates cycle through this many (a power of two) random objects.
const UPDATES: usize = 1 << 13;
/// The small store of case (c): the first ten namespaces.
const SMALL_NAMESPACES: usize = 10;

// ---------------------------------------------------------------------------------
// The stores under test, behind two small traits so every case is written once.

/// The read side of a store. Results are passed through `black_box` and dropped inside
/// the call, so their construction and destruction are both measured.
trait Reads: Sync {
    /// Exact get of workload object `i` by its `[namespace, name]`.
    fn get(&self, i: usize) -> usize;
    /// Every object of namespace `ns`.
    fn prefix(&self, ns: &str) -> usize;
    /// Every object.
    fn list(&self) -> usize;
}

/// The write side of a store: applies pre-built update `n` (cyclic).
trait Updates: Send {
    fn update(&mut self, n: usize);
}

struct Go<'a> {
    store: &'a GoStore<ConfigMap>,
    keys: &'a [[String; 2]],
}

impl Reads for Go<'_> {
    fn get(&self, i: usize) -> usize {
        black_box(self.store.get(&self.keys[i])).len()
    }
    fn prefix(&self, ns: &str) -> usize {
        black_box(self.store.get(&[ns])).len()
    }
    fn list(&self) -> usize {
        black_box(self.store.list()).len()
    }
}

struct Kube<'a> {
    store: &'a reflector::Store<ConfigMap>,
    keys: &'a [[String; 2]],
    /// `ObjectRef`s built before measuring; `None` builds one per get.
    refs: Option<&'a [ObjectRef<ConfigMap>]>,
}

impl Reads for Kube<'_> {
    fn get(&self, i: usize) -> usize {
        let found = match self.refs {
            Some(refs) => self.store.get(&refs[i]),
            None => {
                let [ns, name] = &self.keys[i];
                self.store.get(&ObjectRef::new(name).within(ns))
            }
        };
        usize::from(black_box(found).is_some())
    }
    fn prefix(&self, ns: &str) -> usize {
        black_box(
            self.store
                .state_filter(|o| o.metadata.namespace.as_deref() == Some(ns)),
        )
        .len()
    }
    fn list(&self) -> usize {
        black_box(self.store.state()).len()
    }
}

struct Ours<'a> {
    store: &'a MemoryStore<ConfigMap>,
    keys: &'a [[String; 2]],
    /// `list()` also copies the snapshot into a `Vec`, as the baselines return.
    list_to_vec: bool,
}

impl Reads for Ours<'_> {
    fn get(&self, i: usize) -> usize {
        black_box(self.store.get(&self.keys[i]).expect("two key components")).len()
    }
    fn prefix(&self, ns: &str) -> usize {
        black_box(self.store.get(&[ns]).expect("one key component")).len()
    }
    fn list(&self) -> usize {
        let snapshot = self.store.list();
        if self.list_to_vec {
            black_box(snapshot.to_vec()).len()
        } else {
            black_box(snapshot).len()
        }
    }
}

/// k8s-store read through `get_one` (no result vector): the call a caller makes for a
/// key that names one object, as kube-runtime's `get` does.
struct OursOne<'a>(Ours<'a>);

impl Reads for OursOne<'_> {
    fn get(&self, i: usize) -> usize {
        let one = self.0.store.get_one(&self.0.keys[i]).expect("a unique key");
        usize::from(black_box(one).is_some())
    }
    fn prefix(&self, ns: &str) -> usize {
        self.0.prefix(ns)
    }
    fn list(&self) -> usize {
        self.0.list()
    }
}

/// The floor: no index at all. Object `i` is read straight from the workload's array
/// (the same allocations the stores hold), its namespace and name are compared with
/// the caller's keys (a correct store must check the key it was given against a stored
/// one), and its `Arc` is cloned into the result, a `Vec` as `get` returns or an
/// `Option` as `get_one` and kube-runtime return. No store that returns `Arc<K>` for a
/// checked key can do less per get, so `kube / floor` bounds any store's speedup over
/// kube-runtime on the same keys.
struct Floor<'a> {
    objects: &'a [Arc<ConfigMap>],
    keys: &'a [[String; 2]],
    vec: bool,
}

impl Floor<'_> {
    fn checked(&self, i: usize) -> Option<&Arc<ConfigMap>> {
        let obj = &self.objects[i];
        let [ns, name] = &self.keys[i];
        let meta = &obj.metadata;
        (meta.namespace.as_deref() == Some(ns.as_str()) && meta.name.as_deref() == Some(name))
            .then_some(obj)
    }
}

impl Reads for Floor<'_> {
    fn get(&self, i: usize) -> usize {
        if self.vec {
            let found: Vec<Arc<ConfigMap>> = self.checked(i).into_iter().cloned().collect();
            black_box(found).len()
        } else {
            usize::from(black_box(self.checked(i).cloned()).is_some())
        }
    }
    fn prefix(&self, _: &str) -> usize {
        unreachable!("the floor is measured for exact gets only")
    }
    fn list(&self) -> usize {
        unreachable!("the floor is measured for exact gets only")
    }
}

/// The floor of a hashed index: one flat open-addressing table (a power of two at most
/// half full, linear probing) of `(hash, Arc)` slots, built once and never written, so
/// a get takes no lock: hash the caller's key (foldhash, as ours), probe, check the
/// key against the object's namespace and name, clone the `Arc`. Any store that finds
/// objects by hashing the key does at least this; it is not a usable store (no writes).
struct HashedFloor<'a> {
    slots: Vec<(u64, Option<Arc<ConfigMap>>)>,
    state: foldhash::fast::FixedState,
    keys: &'a [[String; 2]],
}

impl<'a> HashedFloor<'a> {
    fn build(objects: &[Arc<ConfigMap>], keys: &'a [[String; 2]]) -> Self {
        let state = foldhash::fast::FixedState::with_seed(7);
        let mut slots = vec![(0, None); (objects.len() * 2).next_power_of_two()];
        let mask = slots.len() - 1;
        for (obj, [ns, name]) in objects.iter().zip(keys) {
            let h = Self::hash(&state, ns, name);
            let mut at = h as usize & mask;
            while slots[at].1.is_some() {
                at = (at + 1) & mask;
            }
            slots[at] = (h, Some(Arc::clone(obj)));
        }
        Self { slots, state, keys }
    }

    fn hash(state: &foldhash::fast::FixedState, ns: &str, name: &str) -> u64 {
        use std::hash::{BuildHasher, Hasher};
        let mut h = state.build_hasher();
        h.write_usize(ns.len());
        h.write(ns.as_bytes());
        h.write_usize(name.len());
        h.write(name.as_bytes());
        h.finish()
    }
}

impl Reads for HashedFloor<'_> {
    fn get(&self, i: usize) -> usize {
        let [ns, name] = &self.keys[i];
        let h = Self::hash(&self.state, ns, name);
        let mask = self.slots.len() - 1;
        let mut at = h as usize & mask;
        let mut found = Vec::new();
        while let (sh, Some(obj)) = &self.slots[at] {
            let meta = &obj.metadata;
            if *sh == h
                && meta.namespace.as_deref() == Some(ns.as_str())
                && meta.name.as_deref() == Some(name.as_str())
            {
                found.push(Arc::clone(obj));
                break;
            }
            at = (at + 1) & mask;
        }
        black_box(found).len()
    }
    fn prefix(&self, _: &str) -> usize {
        unreachable!("the floor is measured for exact gets only")
    }
    fn list(&self) -> usize {
        unreachable!("the floor is measured for exact gets only")
    }
}

/// Updated versions of random objects, built before measuring. Each of the `UPDATES`
/// slots holds two successive versions, and update `n` applies slot `n % UPDATES` in
/// version `(n / UPDATES) % 2`, so an update (nearly) always changes the stored
/// object's resourceVersion: a store that skipped unchanged versions gains nothing.
struct UpdateSet {
    /// `keys[slot]`: the `[namespace, name]` of the slot's object.
    keys: Vec<[String; 2]>,
    objects: Vec<[Arc<ConfigMap>; 2]>,
    /// The same objects as kube-runtime's `Writer` takes them.
    events: Vec<[Event<ConfigMap>; 2]>,
}

impl UpdateSet {
    fn new(wl: &Workload, seed: u64) -> Self {
        let picks = common::uniform_indices(wl.objects.len(), UPDATES, seed);
        let objects: Vec<[Arc<ConfigMap>; 2]> = picks
            .iter()
            .map(|&i| {
                let a = next_version(&wl.objects[i as usize]);
                let b = next_version(&a);
                [Arc::new(a), Arc::new(b)]
            })
            .collect();
        Self {
            keys: picks.iter().map(|&i| wl.keys[i as usize].clone()).collect(),
            events: objects
                .iter()
                .map(|v| v.each_ref().map(|o| Event::Apply(ConfigMap::clone(o))))
                .collect(),
            objects,
        }
    }

    /// The slot and version of update `n`.
    fn pick(n: usize) -> (usize, usize) {
        (n & (UPDATES - 1), (n / UPDATES) & 1)
    }
}

struct GoWrites<'a> {
    store: &'a GoStore<ConfigMap>,
    set: &'a UpdateSet,
}

impl Updates for GoWrites<'_> {
    fn update(&mut self, n: usize) {
        let (slot, v) = UpdateSet::pick(n);
        self.store
            .update(Arc::clone(&self.set.objects[slot][v]), &self.set.keys[slot]);
    }
}

struct KubeWrites<'a> {
    writer: &'a mut Writer<ConfigMap>,
    set: &'a UpdateSet,
}

impl Updates for KubeWrites<'_> {
    fn update(&mut self, n: usize) {
        let (slot, v) = UpdateSet::pick(n);
        self.writer.apply_watcher_event(&self.set.events[slot][v]);
    }
}

struct OursWrites<'a> {
    store: &'a MemoryStore<ConfigMap>,
    set: &'a UpdateSet,
}

impl Updates for OursWrites<'_> {
    fn update(&mut self, n: usize) {
        let (slot, v) = UpdateSet::pick(n);
        self.store
            .update(Arc::clone(&self.set.objects[slot][v]), &self.set.keys[slot])
            .expect("two key components");
    }
}

/// The three stores, filled with the same objects.
struct Stores {
    go: GoStore<ConfigMap>,
    kube: reflector::Store<ConfigMap>,
    kube_writer: Writer<ConfigMap>,
    ours: MemoryStore<ConfigMap>,
}

impl Stores {
    fn fill(objects: &[Arc<ConfigMap>], keys: &[[String; 2]]) -> Self {
        let go = GoStore::new(2);
        let (kube, mut kube_writer) = reflector::store::<ConfigMap>();
        let ours = MemoryStore::<ConfigMap>::new(2).expect("two keys");
        for (obj, k) in objects.iter().zip(keys) {
            go.add(Arc::clone(obj), k);
            kube_writer.apply_watcher_event(&Event::Apply(ConfigMap::clone(obj)));
        }
        ours.replace(
            objects
                .iter()
                .zip(keys)
                .map(|(o, k)| (Arc::clone(o), k.to_vec())),
        )
        .expect("two keys");
        assert_eq!(go.len(), objects.len());
        assert_eq!(kube.len(), objects.len());
        assert_eq!(ours.len(), objects.len());
        Self {
            go,
            kube,
            kube_writer,
            ours,
        }
    }
}

// ---------------------------------------------------------------------------------
// Measurement helpers.

fn quick() -> bool {
    std::env::var("K8S_STORE_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// A group for operations of nanoseconds to microseconds.
fn fast_group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
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

/// A group where some stores take milliseconds per operation (full scans, sorts).
fn slow_group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
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
    g.throughput(Throughput::Elements(1));
    g
}

/// Rates of background threads, per `group/id`, for the summary.
type Notes = Mutex<BTreeMap<String, String>>;

fn note(notes: &Notes, group: &str, id: &str, text: String) {
    println!("    [{group}/{id}] {text}");
    notes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(format!("{group}/{id}"), text);
}

/// Keeps the writer's share of time on a CPU in `write_2_readers` for the summary
/// (not printed).
fn keep_share(notes: &Notes, id: &str, split: Option<[f64; 3]>) {
    if let Some([on_cpu, ..]) = split {
        notes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(format!("cpu_share/{id}"), on_cpu.to_string());
    }
}

/// Runs `f` while another thread applies updates flat out, or at about `pace`
/// updates per second; returns the writer's achieved rate.
fn with_background_writer<U: Updates, T>(
    mut w: U,
    pace: Option<f64>,
    f: impl FnOnce() -> T,
) -> (T, f64) {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let writer = s.spawn(|| {
            let start = Instant::now();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if let Some(pace) = pace {
                    // Sleep until update `n` is due; sleeps are coarse, so updates come
                    // in small bursts at the requested average rate.
                    let due = start + Duration::from_secs_f64(n as f64 / pace);
                    let now = Instant::now();
                    if due > now {
                        thread::sleep(due - now);
                        continue;
                    }
                }
                w.update(n);
                n += 1;
            }
            n as f64 / start.elapsed().as_secs_f64()
        });
        let out = f();
        stop.store(true, Ordering::Relaxed);
        (out, writer.join().expect("background writer panicked"))
    })
}

/// Where the calling thread's time went while it ran `f`, as shares of the wall time:
/// on a CPU, runnable but waiting for one (all cores busy), and blocked (asleep: on a
/// lock, or parked). Read from Linux's `/proc/thread-self/schedstat`; `None` elsewhere.
fn time_split(f: impl FnOnce()) -> Option<[f64; 3]> {
    fn schedstat() -> Option<(f64, f64)> {
        let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
        let mut it = s.split_whitespace().map(|v| v.parse::<f64>().ok());
        Some((it.next()??, it.next()??))
    }
    let (before, wall) = (schedstat(), Instant::now());
    f();
    let (after, wall) = (schedstat()?, wall.elapsed().as_nanos() as f64);
    let before = before?;
    let (cpu, waiting) = ((after.0 - before.0) / wall, (after.1 - before.1) / wall);
    Some([cpu, waiting, (1.0 - cpu - waiting).max(0.0)])
}

/// Runs `f` while one thread does exact gets and another `list()`, both flat out;
/// returns their rates (gets/s, lists/s) and where the time of `f`'s thread (the
/// measured writer) went meanwhile (see [`time_split`]).
fn with_background_readers<R: Reads>(
    r: &R,
    idx: &[u32],
    f: impl FnOnce(),
) -> (f64, f64, Option<[f64; 3]>) {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let getter = s.spawn(|| {
            let start = Instant::now();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    r.get(idx[n & (INDICES - 1)] as usize);
                    n += 1;
                }
            }
            n as f64 / start.elapsed().as_secs_f64()
        });
        let lister = s.spawn(|| {
            let start = Instant::now();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                r.list();
                n += 1;
            }
            n as f64 / start.elapsed().as_secs_f64()
        });
        let share = time_split(f);
        stop.store(true, Ordering::Relaxed);
        (
            getter.join().expect("reader panicked"),
            lister.join().expect("reader panicked"),
            share,
        )
    })
}

fn bench_get<R: Reads>(g: &mut Group<'_>, id: &str, r: &R, idx: &[u32]) {
    g.bench_function(id, |b| {
        let mut n = 0usize;
        b.iter(|| {
            let i = idx[n & (INDICES - 1)] as usize;
            n = n.wrapping_add(1);
            r.get(i)
        });
    });
}

/// Two threads doing exact gets at once; the time is the mean of their times, so the
/// reported rate is per thread.
fn bench_get_2_threads<R: Reads>(g: &mut Group<'_>, id: &str, r: &R, idx: &[u32]) {
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let barrier = Barrier::new(2);
            let total: Duration = thread::scope(|s| {
                let threads: Vec<_> = (0..2)
                    .map(|t| {
                        let barrier = &barrier;
                        s.spawn(move || {
                            // The threads start at different places of the index array.
                            let offset = t * (INDICES / 2);
                            barrier.wait();
                            let start = Instant::now();
                            for k in 0..iters as usize {
                                r.get(idx[(offset + k) & (INDICES - 1)] as usize);
                            }
                            start.elapsed()
                        })
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|t| t.join().expect("reader panicked"))
                    .sum()
            });
            total / 2
        });
    });
}

fn bench_prefix<R: Reads>(
    g: &mut Group<'_>,
    id: &str,
    r: &R,
    namespaces: &[String],
    order: &[u32],
) {
    g.bench_function(id, |b| {
        let mut n = 0usize;
        b.iter(|| {
            let ns = &namespaces[order[n % order.len()] as usize % namespaces.len()];
            n = n.wrapping_add(1);
            r.prefix(ns)
        });
    });
}

fn bench_list<R: Reads>(g: &mut Group<'_>, id: &str, r: &R) {
    g.bench_function(id, |b| b.iter(|| r.list()));
}

fn bench_write_then_list<R: Reads, U: Updates>(g: &mut Group<'_>, id: &str, r: &R, w: &mut U) {
    g.bench_function(id, |b| {
        let mut n = 0usize;
        b.iter(|| {
            w.update(n);
            n = n.wrapping_add(1);
            r.list()
        });
    });
}

fn bench_write<U: Updates>(g: &mut Group<'_>, id: &str, w: &mut U) {
    g.bench_function(id, |b| {
        let mut n = 0usize;
        b.iter(|| {
            w.update(n);
            n = n.wrapping_add(1);
        });
    });
}

// ---------------------------------------------------------------------------------
// The cases.

struct Fixture {
    wl: Workload,
    uniform: Vec<u32>,
    hot: Vec<u32>,
    ns_order: Vec<u32>,
    refs: Vec<ObjectRef<ConfigMap>>,
    updates: UpdateSet,
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let started = SystemTime::now();

    let t = Instant::now();
    let wl = Workload::generate(common::NAMESPACES, 42);
    let small_n = SMALL_NAMESPACES * common::PER_NAMESPACE;
    let fx = Fixture {
        uniform: common::uniform_indices(wl.objects.len(), INDICES, 1),
        hot: common::hot_indices(wl.objects.len(), wl.objects.len() / 100, INDICES, 2),
        ns_order: common::uniform_indices(wl.namespaces.len(), 4096, 3),
        refs: wl
            .keys
            .iter()
            .map(|[ns, name]| ObjectRef::new(name).within(ns))
            .collect(),
        updates: UpdateSet::new(&wl, 4),
        wl,
    };
    let mut big = Stores::fill(&fx.wl.objects, &fx.wl.keys);
    let small = Stores::fill(&fx.wl.objects[..small_n], &fx.wl.keys[..small_n]);
    println!(
        "workload: {} ConfigMaps in {} namespaces, {} bytes of data each on average; \
         stores filled in {:.1?}; {} CPUs available{}",
        fx.wl.objects.len(),
        fx.wl.namespaces.len(),
        fx.wl.mean_data_bytes(),
        t.elapsed(),
        thread::available_parallelism().map_or(1, usize::from),
        if quick() { "; QUICK mode" } else { "" },
    );

    let hashed = HashedFloor::build(&fx.wl.objects, &fx.wl.keys);
    let keyed = KeyedFloor::build(&fx.wl.objects, &fx.wl.keys);
    let notes = Notes::default();
    run_gets(&mut c, &fx, &mut big, &hashed, &keyed, &notes);
    run_prefix(&mut c, &fx, &mut big, &small, &notes);
    run_lists(&mut c, &fx, &mut big, &notes);
    run_writes(&mut c, &fx, &mut big, &notes);
    c.final_summary();

    // Criterion's own modes (`--list`, `--test`, `--profile-time`) skip the extra work.
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| matches!(a.as_str(), "--list" | "--test" | "--profile-time"));
    if measuring {
        let paired = if std::env::var("K8S_STORE_BENCH_PAIRED").is_ok_and(|v| v == "0") {
            Vec::new()
        } else {
            paired_gets(&fx, &big, &keyed)
        };
        let tails = tail_latencies(&fx, &mut big);
        summary::print(started, &notes, &tails);
        summary::print_paired(&paired);
    }

    // Freeing millions of allocations takes seconds and measures nothing: leave it to the OS.
    std::mem::forget((hashed, keyed));
    std::mem::forget((fx, big, small));
}

type Group<'c> = BenchmarkGroup<'c, WallTime>;

/// The paced background writer's rate: a busy watch during a relist delivers
/// thousands of events per second, and every store here keeps up with this many.
const PACE: f64 = 10_000.0;

fn go<'a>(store: &'a GoStore<ConfigMap>, fx: &'a Fixture) -> Go<'a> {
    Go {
        store,
        keys: &fx.wl.keys,
    }
}

fn kube<'a>(store: &'a reflector::Store<ConfigMap>, fx: &'a Fixture, prebuilt: bool) -> Kube<'a> {
    Kube {
        store,
        keys: &fx.wl.keys,
        refs: prebuilt.then_some(&fx.refs[..]),
    }
}

/// The floor of the design the exact index is built on (`k8s_store::index::exact`):
/// one flat open-addressing table of tagged pointers (16 bits of the hash in the top
/// bits) to entries holding the key's bytes inline beside the object's pointer,
/// linear probing at the fill ours has at 100k objects (13/16 at most; 100k in 2^17
/// slots), built once and never written. A get hashes the caller's key (foldhash, as
/// ours), probes, checks the key against the entry's bytes (never the object), and
/// clones the `Arc` into an `Option`. It is ours without the store: no published state
/// to load, no version stamps, no tombstones.
struct KeyedFloor<'a> {
    slots: Vec<usize>,
    /// Owns the entries the slots point to (each its own allocation, as ours are).
    #[allow(dead_code, clippy::vec_box)]
    entries: Vec<Box<KeyedEntry>>,
    state: foldhash::fast::FixedState,
    keys: &'a [[String; 2]],
}

/// An entry of the [`KeyedFloor`]: the object and its key's bytes, namespace then
/// name, with their lengths.
struct KeyedEntry {
    obj: Arc<ConfigMap>,
    ns_len: u8,
    len: u8,
    key: [u8; 46],
}

impl<'a> KeyedFloor<'a> {
    fn build(objects: &[Arc<ConfigMap>], keys: &'a [[String; 2]]) -> Self {
        let state = foldhash::fast::FixedState::with_seed(7);
        let n = (objects.len() * 16).div_ceil(13).next_power_of_two();
        let mut slots = vec![0usize; n];
        let mut entries = Vec::with_capacity(objects.len());
        for (obj, [ns, name]) in objects.iter().zip(keys) {
            let h = HashedFloor::hash(&state, ns, name);
            let mut key = [0u8; 46];
            let len = ns.len() + name.len();
            assert!(
                len <= key.len(),
                "a bench key longer than the floor's entry"
            );
            key[..ns.len()].copy_from_slice(ns.as_bytes());
            key[ns.len()..len].copy_from_slice(name.as_bytes());
            let e = Box::new(KeyedEntry {
                obj: Arc::clone(obj),
                ns_len: ns.len() as u8,
                len: len as u8,
                key,
            });
            let p = &*e as *const KeyedEntry as usize;
            assert_eq!(p >> 48, 0, "the floor tags pointers in their top 16 bits");
            let mut at = h as usize & (n - 1);
            while slots[at] != 0 {
                at = (at + 1) & (n - 1);
            }
            slots[at] = p | (((h >> 48) as usize | 1) << 48);
            entries.push(e);
        }
        Self {
            slots,
            entries,
            state,
            keys,
        }
    }
}

impl Reads for KeyedFloor<'_> {
    fn get(&self, i: usize) -> usize {
        let [ns, name] = &self.keys[i];
        let h = HashedFloor::hash(&self.state, ns, name);
        let tag = (h >> 48) as usize | 1;
        let mask = self.slots.len() - 1;
        let mut at = h as usize & mask;
        let mut found = None;
        loop {
            let p = self.slots[at];
            if p == 0 {
                break;
            }
            if p >> 48 == tag {
                // SAFETY: every tagged slot points to a live entry of `self.entries`.
                let e = unsafe { &*((p & ((1 << 48) - 1)) as *const KeyedEntry) };
                let (ns_len, len) = (usize::from(e.ns_len), usize::from(e.len));
                if ns_len == ns.len()
                    && len == ns.len() + name.len()
                    && &e.key[..ns_len] == ns.as_bytes()
                    && &e.key[ns_len..len] == name.as_bytes()
                {
                    found = Some(Arc::clone(&e.obj));
                    break;
                }
            }
            at = (at + 1) & mask;
        }
        usize::from(black_box(found).is_some())
    }
    fn prefix(&self, _: &str) -> usize {
        unreachable!("the floor is measured for exact gets only")
    }
    fn list(&self) -> usize {
        unreachable!("the floor is measured for exact gets only")
    }
}

fn floor(fx: &Fixture, vec: bool) -> Floor<'_> {
    Floor {
        objects: &fx.wl.objects,
        keys: &fx.wl.keys,
        vec,
    }
}

fn ours<'a>(store: &'a MemoryStore<ConfigMap>, fx: &'a Fixture, list_to_vec: bool) -> Ours<'a> {
    Ours {
        store,
        keys: &fx.wl.keys,
        list_to_vec,
    }
}

fn go_writes<'a>(store: &'a GoStore<ConfigMap>, fx: &'a Fixture) -> GoWrites<'a> {
    GoWrites {
        store,
        set: &fx.updates,
    }
}

fn kube_writes<'a>(writer: &'a mut Writer<ConfigMap>, fx: &'a Fixture) -> KubeWrites<'a> {
    KubeWrites {
        writer,
        set: &fx.updates,
    }
}

fn ours_writes<'a>(store: &'a MemoryStore<ConfigMap>, fx: &'a Fixture) -> OursWrites<'a> {
    OursWrites {
        store,
        set: &fx.updates,
    }
}

/// Runs the benchmark `run` as `group/id` while `w` updates the same store in the
/// background, and notes the writer's achieved rate.
fn under_writer<U: Updates>(
    g: &mut Group<'_>,
    notes: &Notes,
    group: &str,
    id: &str,
    w: U,
    pace: Option<f64>,
    run: impl FnOnce(&mut Group<'_>, &str),
) {
    let ((), rate) = with_background_writer(w, pace, || run(g, id));
    note(
        notes,
        group,
        id,
        format!("writer: {}", per_sec(rate, "updates")),
    );
}

fn run_gets(
    c: &mut Criterion,
    fx: &Fixture,
    s: &mut Stores,
    hashed: &HashedFloor<'_>,
    keyed: &KeyedFloor<'_>,
    notes: &Notes,
) {
    for (group, idx) in [
        ("get_exact_uniform", &fx.uniform),
        ("get_exact_hot1pct", &fx.hot),
    ] {
        let mut g = fast_group(c, group);
        bench_get(&mut g, "go", &go(&s.go, fx), idx);
        bench_get(&mut g, "kube", &kube(&s.kube, fx, false), idx);
        bench_get(&mut g, "kube_prebuilt_ref", &kube(&s.kube, fx, true), idx);
        bench_get(&mut g, "ours", &ours(&s.ours, fx, false), idx);
        bench_get(
            &mut g,
            "ours_get_one",
            &OursOne(ours(&s.ours, fx, false)),
            idx,
        );
        bench_get(&mut g, "floor_vec", &floor(fx, true), idx);
        bench_get(&mut g, "floor_option", &floor(fx, false), idx);
        bench_get(&mut g, "floor_hashed", hashed, idx);
        bench_get(&mut g, "floor_keyed", keyed, idx);
        g.finish();
    }

    let idx = &fx.uniform;
    let mut g = fast_group(c, "get_exact_2_threads");
    bench_get_2_threads(&mut g, "go", &go(&s.go, fx), idx);
    bench_get_2_threads(&mut g, "kube", &kube(&s.kube, fx, false), idx);
    bench_get_2_threads(&mut g, "kube_prebuilt_ref", &kube(&s.kube, fx, true), idx);
    bench_get_2_threads(&mut g, "ours", &ours(&s.ours, fx, false), idx);
    bench_get_2_threads(
        &mut g,
        "ours_get_one",
        &OursOne(ours(&s.ours, fx, false)),
        idx,
    );
    bench_get_2_threads(&mut g, "floor_vec", &floor(fx, true), idx);
    bench_get_2_threads(&mut g, "floor_option", &floor(fx, false), idx);
    bench_get_2_threads(&mut g, "floor_hashed", hashed, idx);
    bench_get_2_threads(&mut g, "floor_keyed", keyed, idx);
    g.finish();

    for (group, pace) in [
        ("get_exact_bg_writer", None),
        ("get_exact_bg_writer_paced", Some(PACE)),
    ] {
        let mut g = fast_group(c, group);
        under_writer(
            &mut g,
            notes,
            group,
            "go",
            go_writes(&s.go, fx),
            pace,
            |g, id| bench_get(g, id, &go(&s.go, fx), idx),
        );
        for (id, prebuilt) in [("kube", false), ("kube_prebuilt_ref", true)] {
            let w = kube_writes(&mut s.kube_writer, fx);
            under_writer(&mut g, notes, group, id, w, pace, |g, id| {
                bench_get(g, id, &kube(&s.kube, fx, prebuilt), idx)
            });
        }
        let w = ours_writes(&s.ours, fx);
        under_writer(&mut g, notes, group, "ours", w, pace, |g, id| {
            bench_get(g, id, &ours(&s.ours, fx, false), idx)
        });
        g.finish();
    }
}

fn run_prefix(c: &mut Criterion, fx: &Fixture, big: &mut Stores, small: &Stores, notes: &Notes) {
    let all = &fx.wl.namespaces[..];
    let ten = &fx.wl.namespaces[..SMALL_NAMESPACES];
    let order = &fx.ns_order[..];
    let mut g = slow_group(c, "get_prefix_ns");
    bench_prefix(&mut g, "go_100k", &go(&big.go, fx), all, order);
    bench_prefix(&mut g, "kube_100k", &kube(&big.kube, fx, false), all, order);
    bench_prefix(&mut g, "ours_100k", &ours(&big.ours, fx, false), all, order);
    bench_prefix(&mut g, "go_10k", &go(&small.go, fx), ten, order);
    bench_prefix(
        &mut g,
        "kube_10k",
        &kube(&small.kube, fx, false),
        ten,
        order,
    );
    bench_prefix(
        &mut g,
        "ours_10k",
        &ours(&small.ours, fx, false),
        ten,
        order,
    );
    // A diagnostic: always the same namespace, so its objects stay in the CPU caches.
    // The difference to the rows above is the cost of cache misses on the 1,000
    // objects' reference counts, which any store returning `Arc`s pays.
    bench_prefix(
        &mut g,
        "ours_100k_same_ns",
        &ours(&big.ours, fx, false),
        all,
        &[7],
    );
    bench_prefix(
        &mut g,
        "ours_10k_same_ns",
        &ours(&small.ours, fx, false),
        ten,
        &[7],
    );
    g.finish();

    let group = "get_prefix_ns_bg_writer";
    let mut g = slow_group(c, group);
    under_writer(
        &mut g,
        notes,
        group,
        "go",
        go_writes(&big.go, fx),
        None,
        |g, id| bench_prefix(g, id, &go(&big.go, fx), all, order),
    );
    let w = kube_writes(&mut big.kube_writer, fx);
    under_writer(&mut g, notes, group, "kube", w, None, |g, id| {
        bench_prefix(g, id, &kube(&big.kube, fx, false), all, order)
    });
    let w = ours_writes(&big.ours, fx);
    under_writer(&mut g, notes, group, "ours", w, None, |g, id| {
        bench_prefix(g, id, &ours(&big.ours, fx, false), all, order)
    });
    g.finish();
}

fn run_lists(c: &mut Criterion, fx: &Fixture, s: &mut Stores, notes: &Notes) {
    let mut g = slow_group(c, "list_unchanged");
    // The Go store's cache is dirty after the writes of earlier cases; the warm-up's
    // first list rebuilds it, and every measured list is of a clean store.
    bench_list(&mut g, "go", &go(&s.go, fx));
    bench_list(&mut g, "kube", &kube(&s.kube, fx, false));
    bench_list(&mut g, "ours", &ours(&s.ours, fx, false));
    bench_list(&mut g, "ours_to_vec", &ours(&s.ours, fx, true));
    g.finish();

    let mut g = slow_group(c, "list_after_write");
    bench_write_then_list(&mut g, "go", &go(&s.go, fx), &mut go_writes(&s.go, fx));
    let r = kube(&s.kube, fx, false);
    bench_write_then_list(&mut g, "kube", &r, &mut kube_writes(&mut s.kube_writer, fx));
    for (id, to_vec) in [("ours", false), ("ours_to_vec", true)] {
        let r = ours(&s.ours, fx, to_vec);
        bench_write_then_list(&mut g, id, &r, &mut ours_writes(&s.ours, fx));
    }
    g.finish();

    let group = "list_bg_writer";
    let mut g = slow_group(c, group);
    under_writer(
        &mut g,
        notes,
        group,
        "go",
        go_writes(&s.go, fx),
        None,
        |g, id| bench_list(g, id, &go(&s.go, fx)),
    );
    let w = kube_writes(&mut s.kube_writer, fx);
    under_writer(&mut g, notes, group, "kube", w, None, |g, id| {
        bench_list(g, id, &kube(&s.kube, fx, false))
    });
    for (id, to_vec) in [("ours", false), ("ours_to_vec", true)] {
        let w = ours_writes(&s.ours, fx);
        under_writer(&mut g, notes, group, id, w, None, |g, id| {
            bench_list(g, id, &ours(&s.ours, fx, to_vec))
        });
    }
    g.finish();
}

fn run_writes(c: &mut Criterion, fx: &Fixture, s: &mut Stores, notes: &Notes) {
    let mut g = fast_group(c, "write_alone");
    bench_write(&mut g, "go", &mut go_writes(&s.go, fx));
    bench_write(&mut g, "kube", &mut kube_writes(&mut s.kube_writer, fx));
    bench_write(&mut g, "ours", &mut ours_writes(&s.ours, fx));
    g.finish();

    let group = "write_2_readers";
    let mut g = fast_group(c, group);
    let readers_note = |(gets, lists, split): (f64, f64, Option<[f64; 3]>)| {
        format!(
            "readers: {} and {}; the writer's time: {}",
            per_sec(gets, "exact gets"),
            per_sec(lists, "lists"),
            split.map_or("not known".into(), |[c, w, b]| format!(
                "{:.0}% on a CPU, {:.0}% waiting for one, {:.0}% blocked",
                c * 100.0,
                w * 100.0,
                b * 100.0
            )),
        )
    };
    let rates = with_background_readers(&go(&s.go, fx), &fx.uniform, || {
        bench_write(&mut g, "go", &mut go_writes(&s.go, fx))
    });
    keep_share(notes, "go", rates.2);
    note(notes, group, "go", readers_note(rates));
    let rates = with_background_readers(&kube(&s.kube, fx, false), &fx.uniform, || {
        bench_write(&mut g, "kube", &mut kube_writes(&mut s.kube_writer, fx))
    });
    keep_share(notes, "kube", rates.2);
    note(notes, group, "kube", readers_note(rates));
    let rates = with_background_readers(&ours(&s.ours, fx, false), &fx.uniform, || {
        bench_write(&mut g, "ours", &mut ours_writes(&s.ours, fx))
    });
    keep_share(notes, "ours", rates.2);
    note(notes, group, "ours", readers_note(rates));
    g.finish();
}

// ---------------------------------------------------------------------------------
// Paired rounds of exact gets.

/// The cases of the paired rounds, in this order (indices into `Rounds::ns`).
const PAIRED: [&str; 6] = [
    "ours_get_one",
    "ours",
    "kube",
    "kube_prebuilt_ref",
    "floor_keyed",
    "floor_guarded",
];
const GET_ONE: usize = 0;
const GET: usize = 1;
const KUBE: usize = 2;
const KUBE_PREBUILT: usize = 3;
const FLOOR_KEYED: usize = 4;
const FLOOR_GUARDED: usize = 5;

/// [`KeyedFloor`] behind the one step a store that is written while it is read cannot
/// skip: each get loads the table through an `arc_swap::ArcSwap` guard (as ours loads
/// its published state) and drops the guard after. The floor of any such store that
/// publishes with arc-swap and frees what a write replaces as soon as no reader holds
/// it; the same entries as `floor_keyed`, so the two differ only by the guard.
struct GuardedFloor<'a> {
    published: arc_swap::ArcSwap<&'a KeyedFloor<'a>>,
}

impl Reads for GuardedFloor<'_> {
    fn get(&self, i: usize) -> usize {
        self.published.load().get(i)
    }
    fn prefix(&self, _: &str) -> usize {
        unreachable!("the floor is measured for exact gets only")
    }
    fn list(&self) -> usize {
        unreachable!("the floor is measured for exact gets only")
    }
}

/// One form of the paired rounds (keys, threads) and its rounds.
struct PairedForm {
    title: &'static str,
    /// Gets per case per round (per thread).
    batch: usize,
    rounds: Rounds,
}

/// A case of the paired rounds: times a batch of `n` gets of `idx` from `start`.
type Batch<'a> = &'a (dyn Fn(&[u32], usize, usize) -> f64 + Sync);

/// Exact gets of [`PAIRED`]'s cases in paired rounds (see the module's documentation),
/// through the same `Reads` impls and index arrays as criterion's groups (a) and (b).
fn paired_gets(fx: &Fixture, s: &Stores, keyed: &KeyedFloor<'_>) -> Vec<PairedForm> {
    fn timer<R: Reads>(r: &R) -> impl Fn(&[u32], usize, usize) -> f64 + Sync + '_ {
        move |idx, start, n| paired::batch(idx, start, n, |i| r.get(i))
    }
    let (one, get) = (OursOne(ours(&s.ours, fx, false)), ours(&s.ours, fx, false));
    let (kube_built, kube_prebuilt) = (kube(&s.kube, fx, false), kube(&s.kube, fx, true));
    let guarded = GuardedFloor {
        published: arc_swap::ArcSwap::from_pointee(keyed),
    };
    let (one, get, kube_built, kube_prebuilt, keyed, guarded) = (
        timer(&one),
        timer(&get),
        timer(&kube_built),
        timer(&kube_prebuilt),
        timer(keyed),
        timer(&guarded),
    );
    let cases: [Batch<'_>; PAIRED.len()] =
        [&one, &get, &kube_built, &kube_prebuilt, &keyed, &guarded];
    let rounds = if quick() { 21 } else { 201 };

    let t = Instant::now();
    let mut out = Vec::new();
    for (title, idx, n) in [
        ("uniform keys, 1 thread", &fx.uniform, 2_000),
        ("hot 1% of keys, 1 thread", &fx.hot, 20_000),
    ] {
        let r = Rounds::run(cases.len(), rounds, |c, round| {
            cases[c](idx, paired::start(cases.len(), c, round, n), n)
        });
        out.push(PairedForm {
            title,
            batch: n,
            rounds: r,
        });
    }
    // Two threads, each over its own half of the index array (as in group (b)).
    let (idx, n) = (&fx.uniform, 2_000);
    let r = Rounds::run_threads(2, cases.len(), rounds, |thread, c, round| {
        let start = thread * (INDICES / 2) + paired::start(cases.len(), c, round, n);
        cases[c](idx, start, n)
    });
    out.push(PairedForm {
        title: "uniform keys, 2 threads (per thread)",
        batch: n,
        rounds: r,
    });
    println!(
        "paired rounds of exact gets: {rounds} rounds of {} cases in {} forms, {:.1?}",
        cases.len(),
        out.len(),
        t.elapsed()
    );
    out
}

/// Latency percentiles of single exact gets while a paced writer updates the same
/// store: the medians above hide how long a reader can be stuck behind a writer.
/// Not criterion: each get is timed on its own (the clock read adds a few tens of
/// nanoseconds to every sample, the same for every store).
fn tail_latencies(fx: &Fixture, s: &mut Stores) -> Vec<(&'static str, [f64; 4])> {
    let n = if quick() { 50_000 } else { 500_000 };
    fn measure<R: Reads>(r: &R, idx: &[u32], n: usize) -> [f64; 4] {
        let mut ns: Vec<u64> = Vec::with_capacity(n);
        for k in 0..n {
            let i = idx[k & (INDICES - 1)] as usize;
            let start = Instant::now();
            black_box(r.get(i));
            ns.push(start.elapsed().as_nanos() as u64);
        }
        ns.sort_unstable();
        let at = |q: f64| ns[((n as f64 * q) as usize).min(n - 1)] as f64;
        [at(0.5), at(0.99), at(0.999), ns[n - 1] as f64]
    }
    let idx = &fx.uniform;
    let mut out = Vec::new();
    let (v, _) = with_background_writer(go_writes(&s.go, fx), Some(PACE), || {
        measure(&go(&s.go, fx), idx, n)
    });
    out.push(("go", v));
    for (id, prebuilt) in [("kube", false), ("kube_prebuilt_ref", true)] {
        let (v, _) =
            with_background_writer(kube_writes(&mut s.kube_writer, fx), Some(PACE), || {
                measure(&kube(&s.kube, fx, prebuilt), idx, n)
            });
        out.push((id, v));
    }
    let (v, _) = with_background_writer(ours_writes(&s.ours, fx), Some(PACE), || {
        measure(&ours(&s.ours, fx, false), idx, n)
    });
    out.push(("ours", v));
    out
}

fn per_sec(rate: f64, what: &str) -> String {
    format!("{} {what}/s", si(rate))
}

fn si(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} G", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} k", x / 1e3)
    } else {
        format!("{x:.1}")
    }
}

// ---------------------------------------------------------------------------------
// The summary table.

mod summary {
    use super::*;
    use crate::common::criterion_results::{dir as criterion_dir, median_ns, time};

    const STORE_NAMES: &[(&str, &str)] = &[
        ("go", "Go-shaped baseline"),
        ("kube", "kube-runtime"),
        ("kube_prebuilt_ref", "kube-runtime, prebuilt ObjectRef"),
        ("ours", "k8s-store"),
        ("ours_to_vec", "k8s-store + to_vec()"),
        ("ours_get_one", "k8s-store, get_one (no Vec)"),
        ("floor_vec", "floor: no index, key checked, Arc in a Vec"),
        (
            "floor_option",
            "floor: no index, key checked, Arc in an Option",
        ),
        (
            "floor_hashed",
            "floor of a hashed index: one lock-free probe, Arc in a Vec",
        ),
        (
            "floor_keyed",
            "floor of ours: one lock-free probe, key bytes in the entry, Arc in an Option",
        ),
        (
            "floor_guarded",
            "floor_keyed behind an arc-swap guard, as a store written while read loads its state",
        ),
        ("go_100k", "Go-shaped baseline, 100k"),
        ("kube_100k", "kube-runtime, 100k"),
        ("ours_100k", "k8s-store, 100k"),
        ("go_10k", "Go-shaped baseline, 10k"),
        ("kube_10k", "kube-runtime, 10k"),
        ("ours_10k", "k8s-store, 10k"),
        (
            "ours_100k_same_ns",
            "k8s-store, 100k, same namespace every time",
        ),
        (
            "ours_10k_same_ns",
            "k8s-store, 10k, same namespace every time",
        ),
    ];

    fn store_name(id: &str) -> &str {
        STORE_NAMES
            .iter()
            .find(|(k, _)| *k == id)
            .map_or(id, |(_, v)| v)
    }

    /// The stores and floors of the one-thread exact-get cases.
    const GET_IDS: &[&str] = &[
        "go",
        "kube",
        "kube_prebuilt_ref",
        "ours",
        "ours_get_one",
        "floor_vec",
        "floor_option",
        "floor_hashed",
        "floor_keyed",
    ];

    /// (group, title, ids, the id the others are compared with)
    const CASES: &[(&str, &str, &[&str], &str)] = &[
        (
            "get_exact_uniform",
            "a. exact get, 1 thread, uniform keys",
            GET_IDS,
            "ours",
        ),
        (
            "get_exact_hot1pct",
            "a. exact get, 1 thread, hot 1% of keys",
            GET_IDS,
            "ours",
        ),
        (
            "get_exact_2_threads",
            "b. exact get, 2 threads (per thread)",
            &[
                "go",
                "kube",
                "kube_prebuilt_ref",
                "ours",
                "ours_get_one",
                "floor_vec",
                "floor_option",
                "floor_hashed",
                "floor_keyed",
            ],
            "ours",
        ),
        (
            "get_exact_bg_writer",
            "exact get, 1 thread + background writer (flat out)",
            &["go", "kube", "kube_prebuilt_ref", "ours"],
            "ours",
        ),
        (
            "get_exact_bg_writer_paced",
            "exact get, 1 thread + background writer (10k updates/s)",
            &["go", "kube", "kube_prebuilt_ref", "ours"],
            "ours",
        ),
        (
            "get_prefix_ns",
            "c. prefix get of one namespace (1,000 objects)",
            &[
                "go_100k",
                "kube_100k",
                "ours_100k",
                "go_10k",
                "kube_10k",
                "ours_10k",
                "ours_100k_same_ns",
                "ours_10k_same_ns",
            ],
            "ours_100k",
        ),
        (
            "get_prefix_ns_bg_writer",
            "prefix get, 100k + background writer (flat out)",
            &["go", "kube", "ours"],
            "ours",
        ),
        (
            "list_unchanged",
            "d. list(), unchanged 100k store",
            &["go", "kube", "ours", "ours_to_vec"],
            "ours",
        ),
        (
            "list_after_write",
            "e. one update + list(), 100k",
            &["go", "kube", "ours", "ours_to_vec"],
            "ours",
        ),
        (
            "list_bg_writer",
            "list(), 100k + background writer (flat out)",
            &["go", "kube", "ours", "ours_to_vec"],
            "ours",
        ),
        (
            "write_alone",
            "f. update, writer alone",
            &["go", "kube", "ours"],
            "ours",
        ),
        (
            "write_2_readers",
            "f. update, with 2 readers (gets, lists)",
            &["go", "kube", "ours"],
            "ours",
        ),
    ];

    pub(super) fn print(since: SystemTime, notes: &Notes, tails: &[(&str, [f64; 4])]) {
        let dir = criterion_dir();
        let get = |g: &str, id: &str| median_ns(&dir, since, g, id);
        let notes = notes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        println!();
        println!("## Summary: medians of this run ({})", dir.display());
        println!();
        println!(
            "`speedup` = that store's median time / the reference row's (marked ←): how many \
             times faster the reference is."
        );
        println!();
        println!("| case | store | median / op | ops/s | speedup of ← | background |");
        println!("|---|---|---:|---:|---:|---|");
        let mut any = false;
        for (group, title, ids, reference) in CASES {
            let base = get(group, reference);
            for id in *ids {
                let Some(ns) = get(group, id) else { continue };
                any = true;
                let ratio = match base {
                    Some(_) if id == reference => "←".to_string(),
                    Some(b) => format!("{:.1}×", ns / b),
                    None => "–".to_string(),
                };
                let bg = notes
                    .get(&format!("{group}/{id}"))
                    .map_or("", String::as_str);
                println!(
                    "| {title} | {} | {} | {} | {ratio} | {bg} |",
                    store_name(id),
                    time(ns),
                    si(1e9 / ns)
                );
            }
        }
        if !any {
            println!("(no results from this run: filtered out, or criterion in test/list mode)");
            return;
        }

        if !tails.is_empty() {
            println!();
            println!(
                "### Single exact gets while a writer updates the store at {PACE} updates/s \
                 (each get timed alone)"
            );
            println!();
            println!("| store | p50 | p99 | p99.9 | max |");
            println!("|---|---:|---:|---:|---:|");
            for (id, [p50, p99, p999, max]) in tails {
                println!(
                    "| {} | {} | {} | {} | {} |",
                    store_name(id),
                    time(*p50),
                    time(*p99),
                    time(*p999),
                    time(*max)
                );
            }
        }

        println!();
        println!("### Writer throughput with two readers / alone");
        println!();
        println!(
            "| store | alone | with 2 readers | with / alone | writer's time on a CPU \
             with readers | with / alone, per second on a CPU |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for id in ["go", "kube", "ours"] {
            if let (Some(a), Some(r)) = (get("write_alone", id), get("write_2_readers", id)) {
                let share = notes
                    .get(&format!("cpu_share/{id}"))
                    .and_then(|s| s.parse::<f64>().ok());
                println!(
                    "| {} | {} | {} | {:.2} | {} | {} |",
                    store_name(id),
                    per_sec(1e9 / a, "updates"),
                    per_sec(1e9 / r, "updates"),
                    a / r,
                    share.map_or("?".into(), |s| format!("{s:.2}")),
                    share.map_or("?".into(), |s| format!("{:.2}", a / r / s)),
                );
            }
        }

        println!();
        println!("### Against the issue's targets (this run)");
        println!();
        let ratio = |g: &str, a: &str, b: &str| Some(get(g, a)? / get(g, b)?);
        let check = |what: &str,
                     value: Option<f64>,
                     fmt: &dyn Fn(f64) -> String,
                     ok: &dyn Fn(f64) -> bool| {
            match value {
                Some(v) => println!(
                    "- {what}: {} — {}",
                    fmt(v),
                    if ok(v) { "met" } else { "NOT met" }
                ),
                None => println!("- {what}: not measured in this run"),
            }
        };
        let times = |v: f64| format!("{v:.1}×");
        for (g, label) in [
            ("get_exact_uniform", "uniform, 1 thread"),
            ("get_exact_hot1pct", "hot 1%, 1 thread"),
            ("get_exact_2_threads", "uniform, 2 threads"),
        ] {
            check(
                &format!("exact get ≥ 3× kube-runtime's rate ({label}, ObjectRef built per call)"),
                ratio(g, "kube", "ours"),
                &times,
                &|v| v >= 3.0,
            );
            check(
                &format!("exact get ≥ 3× kube-runtime's rate ({label}, prebuilt ObjectRef)"),
                ratio(g, "kube_prebuilt_ref", "ours"),
                &times,
                &|v| v >= 3.0,
            );
            // The most any store returning `Arc<K>` could gain over kube-runtime here:
            // kube-runtime's time over the floor's (no index at all), and over a hashed
            // index's floor (one lock-free probe of a table nothing writes to).
            if let (Some(v), Some(o)) = (
                ratio(g, "kube", "floor_vec"),
                ratio(g, "kube", "floor_option"),
            ) {
                println!(
                    "  - bound ({label}): kube-runtime / floor = {v:.1}× for a `Vec` result, \
                     {o:.1}× for an `Option`; {}",
                    if v < 3.0 {
                        "3× is out of reach of any store returning a Vec<Arc<K>> on these keys"
                    } else {
                        "3× is not ruled out by the floor"
                    }
                );
            }
            if let Some(h) = ratio(g, "kube", "floor_hashed") {
                println!(
                    "  - bound ({label}): kube-runtime / floor of a hashed index = {h:.2}×; {}",
                    if h < 3.0 {
                        "3× is out of reach of any store that finds objects by hashing the \
                         caller's key"
                    } else {
                        "3× is not ruled out by it"
                    }
                );
            }
            if g != "get_exact_2_threads" {
                check(
                    &format!(
                        "get_one (no Vec, not the issue's `get`) ≥ 3× kube-runtime's rate \
                         ({label}, ObjectRef built per call)"
                    ),
                    ratio(g, "kube", "ours_get_one"),
                    &times,
                    &|v| v >= 3.0,
                );
            }
        }
        for base in ["go_100k", "kube_100k"] {
            check(
                &format!("prefix get ≥ 30× faster than {}", store_name(base)),
                ratio("get_prefix_ns", base, "ours_100k"),
                &times,
                &|v| v >= 30.0,
            );
        }
        check(
            "prefix get flat from 10k to 100k (ours 100k / ours 10k, random namespace, ≤ 1.5 \
             taken as flat)",
            ratio("get_prefix_ns", "ours_100k", "ours_10k"),
            &|v| format!("{v:.2}"),
            &|v| v <= 1.5,
        );
        check(
            "prefix get flat from 10k to 100k (same namespace every time: no cache misses)",
            ratio("get_prefix_ns", "ours_100k_same_ns", "ours_10k_same_ns"),
            &|v| format!("{v:.2}"),
            &|v| v <= 1.5,
        );
        check(
            "list() on an unchanged store < 1 µs",
            get("list_unchanged", "ours"),
            &time,
            &|v| v < 1_000.0,
        );
        check(
            "update + list() ≥ 100× cheaper than the Go-shaped baseline",
            ratio("list_after_write", "go", "ours"),
            &times,
            &|v| v >= 100.0,
        );
        check(
            "writer with 2 readers ≥ half its rate alone (with / alone)",
            (|| Some(get("write_alone", "ours")? / get("write_2_readers", "ours")?))(),
            &|v| format!("{v:.2}"),
            &|v| v >= 0.5,
        );
        let cpus = thread::available_parallelism().map_or(1, usize::from);
        if cpus < 3 {
            println!(
                "\nNote: {cpus} CPUs. `write_2_readers` runs three busy threads and the \
                 background-writer cases two, so on this machine they share cores and \
                 measure scheduling as much as the stores."
            );
        }
    }

    /// The paired rounds' table (see `paired_gets`), with the targets.
    pub(super) fn print_paired(forms: &[PairedForm]) {
        if forms.is_empty() {
            return;
        }
        println!();
        println!(
            "### Paired rounds of exact gets: the cases in alternation, ratios within each round"
        );
        println!();
        println!(
            "Each round times one batch of gets of every case back to back (each case its own \
             keys from the same index array as criterion's group), in an order that changes \
             from round to round. Times: the median over the rounds of each case's ns per get \
             (quartiles in brackets). Ratios: the median over the rounds of the ratio within \
             each round (quartiles; min–max). Memory latency drifts between criterion's rows, \
             measured seconds to minutes apart; it does not within a round of milliseconds."
        );
        println!();
        println!(
            "Cases: ours_get_one = {}; ours = {}; kube = {}; kube_prebuilt_ref = {}; \
             floor_keyed = {}; floor_guarded = {}.",
            store_name(PAIRED[GET_ONE]),
            store_name(PAIRED[GET]),
            store_name(PAIRED[KUBE]),
            store_name(PAIRED[KUBE_PREBUILT]),
            store_name(PAIRED[FLOOR_KEYED]),
            store_name(PAIRED[FLOOR_GUARDED]),
        );
        println!();
        print!("| form | rounds × gets |");
        for id in PAIRED {
            print!(" {id}, ns/get |");
        }
        println!();
        println!("|---|---:|{}", "---:|".repeat(PAIRED.len()));
        for f in forms {
            print!("| {} | {} × {} |", f.title, f.rounds.rounds(), f.batch);
            for c in 0..PAIRED.len() {
                let t = f.rounds.time(c);
                print!(" {:.0} ({:.0}–{:.0}) |", t.median, t.q1, t.q3);
            }
            println!();
        }

        // (a, b, what, target)
        /// At least (`true`) or at most (`false`) this value.
        type Target = Option<(bool, f64)>;
        let ratios: [(usize, usize, &str, Target); 9] = [
            (
                KUBE,
                GET_ONE,
                "kube / ours_get_one (get_one ≥ 1.5× kube, ObjectRef per call)",
                Some((true, 1.5)),
            ),
            (
                KUBE_PREBUILT,
                GET_ONE,
                "kube_prebuilt_ref / ours_get_one (get_one ≥ 1.5× kube, prebuilt ObjectRef)",
                Some((true, 1.5)),
            ),
            (
                KUBE,
                GET,
                "kube / ours (get ≥ 1.3× kube)",
                Some((true, 1.3)),
            ),
            (
                GET_ONE,
                FLOOR_KEYED,
                "ours_get_one / floor_keyed (get_one within 1.25× of the design's floor)",
                Some((false, 1.25)),
            ),
            (
                GET,
                FLOOR_KEYED,
                "ours / floor_keyed (get, informational)",
                None,
            ),
            (
                FLOOR_GUARDED,
                FLOOR_KEYED,
                "floor_guarded / floor_keyed (what the state's guard costs the floor)",
                None,
            ),
            (
                GET_ONE,
                FLOOR_GUARDED,
                "ours_get_one / floor_guarded (get_one against the floor with the guard)",
                None,
            ),
            (
                KUBE_PREBUILT,
                FLOOR_KEYED,
                "kube_prebuilt_ref / floor_keyed (the most any store gains there)",
                None,
            ),
            (
                KUBE_PREBUILT,
                FLOOR_GUARDED,
                "kube_prebuilt_ref / floor_guarded (the most any guarded store gains there)",
                None,
            ),
        ];
        println!();
        println!("| form | ratio | median | quartiles | min–max | target | |");
        println!("|---|---|---:|---:|---:|---:|---|");
        let mut missed = 0;
        for f in forms {
            for (a, b, what, target) in ratios {
                let Spread {
                    median,
                    q1,
                    q3,
                    min,
                    max,
                } = f.rounds.ratio(a, b);
                let (target, verdict) = match target {
                    Some((at_least, v)) => {
                        let met = if at_least { median >= v } else { median <= v };
                        missed += usize::from(!met);
                        (
                            format!("{} {v:.2}", if at_least { "≥" } else { "≤" }),
                            if met { "met" } else { "NOT met" },
                        )
                    }
                    None => ("–".to_string(), ""),
                };
                println!(
                    "| {} | {what} | {median:.3} | {q1:.2}–{q3:.2} | {min:.2}–{max:.2} | \
                     {target} | {verdict} |",
                    f.title
                );
            }
        }
        println!();
        println!(
            "Paired targets: {} of {} met (on the medians of per-round ratios).",
            forms.len() * 4 - missed,
            forms.len() * 4
        );
    }
}
