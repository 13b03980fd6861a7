//! The on-demand tier ([`CachedStore`]) against the full tier ([`MemoryStore`]) and
//! against moka, on the real code path: the `CachedStore` fetches through a real
//! `kube::Client` over HTTP from the in-process API server (`k8s_store_sim`), and
//! every timed read is a cache hit on bodies fetched that way.
//!
//! # 1 and 2: hit path (criterion)
//!
//! 10,000 Secrets of about 4 KB of data (a TLS pair of random bytes) in 100 namespaces
//! are created in the sim. The stores, all holding every object:
//! - `memory`: `MemoryStore<Secret>` (num_keys 2), filled with the objects the sim
//!   returned on creation; `MemoryStore::get(&[ns, name])`.
//! - `cached_get`: `CachedStore<Secret>` (num_keys 2, `max_entries` 20,000, a TTL of a
//!   day so nothing expires during the run) with every reference added and every body
//!   fetched once over HTTP (by `list()`); `CachedStore::get(&[ns, name])`: index
//!   lookup, then the cache.
//! - `cached_fetch`: the same store, `CachedStore::fetch(ns, name)`: the cache and the
//!   singleflight check, no index.
//! - `cached_references`: a diagnostic, `CachedStore::references(&[ns, name])`: the
//!   index part of `cached_get` alone (the references, no body), to split its cost.
//! - `moka_get_with`: `moka::future::Cache<(String, String), Arc<Secret>>` with the same
//!   capacity (20,000), filled with copies of the objects `memory` holds (each store
//!   has bodies of its own);
//!   `cache.get_with((ns.clone(), name.clone()), loader)`: the owned key its API takes,
//!   built per lookup from the same `[ns, name]` strings the other stores borrow.
//! - `moka_get_with_by_ref`: `cache.get_with_by_ref(&key, loader)` with the key tuples
//!   built before measuring: moka's cheapest hit (no allocation).
//!
//! The loader is an `async fn` that panics: a miss would mean the warm-up failed.
//!
//! **How futures are driven.** `CachedStore::get`/`fetch` and moka's `get_with*` are
//! `async`. Each timed call creates its future, polls it **once** with
//! `std::task::Waker::noop()` and drops it, which is what any executor does with a
//! future that is ready on its first poll. Ours must be ready (a hit does not await):
//! the bench panics otherwise. Moka's futures are polled the same way; if one is not
//! ready it is finished with `block_on` on the tokio runtime and counted (the count is
//! printed; 0 means every moka hit completed on its first poll as well). No runtime
//! context is entered on the measuring thread, for any of them.
//!
//! Keys are indices into the 10,000 objects, generated before measuring (the same
//! arrays for every store): `cached_hit_uniform` draws uniformly; `cached_hit_hot1pct`
//! draws from a fixed 1% (100 objects).
//!
//! # 3: hit ratio on a Zipf trace (a measurement, run once)
//!
//! 100,000 Secrets of about 200 B in the sim, every reference in a `CachedStore` with
//! `max_entries(5000)`; a trace of 300,000 accesses drawn from Zipf(n = 100,000,
//! s = 0.9) (`rand_distr::Zipf`, fixed seed; ranks mapped to objects by a fixed random
//! permutation) is replayed through `CachedStore::get` one access at a time on the
//! tokio runtime: misses are real GETs to the sim. The hit ratio is
//! hits / (hits + misses) from `stats()`, cross-checked against the sim's GET counter.
//! On the same trace: an exact LRU of the same capacity (simulated here), and moka
//! (TinyLFU admission, `future::Cache<u32, ()>` with `max_capacity` 5,000; get, and
//! insert on a miss, with moka's default housekeeping).
//!
//! # Modes
//!
//! `cargo bench --bench cached` runs everything at full size.
//! `K8S_STORE_BENCH_QUICK=1` shortens the criterion measurements and the Zipf part
//! (20,000 objects, 30,000 accesses, capacity 1,000). `cargo test --benches` (criterion's
//! test mode, an unoptimised build) runs every case once on 1,000 Secrets and a Zipf
//! part of 5,000 objects, 8,000 accesses, capacity 250: a smoke test.
//!
//! At the end a markdown table of this run's medians (criterion's `estimates.json`,
//! written by this process) and ratios is printed, with the targets.
//!
//! [`CachedStore`]: k8s_store::CachedStore
//! [`MemoryStore`]: k8s_store::MemoryStore

