#![cfg(k8s_store_loom)]
//! The exact-key table (`src/index/exact.rs`) racing exact reads: a rebuild that grows
//! it, a key removed and re-added, a relist that swaps in a whole new table, and the
//! rebuilds that follow removals (dropping tombstones, shrinking the table).
//!
//! An exact read takes no lock: it loads the published state, takes the state's table
//! and stamp, probes the table (slots are atomic pointers to immutable entries, each
//! tagged with 16 bits of its key's hash) and walks the slot's entry back along `prev`
//! to the first stamped at or before its state's stamp. The single writer stores its
//! new entries into the slots (stamped with its write's stamp) *before* it publishes
//! its state, and a rebuild makes a new table of the same live entries, which only the
//! write's state holds: a reader of an older state keeps probing the old table, which
//! no write changes any more. So an exact read answers for exactly the state it
//! loaded, however the writer has moved on, and agrees with every prefix read and list
//! of the same state.
//!
//! Every model drives the public API from a writer thread while the model's thread
//! reads, and checks the reads with the [`Observer`] against the states the writer's
//! [`History`] passes through: each read must match one state, at or after the state
//! the thread's previous read matched, and at or after every write the reader knows
//! returned (a loom atomic the writer bumps, read halfway through). So the reader
//! never sees an old version after a newer one, never misses a key a previous read
//! showed present (or finds one a previous read showed gone), and never gets from an
//! exact read what the list or a prefix read of a later state contradicts. Most models
//! read in one order, then (a second loom run) in the reverse order, so each ordered
//! pair of reads is checked both ways; at the end the store must hold the last state
//! and pass `validate()`.
//!
//! # The models
//!
//! 1. A rebuild that grows the table (`rebuild_*`): thirteen keys fill the first
//!    table, and the writer adds the fourteenth (alone, after updating an old key in
//!    the same batch, or before updating one in the new table) while readers get an
//!    old key, the new key and the list.
//! 2. A key removed and re-added (`remove_*`): in one batch (the key's tombstone and
//!    its new entry are the same write's, the second replacing the first in the
//!    chain), beside another object under the key, re-added and removed again in the
//!    same batch, and in two writes; racing exact and prefix gets and the list.
//! 3. A relist (`relist_*`) swapping in a table built whole (entries stamped 0) for an
//!    old one holding a tombstone, alone or followed by an update in the new table;
//!    racing exact gets and the list.
//! 4. Rebuilds after removals: at the same size once the tombstones are more than an
//!    eighth of the used slots (`tombstone_rebuild_*`), and smaller once fewer than an
//!    eighth of the slots are live (`shrink_*`), racing exact gets of the key the
//!    write removes, of a key that stays (probed in the old table across tombstones)
//!    and the list.
//!
//! Each model explores a few dozen to a few hundred executions with the documented
//! bound (`rebuild_racing_two_readers`, with a second reader, about 2,200); the whole
//! file runs in a second or two in release (with `LOOM_MAX_PREEMPTIONS=5`, in about
//! 15 seconds). A rebuild of a 128-slot table loads every
//! slot, one loom branch each, so the shrink models allow loom more branches per
//! execution than its default ([`check_in`]).
//!
//! # Where the keys land
//!
//! Under loom the key hasher is foldhash 0.2's `FixedState`, so the layout is
//! deterministic (computed offline with the same hasher; the home slot is the hash's
//! low bits, probed linearly; a relist adds keys in object order):
//!
//! - `rebuild_*`: `ns/k0` .. `ns/k12` (key `["ns", "kN"]`), added in that order, fill
//!   a 16-slot table to 13 of 16 (empty: 3, 7, 13). `ns/k11`'s home slot is 15, taken,
//!   so it is in slot 2, past 15, 0 and 1 (the probe wraps round). The 14th key,
//!   `ns/k13` (home 0), makes the writer rebuild the table at 64 slots first.
//! - `tombstone_rebuild_*`: a relist of `ns/k0` .. `ns/k16` builds a 32-slot table (17
//!   used); `ns/k6`'s home slot is 4, and it is in slot 7, past `ns/k0` (4), `ns/k16`
//!   (5) and `ns/k2` (6). A batch removes `ns/k0` and `ns/k16`; deleting `ns/k2` makes
//!   3 tombstones of 17, and the writer rebuilds the table (32 slots) without them.
//! - `shrink_*`: a relist of 53 objects (37 under `ns/k0`, one under each of 16 other
//!   keys) builds a table for 53 keys, 128 slots, of which 17 are used. `ns/k40`,
//!   `ns/k51` and `ns/k52` all have home slot 70, and are in 70, 71 and 72. Deleting
//!   `ns/k40`, then `ns/k51`, leaves 15 live keys, fewer than an eighth of 128 (the
//!   two tombstones are not yet an eighth of 17), and the writer rebuilds the table
//!   at 64 slots. A reader of an older state then probes for `ns/k52` in the old
//!   table across both tombstones, the second one stored by the racing write.
//!
//! # Seeded bugs
//!
//! Each model was run against bugs seeded in `src/index/exact.rs` and
//! `src/index/memory.rs` as of 0438394 (never committed), with
//! `LOOM_MAX_PREEMPTIONS=3`, and failed on the ones below that its writes go through;
//! every other model passed.
//!
//! 1. `Table::get` taking the slot's entry whatever its stamp: a reader of an older
//!    state sees what a write stored before it published. Caught by every model whose
//!    write stores into a table that an older state holds:
//!    `rebuild_after_an_update_in_the_same_batch` (`get ["ns", "k11"]` `k11@2`, then
//!    `get ["ns", "k13"]` empty: half the batch),
//!    `rebuild_then_an_update_in_the_new_table`,
//!    `relist_then_an_update_in_the_new_table` (`get ["ns", "a"]` `a@3`, then the list
//!    of the relist's state), the four `remove_*` models (in one batch:
//!    `get ["ns", "a"]` empty or `z@1` alone, the tombstone or the entry the batch
//!    stored between its two changes), `tombstone_rebuild_racing_exact_reads`,
//!    `shrink_racing_exact_reads` and `shrink_then_an_update_in_the_same_batch`
//!    (`get` of the removed key empty, then a list that holds it). Not by
//!    `rebuild_racing_exact_reads` or `rebuild_racing_two_readers` (the 14th key goes
//!    only into the new table; the old one is unchanged),
//!    `relist_racing_exact_reads_and_list` (the relist's table is reachable only
//!    through its state) or the two `*_behind_tombstones` models (their key never
//!    changes): there is nothing for them to catch.
//! 2. `upsert` publishing twice: first the trees with the write and the exact-key
//!    table unchanged, then the table's change under the next stamp (as if the state
//!    were published before `bucket_insert`). The final state and `validate()` are
//!    right. Caught by `rebuild_racing_exact_reads` and `rebuild_racing_two_readers`
//!    (the list held `ns/k13`, then `get ["ns", "k13"]` empty),
//!    `rebuild_then_an_update_in_the_new_table` (the list held `k11@2`, then
//!    `get ["ns", "k11"]` `k11@1`), `relist_then_an_update_in_the_new_table` and
//!    `remove_then_readd_in_two_writes` (`get ["ns"]` held `a@2`, then
//!    `get ["ns", "a"]` empty). The models whose writes are batches, deletes and
//!    relists only do not go through `upsert`.
//! 3. `Table::rebuild` leaving out the last live entry of the old table (in slot
//!    order): the key is lost from the exact index. Caught by every model that
//!    rebuilds (the four `rebuild_*`, the two `tombstone_rebuild_*`, the three
//!    `shrink_*`) at the final check (`get ["ns", "k3"]`, or `["ns", "k11"]`, empty):
//!    a sequential bug.
//! 4. `Table::set` storing a key's new entry with a null `prev`: a reader of an older
//!    state that finds it cannot walk back to its own version. Caught by the models of
//!    1: a key its state holds read empty (`get ["ns", "k11"]`, `get ["ns", "a"]`), or
//!    the removed key read empty, then a list that holds it.
//! 5. `Table::retire_all` emptying the table it retires (a relist clearing the old
//!    table in place before it publishes). Caught by
//!    `relist_racing_exact_reads_and_list` (`get ["other", "b"]` and `get ["ns", "b"]`
//!    empty, then the list of the old state, which holds `b@1`) and
//!    `relist_then_an_update_in_the_new_table` (`get ["ns", "a"]` empty).
//! 6. `Table::rebuild` clearing the slots of the tombstones it drops in the old table.
//!    Caught by the two `tombstone_rebuild_*` and the three `shrink_*` models:
//!    `get ["ns", "k52"]` empty, its probe stopped at `ns/k40`'s cleared slot, and
//!    `get ["ns", "k6"]` likewise; or the removed key read empty, then a list that
//!    holds it. The growth models pass: their old tables hold no tombstones.
//! 7. `Table::rebuild` moving the entries out of the old table (swapping each slot to
//!    null) instead of copying them. Caught by every model that rebuilds: a reader of
//!    the state before probes the emptied table (`get ["ns", "k11"]` empty,
//!    `get ["ns", "k52"]` empty after reads that showed it).
//! 8. `Table::rebuild` storing the new table's slots with another key's tag: no probe
//!    finds the copied keys. Caught by every model that rebuilds, at the final check,
//!    and by `rebuild_racing_two_readers` with a read (`get ["ns", "k0"]` empty after
//!    a list of the new state).
//!
//! [`Observer`]: k8s_store_loom_tests::Observer
//! [`History`]: k8s_store_loom_tests::History

