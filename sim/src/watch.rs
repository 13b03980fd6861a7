//! The watch stream: newline-delimited JSON events in a chunked response.
//!
//! Every watch reads the store's event log itself (no broadcast channel), so it can never
//! miss an event: it waits for the global resourceVersion to move, then reads what is new
//! after the last resourceVersion it has read. A watch that falls further behind than the
//! log's capacity gets an `ERROR` event with a 410 Expired `Status`, as from a real server.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures::Stream;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::counters::InFlight;
use super::error::ApiError;
use super::render::{self, ObjectView};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{Event, EventType, Fetch, ListAt, ObjKey, ResourceInfo, Store};

/// How many log events a watch reads per lock acquisition.
const FETCH_BATCH: usize = 500;
/// Flush a chunk once it holds this many bytes.
const CHUNK_BYTES: usize = 256 * 1024;
/// How long a watch from a future resourceVersion waits for it (like the watch cache).
const FUTURE_RV_WAIT: Duration = Duration::from_secs(3);

/// Server-wide signals every open watch listens to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Control {
    /// Bumped by `drop_watches`: watches opened before end abruptly.
    pub(crate) drop_generation: u64,
    /// The server is shutting down: watches end cleanly.
    pub(crate) shutdown: bool,
}

/// Where a watch starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WatchStart {
    /// Synthetic ADDED events for the current state, then live; with `end_bookmark`, a
    /// BOOKMARK annotated `k8s.io/initial-events-end` after them (`sendInitialEvents`).
    Initial { end_bookmark: bool },
    /// Live events only, from now.
    Now,
    /// Every event after this resourceVersion, then live.
    From(u64),
}

/// A parsed watch request.
pub(crate) struct WatchSpec {
    pub(crate) res: usize,
    pub(crate) info: Arc<ResourceInfo>,
    pub(crate) namespace: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) meta_only: bool,
    pub(crate) bookmarks: bool,
    pub(crate) timeout: Duration,
    pub(crate) start: WatchStart,
    pub(crate) drop_after: Option<u64>,
    /// How long each fetched batch of log events is held back before it is sent.
    pub(crate) event_delay: Option<Duration>,
    pub(crate) gone: bool,
}

impl WatchSpec {
    fn in_scope(&self, key: &ObjKey) -> bool {
        self.namespace.as_deref().is_none_or(|ns| key.0 == ns)
            && self.name.as_deref().is_none_or(|n| key.1 == n)
            && self.fields.matches(&key.0, &key.1)
    }

