#![cfg(k8s_store_loom)]
//! A move (the same identity re-added under other keys) racing exact and prefix gets
//! of both the old and the new key.
//!
//! What linearizability allows one reader thread whose reads are sequential: each read
//! takes effect either before the move (the object is under the old key only) or after
//! it (under the new key only), and once a read of this thread has taken effect after
//! the move, every later read of this thread does too. So, reading in program order:
//!
//! - new key then old key: "seen under new" and then "still under old" is forbidden
//!   (it would put the second read before the move and the first after);
//! - old key then new key: "gone from old" and then "not yet under new" is forbidden
//!   (the object would be in neither place after the reader saw the move complete);
//! - "under old" then "under new" (read before, read after) and "not under new" then
//!   "gone from old" are both allowed;
//! - a read made after the reader learned that the move returned must see it.
//!
//! The [`Observer`] checks exactly this for any sequence of reads; every model runs the
//! four kinds of read (exact old, exact new, prefix old, prefix new) in one order and
//! in the reverse order, so every ordered pair of kinds is checked in both directions,
//! across the two paths: exact gets, which probe the exact-key table without a lock
//! (against the stamp of the state they loaded), and prefix gets on the published
//! state. The writer also moves the object back, so a reader may see old -> new ->
//! old, each step only forward.
//!
//! Where the keys land (under loom `src/index/key.rs` hashes with foldhash 0.2's
//! `FixedState`, so this is deterministic; computed offline with the same hasher). The
//! models were written when the exact-key index was split into two shards by the
//! hash's lowest bit, and their names still call that bit the key's "shard"; the index
//! is now one table, in which the keys' home slots (of the first table's 16) are:
//!
//! | key                | hash's low bit ("shard") | home slot |
//! |--------------------|--------------------------|-----------|
//! | `["ns", "a"]`      | 0                        | 4         |
//! | `["ns", "b"]`      | 0                        | 4         |
//! | `["other", "b"]`   | 0                        | 6         |
//! | `["x", "a"]`       | 0                        | 6         |
//! | `["ns", "new"]`    | 1                        | 5         |
//! | `["ns", "shared"]` | 1                        | 13        |
//! | `["other", "a"]`   | 1                        | 3         |
//! | `["y", "a"]`       | 1                        | 13        |
//!
//! so the pairs below cover a move between keys of the same low bit and between keys
//! of different ones, in both directions, each with and without a shared first
//! component. `["ns", "a"]` and `["ns", "b"]` share their home slot, so a move from
//! the first to the second puts the object in the slot past the first key's, which
//! keeps its tombstone: exact gets of the new key probe past it.

use std::sync::Arc;

use k8s_store_loom_tests::{
    History, Keys, Observer, Op, Tag, keys, model, new_store, spawn_writer,
};
use loom::sync::atomic::{AtomicUsize, Ordering};

/// The four reads of a move, tagged so a model can run them in any order.
#[derive(Clone, Copy, Debug)]
enum Read {
    ExactOld,
    ExactNew,
    PrefixOld,
    PrefixNew,
}

const FORWARD: [Read; 4] = [
    Read::ExactNew,
    Read::ExactOld,
    Read::PrefixNew,
    Read::PrefixOld,
];
const BACKWARD: [Read; 4] = [
    Read::PrefixOld,
    Read::PrefixNew,
    Read::ExactOld,
    Read::ExactNew,
];
const MIXED: [Read; 4] = [
    Read::ExactNew,
    Read::PrefixOld,
    Read::ExactOld,
    Read::PrefixNew,
];

/// Object `ns/a` (so `["ns", "a"]` is an elided bucket and other keys are stored ones)
/// starts under `from`, moves to `to`, then moves back. `bystander` sits under `to`
/// from the start when given, so the move also joins and leaves a shared bucket.
fn move_and_back(from: &Keys, to: &Keys, bystander: bool) -> History {
    let x = Tag::new("ns", "a", "ux", "1");
    let mut setup = vec![Op::Add(x.clone(), from.clone())];
    if bystander {
        setup.push(Op::Add(Tag::new("ns", "z", "uz", "1"), to.clone()));
    }
    History::new(
        setup,
        vec![
            Op::Add(x.with_rv("2"), to.clone()),
            Op::Add(x.with_rv("3"), from.clone()),
        ],
    )
}

