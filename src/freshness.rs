//! Freshness: which resourceVersions a store has applied, and waiting until it has
//! applied the version of the controller's own write.
//!
//! Every informer cache serves reads that may be stale right after the controller's
//! own write: the write returned resourceVersion `R`, and the watch event carrying `R`
//! has not been applied yet. A reconciler that reads its cache then acts on the old
//! state (creates a second Pod, reverts its own status). The stores remember the newest
//! version they applied and hold each object at its own version, so a reader can wait
//! (with a timeout) until the store has caught up:
//!
//! - [`wait_for_version`](crate::MemoryReader::wait_for_version): the store has applied
//!   every write up to `R`;
//! - [`wait_for_object`](crate::MemoryReader::wait_for_object): the object the API
//!   returned is in the store at its version or newer, or it is gone and the store has
//!   applied its version.
//!
//! # How versions compare
//!
//! A resourceVersion made of ASCII digits, with no leading zero, that fits in a `u64`
//! (every version etcd hands out) compares as an integer, as KEP-5504 ("comparable
//! resource versions") lets clients do. Any other non-empty version (an aggregated API
//! server's opaque token) compares by **equality only**: a store wait for it resolves
//! while the newest version the store applied is exactly it, an object wait while the
//! object is stored at exactly it. A version of `""`, `"0"` (which means "any" in the
//! API and names no write), one with whitespace, control or non-ASCII characters, or
//! one longer than 128 bytes is refused with [`WaitError::InvalidVersion`].
//!
//! # What a relist does
//!
//! A relist replaces the objects, and with them every object's version. The store's
//! newest version becomes the greater of what it had and the newest version among the
//! listed objects: a relist reflects the state at its list's version, which is never
//! older than the events before it (kube's watcher does not expose the list's own
//! version, so the store knows a lower bound of it). A wait for a version that only a
//! deletion during the relist carried then resolves at the next event, or times out.
//!
//! # The protocol
//!
//! A write publishes its state first, then records its versions under this module's
//! lock and takes the waiters registered so far, and wakes them after releasing it. A
//! waiter checks its condition (the recorded versions, and the published state for an
//! object) and registers under the same lock. So a waiter either checked after the
//! write recorded (and sees the write), or registered before it (and is woken by it):
//! no wake-up is lost. `loom-tests/tests/freshness.rs` models it.

use std::fmt;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::readiness::WriterDropped;
use crate::sync::{Counter, Mutex, now_nanos};

/// The longest version a wait accepts.
const MAX_VERSION_BYTES: usize = 128;

/// A resourceVersion as the stores compare it (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version<'a> {
    /// Digits with no leading zero that fit in a `u64`: compared as integers.
    Numeric(u64),
    /// Anything else: compared by equality.
    Opaque(&'a str),
}

impl<'a> Version<'a> {
    /// How a stored or applied version compares. Never fails: the store keeps whatever
    /// versions its objects carry.
    pub(crate) fn of(rv: &'a str) -> Self {
        let b = rv.as_bytes();
        if b.is_empty() || b.len() > 20 || (b[0] == b'0' && b.len() > 1) {
            return Version::Opaque(rv);
        }
        let mut n: u64 = 0;
        for &c in b {
            if !c.is_ascii_digit() {
                return Version::Opaque(rv);
            }
            let Some(next) = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(c - b'0')))
            else {
                return Version::Opaque(rv);
            };
            n = next;
        }
        Version::Numeric(n)
    }

    /// A version a caller waits for.
    ///
    /// # Errors
    /// [`WaitError::InvalidVersion`] for a version no write can have returned.
    pub(crate) fn wanted(rv: &'a str) -> Result<Self, WaitError> {
        let invalid = |reason| {
            Err(WaitError::InvalidVersion {
                version: rv.chars().take(MAX_VERSION_BYTES).collect(),
                reason,
            })
        };
        if rv.is_empty() {
            return invalid("it is empty (an object with no metadata.resourceVersion?)");
        }
        if rv.len() > MAX_VERSION_BYTES {
            return invalid("it is longer than 128 bytes");
        }
        if !rv.bytes().all(|c| c.is_ascii_graphic()) {
            return invalid("it has whitespace, control or non-ASCII characters");
        }
        if rv == "0" {
            return invalid("\"0\" means any version in the API and names no write");
        }
        Ok(Self::of(rv))
    }

    /// Whether a store or object at `self` has reached `wanted`: at or past it for two
    /// numeric versions, equal otherwise.
    pub(crate) fn reached(self, wanted: Version<'_>) -> bool {
        match (self, wanted) {
            (Version::Numeric(have), Version::Numeric(want)) => have >= want,
            (Version::Opaque(have), Version::Opaque(want)) => have == want,
            _ => false,
        }
    }
}

