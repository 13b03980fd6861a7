//! The on-demand tier's core, [`OnDemand`]: the index holds only [`Reference`]s; object
//! bodies are fetched from the API server when read, through a bounded cache with
//! per-entry expiry and singleflight fetches.

use std::any::Any;
use std::fmt;
use std::hash::{BuildHasher, Hasher};

use kube::Resource;

use crate::error::FetchError;
use crate::error::{ErrorKind, Operation, StoreError};
use crate::feed::keys::Components;
use crate::freshness::Versions;
use crate::index::memory::{Index, SelectStats};
use crate::index::snapshot::Snapshot;
use crate::object::Object;
use crate::on_demand::fetch::{self, Fetch, Fetched};
use crate::on_demand::singleflight::{Flights, Join, Outcome};
use crate::selector::Selector;
use crate::sync::{self, Arc, Cache, Stamp};

use super::builder::Settings;
use super::entry::{CacheKey, Entry, FetchResult, KeyRef, Version, hash_key};
use super::reference::{Hint, REPORT_EVERY};
use super::stats::{Stats, stats_of};

// The tier's public types, where the rest of the crate finds them.
pub use super::builder::CachedStoreBuilder;
pub use super::reference::Reference;
pub use super::stats::{CacheStats, FETCH_LATENCY_BUCKETS};

/// The on-demand tier's shared part: what a [`CachedStore`] (its writer) and its
/// [`CachedReader`](crate::CachedReader)s share. See [`CachedStore`] for the contract.
pub(crate) struct OnDemand<K: Resource, F> {
    pub(super) index: Index<Reference>,
    pub(super) cache: Cache<CacheKey, Entry<K>>,
    pub(super) flights: Flights<CacheKey, FetchResult<K>>,
    pub(super) fetcher: F,
    pub(super) hasher: KeyState,
    pub(super) settings: Settings,
    pub(super) fetch_concurrency: usize,
    pub(super) stats: Arc<Stats>,
}

#[cfg(not(any(k8s_store_loom, fuzzing)))]
pub(super) type KeyState = foldhash::fast::RandomState;
#[cfg(any(k8s_store_loom, fuzzing))]
pub(super) type KeyState = foldhash::fast::FixedState;

impl<K: Resource, F> fmt::Debug for OnDemand<K, F> {
    // Never prints bodies (Secrets): only sizes and counters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedStore")
            .field("references", &self.index.len())
            .field("settings", &self.settings)
            .field("stats", &stats_of(&self.stats, self.cache.len()))
            .finish_non_exhaustive()
    }
}