    /// The event type this watch sees for a log event, if any: an object that starts or
    /// stops matching the label selector is ADDED or DELETED, like the watch cache does.
    fn translate<'e>(&self, e: &'e Event) -> Option<(&'static str, &'e Value)> {
        if !self.in_scope(&e.key) {
            return None;
        }
        let now = self.labels.matches(&e.object);
        match e.ty {
            EventType::Added => now.then_some(("ADDED", &*e.object)),
            EventType::Deleted => {
                let before = e.prev.as_deref().unwrap_or(&e.object);
                self.labels
                    .matches(before)
                    .then_some(("DELETED", &*e.object))
            }
            EventType::Modified => {
                let before = e.prev.as_deref().is_some_and(|p| self.labels.matches(p));
                match (before, now) {
                    (true, true) => Some(("MODIFIED", &*e.object)),
                    (false, true) => Some(("ADDED", &*e.object)),
                    (true, false) => Some(("DELETED", &*e.object)),
                    (false, false) => None,
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Streaming,
    /// Send what is queued, then end cleanly.
    Ending,
    /// Send what is queued, then reset the connection.
    Aborting,
    Done,
}

struct WatchState {
    spec: WatchSpec,
    store: Arc<Store>,
    rv_rx: watch::Receiver<u64>,
    control: watch::Receiver<Control>,
    drop_generation: u64,
    bookmark_interval: Duration,
    last_rv: u64,
    phase: Phase,
    out: VecDeque<Bytes>,
    buf: Vec<u8>,
    initial: std::vec::IntoIter<Arc<Value>>,
    end_bookmark_pending: bool,
    sent: u64,
    deadline: Instant,
    next_bookmark: Instant,
    _in_flight: InFlight,
}

/// The body of a watch response.
pub(crate) fn stream(
    spec: WatchSpec,
    store: Arc<Store>,
    control: watch::Receiver<Control>,
    bookmark_interval: Duration,
    in_flight: InFlight,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let now = Instant::now();
    let drop_generation = control.borrow().drop_generation;
    let state = WatchState {
        deadline: now + spec.timeout,
        next_bookmark: now + bookmark_interval,
        rv_rx: store.subscribe(),
        spec,
        store,
        control,
        drop_generation,
        bookmark_interval,
        last_rv: 0,
        phase: Phase::Start,
        out: VecDeque::new(),
        buf: Vec::new(),
        initial: Vec::new().into_iter(),
        end_bookmark_pending: false,
        sent: 0,
        _in_flight: in_flight,
    };
    futures::stream::unfold(state, step)
}

async fn step(mut st: WatchState) -> Option<(Result<Bytes, io::Error>, WatchState)> {
    loop {
        if let Some(chunk) = st.out.pop_front() {
            return Some((Ok(chunk), st));
        }
        let result = match st.phase {
            Phase::Done | Phase::Ending => return None,
            Phase::Aborting => {
                // Let the connection flush the last chunk, then fail the body: hyper resets
                // the connection without the terminating chunk.
                tokio::time::sleep(Duration::from_millis(10)).await;
                st.phase = Phase::Done;
                let e = io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "watch dropped by the simulated API server",
                );
                return Some((Err(e), st));
            }
            Phase::Start => st.start().await,
            Phase::Streaming => st.stream().await,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "sim: failed to render a watch event");
            st.phase = Phase::Aborting;
        }
        st.flush();
    }
}

impl WatchState {
    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.out
                .push_back(Bytes::from(std::mem::take(&mut self.buf)));
        }
    }

    fn error_event(&mut self, e: &ApiError) -> Result<(), serde_json::Error> {
        render::watch_line(&mut self.buf, "ERROR", &e.status_json())?;
        self.phase = Phase::Ending;
        Ok(())
    }

    fn bookmark(&mut self, initial_end: bool) -> Result<(), serde_json::Error> {
        let object = render::bookmark(
            &self.spec.info,
            self.spec.meta_only,
            self.last_rv,
            initial_end,
        );
        render::watch_line(&mut self.buf, "BOOKMARK", &object)
    }

    /// Writes an object event; returns false once the watch must be dropped.
    fn object_event(&mut self, ty: &str, object: &Value) -> Result<bool, serde_json::Error> {
        let view = ObjectView {
            object,
            meta_only: self.spec.meta_only,
        };
        render::watch_line(&mut self.buf, ty, &view)?;
        self.sent += 1;
        if self.spec.drop_after.is_some_and(|n| self.sent >= n) {
            self.phase = Phase::Aborting;
            return Ok(false);
        }
        if self.buf.len() >= CHUNK_BYTES {
            self.flush();
        }
        Ok(true)
    }

    async fn start(&mut self) -> Result<(), serde_json::Error> {
        self.phase = Phase::Streaming;
        if self.spec.gone {
            let current = self.store.current_rv();
            return self.error_event(&ApiError::expired(format!(
                "too old resource version: {} ({current})",
                match self.spec.start {
                    WatchStart::From(rv) => rv,
                    _ => 0,
                }
            )));
        }
        if self.spec.drop_after == Some(0) {
            self.phase = Phase::Aborting;
            return Ok(());
        }
        match self.spec.start {
            WatchStart::Initial { end_bookmark } => {
                let spec = &self.spec;
                let filter = |k: &ObjKey, v: &Value| spec.in_scope(k) && spec.labels.matches(v);
                match self.store.list(
                    spec.res,
                    spec.namespace.as_deref(),
                    ListAt::Current,
                    None,
                    None,
                    &filter,
                ) {
                    Ok(page) => {
                        self.last_rv = page.rv;
                        self.initial = page.items.into_iter();
                        self.end_bookmark_pending = end_bookmark;
                    }
                    Err(e) => return self.error_event(&e),
                }
            }
            WatchStart::Now => self.last_rv = self.store.current_rv(),
            WatchStart::From(rv) => {
                self.last_rv = rv;
                let wait_until = Instant::now() + FUTURE_RV_WAIT;
                while *self.rv_rx.borrow_and_update() < rv {
                    tokio::select! {
                        changed = self.rv_rx.changed() => {
                            if changed.is_err() {
                                self.phase = Phase::Ending;
                                return Ok(());
                            }
                        }
                        () = tokio::time::sleep_until(wait_until) => {
                            let current = self.store.current_rv();
                            return self.error_event(&ApiError::too_large_resource_version(rv, current));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn stream(&mut self) -> Result<(), serde_json::Error> {
        let control = *self.control.borrow_and_update();
        if control.shutdown {
            self.phase = Phase::Ending;
            return Ok(());
        }
        if control.drop_generation != self.drop_generation {
            self.phase = Phase::Aborting;
            return Ok(());
        }
        // Synthetic ADDED events for the initial state, a chunk at a time.
        if self.initial.len() > 0 {
            while let Some(object) = self.initial.next() {
                if !self.object_event("ADDED", &object)? {
                    return Ok(());
                }
                if self.buf.is_empty() {
                    // A chunk was just flushed: let it go out before rendering more.
                    return Ok(());
                }
            }
            return Ok(());
        }
        if self.end_bookmark_pending {
            self.end_bookmark_pending = false;
            return self.bookmark(true);
        }
        if Instant::now() >= self.deadline {
            if self.spec.bookmarks {
                self.bookmark(false)?;
            }
            self.phase = Phase::Ending;
            return Ok(());
        }

        self.rv_rx.borrow_and_update();
        match self
            .store
            .events_after(self.spec.res, self.last_rv, FETCH_BATCH)
        {
            Fetch::Gone { requested, oldest } => {
                return self.error_event(&ApiError::expired(format!(
                    "too old resource version: {requested} ({oldest})"
                )));
            }
            Fetch::Events { events, scanned_to } => {
                if let Some(delay) = self.spec.event_delay
                    && !events.is_empty()
                {
                    // Fetched after their commit: each goes out at least `delay` after it.
                    tokio::time::sleep(delay).await;
                }
                for event in &events {
                    if let Some((ty, object)) = self.spec.translate(event)
                        && !self.object_event(ty, object)?
                    {
                        self.last_rv = event.rv;
                        return Ok(());
                    }
                    self.last_rv = event.rv;
                }
                self.last_rv = self.last_rv.max(scanned_to);
                if !events.is_empty() {
                    return Ok(());
                }
            }
        }

        let bookmarks = self.spec.bookmarks;
        tokio::select! {
            changed = self.rv_rx.changed() => {
                if changed.is_err() {
                    self.phase = Phase::Ending;
                }
            }
            changed = self.control.changed() => {
                if changed.is_err() {
                    self.phase = Phase::Ending;
                }
            }
            () = tokio::time::sleep_until(self.next_bookmark), if bookmarks => {
                self.next_bookmark = Instant::now() + self.bookmark_interval;
                self.bookmark(false)?;
            }
            () = tokio::time::sleep_until(self.deadline) => {}
        }
        Ok(())
    }
}