/// What a store has applied, as a waiter's condition sees it.
#[derive(Debug)]
pub(crate) struct Applied {
    /// The greatest numeric version applied (0: none).
    numeric: u64,
    /// The newest version applied, if it was not numeric.
    opaque: Option<Box<str>>,
}

impl Applied {
    /// Whether the store has applied `wanted`.
    pub(crate) fn reached(&self, wanted: Version<'_>) -> bool {
        match wanted {
            Version::Numeric(want) => self.numeric >= want,
            Version::Opaque(want) => self.opaque.as_deref() == Some(want),
        }
    }

    fn newest(&self) -> Option<String> {
        match (&self.opaque, self.numeric) {
            (Some(o), _) => Some(o.to_string()),
            (None, 0) => None,
            (None, n) => Some(n.to_string()),
        }
    }
}

#[derive(Debug)]
struct Inner {
    applied: Applied,
    /// The greatest numeric version a wait asked for (0: none).
    written: u64,
    /// When the last write was applied ([`now_nanos`]), if any was.
    last_write: Option<u64>,
    /// Waiters registered since the last write, by id.
    wakers: Vec<(u64, Waker)>,
    next_id: u64,
    /// The writer is gone.
    stopped: Option<WriterDropped>,
}

/// One store's freshness, shared by its writer and its readers.
pub(crate) struct Freshness {
    inner: Mutex<Inner>,
    waits: Counter,
    timeouts: Counter,
}

impl fmt::Debug for Freshness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.stats(), f)
    }
}

impl Default for Freshness {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                applied: Applied {
                    numeric: 0,
                    opaque: None,
                },
                written: 0,
                last_write: None,
                wakers: Vec::new(),
                next_id: 0,
                stopped: None,
            }),
            waits: Counter::default(),
            timeouts: Counter::default(),
        }
    }
}

/// What one write applied: the greatest numeric version among its objects and the last
/// opaque one, gathered before the write takes its objects. Allocates only for an
/// opaque version.
#[derive(Debug, Default)]
pub(crate) struct Versions {
    numeric: u64,
    opaque: Option<Box<str>>,
}

impl Versions {
    /// Adds the version of one object the write applies (none: nothing to add).
    pub(crate) fn add(&mut self, rv: Option<&str>) {
        match rv.map(Version::of) {
            Some(Version::Numeric(n)) => self.numeric = self.numeric.max(n),
            Some(Version::Opaque(o)) if self.opaque.as_deref() != Some(o) => {
                self.opaque = Some(o.into());
            }
            _ => {}
        }
    }
}

impl Freshness {
    /// A write was published: records its versions and wakes every waiter (each checks
    /// its own condition again). Called after the write's new state is visible to
    /// readers.
    pub(crate) fn applied(&self, versions: Versions) {
        #[cfg(k8s_store_loom)]
        let early = seeded::is(seeded::Bug::WakeBeforeRecord);
        #[cfg(k8s_store_loom)]
        if early {
            for (_, w) in std::mem::take(&mut self.inner.lock().wakers) {
                w.wake();
            }
        }
        let woken = {
            let mut inner = self.inner.lock();
            let a = &mut inner.applied;
            if versions.numeric > a.numeric {
                a.numeric = versions.numeric;
                // A numeric version newer than the last opaque one is the newest.
                a.opaque = None;
            }
            if let Some(o) = versions.opaque {
                a.opaque = Some(o);
            }
            inner.last_write = Some(now_nanos());
            #[cfg(k8s_store_loom)]
            if early {
                // The seeded bug wakes only before recording.
                return;
            }
            std::mem::take(&mut inner.wakers)
        };
        for (_, w) in woken {
            w.wake();
        }
    }

    /// The writer is gone: every waiter returns [`WaitError::WriterDropped`] at once
    /// (unless already satisfied).
    pub(crate) fn stop(&self, was_ready: bool) {
        let woken = {
            let mut inner = self.inner.lock();
            inner.stopped.get_or_insert(WriterDropped { was_ready });
            std::mem::take(&mut inner.wakers)
        };
        for (_, w) in woken {
            w.wake();
        }
    }