use std::sync::Arc;

use k8s_store_loom_tests::{
    History, Keys, Observer, Op, Store, Tag, keys, model, new_store, spawn_writer, tags,
};
use loom::sync::atomic::{AtomicUsize, Ordering};

/// One read of a model.
#[derive(Clone, Debug)]
enum Read {
    /// `get(query)`: exact with two components, by prefix with one.
    Get(Keys),
    /// `get_one(query)`, two components: checked as the exact get it stands for.
    GetOne(Keys),
    /// `list()`.
    List,
}

fn exact(a: &str, b: &str) -> Read {
    Read::Get(keys(a, b))
}

fn one(a: &str, b: &str) -> Read {
    Read::GetOne(keys(a, b))
}

fn prefix(a: &str) -> Read {
    Read::Get(vec![a.to_owned()])
}

/// Runs the writes of `h` on a writer thread while this thread makes `reads`, checking
/// each with an [`Observer`] (and, with `second`, a second reader thread makes those);
/// then checks the final state, with the gets of `extra`.
fn check(h: History, reads: Vec<Read>, second: Option<Vec<Read>>, extra: Vec<Keys>) {
    check_in(DEFAULT_BRANCHES, h, reads, second, extra);
}

/// Loom's default bound on the branches of one execution.
const DEFAULT_BRANCHES: usize = 1_000;

