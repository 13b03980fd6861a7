//! Singleflight: concurrent misses of one object share one fetch.
//!
//! A caller that misses the cache [`join`](Flights::join)s the key's flight. The first
//! becomes the **leader** and fetches; later ones **wait** for the leader's outcome,
//! which every waiter receives (a value or an error alike).
//!
//! - **Cancellation.** The leader holds a [`Leader`] guard. If its future is dropped
//!   before it completes, the guard's `Drop` removes the flight and wakes the waiters
//!   with [`Outcome::Abandoned`]; each of them joins again and one becomes the new
//!   leader. Nobody is left waiting for a fetch that no one is running (moka's
//!   `value_initializer.rs` solves the same problem the same way).
//! - **Panics.** A leader that panics (in its fetch, or in the cache fill it runs under
//!   the shard lock) is dropped while unwinding; its guard wakes the waiters with
//!   [`Outcome::Panicked`], which they report as an error rather than fetching again
//!   into what is likely the same panic.
//! - **Invalidation.** [`Flights::invalidate`] (a watch event for the object) marks the
//!   flight in progress stale and detaches it, so later callers start a fresh fetch and
//!   the stale leader's result is handed to its own waiters but never filled into the
//!   cache. The fill and the invalidation both run under the key's shard lock, so one of
//!   them is ordered first: an invalidation either sees the filled entry (and the caller
//!   removes it) or marks the flight stale before the fill.
//!
//! The module is runtime-agnostic (wakers only), so loom can drive it with
//! `loom::future::block_on`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use hashbrown::HashTable;

use crate::sync::{Arc, Mutex};

/// What a flight ended with.
#[derive(Debug, Clone)]
pub(crate) enum Outcome<T> {
    /// The leader's result.
    Done(T),
    /// The leader was dropped before finishing; join again.
    Abandoned,
    /// The leader panicked (in its fetch, or while caching the result under the shard
    /// lock); the waiters report an error instead of running into the same panic.
    Panicked,
}

struct FlightState<T> {
    outcome: Option<Outcome<T>>,
    wakers: Vec<Waker>,
    stale: bool,
}

/// One fetch in progress.
pub(crate) struct Flight<T> {
    state: Mutex<FlightState<T>>,
}

impl<T> Flight<T> {
    fn new() -> Self {
        Self {
            state: Mutex::new(FlightState {
                outcome: None,
                wakers: Vec::new(),
                stale: false,
            }),
        }
    }

    /// Sets the outcome (once) and wakes every waiter. Wakers are taken out and woken
    /// after the lock is released.
    fn finish(&self, outcome: Outcome<T>) {
        let wakers = {
            let mut state = self.state.lock();
            if state.outcome.is_none() {
                state.outcome = Some(outcome);
            }
            std::mem::take(&mut state.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    fn is_stale(&self) -> bool {
        self.state.lock().stale
    }
}

struct Slot<Key, T> {
    key: Key,
    flight: Arc<Flight<T>>,
}

type Shard<Key, T> = Mutex<HashTable<(u64, Slot<Key, T>)>>;

/// The flights in progress, in hash-sharded tables.
pub(crate) struct Flights<Key, T> {
    shards: Box<[Shard<Key, T>]>,
}

impl<Key, T> std::fmt::Debug for Flights<Key, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flights")
            .field("shards", &self.shards.len())
            .finish()
    }
}

/// What [`Flights::join`] made of a caller.
pub(crate) enum Join<'a, Key, T: Clone, V> {
    /// The `ready` check found the value under the shard lock.
    Ready(V),
    /// A flight is in progress: await its outcome.
    Wait(Wait<T>),
    /// No flight was in progress: fetch, then [`Leader::complete`].
    Lead(Leader<'a, Key, T>),
}

impl<Key, T: Clone> Flights<Key, T> {
    pub(crate) fn new(shards: usize) -> Self {
        Self {
            shards: (0..shards.max(1))
                .map(|_| Mutex::new(HashTable::new()))
                .collect(),
        }
    }

    fn shard(&self, hash: u64) -> &Shard<Key, T> {
        // `shards` is never empty (`new` makes at least one), so the index is in range.
        &self.shards[(hash >> 7) as usize % self.shards.len()]
    }

    /// Under the key's shard lock: `ready()` (a cache re-check; a leader fills the cache
    /// under this lock before it leaves, so a hit here is exact), else the flight in
    /// progress, else a new flight led by this caller.
    pub(crate) fn join<V>(
        &self,
        hash: u64,
        is_key: impl Fn(&Key) -> bool,
        make_key: impl FnOnce() -> Key,
        ready: impl FnOnce() -> Option<V>,
    ) -> Join<'_, Key, T, V> {
        let mut table = self.shard(hash).lock();
        if let Some(v) = ready() {
            return Join::Ready(v);
        }
        if let Some((_, slot)) = table.find(hash, |(h, s)| *h == hash && is_key(&s.key)) {
            return Join::Wait(Wait {
                flight: Arc::clone(&slot.flight),
            });
        }
        let flight = Arc::new(Flight::new());
        table.insert_unique(
            hash,
            (
                hash,
                Slot {
                    key: make_key(),
                    flight: Arc::clone(&flight),
                },
            ),
            |(h, _)| *h,
        );
        Join::Lead(Leader {
            flights: self,
            hash,
            flight: Some(flight),
        })
    }

