//! Feeding stores from kube-runtime watches.
//!
//! A [`Feeder`] turns `kube_runtime::watcher::Event`s into store writes:
//!
//! - `Init` / `InitApply` / `InitDone` (the initial list and every relist) are buffered
//!   and swapped in at `InitDone` with one `replace`: readers see the old state until
//!   then, never a half-filled store, and objects deleted while the watch was down are
//!   gone after it. Relist events with no `Init` before them (possible only in merged
//!   or hand-written streams) never empty the store: a stray `InitDone` changes
//!   nothing, a stray `InitApply` is applied as an `Apply`; both are counted.
//! - `Apply` upserts under the keys the [`Indexer`] extracts; an object whose stored
//!   resourceVersion is unchanged is skipped. An object whose index field is missing
//!   is logged with its namespace/name, removed if it was stored (so nothing stays
//!   behind under its old key) and skipped: the watch goes on. In a relist such an
//!   object is left out of the new state (gone after the swap), and the live store is
//!   not touched before `InitDone`.
//! - `Delete` removes that one object by identity; siblings under the same key stay.
//! - Before objects enter the store, `metadata.managedFields` is dropped (and whatever
//!   else the configured stripper removes).
//!
//! [`WatchStatus`] tells when the first full sync is done ([`WatchStatus::ready`]), and
//! hands out a change signal with a generation counter and optional debouncing
//! ([`Changes`]), for renders that should run once per burst of changes.
//!
//! Watch errors (dropped connections, `410 Gone`, 5xx) are retried with backoff by
//! kube-runtime's watcher (the spawn helpers apply `default_backoff`); the feeder counts
//! them and the store stays readable throughout.

use std::fmt;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ErrorKind, StoreError};
use crate::feed::indexer::Indexer;
use crate::index::store::MemoryStore;
use crate::on_demand::fetch::Fetch;
use crate::on_demand::store::CachedStore;
use crate::readiness::{Readiness, WriterDropped};
use crate::sync::{Arc, Counter, Mutex};

/// A store a watch can write into. Implemented by [`MemoryStore`] (fed full objects)
/// and [`CachedStore`] (fed full objects or `PartialObjectMeta` from a metadata
/// watch; either way only the reference is kept).
pub trait Target<E>: Send + Sync + 'static {
    /// How many key components the store takes.
    fn num_keys(&self) -> usize;
    /// Marks the store ready for its readers (after the first complete list).
    fn mark_ready(&self);
    /// The resourceVersion stored for `obj`'s identity under exactly `keys`, if any.
    fn stored_version(&self, obj: &E, keys: &[String]) -> Option<String>;
    /// Upserts `obj` under `keys`.
    ///
    /// # Errors
    /// The store's error (a wrong key count cannot happen with a matching indexer).
    fn apply(&self, obj: E, keys: &[String]) -> Result<(), StoreError>;
    /// Removes `obj` by identity; returns whether it was stored.
    ///
    /// # Errors
    /// The store's error.
    fn delete(&self, obj: &E) -> Result<bool, StoreError>;
    /// Replaces everything at once.
    ///
    /// # Errors
    /// The store's error; nothing changes.
    fn relist(&self, items: Vec<(E, Vec<String>)>) -> Result<(), StoreError>;
}