/// [`check`], with loom allowed `max_branches` branches in one execution: a 128-slot
/// table's rebuild loads every slot, each load a branch.
fn check_in(
    max_branches: usize,
    h: History,
    reads: Vec<Read>,
    second: Option<Vec<Read>>,
    extra: Vec<Keys>,
) {
    let h = Arc::new(h);
    let second = second.map(Arc::new);
    model_in(max_branches, move || {
        let store = Arc::new(new_store());
        h.set_up(&store);
        let done = Arc::new(AtomicUsize::new(0));

        let writer = spawn_writer(&h, &store, &done);

        let other = second.as_ref().map(|reads| {
            let (h, store, done) = (Arc::clone(&h), Arc::clone(&store), Arc::clone(&done));
            let reads = Arc::clone(reads);
            loom::thread::spawn(move || {
                let mut r = Observer::new(&h, "reader 2");
                read_all(&mut r, &store, &done, &reads);
            })
        });

        let mut r = Observer::new(&h, "reader");
        read_all(&mut r, &store, &done, &reads);

        writer.join().expect("writer");
        if let Some(t) = other {
            t.join().expect("reader 2");
        }
        h.last().assert_matches(&store, &extra);
        store.validate().expect("validate");
    });
}

/// [`model`], with at least `max_branches` branches allowed in one execution.
fn model_in<F>(max_branches: usize, f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    if max_branches <= DEFAULT_BRANCHES {
        return model(f);
    }
    let mut b = loom::model::Builder::new();
    b.max_branches = b.max_branches.max(max_branches);
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    // As `model` does: a plain counter of the executions, for the log.
    let runs = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let started = std::time::Instant::now();
    b.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        f();
    });
    eprintln!(
        "{}: {} executions explored in {:.2?} (preemption bound {:?}, {} branches)",
        std::thread::current().name().unwrap_or("model"),
        runs.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed(),
        b.preemption_bound,
        b.max_branches
    );
}

/// Makes `reads` in order; halfway, whatever the writer has finished must be visible.
fn read_all(r: &mut Observer<'_>, store: &Store, done: &AtomicUsize, reads: &[Read]) {
    for (i, read) in reads.iter().enumerate() {
        if i == reads.len() / 2 {
            r.at_least(done.load(Ordering::Acquire));
        }
        match read {
            Read::Get(q) => {
                r.get(store, q);
            }
            Read::GetOne(q) => {
                let got = store.get_one(q).expect("get_one");
                r.check_get(q, &tags(got.as_ref()));
            }
            Read::List => {
                r.list(store);
            }
        }
    }
}