    /// Waits until `satisfied` holds, for at most `timeout`. `satisfied` gets what the
    /// store has applied and may read the store's published state; it is called under
    /// this module's lock, so it must not write to the store or wait.
    ///
    /// A zero timeout checks once and answers at once. In loom models (`k8s_store_loom`)
    /// there is no timer: a wait ends when satisfied or when the writer is gone.
    pub(crate) async fn wait(
        &self,
        wanted: &str,
        want: Version<'_>,
        timeout: Duration,
        mut satisfied: impl FnMut(&Applied) -> bool,
    ) -> Result<(), WaitError> {
        self.waits.incr();
        let id = {
            let mut inner = self.inner.lock();
            if let Version::Numeric(n) = want {
                inner.written = inner.written.max(n);
            }
            if satisfied(&inner.applied) {
                return Ok(());
            }
            if let Some(stopped) = inner.stopped {
                return Err(WaitError::WriterDropped(stopped));
            }
            inner.next_id += 1;
            inner.next_id
        };
        if timeout.is_zero() {
            return Err(self.timed_out(wanted, timeout));
        }
        let registration = Registration {
            freshness: self,
            id,
        };
        let until_satisfied = poll_fn(|cx| {
            let mut inner = self.inner.lock();
            if satisfied(&inner.applied) {
                return Poll::Ready(Ok(()));
            }
            if let Some(stopped) = inner.stopped {
                return Poll::Ready(Err(WaitError::WriterDropped(stopped)));
            }
            #[cfg(k8s_store_loom)]
            if seeded::is(seeded::Bug::RegisterAfterCheck) {
                drop(inner);
                inner = self.inner.lock();
            }
            match inner.wakers.iter_mut().find(|(i, _)| *i == id) {
                Some((_, w)) => w.clone_from(cx.waker()),
                None => inner.wakers.push((id, cx.waker().clone())),
            }
            Poll::Pending
        });
        #[cfg(not(k8s_store_loom))]
        let outcome = match tokio::time::timeout(timeout, until_satisfied).await {
            Ok(outcome) => outcome,
            Err(_elapsed) => Err(self.timed_out(wanted, timeout)),
        };
        #[cfg(k8s_store_loom)]
        let outcome = until_satisfied.await;
        drop(registration);
        outcome
    }

    fn timed_out(&self, wanted: &str, waited: Duration) -> WaitError {
        self.timeouts.incr();
        WaitError::Timeout {
            version: wanted.to_owned(),
            applied: self.inner.lock().applied.newest(),
            waited,
        }
    }

    /// The figures of [`FreshnessStats`].
    pub(crate) fn stats(&self) -> FreshnessStats {
        let inner = self.inner.lock();
        let applied = inner.applied.numeric;
        FreshnessStats {
            applied: inner.applied.newest(),
            written: (inner.written > 0).then(|| inner.written.to_string()),
            behind: inner.written.saturating_sub(applied),
            since_last_write: inner
                .last_write
                .map(|t| Duration::from_nanos(now_nanos().saturating_sub(t))),
            waits: self.waits.get(),
            timeouts: self.timeouts.get(),
            waiting: inner.wakers.len(),
        }
    }
}

/// Bugs the loom models' twins seed, to show that the models find them. Built only
/// for loom models (`k8s_store_loom`); not part of the API.
#[cfg(k8s_store_loom)]
#[doc(hidden)]
pub mod seeded {
    use std::cell::Cell;

    /// A bug of the freshness protocol.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Bug {
        /// A waiter releases the lock between its check and its registration.
        RegisterAfterCheck,
        /// A write wakes the waiters before it records its versions.
        WakeBeforeRecord,
    }

    thread_local! {
        // Loom runs a model's threads on the test's own thread: one switch per test.
        static BUG: Cell<Option<Bug>> = const { Cell::new(None) };
    }

    /// Seeds `bug` (or none) for the models run on this thread.
    pub fn set(bug: Option<Bug>) {
        BUG.with(|b| b.set(bug));
    }

    pub(crate) fn is(bug: Bug) -> bool {
        BUG.with(|b| b.get() == Some(bug))
    }
}

/// A wait's waker, removed when the wait ends (satisfied, failed or cancelled).
struct Registration<'a> {
    freshness: &'a Freshness,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        // A loom model that found a deadlock unwinds through here; loom's locks cannot
        // be taken then (the process would abort instead of failing the test).
        #[cfg(k8s_store_loom)]
        if std::thread::panicking() {
            return;
        }
        self.freshness
            .inner
            .lock()
            .wakers
            .retain(|(i, _)| *i != self.id);
    }
}

