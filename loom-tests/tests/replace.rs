#![cfg(k8s_store_loom)]
//! `replace` (a relist swap) racing readers: every read is of the whole old state or
//! the whole new state, never a mix (list membership and length, exact gets in both
//! shards, prefix gets), and once a reader has seen the new state it never sees the old
//! one again.
//!
//! The old and new states differ in every way a relist can differ: an object updated
//! in place (`a`), one moved across shards (`b`), one dropped (`c`), two new ones
//! sharing a key (`d`, listed twice, and `e`), and a different count. Keys
//! `["ns", "a"]` and `["x", "a"]` are in shard 0, `["other", "a"]` and `["y", "a"]` in
//! shard 1 (see moves.rs), so the swap changes both shards.

use std::sync::Arc;

use k8s_store_loom_tests::{History, Keys, Observer, Op, Tag, keys, model, new_store};
use loom::sync::atomic::{AtomicBool, Ordering};

fn relist() -> History {
    let a = Tag::new("ns", "a", "ua", "1");
    let b = Tag::new("ns", "b", "ub", "1");
    let c = Tag::new("other", "c", "uc", "1");
    let d = Tag::new("y", "d", "ud", "2");
    let e = Tag::new("y", "e", "ue", "1");
    History::new(
        vec![
            Op::Add(a.clone(), keys("ns", "a")),
            Op::Add(b.clone(), keys("other", "a")),
            Op::Add(c, keys("other", "a")),
        ],
        vec![Op::Replace(vec![
            (a.with_rv("2"), keys("ns", "a")),
            (b.with_rv("2"), keys("x", "a")),
            (d.clone(), keys("y", "a")),
            (e, keys("y", "a")),
            (d.with_rv("3"), keys("y", "a")), // listed twice: the last one wins
        ])],
    )
}

/// Every query whose answer differs between the old and the new state.
fn queries() -> Vec<Keys> {
    vec![
        keys("ns", "a"),
        keys("other", "a"),
        keys("x", "a"),
        keys("y", "a"),
        vec!["ns".into()],
        vec!["other".into()],
        vec!["x".into()],
    ]
}

fn reader(h: &History, store: &k8s_store_loom_tests::Store, done: &AtomicBool, reads: &[usize]) {
    let mut r = Observer::new(h, "reader");
    let q = queries();
    for (i, &read) in reads.iter().enumerate() {
        if i == 2 && done.load(Ordering::Acquire) {
            r.at_least(1);
        }
        match read {
            0 => {
                r.list(store);
            }
            1 => {
                r.len(store);
            }
            n => {
                r.get(store, &q[n - 2]);
            }
        }
    }
    // The states differ in length: a snapshot of either is whole.
    let (_, last) = r.list(store);
    assert!(
        last.len() == h.state(0).len() || last.len() == h.state(1).len(),
        "torn list of {} objects",
        last.len()
    );
}

fn check(reads: &'static [usize], two_readers: bool) {
    let h = Arc::new(relist());
    assert_ne!(h.state(0).len(), h.last().len());
    model(move || {
        let store = Arc::new(new_store());
        h.set_up(&store);
        let done = Arc::new(AtomicBool::new(false));

        let writer = {
            let (h, store, done) = (Arc::clone(&h), Arc::clone(&store), Arc::clone(&done));
            loom::thread::spawn(move || {
                h.run(0, &store);
                done.store(true, Ordering::Release);
            })
        };
        let second = two_readers.then(|| {
            let (h, store, done) = (Arc::clone(&h), Arc::clone(&store), Arc::clone(&done));
            let reversed: Vec<usize> = reads.iter().rev().copied().collect();
            loom::thread::spawn(move || reader(&h, &store, &done, &reversed))
        });

        reader(&h, &store, &done, reads);

        writer.join().expect("writer");
        if let Some(t) = second {
            t.join().expect("second reader");
        }
        h.last().assert_matches(&store, &queries());
        store.validate().expect("validate");
    });
}

// Reads are: 0 list, 1 len, 2.. the gets of `queries()` in order.

#[test]
fn relist_swap_is_atomic_for_exact_gets_across_shards() {
    // exact ["other","a"] (shard 1), exact ["x","a"] (shard 0), exact ["ns","a"] (0),
    // exact ["y","a"] (1).
    check(&[3, 4, 2, 5], false);
    check(&[5, 2, 4, 3], false);
}

#[test]
fn relist_swap_is_atomic_between_exact_and_prefix_gets() {
    check(&[3, 6, 4, 8], false);
    check(&[7, 2, 0, 5], false);
}

#[test]
fn relist_swap_is_atomic_for_lists_and_len() {
    check(&[0, 1, 0, 1], false);
    check(&[1, 3, 0, 4], true);
}
