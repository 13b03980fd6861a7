//! From a [`Config`] and a `kube::Client` to running watches and named stores.
//!
//! [`Stores::start`] builds one store per entry of `watched_resources` (a
//! [`MemoryStore`] for `store: full`, a [`CachedStore`] for `store: on-demand`), starts
//! one watch per store (full objects, or metadata only for the on-demand tier) and
//! hands back the stores by name. Resources are only known at run time here, so objects
//! are `kube::core::DynamicObject`s.

use std::collections::BTreeMap;
use std::fmt;

use futures::future::Either;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, PartialObjectMeta};
use kube::runtime::watcher;

use crate::error::StoreError;
use crate::feed::config::{
    Config, ConfigError, ResourceConfig, StoreKind, check_on_demand_index, resource_path,
};
use crate::feed::watch::{self, FeedOptions, WatchHandle, WatchStatus};
use crate::index::memory::SelectStats;
use crate::index::snapshot::Snapshot;
use crate::index::store::{MemoryReader, MemoryStore};
use crate::on_demand::cached::CacheStats;
use crate::on_demand::store::{CachedReader, CachedStore};
use crate::readiness::WriterDropped;
use crate::selector::Selector;
use crate::sync::Arc;

/// A read handle to one named store of either tier, by enum dispatch (no boxing: a full
/// store's reads stay synchronous underneath). It cannot write: the store's writer is
/// owned by its watch.
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// `store: full`.
    Full(MemoryReader<DynamicObject>),
    /// `store: on-demand`.
    OnDemand(CachedReader<DynamicObject>),
}

impl AnyStore {
    /// The tier.
    pub fn kind(&self) -> StoreKind {
        match self {
            AnyStore::Full(_) => StoreKind::Full,
            AnyStore::OnDemand(_) => StoreKind::OnDemand,
        }
    }

    /// The on-demand tier's cache counters (`None` for a full store).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        match self {
            AnyStore::Full(_) => None,
            AnyStore::OnDemand(s) => Some(s.stats()),
        }
    }

    /// How many key components each object is stored under.
    pub fn num_keys(&self) -> usize {
        match self {
            AnyStore::Full(s) => s.num_keys(),
            AnyStore::OnDemand(s) => s.num_keys(),
        }
    }

    /// The objects under `keys` (exact or prefix), in (namespace, name, uid) order;
    /// the on-demand tier fetches what is not cached.
    ///
    /// # Errors
    /// As [`MemoryReader::get`] and [`CachedReader::get`].
    pub fn get<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<crate::Objects<DynamicObject>, StoreError>> + Send {
        match self {
            AnyStore::Full(s) => Either::Left(std::future::ready(s.get(keys))),
            AnyStore::OnDemand(s) => Either::Right(s.get(keys)),
        }
    }

    /// The one object under exactly `keys`, or `None`.
    ///
    /// # Errors
    /// As [`MemoryReader::get_one`] and [`CachedReader::get_one`].
    pub fn get_one<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<Option<Arc<DynamicObject>>, StoreError>> + Send {
        match self {
            AnyStore::Full(s) => Either::Left(std::future::ready(s.get_one(keys))),
            AnyStore::OnDemand(s) => Either::Right(s.get_one(keys)),
        }
    }

    /// Every object, as an immutable snapshot (the on-demand tier fetches what is not
    /// cached).
    ///
    /// # Errors
    /// A fetch error of the on-demand tier.
    pub fn list(&self) -> impl Future<Output = Result<Snapshot<DynamicObject>, StoreError>> + Send {
        match self {
            AnyStore::Full(s) => Either::Left(std::future::ready(Ok(s.list()))),
            AnyStore::OnDemand(s) => Either::Right(s.list()),
        }
    }

    /// The objects under `keys` in the secondary index `index` (exact or prefix), in
    /// (namespace, name, uid) order; the on-demand tier fetches what is not cached.
    ///
    /// # Errors
    /// As [`MemoryReader::get_by`] and [`CachedReader::get_by`].
    pub fn get_by<'a, S: AsRef<str> + Sync>(
        &'a self,
        index: &'a str,
        keys: &'a [S],
    ) -> impl Future<Output = Result<Vec<Arc<DynamicObject>>, StoreError>> + Send + 'a {
        match self {
            AnyStore::Full(s) => Either::Left(std::future::ready(s.get_by(index, keys))),
            AnyStore::OnDemand(s) => Either::Right(s.get_by(index, keys)),
        }
    }

    /// The objects whose labels match `selector`, in (namespace, name, uid) order, in
    /// namespace `namespace` only if given; the on-demand tier fetches what is not
    /// cached. See [`MemoryReader::select`].
    ///
    /// # Errors
    /// A fetch error of the on-demand tier.
    pub fn select<'a>(
        &'a self,
        namespace: Option<&'a str>,
        selector: &'a Selector,
    ) -> impl Future<Output = Result<Vec<Arc<DynamicObject>>, StoreError>> + Send + 'a {
        match (self, namespace) {
            (AnyStore::Full(s), None) => Either::Left(std::future::ready(Ok(s.select(selector)))),
            (AnyStore::Full(s), Some(ns)) => {
                Either::Left(std::future::ready(Ok(s.select_in(ns, selector))))
            }
            (AnyStore::OnDemand(s), None) => Either::Right(Either::Left(s.select(selector))),
            (AnyStore::OnDemand(s), Some(ns)) => {
                Either::Right(Either::Right(s.select_in(ns, selector)))
            }
        }
    }

    /// How selector queries were answered (see [`MemoryReader::select_stats`]).
    pub fn select_stats(&self) -> SelectStats {
        match self {
            AnyStore::Full(s) => s.select_stats(),
            AnyStore::OnDemand(s) => s.select_stats(),
        }
    }

    /// The names of the store's secondary indexes.
    pub fn index_names(&self) -> Vec<&str> {
        match self {
            AnyStore::Full(s) => s.index_names().collect(),
            AnyStore::OnDemand(s) => s.index_names().collect(),
        }
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        match self {
            AnyStore::Full(s) => s.len(),
            AnyStore::OnDemand(s) => s.len(),
        }
    }

    /// Whether the store holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once the store has its first complete list.
    ///
    /// # Errors
    /// [`WriterDropped`] once its watch is gone.
    pub async fn ready(&self) -> Result<(), WriterDropped> {
        match self {
            AnyStore::Full(s) => s.ready().await,
            AnyStore::OnDemand(s) => s.ready().await,
        }
    }
}

