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

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use hashbrown::HashTable;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{ErrorKind, Operation, StoreError};
use crate::feed::indexer::Indexer;
use crate::feed::keys::{Components, Keys};
use crate::index::batch::{Applied, Batch};
use crate::index::store::MemoryStore;
use crate::object::{Object, via};
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
    fn stored_version(&self, obj: &E, keys: &Keys) -> Option<String>;
    /// Upserts `obj` under `keys`.
    ///
    /// # Errors
    /// The store's error (a wrong key count cannot happen with a matching indexer).
    fn apply(&self, obj: E, keys: &Keys) -> Result<(), StoreError>;
    /// Upserts `obj` under `keys` unless its resourceVersion is already stored there
    /// ([`stored_version`](Self::stored_version) equals it); returns whether it wrote.
    /// An object without a resourceVersion is always written. The default asks
    /// `stored_version`, then `apply`; a store may answer both from one lookup.
    ///
    /// # Errors
    /// As [`apply`](Self::apply).
    fn apply_changed(&self, obj: E, keys: &Keys) -> Result<bool, StoreError>
    where
        E: Resource,
    {
        // A wrong key count goes on to `apply`, which refuses it.
        if let Some(rv) = obj.meta().resource_version.as_deref()
            && keys.len() == self.num_keys()
            && self.stored_version(&obj, keys).as_deref() == Some(rv)
        {
            return Ok(false);
        }
        self.apply(obj, keys).map(|()| true)
    }
    /// Removes `obj` by identity; returns whether it was stored.
    ///
    /// # Errors
    /// The store's error.
    fn delete(&self, obj: &E) -> Result<bool, StoreError>;
    /// Replaces everything at once.
    ///
    /// # Errors
    /// The store's error; nothing changes.
    fn relist(&self, items: Vec<(Arc<E>, Keys)>) -> Result<(), StoreError>;
    /// The stored object of `obj`'s identity under exactly `keys`, if it is at `obj`'s
    /// resourceVersion: a relist then buffers the stored one and drops its listed copy
    /// at once, so that a relist of a mostly unchanged store does not hold two copies
    /// of every object until it is swapped in.
    ///
    /// Defaults to: `None` (the listed copy is kept). [`MemoryStore`] looks it up; the
    /// on-demand tier keeps no bodies to share.
    fn stored(&self, obj: &E, keys: &Keys) -> Option<Arc<E>> {
        let _ = (obj, keys);
        None
    }
    /// Whether the store holds no object (a first list then skips [`stored`](Self::stored)).
    fn is_empty(&self) -> bool {
        false
    }
    /// Whether the store can index `obj` beyond the key the feeder extracted: its
    /// secondary indexes read keys of their own from it, which can fail (a field that
    /// is not a scalar, too many values). The feeder skips an object the store cannot
    /// index, as one whose key cannot be extracted (logged, counted in
    /// `index_errors`, and removed if stored), instead of a write (or a whole batch or
    /// relist) that the store would refuse.
    ///
    /// Defaults to: `Ok(())`. [`MemoryStore`] and [`CachedStore`] read their
    /// secondary indexes' keys (nothing without any).
    ///
    /// # Errors
    /// What the store would refuse the object's write with.
    fn check(&self, obj: &E) -> Result<(), StoreError> {
        let _ = obj;
        Ok(())
    }
    /// Applies `changes` in order as one write (readers see all of them or none), as
    /// [`apply`](Self::apply) and [`delete`](Self::delete) one by one would, and says how
    /// many objects were upserted and how many stored ones removed.
    ///
    /// The default has no batch write: it writes nothing and hands every batch back
    /// ([`Refused`] with no error), and the feeder then applies the changes one by one
    /// through `apply` and `delete`. [`MemoryStore`] (and an `Arc` of a target that has
    /// one) writes a batch with one [`MemoryStore::apply`]; [`CachedStore`] keeps the
    /// default (its reference writes are cheap one by one, and its cache entries are
    /// invalidated per object anyway).
    ///
    /// # Errors
    /// [`Refused`], with every change handed back and nothing applied: the feeder then
    /// applies them one by one, so that a change the store refuses costs only itself
    /// (it is counted and logged as a failed write).
    fn apply_batch(&self, changes: Vec<Write<E>>) -> Result<Applied, Refused<E>> {
        Err(Refused {
            error: None,
            changes,
        })
    }
}

/// One change of a batch a [`Feeder`] writes with [`Target::apply_batch`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Write<E> {
    /// Upsert `obj` (stripped) under `keys`, as [`Target::apply`].
    Upsert {
        /// The object.
        obj: E,
        /// Its keys, from the feeder's indexer.
        keys: Keys,
    },
    /// Remove the object of `obj`'s identity, as [`Target::delete`].
    Remove(E),
}

impl<E: Resource> Write<E> {
    fn meta(&self) -> &kube::core::ObjectMeta {
        match self {
            Write::Upsert { obj, .. } | Write::Remove(obj) => obj.meta(),
        }
    }
}

/// A batch a [`Target`] did not write: nothing of it was applied, and its changes are
/// handed back, in order, for the feeder to apply one by one.
#[derive(Debug)]
#[non_exhaustive]
pub struct Refused<E> {
    /// Why the store refused it (the first change it refused); `None` when the target
    /// has no batch write.
    pub error: Option<StoreError>,
    /// Every change of the batch, in order.
    pub changes: Vec<Write<E>>,
}

impl<E> Refused<E> {
    /// A refusal of `changes` for `error` (`None`: the target has no batch write).
    pub fn new(error: Option<StoreError>, changes: Vec<Write<E>>) -> Self {
        Self { error, changes }
    }
}

/// Whether `a` and `b` have the same namespace and name (absent as empty, as the
/// store's identity takes them).
fn same_name(a: &kube::core::ObjectMeta, b: &kube::core::ObjectMeta) -> bool {
    a.namespace.as_deref().unwrap_or("") == b.namespace.as_deref().unwrap_or("")
        && a.name.as_deref().unwrap_or("") == b.name.as_deref().unwrap_or("")
}

/// The uid, `""` when absent.
fn uid_of(m: &kube::core::ObjectMeta) -> &str {
    m.uid.as_deref().unwrap_or("")
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
    fn stored_version(&self, obj: &E, keys: &Keys) -> Option<String> {
        (**self).stored_version(obj, keys)
    }
    fn apply(&self, obj: E, keys: &Keys) -> Result<(), StoreError> {
        (**self).apply(obj, keys)
    }
    fn apply_changed(&self, obj: E, keys: &Keys) -> Result<bool, StoreError>
    where
        E: Resource,
    {
        (**self).apply_changed(obj, keys)
    }
    fn delete(&self, obj: &E) -> Result<bool, StoreError> {
        (**self).delete(obj)
    }
    fn relist(&self, items: Vec<(Arc<E>, Keys)>) -> Result<(), StoreError> {
        (**self).relist(items)
    }
    fn stored(&self, obj: &E, keys: &Keys) -> Option<Arc<E>> {
        (**self).stored(obj, keys)
    }
    fn is_empty(&self) -> bool {
        (**self).is_empty()
    }
    fn check(&self, obj: &E) -> Result<(), StoreError> {
        (**self).check(obj)
    }
    fn apply_batch(&self, changes: Vec<Write<E>>) -> Result<Applied, Refused<E>> {
        (**self).apply_batch(changes)
    }
}