fn same_identity(a: &kube::core::ObjectMeta, b: &kube::core::ObjectMeta) -> bool {
    match (a.uid.as_deref(), b.uid.as_deref()) {
        (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => x == y,
        _ => a.namespace == b.namespace && a.name == b.name,
    }
}

/// A shared writer feeds as the writer itself does.
impl<E, T: Target<E>> Target<E> for Arc<T> {
    fn num_keys(&self) -> usize {
        (**self).num_keys()
    }
    fn mark_ready(&self) {
        (**self).mark_ready();
    }
    fn stored_version(&self, obj: &E, keys: &[String]) -> Option<String> {
        (**self).stored_version(obj, keys)
    }
    fn apply(&self, obj: E, keys: &[String]) -> Result<(), StoreError> {
        (**self).apply(obj, keys)
    }
    fn delete(&self, obj: &E) -> Result<bool, StoreError> {
        (**self).delete(obj)
    }
    fn relist(&self, items: Vec<(E, Vec<String>)>) -> Result<(), StoreError> {
        (**self).relist(items)
    }
}

impl<K> Target<K> for MemoryStore<K>
where
    K: Resource + Serialize + Send + Sync + 'static,
{
    fn num_keys(&self) -> usize {
        MemoryStore::num_keys(self)
    }
    fn mark_ready(&self) {
        MemoryStore::mark_ready(self);
    }
    fn stored_version(&self, obj: &K, keys: &[String]) -> Option<String> {
        let version_of = |s: &K| {
            if same_identity(s.meta(), obj.meta()) {
                s.meta().resource_version.clone()
            } else {
                None
            }
        };
        // The common case, one object under the key: read in place under the shard's
        // lock, with no `Vec` and no reference count.
        if let Some(found) = self.with_exact_one(keys, version_of) {
            return found;
        }
        // No object, several, or not a whole key.
        let stored = self.get(keys).ok()?;
        stored
            .iter()
            .find(|s| same_identity(s.meta(), obj.meta()))
            .and_then(|s| s.meta().resource_version.clone())
    }
    fn apply(&self, obj: K, keys: &[String]) -> Result<(), StoreError> {
        self.update(Arc::new(obj), keys)
    }
    fn delete(&self, obj: &K) -> Result<bool, StoreError> {
        self.remove(obj)
    }
    fn relist(&self, items: Vec<(K, Vec<String>)>) -> Result<(), StoreError> {
        self.replace(items.into_iter().map(|(o, k)| (Arc::new(o), k)))
    }
}

fn cached_version<K, F, E>(store: &CachedStore<K, F>, obj: &E, keys: &[String]) -> Option<String>
where
    K: Resource + Send + Sync + 'static,
    F: Fetch<K>,
    E: Resource,
{
    let m = obj.meta();
    let refs = store.references(keys).ok()?;
    refs.iter()
        .find(|r| match m.uid.as_deref() {
            Some(uid) if !uid.is_empty() && !r.uid().is_empty() => r.uid() == uid,
            _ => {
                r.namespace() == m.namespace.as_deref().unwrap_or("")
                    && r.name() == m.name.as_deref().unwrap_or("")
            }
        })
        .and_then(|r| r.resource_version().map(str::to_owned))
}

impl<K, F> Target<K> for CachedStore<K, F>
where
    K: Resource + Serialize + Send + Sync + 'static,
    F: Fetch<K>,
{
    fn num_keys(&self) -> usize {
        CachedStore::num_keys(self)
    }
    fn mark_ready(&self) {
        CachedStore::mark_ready(self);
    }
    fn stored_version(&self, obj: &K, keys: &[String]) -> Option<String> {
        cached_version(self, obj, keys)
    }
    fn apply(&self, obj: K, keys: &[String]) -> Result<(), StoreError> {
        self.update(&obj, keys)
    }
    fn delete(&self, obj: &K) -> Result<bool, StoreError> {
        self.remove(obj)
    }
    fn relist(&self, items: Vec<(K, Vec<String>)>) -> Result<(), StoreError> {
        self.replace(items)
    }
}

impl<K, F> Target<PartialObjectMeta<K>> for CachedStore<K, F>
where
    K: Resource + Serialize + Send + Sync + 'static,
    F: Fetch<K>,
    PartialObjectMeta<K>: Resource + Serialize,
{
    fn num_keys(&self) -> usize {
        CachedStore::num_keys(self)
    }
    fn mark_ready(&self) {
        CachedStore::mark_ready(self);
    }
    fn stored_version(&self, obj: &PartialObjectMeta<K>, keys: &[String]) -> Option<String> {
        cached_version(self, obj, keys)
    }
    fn apply(&self, obj: PartialObjectMeta<K>, keys: &[String]) -> Result<(), StoreError> {
        self.update(&obj, keys)
    }
    fn delete(&self, obj: &PartialObjectMeta<K>) -> Result<bool, StoreError> {
        self.remove(obj)
    }
    fn relist(&self, items: Vec<(PartialObjectMeta<K>, Vec<String>)>) -> Result<(), StoreError> {
        self.replace(items)
    }
}

pub use crate::object::Stripper;

/// Counters of one watch, from [`WatchStatus::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct WatchStats {
    /// Objects upserted by `Apply` events.
    pub applied: u64,
    /// `Apply` events skipped because the stored resourceVersion was the same.
    pub unchanged: u64,
    /// Objects removed by `Delete` events.
    pub deleted: u64,
    /// Completed (re)lists swapped in.
    pub relists: u64,
    /// Objects skipped because an index field was missing or invalid.
    pub index_errors: u64,
    /// Errors reported by the watch stream (each retried with backoff).
    pub watch_errors: u64,
    /// Relist events that came with no relist in progress (no `Init` before them):
    /// such an `InitDone` changed nothing, and such an `InitApply` was applied as an
    /// `Apply`. kube's watcher never sends them; merged or hand-written streams can.
    pub stray_relist_events: u64,
    /// Store writes that failed (logged).
    pub store_errors: u64,
    /// Events of any kind handled.
    pub events: u64,
}