/// A store with its watch.
#[derive(Debug)]
pub struct Watched {
    /// The store.
    pub store: AnyStore,
    /// The resource it holds.
    pub api_resource: ApiResource,
    watch: WatchHandle,
}

impl Watched {
    /// The watch's readiness, change signal and counters.
    pub fn status(&self) -> &WatchStatus {
        self.watch.status()
    }
}

/// The named stores of a configuration, each fed by its own watch. Dropping it stops
/// the watches.
pub struct Stores {
    entries: BTreeMap<String, Watched>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v.store.len())))
            .finish()
    }
}

/// A store's refusal of `name`'s settings, as a configuration error naming the resource.
fn refused(name: &str) -> impl FnOnce(StoreError) -> ConfigError {
    move |source| ConfigError::Store {
        path: resource_path(name),
        source,
    }
}

fn api_for<K>(client: &kube::Client, rc: &ResourceConfig, ar: &ApiResource) -> Api<K>
where
    K: kube::Resource<DynamicType = ApiResource, Scope = kube::core::DynamicResourceScope>,
{
    match &rc.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

fn watcher_config(rc: &ResourceConfig) -> watcher::Config {
    let mut config = watcher::Config::default();
    if let Some(labels) = &rc.label_selector {
        config = config.labels(labels);
    }
    if let Some(fields) = &rc.field_selector {
        config = config.fields(fields);
    }
    config
}

impl Stores {
    /// Builds every store of `config` and starts its watch on the current tokio
    /// runtime. Returns at once; use [`ready`](Self::ready) to wait for the first sync.
    ///
    /// # Errors
    /// A configuration as loaded is valid and starts; these are for settings changed
    /// after loading. [`ConfigError::Invalid`] for an on-demand store indexed by a field
    /// outside `metadata` (which a metadata-only watch cannot see), as loading reports
    /// it; [`ConfigError::Store`] for a setting a store refuses (its cause is the
    /// [`StoreError`]). No watch is left running when any resource fails: those already
    /// started for earlier resources stop as their handles drop.
    pub fn start(config: &Config, client: kube::Client) -> Result<Self, ConfigError> {
        let mut entries = BTreeMap::new();
        for (name, rc) in &config.watched_resources {
            let ar = rc.api_resource();
            let indexer = rc.indexer();
            let stripper = {
                let rc = rc.clone();
                move |obj: &mut DynamicObject| rc.strip_dynamic(obj)
            };
            let watched = match rc.store {
                StoreKind::Full => {
                    let mut builder = MemoryStore::<DynamicObject>::builder(indexer.len());
                    if let Some(shards) = rc.index_shards {
                        builder = builder.shards(shards);
                    }
                    for (index, indexer) in rc.secondary_indexers() {
                        builder = builder.index(index, indexer.clone());
                    }
                    if let Some(which) = &rc.index_labels {
                        builder = builder.label_index(which.clone());
                    }
                    let store = builder.build().map_err(refused(name))?;
                    let reader = store.reader();
                    let watch = watch::spawn_full(
                        api_for::<DynamicObject>(&client, rc, &ar),
                        watcher_config(rc),
                        store,
                        indexer,
                        FeedOptions::new(name.clone()).strip(Arc::new(stripper)),
                    )
                    .map_err(refused(name))?;
                    Watched {
                        store: AnyStore::Full(reader),
                        api_resource: ar,
                        watch,
                    }
                }
                StoreKind::OnDemand => {
                    if let Err((i, reason)) = check_on_demand_index(&rc.index_by) {
                        return Err(ConfigError::Invalid {
                            file: None,
                            path: format!("{}.index_by[{i}]", resource_path(name)),
                            reason,
                            line: None,
                            column: None,
                        });
                    }
                    let rc_strip = rc.clone();
                    let mut builder =
                        CachedStore::<DynamicObject>::builder_for(indexer.len(), ar.clone())
                            .client(client.clone())
                            .strip(Arc::new(move |obj: &mut DynamicObject| {
                                rc_strip.strip_dynamic(obj)
                            }))
                            .ttl(rc.ttl())
                            .max_entries(rc.max_entries());
                    if let Some(bytes) = rc.max_cache_bytes {
                        builder = builder.max_bytes(bytes);
                    }
                    if let Some(shards) = rc.index_shards {
                        builder = builder.shards(shards);
                    }
                    if let Some(ns) = &rc.namespace {
                        builder = builder.namespace(ns.clone());
                    }
                    for (index, indexer) in rc.secondary_indexers() {
                        builder = builder.index(index, indexer.clone());
                    }
                    if let Some(which) = &rc.index_labels {
                        builder = builder.label_index(which.clone());
                    }
                    let store = builder.build().map_err(refused(name))?;
                    let reader = store.reader();
                    let watch = watch::spawn_on_demand(
                        api_for::<PartialObjectMeta<DynamicObject>>(&client, rc, &ar),
                        watcher_config(rc),
                        store,
                        indexer,
                        FeedOptions::new(name.clone()),
                    )
                    .map_err(refused(name))?;
                    Watched {
                        store: AnyStore::OnDemand(reader),
                        api_resource: ar,
                        watch,
                    }
                }
            };
            entries.insert(name.clone(), watched);
        }
        Ok(Self { entries })
    }

    /// The store called `name`.
    pub fn get(&self, name: &str) -> Option<&AnyStore> {
        self.entries.get(name).map(|w| &w.store)
    }

    /// The store called `name` with its watch.
    pub fn watched(&self, name: &str) -> Option<&Watched> {
        self.entries.get(name)
    }

    /// Every store by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Watched)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Resolves once every store has its first complete list.
    ///
    /// # Errors
    /// [`WriterDropped`] as soon as any store's watch is gone before (or after) its
    /// first list: it never waits for a list that cannot come.
    pub async fn ready(&self) -> Result<(), WriterDropped> {
        futures::future::try_join_all(self.entries.values().map(|w| w.store.ready()))
            .await
            .map(|_| ())
    }

    /// The sum of every watch's change generation: it increases with every write.
    pub fn generation(&self) -> u64 {
        self.entries.values().map(|w| w.status().generation()).sum()
    }
}