/// [`check`] with `reads` in their order and in the reverse order.
fn check_both_ways(h: impl Fn() -> History, reads: &[Read], extra: &[Keys]) {
    check_both_ways_in(DEFAULT_BRANCHES, h, reads, extra);
}

/// [`check_both_ways`] with [`check_in`]'s bound.
fn check_both_ways_in(
    max_branches: usize,
    h: impl Fn() -> History,
    reads: &[Read],
    extra: &[Keys],
) {
    check_in(max_branches, h(), reads.to_vec(), None, extra.to_vec());
    check_in(max_branches, h(), backwards(reads), None, extra.to_vec());
}

fn backwards(reads: &[Read]) -> Vec<Read> {
    reads.iter().rev().cloned().collect()
}

/// Object `ns/kN` (uid `uN`) at resourceVersion `rv`, and its key `["ns", "kN"]`.
fn k(n: usize, rv: &str) -> (Tag, Keys) {
    let name = format!("k{n}");
    (
        Tag::new("ns", &name, &format!("u{n}"), rv),
        keys("ns", &name),
    )
}

fn add(n: usize, rv: &str) -> Op {
    let (t, key) = k(n, rv);
    Op::Add(t, key)
}

// 1. A rebuild (growing the table) racing exact reads.

/// `ns/k0` .. `ns/k12` added one by one: the 16-slot table is 13/16 full, and the next
/// new key rebuilds it.
fn thirteen_keys() -> Vec<Op> {
    (0..13).map(|n| add(n, "1")).collect()
}

/// The reads of the rebuild models: the key that wraps round the old table, the key
/// that makes the rebuild, and the list.
fn rebuild_reads() -> Vec<Read> {
    vec![one("ns", "k11"), exact("ns", "k13"), Read::List]
}

/// The 14th key rebuilds the table (at 64 slots) before it goes in; a reader of the
/// state before probes the old table, one of the state after the new one.
#[test]
fn rebuild_racing_exact_reads() {
    check_both_ways(
        || History::new(thirteen_keys(), vec![add(13, "1")]),
        &rebuild_reads(),
        &[keys("ns", "k13")],
    );
}

/// Two readers at once, in opposite orders, with `ns/k0` (in its home slot) read too.
#[test]
fn rebuild_racing_two_readers() {
    let mut reads = rebuild_reads();
    reads.insert(1, exact("ns", "k0"));
    check(
        History::new(thirteen_keys(), vec![add(13, "1")]),
        reads.clone(),
        Some(backwards(&reads)),
        vec![keys("ns", "k13")],
    );
}

/// One batch updates `ns/k11` in the old table (a new entry in its slot, stamped with
/// the batch's stamp, which readers of the state before pass over) and then adds the
/// 14th key, which rebuilds the table with the new entry in it.
#[test]
fn rebuild_after_an_update_in_the_same_batch() {
    check_both_ways(
        || {
            let (k11, k11_key) = k(11, "2");
            let (k13, k13_key) = k(13, "1");
            History::new(
                thirteen_keys(),
                vec![Op::Batch(vec![(k11, Some(k11_key)), (k13, Some(k13_key))])],
            )
        },
        &rebuild_reads(),
        &[keys("ns", "k13")],
    );
}

/// The rebuild, then an update of `ns/k11` in the new table: a reader of the rebuilt
/// state walks from the update's entry back to the one the rebuild copied.
#[test]
fn rebuild_then_an_update_in_the_new_table() {
    check_both_ways(
        || History::new(thirteen_keys(), vec![add(13, "1"), add(11, "2")]),
        &rebuild_reads(),
        &[keys("ns", "k13")],
    );
}

// 2. A key removed and re-added, in one batch and in two writes.

fn x(rv: &str) -> Tag {
    Tag::new("ns", "a", "ux", rv)
}

/// `x@1` under `["ns", "a"]`, and a bystander under `["ns", "b"]` (so the prefix
/// group `["ns"]` lives through the removal).
fn x_and_bystander() -> Vec<Op> {
    vec![
        Op::Add(x("1"), keys("ns", "a")),
        Op::Add(Tag::new("ns", "b", "uy", "1"), keys("ns", "b")),
    ]
}

