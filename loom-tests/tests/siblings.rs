#![cfg(k8s_store_loom)]
//! Removing one object from a shared key racing a reader of its sibling: the sibling
//! never disappears from an exact get, a prefix get or a list, and every read is a
//! state of the writer's sequence, never going back.
//!
//! `x` and `y` share a key. The writer removes `x` (or moves it away to a key in the
//! other shard and then removes it), which rewrites the shared bucket in place: from
//! two members to one, and for the key `["ns", "a"]`, which is `x`'s own namespace and
//! name, from a stored bucket back to an elided one.

use std::sync::Arc;

use k8s_store_loom_tests::{History, Keys, Observer, Op, Tag, keys, model, new_store};

fn check(shared: Keys, x_first: bool, writes: impl Fn(&Tag) -> Vec<Op>) {
    let x = Tag::new("ns", "a", "ux", "1");
    let y = Tag::new("ns", "b", "uy", "1");
    let setup = if x_first {
        vec![
            Op::Add(x.clone(), shared.clone()),
            Op::Add(y.clone(), shared.clone()),
        ]
    } else {
        vec![
            Op::Add(y.clone(), shared.clone()),
            Op::Add(x.clone(), shared.clone()),
        ]
    };
    let h = Arc::new(History::new(setup, writes(&x)));
    model(move || {
        let store = Arc::new(new_store());
        h.set_up(&store);

        let writer = {
            let (h, store) = (Arc::clone(&h), Arc::clone(&store));
            loom::thread::spawn(move || {
                for i in 0..h.len() {
                    h.run(i, &store);
                }
            })
        };

        let mut r = Observer::new(&h, "sibling reader");
        let has_y = |tags: &[Tag]| tags.iter().any(|t| t.uid == "uy");
        let prefix = shared[..1].to_vec();
        assert!(
            has_y(&r.get(&store, &shared)),
            "sibling gone from exact get"
        );
        assert!(
            has_y(&r.get(&store, &prefix)),
            "sibling gone from prefix get"
        );
        assert!(has_y(&r.list(&store).1), "sibling gone from list");
        assert!(
            has_y(&r.get(&store, &shared)),
            "sibling gone from exact get"
        );
        assert!(r.len(&store) >= 1, "sibling not counted");

        writer.join().expect("writer");
        h.last()
            .assert_matches(&store, &[shared.clone(), keys("other", "b")]);
        store.validate().expect("validate");
    });
}

#[test]
fn removing_one_object_keeps_its_sibling_in_a_stored_bucket() {
    // ["ns", "shared"] is nobody's own namespace/name: the bucket stays stored.
    check(keys("ns", "shared"), true, |x| vec![Op::Remove(x.clone())]);
}

#[test]
fn removing_one_object_keeps_its_sibling_when_the_bucket_elides() {
    // x = ns/a and y = ns/b. Under ["ns", "a"] the bucket starts elided for x, turns
    // stored when y joins, and stays stored when x leaves (y cannot elide that key).
    // Under ["ns", "b"] it starts elided for y and goes back to elided for y when x
    // leaves.
    check(keys("ns", "a"), true, |x| vec![Op::Remove(x.clone())]);
    check(keys("ns", "b"), false, |x| vec![Op::Remove(x.clone())]);
}

#[test]
fn moving_one_object_away_keeps_its_sibling() {
    // ["ns", "shared"] is in shard 1 and ["other", "b"] in shard 0 (see moves.rs).
    check(keys("ns", "shared"), true, |x| {
        vec![
            Op::Add(x.with_rv("2"), keys("other", "b")),
            Op::Remove(x.with_rv("2")),
        ]
    });
}