#[derive(Debug, Default)]
struct Counters {
    applied: Counter,
    unchanged: Counter,
    deleted: Counter,
    relists: Counter,
    index_errors: Counter,
    watch_errors: Counter,
    stray_relist_events: Counter,
    store_errors: Counter,
    events: Counter,
}

fn bump(c: &Counter) {
    c.incr();
}

struct Shared {
    name: String,
    counters: Counters,
    readiness: Readiness,
    generation: tokio::sync::watch::Sender<u64>,
    /// Held by [`WatchStatus::changes`] while it subscribes to `generation`, and by
    /// [`WatchStatus::changed`] while it finds no receiver and raises the generation
    /// silently.
    subscribing: Mutex<()>,
}

/// The state of one watch: readiness, the change signal and counters. Cheap to clone.
#[derive(Clone)]
pub struct WatchStatus {
    shared: Arc<Shared>,
}

impl fmt::Debug for WatchStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatchStatus")
            .field("name", &self.shared.name)
            .field("ready", &self.is_ready())
            .field("generation", &self.generation())
            .field("stats", &self.stats())
            .finish()
    }
}

impl WatchStatus {
    fn new(name: impl Into<String>) -> Self {
        Self {
            shared: Arc::new(Shared {
                name: name.into(),
                counters: Counters::default(),
                readiness: Readiness::default(),
                generation: tokio::sync::watch::Sender::new(0),
                subscribing: Mutex::new(()),
            }),
        }
    }

    /// The watch's name (for logs).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Whether the first full list has been swapped in and the feed is still running.
    pub fn is_ready(&self) -> bool {
        self.shared.readiness.is_ready()
    }

    /// Resolves once the first full list has been swapped in (at once if it has).
    ///
    /// # Errors
    /// [`WriterDropped`] once the feed is gone (the watch task ended or was aborted, or
    /// the [`Feeder`] was dropped), also when that happens before the first list: it
    /// never waits for a list that cannot come.
    ///
    /// # Cancel safety
    /// Cancel safe.
    pub async fn ready(&self) -> Result<(), WriterDropped> {
        self.shared.readiness.wait().await
    }

    /// The change generation: increases with every write to the store.
    pub fn generation(&self) -> u64 {
        *self.shared.generation.borrow()
    }

    /// A change signal starting at the current generation.
    pub fn changes(&self) -> Changes {
        // Under the lock that `changed` holds: see there.
        let _subscribing = self.shared.subscribing.lock();
        Changes {
            rx: self.shared.generation.subscribe(),
            debounce: Duration::ZERO,
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> WatchStats {
        let c = &self.shared.counters;
        let get = Counter::get;
        WatchStats {
            applied: get(&c.applied),
            unchanged: get(&c.unchanged),
            deleted: get(&c.deleted),
            relists: get(&c.relists),
            index_errors: get(&c.index_errors),
            watch_errors: get(&c.watch_errors),
            stray_relist_events: get(&c.stray_relist_events),
            store_errors: get(&c.store_errors),
            events: get(&c.events),
        }
    }

    /// Raises the generation by one and wakes every [`Changes`].
    ///
    /// Waking is most of the cost (tokio's channel takes the lock of each of its eight
    /// notifiers), and with no `Changes` alive there is no one to wake: the generation
    /// is then raised silently (`send_if_modified` returning `false`, which leaves the
    /// channel's version, read only by receivers, where it was). `changes` subscribes
    /// under `subscribing`, which is held here from finding no receiver to the silent
    /// raise, so a subscription is either counted (and woken, as ever) or made after
    /// the raise, and starts at the new generation: either way it misses nothing. The
    /// lock is released before waking anyone.
    fn changed(&self) {
        let tx = &self.shared.generation;
        {
            let _subscribing = self.shared.subscribing.lock();
            if tx.receiver_count() == 0 {
                tx.send_if_modified(|g| {
                    *g += 1;
                    false
                });
                return;
            }
        }
        tx.send_modify(|g| *g += 1);
    }
}

/// A change signal: [`changed`](Self::changed) resolves when the store changed since
/// the last call, optionally waiting for a burst of changes to settle.
#[derive(Debug)]
pub struct Changes {
    rx: tokio::sync::watch::Receiver<u64>,
    debounce: Duration,
}

impl Changes {
    /// After the first change, wait this long and fold every change made meanwhile into
    /// one signal. Defaults to: zero (no debouncing).
    #[must_use]
    pub fn debounce(mut self, debounce: Duration) -> Self {
        self.debounce = debounce;
        self
    }

    /// Waits for a change and returns the generation reached; `None` once the watch is
    /// gone for good.
    ///
    /// # Cancel safety
    /// Cancel safe: a change that arrived is reported by the next call.
    pub async fn changed(&mut self) -> Option<u64> {
        self.rx.changed().await.ok()?;
        if !self.debounce.is_zero() {
            tokio::time::sleep(self.debounce).await;
        }
        Some(*self.rx.borrow_and_update())
    }
}

/// How a [`Feeder`] treats objects.
pub struct FeedOptions<E> {
    name: String,
    strip: Option<Stripper<E>>,
}

impl<E> fmt::Debug for FeedOptions<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedOptions")
            .field("name", &self.name)
            .field("strip", &self.strip.is_some())
            .finish()
    }
}

