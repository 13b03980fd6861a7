#![cfg(k8s_store_loom)]
//! A reader waiting for a version racing the write that brings it: the waiter is
//! woken (no lost wake-up), by every kind of write, and a dropped writer ends the wait.
//!
//! The waiter polls its wait once. If that is pending, it joins the writer (whose write
//! is then complete) and asserts that it was woken, then polls again, which must be
//! ready: a wait that was pending while the write brought its version and was not
//! woken is a lost wake-up. (Not `block_on`: loom reports a waiter parked forever as a
//! deadlock by aborting the process, which a `should_panic` twin cannot catch.) In loom
//! builds a wait has no timer, so it ends only when satisfied or when the writer is
//! gone.
//!
//! The twins seed the two ways the protocol can lose a wake-up (the crate's loom-only
//! `freshness::seeded` switch): a waiter that releases the lock between its check and
//! its registration, and a write that wakes the waiters before it records its
//! versions. Loom must find both.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use k8s_store::WaitError;
use k8s_store::freshness::seeded::{self, Bug};
use k8s_store_loom_tests::{Tag, keys, model, new_store};
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::thread::JoinHandle;

/// A waker that records that it was woken.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls `wait` once; if it is pending, joins `writer` and requires that the write woke
/// it and that it is ready now.
fn wait_racing<F: Future<Output = Result<(), WaitError>>>(
    wait: F,
    writer: JoinHandle<()>,
) -> Result<(), WaitError> {
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(Arc::clone(&flag));
    let mut cx = Context::from_waker(&waker);
    let mut wait = pin!(wait);
    let first = wait.as_mut().poll(&mut cx);
    writer.join().expect("writer");
    if let Poll::Ready(outcome) = first {
        return outcome;
    }
    assert!(
        flag.0.load(Ordering::SeqCst),
        "lost wake-up: the wait was pending while the write came, and was not woken"
    );
    match wait.as_mut().poll(&mut cx) {
        Poll::Ready(outcome) => outcome,
        Poll::Pending => panic!("woken after the write, yet still pending"),
    }
}

fn x() -> Tag {
    Tag::new("ns", "a", "ux", "1")
}

/// What the writer does to bring version 2.
#[derive(Clone, Copy)]
enum Write {
    Update,
    Remove,
    Batch,
    Relist,
}

/// One writer brings version 2 while one reader waits for it, by object or by version.
fn check(write: Write, by_object: bool, bug: Option<Bug>) {
    seeded::set(bug);
    model(move || {
        let store = Arc::new(new_store());
        store.add(x().object(), &keys("ns", "a")).expect("add");
        let reader = store.reader();
        let writer = {
            let store = Arc::clone(&store);
            loom::thread::spawn(move || {
                let next = x().with_rv("2").object();
                match write {
                    Write::Update => store.update(next, &keys("ns", "a")).expect("update"),
                    Write::Remove => {
                        assert!(store.remove(&next).expect("remove"));
                    }
                    Write::Batch => {
                        let mut batch = k8s_store::Batch::new();
                        batch.upsert(next, &keys("other", "a"));
                        store.apply(batch).expect("batch");
                    }
                    Write::Relist => {
                        store
                            .replace(vec![(next, keys("ns", "a"))])
                            .expect("replace");
                    }
                }
            })
        };
        let forever = Duration::from_secs(3600);
        let wanted = x().with_rv("2").object();
        let waited = if by_object {
            wait_racing(reader.wait_for_object(&wanted, forever), writer)
        } else {
            wait_racing(reader.wait_for_version("2", forever), writer)
        };
        waited.expect("satisfied");
        assert_eq!(reader.freshness().waiting, 0, "no waiter left behind");
    });
    seeded::set(None);
}

#[test]
fn a_version_wait_is_woken_by_the_write_that_brings_it() {
    check(Write::Update, false, None);
}

#[test]
fn an_object_wait_is_woken_by_an_update_a_removal_a_batch_and_a_relist() {
    for write in [Write::Update, Write::Remove, Write::Batch, Write::Relist] {
        check(write, true, None);
    }
}

#[test]
#[should_panic]
fn a_waiter_registering_after_its_check_is_caught() {
    check(Write::Update, true, Some(Bug::RegisterAfterCheck));
}

#[test]
#[should_panic]
fn a_write_waking_before_it_records_is_caught() {
    check(Write::Update, false, Some(Bug::WakeBeforeRecord));
}

/// A writer dropped while a reader waits for a version that never comes: the wait
/// ends with `WriterDropped`, never parks forever.
#[test]
fn a_dropped_writer_ends_the_wait() {
    model(|| {
        let store = new_store();
        store.add(x().object(), &keys("ns", "a")).expect("add");
        let reader = store.reader();
        let writer = loom::thread::spawn(move || drop(store));
        let waited = wait_racing(
            reader.wait_for_version("2", Duration::from_secs(3600)),
            writer,
        );
        assert!(
            matches!(waited, Err(WaitError::WriterDropped(_))),
            "{waited:?}"
        );
    });
}
