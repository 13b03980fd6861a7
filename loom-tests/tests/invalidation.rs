#![cfg(k8s_store_loom)]
//! Watch events racing a fetch: once the event's write (`update`, `remove`, `delete`)
//! has returned, the body the fetch read before it is never served again, neither from
//! the cache nor by joining the fetch still in flight.
//!
//! A reader `get`s the object (reference at resourceVersion "1") while the writer
//! changes it on the model's API server and then delivers the watch event. The fetcher
//! reads the server when first polled and answers after a yield, so loom also runs the
//! whole write between a fetch's read and its answer (the stale-fill race). After the
//! write returns, the writer's own reads must see the server's new state; so must
//! every read after both threads are done.

mod common;

use std::sync::Arc;

use common::{Answer, Cached, ModelFetcher, NAME, NS, Server, config_map, keys, new_cached, rv};
use k8s_store_loom_tests::model;
use loom::future::block_on;

/// The reads after the write (on the writer's thread, and again at the end): `get` and
/// `fetch` (which serves any cached body, whatever its resourceVersion) both answer
/// with the server's state `now`.
fn assert_reads(store: &Cached, now: Answer, who: &str) {
    let got = block_on(store.get(&keys())).expect("get");
    let fetched = block_on(store.fetch(NS, NAME)).expect("fetch");
    match now {
        Answer::Found(v) => {
            let got: Vec<&str> = got.iter().map(|o| rv(o)).collect();
            assert_eq!(got, [v], "{who}: get after the event");
            assert_eq!(
                fetched.as_deref().map(rv),
                Some(v),
                "{who}: fetch after the event"
            );
        }
        Answer::NotFound => {
            assert!(got.is_empty(), "{who}: get after the removal");
            assert!(
                fetched.is_none(),
                "{who}: fetch after the removal served resourceVersion {:?}",
                fetched.as_deref().map(rv)
            );
        }
        Answer::Fails => unreachable!("no model injects errors here"),
    }
}

/// Runs a reader's `get` against `write`, which changes the server to `now` and then
/// applies the watch event. `reader_may_see`: what the reader's own `get` may return
/// (it raced the write).
fn race(now: Answer, write: fn(&Cached), reader_may_see: &'static [&'static [&'static str]]) {
    model(move || {
        let server = Server::new(Answer::Found("1"));
        let store = Arc::new(new_cached(ModelFetcher::new(&server)));
        store.add(&config_map("1"), &keys()).expect("add");

        let reader = {
            let store = Arc::clone(&store);
            loom::thread::spawn(move || {
                let got = block_on(store.get(&keys())).expect("get");
                got.iter().map(|o| rv(o).to_owned()).collect::<Vec<_>>()
            })
        };

        server.set(now);
        write(&store);
        assert_reads(&store, now, "writer");

        let seen = reader.join().expect("reader");
        assert!(
            reader_may_see.iter().any(|ok| *ok == seen),
            "reader saw {seen:?}, expected one of {reader_may_see:?}"
        );
        store.validate().expect("validate");
        assert_reads(&store, now, "after both");
    });
}

/// `update` to resourceVersion "2": the reader may see "1" (it read first) or "2".
#[test]
fn update_invalidates_a_fetch_in_flight() {
    race(
        Answer::Found("2"),
        |store| store.update(&config_map("2"), &keys()).expect("update"),
        &[&["1"], &["2"]],
    );
}

/// `remove` after the server deleted the object: the reader may see it (it read
/// first) or not; afterwards nobody does.
#[test]
fn remove_invalidates_a_fetch_in_flight() {
    race(
        Answer::NotFound,
        |store| assert!(store.remove(&config_map("1")).expect("remove")),
        &[&["1"], &[]],
    );
}

/// `delete(keys)` after the server deleted the object: as `remove`.
#[test]
fn delete_invalidates_a_fetch_in_flight() {
    race(
        Answer::NotFound,
        |store| assert_eq!(store.delete(&keys()).expect("delete"), 1),
        &[&["1"], &[]],
    );
}

/// `clear()` after the server deleted the object: as `remove` (clear drops every
/// reference and every cached body, and marks every fetch in flight stale).
///
/// This model found that `clear` once left flights in progress registered and not
/// stale, so that a `fetch` after it joined a flight that read the server before the
/// clear, and that flight then filled the cache with the old body.
#[test]
fn clear_invalidates_a_fetch_in_flight() {
    race(Answer::NotFound, |store| store.clear(), &[&["1"], &[]]);
}
