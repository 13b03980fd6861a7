#![cfg(k8s_store_loom)]
//! Two writer threads at once. A watch has one writer, but every method takes `&self`,
//! so concurrent writers must still be linearizable: the final state and what each
//! write returned (`delete`'s count, `remove`'s bool) must be those of one serial
//! interleaving of the two threads' writes, and the internal invariants must hold.
//!
//! Keys `["ns", "a"]` and `["other", "b"]` are in shard 0, `["other", "a"]` in shard 1
//! (see moves.rs).

use std::sync::Arc;

use k8s_store_loom_tests::{
    Keys, Model, Op, Outcome, Read, Serial, Tag, fits, keys, model, new_store, serial_outcomes,
    tags,
};

/// Runs writers `a` and `b` at once after `setup`, and, when `reads` is not empty, a
/// third thread making those reads in order. Asserts that some serial order of the
/// writes explains everything: each thread's outcomes, the reader's reads (each a state
/// of that order, never going back) and the final state.
fn check(setup: Vec<Op>, a: Vec<Op>, b: Vec<Op>, reads: Vec<Keys>, extra: Vec<Keys>) {
    let initial = Model::after(&setup);
    let allowed = Arc::new(serial_outcomes(&initial, &a, &b));
    let (setup, a, b, reads) = (Arc::new(setup), Arc::new(a), Arc::new(b), Arc::new(reads));
    model(move || {
        let store = Arc::new(new_store());
        for op in setup.iter() {
            op.run(&store);
        }

        let other = {
            let (store, b) = (Arc::clone(&store), Arc::clone(&b));
            loom::thread::spawn(move || b.iter().map(|op| op.run(&store)).collect::<Vec<_>>())
        };
        let reader = (!reads.is_empty()).then(|| {
            let (store, reads) = (Arc::clone(&store), Arc::clone(&reads));
            loom::thread::spawn(move || {
                reads
                    .iter()
                    .map(|q| Read::get(&store, q))
                    .collect::<Vec<_>>()
            })
        });
        let got_a: Vec<Outcome> = a.iter().map(|op| op.run(&store)).collect();
        let got_b = other.join().expect("writer b");
        let seen = reader.map_or_else(Vec::new, |r| r.join().expect("reader"));

        store.validate().expect("validate");
        let listed = tags(&store.list());
        let explains = |s: &&Serial| {
            s.a == got_a && s.b == got_b && s.last().list() == listed && fits(&seen, &s.states)
        };
        match allowed.iter().find(explains) {
            Some(s) => s.last().assert_matches(&store, &extra),
            None => panic!(
                "no serial order explains: outcomes a {got_a:?}, b {got_b:?}, reads [{}], \
                 final list {listed:?}; serial orders:\n{}",
                seen.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                allowed
                    .iter()
                    .map(|s| format!("  a {:?} b {:?} -> {}", s.a, s.b, s.last()))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    });
}

#[test]
fn delete_races_add_into_the_same_key_and_a_cross_shard_move() {
    let x = Tag::new("ns", "a", "ux", "1");
    let y = Tag::new("ns", "b", "uy", "1");
    let z = Tag::new("other", "z", "uz", "1");
    check(
        vec![Op::Add(x.clone(), keys("ns", "a"))],
        // Writer a: delete the key, then add z where x may be moving to.
        vec![Op::Delete(keys("ns", "a")), Op::Add(z, keys("other", "a"))],
        // Writer b: add a sibling under the key being deleted, then move x away
        // (or re-create it, if the delete came first) across shards.
        vec![
            Op::Add(y, keys("ns", "a")),
            Op::Add(x.with_rv("2"), keys("other", "a")),
        ],
        vec![],
        vec![keys("ns", "a"), keys("other", "a"), vec!["ns".into()]],
    );
}

#[test]
fn remove_and_delete_race_moves_on_overlapping_keys() {
    let x = Tag::new("ns", "a", "ux", "1");
    let y = Tag::new("ns", "b", "uy", "1");
    check(
        vec![
            Op::Add(x.clone(), keys("ns", "a")),
            Op::Add(y.clone(), keys("ns", "a")),
        ],
        // Writer a: move x within the shard, then remove y.
        vec![
            Op::Add(x.with_rv("2"), keys("other", "b")),
            Op::Remove(y.clone()),
        ],
        // Writer b: delete the shared key, then put y where x went.
        vec![
            Op::Delete(keys("ns", "a")),
            Op::Add(y.with_rv("2"), keys("other", "b")),
        ],
        vec![],
        vec![keys("ns", "a"), keys("other", "b"), vec!["ns".into()]],
    );
}

#[test]
fn replace_races_an_add_and_a_remove() {
    let x = Tag::new("ns", "a", "ux", "1");
    let y = Tag::new("other", "b", "uy", "1");
    let w = Tag::new("other", "a", "uw", "1");
    check(
        vec![Op::Add(x.clone(), keys("ns", "a"))],
        // Writer a: a relist that keeps x (updated) and brings y.
        vec![Op::Replace(vec![
            (x.with_rv("2"), keys("ns", "a")),
            (y, keys("other", "b")),
        ])],
        // Writer b: a watch event adding w in the other shard, then x's delete event.
        vec![Op::Add(w, keys("other", "a")), Op::Remove(x)],
        vec![],
        vec![keys("ns", "a"), keys("other", "a"), keys("other", "b")],
    );
}

/// Three threads: the delete-versus-add race of the first model, watched by a reader
/// whose reads (the deleted key, the move's target in the other shard, the prefix)
/// must fit the serial order that explains the writers' outcomes.
#[test]
fn a_reader_sees_concurrent_writers_in_one_serial_order() {
    let x = Tag::new("ns", "a", "ux", "1");
    let y = Tag::new("ns", "b", "uy", "1");
    check(
        vec![Op::Add(x.clone(), keys("ns", "a"))],
        vec![Op::Delete(keys("ns", "a"))],
        vec![
            Op::Add(y, keys("ns", "a")),
            Op::Add(x.with_rv("2"), keys("other", "a")),
        ],
        vec![keys("other", "a"), keys("ns", "a"), vec!["ns".into()]],
        vec![keys("ns", "a"), keys("other", "a"), vec!["ns".into()]],
    );
}