impl<E> FeedOptions<E> {
    /// Options for a watch called `name` (used in logs).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            strip: None,
        }
    }

    /// Also removes fields with `strip` before objects enter the store
    /// (`metadata.managedFields` is always removed). Defaults to: nothing more.
    #[must_use]
    pub fn strip(mut self, strip: Stripper<E>) -> Self {
        self.strip = Some(strip);
        self
    }
}

/// Applies watch events to a store. One feeder per watch: it is the store's only
/// writer for that resource.
pub struct Feeder<E, T: Target<E>> {
    target: T,
    indexer: Indexer,
    strip: Option<Stripper<E>>,
    buffer: Option<Vec<(E, Vec<String>)>>,
    status: WatchStatus,
    /// The name of the object an `Apply` is writing, for the log line if the write
    /// fails: the store takes the object. Reused, so that naming it allocates nothing.
    applying: String,
}

impl<E, T: Target<E>> Drop for Feeder<E, T> {
    fn drop(&mut self) {
        self.status.shared.readiness.writer_dropped();
    }
}

impl<E, T: Target<E>> fmt::Debug for Feeder<E, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Feeder")
            .field("status", &self.status)
            .field("relisting", &self.buffer.is_some())
            .finish_non_exhaustive()
    }
}

/// `namespace/name`, `name` or `<unnamed>`: how logs name an object.
fn describe(meta: &kube::core::ObjectMeta) -> String {
    let mut name = String::new();
    describe_into(&mut name, meta);
    name
}

/// [`describe`] into `out`, which it clears first.
fn describe_into(out: &mut String, meta: &kube::core::ObjectMeta) {
    out.clear();
    match (&meta.namespace, &meta.name) {
        (Some(ns), Some(n)) => {
            out.push_str(ns);
            out.push('/');
            out.push_str(n);
        }
        (None, Some(n)) => out.push_str(n),
        _ => out.push_str("<unnamed>"),
    }
}

