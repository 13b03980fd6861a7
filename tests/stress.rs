//! Multi-threaded stress: one writer, several readers, checking linearizability
//! properties that any single reader can observe.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::{cm, cm_v, version};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store::MemoryStore;

const NAMESPACES: usize = 8;

fn keys(i: usize) -> [String; 2] {
    [format!("ns{}", i % NAMESPACES), format!("obj{i:06}")]
}

fn index_of(c: &ConfigMap) -> usize {
    c.metadata.name.as_deref().unwrap()[3..].parse().unwrap()
}

/// The writer adds objects 0, 1, 2, ... in sequence. Any linearizable read therefore
/// sees exactly objects `0..L` for some `L`, `L` never shrinks for one reader, and once
/// a reader has seen object `i` by any means every later `list()` holds `0..=i`.
#[test]
fn whatever_a_get_saw_is_in_every_later_list() {
    let n = if cfg!(debug_assertions) {
        3_000
    } else {
        30_000
    };
    let store = Arc::new(
        MemoryStore::<ConfigMap>::builder(2)
            .shards(8)
            .build()
            .unwrap(),
    );
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|r| {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut seen_up_to: usize = 0; // objects 0..seen_up_to are known added
                let mut checks = 0u64;
                let mut probe = r * 7919;
                while !done.load(Ordering::Acquire) {
                    // Probe just above what we know: that is where new objects appear.
                    probe = (probe + 31) % 64;
                    let i = seen_up_to + probe;
                    let [ns, name] = keys(i);
                    let got = store.get(&[ns.as_str(), name.as_str()]).unwrap();
                    if let Some(o) = got.first() {
                        assert_eq!(index_of(o), i);
                        seen_up_to = seen_up_to.max(i + 1);
                    }
                    // A prefix get: a namespace's objects, all below the list's bound.
                    let ns_objs = store.get(&[keys(probe)[0].as_str()]).unwrap();
                    let ns_max = ns_objs.iter().map(|o| index_of(o) + 1).max().unwrap_or(0);
                    seen_up_to = seen_up_to.max(ns_max);

                    let snap = store.list();
                    let mut idx: Vec<usize> = snap.iter().map(|o| index_of(o)).collect();
                    idx.sort_unstable();
                    let l = idx.len();
                    assert!(
                        idx.iter().copied().eq(0..l),
                        "reader {r}: list is not a prefix of the writes"
                    );
                    assert!(
                        l >= seen_up_to,
                        "reader {r}: saw object {} but list has only {l}",
                        seen_up_to - 1
                    );
                    seen_up_to = l;
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    for i in 0..n {
        let [ns, name] = keys(i);
        store
            .add(cm(&ns, &name, None), &[ns.as_str(), name.as_str()])
            .unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        let checks = r.join().unwrap();
        assert!(checks > 0);
    }
    assert_eq!(store.len(), n);
    store.validate().unwrap();
}

/// One object moves between keys with a rising version. Every snapshot and every
/// prefix get holds it exactly once, and each reader sees versions that never go back.
#[test]
fn moving_object_is_never_duplicated_lost_or_rolled_back() {
    let rounds = if cfg!(debug_assertions) {
        5_000
    } else {
        50_000
    };
    let store = Arc::new(
        MemoryStore::<ConfigMap>::builder(2)
            .shards(4)
            .build()
            .unwrap(),
    );
    store
        .add(cm_v("ns", "mover", Some("u"), "0"), &["p", "k0"])
        .unwrap();
    // Siblings that must never be disturbed.
    for s in 0..4 {
        store
            .add(
                cm("ns", &format!("sibling{s}"), None),
                &["p", &format!("k{s}")],
            )
            .unwrap();
    }
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let store = Arc::clone(&store);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let mut last = 0u64;
                let observe = |v: u64, last: &mut u64| {
                    assert!(v >= *last, "version went back from {last} to {v}");
                    *last = v;
                };
                while !done.load(Ordering::Acquire) {
                    let all = store.get(&["p"]).unwrap();
                    let movers: Vec<_> = all.iter().filter(|o| o.metadata.uid.is_some()).collect();
                    assert_eq!(
                        movers.len(),
                        1,
                        "prefix get holds the mover {} times",
                        movers.len()
                    );
                    assert_eq!(all.len(), 5);
                    observe(version(movers[0]).unwrap().parse().unwrap(), &mut last);
                    for k in ["k0", "k1", "k2", "k3"] {
                        for o in store.get(&["p", k]).unwrap() {
                            if o.metadata.uid.is_some() {
                                observe(version(&o).unwrap().parse().unwrap(), &mut last);
                            }
                        }
                    }
                    let snap = store.list();
                    assert_eq!(snap.len(), 5);
                    let m: Vec<_> = snap.iter().filter(|o| o.metadata.uid.is_some()).collect();
                    assert_eq!(m.len(), 1);
                    observe(version(m[0]).unwrap().parse().unwrap(), &mut last);
                }
            })
        })
        .collect();
    for r in 1..=rounds {
        let k = format!("k{}", r % 4);
        store
            .update(
                cm_v("ns", "mover", Some("u"), &r.to_string()),
                &["p", k.as_str()],
            )
            .unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
    store.validate().unwrap();
    assert_eq!(store.len(), 5);
}