/// The stored object of `obj`'s identity under `keys` (exactly, or a prefix as `get`
/// takes it): the one object under its own key (the common case), or found among
/// several.
fn stored_of<K>(store: &MemoryStore<K>, obj: &K, keys: &Keys) -> Option<Arc<K>>
where
    K: Resource + Send + Sync + 'static,
{
    let same = |s: &Arc<K>| same_identity(s.meta(), obj.meta());
    let keys = &keys.parts()[..];
    match store.get_one(keys) {
        Ok(one) => one.filter(same),
        Err(_) => store.get(keys).ok()?.into_iter().find(same),
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
    fn stored_version(&self, obj: &K, keys: &Keys) -> Option<String> {
        let version_of = |s: &K| {
            if same_identity(s.meta(), obj.meta()) {
                s.meta().resource_version.clone()
            } else {
                None
            }
        };
        // The common case, one object under the key: read in place in the published
        // state, with no lock, no `Vec` and no reference count.
        if let Some(found) = self.with_exact_one(&keys.parts(), version_of) {
            return found;
        }
        // No object, several, or not a whole key.
        stored_of(self, obj, keys)?.meta().resource_version.clone()
    }
    fn apply(&self, obj: K, keys: &Keys) -> Result<(), StoreError> {
        self.update(Arc::new(obj), &keys.parts())
    }
    fn apply_changed(&self, obj: K, keys: &Keys) -> Result<bool, StoreError> {
        let obj = Arc::new(obj);
        let Some(rv) = obj.meta().resource_version.as_deref() else {
            return self.update(obj, &keys.parts()).map(|()| true);
        };
        // `stored_version`'s rule, asked of the object the write finds.
        let same = |s: &K| {
            same_identity(s.meta(), obj.meta())
                .then(|| s.meta().resource_version.as_deref() == Some(rv))
        };
        self.update_changed(Arc::clone(&obj), &keys.parts(), &same)
    }
    fn delete(&self, obj: &K) -> Result<bool, StoreError> {
        self.remove(obj)
    }
    fn relist(&self, items: Vec<(Arc<K>, Keys)>) -> Result<(), StoreError> {
        self.replace_with(items)
    }
    fn check(&self, obj: &K) -> Result<(), StoreError> {
        self.check_indexes(obj)
    }
    fn stored(&self, obj: &K, keys: &Keys) -> Option<Arc<K>> {
        let rv = obj.meta().resource_version.as_deref()?;
        let found = stored_of(self, obj, keys)?;
        (found.meta().resource_version.as_deref() == Some(rv)).then_some(found)
    }
    fn is_empty(&self) -> bool {
        MemoryStore::is_empty(self)
    }
    /// One [`MemoryStore::apply`]. What it would refuse (a wrong key count; identity
    /// fields of the wrong type cannot occur in a `Resource`) is checked first, while
    /// the changes can still be handed back whole: the store takes a batch by value.
    fn apply_batch(&self, changes: Vec<Write<K>>) -> Result<Applied, Refused<K>> {
        let num_keys = MemoryStore::num_keys(self);
        let bad = changes.iter().enumerate().find_map(|(item, c)| match c {
            Write::Upsert { obj, keys } => {
                let kind = if keys.len() == num_keys {
                    <K as Object<via::Resource>>::check_metadata(obj).err()?
                } else {
                    ErrorKind::KeyCount {
                        expected: num_keys,
                        given: keys.len(),
                    }
                };
                Some(StoreError::new(batch_item(item), &keys.parts(), kind))
            }
            Write::Remove(obj) => {
                let kind = <K as Object<via::Resource>>::check_metadata(obj).err()?;
                Some(StoreError::new::<&str>(batch_item(item), &[], kind))
            }
        });
        if let Some(error) = bad {
            return Err(Refused::new(Some(error), changes));
        }
        let mut batch = Batch::with_capacity(changes.len());
        for change in changes {
            match change {
                Write::Upsert { obj, keys } => batch.upsert_keys(Arc::new(obj), keys),
                Write::Remove(obj) => batch.remove(Arc::new(obj)),
            };
        }
        // Checked above: the store refuses nothing else.
        self.apply(batch)
            .map_err(|e| Refused::new(Some(e), Vec::new()))
    }
}

fn batch_item(item: usize) -> Operation {
    Operation::Apply {
        item: u32::try_from(item).unwrap_or(u32::MAX),
    }
}

fn cached_version<K, F, E>(store: &CachedStore<K, F>, obj: &E, keys: &Keys) -> Option<String>
where
    K: Resource + Send + Sync + 'static,
    F: Fetch<K>,
    E: Resource,
{
    let m = obj.meta();
    let refs = store.references(&keys.parts()).ok()?;
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
    fn stored_version(&self, obj: &K, keys: &Keys) -> Option<String> {
        cached_version(self, obj, keys)
    }
    fn apply(&self, obj: K, keys: &Keys) -> Result<(), StoreError> {
        self.update(&obj, &keys.parts())
    }
    fn delete(&self, obj: &K) -> Result<bool, StoreError> {
        self.remove(obj)
    }
    fn relist(&self, items: Vec<(Arc<K>, Keys)>) -> Result<(), StoreError> {
        // Only the reference is kept.
        self.replace_with(items.into_iter().map(|(o, k)| (self.reference_of(&*o), k)))
    }
    fn check(&self, obj: &K) -> Result<(), StoreError> {
        self.check_indexes(obj)
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
    fn stored_version(&self, obj: &PartialObjectMeta<K>, keys: &Keys) -> Option<String> {
        cached_version(self, obj, keys)
    }
    fn apply(&self, obj: PartialObjectMeta<K>, keys: &Keys) -> Result<(), StoreError> {
        self.update(&obj, &keys.parts())
    }
    fn delete(&self, obj: &PartialObjectMeta<K>) -> Result<bool, StoreError> {
        self.remove(obj)
    }
    fn relist(&self, items: Vec<(Arc<PartialObjectMeta<K>>, Keys)>) -> Result<(), StoreError> {
        self.replace_with(items.into_iter().map(|(o, k)| (self.reference_of(&*o), k)))
    }
    fn check(&self, obj: &PartialObjectMeta<K>) -> Result<(), StoreError> {
        self.check_indexes(obj)
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

    /// The change generation: increases with every write to the store, by one per
    /// write (a batch of changes that [`Feeder::run`] or [`reflect`] writes at once is
    /// one write), so it orders changes but does not count them.
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

/// How many ready events a feeder gathers into one batch by default: see
/// [`FeedOptions::max_batch`].
pub const DEFAULT_MAX_BATCH: usize = 1024;

/// How a [`Feeder`] treats objects.
pub struct FeedOptions<E> {
    name: String,
    strip: Option<Stripper<E>>,
    max_batch: usize,
}

impl<E> fmt::Debug for FeedOptions<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FeedOptions")
            .field("name", &self.name)
            .field("strip", &self.strip.is_some())
            .field("max_batch", &self.max_batch)
            .finish()
    }
}

impl<E> FeedOptions<E> {
    /// Options for a watch called `name` (used in logs).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            strip: None,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }

    /// Also removes fields with `strip` before objects enter the store
    /// (`metadata.managedFields` is always removed). Defaults to: nothing more.
    #[must_use]
    pub fn strip(mut self, strip: Stripper<E>) -> Self {
        self.strip = Some(strip);
        self
    }

    /// The most events [`Feeder::run`] and [`reflect`] take from the stream into one
    /// batch: of the events already ready (never waiting for more), at most this many
    /// are applied as one write before the next are taken. `1` applies every event on
    /// its own. Defaults to: [`DEFAULT_MAX_BATCH`] (1,024), enough to fold a burst into
    /// a handful of publications while bounding what one write holds (the batch's
    /// events) and how long readers see the state from before it.
    ///
    /// `0` is refused by [`Feeder::new`] ([`ErrorKind::InvalidSetting`]).
    #[must_use]
    pub fn max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }
}

/// Applies watch events to a store. One feeder per watch: it is the store's only
/// writer for that resource.
pub struct Feeder<E, T: Target<E>> {
    target: T,
    indexer: Indexer,
    strip: Option<Stripper<E>>,
    buffer: Option<Vec<(Arc<E>, Keys)>>,
    /// How many objects the last relist buffered: the next one is sized for as many,
    /// instead of growing (and copying) its buffer a dozen times.
    last_list: usize,
    status: WatchStatus,
    /// The name of the object an `Apply` is writing, for the log line if the write
    /// fails: the store takes the object. Reused, so that naming it allocates nothing.
    applying: String,
    /// The batch being gathered (see [`Feeder::run`]): changes not written yet, in
    /// order.
    pending: Vec<Write<E>>,
    /// For each identity `pending` changes, the index of its latest change there;
    /// hashed by namespace and name.
    pending_ids: HashTable<usize>,
    hasher: foldhash::fast::RandomState,
    max_batch: usize,
    /// How many events of the burst being handled are still to come, as far as
    /// [`Feeder::handle_batch`] knows: an empty batch reserves room for that many
    /// changes (at most `max_batch`) when it takes its first, instead of growing
    /// through copies of large objects.
    coming: usize,
}

/// Where the batch being gathered has left an object's identity.
enum InBatch {
    /// Not changed by the batch: the store answers.
    Untouched,
    /// Its latest change is `pending[i]`.
    At(usize),
    /// The batch changed an object of the same namespace and name with a uid where
    /// this one has none, or the other way round: the store, which tells such objects
    /// apart, answers after the batch is written.
    Mixed,
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
            .field("pending", &self.pending.len())
            .field("max_batch", &self.max_batch)
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
    /// [`ErrorKind::KeyCount`] if the indexer's key count differs from the store's;
    /// [`ErrorKind::InvalidSetting`] for [`FeedOptions::max_batch`] `0` and for an
    /// indexer with a multi-valued (`[*]`) path.
    pub fn new(target: T, indexer: Indexer, options: FeedOptions<E>) -> Result<Self, StoreError> {
        let num_keys = target.num_keys();
        if indexer.len() != num_keys {
            return Err(StoreError::build(ErrorKind::KeyCount {
                expected: num_keys,
                given: indexer.len(),
            }));
        }
        if options.max_batch == 0 {
            return Err(StoreError::build(ErrorKind::InvalidSetting(
                "max_batch = 0: a batch takes at least one event (1 applies each on its own)"
                    .into(),
            )));
        }
        if indexer.is_multi_valued() {
            return Err(StoreError::build(ErrorKind::InvalidSetting(
                "the indexer has a multi-valued ([*]) path, but a store's own key has one \
                 value per component: index by single-valued paths, and put [*] paths in a \
                 secondary index (the builder's index())"
                    .into(),
            )));
        }
        Ok(Self {
            target,
            indexer,
            strip: options.strip,
            buffer: None,
            last_list: 0,
            status: WatchStatus::new(options.name),
            applying: String::new(),
            pending: Vec::new(),
            pending_ids: HashTable::new(),
            coming: 0,
            hasher: foldhash::fast::RandomState::default(),
            max_batch: options.max_batch,
        })
    }

    /// The watch's status handle.
    pub fn status(&self) -> WatchStatus {
        self.status.clone()
    }

    /// Drops `obj`'s managed fields and whatever the stripper removes.
    fn strip(&self, obj: &mut E) {
        obj.meta_mut().managed_fields = None;
        if let Some(strip) = &self.strip {
            strip(obj);
        }
    }

    /// Strips `obj` and extracts its keys. An object whose keys cannot be extracted is
    /// counted, logged and skipped; `live` (an `Apply`, not a relist's `InitApply`)
    /// also removes it from the store, so that nothing stays behind under the keys of
    /// an older version. A relist leaves the live store alone until its `InitDone`,
    /// whose swap drops such an object anyway.
    ///
    /// Works on the object in place (it is large: moving it in and out costs copies).
    fn prepare(&self, obj: &mut E, live: bool) -> Option<Keys> {
        self.strip(obj);
        match self
            .indexer
            .key_list(obj)
            .and_then(|keys| self.target.check(obj).map(|()| keys))
        {
            Ok(keys) => Some(keys),
            Err(e) => {
                self.unindexable(obj, &e, live);
                None
            }
        }
    }

    /// Counts and logs an object whose keys cannot be extracted (`e`), and removes it
    /// from the store if `live` (see [`prepare`](Self::prepare)).
    fn unindexable(&self, obj: &E, e: &StoreError, live: bool) {
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
        let Some(keys) = self.prepare(&mut obj, true) else {
            return;
        };
        // As `write_one`, with the unchanged-version skip left to the store.
        describe_into(&mut self.applying, obj.meta());
        let written = self.target.apply_changed(obj, &keys);
        self.count_write(written);
    }

    /// Upserts the prepared `obj` under `keys` on its own; counts it, or logs and
    /// counts the failure.
    fn write_one(&mut self, obj: E, keys: Keys) {
        // The store takes `obj`: its name is kept for the log line of a failed write.
        // Only the name: cloning the whole metadata (labels and annotations included)
        // for it was most of the feeder's own cost per event.
        describe_into(&mut self.applying, obj.meta());
        let written = self.target.apply(obj, &keys).map(|()| true);
        self.count_write(written);
    }

    /// Counts a single upsert of the object named in `self.applying`: written,
    /// skipped as unchanged (`Ok(false)`), or failed (logged).
    fn count_write(&self, written: Result<bool, StoreError>) {
        match written {
            Ok(true) => {
                bump(&self.status.shared.counters.applied);
                self.status.changed();
            }
            Ok(false) => bump(&self.status.shared.counters.unchanged),
            Err(e) => self.store_error("apply", &self.applying, &e),
        }
    }

    /// A `Delete` on its own: removes `obj` by identity.
    fn delete_one(&self, obj: &E) {
        match self.target.delete(obj) {
            Ok(removed) => {
                if removed {
                    bump(&self.status.shared.counters.deleted);
                    self.status.changed();
                }
            }
            Err(e) => self.store_error("delete", &describe(obj.meta()), &e),
        }
    }

    /// Takes one item of a stream into the batch being gathered (see [`run`](Self::run)):
    /// an `Apply` (or a stray `InitApply`) and a `Delete` join it, checked as
    /// [`handle`](Self::handle) checks them one by one; anything else (relist events,
    /// stream errors) first writes the batch, then is handled on its own, so that the
    /// order of events is kept exactly.
    fn take(&mut self, item: Result<Event<E>, watcher::Error>) {
        match item {
            Ok(Event::Apply(obj)) => {
                bump(&self.status.shared.counters.events);
                self.stage_apply(obj);
            }
            Ok(Event::InitApply(obj)) if self.buffer.is_none() => {
                bump(&self.status.shared.counters.events);
                bump(&self.status.shared.counters.stray_relist_events);
                self.stage_apply(obj);
            }
            Ok(Event::Delete(obj)) => {
                bump(&self.status.shared.counters.events);
                self.push(Write::Remove(obj));
            }
            Ok(Event::InitApply(obj)) => {
                // A relist is in progress (checked above): what `handle` does, without
                // moving the object through it.
                self.flush();
                bump(&self.status.shared.counters.events);
                self.buffer_listed(Arc::new(obj));
            }
            Ok(event) => {
                self.flush();
                self.handle(event);
            }
            Err(e) => {
                self.flush();
                self.watch_error(&e);
            }
        }
    }

    /// [`apply`](Self::apply) into the batch being gathered. The unchanged-version check
    /// compares with the latest change of the batch to the object's identity if there
    /// is one (the store does not have it yet), else with the store. An object whose
    /// keys cannot be extracted (or that the store cannot index: [`Target::check`])
    /// ends the batch: its removal from the store follows the batch's earlier changes,
    /// as one by one.
    fn stage_apply(&mut self, mut obj: E) {
        self.strip(&mut obj);
        let keys = match self
            .indexer
            .key_list(&obj)
            .and_then(|keys| self.target.check(&obj).map(|()| keys))
        {
            Ok(keys) => keys,
            Err(e) => {
                self.flush();
                self.unindexable(&obj, &e, true);
                return;
            }
        };
        if let Some(rv) = obj.meta().resource_version.as_deref() {
            let stored_is =
                |feeder: &Self| feeder.target.stored_version(&obj, &keys).as_deref() == Some(rv);
            let unchanged = match self.in_batch(obj.meta()) {
                InBatch::At(i) => matches!(
                    &self.pending[i],
                    Write::Upsert { obj: earlier, keys: at }
                        if *at == keys && earlier.meta().resource_version.as_deref() == Some(rv)
                ),
                InBatch::Untouched => stored_is(self),
                InBatch::Mixed => {
                    self.flush();
                    stored_is(self)
                }
            };
            if unchanged {
                bump(&self.status.shared.counters.unchanged);
                return;
            }
        }
        self.push(Write::Upsert { obj, keys });
    }

    fn name_hash(&self, meta: &kube::core::ObjectMeta) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one((
            meta.namespace.as_deref().unwrap_or(""),
            meta.name.as_deref().unwrap_or(""),
        ))
    }

    /// Where the batch being gathered has left the identity of `meta`.
    fn in_batch(&self, meta: &kube::core::ObjectMeta) -> InBatch {
        if self.pending.is_empty() {
            return InBatch::Untouched;
        }
        let mut found = InBatch::Untouched;
        for &i in self.pending_ids.iter_hash(self.name_hash(meta)) {
            let other = self.pending[i].meta();
            if !same_name(other, meta) {
                continue;
            }
            match (uid_of(other), uid_of(meta)) {
                (a, b) if a == b => found = InBatch::At(i),
                ("", _) | (_, "") => return InBatch::Mixed,
                // Another object of that name (deleted and created again).
                _ => {}
            }
        }
        found
    }

    /// Adds `change` to the batch being gathered.
    fn push(&mut self, change: Write<E>) {
        if self.pending.capacity() == 0 {
            // This change and those known to follow, up to a batch's bound.
            self.pending
                .reserve(self.coming.saturating_add(1).min(self.max_batch));
        }
        let i = self.pending.len();
        let hash = self.name_hash(change.meta());
        let Self {
            pending,
            pending_ids,
            hasher,
            ..
        } = self;
        let meta = change.meta();
        let same = |&j: &usize| {
            let other = pending[j].meta();
            same_name(other, meta) && uid_of(other) == uid_of(meta)
        };
        match pending_ids.find_mut(hash, same) {
            Some(latest) => *latest = i,
            None => {
                pending_ids.insert_unique(hash, i, |&j| {
                    use std::hash::BuildHasher;
                    let m = pending[j].meta();
                    hasher.hash_one((
                        m.namespace.as_deref().unwrap_or(""),
                        m.name.as_deref().unwrap_or(""),
                    ))
                });
            }
        }
        pending.push(change);
    }

    /// Writes the batch being gathered: one change on its own, several with one
    /// [`Target::apply_batch`], counted as one by one would count them; the change
    /// generation is raised once for the batch (if it changed anything). A batch the
    /// target refuses is applied one change at a time, so that only the change the
    /// store refuses is lost (counted and logged as a failed write).
    fn flush(&mut self) {
        // Clearing resets every bucket, however few are used: not per event when
        // nothing is pending.
        if !self.pending_ids.is_empty() {
            self.pending_ids.clear();
        }
        if self.pending.len() <= 1 {
            match self.pending.pop() {
                Some(Write::Upsert { obj, keys }) => self.write_one(obj, keys),
                Some(Write::Remove(obj)) => self.delete_one(&obj),
                None => {}
            }
            return;
        }
        let changes = std::mem::take(&mut self.pending);
        match self.target.apply_batch(changes) {
            Ok(applied) => {
                let counters = &self.status.shared.counters;
                counters.applied.add(applied.upserted as u64);
                counters.deleted.add(applied.removed as u64);
                if applied.upserted + applied.removed > 0 {
                    self.status.changed();
                }
            }
            Err(refused) => {
                if let Some(e) = &refused.error {
                    tracing::debug!(
                        watch = %self.status.shared.name,
                        error = %e,
                        "batch refused; applying its changes one by one"
                    );
                }
                for change in refused.changes {
                    match change {
                        Write::Upsert { obj, keys } => self.write_one(obj, keys),
                        Write::Remove(obj) => self.delete_one(&obj),
                    }
                }
            }
        }
    }

    /// Adds a listed object to the relist in progress (there is one: the caller
    /// checked). It comes boxed: a watch object is large, and moved from call to call
    /// it was copied every time; boxed it is copied once, and stripped in place.
    fn buffer_listed(&mut self, mut obj: Arc<E>) {
        // Cannot fail: both callers made this `Arc` from the event's object just before
        // the call, and nothing else holds it.
        let unique = Arc::get_mut(&mut obj).expect("a new Arc has no other holder");
        let Some(keys) = self.prepare(unique, false) else {
            return;
        };
        // The very version the store holds: keep that one and drop the listed copy now
        // (a first list has nothing to look up).
        let obj = match obj.meta().resource_version {
            Some(_) if !self.target.is_empty() => self.target.stored(&obj, &keys).unwrap_or(obj),
            _ => obj,
        };
        if let Some(buffer) = &mut self.buffer {
            buffer.push((obj, keys));
        }
    }

    /// Applies one event.
    ///
    /// Relist events out of order are counted in
    /// [`WatchStats::stray_relist_events`] and never empty the store: an `InitDone`
    /// with no `Init` before it (or a second one after a relist) changes nothing, and
    /// an `InitApply` with no `Init` before it is applied as an `Apply`.
    pub fn handle(&mut self, event: Event<E>) {
        // Nothing is pending outside `run` and `reflect`, which write every batch before
        // they return: a no-op, kept so that events never overtake one another.
        self.flush();
        let counters = &self.status.shared.counters;
        bump(&counters.events);
        match event {
            // A repeated `Init` restarts the relist (kube's watcher does so when a list
            // fails midway): what was buffered is dropped.
            Event::Init => self.buffer = Some(Vec::with_capacity(self.last_list)),
            Event::InitApply(obj) => {
                if self.buffer.is_none() {
                    // No relist to buffer it for: never start one here (a stray
                    // `InitDone` would then swap in this object alone). Upserting it
                    // loses nothing and removes nothing.
                    bump(&counters.stray_relist_events);
                    self.apply(obj);
                } else {
                    self.buffer_listed(Arc::new(obj));
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
                self.last_list = items.len();
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
            Event::Delete(obj) => self.delete_one(&obj),
        }
    }

    /// Applies `events` in order as [`run`](Self::run) applies events that are ready
    /// together: in batches of up to [`FeedOptions::max_batch`], with everything
    /// [`handle`](Self::handle) does per event (see `run` for the rules and the two
    /// differences). For a feeder driven by hand with a burst at a time.
    pub fn handle_batch(&mut self, events: impl IntoIterator<Item = Event<E>>) {
        let events = events.into_iter();
        self.coming = events.size_hint().0;
        let mut taken = 0;
        for event in events {
            self.coming = self.coming.saturating_sub(1);
            self.take(Ok(event));
            taken += 1;
            if taken == self.max_batch {
                self.flush();
                taken = 0;
            }
        }
        self.coming = 0;
        self.flush();
    }

    /// What the pass-through adapter does with each item: takes a clone of an event
    /// into the batch being gathered (the item itself goes on unchanged); an error
    /// ends the batch and is counted and logged.
    fn observe(&mut self, item: &Result<Event<E>, watcher::Error>)
    where
        E: Clone,
    {
        match item {
            Ok(event) => self.take(Ok(event.clone())),
            Err(e) => {
                self.flush();
                self.watch_error(e);
            }
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
    ///
    /// # Bursts
    /// After each event it awaits, `run` takes the events that are already ready on the
    /// stream (polled once each, never waiting: a lone event is applied at once), up to
    /// [`FeedOptions::max_batch`] in all, and writes their `Apply`s and `Delete`s as
    /// one batch ([`Target::apply_batch`]: for a [`MemoryStore`], one preparation and
    /// one publication for the whole burst). Everything [`handle`](Self::handle) does
    /// per event holds inside a batch, with the same counters ([`WatchStats`]):
    /// managed fields are stripped; an unchanged resourceVersion is skipped, compared
    /// with the batch's own earlier change of that object if it has one; deletes are by
    /// identity; an object whose index field is missing, relist events (`Init`,
    /// `InitApply`, `InitDone`) and stream errors first write what the batch holds, then
    /// are handled on their own, so the store sees the events in their exact order. A
    /// batch the store refuses is applied one change at a time, so only the bad change
    /// is lost (counted in [`WatchStats::store_errors`] and logged, as one by one).
    ///
    /// Two differences from one by one: readers see a batch's changes together (never
    /// some of them), and the change generation ([`WatchStatus::generation`]) rises by
    /// one per batch that changed something, not by one per change. (One case is
    /// compared differently: a store that already holds an object without a uid and
    /// another of the same namespace and name with one, which no API server
    /// produces; within a batch, objects of one name with and without a uid end it.)
    ///
    /// # Cancel safety
    /// Dropping the future (aborting the task) between events loses nothing the store
    /// was given: a batch is gathered and written within one poll.
    pub async fn run<S>(mut self, stream: S)
    where
        S: Stream<Item = Result<Event<E>, watcher::Error>> + Send,
    {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            self.take(item);
            let mut ended = false;
            for _ in 1..self.max_batch {
                // Polled with a no-op waker: a stream that is not ready registers it and
                // is polled again with the task's own by the `await` above, so no wake-up
                // is lost (a stream keeps only the waker of its latest poll).
                match stream.next().now_or_never() {
                    Some(Some(item)) => self.take(item),
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            self.flush();
            if ended {
                break;
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
/// Events are applied exactly as [`Feeder::run`] applies them (relists buffered and
/// swapped in at `InitDone`, unchanged versions skipped, fields stripped, objects
/// missing an index field skipped, bursts of ready events written as one batch);
/// errors are counted and passed on. The store's readers become ready after the first
/// complete list, and see [`WriterDropped`] once the returned stream (which owns the
/// feeder and the writer) is dropped.
///
/// Each applied event is cloned once (the store keeps its own, stripped copy), as
/// kube-runtime's reflector does.
///
/// # Bursts
/// When polled with nothing queued, the adapter takes the item the inner stream has
/// ready and every further item already ready (up to [`FeedOptions::max_batch`], never
/// waiting), applies them as [`Feeder::run`] does (one batch), and then passes them on
/// one by one, in their order, from a queue: each item has been applied before it is
/// passed on, and items later in its batch may already be applied too. The returned
/// stream is `Unpin` (the inner stream is boxed once).
///
/// # Cancel safety
/// Dropping the stream drops the items of the last batch not passed on yet (they are
/// applied to the store already). A poll never leaves a batch half written.
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
pub fn reflect<E, T, S>(feeder: Feeder<E, T>, stream: S) -> Reflect<E, T, S>
where
    E: Resource + Clone + Serialize + Send + Sync + 'static,
    T: Target<E>,
    S: Stream<Item = Result<Event<E>, watcher::Error>>,
{
    Reflect {
        feeder,
        stream: Box::pin(stream),
        queue: VecDeque::new(),
        ended: false,
    }
}

/// The stream [`reflect`] returns: `stream`'s items, each applied to the feeder's
/// store before it is passed on.
#[must_use = "streams do nothing unless polled"]
pub struct Reflect<E, T: Target<E>, S: Stream> {
    feeder: Feeder<E, T>,
    stream: Pin<Box<S>>,
    /// Items applied and not passed on yet, in order.
    queue: VecDeque<S::Item>,
    /// Whether `stream` has ended (it is not polled again).
    ended: bool,
}

// No field is pinned: the inner stream is behind its own `Pin<Box<_>>`.
impl<E, T: Target<E>, S: Stream> Unpin for Reflect<E, T, S> {}

impl<E, T: Target<E>, S: Stream> fmt::Debug for Reflect<E, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reflect")
            .field("feeder", &self.feeder)
            .field("queued", &self.queue.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl<E, T, S> Stream for Reflect<E, T, S>
where
    E: Resource + Clone + Serialize + Send + Sync + 'static,
    T: Target<E>,
    S: Stream<Item = Result<Event<E>, watcher::Error>>,
{
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        if let Some(item) = this.queue.pop_front() {
            return Poll::Ready(Some(item));
        }
        if this.ended {
            return Poll::Ready(None);
        }
        // The task's own waker throughout: a stream that is not ready after the first
        // item wakes the task later, which then finds it ready or pending again.
        while this.queue.len() < this.feeder.max_batch {
            match this.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => {
                    this.feeder.observe(&item);
                    this.queue.push_back(item);
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        this.feeder.flush();
        match this.queue.pop_front() {
            Some(item) => Poll::Ready(Some(item)),
            None if this.ended => Poll::Ready(None),
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let queued = self.queue.len();
        if self.ended {
            return (queued, Some(queued));
        }
        let (low, high) = self.stream.size_hint();
        (
            low.saturating_add(queued),
            high.and_then(|h| h.checked_add(queued)),
        )
    }
}

/// [`reflect`] as a method of watch streams: `watcher(api, cfg).default_backoff().feed(feeder)`.
pub trait FeedStreamExt<E>: Stream<Item = Result<Event<E>, watcher::Error>> + Sized {
    /// See [`reflect`].
    fn feed<T>(self, feeder: Feeder<E, T>) -> Reflect<E, T, Self>
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

    fn keys(k: &[&str]) -> Keys {
        k.iter().collect()
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

    /// A store that answers `apply_changed` with the trait's default (`stored_version`,
    /// then `apply`): what `MemoryStore`'s own answer must agree with.
    struct ByDefault(MemoryStore<ConfigMap>);

    impl Target<ConfigMap> for ByDefault {
        fn num_keys(&self) -> usize {
            self.0.num_keys()
        }
        fn mark_ready(&self) {}
        fn stored_version(&self, obj: &ConfigMap, keys: &Keys) -> Option<String> {
            self.0.stored_version(obj, keys)
        }
        fn apply(&self, obj: ConfigMap, keys: &Keys) -> Result<(), StoreError> {
            Target::apply(&self.0, obj, keys)
        }
        fn delete(&self, obj: &ConfigMap) -> Result<bool, StoreError> {
            self.0.remove(obj)
        }
        fn relist(&self, items: Vec<(Arc<ConfigMap>, Keys)>) -> Result<(), StoreError> {
            Target::relist(&self.0, items)
        }
        fn stored(&self, obj: &ConfigMap, keys: &Keys) -> Option<Arc<ConfigMap>> {
            Target::stored(&self.0, obj, keys)
        }
    }

    #[test]
    fn apply_changed_skips_exactly_when_the_stored_version_is_the_same() {
        let no_uid = |mut o: ConfigMap| {
            o.metadata.uid = None;
            o
        };
        let seed = |store: &MemoryStore<ConfigMap>| {
            let put = |o: ConfigMap, k: &[&str]| store.add(Arc::new(o), k).unwrap();
            put(cm("ns", "a", "ua", "1", "x"), &["ns", "x"]);
            put(cm("ns", "b", "ub", "2", "x"), &["ns", "x"]);
            put(cm("ns", "c", "uc", "3", "y"), &["ns", "y"]);
            put(no_uid(cm("ns", "d", "", "4", "z")), &["ns", "z"]);
            // Another identity of the same name under the same key (it has a uid).
            put(cm("ns", "d", "ud", "6", "z"), &["ns", "z"]);
        };
        let without_version = {
            let mut o = cm("ns", "c", "uc", "3", "y");
            o.metadata.resource_version = None;
            o
        };
        let cases: Vec<(ConfigMap, Keys)> = vec![
            // Among others under its key: unchanged, changed.
            (cm("ns", "a", "ua", "1", "x"), keys(&["ns", "x"])),
            (cm("ns", "a", "ua", "9", "x"), keys(&["ns", "x"])),
            // Alone under its key: unchanged, changed.
            (cm("ns", "c", "uc", "3", "y"), keys(&["ns", "y"])),
            (cm("ns", "c", "uc", "7", "y"), keys(&["ns", "y"])),
            // The same version under another key (a move), a recreated object.
            (cm("ns", "c", "uc", "3", "y"), keys(&["ns", "x"])),
            (cm("ns", "c", "uc2", "3", "y"), keys(&["ns", "y"])),
            // Stored without a uid: the same name with and without one.
            (no_uid(cm("ns", "d", "", "4", "z")), keys(&["ns", "z"])),
            (cm("ns", "d", "ud", "4", "z"), keys(&["ns", "z"])),
            (cm("ns", "d", "ud", "5", "z"), keys(&["ns", "z"])),
            // Its own stored version, but the first object of its name under the key
            // is the one without a uid, in another version: written.
            (cm("ns", "d", "ud", "6", "z"), keys(&["ns", "z"])),
            // New; without a version; a wrong key count.
            (cm("ns", "e", "ue", "1", "y"), keys(&["ns", "y"])),
            (without_version, keys(&["ns", "y"])),
            (cm("ns", "a", "ua", "1", "x"), keys(&["ns"])),
        ];
        let contents = |s: &MemoryStore<ConfigMap>| -> Vec<(String, String, Option<String>)> {
            s.list()
                .iter()
                .map(|o| {
                    let m = &o.metadata;
                    let rv = m.resource_version.clone().unwrap_or_default();
                    (m.name.clone().unwrap_or_default(), rv, m.uid.clone())
                })
                .collect()
        };
        let mut skipped = 0;
        for (obj, k) in cases {
            let ours = MemoryStore::<ConfigMap>::new(2).unwrap();
            let reference = ByDefault(MemoryStore::<ConfigMap>::new(2).unwrap());
            seed(&ours);
            seed(&reference.0);
            let got = ours
                .apply_changed(obj.clone(), &k)
                .map_err(|e| e.to_string());
            let want = reference
                .apply_changed(obj.clone(), &k)
                .map_err(|e| e.to_string());
            let what = format!("{:?} under {k:?}", obj.metadata);
            assert_eq!(got, want, "{what}");
            assert_eq!(contents(&ours), contents(&reference.0), "{what}");
            skipped += usize::from(got == Ok(false));
        }
        // Unchanged: `a` among others, `c` alone, `d` without a uid and the one with a
        // uid in the version of the one without.
        assert_eq!(skipped, 4);
    }

    #[test]
    fn a_relist_keeps_the_stored_copy_of_every_unchanged_object() {
        let store = Arc::new(MemoryStore::<ConfigMap>::new(2).unwrap());
        let indexer = Indexer::new(["metadata.namespace", "metadata.labels.team"]).unwrap();
        let mut feeder = Feeder::new(Arc::clone(&store), indexer, FeedOptions::new("t")).unwrap();
        let list = |feeder: &mut Feeder<ConfigMap, _>, objs: &[ConfigMap]| {
            feeder.handle(Event::Init);
            for o in objs {
                feeder.handle(Event::InitApply(o.clone()));
            }
            feeder.handle(Event::InitDone);
        };
        // Two under one key, one alone.
        let (a, b, c) = (
            cm("ns", "a", "ua", "1", "x"),
            cm("ns", "b", "ub", "1", "x"),
            cm("ns", "c", "uc", "1", "y"),
        );
        list(&mut feeder, &[a.clone(), b.clone(), c.clone()]);
        let before = store.list().to_vec();
        let mut c2 = c.clone();
        c2.metadata.resource_version = Some("2".into());
        let recreated = cm("ns", "b", "ub-2", "1", "x");
        list(&mut feeder, &[a, recreated, c2]);
        let after = store.list().to_vec();
        assert_eq!(after.len(), 3);
        assert!(
            Arc::ptr_eq(&before[0], &after[0]),
            "a: unchanged, the stored copy"
        );
        assert_eq!(
            after[1].metadata.uid.as_deref(),
            Some("ub-2"),
            "another object"
        );
        assert!(!Arc::ptr_eq(&before[2], &after[2]), "c: a new version");
        assert_eq!(after[2].metadata.resource_version.as_deref(), Some("2"));
        store.validate().unwrap();
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

    fn refused(keys: &Keys) -> StoreError {
        StoreError::new(
            crate::error::Operation::Update,
            &keys.parts(),
            ErrorKind::InvalidSetting("refused".into()),
        )
    }

    impl Target<ConfigMap> for Refusing {
        fn num_keys(&self) -> usize {
            2
        }
        fn mark_ready(&self) {}
        fn stored_version(&self, _: &ConfigMap, _: &Keys) -> Option<String> {
            None
        }
        fn apply(&self, _: ConfigMap, keys: &Keys) -> Result<(), StoreError> {
            Err(refused(keys))
        }
        fn delete(&self, _: &ConfigMap) -> Result<bool, StoreError> {
            Err(refused(&Keys::new()))
        }
        fn relist(&self, _: Vec<(Arc<ConfigMap>, Keys)>) -> Result<(), StoreError> {
            Err(refused(&Keys::new()))
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

    // ---------------------------------------------------------------------------------
    // Batches: `run` and `reflect` against `handle` one by one.

    type Item = Result<Event<ConfigMap>, watcher::Error>;

    /// A store keyed by (namespace, labels.team), its reader and a feeder.
    fn team_feeder(
        max_batch: usize,
    ) -> (
        MemoryReader<ConfigMap>,
        Feeder<ConfigMap, MemoryStore<ConfigMap>>,
    ) {
        let store = MemoryStore::<ConfigMap>::new(2).unwrap();
        let reader = store.reader();
        let indexer = Indexer::new(["metadata.namespace", "metadata.labels.team"]).unwrap();
        let options = FeedOptions::new("t").max_batch(max_batch);
        (reader, Feeder::new(store, indexer, options).unwrap())
    }

    use crate::MemoryReader;

    /// What a store holds: (namespace, name, uid, resourceVersion, team) in list order.
    fn contents(r: &MemoryReader<ConfigMap>) -> Vec<[String; 5]> {
        r.validate().unwrap();
        r.list()
            .iter()
            .map(|o| {
                let m = &o.metadata;
                let team = m.labels.as_ref().and_then(|l| l.get("team")).cloned();
                [
                    m.namespace.clone().unwrap_or_default(),
                    m.name.clone().unwrap_or_default(),
                    m.uid.clone().unwrap_or_default(),
                    m.resource_version.clone().unwrap_or_default(),
                    team.unwrap_or_default(),
                ]
            })
            .collect()
    }

    /// `items` fed one by one with `handle`: the reference.
    fn one_by_one(items: &[Item]) -> (Vec<[String; 5]>, WatchStats) {
        let (reader, mut feeder) = team_feeder(1);
        for item in items {
            match item {
                Ok(e) => feeder.handle(e.clone()),
                Err(e) => feeder.watch_error(e),
            }
        }
        (contents(&reader), feeder.status().stats())
    }

    fn clone_item(item: &Item) -> Item {
        match item {
            Ok(e) => Ok(e.clone()),
            Err(_) => Err(watcher::Error::NoResourceVersion),
        }
    }

    /// `items` as a stream that is ready throughout.
    fn ready(items: &[Item]) -> impl Stream<Item = Item> + Send + use<> {
        futures::stream::iter(items.iter().map(clone_item).collect::<Vec<_>>())
    }

    /// `items` through `run` (every item ready: batches of up to `max_batch`).
    fn batched(items: &[Item], max_batch: usize) -> (Vec<[String; 5]>, WatchStats) {
        let (reader, feeder) = team_feeder(max_batch);
        let status = feeder.status();
        feeder
            .run(ready(items))
            .now_or_never()
            .expect("a ready stream is fed in one poll");
        (contents(&reader), status.stats())
    }

    /// `items` through `reflect`: what it passed on, what the store holds, the stats.
    /// Checks that every `Apply` passed on is in the store by then.
    fn reflected(items: &[Item], max_batch: usize) -> (Vec<String>, Vec<[String; 5]>, WatchStats) {
        let (reader, feeder) = team_feeder(max_batch);
        let status = feeder.status();
        let mut stream = reflect(feeder, ready(items));
        let mut out = Vec::new();
        while let Some(item) = stream.next().now_or_never().expect("ready") {
            // Every item up to this one has been handled by the time it is passed on.
            let s = status.stats();
            assert!(
                s.events + s.watch_errors > out.len() as u64,
                "item {} passed on before it was applied: {s:?}",
                out.len()
            );
            out.push(format!("{item:?}"));
        }
        (out, contents(&reader), status.stats())
    }

    /// One event of a random mix: `kind` picks Apply (most), Delete, InitApply, Init,
    /// InitDone or a watch error; objects are few (2 namespaces × 3 names, some
    /// recreated with a second uid; name `n2` never has a uid), versions repeat (so
    /// unchanged versions are skipped) and some lack the index field.
    fn event_of((kind, ns, name, uid, rv, team): (u8, u8, u8, u8, u8, u8)) -> Item {
        let ns = format!("ns{ns}");
        let name = format!("n{name}");
        let team = match team {
            0 => "a",
            1 => "b",
            _ => "",
        };
        let mut obj = cm(&ns, &name, "", &rv.to_string(), team);
        obj.metadata.uid = match (name.as_str(), uid) {
            ("n2", _) => None,
            (_, 0) => Some(format!("{ns}/{name}")),
            _ => Some(format!("{ns}/{name}/2")),
        };
        if team.is_empty() {
            obj.metadata.labels = None;
        }
        if kind % 3 == 0 {
            obj.metadata.managed_fields = Some(vec![Default::default()]);
        }
        Ok(match kind {
            0..=7 => Event::Apply(obj),
            8 | 9 => Event::Delete(obj),
            10 => Event::InitApply(obj),
            11 => Event::Init,
            12 => Event::InitDone,
            _ => return Err(watcher::Error::NoResourceVersion),
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// `run` and `reflect`, batching whatever is ready, leave the same store and the
        /// same counters as `handle` one by one; `reflect` passes every item on
        /// unchanged and in order.
        #[test]
        fn batches_equal_one_by_one(
            raw in proptest::collection::vec((0u8..14, 0u8..2, 0u8..3, 0u8..2, 1u8..4, 0u8..3), 0..80),
            max_batch in proptest::prop_oneof![1usize..6, proptest::strategy::Just(1024)],
        ) {
            let items: Vec<Item> = raw.into_iter().map(event_of).collect();
            let (want, want_stats) = one_by_one(&items);
            let (got, got_stats) = batched(&items, max_batch);
            proptest::prop_assert_eq!(&got, &want);
            proptest::prop_assert_eq!(got_stats, want_stats);
            let (passed, got, got_stats) = reflected(&items, max_batch);
            proptest::prop_assert_eq!(&got, &want);
            proptest::prop_assert_eq!(got_stats, want_stats);
            let sent: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
            proptest::prop_assert_eq!(passed, sent);
        }
    }

    #[test]
    fn a_burst_is_one_write_with_exact_counters() {
        let (reader, feeder) = team_feeder(DEFAULT_MAX_BATCH);
        let status = feeder.status();
        let a = |rv: &str| cm("ns", "a", "ua", rv, "x");
        let items: Vec<Item> = vec![
            Ok(Event::Apply(a("1"))),
            Ok(Event::Apply(cm("ns", "b", "ub", "1", "x"))),
            // The same version as the batch's own earlier change: skipped.
            Ok(Event::Apply(a("1"))),
            Ok(Event::Apply(a("2"))),
            Ok(Event::Delete(cm("ns", "b", "ub", "1", "x"))),
            // Not stored (any more): no removal.
            Ok(Event::Delete(cm("ns", "b", "ub", "1", "x"))),
            Ok(Event::Delete(cm("ns", "c", "uc", "1", "x"))),
        ];
        feeder.run(ready(&items)).now_or_never().unwrap();
        let s = status.stats();
        assert_eq!((s.events, s.applied, s.unchanged, s.deleted), (7, 3, 1, 1));
        assert_eq!(status.generation(), 1, "one write for the burst");
        assert_eq!(
            contents(&reader),
            [["ns", "a", "ua", "2", "x"].map(String::from)]
        );
    }

    #[test]
    fn handle_batch_writes_a_burst_in_batches_of_max_batch() {
        let (reader, mut feeder) = team_feeder(3);
        let events =
            (0..7).map(|i| Event::Apply(cm("ns", &format!("o{i}"), &format!("u{i}"), "1", "x")));
        feeder.handle_batch(events);
        assert_eq!(reader.len(), 7);
        assert_eq!(feeder.status().stats().applied, 7);
        assert_eq!(feeder.status().generation(), 3, "batches of 3, 3 and 1");
    }

    #[test]
    fn a_lone_event_is_applied_without_waiting_for_more() {
        let (reader, feeder) = team_feeder(DEFAULT_MAX_BATCH);
        let stream = futures::stream::iter([Ok(Event::Apply(cm("ns", "a", "ua", "1", "x")))])
            .chain(futures::stream::pending());
        let mut run = Box::pin(feeder.run(stream));
        assert!(
            run.as_mut().now_or_never().is_none(),
            "the stream stays open"
        );
        assert_eq!(reader.len(), 1, "applied while the stream is pending");

        // The adapter too: the item is passed on (and applied) with nothing after it.
        let (reader, feeder) = team_feeder(DEFAULT_MAX_BATCH);
        let stream = futures::stream::iter([Ok(Event::Apply(cm("ns", "a", "ua", "1", "x")))])
            .chain(futures::stream::pending());
        let mut stream = reflect(feeder, stream);
        assert!(matches!(
            stream.next().now_or_never(),
            Some(Some(Ok(Event::Apply(_))))
        ));
        assert_eq!(reader.len(), 1);
        assert!(stream.next().now_or_never().is_none(), "then pending");
    }

    #[test]
    fn relist_events_inside_a_burst_keep_their_order() {
        let (reader, feeder) = team_feeder(DEFAULT_MAX_BATCH);
        let status = feeder.status();
        let items: Vec<Item> = vec![
            Ok(Event::Apply(cm("ns", "a", "ua", "1", "x"))),
            Ok(Event::Apply(cm("ns", "b", "ub", "1", "x"))),
            Ok(Event::Init),
            Ok(Event::InitApply(cm("ns", "b", "ub", "2", "x"))),
            Ok(Event::InitApply(cm("ns", "c", "uc", "1", "y"))),
            Ok(Event::InitDone),
            // After the swap: compared with the relisted version.
            Ok(Event::Apply(cm("ns", "c", "uc", "1", "y"))),
            Ok(Event::Apply(cm("ns", "d", "ud", "1", "y"))),
            Err(watcher::Error::NoResourceVersion),
            Ok(Event::Delete(cm("ns", "b", "ub", "2", "x"))),
        ];
        let (want, want_stats) = one_by_one(&items);
        feeder.run(ready(&items)).now_or_never().unwrap();
        assert_eq!(contents(&reader), want);
        assert_eq!(status.stats(), want_stats);
        let s = want_stats;
        assert_eq!(
            (s.applied, s.unchanged, s.deleted, s.relists, s.watch_errors),
            (3, 1, 1, 1, 1)
        );
        let names: Vec<_> = want.iter().map(|o| o[1].as_str()).collect();
        assert_eq!(
            names,
            ["c", "d"],
            "a is gone with the relist, b deleted after it"
        );
    }

    #[test]
    fn objects_of_one_name_with_and_without_a_uid_are_compared_by_the_store() {
        let mut no_uid = cm("ns", "a", "", "1", "x");
        no_uid.metadata.uid = None;
        let items: Vec<Item> = vec![
            Ok(Event::Apply(no_uid.clone())),
            // Another identity for the store, but the unchanged check (as one by one)
            // finds the uid-less object of that name under the key: skipped.
            Ok(Event::Apply(cm("ns", "a", "ua", "1", "x"))),
            Ok(Event::Apply(cm("ns", "a", "ua", "2", "x"))),
            Ok(Event::Apply(no_uid)),
        ];
        let (want, want_stats) = one_by_one(&items);
        let (got, got_stats) = batched(&items, DEFAULT_MAX_BATCH);
        assert_eq!((got, got_stats), (want, want_stats));
        assert_eq!(want_stats.unchanged, 2);
    }

    #[test]
    fn a_missing_index_field_in_a_burst_removes_the_object_after_the_earlier_changes() {
        let mut gone = cm("ns", "a", "ua", "3", "x");
        gone.metadata.labels = None;
        let items: Vec<Item> = vec![
            Ok(Event::Apply(cm("ns", "a", "ua", "1", "x"))),
            Ok(Event::Apply(cm("ns", "b", "ub", "1", "x"))),
            Ok(Event::Apply(gone)),
            Ok(Event::Apply(cm("ns", "c", "uc", "1", "x"))),
        ];
        let (want, want_stats) = one_by_one(&items);
        let (got, got_stats) = batched(&items, DEFAULT_MAX_BATCH);
        assert_eq!((&got, got_stats), (&want, want_stats));
        assert_eq!(want_stats.index_errors, 1);
        let names: Vec<_> = got.iter().map(|o| o[1].as_str()).collect();
        assert_eq!(names, ["b", "c"]);
    }

    /// A store whose batches are refused when they hold an object named `bad`, and
    /// whose single writes refuse that object alone.
    struct Picky(MemoryStore<ConfigMap>);

    fn is_bad(obj: &ConfigMap) -> bool {
        obj.metadata.name.as_deref() == Some("bad")
    }

    impl Target<ConfigMap> for Picky {
        fn num_keys(&self) -> usize {
            2
        }
        fn mark_ready(&self) {}
        fn stored_version(&self, obj: &ConfigMap, keys: &Keys) -> Option<String> {
            self.0.stored_version(obj, keys)
        }
        fn apply(&self, obj: ConfigMap, keys: &Keys) -> Result<(), StoreError> {
            if is_bad(&obj) {
                return Err(refused(keys));
            }
            Target::apply(&self.0, obj, keys)
        }
        fn delete(&self, obj: &ConfigMap) -> Result<bool, StoreError> {
            Target::delete(&self.0, obj)
        }
        fn relist(&self, items: Vec<(Arc<ConfigMap>, Keys)>) -> Result<(), StoreError> {
            self.0.relist(items)
        }
        fn apply_batch(
            &self,
            changes: Vec<Write<ConfigMap>>,
        ) -> Result<Applied, Refused<ConfigMap>> {
            if changes
                .iter()
                .any(|c| matches!(c, Write::Upsert { obj, .. } if is_bad(obj)))
            {
                return Err(Refused::new(Some(refused(&Keys::new())), changes));
            }
            self.0.apply_batch(changes)
        }
    }

    #[test]
    fn a_refused_batch_is_applied_one_by_one_and_loses_only_the_bad_change() {
        let store = MemoryStore::<ConfigMap>::new(2).unwrap();
        let reader = store.reader();
        let indexer = Indexer::new(["metadata.namespace", "metadata.labels.team"]).unwrap();
        let feeder = Feeder::new(Picky(store), indexer, FeedOptions::new("t")).unwrap();
        let status = feeder.status();
        let items: Vec<Item> = vec![
            Ok(Event::Apply(cm("ns", "a", "ua", "1", "x"))),
            Ok(Event::Apply(cm("ns", "bad", "ub", "1", "x"))),
            Ok(Event::Apply(cm("ns", "c", "uc", "1", "x"))),
            Ok(Event::Delete(cm("ns", "a", "ua", "1", "x"))),
        ];
        feeder.run(ready(&items)).now_or_never().unwrap();
        let s = status.stats();
        assert_eq!((s.applied, s.deleted, s.store_errors), (2, 1, 1));
        let names: Vec<_> = contents(&reader)
            .into_iter()
            .map(|o| o[1].clone())
            .collect();
        assert_eq!(names, ["c"]);
    }

    #[test]
    fn the_memory_store_refuses_a_batch_with_a_wrong_key_count_whole_and_hands_it_back() {
        let store = MemoryStore::<ConfigMap>::new(2).unwrap();
        let changes = vec![
            Write::Upsert {
                obj: cm("ns", "a", "ua", "1", "x"),
                keys: keys(&["ns", "x"]),
            },
            Write::Upsert {
                obj: cm("ns", "b", "ub", "1", "x"),
                keys: keys(&["ns"]),
            },
        ];
        let refused = store.apply_batch(changes).unwrap_err();
        assert_eq!(refused.changes.len(), 2, "handed back whole");
        let error = refused.error.unwrap().to_string();
        assert!(error.contains("change 1 of the batch"), "{error}");
        assert!(store.is_empty(), "nothing applied");
    }

    #[test]
    fn a_batch_bound_of_zero_is_refused() {
        let store = MemoryStore::<ConfigMap>::new(2).unwrap();
        let indexer = Indexer::new(["metadata.namespace", "metadata.name"]).unwrap();
        let options = FeedOptions::new("t").max_batch(0);
        let e = Feeder::new(store, indexer, options).unwrap_err();
        assert!(e.to_string().contains("max_batch"), "{e}");
    }
}