impl<E, T> Feeder<E, T>
where
    E: Resource + Serialize + Send + Sync + 'static,
    T: Target<E>,
{
    /// A feeder writing into `target` (a store's writer, which it owns from now on:
    /// keep readers of the store before handing it over) with keys from `indexer`.
    ///
    /// # Errors
    /// [`ErrorKind::KeyCount`] if the indexer's key count differs from the store's.
    pub fn new(target: T, indexer: Indexer, options: FeedOptions<E>) -> Result<Self, StoreError> {
        let num_keys = target.num_keys();
        if indexer.len() != num_keys {
            return Err(StoreError::build(ErrorKind::KeyCount {
                expected: num_keys,
                given: indexer.len(),
            }));
        }
        Ok(Self {
            target,
            indexer,
            strip: options.strip,
            buffer: None,
            status: WatchStatus::new(options.name),
            applying: String::new(),
        })
    }

    /// The watch's status handle.
    pub fn status(&self) -> WatchStatus {
        self.status.clone()
    }

    /// Strips `obj` and extracts its keys. An object whose keys cannot be extracted is
    /// counted, logged and skipped; `live` (an `Apply`, not a relist's `InitApply`)
    /// also removes it from the store, so that nothing stays behind under the keys of
    /// an older version. A relist leaves the live store alone until its `InitDone`,
    /// whose swap drops such an object anyway.
    ///
    /// Works on the object in place (it is large: moving it in and out costs copies).
    fn prepare(&self, obj: &mut E, live: bool) -> Option<Vec<String>> {
        obj.meta_mut().managed_fields = None;
        if let Some(strip) = &self.strip {
            strip(obj);
        }
        match self.indexer.keys(obj) {
            Ok(keys) => Some(keys),
            Err(e) => {
                bump(&self.status.shared.counters.index_errors);
                tracing::warn!(
                    watch = %self.status.shared.name,
                    object = %describe(obj.meta()),
                    error = %e,
                    "object skipped: its index keys cannot be extracted"
                );
                if live && matches!(self.target.delete(obj), Ok(true)) {
                    self.status.changed();
                }
                None
            }
        }
    }

    /// Counts and logs a failed write of the object `object` (as [`describe`] names it).
    fn store_error(&self, what: &str, object: &str, e: &StoreError) {
        bump(&self.status.shared.counters.store_errors);
        tracing::error!(
            watch = %self.status.shared.name,
            object = %object,
            error = %e,
            "{what} failed"
        );
    }

    /// An `Apply`: upserts `obj` unless its stored resourceVersion is the same.
    fn apply(&mut self, mut obj: E) {
        let counters = &self.status.shared.counters;
        let Some(keys) = self.prepare(&mut obj, true) else {
            return;
        };
        let rv = obj.meta().resource_version.as_deref();
        if rv.is_some() && self.target.stored_version(&obj, &keys).as_deref() == rv {
            bump(&counters.unchanged);
            return;
        }
        // The store takes `obj`: its name is kept for the log line of a failed write.
        // Only the name: cloning the whole metadata (labels and annotations included)
        // for it was most of the feeder's own cost per event.
        describe_into(&mut self.applying, obj.meta());
        match self.target.apply(obj, &keys) {
            Ok(()) => {
                bump(&counters.applied);
                self.status.changed();
            }
            Err(e) => self.store_error("apply", &self.applying, &e),
        }
    }

    /// Applies one event.
    ///
    /// Relist events out of order are counted in
    /// [`WatchStats::stray_relist_events`] and never empty the store: an `InitDone`
    /// with no `Init` before it (or a second one after a relist) changes nothing, and
    /// an `InitApply` with no `Init` before it is applied as an `Apply`.
    pub fn handle(&mut self, event: Event<E>) {
        let counters = &self.status.shared.counters;
        bump(&counters.events);
        match event {
            // A repeated `Init` restarts the relist (kube's watcher does so when a list
            // fails midway): what was buffered is dropped.
            Event::Init => self.buffer = Some(Vec::new()),
            Event::InitApply(mut obj) => {
                if self.buffer.is_none() {
                    // No relist to buffer it for: never start one here (a stray
                    // `InitDone` would then swap in this object alone). Upserting it
                    // loses nothing and removes nothing.
                    bump(&counters.stray_relist_events);
                    self.apply(obj);
                } else if let Some(keys) = self.prepare(&mut obj, false)
                    && let Some(buffer) = &mut self.buffer
                {
                    buffer.push((obj, keys));
                }
            }
            Event::InitDone => {
                let Some(items) = self.buffer.take() else {
                    // No relist in progress (no `Init`, or a second `InitDone`): there is
                    // no new state to swap in, and an empty one would empty the store.
                    bump(&counters.stray_relist_events);
                    tracing::warn!(
                        watch = %self.status.shared.name,
                        "InitDone with no relist in progress ignored"
                    );
                    return;
                };
                match self.target.relist(items) {
                    Ok(()) => {
                        bump(&counters.relists);
                        self.status.changed();
                        self.target.mark_ready();
                        self.status.shared.readiness.set_ready();
                    }
                    Err(e) => {
                        bump(&counters.store_errors);
                        tracing::error!(watch = %self.status.shared.name, error = %e, "relist failed; the previous state stays");
                    }
                }
            }
            Event::Apply(obj) => self.apply(obj),
            Event::Delete(obj) => match self.target.delete(&obj) {
                Ok(removed) => {
                    if removed {
                        bump(&counters.deleted);
                        self.status.changed();
                    }
                }
                Err(e) => self.store_error("delete", &describe(obj.meta()), &e),
            },
        }
    }

    /// What the pass-through adapter does with each item: applies an event (a clone of
    /// it: the item itself goes on unchanged), counts and logs an error.
    fn observe(&mut self, item: &Result<Event<E>, watcher::Error>)
    where
        E: Clone,
    {
        match item {
            Ok(event) => self.handle(event.clone()),
            Err(e) => self.watch_error(e),
        }
    }

    fn watch_error(&self, e: &watcher::Error) {
        bump(&self.status.shared.counters.watch_errors);
        tracing::warn!(watch = %self.status.shared.name, error = %e, "watch error; retrying with backoff");
    }

    /// Feeds every event of `stream` until it ends, consuming the events (nothing
    /// downstream wants them, so none is cloned; [`reflect`] passes them on instead).
    /// Stream errors are counted and logged; the stream is expected to retry on its own
    /// (apply kube-runtime's `default_backoff`, as [`spawn_full`] and
    /// [`spawn_on_demand`] do). The feeder, and with it the store's writer, is dropped
    /// when the stream ends: readiness then reports [`WriterDropped`].
    pub async fn run<S>(mut self, stream: S)
    where
        S: Stream<Item = Result<Event<E>, watcher::Error>> + Send,
    {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => self.handle(event),
                Err(e) => self.watch_error(&e),
            }
        }
    }
}