/// How fresh a store is, from `freshness()` on its readers and writer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FreshnessStats {
    /// The newest resourceVersion the store has applied (the greatest numeric one, or
    /// the last opaque one if that came after), `None` before any write with a version.
    pub applied: Option<String>,
    /// The greatest numeric version a wait has asked for: the newest write the
    /// controller said it made.
    pub written: Option<String>,
    /// How far `applied` is behind `written`, in resourceVersions (etcd revisions,
    /// shared by every resource: a distance, not a count of this store's events); 0
    /// when caught up.
    pub behind: u64,
    /// Time since the last write was applied (with the coarse clock's 1-4 ms
    /// resolution). A quiet resource has few events, so this grows without anything
    /// being wrong; read it beside `behind`.
    pub since_last_write: Option<Duration>,
    /// Waits started.
    pub waits: u64,
    /// Waits that timed out.
    pub timeouts: u64,
    /// Waits pending right now.
    pub waiting: usize,
}

/// Why a wait for a resourceVersion ended without it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The store had not applied the version when the timeout passed. The watch may be
    /// slow or disconnected (its own stats say which); reading anyway gives the state
    /// before the write.
    #[error(
        "timed out after {waited:?} waiting for resourceVersion {version:?}; the store has applied {}",
        applied.as_deref().unwrap_or("no version yet")
    )]
    Timeout {
        /// The version waited for.
        version: String,
        /// The newest version the store had applied.
        applied: Option<String>,
        /// The timeout.
        waited: Duration,
    },
    /// The writer (the watch feeding the store) is gone: the version will never come.
    #[error("the watch stopped: {0}")]
    WriterDropped(WriterDropped),
    /// Not a version any write returns (see the [module docs](self)).
    #[error("not a resourceVersion: {version:?}: {reason}")]
    InvalidVersion {
        /// The version given (its first 128 characters).
        version: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_as_integers_when_they_are_and_by_equality_otherwise() {
        assert_eq!(Version::of("12345"), Version::Numeric(12345));
        assert_eq!(
            Version::of("18446744073709551615"),
            Version::Numeric(u64::MAX)
        );
        for opaque in ["18446744073709551616", "0123", "12a", "abc", "", "-1", "1 "] {
            assert_eq!(Version::of(opaque), Version::Opaque(opaque), "{opaque:?}");
        }
        let n = Version::Numeric;
        assert!(n(10).reached(n(9)) && n(10).reached(n(10)) && !n(9).reached(n(10)));
        // Length matters, not text order: "10" is after "9".
        assert!(Version::of("10").reached(Version::of("9")));
        let o = Version::Opaque;
        assert!(o("abc").reached(o("abc")) && !o("abd").reached(o("abc")));
        assert!(!n(5).reached(o("5x")) && !o("5x").reached(n(5)));
    }

    #[test]
    fn waits_refuse_what_no_write_returns() {
        for (bad, why) in [
            ("", "empty"),
            ("0", "any version"),
            ("12 ", "whitespace"),
            ("1\n", "whitespace"),
            ("zé", "non-ASCII"),
        ] {
            match Version::wanted(bad) {
                Err(e @ WaitError::InvalidVersion { .. }) => {
                    assert!(e.to_string().contains(why), "{bad:?}: {e}");
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        let long = "7".repeat(129);
        assert!(matches!(
            Version::wanted(&long),
            Err(WaitError::InvalidVersion { ref version, .. }) if version.len() == 128
        ));
        assert_eq!(Version::wanted("42").ok(), Some(Version::Numeric(42)));
        assert_eq!(Version::wanted("0x1").ok(), Some(Version::Opaque("0x1")));
    }

    fn applied(f: &Freshness, rvs: &[&str]) {
        let mut v = Versions::default();
        for rv in rvs {
            v.add(Some(rv));
        }
        f.applied(v);
    }

    #[test]
    fn the_newest_version_is_the_greatest_numeric_or_the_last_opaque_one() {
        let f = Freshness::default();
        assert_eq!(f.stats().applied, None);
        applied(&f, &["7", "5"]);
        assert_eq!(f.stats().applied.as_deref(), Some("7"));
        applied(&f, &["6"]);
        assert_eq!(f.stats().applied.as_deref(), Some("7"), "never goes back");
        applied(&f, &["opaque-a"]);
        assert_eq!(f.stats().applied.as_deref(), Some("opaque-a"));
        applied(&f, &["8"]);
        assert_eq!(f.stats().applied.as_deref(), Some("8"));
        assert!(f.stats().since_last_write.is_some());
    }
}
