#![cfg(k8s_store_loom)]
//! `delete(keys)` of a key holding two objects, followed by an add into the same key,
//! racing a reader: the two objects disappear together (from the exact get, the prefix
//! get, the list and the length), and the re-added object never appears beside them.
//!
//! `["ns", "shared"]` is in shard 1 (see moves.rs); a bystander in shard 0 under the
//! same first component keeps the prefix group alive through the delete.

use std::sync::Arc;

use k8s_store_loom_tests::{History, Observer, Op, Tag, keys, model, new_store};

#[test]
fn delete_removes_a_whole_key_at_once_and_a_re_add_follows_it() {
    let x = Tag::new("ns", "x", "ux", "1");
    let y = Tag::new("ns", "y", "uy", "1");
    let bystander = Tag::new("ns", "a", "ua", "1");
    let h = Arc::new(History::new(
        vec![
            Op::Add(x, keys("ns", "shared")),
            Op::Add(y.clone(), keys("ns", "shared")),
            Op::Add(bystander, keys("ns", "a")),
        ],
        vec![
            Op::Delete(keys("ns", "shared")),
            Op::Add(y.with_rv("2"), keys("ns", "shared")),
        ],
    ));
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

        let mut r = Observer::new(&h, "reader");
        let shared = keys("ns", "shared");
        r.get(&store, &shared);
        r.get(&store, &["ns".to_owned()]);
        r.len(&store);
        r.list(&store);
        r.get(&store, &shared);

        writer.join().expect("writer");
        h.last().assert_matches(&store, &[shared]);
        store.validate().expect("validate");
    });
}
