#![cfg(k8s_store_loom)]
//! A batch ([`MemoryStore::apply`](k8s_store::MemoryStore::apply)) racing exact and
//! prefix gets: a reader sees all of the batch or none of it.
//!
//! The batch moves `ns/a` from `["ns", "a"]` (shard 0) to `["other", "a"]` (shard 1),
//! removes `ns/z` from `["ns", "new"]` (shard 1) and adds `x/w` under `["x", "a"]`
//! (shard 0; shards as computed in `moves.rs`). The [`History`] has it as one write, so
//! the [`Observer`] accepts a read only if it fits the state before the batch or the
//! state after it, and a later read of the same thread only the same state or a later
//! one: a read that saw one change and missed another fits neither.
//!
//! The twin `a_batch_applied_change_by_change_is_caught` seeds the bug a batch must
//! not have: the same changes made as three separate writes, each published on its
//! own, while the history still calls them one write. Loom must find a read that sees
//! a part of it.

use std::sync::Arc;

use k8s_store_loom_tests::{History, Keys, Observer, Op, Tag, keys, model, new_store};
use loom::sync::atomic::{AtomicUsize, Ordering};

fn x() -> Tag {
    Tag::new("ns", "a", "ux", "1")
}

fn z() -> Tag {
    Tag::new("ns", "z", "uz", "1")
}

fn w() -> Tag {
    Tag::new("x", "w", "uw", "1")
}

fn history() -> History {
    History::new(
        vec![
            Op::Add(x(), keys("ns", "a")),
            Op::Add(z(), keys("ns", "new")),
        ],
        vec![Op::Batch(vec![
            (x().with_rv("2"), Some(keys("other", "a"))),
            (z(), None),
            (w(), Some(keys("x", "a"))),
        ])],
    )
}

/// The reads, in the order given: exact and prefix, of every key the batch touches.
fn reads(order: bool) -> Vec<Keys> {
    let mut q = vec![
        keys("other", "a"),
        keys("ns", "a"),
        vec!["x".to_owned()],
        vec!["ns".to_owned()],
        keys("ns", "new"),
    ];
    if !order {
        q.reverse();
    }
    q
}

fn check(order: bool, one_by_one: bool) {
    let h = Arc::new(history());
    model(move || {
        let store = Arc::new(new_store());
        h.set_up(&store);
        let done = Arc::new(AtomicUsize::new(0));

        let writer = {
            let (h, store, done) = (Arc::clone(&h), Arc::clone(&store), Arc::clone(&done));
            loom::thread::spawn(move || {
                if one_by_one {
                    // The seeded bug: the batch's changes as separate writes.
                    store
                        .add(x().with_rv("2").object(), &keys("other", "a"))
                        .expect("add");
                    store.remove(&z().object()).expect("remove");
                    store.add(w().object(), &keys("x", "a")).expect("add");
                } else {
                    h.run(0, &store);
                }
                done.store(1, Ordering::Release);
            })
        };

        let mut r = Observer::new(&h, "reader");
        for (i, query) in reads(order).iter().enumerate() {
            if i == 3 {
                r.at_least(done.load(Ordering::Acquire));
            }
            r.get(&store, query);
        }

        writer.join().expect("writer");
        h.last()
            .assert_matches(&store, &[keys("other", "a"), vec!["x".to_owned()]]);
        store.validate().expect("validate");
    });
}

#[test]
fn a_batch_is_seen_whole_or_not_at_all() {
    check(true, false);
}

#[test]
fn a_batch_is_seen_whole_or_not_at_all_reading_backwards() {
    check(false, false);
}

#[test]
#[should_panic]
fn a_batch_applied_change_by_change_is_caught() {
    check(true, true);
}