fn readd_reads() -> Vec<Read> {
    vec![exact("ns", "a"), prefix("ns"), Read::List]
}

/// One batch removes `x@1` and adds `x@2` under the same key: the key's tombstone and
/// its new entry are one write's (the new entry replaces the tombstone in the chain),
/// so a reader sees `x@1` or `x@2`, never neither.
#[test]
fn remove_and_readd_in_one_batch() {
    check_both_ways(
        || {
            History::new(
                x_and_bystander(),
                vec![Op::Batch(vec![
                    (x("1"), None),
                    (x("2"), Some(keys("ns", "a"))),
                ])],
            )
        },
        &readd_reads(),
        &[],
    );
}

/// The same in one batch with a new identity (a new uid: deleted and created again)
/// under the key, removed again at the end: the key's chain gets three entries of the
/// batch's stamp, of which readers of the state before see none.
#[test]
fn remove_readd_and_remove_in_one_batch() {
    check_both_ways(
        || {
            let x2 = Tag::new("ns", "a", "ux2", "2");
            History::new(
                x_and_bystander(),
                vec![Op::Batch(vec![
                    (x("1"), None),
                    (x2.clone(), Some(keys("ns", "a"))),
                    (x2, None),
                ])],
            )
        },
        &readd_reads(),
        &[keys("ns", "a")],
    );
}

/// A removal, then a re-add under the same key in a second write: its new entry
/// replaces the tombstone, and readers walk back through the tombstone (gone) to
/// `x@1`, as far as their state.
#[test]
fn remove_then_readd_in_two_writes() {
    check_both_ways(
        || {
            History::new(
                x_and_bystander(),
                vec![Op::Remove(x("1")), Op::Add(x("2"), keys("ns", "a"))],
            )
        },
        &readd_reads(),
        &[],
    );
}

/// The key holds two objects (one entry of two): one batch removes `x@1` and adds
/// `x@2` back beside the other.
#[test]
fn remove_and_readd_beside_another_object_in_one_batch() {
    check_both_ways(
        || {
            let mut setup = x_and_bystander();
            setup.push(Op::Add(Tag::new("ns", "z", "uz", "1"), keys("ns", "a")));
            History::new(
                setup,
                vec![Op::Batch(vec![
                    (x("1"), None),
                    (x("2"), Some(keys("ns", "a"))),
                ])],
            )
        },
        &readd_reads(),
        &[],
    );
}

// 3. A relist swapping in a whole new table.

fn before_relist() -> Vec<Op> {
    let c = Tag::new("other", "c", "uc", "1");
    vec![
        Op::Add(Tag::new("ns", "a", "ua", "1"), keys("ns", "a")),
        Op::Add(Tag::new("ns", "b", "ub", "1"), keys("ns", "b")),
        Op::Add(c.clone(), keys("other", "b")),
        // A tombstone in the old table.
        Op::Remove(c),
    ]
}

/// `a` updated in place, `b` moved to a new key, `d` under the key the old table has a
/// tombstone for.
fn relist() -> Op {
    Op::Replace(vec![
        (Tag::new("ns", "a", "ua", "2"), keys("ns", "a")),
        (Tag::new("ns", "b", "ub", "2"), keys("ns", "new")),
        (Tag::new("other", "d", "ud", "1"), keys("other", "b")),
    ])
}

fn relist_extra() -> Vec<Keys> {
    vec![keys("ns", "b"), keys("ns", "new"), keys("other", "b")]
}

/// The relist publishes a state with a new table built whole (entries stamped 0); a
/// reader of the state before keeps probing the old table.
#[test]
fn relist_racing_exact_reads_and_list() {
    check_both_ways(
        || History::new(before_relist(), vec![relist()]),
        &[
            exact("ns", "a"),
            exact("other", "b"),
            exact("ns", "b"),
            Read::List,
        ],
        &relist_extra(),
    );
}

/// The relist, then an update of `a` in the new table: a reader of the relist's state
/// walks from the update's entry back to the built one (stamp 0).
#[test]
fn relist_then_an_update_in_the_new_table() {
    check_both_ways(
        || {
            History::new(
                before_relist(),
                vec![
                    relist(),
                    Op::Add(Tag::new("ns", "a", "ua", "3"), keys("ns", "a")),
                ],
            )
        },
        &[exact("ns", "a"), Read::List, exact("ns", "new")],
        &relist_extra(),
    );
}

// 4. Rebuilds after removals: to drop tombstones, and to shrink the table.

