#![cfg(k8s_store_loom)]
//! Snapshot publication against concurrent writes.
//!
//! A writer adds A, then B, then updates A; readers take snapshots, exact gets, prefix
//! gets and lengths. Every read must be the state after some prefix of the writes
//! (never B without A, never a torn mix), one thread's reads never go back in that
//! sequence, a read made after the reader learned that a write returned sees it, and
//! snapshots never change afterwards.
//!
//! With the fixed loom hasher and two shards, `["ns", "a"]` is in shard 0 and
//! `["other", "a"]` in shard 1, so the exact gets cross shards.

use std::sync::Arc;

use k8s_store_loom_tests::{History, Observer, Op, Tag, keys, model, new_store, write_all};
use loom::sync::atomic::{AtomicUsize, Ordering};

fn history() -> History {
    let a = Tag::new("ns", "a", "ua", "1");
    let b = Tag::new("other", "a", "ub", "1");
    History::new(
        vec![],
        vec![
            Op::Add(a.clone(), keys("ns", "a")),
            Op::Add(b, keys("other", "a")),
            Op::Add(a.with_rv("2"), keys("ns", "a")),
        ],
    )
}

/// Runs every write of `h` on `store`, bumping `done` after each has returned.
#[test]
fn snapshots_are_prefix_states_of_the_writes() {
    let h = Arc::new(history());
    model(move || {
        let store = Arc::new(new_store());
        let done = Arc::new(AtomicUsize::new(0));

        let writer = {
            let (h, store, done) = (Arc::clone(&h), Arc::clone(&store), Arc::clone(&done));
            loom::thread::spawn(move || {
                write_all(&h, &store, &done);
                // Read-your-writes on the writer's own thread.
                let mut me = Observer::new(&h, "writer");
                me.at_least(h.len());
                me.list(&store);
            })
        };

        let mut r = Observer::new(&h, "reader");
        let (first, first_tags) = r.list(&store);
        let seen_a = r.get(&store, &keys("ns", "a"));
        r.at_least(done.load(Ordering::Acquire));
        let seen_b = r.get(&store, &keys("other", "a"));
        let seen_ns = r.get(&store, &["ns".to_owned()]);
        let (second, second_tags) = r.list(&store);
        let len = r.len(&store);

        // Explicitly, on top of the history check: what a get saw is in every later
        // list (same identity, same or newer version), no list has B without A, and
        // len, read after the list, never counts less (this history only grows).
        for seen in seen_a.iter().chain(&seen_b).chain(&seen_ns) {
            assert!(
                second_tags
                    .iter()
                    .any(|t| t.identity() == seen.identity() && t.rv >= seen.rv),
                "{seen} seen by a get but missing from a later list"
            );
        }
        for listed in [&first_tags, &second_tags] {
            let has = |uid: &str| listed.iter().any(|t| t.uid == uid);
            assert!(!has("ub") || has("ua"), "B without A: {listed:?}");
        }
        assert!(len >= second_tags.len(), "len went back from a later list");

        writer.join().expect("writer");

        // Snapshots never change.
        assert_eq!(k8s_store_loom_tests::tags(&first), first_tags);
        assert_eq!(k8s_store_loom_tests::tags(&second), second_tags);
        h.last().assert_matches(&store, &[keys("ns", "b")]);
        store.validate().expect("validate");
    });
}

/// Two readers that each cross shards in a different order: B then A by exact gets,
/// and a prefix get then a list. Three threads, so fewer reads each.
#[test]
fn two_readers_never_see_b_without_a() {
    let h = Arc::new(History::new(
        vec![],
        vec![
            Op::Add(Tag::new("ns", "a", "ua", "1"), keys("ns", "a")),
            Op::Add(Tag::new("other", "a", "ub", "1"), keys("other", "a")),
        ],
    ));
    model(move || {
        let store = Arc::new(new_store());
        let done = Arc::new(AtomicUsize::new(0));

        let writer = {
            let (h, store, done) = (Arc::clone(&h), Arc::clone(&store), Arc::clone(&done));
            loom::thread::spawn(move || write_all(&h, &store, &done))
        };
        let exact = {
            let (h, store) = (Arc::clone(&h), Arc::clone(&store));
            loom::thread::spawn(move || {
                let mut r = Observer::new(&h, "exact reader");
                r.get(&store, &keys("other", "a"));
                r.get(&store, &keys("ns", "a"));
            })
        };

        let mut r = Observer::new(&h, "prefix reader");
        r.get(&store, &["other".to_owned()]);
        r.at_least(done.load(Ordering::Acquire));
        r.list(&store);

        writer.join().expect("writer");
        exact.join().expect("exact reader");
        h.last().assert_matches(&store, &[]);
        store.validate().expect("validate");
    });
}