    /// Marks the key's flight (if any) stale and detaches it, then runs `also` (the
    /// cache removal) under the same lock.
    pub(crate) fn invalidate(&self, hash: u64, is_key: impl Fn(&Key) -> bool, also: impl FnOnce()) {
        let mut table = self.shard(hash).lock();
        if let Ok(entry) = table.find_entry(hash, |(h, s)| *h == hash && is_key(&s.key)) {
            let ((_, slot), _) = entry.remove();
            slot.flight.state.lock().stale = true;
        }
        also();
    }

    /// Marks every flight stale and detaches it (a `clear`).
    pub(crate) fn invalidate_all(&self) {
        for shard in &self.shards {
            let mut table = shard.lock();
            for (_, slot) in table.drain() {
                slot.flight.state.lock().stale = true;
            }
        }
    }

    /// Flights in progress (for `validate` and tests).
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Detaches the flight if it is still the one registered for `hash`.
    fn detach(table: &mut HashTable<(u64, Slot<Key, T>)>, hash: u64, flight: &Arc<Flight<T>>) {
        if let Ok(entry) =
            table.find_entry(hash, |(h, s)| *h == hash && Arc::ptr_eq(&s.flight, flight))
        {
            entry.remove();
        }
    }
}

/// The leader's duty: complete the flight, or abandon it by being dropped.
pub(crate) struct Leader<'a, Key, T: Clone> {
    flights: &'a Flights<Key, T>,
    hash: u64,
    /// `None` once completed.
    flight: Option<Arc<Flight<T>>>,
}

impl<Key, T: Clone> Leader<'_, Key, T> {
    /// Publishes the result: under the shard lock, `fill` (the cache insert) runs only
    /// if no invalidation marked the flight stale, and the flight is detached; then
    /// every waiter is woken with a clone of `value`.
    ///
    /// If `fill` panics, the guard is still armed: its `Drop` (after the shard lock is
    /// released by the unwinding) detaches the flight and wakes the waiters with
    /// [`Outcome::Panicked`]. It used to be disarmed first, which left the flight in
    /// the table and its waiters waiting forever.
    pub(crate) fn complete(mut self, value: T, fill: impl FnOnce(&T)) {
        let Some(flight) = self.flight.clone() else {
            return;
        };
        {
            let mut table = self.flights.shard(self.hash).lock();
            if !flight.is_stale() {
                fill(&value);
            }
            Flights::detach(&mut table, self.hash, &flight);
        }
        self.flight = None;
        flight.finish(Outcome::Done(value));
    }
}

impl<Key, T: Clone> Drop for Leader<'_, Key, T> {
    fn drop(&mut self) {
        // Cancelled or panicked before completing: detach the flight and wake the
        // waiters, so that nobody waits for a result that will not come.
        if let Some(flight) = self.flight.take() {
            {
                let mut table = self.flights.shard(self.hash).lock();
                Flights::detach(&mut table, self.hash, &flight);
            }
            flight.finish(if std::thread::panicking() {
                Outcome::Panicked
            } else {
                Outcome::Abandoned
            });
        }
    }
}

/// A waiter's future: resolves to the flight's outcome.
///
/// # Cancel safety
/// Dropping it only leaves a stale waker behind, which the leader wakes harmlessly.
pub(crate) struct Wait<T> {
    flight: Arc<Flight<T>>,
}

impl<T: Clone> Future for Wait<T> {
    type Output = Outcome<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.flight.state.lock();
        if let Some(outcome) = &state.outcome {
            return Poll::Ready(outcome.clone());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(flights: &Flights<u32, u32>) -> Join<'_, u32, u32, u32> {
        flights.join(7, |k| *k == 7, || 7, || None)
    }

    #[tokio::test]
    async fn a_leader_that_panics_while_filling_wakes_its_waiters_with_panicked() {
        let flights = Flights::new(1);
        let Join::Lead(leader) = join(&flights) else {
            panic!("the first caller leads")
        };
        let Join::Wait(wait) = join(&flights) else {
            panic!("the second waits")
        };
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            leader.complete(1, |_| panic!("the cache fill panics"))
        }));
        assert!(unwound.is_err());
        // The waiter used to wait forever: the flight stayed in the table, unfinished.
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(5), wait).await;
        assert!(
            matches!(outcome, Ok(Outcome::Panicked)),
            "woken with Panicked"
        );
        assert_eq!(flights.len(), 0, "the flight was detached");
        assert!(
            matches!(join(&flights), Join::Lead(_)),
            "a new flight can start"
        );
    }

    #[tokio::test]
    async fn a_cancelled_leader_hands_over_and_a_completed_one_delivers() {
        let flights = Flights::new(1);
        let Join::Lead(leader) = join(&flights) else {
            panic!("leads")
        };
        let Join::Wait(wait) = join(&flights) else {
            panic!("waits")
        };
        drop(leader);
        assert!(matches!(wait.await, Outcome::Abandoned));
        let Join::Lead(leader) = join(&flights) else {
            panic!("leads again")
        };
        let Join::Wait(wait) = join(&flights) else {
            panic!("waits")
        };
        let mut filled = None;
        leader.complete(5, |v| filled = Some(*v));
        assert_eq!(filled, Some(5));
        assert!(matches!(wait.await, Outcome::Done(5)));
    }
}