use std::future::Future;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use k8s_openapi::api::core::v1::Secret;
use k8s_store::{CachedStore, MemoryStore};
use k8s_store_sim::{ApiServer, Verb};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Zipf};
use tokio::runtime::Runtime;

#[allow(dead_code)] // shared with the other benchmarks, which use other parts
mod common;

/// Index arrays are this long (a power of two).
const INDICES: usize = 1 << 20;
/// Namespaces of the hit workload.
const NAMESPACES: usize = 100;
/// A TTL no run reaches: the hit benchmarks must never see an expired entry.
const NO_EXPIRY: Duration = Duration::from_secs(24 * 3600);

type MokaCache = moka::future::Cache<(String, String), Arc<Secret>>;

// ---------------------------------------------------------------------------------
// Modes and sizes.

fn quick() -> bool {
    std::env::var("K8S_STORE_BENCH_QUICK").is_ok_and(|v| v == "1")
}

/// How the process was started.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `cargo bench` (with or without QUICK).
    Bench,
    /// Criterion's test mode (`cargo test --benches`, or `-- --test`).
    Test,
    /// `--list` or `--profile-time`: criterion's own modes; the Zipf part does not run.
    Other,
}

fn mode() -> Mode {
    let args: Vec<String> = std::env::args().collect();
    if args
        .iter()
        .any(|a| matches!(a.as_str(), "--list" | "--profile-time"))
    {
        Mode::Other
    } else if args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test") {
        Mode::Bench
    } else {
        Mode::Test
    }
}

struct Sizes {
    /// Secrets per namespace of the hit workload.
    per_namespace: usize,
    zipf_objects: usize,
    zipf_accesses: usize,
    zipf_capacity: usize,
}

impl Sizes {
    fn for_mode(mode: Mode) -> Self {
        match (mode, quick()) {
            (Mode::Test, _) => Self {
                per_namespace: 10,
                zipf_objects: 5_000,
                zipf_accesses: 8_000,
                zipf_capacity: 250,
            },
            (_, false) => Self {
                per_namespace: 100,
                zipf_objects: 100_000,
                zipf_accesses: 300_000,
                zipf_capacity: 5_000,
            },
            (_, true) => Self {
                per_namespace: 100,
                zipf_objects: 20_000,
                zipf_accesses: 30_000,
                zipf_capacity: 1_000,
            },
        }
    }
}

// ---------------------------------------------------------------------------------
// Objects.

fn data_bytes(s: &Secret) -> usize {
    s.data
        .as_ref()
        .map_or(0, |d| d.iter().map(|(k, v)| k.len() + v.0.len()).sum())
}

/// Creates `n` Secrets in the sim (namespace `team-{i % NAMESPACES}`), returning them as
/// the sim stored them (uid and resourceVersion set) with their keys.
fn seed(
    server: &ApiServer,
    n: usize,
    crt: usize,
    key: usize,
    seed: u64,
) -> (Vec<Arc<Secret>>, Vec<[String; 2]>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut objects = Vec::with_capacity(n);
    let mut keys = Vec::with_capacity(n);
    for i in 0..n {
        let ns = format!("team-{:03}", i % NAMESPACES);
        let name = format!("tls-{i:06}");
        let created = server
            .create(&common::tls_secret(&ns, &name, crt, key, &mut rng))
            .expect("sim create");
        objects.push(Arc::new(created));
        keys.push([ns, name]);
    }
    (objects, keys)
}

// ---------------------------------------------------------------------------------
// Driving futures.

/// Polls `fut` once with a no-op waker (what an executor does first), then drops it.
fn poll_once<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = std::pin::pin!(fut);
    fut.as_mut().poll(&mut Context::from_waker(Waker::noop()))
}

/// Polls `fut` once; if it is not ready, counts that and finishes it on `rt`.
fn poll_or_block<F: Future>(rt: &Runtime, pending: &AtomicU64, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => {
            pending.fetch_add(1, Ordering::Relaxed);
            rt.block_on(fut)
        }
    }
}