/// The pass-through adapter, the counterpart of kube-runtime's `reflect`: every item of
/// `stream` is applied to `feeder`'s store **before** it is passed on unchanged, so one
/// watch feeds both a store and whatever consumes the stream (a kube-runtime
/// `Controller`, through `.applied_objects()` and `Controller::for_stream` or
/// `watches_stream`).
///
/// Events are applied exactly as [`Feeder::handle`] applies them (relists buffered and
/// swapped in at `InitDone`, unchanged versions skipped, fields stripped, objects
/// missing an index field skipped); errors are counted and passed on. The store's
/// readers become ready after the first complete list, and see [`WriterDropped`] once
/// the returned stream (which owns the feeder and the writer) is dropped.
///
/// Each applied event is cloned once (the store keeps its own, stripped copy), as
/// kube-runtime's reflector does.
///
/// # Examples
/// ```no_run
/// # async fn f(client: kube::Client) -> Result<(), Box<dyn std::error::Error>> {
/// use futures::StreamExt;
/// use k8s_openapi::api::networking::v1::Ingress;
/// use k8s_store::watch::{self, FeedOptions, Feeder};
/// use k8s_store::{Indexer, MemoryStore};
/// use kube::runtime::{WatchStreamExt, watcher};
///
/// let indexer = Indexer::new(["metadata.namespace", "metadata.name"])?;
/// let store = MemoryStore::<Ingress>::new(indexer.len())?;
/// let reader = store.reader(); // for the reconcilers
/// let feeder = Feeder::new(store, indexer, FeedOptions::new("ingresses"))?;
/// let api = kube::Api::<Ingress>::all(client);
/// let objects = watch::reflect(feeder, watcher(api, watcher::Config::default()).default_backoff())
///     .applied_objects(); // e.g. for Controller::for_stream
/// # let _ = (reader, objects); Ok(()) }
/// ```
pub fn reflect<E, T, S>(mut feeder: Feeder<E, T>, stream: S) -> impl Stream<Item = S::Item>
where
    E: Resource + Clone + Serialize + Send + Sync + 'static,
    T: Target<E>,
    S: Stream<Item = Result<Event<E>, watcher::Error>>,
{
    stream.map(move |item| {
        feeder.observe(&item);
        item
    })
}

/// [`reflect`] as a method of watch streams: `watcher(api, cfg).default_backoff().feed(feeder)`.
pub trait FeedStreamExt<E>: Stream<Item = Result<Event<E>, watcher::Error>> + Sized {
    /// See [`reflect`].
    fn feed<T>(self, feeder: Feeder<E, T>) -> impl Stream<Item = Self::Item>
    where
        E: Resource + Clone + Serialize + Send + Sync + 'static,
        T: Target<E>,
    {
        reflect(feeder, self)
    }
}

impl<E, S: Stream<Item = Result<Event<E>, watcher::Error>>> FeedStreamExt<E> for S {}

/// A running watch: its status and its task. Dropping it stops the watch.
#[derive(Debug)]
pub struct WatchHandle {
    status: WatchStatus,
    task: tokio::task::JoinHandle<()>,
}

impl WatchHandle {
    /// The watch's status.
    pub fn status(&self) -> &WatchStatus {
        &self.status
    }

