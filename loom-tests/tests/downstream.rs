#![cfg(k8s_store_loom)]
//! A model as a downstream crate writes one: k8s-store's public API and loom, nothing
//! from this crate's harness and no `validate()`. It is the recipe in the crate docs
//! (`k8s_store::docs::verifying`) run as written.
//!
//! The code under test is the user's, not ours: a writer that stores an object and then
//! announces it through an atomic of its own (a generation, say), and a reconciler that
//! reads the announcement and then the object through a [`MemoryReader`]. The model
//! checks that the store's write, once returned, is seen by any thread that learned of
//! it through the user's own synchronisation. The second model is the same code with
//! the user's bug seeded in (announcing before storing): loom must find the
//! interleaving in which the reconciler sees the announcement but not the object.

use std::sync::Arc;

use k8s_store::{MemoryReader, MemoryStore};
use loom::sync::atomic::{AtomicUsize, Ordering};
use serde_json::{Value, json};

fn object() -> Arc<Value> {
    Arc::new(json!({"metadata": {"namespace": "ns", "name": "a", "uid": "ua"}}))
}

/// The user's writer: stores the object and announces it, in the order given.
fn write(store: &MemoryStore<Value>, announced: &AtomicUsize, announce_first: bool) {
    if announce_first {
        announced.store(1, Ordering::Release);
    }
    store
        .add(object(), &["ns", "a"])
        .expect("two key components");
    if !announce_first {
        announced.store(1, Ordering::Release);
    }
}

/// The user's reconciler: once the object is announced, it must be readable.
fn reconcile(reader: &MemoryReader<Value>, announced: &AtomicUsize) {
    if announced.load(Ordering::Acquire) == 1 {
        let found = reader.get(&["ns", "a"]).expect("two key components");
        assert_eq!(found.len(), 1, "announced but not in the store");
    }
}

fn run(announce_first: bool) {
    loom::model(move || {
        // Stores are built inside the model: their locks and maps are loom's, and
        // belong to one execution.
        let store = MemoryStore::<Value>::builder(2)
            .shards(2)
            .build()
            .expect("valid settings");
        let reader = store.reader();
        let announced = Arc::new(AtomicUsize::new(0));
        let writer = {
            let announced = Arc::clone(&announced);
            loom::thread::spawn(move || write(&store, &announced, announce_first))
        };
        reconcile(&reader, &announced);
        writer.join().expect("writer thread");
        // After the join the write has returned: every read sees it.
        assert_eq!(reader.len(), 1);
    });
}

#[test]
fn an_announced_write_is_readable() {
    run(false);
}

#[test]
#[should_panic(expected = "announced but not in the store")]
fn loom_finds_an_announcement_made_before_the_write() {
    run(true);
}
