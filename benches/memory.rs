//! Memory each store spends per object, beyond the objects themselves.
//!
//! A counting global allocator wraps the system allocator and tracks the bytes and the
//! number of allocations that are live. For each store, the 100,000 `Arc<ConfigMap>`s
//! of the workload (see `common/mod.rs`) are created **before** measuring; the live
//! bytes are recorded, every object is inserted, and the live bytes are recorded again.
//! The difference divided by the number of objects is the store's overhead per object:
//! its maps, trees, keys and reference-counted handles, not the objects, which the
//! caller already holds and the stores share.
//!
//! kube-runtime's `Writer` is the exception: `apply_watcher_event` clones each object
//! into an `Arc` of its own. Its overhead is the difference **minus** the deep size of
//! those clones, measured by counting the bytes `Arc::new(obj.clone())` allocates for
//! each object of the workload (summed over all of them, as sizes vary a little).
//!
//! For `k8s_store::MemoryStore` it also reports a store filled by `replace` (a watch's
//! initial list) and a store after churn: 10% of the objects moved to new keys and 10%
//! removed, against a store built fresh with the same final content.
//!
//! "Bytes" are the sizes requested from the allocator; the glibc column adds an
//! estimate of malloc's own per-chunk overhead and rounding (chunks of
//! `max(32, size + 8 rounded up to 16)` bytes), which penalises many small allocations.
//!
//! # The on-demand tier against the full tier
//!
//! A second section compares resident memory for Secrets of 4 KB (a TLS pair of random
//! bytes) served by the in-process API server (`k8s_store_sim`, on a tokio runtime).
//! The sim is seeded with 20,000 of them **before** measuring (its own storage is not
//! counted), and one GET is made through its client first, so that the pooled HTTP
//! connection exists before measuring too. Then, each from its own starting reading:
//! - (a) `MemoryStore<Secret>` holding all 20,000 objects **including the objects**:
//!   they are listed from the sim (`server.list::<Secret>()`) inside the measured
//!   window, inserted as `Arc`s, and the `Vec` is dropped.
//! - (b) `CachedStore<Secret>` (`max_entries(1000)`, built with the sim's client)
//!   holding the 20,000 references (added from `Reference`s built before measuring),
//!   after a 5% hot set (1,000 Secrets) has been read 5 times, in a shuffled order each
//!   time, through `CachedStore::get` over HTTP. Live bytes are read after a 200 ms
//!   settle, when the transient HTTP buffers have been freed. What the process still
//!   holds after the store is dropped (the HTTP client's pooled connection and its
//!   server side, runtime structures) is reported as the residue and also subtracted,
//!   for a net figure.
//!
//! Run: `cargo bench --bench memory`. Without `--bench` (as `cargo test --benches`
//! runs it) it uses 10,000 objects to stay quick, and 2,000 Secrets with a hot set of
//! 100 for the tier comparison.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_store::{CacheStats, CachedStore, MemoryStore, Reference};
use k8s_store_sim::ApiServer;
use kube_runtime::reflector;
use kube_runtime::watcher::Event;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

#[allow(dead_code)] // shared with the store benchmark, which uses other parts
mod common;
#[allow(dead_code)] // shared with the store benchmark, which uses other parts
#[path = "baselines/go_store.rs"]
mod go_store;

use common::Workload;
use go_store::GoStore;

/// Live bytes as requested from the allocator.
static BYTES: AtomicIsize = AtomicIsize::new(0);
/// Live allocations.
static ALLOCS: AtomicIsize = AtomicIsize::new(0);
/// Live bytes as glibc malloc would use them (estimate, see the module docs).
static CHUNK_BYTES: AtomicIsize = AtomicIsize::new(0);

/// The system allocator, counting what is live. The counters are plain statistics,
/// read only after the measured code has run on the same thread, so `Relaxed` suffices.
struct Counting;

fn chunk(size: usize) -> isize {
    (size.saturating_add(8 + 15) & !15).max(32) as isize
}