fn run_reads(
    r: &mut Observer<'_>,
    store: &k8s_store_loom_tests::Store,
    done: &AtomicUsize,
    from: &Keys,
    to: &Keys,
    order: [Read; 4],
) {
    for (i, read) in order.into_iter().enumerate() {
        if i == 2 {
            // Halfway: whatever the writer has finished by now must be visible.
            r.at_least(done.load(Ordering::Acquire));
        }
        let query: Keys = match read {
            Read::ExactOld => from.clone(),
            Read::ExactNew => to.clone(),
            Read::PrefixOld => from[..1].to_vec(),
            Read::PrefixNew => to[..1].to_vec(),
        };
        r.get(store, &query);
    }
}

fn check_move(from: Keys, to: Keys, bystander: bool, order: [Read; 4]) {
    let h = Arc::new(move_and_back(&from, &to, bystander));
    model(move || {
        let store = Arc::new(new_store());
        h.set_up(&store);
        let done = Arc::new(AtomicUsize::new(0));

        let writer = spawn_writer(&h, &store, &done);

        let mut r = Observer::new(&h, "reader");
        run_reads(&mut r, &store, &done, &from, &to, order);

        writer.join().expect("writer");
        h.last()
            .assert_matches(&store, &[to.clone(), to[..1].to_vec()]);
        store.validate().expect("validate");
    });
}

fn check_pair(from: &[&str; 2], to: &[&str; 2]) {
    let (from, to) = (keys(from[0], from[1]), keys(to[0], to[1]));
    for order in [FORWARD, BACKWARD, MIXED] {
        check_move(from.clone(), to.clone(), false, order);
    }
    check_move(from, to, true, FORWARD);
}

#[test]
fn move_within_one_shard_other_prefix() {
    check_pair(&["ns", "a"], &["other", "b"]);
}

#[test]
fn move_within_one_shard_same_prefix() {
    check_pair(&["ns", "a"], &["ns", "b"]);
}

#[test]
fn move_to_higher_shard_other_prefix() {
    check_pair(&["ns", "a"], &["other", "a"]);
}

#[test]
fn move_to_higher_shard_same_prefix() {
    check_pair(&["ns", "a"], &["ns", "new"]);
}

#[test]
fn move_to_lower_shard_other_prefix() {
    check_pair(&["y", "a"], &["x", "a"]);
}

#[test]
fn move_to_lower_shard_same_prefix() {
    check_pair(&["ns", "new"], &["ns", "b"]);
}

/// Two readers at once, in opposite orders, on a cross-shard move.
#[test]
fn two_readers_in_opposite_orders() {
    let (from, to) = (keys("ns", "a"), keys("other", "a"));
    let h = Arc::new(History::new(
        vec![Op::Add(Tag::new("ns", "a", "ux", "1"), from.clone())],
        vec![Op::Add(Tag::new("ns", "a", "ux", "2"), to.clone())],
    ));
    model(move || {
        let store = Arc::new(new_store());
        h.set_up(&store);
        let done = Arc::new(AtomicUsize::new(0));

        let writer = {
            let (h, store, done) = (Arc::clone(&h), Arc::clone(&store), Arc::clone(&done));
            loom::thread::spawn(move || {
                h.run(0, &store);
                done.store(1, Ordering::Release);
            })
        };
        let other = {
            let (h, store, done) = (Arc::clone(&h), Arc::clone(&store), Arc::clone(&done));
            let (from, to) = (from.clone(), to.clone());
            loom::thread::spawn(move || {
                let mut r = Observer::new(&h, "reader 2");
                run_reads(&mut r, &store, &done, &from, &to, BACKWARD);
            })
        };

        let mut r = Observer::new(&h, "reader 1");
        run_reads(&mut r, &store, &done, &from, &to, FORWARD);

        writer.join().expect("writer");
        other.join().expect("reader 2");
        h.last().assert_matches(&store, std::slice::from_ref(&from));
        store.validate().expect("validate");
    });
}