/// moka's loader: never run on a warmed cache.
async fn never_called() -> Arc<Secret> {
    panic!("moka missed a warmed key: the loader ran")
}

// ---------------------------------------------------------------------------------
// 1 and 2: the hit path.

struct HitFixture {
    /// Kept alive: the cached store's client talks to it (only during the warm-up).
    _server: ApiServer,
    keys: Vec<[String; 2]>,
    /// The same keys as moka's owned tuples, for `get_with_by_ref`.
    tuples: Vec<(String, String)>,
    memory: MemoryStore<Secret>,
    cached: CachedStore<Secret>,
    moka: MokaCache,
    uniform: Vec<u32>,
    hot: Vec<u32>,
    /// Moka futures that were not ready on their first poll.
    moka_pending: AtomicU64,
}

fn hit_fixture(rt: &Runtime, sizes: &Sizes) -> HitFixture {
    let t = Instant::now();
    let n = NAMESPACES * sizes.per_namespace;
    let capacity = 2 * n;
    let server = rt.block_on(ApiServer::start()).expect("sim start");
    let (objects, keys) = seed(&server, n, 2_900, 1_100, 11);

    let memory = MemoryStore::<Secret>::new(2).expect("two keys");
    for (obj, k) in objects.iter().zip(&keys) {
        memory.add(Arc::clone(obj), k).expect("add");
    }

    let cached = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .max_entries(capacity)
        .ttl(NO_EXPIRY)
        .build()
        .expect("cached store");
    for (obj, k) in objects.iter().zip(&keys) {
        cached.add(&**obj, k).expect("add reference");
    }
    let gets_before = server.counters().requests(Verb::Get, "secrets");
    let listed = rt
        .block_on(cached.list())
        .expect("warm-up: fetch every body");
    assert_eq!(listed.len(), n);
    drop(listed);
    let stats = cached.stats();
    let gets = server.counters().requests(Verb::Get, "secrets") - gets_before;
    assert_eq!(
        (stats.fetches, stats.entries, gets),
        (n as u64, n as u64, n as u64),
        "warm-up: one GET per object, every body resident"
    );

    let moka = MokaCache::new(capacity as u64);
    let tuples: Vec<(String, String)> = keys
        .iter()
        .map(|[ns, name]| (ns.clone(), name.clone()))
        .collect();
    rt.block_on(async {
        for (obj, t) in objects.iter().zip(&tuples) {
            // Its own copy of each body, as the CachedStore has its own (fetched): no
            // two stores share an allocation, so none warms the CPU caches for another
            // in the paired rounds.
            moka.insert(t.clone(), Arc::new((**obj).clone())).await;
        }
        moka.run_pending_tasks().await;
    });
    assert_eq!(moka.entry_count(), n as u64, "moka holds every object");

    let fx = HitFixture {
        _server: server,
        uniform: common::uniform_indices(n, INDICES, 1),
        hot: common::hot_indices(n, n / 100, INDICES, 2),
        keys,
        tuples,
        memory,
        cached,
        moka,
        moka_pending: AtomicU64::new(0),
    };
    // Every key is a hit on the first poll in every store, before anything is timed.
    for (i, k) in fx.keys.iter().enumerate() {
        let Poll::Ready(got) = poll_once(fx.cached.get(k)) else {
            panic!("CachedStore::get missed {k:?} after the warm-up");
        };
        let Poll::Ready(Ok(Some(fetched))) = poll_once(fx.cached.fetch(&k[0], &k[1])) else {
            panic!("CachedStore::fetch missed {k:?} after the warm-up");
        };
        assert!(Arc::ptr_eq(&got.expect("get")[0], &fetched));
        let v = poll_or_block(
            rt,
            &fx.moka_pending,
            fx.moka.get_with_by_ref(&fx.tuples[i], never_called()),
        );
        assert_eq!(
            v.metadata.uid,
            fx.memory.get(k).expect("get")[0].metadata.uid
        );
    }
    assert_eq!(
        fx.cached.stats().misses,
        stats.misses,
        "no miss after the warm-up"
    );
    println!(
        "hit workload: {n} Secrets of {} data bytes in {NAMESPACES} namespaces ({} bytes \
         of JSON each on the wire, {} bytes in the cache); capacity {capacity} for the \
         CachedStore and moka; set up in {:.1?} (warm-up: {gets} GETs over HTTP)",
        data_bytes(&objects[0]),
        stats.bytes / n as u64,
        stats.bytes,
        t.elapsed(),
    );
    fx
}