    /// Stops the watch.
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches `api` (with retries and backoff) and feeds `target` on a task of the
/// current tokio runtime.
fn spawn<E, T>(
    api: Api<E>,
    config: watcher::Config,
    target: T,
    indexer: Indexer,
    options: FeedOptions<E>,
) -> Result<WatchHandle, StoreError>
where
    E: Resource + Clone + DeserializeOwned + Serialize + fmt::Debug + Send + Sync + 'static,
    T: Target<E>,
{
    let feeder = Feeder::new(target, indexer, options)?;
    let status = feeder.status();
    let stream = watcher::watcher(api, config).default_backoff();
    let task = tokio::spawn(feeder.run(stream));
    Ok(WatchHandle { status, task })
}

/// Watches `api` with full objects and feeds `store` (a [`MemoryStore`], which the
/// watch task owns from now on: take its [`reader`](MemoryStore::reader)s first) on the
/// current tokio runtime. A convenience for stores nothing else watches for; to feed a
/// `Controller` from the same watch, use [`reflect`].
///
/// # Errors
/// The indexer's key count differs from the store's.
pub fn spawn_full<K, W>(
    api: Api<K>,
    config: watcher::Config,
    store: W,
    indexer: Indexer,
    options: FeedOptions<K>,
) -> Result<WatchHandle, StoreError>
where
    K: Resource + Clone + DeserializeOwned + Serialize + fmt::Debug + Send + Sync + 'static,
    W: Target<K>,
{
    spawn(api, config, store, indexer, options)
}

/// Watches `api` with metadata only and feeds the references of the on-demand `store`
/// (a [`CachedStore`], owned by the watch task from now on) on the current tokio
/// runtime. An `Api<PartialObjectMeta<K>>` makes metadata-only requests
/// (`Api::all_with(client, &api_resource)` for `DynamicObject`).
///
/// # Errors
/// The indexer's key count differs from the store's.
pub fn spawn_on_demand<K, W>(
    api: Api<PartialObjectMeta<K>>,
    config: watcher::Config,
    store: W,
    indexer: Indexer,
    options: FeedOptions<PartialObjectMeta<K>>,
) -> Result<WatchHandle, StoreError>
where
    K: Resource + Clone + DeserializeOwned + Serialize + fmt::Debug + Send + Sync + 'static,
    W: Target<PartialObjectMeta<K>>,
    PartialObjectMeta<K>: Resource + Serialize + Clone + DeserializeOwned + fmt::Debug,
{
    spawn(api, config, store, indexer, options)
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;
    use k8s_openapi::api::core::v1::ConfigMap;

    use super::*;

    fn cm(ns: &str, name: &str, uid: &str, rv: &str, team: &str) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(ns.into());
        cm.metadata.name = Some(name.into());
        cm.metadata.uid = Some(uid.into());
        cm.metadata.resource_version = Some(rv.into());
        cm.metadata.labels = Some([("team".to_owned(), team.to_owned())].into());
        cm
    }

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn stored_version_is_that_of_the_same_identity_alone_or_among_others() {
        let store = MemoryStore::<ConfigMap>::new(2).unwrap();
        let (a, b, c) = (
            cm("ns", "a", "ua", "1", "x"),
            cm("ns", "b", "ub", "2", "x"),
            cm("ns", "c", "uc", "3", "y"),
        );
        for o in [&a, &b] {
            store.add(Arc::new(o.clone()), &["ns", "x"]).unwrap();
        }
        store.add(Arc::new(c.clone()), &["ns", "y"]).unwrap();
        let version = |o: &ConfigMap, k: &[&str]| store.stored_version(o, &keys(k));
        // Several objects under the key, and one alone.
        assert_eq!(version(&a, &["ns", "x"]).as_deref(), Some("1"));
        assert_eq!(version(&b, &["ns", "x"]).as_deref(), Some("2"));
        assert_eq!(version(&c, &["ns", "y"]).as_deref(), Some("3"));
        // Another identity under the key (a recreated object), or none there.
        let recreated = cm("ns", "c", "uc2", "3", "y");
        assert_eq!(version(&recreated, &["ns", "y"]), None);
        assert_eq!(version(&c, &["ns", "x"]), None);
        assert_eq!(version(&c, &["ns", "z"]), None);
        // Not a whole key: a prefix is looked up as `get` does; too many components is
        // no version.
        assert_eq!(version(&c, &["ns"]).as_deref(), Some("3"));
        assert_eq!(version(&c, &["ns", "y", "extra"]), None);
    }

    #[test]
    fn unchanged_versions_are_skipped_under_shared_keys_too() {
        let store = Arc::new(MemoryStore::<ConfigMap>::new(2).unwrap());
        let indexer = Indexer::new(["metadata.namespace", "metadata.labels.team"]).unwrap();
        let mut feeder = Feeder::new(Arc::clone(&store), indexer, FeedOptions::new("t")).unwrap();
        let status = feeder.status();
        let (a, b) = (cm("ns", "a", "ua", "1", "x"), cm("ns", "b", "ub", "1", "x"));
        feeder.handle(Event::Apply(a.clone()));
        feeder.handle(Event::Apply(b.clone()));
        feeder.handle(Event::Apply(a.clone()));
        feeder.handle(Event::Apply(b));
        assert_eq!((status.stats().applied, status.stats().unchanged), (2, 2));
        let mut a2 = a;
        a2.metadata.resource_version = Some("2".into());
        feeder.handle(Event::Apply(a2));
        assert_eq!((status.stats().applied, status.stats().unchanged), (3, 2));
        assert_eq!(store.get(&["ns", "x"]).unwrap().len(), 2);
        assert_eq!(status.generation(), 3);
    }

    /// A store that refuses every write.
    struct Refusing;

    fn refused(keys: &[String]) -> StoreError {
        StoreError::new(
            crate::error::Operation::Update,
            keys,
            ErrorKind::InvalidSetting("refused".into()),
        )
    }

    impl Target<ConfigMap> for Refusing {
        fn num_keys(&self) -> usize {
            2
        }
        fn mark_ready(&self) {}
        fn stored_version(&self, _: &ConfigMap, _: &[String]) -> Option<String> {
            None
        }
        fn apply(&self, _: ConfigMap, keys: &[String]) -> Result<(), StoreError> {
            Err(refused(keys))
        }
        fn delete(&self, _: &ConfigMap) -> Result<bool, StoreError> {
            Err(refused(&[]))
        }
        fn relist(&self, _: Vec<(ConfigMap, Vec<String>)>) -> Result<(), StoreError> {
            Err(refused(&[]))
        }
    }

