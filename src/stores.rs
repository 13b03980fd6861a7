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

use crate::cached::{CacheStats, CachedStore};
use crate::config::{Config, ResourceConfig, StoreKind};
use crate::error::{ErrorKind, Operation, StoreError};
use crate::memory::MemoryStore;
use crate::snapshot::Snapshot;
use crate::store::Store;
use crate::sync::Arc;
use crate::watch::{self, FeedOptions, WatchHandle, WatchStatus};

/// One named store of either tier, behind the [`Store`] trait by enum dispatch (no
/// boxing: a full store's reads stay synchronous underneath).
#[derive(Debug, Clone)]
pub enum AnyStore {
    /// `store: full`.
    Full(Arc<MemoryStore<DynamicObject>>),
    /// `store: on-demand`.
    OnDemand(Arc<CachedStore<DynamicObject>>),
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
}

impl Store<DynamicObject> for AnyStore {
    fn num_keys(&self) -> usize {
        match self {
            AnyStore::Full(s) => s.num_keys(),
            AnyStore::OnDemand(s) => s.num_keys(),
        }
    }

    fn add<S: AsRef<str>>(&self, obj: Arc<DynamicObject>, keys: &[S]) -> Result<(), StoreError> {
        match self {
            AnyStore::Full(s) => s.add(obj, keys),
            AnyStore::OnDemand(s) => s.add(&*obj, keys),
        }
    }

    fn update<S: AsRef<str>>(&self, obj: Arc<DynamicObject>, keys: &[S]) -> Result<(), StoreError> {
        match self {
            AnyStore::Full(s) => s.update(obj, keys),
            AnyStore::OnDemand(s) => s.update(&*obj, keys),
        }
    }

    fn remove(&self, obj: &DynamicObject) -> Result<bool, StoreError> {
        match self {
            AnyStore::Full(s) => s.remove(obj),
            AnyStore::OnDemand(s) => s.remove(obj),
        }
    }

    fn delete<S: AsRef<str>>(&self, keys: &[S]) -> Result<usize, StoreError> {
        match self {
            AnyStore::Full(s) => s.delete(keys),
            AnyStore::OnDemand(s) => s.delete(keys),
        }
    }

    fn replace<S: AsRef<str>>(
        &self,
        items: Vec<(Arc<DynamicObject>, Vec<S>)>,
    ) -> Result<(), StoreError> {
        match self {
            AnyStore::Full(s) => s.replace(items),
            AnyStore::OnDemand(s) => Store::replace(&**s, items),
        }
    }

    fn get<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<Vec<Arc<DynamicObject>>, StoreError>> + Send {
        match self {
            AnyStore::Full(s) => Either::Left(std::future::ready(s.get(keys))),
            AnyStore::OnDemand(s) => Either::Right(s.get(keys)),
        }
    }

    fn get_one<S: AsRef<str> + Sync>(
        &self,
        keys: &[S],
    ) -> impl Future<Output = Result<Option<Arc<DynamicObject>>, StoreError>> + Send {
        match self {
            AnyStore::Full(s) => Either::Left(std::future::ready(s.get_one(keys))),
            AnyStore::OnDemand(s) => Either::Right(s.get_one(keys)),
        }
    }

    fn list(&self) -> impl Future<Output = Result<Snapshot<DynamicObject>, StoreError>> + Send {
        match self {
            AnyStore::Full(s) => Either::Left(std::future::ready(Ok(s.list()))),
            AnyStore::OnDemand(s) => Either::Right(s.list()),
        }
    }

    fn len(&self) -> usize {
        match self {
            AnyStore::Full(s) => s.len(),
            AnyStore::OnDemand(s) => s.len(),
        }
    }

    fn clear(&self) {
        match self {
            AnyStore::Full(s) => s.clear(),
            AnyStore::OnDemand(s) => s.clear(),
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

fn invalid(name: &str, message: String) -> StoreError {
    StoreError::new(
        Operation::Config,
        &[name],
        ErrorKind::InvalidSetting(message),
    )
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
    /// A setting the stores refuse (for example an on-demand store indexed by a field
    /// outside `metadata`, which a metadata-only watch cannot see).
    pub fn start(config: &Config, client: kube::Client) -> Result<Self, StoreError> {
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
                    let store = Arc::new(builder.build()?);
                    let watch = watch::spawn_full(
                        api_for::<DynamicObject>(&client, rc, &ar),
                        watcher_config(rc),
                        Arc::clone(&store),
                        indexer,
                        FeedOptions::new(name.clone()).strip(Arc::new(stripper)),
                    )?;
                    Watched {
                        store: AnyStore::Full(store),
                        api_resource: ar,
                        watch,
                    }
                }
                StoreKind::OnDemand => {
                    if let Some(path) = rc.index_by.iter().find(|p| !p.starts_with("metadata.")) {
                        return Err(invalid(
                            name,
                            format!(
                                "index_by path {path:?} is outside metadata, but store: on-demand \
                                 is fed by a metadata-only watch; index by metadata fields \
                                 (namespace, name, labels, annotations) or use store: full"
                            ),
                        ));
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
                    let store = Arc::new(builder.build()?);
                    let watch = watch::spawn_on_demand(
                        api_for::<PartialObjectMeta<DynamicObject>>(&client, rc, &ar),
                        watcher_config(rc),
                        Arc::clone(&store),
                        indexer,
                        FeedOptions::new(name.clone()),
                    )?;
                    Watched {
                        store: AnyStore::OnDemand(store),
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

    /// Resolves once every watch has swapped in its first full list.
    pub async fn ready(&self) {
        for w in self.entries.values() {
            w.status().ready().await;
        }
    }

    /// The sum of every watch's change generation: it increases with every write.
    pub fn generation(&self) -> u64 {
        self.entries.values().map(|w| w.status().generation()).sum()
    }
}
