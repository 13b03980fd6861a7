#![cfg(k8s_store_loom)]
//! The on-demand tier's singleflight: concurrent misses of one object share one fetch,
//! its value or its error reaches every caller, and a caller that drops its future
//! hands the fetch over instead of leaving the others waiting.
//!
//! The fetcher (`common`) reads the model's API server when first polled and yields
//! once before answering, so loom interleaves the other callers between the start and
//! the end of a fetch. A caller that never gets its answer is reported by loom as a
//! deadlock.

mod common;

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use common::{
    Answer, Cached, ModelFetcher, NAME, NS, Server, assert_fetch_error, config_map, keys,
    new_cached, rv,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store::{Objects, StoreError};
use k8s_store_loom_tests::model;
use loom::future::block_on;

/// A store over `server` holding the object's reference at resourceVersion "1".
fn store_with_reference(server: &Arc<Server>) -> Arc<Cached> {
    let store = Arc::new(new_cached(ModelFetcher::new(server)));
    store.add(&config_map("1"), &keys()).expect("add");
    store
}

/// `get` of the object's key, unwrapped to its one body.
fn get_one(store: &Cached) -> Result<Arc<ConfigMap>, StoreError> {
    let got = block_on(store.get(&keys()))?;
    assert_eq!(got.len(), 1, "the one object");
    Ok(Arc::clone(&got[0]))
}

/// `fetch(ns, name)`, which bypasses the index.
fn fetch_one(store: &Cached) -> Result<Arc<ConfigMap>, StoreError> {
    Ok(block_on(store.fetch(NS, NAME))?.expect("the server has the object"))
}

/// Executions in which the model's interesting interleaving happened (plain atomics,
/// outside the model: loom runs executions one after another). A model asserts at the
/// end that loom reached it, so that a model that passes is known to check something.
static COALESCED: AtomicUsize = AtomicUsize::new(0);

/// Polls `fut` once with a waker that does nothing: enough to start it (it registers
/// as the leader, or as a waiter) without driving it to completion.
fn poll_once<F: Future + ?Sized>(fut: Pin<&mut F>) -> Poll<F::Output> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

type GetFuture = Pin<Box<dyn Future<Output = Result<Objects<ConfigMap>, StoreError>> + Send>>;

/// A `get` of the object's key that owns what it borrows, to hand to another thread.
fn get_future(store: &Arc<Cached>) -> GetFuture {
    let store = Arc::clone(store);
    Box::pin(async move { store.get(&keys()).await })
}

/// A `get` and a `fetch` of one missed object, on two threads: one fetch, one shared
/// body (the very same `Arc`), and nothing registered afterwards. Loom runs both the
/// coalesced case (the second caller waits for the first one's fetch) and the late
/// one (the second caller finds the body the first one cached).
#[test]
fn concurrent_misses_share_one_fetch() {
    COALESCED.store(0, Ordering::Relaxed);
    model(|| {
        let server = Server::new(Answer::Found("1"));
        let store = store_with_reference(&server);

        let other = {
            let store = Arc::clone(&store);
            loom::thread::spawn(move || fetch_one(&store))
        };
        let mine = get_one(&store).expect("get");
        let theirs = other.join().expect("other").expect("fetch");

        assert_eq!(rv(&mine), "1");
        assert!(Arc::ptr_eq(&mine, &theirs), "one shared body");
        assert_eq!(server.calls(), 1, "one fetch for two concurrent misses");
        let stats = store.stats();
        assert_eq!(stats.fetches, 1);
        assert_eq!(stats.hits + stats.misses, 2, "{stats:?}");
        assert_eq!(
            stats.misses,
            stats.coalesced + 1,
            "every miss but the leader's waited: {stats:?}"
        );
        if stats.coalesced == 1 {
            COALESCED.fetch_add(1, Ordering::Relaxed);
        }
        store.validate().expect("validate");

        // The body is cached: a later read is a hit on the same `Arc`.
        assert!(Arc::ptr_eq(&get_one(&store).expect("get"), &mine));
        assert_eq!(server.calls(), 1);
    });
    assert!(
        COALESCED.load(Ordering::Relaxed) > 0,
        "loom never coalesced the misses"
    );
}

/// Three callers of one object: a leader whose fetch is in flight, driven to the end
/// by one thread, while a `get` and a `fetch` on two others join it or find its body
/// cached. One fetch, one shared body.
#[test]
fn three_callers_share_one_fetch() {
    model(|| {
        let server = Server::new(Answer::Found("1"));
        let store = store_with_reference(&server);

        let mut leader = get_future(&store);
        assert!(
            poll_once(leader.as_mut()).is_pending(),
            "the fetch is in flight"
        );
        let leader = loom::thread::spawn(move || block_on(leader));
        let other = {
            let store = Arc::clone(&store);
            loom::thread::spawn(move || get_one(&store))
        };
        let mine = fetch_one(&store).expect("fetch");
        let other = other.join().expect("other").expect("get");
        let led = leader.join().expect("leader").expect("get");

        assert_eq!(led.len(), 1);
        assert!(
            Arc::ptr_eq(&mine, &other) && Arc::ptr_eq(&mine, &led[0]),
            "one shared body"
        );
        assert_eq!(server.calls(), 1, "one fetch for three callers");
        store.validate().expect("validate");
    });
}

/// A failing fetch with a caller waiting for it: the leader is started (its fetch in
/// flight) and a second caller joins it before the leader may finish; then another
/// thread drives the leader to the end while this one waits. One fetch, both callers
/// get its error, and nothing is cached (the next read fetches again).
#[test]
fn a_failed_fetch_reaches_every_caller_and_is_not_cached() {
    model(|| {
        let server = Server::new(Answer::Fails);
        let store = store_with_reference(&server);

        let mut leader = get_future(&store);
        assert!(
            poll_once(leader.as_mut()).is_pending(),
            "the fetch is in flight"
        );
        let mut waiter = get_future(&store);
        assert!(
            poll_once(waiter.as_mut()).is_pending(),
            "waits for the leader"
        );
        assert_eq!(
            store.stats().coalesced,
            1,
            "the second caller joined the first"
        );

        let leader = loom::thread::spawn(move || block_on(leader));
        let err = block_on(waiter).expect_err("the fetch failed");
        assert_fetch_error(&err);
        let err = leader
            .join()
            .expect("leader")
            .expect_err("the fetch failed");
        assert_fetch_error(&err);

        assert_eq!(server.calls(), 1, "one fetch for both callers");
        let stats = store.stats();
        assert_eq!((stats.fetches, stats.fetch_errors), (1, 1), "{stats:?}");
        assert_eq!(stats.entries, 0, "errors are not cached");
        store.validate().expect("validate");

        // Not cached: the next read fetches again (and now succeeds).
        server.set(Answer::Found("1"));
        assert_eq!(rv(&get_one(&store).expect("get")), "1");
        assert_eq!(server.calls(), 2);
    });
}

/// A caller's future is polled once (it may become the leader and start the fetch)
/// and dropped, while another thread reads the same object: that thread still gets
/// the body (taking the fetch over if it was waiting for the dropped leader), and
/// nothing is left registered.
#[test]
fn a_cancelled_leader_hands_the_fetch_over() {
    model(|| {
        let server = Server::new(Answer::Found("1"));
        let store = store_with_reference(&server);

        let other = {
            let store = Arc::clone(&store);
            loom::thread::spawn(move || get_one(&store))
        };
        {
            let keys = keys();
            let mut fut = pin!(store.get(&keys));
            let mut cx = Context::from_waker(Waker::noop());
            if let Poll::Ready(got) = fut.as_mut().poll(&mut cx) {
                // Only possible as a cache hit, after the other thread's fetch.
                let got = got.expect("get");
                assert_eq!(got.len(), 1);
                assert_eq!(rv(&got[0]), "1");
            }
            // Dropped here: a leader abandons its flight.
        }
        let got = other.join().expect("other").expect("get");
        assert_eq!(rv(&got), "1");
        assert!(
            (1..=2).contains(&server.calls()),
            "{} fetches: the dropped leader's and its successor's at most",
            server.calls()
        );
        store.validate().expect("validate");

        // The surviving caller's fetch was cached.
        let calls = server.calls();
        assert!(Arc::ptr_eq(&get_one(&store).expect("get"), &got));
        assert_eq!(server.calls(), calls);
    });
}

/// A leader is started and a second caller joins it; then the leader is dropped while
/// another thread waits for it: the waiter is told the fetch was abandoned, joins
/// again, leads a fetch of its own and gets the body. Two fetches, nothing left
/// registered.
#[test]
fn a_waiter_takes_over_from_a_cancelled_leader() {
    model(|| {
        let server = Server::new(Answer::Found("1"));
        let store = store_with_reference(&server);

        let mut leader = get_future(&store);
        assert!(
            poll_once(leader.as_mut()).is_pending(),
            "the fetch is in flight"
        );
        let mut waiter = get_future(&store);
        assert!(
            poll_once(waiter.as_mut()).is_pending(),
            "waits for the leader"
        );

        let waiter = loom::thread::spawn(move || block_on(waiter));
        drop(leader);
        let got = waiter.join().expect("waiter").expect("get");
        assert_eq!(got.len(), 1);
        assert_eq!(rv(&got[0]), "1");
        assert_eq!(
            server.calls(),
            2,
            "the abandoned fetch and the waiter's own"
        );
        store.validate().expect("validate");
        assert!(
            Arc::ptr_eq(&get_one(&store).expect("get"), &got[0]),
            "cached"
        );
    });
}