    /// Every event logged, as its fields' `name=value` pairs.
    #[derive(Default)]
    struct Logged(std::sync::Mutex<Vec<String>>);

    impl tracing::Subscriber for Logged {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Fields(Vec<String>);
            impl tracing::field::Visit for Fields {
                fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn fmt::Debug) {
                    self.0.push(format!("{}={v:?}", f.name()));
                }
            }
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0.join(" "));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn failed_writes_are_counted_logged_with_the_object_and_change_nothing() {
        let logged = Arc::new(Logged::default());
        let indexer = Indexer::new(["metadata.namespace", "metadata.name"]).unwrap();
        let mut feeder = Feeder::new(Refusing, indexer, FeedOptions::new("t")).unwrap();
        let status = feeder.status();
        let mut unnamed = cm("ns", "", "uc", "1", "x");
        unnamed.metadata.name = None;
        tracing::subscriber::with_default(Arc::clone(&logged), || {
            feeder.handle(Event::Apply(cm("ns", "a-longer-name", "ua", "1", "x")));
            feeder.handle(Event::Apply(cm("ns", "b", "ub", "1", "x")));
            feeder.handle(Event::Apply(unnamed));
            feeder.handle(Event::Delete(cm("ns", "a", "ua", "1", "x")));
        });
        let stats = status.stats();
        assert_eq!(
            (stats.store_errors, stats.applied, stats.deleted),
            (4, 0, 0)
        );
        assert_eq!(status.generation(), 0);
        let error = |keys: &str| format!("error=update [{keys}]: invalid setting: refused");
        assert_eq!(
            *logged.0.lock().unwrap(),
            [
                format!(
                    "message=apply failed watch=t object=ns/a-longer-name {}",
                    error(r#""ns", "a-longer-name""#)
                ),
                format!(
                    "message=apply failed watch=t object=ns/b {}",
                    error(r#""ns", "b""#)
                ),
                format!(
                    "message=apply failed watch=t object=<unnamed> {}",
                    error(r#""ns", """#)
                ),
                format!("message=delete failed watch=t object=ns/a {}", error("")),
            ]
        );
    }

    #[test]
    fn objects_are_described_as_namespace_slash_name() {
        let mut meta = kube::core::ObjectMeta::default();
        assert_eq!(describe(&meta), "<unnamed>");
        meta.namespace = Some("ns".into());
        assert_eq!(describe(&meta), "<unnamed>");
        meta.name = Some("a".into());
        assert_eq!(describe(&meta), "ns/a");
        meta.namespace = None;
        assert_eq!(describe(&meta), "a");
        let mut reused = "ns/a-much-longer-name".to_owned();
        describe_into(&mut reused, &meta);
        assert_eq!(reused, "a", "cleared first");
    }

    #[test]
    fn a_change_signal_taken_after_unwatched_changes_starts_there_and_sees_the_next() {
        let status = WatchStatus::new("t");
        status.changed();
        status.changed();
        assert_eq!(status.generation(), 2, "counted with no one watching");
        let mut changes = status.changes();
        assert_eq!(changes.changed().now_or_never(), None, "nothing new yet");
        status.changed();
        assert_eq!(changes.changed().now_or_never(), Some(Some(3)));
        drop(changes);
        status.changed();
        let mut changes = status.changes();
        assert_eq!(changes.changed().now_or_never(), None);
        status.changed();
        assert_eq!(changes.changed().now_or_never(), Some(Some(5)));
    }

    /// The race `subscribing` closes: with `changes` subscribing outside the lock, this
    /// fails within a second (a subscription counted too late for a silent raise that
    /// it started before).
    #[test]
    fn no_change_signal_misses_a_change_made_while_it_subscribes() {
        let status = WatchStatus::new("t");
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..2_000_000 {
                    status.changed();
                }
                done.store(true, std::sync::atomic::Ordering::Release);
            });
            while !done.load(std::sync::atomic::Ordering::Acquire) {
                // Subscribed with no other receiver alive: the writer is raising the
                // generation silently or about to.
                let changes = status.changes();
                let start = *changes.rx.borrow();
                while status.generation() == start
                    && !done.load(std::sync::atomic::Ordering::Acquire)
                {
                    std::hint::spin_loop();
                }
                if status.generation() > start {
                    assert_eq!(
                        changes.rx.has_changed().ok(),
                        Some(true),
                        "a change after generation {start} was not signalled"
                    );
                }
            }
        });
        assert_eq!(status.generation(), 2_000_000);
    }
}