type Group<'c> = BenchmarkGroup<'c, WallTime>;

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

/// Times `op(i)` for the indices of `idx` in turn; `op` returns a size that is passed
/// through `black_box`, and whatever it built is dropped inside the timed call.
fn bench(g: &mut Group<'_>, id: &str, idx: &[u32], op: impl Fn(usize) -> usize) {
    g.bench_function(id, |b| {
        let mut n = 0usize;
        b.iter(|| {
            let i = idx[n & (INDICES - 1)] as usize;
            n = n.wrapping_add(1);
            black_box(op(i))
        });
    });
}

fn run_hits(c: &mut Criterion, rt: &Runtime, fx: &HitFixture) -> Vec<Paired> {
    let memory = |i: usize| black_box(fx.memory.get(&fx.keys[i]).expect("two keys")).len();
    let cached_get = |i: usize| match poll_once(fx.cached.get(&fx.keys[i])) {
        Poll::Ready(r) => black_box(r.expect("get")).len(),
        Poll::Pending => panic!("CachedStore::get was not a hit: the warm-up failed"),
    };
    let moka_get_with = |i: usize| {
        let [ns, name] = &fx.keys[i];
        let fut = fx.moka.get_with((ns.clone(), name.clone()), never_called());
        usize::from(
            black_box(poll_or_block(rt, &fx.moka_pending, fut))
                .data
                .is_some(),
        )
    };
    let moka_get_with_by_ref = |i: usize| {
        let fut = fx.moka.get_with_by_ref(&fx.tuples[i], never_called());
        usize::from(
            black_box(poll_or_block(rt, &fx.moka_pending, fut))
                .data
                .is_some(),
        )
    };
    let mut paired = Vec::new();
    for (group, idx) in [
        ("cached_hit_uniform", &fx.uniform),
        ("cached_hit_hot1pct", &fx.hot),
    ] {
        let mut g = fast_group(c, group);
        bench(&mut g, "memory", idx, memory);
        bench(&mut g, "cached_get", idx, cached_get);
        // The same reads through `get_one` (no result vector), on both tiers.
        bench(&mut g, "memory_get_one", idx, |i| {
            usize::from(black_box(fx.memory.get_one(&fx.keys[i]).expect("unique")).is_some())
        });
        bench(&mut g, "cached_get_one", idx, |i| {
            match poll_once(fx.cached.get_one(&fx.keys[i])) {
                Poll::Ready(r) => usize::from(black_box(r.expect("get_one")).is_some()),
                Poll::Pending => panic!("CachedStore::get_one was not a hit: the warm-up failed"),
            }
        });
        // A diagnostic: the index part of `cached_get` alone (references, no body).
        bench(&mut g, "cached_references", idx, |i| {
            black_box(fx.cached.references(&fx.keys[i]).expect("two keys")).len()
        });
        bench(&mut g, "cached_fetch", idx, |i| {
            let [ns, name] = &fx.keys[i];
            match poll_once(fx.cached.fetch(ns, name)) {
                Poll::Ready(r) => usize::from(black_box(r.expect("fetch")).is_some()),
                Poll::Pending => panic!("CachedStore::fetch was not a hit: the warm-up failed"),
            }
        });
        bench(&mut g, "moka_get_with", idx, moka_get_with);
        bench(&mut g, "moka_get_with_by_ref", idx, moka_get_with_by_ref);
        g.finish();
        if mode() == Mode::Bench {
            paired.push(paired_rounds(
                group,
                idx,
                (&memory, &cached_get, &moka_get_with, &moka_get_with_by_ref),
            ));
        }
    }
    let stats = fx.cached.stats();
    assert_eq!(
        (stats.misses, stats.evictions, stats.expirations),
        (fx.keys.len() as u64, 0, 0),
        "no miss, eviction or expiry after the warm-up's one miss per object"
    );
    paired
}

/// The stores of the paired rounds, in this order: `MemoryStore::get`,
/// `CachedStore::get`, moka `get_with`, moka `get_with_by_ref`.
const PAIRED: [&str; 4] = [
    "memory",
    "cached_get",
    "moka_get_with",
    "moka_get_with_by_ref",
];

