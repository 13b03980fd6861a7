#![cfg(k8s_store_loom)]
//! Reclamation of the objects the published trees hold without counts (see the
//! library's `index::retire`): a reader holding a snapshot while
//! the writer replaces and removes the snapshot's objects, twice, and drops the states
//! in between.
//!
//! The model holds a `Weak` of every version it writes (its own strong references are
//! dropped before the threads start), so it can ask whether a version is still alive
//! without reading it. While the reader holds a snapshot, every object in it (matched by
//! pointer, never dereferenced) must upgrade; once every thread is done and the
//! snapshot is dropped, every replaced or removed version must be gone (nothing
//! leaks), and the current ones alive.
//!
//! Checked against seeded bugs (each a one-line change in `src/index/memory.rs`, run by
//! hand): not linking a state's generation to the next (`publish` without `link`), so a
//! snapshot of state 0 no longer reaches what the second write retires, is caught by
//! the model (a version in the snapshot fails to upgrade); so is not retiring the old
//! version at all.
//!
//! (The weak references keep each version's allocation, though not the version, alive,
//! so the checks never touch freed memory. A read that clones objects, such as a prefix
//! get, could bring a released count back from zero unnoticed here: that it holds the
//! generation while it clones is argued in `index::retire`, and exercised under miri.)

use std::sync::{Arc, Weak};

use k8s_store_loom_tests::{Tag, keys, model, new_store};
use serde_json::Value;

struct Versions {
    /// x@1, y@1 (written first), x@2, y@2 (written by the writer thread).
    weak: Vec<Weak<Value>>,
}

impl Versions {
    /// Whether `obj` (matched by pointer) is one of the versions, and alive.
    fn alive(&self, obj: &Arc<Value>) -> bool {
        self.weak
            .iter()
            .find(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(obj)))
            .is_some_and(|w| w.upgrade().is_some())
    }
}

fn check() {
    model(move || {
        let store = Arc::new(new_store());
        let x = Tag::new("ns", "x", "ux", "1");
        let y = Tag::new("ns", "y", "uy", "1");
        let objects = [
            x.object(),
            y.object(),
            x.with_rv("2").object(),
            y.with_rv("2").object(),
        ];
        let versions = Arc::new(Versions {
            weak: objects.iter().map(Arc::downgrade).collect(),
        });
        let [x1, y1, x2, y2] = objects;
        store.add(x1, &keys("ns", "x")).expect("add");
        store.add(y1, &keys("ns", "y")).expect("add");

        let writer = {
            let store = Arc::clone(&store);
            loom::thread::spawn(move || {
                // Replaces x@1 (state 1), then y@1 (state 2): state 1 is dropped by the
                // second write unless a reader holds it.
                store.add(x2, &keys("ns", "x")).expect("add");
                store.add(y2, &keys("other", "y")).expect("add");
            })
        };

        let snapshot = store.list();
        for _ in 0..2 {
            for o in &snapshot {
                assert!(versions.alive(o), "an object of a held snapshot was freed");
            }
            loom::thread::yield_now();
        }
        drop(snapshot);

        writer.join().expect("writer");
        let alive: Vec<bool> = versions
            .weak
            .iter()
            .map(|w| w.upgrade().is_some())
            .collect();
        assert_eq!(
            alive,
            [false, false, true, true],
            "replaced versions released, current ones kept"
        );
        store.validate().expect("validate");
    });
}

#[test]
fn a_snapshot_keeps_what_later_writes_replace() {
    check();
}