/// A relist of `ns/k0` .. `ns/k16` (a 32-slot table), then a batch removing `ns/k0`
/// and `ns/k16`: one more removal makes the tombstones more than an eighth of the
/// entries.
fn before_tombstone_rebuild() -> Vec<Op> {
    vec![
        Op::Replace((0..17).map(|n| k(n, "1")).collect()),
        Op::Batch(vec![(k(0, "1").0, None), (k(16, "1").0, None)]),
    ]
}

/// Deleting `ns/k2` stores its tombstone in the old table (the third on `ns/k6`'s
/// probe), then rebuilds it at the same size without the tombstones.
#[test]
fn tombstone_rebuild_racing_exact_reads() {
    check_both_ways(
        || {
            History::new(
                before_tombstone_rebuild(),
                vec![Op::Delete(keys("ns", "k2"))],
            )
        },
        &[exact("ns", "k6"), exact("ns", "k2"), Read::List],
        &[keys("ns", "k0"), keys("ns", "k2"), keys("ns", "k16")],
    );
}

/// Only reads of `ns/k6`, which every state holds at `@1`, probed in the old table
/// across the two tombstones of the setup and the one the racing write stores.
#[test]
fn tombstone_rebuild_racing_reads_of_a_key_behind_tombstones() {
    check(
        History::new(
            before_tombstone_rebuild(),
            vec![Op::Delete(keys("ns", "k2"))],
        ),
        vec![exact("ns", "k6"), Read::List, exact("ns", "k6")],
        None,
        vec![keys("ns", "k2")],
    );
}

/// The keys of the shrink models besides `ns/k0`: `ns/k1` .. `ns/k13`, and `ns/k40`,
/// `ns/k51` and `ns/k52`, which share a home slot.
const SHRINK_KEYS: [usize; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 40, 51, 52];

/// A relist of 53 objects under 17 keys (a 128-slot table, 17 used): 37 under
/// `ns/k0`, one under each of [`SHRINK_KEYS`]; then `ns/k40` deleted. One more
/// removal leaves 15 live keys, fewer than an eighth of the slots.
fn before_shrink() -> Vec<Op> {
    let bulk = (0..37).map(|n| {
        let name = format!("b{n}");
        (
            Tag::new("ns", &name, &format!("ub{n}"), "1"),
            keys("ns", "k0"),
        )
    });
    vec![
        Op::Replace(bulk.chain(SHRINK_KEYS.iter().map(|&n| k(n, "1"))).collect()),
        Op::Delete(keys("ns", "k40")),
    ]
}

/// Branches enough for the shrink models (a relist into 128 slots and a rebuild that
/// loads all 128).
const SHRINK_BRANCHES: usize = 4_000;

fn shrink_reads() -> Vec<Read> {
    vec![exact("ns", "k52"), exact("ns", "k51"), Read::List]
}

/// Deleting `ns/k51` stores its tombstone in the old table (on `ns/k52`'s probe, after
/// `ns/k40`'s), then rebuilds it at 64 slots.
#[test]
fn shrink_racing_exact_reads() {
    check_both_ways_in(
        SHRINK_BRANCHES,
        || History::new(before_shrink(), vec![Op::Delete(keys("ns", "k51"))]),
        &shrink_reads(),
        &[keys("ns", "k40"), keys("ns", "k51")],
    );
}

/// Only reads of `ns/k52`, which every state holds at `@1`, probed in the old table
/// across `ns/k40`'s tombstone and the one the racing write stores.
#[test]
fn shrink_racing_reads_of_a_key_behind_tombstones() {
    check_in(
        SHRINK_BRANCHES,
        History::new(before_shrink(), vec![Op::Delete(keys("ns", "k51"))]),
        vec![exact("ns", "k52"), Read::List, exact("ns", "k52")],
        None,
        vec![keys("ns", "k51")],
    );
}

/// One batch removes `ns/k51` (shrinking the table) and then updates `ns/k52` in the
/// new table.
#[test]
fn shrink_then_an_update_in_the_same_batch() {
    check_both_ways_in(
        SHRINK_BRANCHES,
        || {
            let (k51, _) = k(51, "1");
            let (k52, k52_key) = k(52, "2");
            History::new(
                before_shrink(),
                vec![Op::Batch(vec![(k51, None), (k52, Some(k52_key))])],
            )
        },
        &shrink_reads(),
        &[keys("ns", "k40"), keys("ns", "k51")],
    );
}