impl<K, F> OnDemand<K, F>
where
    K: Resource + Send + Sync + 'static,
    F: Fetch<K>,
{
    /// The store's readiness (its index's).
    pub(crate) fn readiness(&self) -> &crate::readiness::Readiness {
        &self.index.readiness
    }

    /// The store's index (of references).
    pub(crate) fn index(&self) -> &Index<Reference> {
        &self.index
    }

    fn key_hash(&self, namespace: &str, name: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        hash_key(namespace, name, &mut h);
        h.finish()
    }

    fn key<'a>(&self, namespace: &'a str, name: &'a str) -> KeyRef<'a> {
        KeyRef {
            hash: self.key_hash(namespace, name),
            namespace,
            name,
        }
    }

    fn key_of(r: &Reference) -> KeyRef<'_> {
        KeyRef {
            hash: r.key_hash,
            namespace: &r.namespace,
            name: &r.name,
        }
    }

    /// See [`CachedStore::num_keys`].
    pub(crate) fn num_keys(&self) -> usize {
        self.index.num_keys()
    }

    /// See [`CachedStore::shards`].
    pub(crate) fn shards(&self) -> usize {
        self.index.shards()
    }

    fn reference<M>(
        &self,
        op: Operation,
        obj: &impl Object<M>,
        keys: &[impl AsRef<str>],
    ) -> Result<Reference, StoreError> {
        let mut r = self.reference_of(obj);
        r.key_hash = self.key_hash(&r.namespace, &r.name);
        if let Some(scope) = &self.settings.namespace
            && *r.namespace != **scope
        {
            return Err(StoreError::new(
                op,
                keys,
                ErrorKind::OutOfScope {
                    object: format!("{}/{}", r.namespace, r.name),
                    scope: scope.clone(),
                },
            ));
        }
        Ok(r)
    }

    /// Drops the cached body of (namespace, name) and detaches any fetch in flight for
    /// it, so that its result is not cached.
    fn invalidate(&self, key: KeyRef<'_>) {
        self.flights.invalidate(
            key.hash,
            |k| k.is(key.namespace, key.name),
            || {
                if let Some(old) = self.cache.remove(&key) {
                    self.dropped(&old);
                }
            },
        );
    }

    /// See [`CachedStore::add`].
    pub(crate) fn add<M>(
        &self,
        obj: &impl Object<M>,
        keys: &[impl AsRef<str>],
    ) -> Result<(), StoreError> {
        self.put(Operation::Add, obj, keys)
    }

    /// See [`CachedStore::update`].
    pub(crate) fn update<M>(
        &self,
        obj: &impl Object<M>,
        keys: &[impl AsRef<str>],
    ) -> Result<(), StoreError> {
        self.put(Operation::Update, obj, keys)
    }

    fn put<M>(
        &self,
        op: Operation,
        obj: &impl Object<M>,
        keys: &[impl AsRef<str>],
    ) -> Result<(), StoreError> {
        let r = Arc::new(self.reference(op, obj, keys)?);
        match op {
            Operation::Update => self.index.update(Arc::clone(&r), keys)?,
            _ => self.index.add(Arc::clone(&r), keys)?,
        }
        self.invalidate(Self::key_of(&r));
        // After the invalidation: a waiter woken now must not read the old body.
        self.applied([r.resource_version()]);
        Ok(())
    }

    /// Records a write's versions once its references are in and its stale bodies out
    /// (see [`freshness`](crate::freshness)).
    fn applied<'v>(&self, versions: impl IntoIterator<Item = Option<&'v str>>) {
        let mut v = Versions::default();
        for rv in versions {
            v.add(rv);
        }
        self.index.applied(v);
    }

    /// `obj`'s reference, with what this store's indexes read of its metadata.
    pub(crate) fn reference_of<M>(&self, obj: &impl Object<M>) -> Reference {
        Reference::of_kept(obj, self.settings.keep)
    }

    /// See [`CachedStore::remove`].
    pub(crate) fn remove<M>(&self, obj: &impl Object<M>) -> Result<bool, StoreError> {
        let r = Reference::of(obj);
        let removed = self.index.remove(&r)?;
        self.invalidate(self.key(&r.namespace, &r.name));
        self.applied([r.resource_version()]);
        Ok(removed)
    }

    /// See [`CachedStore::delete`].
    pub(crate) fn delete<S: AsRef<str>>(&self, keys: &[S]) -> Result<usize, StoreError> {
        if keys.len() != self.index.num_keys() {
            return Err(StoreError::new(
                Operation::Delete,
                keys,
                ErrorKind::KeyCount {
                    expected: self.index.num_keys(),
                    given: keys.len(),
                },
            ));
        }
        let refs = self.index.get(keys)?;
        let n = self.index.delete(keys)?;
        for r in refs {
            self.invalidate(Self::key_of(&r));
        }
        self.applied([]);
        Ok(n)
    }

    /// See [`CachedStore::replace`].
    pub(crate) fn replace<M, O, C>(
        &self,
        items: impl IntoIterator<Item = (O, C)>,
    ) -> Result<(), StoreError>
    where
        O: Object<M>,
        C: Components,
    {
        let before = self.index.list();
        let old_refs: std::collections::HashMap<(&str, &str), &Arc<Reference>> = before
            .iter()
            .map(|old| ((&*old.namespace, &*old.name), old))
            .collect();
        let mut refs = Vec::new();
        for (obj, keys) in items {
            let r = self.reference(Operation::Replace, &obj, &keys.parts())?;
            // An unchanged reference is kept as it is, with its hint: its cached body
            // stays valid (and stays this reference's), so hits stay one probe.
            let r = match old_refs.get(&(&*r.namespace, &*r.name)) {
                Some(old) if ***old == r => Arc::clone(old),
                _ => Arc::new(r),
            };
            refs.push((r, keys));
        }
        let current: std::collections::HashMap<(&str, &str), Option<&str>> = refs
            .iter()
            .map(|(r, _)| ((&*r.namespace, &*r.name), r.resource_version()))
            .collect();
        let mut stale: Vec<Arc<Reference>> = before
            .iter()
            .filter(|old| {
                current.get(&(&*old.namespace, &*old.name)) != Some(&old.resource_version())
            })
            .cloned()
            .collect();
        stale.extend(
            refs.iter()
                .filter(|(r, _)| !old_refs.contains_key(&(&*r.namespace, &*r.name)))
                .map(|(r, _)| Arc::clone(r)),
        );
        drop((current, old_refs));
        let mut versions = Versions::default();
        for (r, _) in &refs {
            versions.add(r.resource_version());
        }
        self.index.replace(refs)?;
        for r in stale {
            self.invalidate(Self::key_of(&r));
        }
        self.index.applied(versions);
        Ok(())
    }

    /// See [`CachedStore::clear`].
    pub(crate) fn clear(&self) {
        self.index.clear();
        // Fetches in flight read the server before the clear: keep their bodies out.
        self.flights.invalidate_all();
        self.cache.drain(|old| self.dropped(&old));
        self.applied([]);
    }

    /// See [`CachedStore::len`].
    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// See [`CachedStore::is_empty`].
    pub(crate) fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// See [`CachedStore::references`].
    pub(crate) fn references<S: AsRef<str>>(
        &self,
        keys: &[S],
    ) -> Result<Vec<Arc<Reference>>, StoreError> {
        self.index.get(keys).map(crate::Objects::into_vec)
    }

    /// See [`CachedStore::list_references`].
    pub(crate) fn list_references(&self) -> Snapshot<Reference> {
        self.index.list()
    }

    /// See [`CachedStore::references_by`].
    pub(crate) fn references_by<S: AsRef<str>>(
        &self,
        index: &str,
        keys: &[S],
    ) -> Result<Vec<Arc<Reference>>, StoreError> {
        self.index.get_by(index, keys)
    }

    /// See [`CachedStore::get_by`].
    pub(crate) async fn get_by<S: AsRef<str>>(
        &self,
        index: &str,
        keys: &[S],
    ) -> Result<Vec<Arc<K>>, StoreError> {
        let refs = self.index.get_by(index, keys)?;
        self.resolve_all(keys, &refs).await
    }

    /// See [`CachedStore::select_references`].
    pub(crate) fn select_references(
        &self,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Vec<Arc<Reference>> {
        self.index.select(namespace, selector)
    }

    /// See [`CachedStore::select`].
    pub(crate) async fn select(
        &self,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<Arc<K>>, StoreError> {
        let refs = self.index.select(namespace, selector);
        self.resolve_all::<&str>(&[], &refs).await
    }

    /// See [`CachedStore::select_stats`].
    pub(crate) fn select_stats(&self) -> SelectStats {
        self.index.select_stats()
    }

    /// The hit path of `get` and `get_one`: the cached body of the one reference under
    /// exactly `keys`, at that reference's version, probed in the index's published
    /// state without a lock (no reference count taken on the index). Counts the hit.
    #[inline]
    fn exact_hit<S: AsRef<str>>(&self, keys: &[S]) -> Option<Arc<K>> {
        let obj = self.index.with_exact_one(keys, |r| {
            self.hinted(r)
                .or_else(|| self.peek(Self::key_of(r), r.resource_version()))
        })??;
        self.stats.hits.incr();
        Some(obj)
    }

    /// The body `r`'s hint points at, if it has one that has not expired: a hit with no
    /// cache probe. At most once per [`REPORT_EVERY`] per body, the hit is also reported
    /// to the cache (a `get` whose value is dropped), so that its eviction policy still
    /// sees which bodies are read; the hint itself is at `r`'s version by construction
    /// (see [`fill`](Self::fill)).
    #[inline]
    fn hinted(&self, r: &Reference) -> Option<Arc<K>> {
        let now = sync::now_nanos();
        let (body, report) = r.hint.with(|h| {
            let h = h.filter(|h| h.expires > now)?;
            let last = h.reported.get();
            let report = last == 0 || now.saturating_sub(last) >= REPORT_EVERY;
            if report {
                h.reported.set(now);
            }
            Some((Arc::clone(&h.body), report))
        })?;
        if report {
            // Outside the slot's guard: the cache's eviction hook clears hints.
            drop(self.cache.get(&Self::key_of(r)));
        }
        // Only `fill` sets hints, always with a body of this store's `K`.
        body.downcast::<K>().ok()
    }

    /// A cached body for `r` at `r`'s version: through its hint, else the cache.
    fn cached(&self, r: &Reference) -> Option<Arc<K>> {
        self.hinted(r)
            .or_else(|| self.lookup(Self::key_of(r), Some(r.resource_version())))
    }

    /// Accounts for an entry removed from the cache and clears its owner's hint.
    fn dropped(&self, old: &Entry<K>) {
        self.stats.bytes.sub(u64::from(old.bytes));
        old.release();
    }

    /// A cached body of version `rv` (any, if `None`) that has not expired; unlike
    /// [`lookup`](Self::lookup) it takes no write lock to drop an expired entry.
    fn peek(&self, key: KeyRef<'_>, rv: Option<&str>) -> Option<Arc<K>> {
        let entry = self.cache.get(&key)?;
        let fresh = entry.expires > sync::now_nanos();
        let current = rv.is_none_or(|rv| entry.resource_version.is(rv));
        (fresh && current).then_some(entry.object)
    }

    /// A cached body for `r` that is fresh and of `r`'s resourceVersion.
    fn lookup(&self, key: KeyRef<'_>, rv: Option<Option<&str>>) -> Option<Arc<K>> {
        let entry = self.cache.get(&key)?;
        if entry.expires <= sync::now_nanos() {
            if let Some(old) = self.cache.remove(&key) {
                self.stats.expirations.incr();
                self.dropped(&old);
            }
            return None;
        }
        if let Some(Some(rv)) = rv
            && !entry.resource_version.is(rv)
        {
            return None;
        }
        Some(entry.object)
    }

    /// One object through the cache and the singleflight. `rv`: `Some(v)` to require
    /// the body to be of the reference's version `v` (`Some(None)`: any). `owner`: the
    /// reference being resolved, whose hint a fetched body of its version is put in.
    async fn resolve(
        &self,
        key: KeyRef<'_>,
        rv: Option<Option<&str>>,
        owner: Option<&Arc<Reference>>,
    ) -> FetchResult<K> {
        let KeyRef {
            hash,
            namespace,
            name,
        } = key;
        let mut first = true;
        loop {
            if let Some(object) = self.lookup(key, rv) {
                // Counted once: a caller that already counted a miss is not also a hit.
                if first {
                    self.stats.hits.incr();
                }
                return Ok(Some(Fetched { object, bytes: 0 }));
            }
            let join = self.flights.join(
                hash,
                |k| k.is(namespace, name),
                || key.to_owned(),
                || self.lookup(key, rv),
            );
            match join {
                Join::Ready(object) => {
                    if first {
                        self.stats.hits.incr();
                    }
                    return Ok(Some(Fetched { object, bytes: 0 }));
                }
                Join::Wait(wait) => {
                    if first {
                        self.stats.misses.incr();
                        self.stats.coalesced.incr();
                        first = false;
                    }
                    match wait.await {
                        Outcome::Done(result) => return result,
                        Outcome::Abandoned => continue,
                        Outcome::Panicked => return Err(Arc::new(FetchError::LeaderPanicked)),
                    }
                }
                Join::Lead(leader) => {
                    if first {
                        self.stats.misses.incr();
                    }
                    self.stats.fetches.incr();
                    let started = sync::Stopwatch::start();
                    let result = self
                        .fetcher
                        .fetch(namespace, name)
                        .await
                        .and_then(|found| fetch::check_identity(namespace, name, found))
                        .map_err(Arc::new);
                    self.stats.record_fetch(started.elapsed_nanos());
                    match &result {
                        Err(_) => self.stats.fetch_errors.incr(),
                        Ok(None) => self.stats.not_found.incr(),
                        Ok(Some(_)) => {}
                    }
                    leader.complete(result.clone(), |result| self.fill(key, owner, result));
                    return result;
                }
            }
        }
    }

    /// Caches a fetched body (called under the flight's shard lock, only if no
    /// invalidation happened since the fetch began). If the body is of `owner`'s
    /// version, `owner`'s hint points at it, set after any earlier entry of the key is
    /// removed (clearing its hint) and before the entry is inserted (so an insert that
    /// evicts it at once clears the hint again): a hint never outlives its entry.
    fn fill(&self, key: KeyRef<'_>, owner: Option<&Arc<Reference>>, result: &FetchResult<K>) {
        let Ok(Some(fetched)) = result else { return };
        let bytes = u32::try_from(fetched.bytes).unwrap_or(u32::MAX);
        let rv = fetched.object.meta().resource_version.as_deref();
        let expires = sync::now_nanos()
            .saturating_add(u64::try_from(self.settings.ttl.as_nanos()).unwrap_or(u64::MAX));
        let owner = owner.filter(|r| r.resource_version() == rv).cloned();
        let entry = Entry {
            object: Arc::clone(&fetched.object),
            resource_version: Version::of(rv),
            expires,
            bytes,
            weigh_bytes: self.settings.max_bytes.is_some(),
            owner: owner.clone(),
        };
        if let Some(old) = self.cache.remove(&key) {
            self.dropped(&old);
        }
        if let Some(r) = &owner {
            let body: Arc<dyn Any + Send + Sync> = Arc::clone(&fetched.object) as _;
            r.hint.set(Some(Arc::new(Hint {
                body,
                expires,
                reported: Stamp::default(),
            })));
        }
        self.stats.bytes.add(u64::from(bytes));
        self.cache.insert(key.to_owned(), entry);
    }

    fn fetch_error<S: AsRef<str>>(
        keys: &[S],
        namespace: &str,
        name: &str,
        cause: Arc<FetchError>,
    ) -> StoreError {
        let object = if namespace.is_empty() {
            name.to_owned()
        } else {
            format!("{namespace}/{name}")
        };
        StoreError::new(Operation::Fetch, keys, ErrorKind::Fetch { object, cause })
    }

    async fn resolve_all<S: AsRef<str>>(
        &self,
        keys: &[S],
        refs: &[Arc<Reference>],
    ) -> Result<Vec<Arc<K>>, StoreError> {
        // Hits first, synchronously: a fully cached read makes no future at all and no
        // vector besides the result.
        let mut found: Vec<Arc<K>> = Vec::with_capacity(refs.len());
        for r in refs {
            match self.cached(r) {
                Some(obj) => found.push(obj),
                None => break,
            }
        }
        self.stats.hits.add(found.len() as u64);
        if found.len() == refs.len() {
            return Ok(found);
        }
        // `refs[found.len()]` just missed; look up the rest once each.
        let first_miss = found.len();
        let mut out: Vec<Option<Arc<K>>> = found.into_iter().map(Some).collect();
        out.push(None);
        let mut missed = vec![first_miss];
        for (i, r) in refs.iter().enumerate().skip(first_miss + 1) {
            match self.cached(r) {
                Some(obj) => {
                    self.stats.hits.incr();
                    out.push(Some(obj));
                }
                None => {
                    out.push(None);
                    missed.push(i);
                }
            }
        }
        if !missed.is_empty() {
            use futures::StreamExt;
            let fetches: Vec<_> = missed
                .into_iter()
                .map(|i| {
                    let r = Arc::clone(&refs[i]);
                    async move {
                        let result = self
                            .resolve(Self::key_of(&r), Some(r.resource_version()), Some(&r))
                            .await;
                        (i, result)
                    }
                })
                .collect();
            let mut results =
                futures::stream::iter(fetches).buffer_unordered(self.fetch_concurrency);
            while let Some((i, result)) = results.next().await {
                match result {
                    Ok(found) => out[i] = found.map(|f| f.object),
                    Err(cause) => {
                        let r = &refs[i];
                        return Err(Self::fetch_error(keys, &r.namespace, &r.name, cause));
                    }
                }
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// See [`CachedStore::get`].
    pub(crate) async fn get<S: AsRef<str>>(
        &self,
        keys: &[S],
    ) -> Result<crate::Objects<K>, StoreError> {
        if let Some(obj) = self.exact_hit(keys) {
            return Ok(crate::Objects::one(obj));
        }
        // Boxed, so that the future of a hit stays a few words (moving it copies
        // little); a miss pays one allocation beside its API call.
        Box::pin(async move {
            let refs = self.index.get(keys)?;
            self.resolve_all(keys, &refs)
                .await
                .map(crate::Objects::from)
        })
        .await
    }

    /// See [`CachedStore::get_one`].
    pub(crate) async fn get_one<S: AsRef<str>>(
        &self,
        keys: &[S],
    ) -> Result<Option<Arc<K>>, StoreError> {
        if let Some(obj) = self.exact_hit(keys) {
            return Ok(Some(obj));
        }
        Box::pin(async move {
            let Some(r) = self.index.get_one(keys)? else {
                return Ok(None);
            };
            Ok(self
                .resolve_all(keys, std::slice::from_ref(&r))
                .await?
                .pop())
        })
        .await
    }

    /// See [`CachedStore::fetch`].
    pub(crate) async fn fetch(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Arc<K>>, StoreError> {
        match self.resolve(self.key(namespace, name), None, None).await {
            Ok(found) => Ok(found.map(|f| f.object)),
            Err(cause) => Err(Self::fetch_error(
                &[namespace, name],
                namespace,
                name,
                cause,
            )),
        }
    }

    /// See [`CachedStore::list`].
    pub(crate) async fn list(&self) -> Result<Snapshot<K>, StoreError> {
        let refs = self.index.list().to_vec();
        let objects = self.resolve_all::<&str>(&[], &refs).await?;
        Ok(Snapshot::owning(objects))
    }

    /// See [`CachedStore::stats`].
    pub(crate) fn stats(&self) -> CacheStats {
        stats_of(&self.stats, self.cache.len())
    }

    /// See [`CachedStore::fetcher`].
    pub(crate) fn fetcher(&self) -> &F {
        &self.fetcher
    }

    /// See [`CachedStore::validate`].
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn validate(&self) -> Result<(), String> {
        self.index.validate()?;
        let flights = self.flights.len();
        if flights != 0 {
            return Err(format!("{flights} flights registered while idle"));
        }
        // A hint never outlives its entry: every hinted reference in the index owns
        // the cache entry of its key.
        for r in &self.index.list() {
            if !r.hint.is_some() {
                continue;
            }
            let owned = self
                .cache
                .peek(&Self::key_of(r))
                .is_some_and(|e| e.owner.as_ref().is_some_and(|o| Arc::ptr_eq(o, r)));
            if !owned {
                return Err(format!(
                    "{}/{} has a hint but the cache holds no entry of it for this reference",
                    r.namespace, r.name
                ));
            }
        }
        if self.cache.len() > self.settings.max_entries && self.settings.max_bytes.is_none() {
            return Err(format!(
                "{} entries resident, above max_entries {}",
                self.cache.len(),
                self.settings.max_entries
            ));
        }
        Ok(())
    }
}