fn count(size: usize, sign: isize) {
    BYTES.fetch_add(sign * size as isize, Ordering::Relaxed);
    CHUNK_BYTES.fetch_add(sign * chunk(size), Ordering::Relaxed);
    ALLOCS.fetch_add(sign, Ordering::Relaxed);
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; the counting has no effect on the memory returned.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (non-zero size), as `System` needs.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size(), 1);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size(), 1);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with
        // `layout`, as the caller guarantees.
        unsafe { System.dealloc(ptr, layout) };
        count(layout.size(), -1);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` was allocated by `System` with `layout`, and `new_size` is valid
        // for it, as the caller guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(layout.size(), -1);
            count(new_size, 1);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A reading of the counters.
#[derive(Clone, Copy)]
struct Live {
    bytes: isize,
    allocs: isize,
    chunk_bytes: isize,
}

fn live() -> Live {
    Live {
        bytes: BYTES.load(Ordering::Relaxed),
        allocs: ALLOCS.load(Ordering::Relaxed),
        chunk_bytes: CHUNK_BYTES.load(Ordering::Relaxed),
    }
}

impl std::ops::Sub for Live {
    type Output = Live;
    fn sub(self, o: Live) -> Live {
        Live {
            bytes: self.bytes - o.bytes,
            allocs: self.allocs - o.allocs,
            chunk_bytes: self.chunk_bytes - o.chunk_bytes,
        }
    }
}

/// One row of the report: a store's overhead for `objects` objects.
struct Row {
    store: String,
    objects: usize,
    overhead: Live,
    note: String,
}

impl Row {
    fn per_object(&self) -> (f64, f64, f64) {
        let n = self.objects as f64;
        (
            self.overhead.bytes as f64 / n,
            self.overhead.allocs as f64 / n,
            self.overhead.chunk_bytes as f64 / n,
        )
    }
}

/// `obj` moved to a new key: the next namespace and a new name, same uid.
fn moved(obj: &ConfigMap, namespaces: &[String], ns_index: usize) -> ConfigMap {
    let mut m = common::next_version(obj);
    m.metadata.namespace = Some(namespaces[(ns_index + 1) % namespaces.len()].clone());
    m.metadata.name = m.metadata.name.map(|n| format!("{n}-moved"));
    m
}

fn keys_of(obj: &ConfigMap) -> [String; 2] {
    [
        obj.metadata.namespace.clone().unwrap_or_default(),
        obj.metadata.name.clone().unwrap_or_default(),
    ]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let namespaces = if bench { common::NAMESPACES } else { 10 };
    let wl = Workload::generate(namespaces, 42);
    let n = wl.objects.len();
    let mut rows = Vec::new();

    // The deep size of the copies kube-runtime's Writer makes: what `Arc::new(obj.clone())`
    // allocates, for every object.
    let mut deep = Live {
        bytes: 0,
        allocs: 0,
        chunk_bytes: 0,
    };
    for obj in &wl.objects {
        let before = live();
        let copy = Arc::new(ConfigMap::clone(obj));
        let d = live() - before;
        drop(black_box(copy));
        deep.bytes += d.bytes;
        deep.allocs += d.allocs;
        deep.chunk_bytes += d.chunk_bytes;
    }
    println!(
        "workload: {n} ConfigMaps in {namespaces} namespaces{}; {} data bytes each on \
         average; deep size of one `Arc::new(obj.clone())`: {:.0} bytes in {:.1} \
         allocations on average",
        if bench {
            ""
        } else {
            " (reduced: not run with --bench)"
        },
        wl.mean_data_bytes(),
        deep.bytes as f64 / n as f64,
        deep.allocs as f64 / n as f64,
    );

    // Go-shaped baseline.
    {
        let base = live();
        let store = GoStore::<ConfigMap>::new(2);
        for (obj, k) in wl.objects.iter().zip(&wl.keys) {
            store.add(Arc::clone(obj), k);
        }
        rows.push(Row {
            store: "Go-shaped baseline".into(),
            objects: n,
            overhead: live() - base,
            note: "after the inserts (list cache empty)".into(),
        });
        drop(black_box(store.list()));
        rows.push(Row {
            store: "Go-shaped baseline".into(),
            objects: n,
            overhead: live() - base,
            note: "after one list() (list cache built)".into(),
        });
    }

    // kube-runtime's reflector store.
    {
        let base = live();
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        for obj in &wl.objects {
            writer.apply_watcher_event(&Event::Apply(ConfigMap::clone(obj)));
        }
        assert_eq!(reader.len(), n);
        rows.push(Row {
            store: "kube-runtime".into(),
            objects: n,
            overhead: live() - base - deep,
            note: format!(
                "minus its own deep copies of the objects: the bytes `Arc::new(obj.clone())` \
                 allocates, summed over the objects ({:.0} B/object)",
                deep.bytes as f64 / n as f64
            ),
        });
    }

    // Ours, filled one add() at a time, then churned.
    let moved_at: Vec<usize> = (0..n).filter(|i| i % 10 == 0).collect();
    let removed_at: Vec<usize> = (0..n).filter(|i| i % 10 == 1).collect();
    let moved_objects: Vec<Arc<ConfigMap>> = moved_at
        .iter()
        .map(|&i| {
            Arc::new(moved(
                &wl.objects[i],
                &wl.namespaces,
                i / common::PER_NAMESPACE,
            ))
        })
        .collect();
    let moved_keys: Vec<[String; 2]> = moved_objects.iter().map(|o| keys_of(o)).collect();
    let mut final_content: Vec<(Arc<ConfigMap>, Vec<String>)> = (0..n)
        .filter(|i| i % 10 > 1)
        .map(|i| (Arc::clone(&wl.objects[i]), wl.keys[i].to_vec()))
        .collect();
    final_content.extend(
        moved_objects
            .iter()
            .zip(&moved_keys)
            .map(|(o, k)| (Arc::clone(o), k.to_vec())),
    );
    let remaining = final_content.len();
    {
        let base = live();
        let store = MemoryStore::<ConfigMap>::new(2).expect("two keys");
        for (obj, k) in wl.objects.iter().zip(&wl.keys) {
            store.add(Arc::clone(obj), k).expect("two keys");
        }
        rows.push(Row {
            store: "k8s-store".into(),
            objects: n,
            overhead: live() - base,
            note: "filled by add(), one object at a time".into(),
        });
        for (obj, k) in moved_objects.iter().zip(&moved_keys) {
            store.update(Arc::clone(obj), k).expect("two keys");
        }
        for &i in &removed_at {
            assert!(store.remove(&wl.objects[i]).expect("remove"));
        }
        assert_eq!(store.len(), remaining);
        store.validate().expect("store invariants after churn");
        rows.push(Row {
            store: "k8s-store".into(),
            objects: remaining,
            overhead: live() - base,
            note: "after churn: the add()-filled store with 10% moved to new keys, 10% removed"
                .into(),
        });
    }
    {
        let base = live();
        let store = MemoryStore::<ConfigMap>::new(2).expect("two keys");
        store
            .replace(final_content.iter().cloned())
            .expect("two keys");
        rows.push(Row {
            store: "k8s-store".into(),
            objects: remaining,
            overhead: live() - base,
            note: "the churned store's final content, filled fresh by replace()".into(),
        });
    }
    {
        let base = live();
        let store = MemoryStore::<ConfigMap>::new(2).expect("two keys");
        store
            .replace(
                wl.objects
                    .iter()
                    .zip(&wl.keys)
                    .map(|(o, k)| (Arc::clone(o), k.to_vec())),
            )
            .expect("two keys");
        rows.push(Row {
            store: "k8s-store".into(),
            objects: n,
            overhead: live() - base,
            note: "filled by replace() (a watch's initial list)".into(),
        });
    }

    print_table(&rows);

    let tiers = if bench {
        tiers(20_000, 1_000, 5)
    } else {
        tiers(2_000, 100, 3)
    };
    print_tiers(&tiers, bench);
}

fn print_table(rows: &[Row]) {
    const KUBE_ANCHOR: f64 = 154.0;
    const GO_ANCHOR: f64 = 88.0;
    let measured = |store: &str| {
        rows.iter()
            .filter(|r| r.store == store)
            .map(|r| r.per_object().0)
            .fold(f64::NAN, f64::max)
    };
    // Each baseline's reference value is its largest measured row (the Go store's
    // steady state includes its list cache).
    let kube = measured("kube-runtime");
    let go = measured("Go-shaped baseline");

    println!();
    println!("## Store overhead per object (bytes beyond the objects themselves)");
    println!();
    println!(
        "| store | objects | B/object | allocations/object | B/object incl. glibc chunks (est.) \
         | ÷ kube-runtime (measured) | ÷ Go-shaped (measured) | note |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let (b, a, c) = r.per_object();
        println!(
            "| {} | {} | {b:.1} | {a:.2} | {c:.1} | {:.2} | {:.2} | {} |",
            r.store,
            r.objects,
            b / kube,
            b / go,
            r.note
        );
    }
    println!();
    println!(
        "Anchors from the issue: kube-runtime ≈ {KUBE_ANCHOR:.0} B/object, the Go original ≈ \
         {GO_ANCHOR:.0} B/object (measured there in Go). Ours, worst row above: {:.1} B/object \
         ({:.2} of the kube-runtime anchor, {:.2} of the Go anchor).",
        measured("k8s-store"),
        measured("k8s-store") / KUBE_ANCHOR,
        measured("k8s-store") / GO_ANCHOR,
    );
}

// ---------------------------------------------------------------------------------
// The on-demand tier against the full tier (see the module docs).

struct Tiers {
    objects: usize,
    hot: usize,
    reads: usize,
    /// (a): the MemoryStore with every object, objects included.
    full: Live,
    /// (b) with the references only, before any read.
    cached_refs: Live,
    /// (b) after the reads and the settle.
    cached: Live,
    /// What stayed live after the CachedStore was dropped.
    residue: Live,
    stats: CacheStats,
    /// The deep size of one Secret (`Arc::new(secret.clone())`), on average.
    deep_secret: f64,
    read_time: Duration,
}

/// Measures (a) and (b) on `n` Secrets with a hot set of `hot`, read `passes` times.
fn tiers(n: usize, hot: usize, passes: usize) -> Tiers {
    const NAMESPACES: usize = 100;
    let settle = Duration::from_millis(200);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let server = rt.block_on(ApiServer::start()).expect("sim start");

    // Seeding, the references, the read order and a first request: all before measuring.
    let mut rng = StdRng::seed_from_u64(5);
    let mut refs: Vec<(Reference, [String; 2])> = Vec::with_capacity(n);
    let mut deep = 0isize;
    for i in 0..n {
        let ns = format!("team-{:03}", i % NAMESPACES);
        let name = format!("tls-{i:06}");
        let created = server
            .create(&common::tls_secret(&ns, &name, 2_900, 1_100, &mut rng))
            .expect("sim create");
        if i < 100 {
            let before = live();
            let copy = Arc::new(created.clone());
            deep += (live() - before).bytes;
            drop(black_box(copy));
        }
        refs.push((Reference::of(&created), [ns, name]));
    }
    let mut hot_set: Vec<u32> = (0..n as u32).collect();
    hot_set.shuffle(&mut rng);
    hot_set.truncate(hot);
    let mut reads = Vec::with_capacity(hot * passes);
    for _ in 0..passes {
        hot_set.shuffle(&mut rng);
        reads.extend_from_slice(&hot_set);
    }
    {
        let warm = CachedStore::<Secret>::builder(2)
            .client(server.client())
            .build()
            .expect("cached store");
        let [ns, name] = &refs[0].1;
        let got = rt.block_on(warm.fetch(ns, name)).expect("first GET");
        assert!(got.is_some());
    }
    std::thread::sleep(settle);

    // (a) the full tier, objects included.
    let base = live();
    let store = MemoryStore::<Secret>::new(2).expect("two keys");
    let listed = server.list::<Secret>().expect("sim list");
    assert_eq!(listed.len(), n);
    for obj in listed {
        let keys = [
            obj.metadata.namespace.clone().unwrap_or_default(),
            obj.metadata.name.clone().unwrap_or_default(),
        ];
        store.add(Arc::new(obj), &keys).expect("two keys");
    }
    let full = live() - base;
    assert_eq!(store.len(), n);
    drop(store);

    // (b) the on-demand tier.
    let base = live();
    let cached = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .max_entries(hot)
        .build()
        .expect("cached store");
    for (r, keys) in &refs {
        cached.add(r, keys).expect("add reference");
    }
    let cached_refs = live() - base;
    let t = Instant::now();
    rt.block_on(async {
        for &i in &reads {
            let got = cached.get(&refs[i as usize].1).await.expect("get");
            assert_eq!(got.len(), 1);
        }
    });
    let read_time = t.elapsed();
    std::thread::sleep(settle);
    let after_reads = live() - base;
    let stats = cached.stats();
    assert_eq!(cached.len(), n);
    drop(cached);
    std::thread::sleep(settle);
    let residue = live() - base;

    rt.block_on(server.shutdown());
    Tiers {
        objects: n,
        hot,
        reads: reads.len(),
        full,
        cached_refs,
        cached: after_reads,
        residue,
        stats,
        deep_secret: deep as f64 / n.min(100) as f64,
        read_time,
    }
}

fn print_tiers(t: &Tiers, bench: bool) {
    let mb = |b: isize| b as f64 / 1e6;
    let net = t.cached - t.residue;
    println!();
    println!(
        "## Resident memory: {} Secrets of 4 KB, full tier vs on-demand tier{}",
        t.objects,
        if bench {
            ""
        } else {
            " (reduced: not run with --bench)"
        }
    );
    println!();
    println!(
        "Deep size of one Secret in memory (`Arc::new(secret.clone())`): {:.0} B. Hot set: \
         {} Secrets (5%), read {} times in all ({:.1?}); the CachedStore's max_entries is {}.",
        t.deep_secret, t.hot, t.reads, t.read_time, t.hot
    );
    println!();
    println!(
        "| what | live MB | allocations | B/object | B/object incl. glibc chunks (est.) | full ÷ this |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |what: &str, l: Live| {
        let n = t.objects as f64;
        println!(
            "| {what} | {:.2} | {} | {:.0} | {:.0} | {:.1} |",
            mb(l.bytes),
            l.allocs,
            l.bytes as f64 / n,
            l.chunk_bytes as f64 / n,
            t.full.bytes as f64 / l.bytes as f64
        );
    };
    row(
        "(a) MemoryStore<Secret>, every object (objects included)",
        t.full,
    );
    row(
        "(b) CachedStore<Secret>, references only, before any read",
        t.cached_refs,
    );
    row(
        "(b) CachedStore<Secret> after the hot-set reads (gross: everything the process \
         gained)",
        t.cached,
    );
    row(
        "left after dropping the CachedStore (HTTP client pool, server connection, \
         runtime)",
        t.residue,
    );
    row("(b) net: gross minus what was left after dropping it", net);
    let s = &t.stats;
    println!();
    println!(
        "CachedStore stats: {} entries resident, stats().bytes = {} ({:.2} MB of response \
         bodies), {} hits, {} misses, {} evictions.",
        s.entries,
        s.bytes,
        s.bytes as f64 / 1e6,
        s.hits,
        s.misses,
        s.evictions
    );
    println!();
    let ratio = t.full.bytes as f64 / t.cached.bytes as f64;
    let ratio_net = t.full.bytes as f64 / net.bytes as f64;
    println!(
        "Target: on-demand resident bytes ≥ 10× below the full tier: {ratio:.1}× (gross), \
         {ratio_net:.1}× (net) — {}{}",
        if ratio >= 10.0 { "met" } else { "NOT met" },
        if bench {
            ""
        } else {
            " (reduced sizes: not the issue's workload)"
        }
    );
}