/// One group's paired rounds: `ns[s][r]` is store `s`'s time per op in round `r`.
struct Paired {
    group: &'static str,
    ns: [Vec<f64>; 4],
}

impl Paired {
    /// Per round, store `a`'s time over store `b`'s: the median and the range.
    fn ratio(&self, a: usize, b: usize) -> (f64, f64, f64) {
        let mut r: Vec<f64> = self.ns[a]
            .iter()
            .zip(&self.ns[b])
            .map(|(x, y)| x / y)
            .collect();
        r.sort_by(f64::total_cmp);
        (r[r.len() / 2], r[0], r[r.len() - 1])
    }

    fn median_ns(&self, s: usize) -> f64 {
        let mut v = self.ns[s].clone();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
}

/// Times `n` ops of `op` over `idx` from `start`, in ns per op.
fn batch(idx: &[u32], start: usize, n: usize, op: &impl Fn(usize) -> usize) -> f64 {
    let t = Instant::now();
    for k in 0..n {
        black_box(op(idx[(start + k) & (INDICES - 1)] as usize));
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

/// The same four reads measured in alternation: in each round every store runs one
/// batch of keys (each its own, from the same distribution), in an order that rotates
/// from round to round, and ratios are
/// taken within a round. The uniform-key cases are bound by memory latency, which on
/// a shared virtual machine drifts by several times within minutes; criterion measures
/// one store after another, seconds apart, so its ratios carry that drift, while
/// stores measured within the same few milliseconds see the same machine.
fn paired_rounds(
    group: &'static str,
    idx: &[u32],
    (m, c, mk, mr): (
        &impl Fn(usize) -> usize,
        &impl Fn(usize) -> usize,
        &impl Fn(usize) -> usize,
        &impl Fn(usize) -> usize,
    ),
) -> Paired {
    let (rounds, n) = if quick() { (41, 5_000) } else { (201, 10_000) };
    let mut ns: [Vec<f64>; 4] = Default::default();
    for round in 0..rounds {
        for k in 0..4 {
            let s = (round + k) % 4;
            // Each store its own keys: none reads what another just brought into the
            // CPU caches.
            let start = (round * 4 + s) * n;
            let t = match s {
                0 => batch(idx, start, n, m),
                1 => batch(idx, start, n, c),
                2 => batch(idx, start, n, mk),
                _ => batch(idx, start, n, mr),
            };
            ns[s].push(t);
        }
    }
    Paired { group, ns }
}

// ---------------------------------------------------------------------------------
// 3: hit ratio on a Zipf trace.

/// An exact LRU over items `0..n`: intrusive doubly-linked list in arrays, O(1) per
/// access.
struct Lru {
    prev: Vec<u32>,
    next: Vec<u32>,
    resident: Vec<bool>,
    /// Most recently used; `NIL` when empty.
    head: u32,
    /// Least recently used.
    tail: u32,
    len: usize,
    capacity: usize,
}

const NIL: u32 = u32::MAX;

impl Lru {
    fn new(n: usize, capacity: usize) -> Self {
        Self {
            prev: vec![NIL; n],
            next: vec![NIL; n],
            resident: vec![false; n],
            head: NIL,
            tail: NIL,
            len: 0,
            capacity,
        }
    }

    fn unlink(&mut self, i: u32) {
        let (p, n) = (self.prev[i as usize], self.next[i as usize]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
    }

    fn push_front(&mut self, i: u32) {
        self.prev[i as usize] = NIL;
        self.next[i as usize] = self.head;
        if self.head == NIL {
            self.tail = i;
        } else {
            self.prev[self.head as usize] = i;
        }
        self.head = i;
    }

    /// Accesses `i`; returns whether it was a hit. A miss inserts it, evicting the
    /// least recently used item when full.
    fn access(&mut self, i: u32) -> bool {
        if self.resident[i as usize] {
            self.unlink(i);
            self.push_front(i);
            return true;
        }
        if self.len == self.capacity {
            let victim = self.tail;
            self.unlink(victim);
            self.resident[victim as usize] = false;
            self.len -= 1;
        }
        self.push_front(i);
        self.resident[i as usize] = true;
        self.len += 1;
        false
    }
}

struct HitRatios {
    objects: usize,
    accesses: usize,
    capacity: usize,
    /// Distinct objects in the trace.
    distinct: usize,
    ours: f64,
    ours_stats: k8s_store::CacheStats,
    sim_gets: u64,
    replay: Duration,
    lru: f64,
    moka: f64,
    moka_entries: u64,
}

fn zipf_hit_ratio(rt: &Runtime, sizes: &Sizes) -> HitRatios {
    let (n, accesses, capacity) = (sizes.zipf_objects, sizes.zipf_accesses, sizes.zipf_capacity);
    let t = Instant::now();
    let server = rt.block_on(ApiServer::start()).expect("sim start");
    // About 200 bytes of data each.
    let (objects, keys) = seed(&server, n, 150, 40, 21);
    let store = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .max_entries(capacity)
        .ttl(NO_EXPIRY)
        .build()
        .expect("cached store");
    for (obj, k) in objects.iter().zip(&keys) {
        store.add(&**obj, k).expect("add reference");
    }
    let object_bytes = data_bytes(&objects[0]);
    drop(objects);

    let mut rng = StdRng::seed_from_u64(31);
    let mut permutation: Vec<u32> = (0..n as u32).collect();
    permutation.shuffle(&mut rng);
    let zipf = Zipf::new(n as f64, 0.9).expect("valid Zipf parameters");
    let trace: Vec<u32> = (0..accesses)
        .map(|_| {
            let rank = zipf.sample(&mut rng) as usize; // 1..=n
            permutation[rank.clamp(1, n) - 1]
        })
        .collect();
    let distinct = {
        let mut seen = vec![false; n];
        trace
            .iter()
            .filter(|&&i| !std::mem::replace(&mut seen[i as usize], true))
            .count()
    };
    println!(
        "zipf workload: {n} Secrets of {} data bytes seeded and referenced in {:.1?}; \
         trace of {accesses} accesses over {distinct} distinct objects; capacity {capacity}",
        object_bytes,
        t.elapsed()
    );

    let gets_before = server.counters().requests(Verb::Get, "secrets");
    let t = Instant::now();
    rt.block_on(async {
        for &i in &trace {
            let got = store.get(&keys[i as usize]).await.expect("get");
            assert_eq!(got.len(), 1);
        }
    });
    let replay = t.elapsed();
    let sim_gets = server.counters().requests(Verb::Get, "secrets") - gets_before;
    let stats = store.stats();
    assert_eq!(
        stats.hits + stats.misses,
        accesses as u64,
        "every access counted once"
    );
    assert_eq!(
        stats.fetches, stats.misses,
        "sequential: one fetch per miss"
    );
    assert_eq!(sim_gets, stats.misses, "the sim saw one GET per miss");

    let mut lru = Lru::new(n, capacity);
    let lru_hits = trace.iter().filter(|&&i| lru.access(i)).count();

    let (moka_hits, moka_entries) = {
        let rt1 = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt1.block_on(async {
            let cache = moka::future::Cache::<u32, ()>::new(capacity as u64);
            let mut hits = 0usize;
            for &i in &trace {
                if cache.get(&i).await.is_some() {
                    hits += 1;
                } else {
                    cache.insert(i, ()).await;
                }
            }
            cache.run_pending_tasks().await;
            (hits, cache.entry_count())
        })
    };

    HitRatios {
        objects: n,
        accesses,
        capacity,
        distinct,
        ours: stats.hit_ratio(),
        ours_stats: stats,
        sim_gets,
        replay,
        lru: lru_hits as f64 / accesses as f64,
        moka: moka_hits as f64 / accesses as f64,
        moka_entries,
    }
}

// ---------------------------------------------------------------------------------

fn main() {
    let mode = mode();
    let sizes = Sizes::for_mode(mode);
    let mut c = Criterion::default().configure_from_args();
    let started = SystemTime::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    let fx = hit_fixture(&rt, &sizes);
    println!(
        "{} CPUs available{}",
        std::thread::available_parallelism().map_or(1, usize::from),
        match (mode, quick()) {
            (Mode::Test, _) => "; TEST mode (reduced sizes, each case run once)",
            (_, true) => "; QUICK mode",
            _ => "",
        }
    );
    let paired = run_hits(&mut c, &rt, &fx);
    c.final_summary();
    let moka_pending = fx.moka_pending.load(Ordering::Relaxed);
    // Freeing the fixture measures nothing: leave it to the OS.
    std::mem::forget(fx);

    if mode == Mode::Other {
        return;
    }
    let t = Instant::now();
    let ratios = zipf_hit_ratio(&rt, &sizes);
    println!("zipf measurement took {:.1?}", t.elapsed());
    summary::print(started, moka_pending, &ratios, &paired);
}

// ---------------------------------------------------------------------------------
// The summary.

mod summary {
    use super::*;
    use crate::common::criterion_results::{dir as criterion_dir, median_ns, time};

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

    const IDS: &[(&str, &str)] = &[
        ("memory", "MemoryStore::get"),
        ("cached_get", "CachedStore::get (index + cache)"),
        ("memory_get_one", "MemoryStore::get_one (no Vec)"),
        ("cached_get_one", "CachedStore::get_one (no Vec)"),
        (
            "cached_references",
            "CachedStore::references (its index alone, diagnostic)",
        ),
        ("cached_fetch", "CachedStore::fetch (cache + singleflight)"),
        ("moka_get_with", "moka get_with, owned key built per lookup"),
        ("moka_get_with_by_ref", "moka get_with_by_ref, prebuilt key"),
    ];

    const GROUPS: &[(&str, &str)] = &[
        ("cached_hit_uniform", "hit, uniform keys"),
        ("cached_hit_hot1pct", "hit, hot 1% of keys"),
    ];

    pub(super) fn print(since: SystemTime, moka_pending: u64, z: &HitRatios, paired: &[Paired]) {
        let dir = criterion_dir();
        let get = |g: &str, id: &str| median_ns(&dir, since, g, id);

        println!();
        println!("## Summary: medians of this run ({})", dir.display());
        println!();
        println!(
            "`÷ memory` = that row's median / MemoryStore::get's; `÷ cached_get` = that \
             row's median / CachedStore::get's (above 1: CachedStore::get is faster)."
        );
        println!();
        println!("| case | store | median / op | ops/s | ÷ memory | ÷ cached_get |");
        println!("|---|---|---:|---:|---:|---:|");
        let mut any = false;
        for (group, title) in GROUPS {
            let memory = get(group, "memory");
            let cached = get(group, "cached_get");
            for (id, name) in IDS {
                let Some(ns) = get(group, id) else { continue };
                any = true;
                let r = |b: Option<f64>| b.map_or("–".to_string(), |b| format!("{:.2}", ns / b));
                println!(
                    "| {title} | {name} | {} | {} | {} | {} |",
                    time(ns),
                    si(1e9 / ns),
                    r(memory),
                    r(cached)
                );
            }
        }
        if !any {
            println!("(no timings from this run: filtered out, or criterion in test/list mode)");
        }
        println!();
        println!(
            "Moka futures not ready on their first poll (finished with block_on): \
             {moka_pending}."
        );

        let s = &z.ours_stats;
        println!();
        println!(
            "### Hit ratio, Zipf(0.9) over {} objects, {} accesses ({} distinct), capacity {}",
            z.objects, z.accesses, z.distinct, z.capacity
        );
        println!();
        println!("| cache | hit ratio | ÷ LRU |");
        println!("|---|---:|---:|");
        for (name, v) in [
            (
                "CachedStore (quick_cache), replayed through get() over HTTP",
                z.ours,
            ),
            ("exact LRU (simulated)", z.lru),
            ("moka 0.12 future::Cache (TinyLFU)", z.moka),
        ] {
            println!("| {name} | {:.4} | {:.3} |", v, v / z.lru);
        }
        println!();
        println!(
            "CachedStore: {} hits, {} misses, {} fetches, {} evictions, {} expirations, {} \
             entries resident at the end; the sim served {} GETs for the replay (= misses); \
             replay took {:.1?} ({:.1} µs per miss on average, fetch time included). moka \
             held {} entries after its final housekeeping.",
            s.hits,
            s.misses,
            s.fetches,
            s.evictions,
            s.expirations,
            s.entries,
            z.sim_gets,
            z.replay,
            z.replay.as_secs_f64() * 1e6 / s.misses.max(1) as f64,
            z.moka_entries,
        );

        println!();
        if !paired.is_empty() {
            println!();
            println!("### Paired rounds: the four reads in alternation, ratios within each round");
            println!();
            println!(
                "Each round times a batch of keys in every store (10,000 reads each, its own \
                 keys from the same distribution), in an order that rotates; the ratio of two stores is taken within each round, then the \
                 median (and the range) over the rounds. Memory latency drifts between \
                 criterion's cases, measured seconds apart; it does not within a round."
            );
            println!();
            println!(
                "| case | rounds | MemoryStore::get | CachedStore::get | cached / memory \
                 (range) | moka get_with / cached (range) | moka by_ref / cached (range) |"
            );
            println!("|---|---:|---:|---:|---:|---:|---:|");
            for p in paired {
                let title = GROUPS
                    .iter()
                    .find(|(g, _)| *g == p.group)
                    .map_or(p.group, |(_, t)| t);
                let r = |a, b| {
                    let (m, lo, hi) = p.ratio(a, b);
                    format!("{m:.2} ({lo:.2}–{hi:.2})")
                };
                println!(
                    "| {title} | {} | {} | {} | {} | {} | {} |",
                    p.ns[0].len(),
                    time(p.median_ns(0)),
                    time(p.median_ns(1)),
                    r(1, 0),
                    r(2, 1),
                    r(3, 1),
                );
            }
        }

        println!();
        println!("### Against the issue's targets (this run)");
        println!();
        let check = |what: &str,
                     value: Option<f64>,
                     fmt: &dyn Fn(f64) -> String,
                     ok: &dyn Fn(f64) -> bool| match value {
            Some(v) => println!(
                "- {what}: {} — {}",
                fmt(v),
                if ok(v) { "met" } else { "NOT met" }
            ),
            None => println!("- {what}: not measured in this run"),
        };
        let ratio = |g: &str, a: &str, b: &str| Some(get(g, a)? / get(g, b)?);
        let times = |v: f64| format!("{v:.2}×");
        for (g, label) in GROUPS {
            check(
                &format!(
                    "1. CachedStore::get hit ≤ 2× MemoryStore::get ({label}; cached / memory)"
                ),
                ratio(g, "cached_get", "memory"),
                &times,
                &|v| v <= 2.0,
            );
            // Not the issue's `get`: the same bound for the calls without a vector.
            check(
                &format!(
                    "CachedStore::get_one hit ≤ 2× MemoryStore::get_one ({label}; \
                     cached / memory, informational)"
                ),
                ratio(g, "cached_get_one", "memory_get_one"),
                &times,
                &|v| v <= 2.0,
            );
        }
        for (g, label) in GROUPS {
            for (ours, moka) in [
                ("cached_get", "moka_get_with"),
                ("cached_get", "moka_get_with_by_ref"),
                ("cached_fetch", "moka_get_with"),
                ("cached_fetch", "moka_get_with_by_ref"),
            ] {
                check(
                    &format!("2. {ours} faster than {moka} ({label}; moka / ours)"),
                    ratio(g, moka, ours),
                    &times,
                    &|v| v > 1.0,
                );
            }
        }
        for p in paired {
            let label = GROUPS
                .iter()
                .find(|(g, _)| *g == p.group)
                .map_or(p.group, |(_, t)| t);
            check(
                &format!(
                    "1. CachedStore::get hit ≤ 2× MemoryStore::get ({label}; paired rounds, \
                     median)"
                ),
                Some(p.ratio(1, 0).0),
                &times,
                &|v| v <= 2.0,
            );
            for (m, name) in [(2, PAIRED[2]), (3, PAIRED[3])] {
                check(
                    &format!(
                        "2. cached_get faster than {name} ({label}; paired rounds, median of \
                         moka / ours)"
                    ),
                    Some(p.ratio(m, 1).0),
                    &times,
                    &|v| v > 1.0,
                );
            }
        }
        check(
            "3. hit ratio ≥ an exact LRU's of the same capacity (ours / LRU)",
            Some(z.ours / z.lru),
            &|v| format!("{:.4} vs {:.4} ({v:.3}×)", z.ours, z.lru),
            &|v| v >= 1.0,
        );
    }
}
