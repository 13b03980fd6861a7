//! The full in-memory tier: [`MemoryStore`].

use std::cmp::Ordering;
use std::collections::BTreeMap;

use hashbrown::HashTable;

use crate::error::{ErrorKind, Operation, StoreError};
use crate::feed::indexer::Indexer;
use crate::feed::keys::Components;
use crate::freshness::{Freshness, Version, Versions, WaitError};
use crate::index::batch::{Applied, Batch, Change};
use crate::index::bucket::{self, by_order, sep_of};
use crate::index::exact::{self, Fill, Value};
use crate::index::group::{Group, by_prefix, group_sep};
#[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
use crate::index::ids::LocatedRef;
use crate::index::ids::{Ids, Located};
use crate::index::key::{self, KeyHasher};
use crate::index::latest::{Found, Member};
use crate::index::ptree::{Draft, Elem, PTree, Sep, SepBuilder, StateTree, Target};
use crate::index::retire::{Garbage, Generation, Unowned};
use crate::index::secondary::{
    LabelIndex, MemberGroup, Secondary, SecondaryKeys, SecondaryState, mark, marks_of, prefixes,
};
use crate::index::snapshot::Snapshot;
use crate::index::store::MemoryStore;
use crate::object::{Accessors, MetaView, Object};
use crate::objects::Objects;
use crate::readiness::Readiness;
use crate::selector::{Requirement, Selector};
#[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
use crate::sync::ALL_MARKS;
use crate::sync::{Arc, Counter, Mutex, Published, default_index_shards};

/// The full tier's index: what a [`MemoryStore`] (its writer) and its
/// [`MemoryReader`](crate::MemoryReader)s share. See [`MemoryStore`] for the contract.
pub(crate) struct Index<K> {
    num_keys: usize,
    acc: Accessors<K>,
    hasher: KeyHasher,
    /// The secondary indexes, in the order they were configured (see
    /// [`secondary`](crate::index::secondary)); `State::secondary` holds their groups
    /// in the same order.
    secondary: Box<[Secondary<K>]>,
    /// The label keys the label index covers (the last of `secondary`), if there is one.
    labels: Option<LabelIndex>,
    /// [`Object::label`], for matching selectors.
    label_of: for<'a> fn(&'a K, &str) -> Option<&'a str>,
    /// How selectors were answered.
    selects: SelectCounters,
    /// The shard count the store was built with, which no longer divides anything
    /// (see [`MemoryStoreBuilder::shards`]).
    shards: usize,
    published: Published<State<K>>,
    writer: Mutex<Writer<K>>,
    /// Set by the writer after a complete list, and when it is dropped.
    pub(crate) readiness: Readiness,
    /// The versions applied, and the readers waiting for one.
    pub(crate) freshness: Freshness,
    /// The retired nodes of generations dropped by readers, freed by the writer after
    /// each write (see [`Garbage`]).
    garbage: Arc<Garbage>,
}

impl<K> Drop for Index<K> {
    fn drop(&mut self) {
        // The identity table's counts keep the current state's objects alive; snapshots
        // of it may outlive the store, so its generation takes them over.
        let mut w = self.writer.lock();
        let ids = std::mem::take(&mut w.ids);
        let mut cx = Draft::new(0);
        let objects = ids.into_parts().map(|(obj, member)| {
            if let Some(m) = member {
                // SAFETY: the identity leaves the table (the store is dropped), once.
                #[allow(unsafe_code)]
                unsafe {
                    m.retire(&mut cx)
                };
            }
            obj
        });
        w.state.generation.retire(objects);
        // So do the current state's trees: no later write will replace their nodes.
        w.state.retire_trees(&mut cx);
        w.state.generation.retire_nodes(cx.finish());
    }
}

impl<K: Send + Sync + 'static> std::fmt::Debug for Index<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the objects: they may be Secrets.
        f.debug_struct("MemoryStore")
            .field("num_keys", &self.num_keys)
            .field("len", &self.len())
            .field("shards", &self.shards)
            .finish_non_exhaustive()
    }
}

/// The state readers see through `list` and prefix gets, replaced as a whole by each
/// write and sharing all untouched nodes with its predecessor.
///
/// The trees hold their objects as [`Unowned`] copies, kept alive by the writer's
/// identity table and by `generation` (see [`retire`](crate::index::retire)).
struct State<K> {
    /// Every object, in (namespace, name, uid) order: kept only when the groups of the
    /// first key component cannot give that order. While every object's first key
    /// component is its namespace (and there are groups: `num_keys > 1`), the depth-1
    /// groups are ordered by namespace and the list is those groups one after another,
    /// so a write changes one tree fewer (`None`). See [`Index::needs_list`].
    all: Option<StateTree<Unowned<K>>>,
    /// `prefixes[d - 1]` holds, for depth `d` in `1..num_keys`, the groups of objects
    /// whose first `d` components are equal, ordered by encoded prefix.
    prefixes: Box<[StateTree<Group<K>>]>,
    /// The groups of each secondary index (see [`Secondary`]), in the index's order.
    secondary: Box<[SecondaryState<K>]>,
    /// How many objects there are.
    len: usize,
    /// How many objects' first key component is not their namespace.
    foreign: usize,
    /// The exact-key table (see [`exact`]): shared with the states before and after
    /// until a write rebuilds it, and read against `stamp`.
    exact: exact::Table<K>,
    /// The stamp of the write that published this state (see
    /// [`latest`](crate::index::latest)).
    stamp: u64,
    generation: Arc<Generation<K>>,
}

impl<K> State<K> {
    /// The start of the next state: the same trees (sharing every node), a new
    /// generation.
    fn successor(&self) -> Self {
        Self {
            all: self.all.clone(),
            prefixes: self.prefixes.clone(),
            secondary: self.secondary.clone(),
            len: self.len,
            foreign: self.foreign,
            exact: self.exact,
            stamp: self.stamp,
            generation: self.generation.successor(),
        }
    }

    /// Takes this state's trees and exact-key table out of use whole (a relist replaced
    /// them, or the store is dropped): `cx` frees them with the generation it is
    /// finished into.
    fn retire_trees(&self, cx: &mut Draft) {
        self.exact.retire_all(cx);
        if let Some(all) = &self.all {
            cx.retire_tree(all);
        }
        for t in self.prefixes.iter() {
            cx.retire_tree(t);
        }
        for t in self.secondary.iter().flat_map(|s| &s.depths) {
            cx.retire_tree(t);
        }
    }

    /// Every object, in order.
    fn snapshot(&self) -> Snapshot<K> {
        let generation = Arc::clone(&self.generation);
        match (&self.all, self.prefixes.first()) {
            (Some(all), _) => Snapshot::new(all.clone(), generation),
            (None, Some(groups)) => Snapshot::of_groups(groups.clone(), self.len, generation),
            // A store of one key component always keeps its list (`needs_list`).
            (None, None) => Snapshot::new(StateTree::default(), generation),
        }
    }

    /// The stored object ordered as `view`.
    fn find(&self, acc: Accessors<K>, view: MetaView<'_>) -> Option<&Unowned<K>> {
        match (&self.all, self.prefixes.first()) {
            (Some(all), _) => all.get(&by_order(acc, view)),
            (None, Some(groups)) => {
                // Without a list every object is in the group of its own namespace.
                let prefix = key::encode(&[view.namespace]);
                groups
                    .get(&by_prefix(&prefix))?
                    .members
                    .get(&by_order(acc, view))
            }
            (None, None) => None,
        }
    }
}

/// What a selector's terms require of an object's label marks (see
/// [`marks_of`]): for each equality or `in` term on an indexed label key, the marks
/// of its values, one of which an object that meets the term has all the bits of.
/// Other terms require nothing of the marks.
struct Marks {
    terms: Vec<Vec<u64>>,
}

impl Marks {
    /// Requires nothing: every object's marks pass.
    const ANY: Marks = Marks { terms: Vec::new() };

    /// What `terms` require of the marks of a store indexing the label keys `which`.
    fn of(which: &LabelIndex, terms: &[&Requirement]) -> Self {
        let terms = terms
            .iter()
            .filter(|r| which.covers(r.key()))
            .filter_map(|r| match r {
                Requirement::Equals { key, value } => Some(vec![mark(&key::encode(&[key, value]))]),
                Requirement::In { key, values } => Some(
                    values
                        .iter()
                        .map(|v| mark(&key::encode(&[key, v])))
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        Self { terms }
    }

    /// Whether an object with the marks `marks` may meet the terms (if it does, it
    /// passes).
    #[inline]
    fn admits(&self, marks: u64) -> bool {
        self.terms
            .iter()
            .all(|t| t.iter().any(|&m| m & !marks == 0))
    }
}

/// The label index's lists (its groups' members) under the cheapest term of `reqs`
/// that the index can answer alone (`=` or `in` on a key it covers), by how many
/// objects they hold, and that term's position; `None` when there is no such term.
fn cheapest_lists<K>(
    which: &LabelIndex,
    depths: &[StateTree<MemberGroup<K>>],
    reqs: &[Requirement],
) -> Option<(usize, Lists<K>)> {
    let list = |depth: usize, parts: &[&str]| {
        depths
            .get(depth - 1)
            .and_then(|t| t.get(&by_prefix(&key::encode(parts))))
            .map(|g| g.members.clone())
    };
    let mut best: Option<(usize, usize, Lists<K>)> = None;
    for (i, r) in reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| which.covers(r.key()))
    {
        let lists: Vec<_> = match r {
            Requirement::Equals { key, value } => list(2, &[key, value]).into_iter().collect(),
            Requirement::In { key, values } => {
                values.iter().filter_map(|v| list(2, &[key, v])).collect()
            }
            // The label index keeps no groups of a key alone (see
            // `Secondary::labels`): `key` terms, like the negative ones, only filter.
            _ => continue,
        };
        let cost = lists.iter().map(PTree::len).sum::<usize>();
        if best.as_ref().is_none_or(|(c, _, _)| cost < *c) {
            best = Some((cost, i, lists));
        }
    }
    best.map(|(_, i, lists)| (i, lists))
}

/// Finds the first object of namespace `ns` in a list in (namespace, name, uid) order.
fn namespace_start<K, E: AsRef<K>>(acc: Accessors<K>, ns: &str) -> Target<impl Fn(&E) -> Ordering> {
    let mut sep = SepBuilder::new();
    sep.add_component(ns.as_bytes());
    Target {
        // At most the `Sep` of any object of the namespace (its name and uid follow).
        sep: sep.finish(),
        cmp: move |o: &E| {
            if (acc.meta)(o.as_ref()).namespace < ns {
                Ordering::Less
            } else {
                Ordering::Greater
            }
        },
    }
}

/// Consecutive members of one group gathered during a relist: its encoded prefix and
/// them, in order.
type Run<K> = (Vec<u8>, Vec<Unowned<K>>);

/// The groups of one tree gathered during a relist: each encoded prefix and its
/// members (objects, or the secondary indexes' [`Member`]s), in order.
type Gathered<E> = BTreeMap<Vec<u8>, Vec<E>>;

/// How two stored objects order, by (namespace, name, uid).
fn order_arcs<K>(acc: Accessors<K>, a: &Arc<K>, b: &Arc<K>) -> Ordering {
    (acc.meta)(a).order(&(acc.meta)(b))
}

/// Whether the first component of the encoded key `encoded` is `view`'s namespace.
fn first_is_namespace(encoded: &[u8], view: MetaView<'_>) -> bool {
    key::encoded_eq(
        &encoded[..bucket::prefix_len(encoded, 1)],
        &[view.namespace],
    )
}

/// Whether a stored object is an unchanged version of the one being written: `None`
/// when it is of another identity (see [`Index::update_changed`]).
pub(crate) type Same<'a, K> = dyn Fn(&K) -> Option<bool> + 'a;

/// How many selector queries a store answered from its label index, and how many by
/// reading every object (see [`MemoryStore::select`]).
#[derive(Debug, Default)]
struct SelectCounters {
    indexed: Counter,
    scans: Counter,
}

/// How a store's selector queries were answered (see
/// [`MemoryReader::select`](crate::MemoryReader::select)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SelectStats {
    /// Queries answered from the label index: from the objects under its cheapest
    /// indexed `=` or `in` term.
    pub indexed: u64,
    /// Queries answered by reading every object (the selector has no term on an
    /// indexed label key that narrows it, or the store has no label index).
    pub scans: u64,
}

/// Lists of objects (the label index's groups' members) that a selector query reads.
type Lists<K> = Vec<StateTree<Member<K>>>;

/// What only the writer touches: where each identity lives.
struct Writer<K> {
    /// identity -> the stored object, the hash of its composite key, its member.
    ids: Ids<K>,
    /// The state last published.
    state: Arc<State<K>>,
    /// The stamp of the last write's [`Draft`]: each write takes the next.
    stamp: u64,
    /// How full the current exact-key table is.
    fill: Fill,
}

impl<K> Writer<K> {
    /// The draft of a new write, with a stamp no earlier write used.
    fn draft(&mut self) -> Draft {
        self.stamp += 1;
        Draft::new(self.stamp)
    }
}

/// The most key components a store (and an [`Indexer`](crate::Indexer)) takes: 64.
///
/// Each component past the first is a prefix depth that every write updates, so a store
/// of a thousand components would make each write a thousand tree updates; nothing a
/// controller indexes by needs more than a handful. A larger `num_keys` is
/// [`ErrorKind::TooManyKeys`], refused before anything is allocated.
pub const MAX_KEYS: usize = 64;

/// The largest shard count the builders accept: 65,536.
///
/// Kept for compatibility: the exact-key index is one lock-free table and has no
/// shards, so the setting ([`MemoryStoreBuilder::shards`],
/// [`CachedStoreBuilder::shards`](crate::CachedStoreBuilder::shards), the `index_shards`
/// configuration key) allocates nothing and has no effect. It is still validated as
/// before, so settings that were accepted still are: a larger count is
/// [`ErrorKind::InvalidSetting`].
pub const MAX_SHARDS: usize = 1 << 16;

/// Checks a builder's key count and shard count, before anything is allocated, and
/// returns the shard count to report (the default if none was given). The shard count
/// is validated as it always was and used for nothing else (see [`MAX_SHARDS`]).
pub(crate) fn check_shape(num_keys: usize, shards: Option<usize>) -> Result<usize, StoreError> {
    if num_keys == 0 {
        return Err(StoreError::build(ErrorKind::ZeroKeys));
    }
    if num_keys > MAX_KEYS {
        return Err(StoreError::build(ErrorKind::TooManyKeys {
            max: MAX_KEYS,
            given: num_keys,
        }));
    }
    match shards {
        None => Ok(default_index_shards()),
        Some(n) if (2..=MAX_SHARDS).contains(&n) && n.is_power_of_two() => Ok(n),
        Some(n) => Err(StoreError::build(ErrorKind::InvalidSetting(format!(
            "shards = {n}: must be a power of two from 2 to {MAX_SHARDS} (for example 16, 64 \
             or 1024)"
        )))),
    }
}

/// Refuses a key longer than the exact-key index holds ([`exact::MAX_KEY_BYTES`]).
fn check_key_len<S: AsRef<str>>(op: Operation, keys: &[S]) -> Result<(), StoreError> {
    // An encoding is at most twice its components' bytes plus two per component.
    let bound: usize = keys
        .iter()
        .map(|k| k.as_ref().len().saturating_mul(2).saturating_add(2))
        .fold(0, usize::saturating_add);
    if bound <= exact::MAX_KEY_BYTES {
        return Ok(());
    }
    let given = key::encode(keys).len();
    if given <= exact::MAX_KEY_BYTES {
        return Ok(());
    }
    Err(StoreError::new(
        op,
        keys,
        ErrorKind::KeyTooLong {
            max: exact::MAX_KEY_BYTES,
            given,
        },
    ))
}

/// Builds a [`MemoryStore`] with tuning options.
#[must_use]
pub struct MemoryStoreBuilder<K> {
    num_keys: usize,
    shards: Option<usize>,
    indexes: Vec<(String, Indexer)>,
    label_index: Option<LabelIndex>,
    _objects: std::marker::PhantomData<fn() -> K>,
}

impl<K> std::fmt::Debug for MemoryStoreBuilder<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStoreBuilder")
            .field("num_keys", &self.num_keys)
            .field("shards", &self.shards)
            .field("indexes", &self.indexes)
            .field("label_index", &self.label_index)
            .finish()
    }
}

impl<K> Clone for MemoryStoreBuilder<K> {
    fn clone(&self) -> Self {
        Self {
            num_keys: self.num_keys,
            shards: self.shards,
            indexes: self.indexes.clone(),
            label_index: self.label_index.clone(),
            _objects: std::marker::PhantomData,
        }
    }
}

impl<K: Send + Sync + 'static> MemoryStoreBuilder<K> {
    pub(crate) fn new(num_keys: usize) -> Self {
        Self {
            num_keys,
            shards: None,
            indexes: Vec::new(),
            label_index: None,
            _objects: std::marker::PhantomData,
        }
    }

    /// A shard count for the exact-key index: a power of two from 2 to [`MAX_SHARDS`].
    ///
    /// Kept for compatibility, and has no effect: the exact-key index used to be split
    /// into shards behind reader-writer locks, and is now one table that readers probe
    /// without a lock. The count is still validated (anything else is refused by
    /// [`build`](Self::build)) and reported back by
    /// [`MemoryStore::shards`](crate::MemoryStore::shards).
    ///
    /// Defaults to: 1024 (or four per available core, rounded up to a power of two,
    /// where that is more).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Adds the secondary index `name`: every object is also found under the keys
    /// `indexer` reads from it, one component per path, exactly or by prefix, with
    /// [`MemoryReader::get_by`](crate::MemoryReader::get_by). An object whose field is
    /// missing is in no entry of that index (not an error).
    ///
    /// Every write updates every index and publishes them together with the primary
    /// key: once it returns, every lookup shows it, and no lookup sees an object in one
    /// index and not in another.
    ///
    /// Defaults to: no secondary index.
    ///
    /// # Examples
    /// ```
    /// use std::sync::Arc;
    /// use k8s_openapi::api::core::v1::Pod;
    /// use k8s_store::{Indexer, MemoryStore};
    ///
    /// let store = MemoryStore::<Pod>::builder(2)
    ///     .index("by_node", Indexer::new(["spec.nodeName"])?)
    ///     .build()?;
    /// let mut pod = Pod::default();
    /// pod.metadata.namespace = Some("shop".into());
    /// pod.metadata.name = Some("cart-1".into());
    /// pod.spec = Some(k8s_openapi::api::core::v1::PodSpec {
    ///     node_name: Some("node-7".into()),
    ///     ..Default::default()
    /// });
    /// store.add(Arc::new(pod), &["shop", "cart-1"])?;
    /// let on_node = store.reader().get_by("by_node", &["node-7"])?;
    /// assert_eq!(on_node.len(), 1);
    /// # Ok::<(), k8s_store::StoreError>(())
    /// ```
    pub fn index(mut self, name: impl Into<String>, indexer: Indexer) -> Self {
        self.indexes.push((name.into(), indexer));
        self
    }

    /// Indexes the labels `which` covers, so that
    /// [`select`](crate::MemoryReader::select) answers a selector with an `=` or `in`
    /// term on one of them from the objects under that term alone (the cheapest, when
    /// there are several), instead of reading every object. A `key` (exists) term
    /// only filters: the index keeps no list of every object with a key, which every
    /// write of such an object would have to change.
    ///
    /// Each indexed label of each object is one more entry that every write of the
    /// object keeps up to date, published with the rest of the write.
    ///
    /// Defaults to: no label index (selectors read every object).
    pub fn label_index(mut self, which: LabelIndex) -> Self {
        self.label_index = Some(which);
        self
    }

    /// Builds the store.
    ///
    /// # Errors
    /// [`ErrorKind::ZeroKeys`] for `num_keys == 0`, [`ErrorKind::TooManyKeys`] past
    /// [`MAX_KEYS`]; [`ErrorKind::InvalidSetting`] for a shard count that is not a power
    /// of two from 2 to [`MAX_SHARDS`], and for a secondary index with an empty name or
    /// the name of another. Nothing is allocated before these checks.
    pub fn build<M>(self) -> Result<MemoryStore<K>, StoreError>
    where
        K: Object<M>,
    {
        self.build_index().map(MemoryStore::from_index)
    }

    /// Builds the index alone (the on-demand tier's references live in one).
    pub(crate) fn build_index<M>(self) -> Result<Index<K>, StoreError>
    where
        K: Object<M>,
    {
        let shards = check_shape(self.num_keys, self.shards)?;
        for (i, (name, _)) in self.indexes.iter().enumerate() {
            if name.is_empty() {
                return Err(StoreError::build(ErrorKind::InvalidSetting(
                    "a secondary index needs a name (for example by_node)".into(),
                )));
            }
            if self.indexes[..i].iter().any(|(n, _)| n == name) {
                return Err(StoreError::build(ErrorKind::InvalidSetting(format!(
                    "two secondary indexes are named {name:?}: each needs its own name"
                ))));
            }
        }
        let labels = self.label_index;
        let secondary: Box<[Secondary<K>]> = self
            .indexes
            .into_iter()
            .map(|(name, indexer)| Secondary::new::<M>(name, indexer))
            // The label index goes last (`select` finds it there).
            .chain(labels.clone().map(Secondary::labels::<M>))
            .collect();
        let grouped = !secondary.is_empty();
        let garbage = Arc::new(Garbage::new());
        let state = Arc::new(State {
            all: (self.num_keys == 1).then(StateTree::default),
            prefixes: (1..self.num_keys).map(|_| StateTree::default()).collect(),
            secondary: secondary
                .iter()
                .map(|s| SecondaryState::empty(s.num_keys))
                .collect(),
            len: 0,
            foreign: 0,
            exact: exact::Table::new(0),
            stamp: 0,
            generation: Generation::collected_by(&garbage),
        });
        Ok(Index {
            num_keys: self.num_keys,
            acc: Accessors::of::<M>(),
            hasher: KeyHasher::default(),
            secondary,
            labels,
            label_of: |k, key| k.label(key),
            selects: SelectCounters::default(),
            shards,
            published: Published::new(Arc::clone(&state)),
            writer: Mutex::new(Writer {
                ids: Ids::with_capacity(grouped, 0),
                state,
                stamp: 0,
                fill: Fill::default(),
            }),
            readiness: Readiness::default(),
            freshness: Freshness::default(),
            garbage,
        })
    }
}

/// An object of a relist and what is worked out about it in the pass over the items in
/// the order given (the order they were allocated in, so mostly in memory order): the
/// pass over them in sorted order after it reads no string of the object or its keys
/// where it can help it (each is a cache miss there).
struct Entry<K, C> {
    obj: Arc<K>,
    keys: C,
    /// The hash of `keys`.
    hash: u64,
    sep: Sep,
    /// The hash of the object's identity.
    id_hash: u64,
    /// Whether the first key is not the object's namespace.
    foreign: bool,
    /// Its keys in the secondary indexes.
    secondary: SecondaryKeys,
}

/// Where a write puts an object, computed before any lock is taken.
struct Placement {
    hash: u64,
    encoded: Vec<u8>,
}

/// A bucket change a batch makes at its commit.
enum BucketOp<K> {
    /// Remove `obj` from the key encoded `encoded` (hash `hash`; it is there by then).
    Remove {
        hash: u64,
        encoded: Vec<u8>,
        obj: Arc<K>,
    },
    /// Insert the object of the batch's upsert `item` into the bucket of its keys.
    /// `replaces`: the version it replaces in that same bucket, if any.
    Insert {
        hash: u64,
        item: usize,
        replaces: Option<Arc<K>>,
    },
}

/// Where a batch has left an object so far.
struct Touched<K> {
    id_hash: u64,
    /// The latest version the batch upserted, or the stored one it removed.
    obj: Arc<K>,
    /// The hash and encoding of its key; `None` once removed.
    at: Option<(u64, Vec<u8>)>,
    /// Its identity's member of the secondary indexes' groups (`None` once removed).
    member: Option<Member<K>>,
    /// The version the identity table held before the batch, if any: the commit finds
    /// its entry by this pointer instead of reading the (by then cold) object's
    /// identity.
    stored: Option<Arc<K>>,
}

/// A stored version a write replaces, its view, and its identity's member of the
/// secondary indexes' groups.
type Stored<'a, K> = (&'a Arc<K>, MetaView<'a>, Option<Member<K>>);

/// Where the object of a write's identity was before it.
struct Old<K> {
    obj: Arc<K>,
    hash: u64,
    encoded: Vec<u8>,
    /// Whether it is the only object under its key.
    alone: bool,
    /// Its identity's member of the secondary indexes' groups, if any.
    member: Option<Member<K>>,
}

impl<K: Send + Sync + 'static> Index<K> {
    /// See [`MemoryStore::num_keys`].
    pub(crate) fn num_keys(&self) -> usize {
        self.num_keys
    }

    /// See [`MemoryStore::shards`].
    pub(crate) fn shards(&self) -> usize {
        self.shards
    }

    /// See [`MemoryStore::add`].
    pub(crate) fn add<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError> {
        self.upsert(Operation::Add, obj, keys, None).map(drop)
    }

    /// See [`MemoryStore::update`].
    pub(crate) fn update<S: AsRef<str>>(&self, obj: Arc<K>, keys: &[S]) -> Result<(), StoreError> {
        self.upsert(Operation::Update, obj, keys, None).map(drop)
    }

    /// [`update`](Self::update), unless the object stored for `keys` is unchanged as
    /// `same` says (see [`stored_unchanged`](Self::stored_unchanged)); returns whether
    /// it wrote. The common case (the object's identity stored alone under the same
    /// key) is answered from the lookup the write makes anyway.
    pub(crate) fn update_changed<S: AsRef<str>>(
        &self,
        obj: Arc<K>,
        keys: &[S],
        same: &Same<'_, K>,
    ) -> Result<bool, StoreError> {
        self.upsert(Operation::Update, obj, keys, Some(same))
    }

    /// See [`MemoryStore::get`].
    pub(crate) fn get<S: AsRef<str>>(&self, keys: &[S]) -> Result<Objects<K>, StoreError> {
        let n = keys.len();
        if n == 0 || n > self.num_keys {
            return Err(StoreError::new(
                Operation::Get,
                keys,
                ErrorKind::PrefixLength {
                    max: self.num_keys,
                    given: n,
                },
            ));
        }
        if n == self.num_keys {
            return Ok(self.probe(keys, |v| match v {
                None => Objects::default(),
                Some(Value::One(obj)) => Objects::one(Arc::clone(&obj)),
                Some(Value::Many(t)) => t.iter().cloned().collect(),
            }));
        }
        Ok(self.group_objects(&key::encode(keys), |st| &st.prefixes[n - 1]))
    }

    /// The objects of the group of the encoded prefix `prefix` in the published state's
    /// tree `tree` picks (none if there is no such group).
    fn group_objects(
        &self,
        prefix: &[u8],
        tree: impl FnOnce(&State<K>) -> &StateTree<Group<K>>,
    ) -> Objects<K> {
        // The group's members and the generation that keeps them alive, copied out of
        // the guard (two reference counts); the objects are cloned outside it.
        let found = self.published.with(|st| {
            tree(st)
                .get(&by_prefix(prefix))
                .map(|g| (g.members.clone(), Arc::clone(&st.generation)))
        });
        found
            .map(|(members, _generation)| members.iter().map(|o| Arc::clone(o)).collect())
            .unwrap_or_default()
    }

    /// See [`MemoryStore::get_by`].
    pub(crate) fn get_by<S: AsRef<str>>(
        &self,
        index: &str,
        keys: &[S],
    ) -> Result<Vec<Arc<K>>, StoreError> {
        let Some(i) = self
            .secondary
            .iter()
            .position(|s| !s.labels && s.name == index)
        else {
            return Err(StoreError::new(
                Operation::Get,
                keys,
                ErrorKind::UnknownIndex {
                    name: index.to_owned(),
                    known: self.index_names().map(str::to_owned).collect(),
                },
            ));
        };
        let n = keys.len();
        let max = self.secondary[i].num_keys;
        if n == 0 || n > max {
            return Err(StoreError::new(
                Operation::Get,
                keys,
                ErrorKind::PrefixLength { max, given: n },
            ));
        }
        let st = self.published.load_full();
        let prefix = key::encode(keys);
        let Some(g) = st.secondary[i].depths[n - 1].get(&by_prefix(&prefix)) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::with_capacity(g.members.len());
        self.versions_of(&st, g.members.iter(), &Marks::ANY, |_| true, &mut out);
        Ok(out)
    }

    /// Adds to `out` the versions the published state `st` holds of `members` (a
    /// group's, in order) whose label marks `marks` admits and that `keep` keeps: what
    /// secondary lookups and selectors return.
    ///
    /// Each member is two dependent cache misses (its `Latest`, then its version's
    /// count), and an `Arc` clone is a locked instruction that the next member's loads
    /// wait for; so the `Latest`s are prefetched `2 * AHEAD` members ahead and the
    /// versions' counts `AHEAD` ahead (those whose marks pass), and the misses of
    /// different members overlap. The members ahead wait in a ring on the stack.
    fn versions_of<'m>(
        &self,
        st: &State<K>,
        members: impl Iterator<Item = &'m Member<K>>,
        marks: &Marks,
        mut keep: impl FnMut(&K) -> bool,
        out: &mut Vec<Arc<K>>,
    ) where
        K: 'm,
    {
        const AHEAD: usize = 8;
        const WINDOW: usize = 2 * AHEAD;
        let mut members = members.copied().fuse();
        // `ring[i % WINDOW]` holds the `i`th member while it is among the next
        // `WINDOW` to read (`None` past the last).
        let mut ring: [Option<Member<K>>; WINDOW] = [None; WINDOW];
        for slot in &mut ring {
            *slot = members.next();
            if let Some(m) = slot {
                m.prefetch();
            }
        }
        // The first `AHEAD` versions too (their `Latest`s now on their way together),
        // which the loop's prefetches `AHEAD` ahead never reach: a group of ten would
        // otherwise have two of its counts prefetched.
        for m in ring[..AHEAD].iter().flatten() {
            if marks.admits(m.marks_hint()) {
                m.prefetch_version();
            }
        }
        for i in 0.. {
            let at = i % WINDOW;
            let Some(m) = ring[at].take() else {
                break;
            };
            if let Some(ahead) = ring[(at + AHEAD) % WINDOW]
                && marks.admits(ahead.marks_hint())
            {
                ahead.prefetch_version();
            }
            ring[at] = members.next();
            if let Some(next) = ring[at] {
                next.prefetch();
            }
            match m.at(st.stamp) {
                Found::Version(v, m) => {
                    if marks.admits(m) && keep(&v) {
                        out.push(Arc::clone(&v));
                    }
                }
                Found::Look(current) => {
                    let v = self.look_up(st, &current);
                    if keep(&v) {
                        out.push(v);
                    }
                }
            }
        }
    }

    /// The version of `current`'s identity that the published state `st` holds, for a
    /// member that kept none that old (which [`latest`](crate::index::latest) rules
    /// out).
    #[cold]
    fn look_up(&self, st: &State<K>, current: &Arc<K>) -> Arc<K> {
        match st.find(self.acc, (self.acc.meta)(current)) {
            Some(v) => Arc::clone(v),
            None => {
                // An identity in a group of `st` is in its trees (`validate`).
                debug_assert!(false, "a member's identity missing from its state");
                Arc::clone(current)
            }
        }
    }

    /// See [`MemoryStore::index_names`].
    pub(crate) fn index_names(&self) -> impl Iterator<Item = &str> {
        self.secondary
            .iter()
            .filter(|s| !s.labels)
            .map(|s| s.name.as_str())
    }

    /// See [`MemoryStore::select`].
    pub(crate) fn select(&self, namespace: Option<&str>, selector: &Selector) -> Vec<Arc<K>> {
        let reqs = selector.requirements();
        let st = self.published.load_full();
        let plan = match (&self.labels, st.secondary.last()) {
            (Some(which), Some(index)) => cheapest_lists(which, &index.depths, reqs),
            _ => None,
        };
        let meta = self.acc.meta;
        let holds = |o: &K, r: &Requirement| r.holds((self.label_of)(o, r.key()));
        let Some((term, lists)) = plan else {
            self.selects.scans.incr();
            return st
                .snapshot()
                .iter()
                .filter(|o| {
                    namespace.is_none_or(|ns| meta(o).namespace == ns)
                        && reqs.iter().all(|r| holds(o, r))
                })
                .cloned()
                .collect();
        };
        self.selects.indexed.incr();
        // The lists' objects meet `term`: only the other terms are checked, each a
        // read of the object's labels (none for a selector of one term), after the
        // label marks have passed over most objects that fail an equality or `in` term
        // (see `marks_of`).
        let rest: Vec<&Requirement> = reqs
            .iter()
            .enumerate()
            .filter_map(|(i, r)| (i != term).then_some(r))
            .collect();
        let marks = match &self.labels {
            Some(which) => Marks::of(which, &rest),
            None => Marks::ANY,
        };
        let keep = |o: &K| rest.iter().all(|r| holds(o, r));
        let mut out: Vec<Arc<K>> = Vec::new();
        for list in &lists {
            match namespace {
                // The list is in (namespace, name, uid) order: the namespace's objects
                // are one run, found by one descent.
                Some(ns) => self.versions_of(
                    &st,
                    list.iter_from(&namespace_start(self.acc, ns))
                        .take_while(|m| meta(m.as_ref()).namespace == ns),
                    &marks,
                    keep,
                    &mut out,
                ),
                None if rest.is_empty() => {
                    out.reserve(list.len());
                    self.versions_of(&st, list.iter(), &Marks::ANY, |_| true, &mut out);
                }
                None => self.versions_of(&st, list.iter(), &marks, keep, &mut out),
            }
        }
        if lists.len() > 1 {
            // An `in` term's lists: each in order, and disjoint (an object has one
            // value for the key).
            out.sort_unstable_by(|a, b| order_arcs(self.acc, a, b));
        }
        out
    }

    /// See [`MemoryStore::select_stats`].
    pub(crate) fn select_stats(&self) -> SelectStats {
        SelectStats {
            indexed: self.selects.indexed.get(),
            scans: self.selects.scans.get(),
        }
    }

    /// Whether the store has secondary indexes (the label index included).
    pub(crate) fn has_indexes(&self) -> bool {
        !self.secondary.is_empty()
    }

    /// Whether every secondary index can read its keys from `obj` (see
    /// `watch::Target::check`).
    pub(crate) fn check_indexes(&self, obj: &K) -> Result<(), StoreError> {
        if self.secondary.is_empty() {
            return Ok(());
        }
        self.secondary_keys::<&str>(Operation::Index, obj, &[])
            .map(drop)
    }

    /// See [`MemoryStore::get_one`].
    pub(crate) fn get_one<S: AsRef<str>>(&self, keys: &[S]) -> Result<Option<Arc<K>>, StoreError> {
        self.check_count(Operation::Get, keys)?;
        let found = self.probe(keys, |v| match v {
            None => Ok(None),
            Some(Value::One(obj)) => Ok(Some(Arc::clone(&obj))),
            Some(Value::Many(t)) => Err(t.len()),
        });
        found.map_err(|found| StoreError::new(Operation::Get, keys, ErrorKind::NotUnique { found }))
    }

    /// `f` applied to the object under exactly `keys` in the published state, while
    /// that state is held, if `keys` has `num_keys` components and holds exactly one
    /// object (for the on-demand tier's hit path, which so takes no reference count on
    /// the index). `f` must not call back into this store.
    pub(crate) fn with_exact_one<S: AsRef<str>, R>(
        &self,
        keys: &[S],
        f: impl FnOnce(&Arc<K>) -> R,
    ) -> Option<R> {
        if keys.len() != self.num_keys {
            return None;
        }
        self.probe(keys, |v| match v {
            Some(Value::One(obj)) => Some(f(&obj)),
            _ => None,
        })
    }

    /// `f` applied to the objects under exactly `keys` (`None` if there are none) in
    /// the published state, while that state is held: the one probe of every exact
    /// read. It takes no lock: the state's exact-key table answers for the state's
    /// stamp (see [`exact`]).
    #[inline]
    fn probe<S: AsRef<str>, R>(&self, keys: &[S], f: impl FnOnce(Option<Value<'_, K>>) -> R) -> R {
        let hash = self.hash_keys(keys);
        self.published.with(|st| {
            f(st.exact
                .get(hash, st.stamp, |k, plain| key::entry_eq(k, plain, keys)))
        })
    }

    /// See [`MemoryStore::delete`].
    pub(crate) fn delete<S: AsRef<str>>(&self, keys: &[S]) -> Result<usize, StoreError> {
        self.check_count(Operation::Delete, keys)?;
        let hash = self.hash_keys(keys);
        let encoded = key::encode(keys);
        let mut w = self.writer.lock();
        // Only the writer changes the tables, and we hold the writer mutex.
        let found = w
            .state
            .exact
            .current(hash, |k| k == encoded)
            .and_then(|e| e.value())
            .map(|v| v.members());
        let Some(members) = found else {
            return Ok(0);
        };
        let members = members.into_objects();
        let mut state = w.state.successor();
        let mut cx = w.draft();
        for obj in &members {
            let member = self.member_of(&w, obj);
            self.state_remove(&mut state, obj, &encoded, member, &mut cx);
        }
        let w = &mut *w;
        self.exact_set(&mut state, &mut w.fill, hash, &encoded, None, &mut cx);
        let prev = self.publish(w, state, cx);
        for obj in &members {
            let id_hash = self.hasher.hash_identity(&(self.acc.meta)(obj).identity());
            w.ids.remove(id_hash, |o| Arc::ptr_eq(o, obj));
        }
        let n = members.len();
        // The previous state may still be read: its generation keeps them.
        prev.generation.retire(members);
        drop(prev);
        self.garbage.collect();
        Ok(n)
    }

    /// See [`MemoryStore::remove`].
    pub(crate) fn remove(&self, obj: &K) -> Result<bool, StoreError> {
        (self.acc.check)(obj)
            .map_err(|kind| StoreError::new::<&str>(Operation::Remove, &[], kind))?;
        let view = (self.acc.meta)(obj);
        let id_hash = self.hasher.hash_identity(&view.identity());
        let mut w = self.writer.lock();
        let Some((old, old_hash, member)) = self.locate(&w, id_hash, view) else {
            return Ok(false);
        };
        let old_view = (self.acc.meta)(&old);
        let (encoded, _) = self.encoded_key_of(&w.state, old_hash, old_view);
        let mut state = w.state.successor();
        let mut cx = w.draft();
        self.state_remove(&mut state, &old, &encoded, member, &mut cx);
        let w = &mut *w;
        self.bucket_remove(
            &mut state,
            &mut w.fill,
            old_hash,
            &encoded,
            old_view,
            &mut cx,
        );
        let prev = self.publish(w, state, cx);
        w.ids.remove(id_hash, |o| Arc::ptr_eq(o, &old));
        // The previous state may still be read: its generation keeps the object.
        prev.generation.retire([old]);
        drop(prev);
        self.garbage.collect();
        Ok(true)
    }

    /// See [`MemoryStore::list`].
    pub(crate) fn list(&self) -> Snapshot<K> {
        self.published.with(State::snapshot)
    }

    /// See [`MemoryStore::len`].
    pub(crate) fn len(&self) -> usize {
        self.published.with(|st| st.len)
    }

    /// See [`MemoryStore::is_empty`].
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// See [`MemoryStore::clear`].
    pub(crate) fn clear(&self) {
        // An empty replacement has no keys to reject.
        let _ = self.replace(std::iter::empty::<(Arc<K>, Vec<String>)>());
    }

    /// See [`MemoryStore::replace`].
    pub(crate) fn replace<I, C>(&self, items: I) -> Result<(), StoreError>
    where
        I: IntoIterator<Item = (Arc<K>, C)>,
        C: Components,
    {
        // 1. Validate and deduplicate by identity (the last one wins).
        let items = items.into_iter();
        let expected = items.size_hint().0;
        let mut entries: Vec<Option<Entry<K, C>>> = Vec::with_capacity(expected);
        let mut ids = Ids::with_capacity(!self.secondary.is_empty(), expected);
        let mut slot_of: HashTable<(u64, usize)> = HashTable::with_capacity(expected);
        for (obj, owned) in items {
            let keys = owned.parts();
            self.check_count(Operation::Replace, &keys)?;
            (self.acc.check)(&obj)
                .map_err(|kind| StoreError::new(Operation::Replace, &keys, kind))?;
            let hash = self.hash_keys(&keys);
            let view = (self.acc.meta)(&obj);
            let id_hash = self.hasher.hash_identity(&view.identity());
            let idx = entries.len();
            let acc = self.acc;
            match slot_of.find_mut(id_hash, |(h, i)| {
                *h == id_hash
                    && entries[*i]
                        .as_ref()
                        .is_some_and(|e| (acc.meta)(&e.obj).identity() == view.identity())
            }) {
                Some(slot) => {
                    entries[slot.1] = None;
                    slot.1 = idx;
                }
                None => {
                    slot_of.insert_unique(id_hash, (id_hash, idx), |(h, _)| *h);
                }
            }
            let secondary = self.secondary_keys(Operation::Replace, &obj, &keys)?;
            let sep = bucket::meta_sep(&view);
            let foreign = keys.first().copied() != Some(view.namespace);
            drop(keys);
            entries.push(Some(Entry {
                obj,
                keys: owned,
                hash,
                sep,
                id_hash,
                foreign,
                secondary,
            }));
        }
        drop(slot_of);
        // In place: an entry is large (its keys are inline), and collecting the live
        // ones into a new vector moved every one of them.
        entries.retain(Option::is_some);
        // By `Sep` first, the full order only where two are equal: a sort that read
        // both objects' namespace and name at every comparison spent most of a
        // relist's build in cache misses on objects spread over the heap. Unstable is
        // exact: distinct identities never compare equal.
        let acc = self.acc;
        entries.sort_unstable_by(|a, b| match (a, b) {
            (Some(a), Some(b)) => a
                .sep
                .cmp(&b.sep)
                .then_with(|| (acc.meta)(&a.obj).order(&(acc.meta)(&b.obj))),
            // Only live entries are left.
            _ => Ordering::Equal,
        });

        // 2. Build the exact-key table (sized for every object at once), the identity
        // table and the published state.
        let mut exact = exact::Builder::new(entries.len());
        let mut groups: Vec<Gathered<Unowned<K>>> =
            (1..self.num_keys).map(|_| BTreeMap::new()).collect();
        let mut runs: Vec<Option<Run<K>>> = (1..self.num_keys).map(|_| None).collect();
        // Each secondary index's groups at each depth, filled in order as `groups` are.
        let mut secondary: Vec<Vec<Gathered<Member<K>>>> = self
            .secondary
            .iter()
            .map(|s| (0..s.num_keys).map(|_| BTreeMap::new()).collect())
            .collect();
        let foreign = entries.iter().flatten().filter(|e| e.foreign).count();
        let len = entries.len();
        let keep_list = self.needs_list(foreign);
        let mut all = Vec::with_capacity(if keep_list { len } else { 0 });
        for Entry {
            obj,
            keys,
            hash,
            id_hash,
            secondary: sec,
            ..
        } in entries.iter().flatten()
        {
            let keys = &keys.parts()[..];
            // SAFETY: `ids` gets a counted `Arc` of `obj` below, and becomes the writer's
            // identity table in the step that publishes this state (`retire`'s
            // invariant). An error returns before anything is built.
            #[allow(unsafe_code)]
            let unowned = unsafe { Unowned::new(obj) };
            // Made current by stamp 0: before every state that can hold it (the old
            // states' groups hold the old identities' members, retired below).
            let member = sec
                .iter()
                .any(|keys| !keys.is_empty())
                .then(|| Member::new(obj, self.marks(sec), 0));
            exact.add(*hash, keys, unowned.clone(), self.acc);
            ids.insert_unique(
                *id_hash,
                Located {
                    obj: Arc::clone(obj),
                    key_hash: *hash,
                    member,
                },
                |o| self.hasher.hash_identity(&(self.acc.meta)(o).identity()),
            );
            for (d, (g, run)) in groups.iter_mut().zip(&mut runs).enumerate() {
                let p = &keys[..=d];
                // Entries are in order, so each group's members are too. Objects of one
                // group usually come one after another (with the namespace as the first
                // key, always): they gather in `run`, with no search of `g`, which takes
                // the run when the group changes. The prefix is encoded once per run,
                // and compared in place with the keys of the objects after.
                match run {
                    Some((prefix, members)) if key::encoded_eq(prefix, p) => {
                        members.push(unowned.clone());
                    }
                    _ => {
                        let next = (key::encode(p), vec![unowned.clone()]);
                        if let Some((prefix, members)) = run.replace(next) {
                            g.entry(prefix).or_default().extend(members);
                        }
                    }
                }
            }
            for ((depths, keys), s) in secondary.iter_mut().zip(sec).zip(&*self.secondary) {
                let Some(member) = member else { break };
                for d in s.depths() {
                    let g = &mut depths[d - 1];
                    for p in prefixes(keys, d) {
                        match g.get_mut(p) {
                            Some(members) => members.push(member),
                            None => {
                                g.insert(p.to_vec(), vec![member]);
                            }
                        }
                    }
                }
            }
            if keep_list {
                all.push(unowned);
            }
        }
        drop(entries);
        for (g, run) in groups.iter_mut().zip(runs) {
            if let Some((prefix, members)) = run {
                g.entry(prefix).or_default().extend(members);
            }
        }
        // Stamp 0: no write changes these nodes in place (each write's stamp is above).
        let built = Draft::new(0);
        let acc = self.acc;
        fn build_groups<K, E: Clone + Elem + AsRef<K>>(
            acc: Accessors<K>,
            built: &Draft,
            g: Gathered<E>,
        ) -> StateTree<Group<K, E>> {
            PTree::from_sorted(
                g.into_iter()
                    .map(|(p, m)| Group::new(p.into(), PTree::from_sorted(m, sep_of(acc), built)))
                    .collect(),
                group_sep,
                built,
            )
        }
        let (exact, fill) = exact.finish();
        let state = State {
            exact,
            secondary: secondary
                .into_iter()
                .map(|depths| SecondaryState {
                    depths: depths
                        .into_iter()
                        .map(|g| build_groups(acc, &built, g))
                        .collect(),
                })
                .collect(),
            all: keep_list.then(|| PTree::from_sorted(all, sep_of(self.acc), &built)),
            len,
            foreign,
            prefixes: groups
                .into_iter()
                .map(|g| build_groups(acc, &built, g))
                .collect(),
            stamp: 0,
            generation: Generation::collected_by(&self.garbage),
        };

        // 3. Swap, in one publication.
        let mut w = self.writer.lock();
        w.fill = fill;
        let old_ids = std::mem::replace(&mut w.ids, ids);
        // The old state's trees share no node with the new one's: they go whole.
        let mut cx = w.draft();
        w.state.retire_trees(&mut cx);
        let old_objects: Vec<Arc<K>> = old_ids
            .into_parts()
            .map(|(obj, member)| {
                if let Some(m) = member {
                    // SAFETY: every old identity left the identity table above, once.
                    #[allow(unsafe_code)]
                    unsafe {
                        m.retire(&mut cx)
                    };
                }
                obj
            })
            .collect();
        let prev = self.publish(&mut w, state, cx);
        drop(w);
        // The old state is dropped here, outside every lock; the old objects go to the
        // old state's generation, which keeps them for as long as a snapshot of it is
        // read.
        prev.generation.retire(old_objects);
        drop(prev);
        self.garbage.collect();
        Ok(())
    }

    /// See [`MemoryStore::apply`]. The same two phases as a single write (see
    /// [`upsert`](Self::upsert)), once for the whole batch:
    ///
    /// 1. **Prepare**: every change in order on one copy of the state (a node copied for
    ///    an earlier change is written in place by later ones), the exact-key table's
    ///    changes recorded, not made. Where an object is, `touched` says for the objects
    ///    the batch has already changed, the identity table and the exact-key table
    ///    (unchanged until the commit) for the others.
    /// 2. **Commit**: the recorded exact-key changes in order (new entries stamped with
    ///    the batch's stamp, which readers of earlier states pass over), then one
    ///    publication. No reader waits for either.
    ///
    /// The identity table follows, under the writer mutex; what was replaced is dropped
    /// after the writer mutex is released.
    pub(crate) fn apply(&self, batch: Batch<K>) -> Result<Applied, StoreError> {
        let changes = batch.changes;
        // Everything is checked first: one refused change refuses the whole batch. The
        // secondary keys of each upsert are read here, once (none without an index).
        let mut secs: Vec<SecondaryKeys> = Vec::new();
        for (item, change) in changes.iter().enumerate() {
            let op = Operation::Apply {
                item: u32::try_from(item).unwrap_or(u32::MAX),
            };
            match change {
                Change::Upsert(obj, keys) => {
                    let keys = &keys.parts()[..];
                    self.check_count(op, keys)?;
                    (self.acc.check)(obj).map_err(|kind| StoreError::new(op, keys, kind))?;
                    if !self.secondary.is_empty() {
                        secs.push(self.secondary_keys(op, obj, keys)?);
                    }
                }
                Change::Remove(obj) => {
                    (self.acc.check)(obj).map_err(|kind| StoreError::new::<&str>(op, &[], kind))?;
                }
            }
        }
        let mut applied = Applied::default();
        if changes.is_empty() {
            return Ok(applied);
        }

        let mut w = self.writer.lock();
        // Prepare.
        let mut state = w.state.successor();
        let mut cx = w.draft();
        let mut touched: HashTable<Touched<K>> = HashTable::new();
        // The stored versions the batch replaces or removes, for the previous state's
        // generation (versions the batch itself wrote and replaced were never published).
        let mut retired = Vec::new();
        let mut ops: Vec<BucketOp<K>> = Vec::with_capacity(changes.len() + changes.len() / 4);
        let mut secs = secs.iter();
        for (item, change) in changes.iter().enumerate() {
            match change {
                Change::Upsert(obj, keys) => {
                    let keys = &keys.parts()[..];
                    let hash = self.hash_keys(keys);
                    let encoded = key::encode(keys);
                    let view = (self.acc.meta)(obj);
                    let id_hash = self.hasher.hash_identity(&view.identity());
                    let old = self.locate_in_batch(&w, &touched, id_hash, view, &mut retired);
                    let old_view = old.as_ref().map(|o| (self.acc.meta)(&o.obj));
                    let same_order = old_view.is_some_and(|ov| ov.order(&view) == Ordering::Equal);
                    // SAFETY: the last version of each identity the batch upserts goes
                    // into the identity table when it commits, before the writer lock is
                    // released; an earlier version is replaced in this unpublished state
                    // (no reader ever sees it) and `changes` keeps it until the end
                    // (`retire`'s invariant).
                    #[allow(unsafe_code)]
                    let unowned = unsafe { Unowned::new(obj) };
                    let member = secs.next().and_then(|sec| {
                        let stored = old
                            .as_ref()
                            .zip(old_view)
                            .map(|(o, ov)| (&o.obj, ov, o.member));
                        self.secondary_upsert(
                            &mut state, &mut cx, stored, same_order, obj, view, sec,
                        )
                    });
                    self.state_upsert(
                        &mut state,
                        &mut cx,
                        old.as_ref().zip(old_view),
                        same_order,
                        unowned,
                        view,
                        &encoded,
                    );
                    let mut replaces = None;
                    if let Some(o) = &old {
                        // The same bucket and the same order: the insert replaces it.
                        if same_order && o.hash == hash && o.encoded == encoded {
                            replaces = Some(Arc::clone(&o.obj));
                        } else {
                            ops.push(BucketOp::Remove {
                                hash: o.hash,
                                encoded: o.encoded.clone(),
                                obj: Arc::clone(&o.obj),
                            });
                        }
                    }
                    ops.push(BucketOp::Insert {
                        hash,
                        item,
                        replaces,
                    });
                    self.touch(
                        &mut touched,
                        id_hash,
                        Arc::clone(obj),
                        Some((hash, encoded)),
                        member,
                        old.as_ref().map(|o| &o.obj),
                    );
                    applied.upserted += 1;
                }
                Change::Remove(obj) => {
                    let view = (self.acc.meta)(obj);
                    let id_hash = self.hasher.hash_identity(&view.identity());
                    let Some(old) = self.locate_in_batch(&w, &touched, id_hash, view, &mut retired)
                    else {
                        continue;
                    };
                    self.state_remove(&mut state, &old.obj, &old.encoded, old.member, &mut cx);
                    ops.push(BucketOp::Remove {
                        hash: old.hash,
                        encoded: old.encoded.clone(),
                        obj: Arc::clone(&old.obj),
                    });
                    let stored = Arc::clone(&old.obj);
                    self.touch(&mut touched, id_hash, old.obj, None, None, Some(&stored));
                    applied.removed += 1;
                }
            }
        }

        // The exact-key table's changes, in order (readers of earlier states pass over
        // them: they are stamped with this write), then one publication.
        let wr = &mut *w;
        for op in &ops {
            match op {
                BucketOp::Remove { hash, encoded, obj } => {
                    let view = (self.acc.meta)(obj);
                    self.bucket_remove(&mut state, &mut wr.fill, *hash, encoded, view, &mut cx);
                }
                BucketOp::Insert {
                    hash,
                    item,
                    replaces,
                } => {
                    if let Some(Change::Upsert(obj, keys)) = changes.get(*item) {
                        let encoded = key::encode(&keys.parts());
                        // SAFETY: as for `unowned` above: the identity table takes the
                        // last version of each identity before the lock is released,
                        // and `changes` keeps the others until the end.
                        #[allow(unsafe_code)]
                        let obj = unsafe { Unowned::new(obj) };
                        self.bucket_insert(
                            &mut state,
                            &mut wr.fill,
                            *hash,
                            &encoded,
                            obj,
                            replaces.as_ref(),
                            &mut cx,
                        );
                    }
                }
            }
        }
        let prev = self.publish(wr, state, cx);

        for t in touched {
            match (t.at, t.stored) {
                (Some((key_hash, _)), stored) => {
                    self.locate_at(
                        &mut w,
                        t.id_hash,
                        stored.as_ref(),
                        t.obj,
                        key_hash,
                        t.member,
                    );
                }
                (None, Some(stored)) => {
                    if !w.ids.remove(t.id_hash, |o| Arc::ptr_eq(o, &stored)) {
                        // The identity table holds what the batch found stored.
                        debug_assert!(false, "a removed object missing from the identity table");
                    }
                }
                // Added and removed by the batch: never in the identity table.
                (None, None) => {}
            }
        }
        drop(w);
        // The previous state may still be read: its generation keeps what the batch
        // replaced. The rest is dropped here, outside every lock.
        prev.generation.retire(retired);
        drop((prev, ops, changes));
        self.garbage.collect();
        Ok(applied)
    }

    /// Where the object of `view`'s identity is while a batch is prepared: as an
    /// earlier change of the batch left it (`touched`), else as stored (and then the
    /// stored version goes to `retired`: this change replaces or removes it).
    fn locate_in_batch(
        &self,
        w: &Writer<K>,
        touched: &HashTable<Touched<K>>,
        id_hash: u64,
        view: MetaView<'_>,
        retired: &mut Vec<Arc<K>>,
    ) -> Option<Old<K>> {
        let meta = self.acc.meta;
        if let Some(t) = touched.find(id_hash, |t| meta(&t.obj).identity() == view.identity()) {
            let (hash, encoded) = t.at.as_ref()?;
            if t.member.is_some() {
                // A version this batch wrote, which a reader may have read through its
                // member (for its identity) while the batch was prepared: the previous
                // state's generation keeps it, as it keeps what the batch replaced.
                retired.push(Arc::clone(&t.obj));
            }
            return Some(Old {
                obj: Arc::clone(&t.obj),
                hash: *hash,
                encoded: encoded.clone(),
                // Only a single write's skip check reads it.
                alone: false,
                member: t.member,
            });
        }
        let old = self.locate_stored(w, id_hash, view)?;
        retired.push(Arc::clone(&old.obj));
        Some(old)
    }

    /// Where the stored object of `view`'s identity is: its key's hash and encoding
    /// (read from its entry in the exact-key table).
    fn locate_stored(&self, w: &Writer<K>, id_hash: u64, view: MetaView<'_>) -> Option<Old<K>> {
        self.locate(w, id_hash, view).map(|(obj, hash, member)| {
            let (encoded, alone) = self.encoded_key_of(&w.state, hash, (self.acc.meta)(&obj));
            Old {
                obj,
                hash,
                encoded,
                alone,
                member,
            }
        })
    }

    /// Records where a batch left the object of `obj`'s identity (`None`: removed).
    ///
    /// `old` is where the change found the identity ([`locate_in_batch`]): for an
    /// identity the batch has not touched yet, the version stored before the batch.
    ///
    /// [`locate_in_batch`]: Self::locate_in_batch
    fn touch(
        &self,
        touched: &mut HashTable<Touched<K>>,
        id_hash: u64,
        obj: Arc<K>,
        at: Option<(u64, Vec<u8>)>,
        member: Option<Member<K>>,
        old: Option<&Arc<K>>,
    ) {
        let meta = self.acc.meta;
        let id = meta(&obj).identity();
        match touched.find_mut(id_hash, |t| meta(&t.obj).identity() == id) {
            Some(t) => {
                t.obj = obj;
                t.at = at;
                t.member = member;
            }
            None => {
                let t = Touched {
                    id_hash,
                    obj,
                    at,
                    member,
                    stored: old.cloned(),
                };
                touched.insert_unique(id_hash, t, |t| t.id_hash);
            }
        }
    }

    /// Every write runs under the writer mutex, which no reader takes: find where the
    /// object was, build the new published state (the O(log n) tree path copies, the
    /// expensive part, and the exact-key table's new entries, which readers of earlier
    /// states pass over), and publish it.
    ///
    /// With `unchanged` (see [`update_changed`](Self::update_changed)), a write that
    /// would change nothing is skipped (`Ok(false)`) before anything is built.
    fn upsert<S: AsRef<str>>(
        &self,
        op: Operation,
        obj: Arc<K>,
        keys: &[S],
        unchanged: Option<&Same<'_, K>>,
    ) -> Result<bool, StoreError> {
        self.check_count(op, keys)?;
        (self.acc.check)(&obj).map_err(|kind| StoreError::new(op, keys, kind))?;
        let new = Placement {
            hash: self.hash_keys(keys),
            encoded: key::encode(keys),
        };
        let sec = self.secondary_keys(op, &obj, keys)?;
        let view = (self.acc.meta)(&obj);
        let id_hash = self.hasher.hash_identity(&view.identity());

        let mut w = self.writer.lock();
        // Prepare.
        let old = self.locate_stored(&w, id_hash, view);
        if let Some(same) = unchanged {
            let skip = match &old {
                // Alone under the same key: the object `stored_unchanged` would read.
                Some(o) if o.alone && o.encoded == new.encoded => same(&o.obj).unwrap_or(false),
                _ => self.stored_unchanged(keys, same),
            };
            if skip {
                return Ok(false);
            }
        }
        let old_view = old.as_ref().map(|o| (self.acc.meta)(&o.obj));
        let same_order = old_view.is_some_and(|ov| ov.order(&view) == Ordering::Equal);
        let mut state = w.state.successor();
        let mut cx = w.draft();
        // SAFETY: `obj` itself goes into the identity table at the end of this write,
        // before the lock is released (`retire`'s invariant); an error returns before
        // anything is built.
        #[allow(unsafe_code)]
        let unowned = unsafe { Unowned::new(&obj) };
        let member = if self.secondary.is_empty() {
            None
        } else {
            let stored = old
                .as_ref()
                .zip(old_view)
                .map(|(o, ov)| (&o.obj, ov, o.member));
            self.secondary_upsert(&mut state, &mut cx, stored, same_order, &obj, view, &sec)
        };
        self.state_upsert(
            &mut state,
            &mut cx,
            old.as_ref().zip(old_view),
            same_order,
            unowned,
            view,
            &new.encoded,
        );

        let wr = &mut *w;
        let mut replaces = None;
        if let (Some(o), Some(ov)) = (&old, old_view) {
            // The same key and the same order: `bucket_insert` replaces it.
            if same_order && o.hash == new.hash && o.encoded == new.encoded {
                replaces = Some(&o.obj);
            } else {
                self.bucket_remove(&mut state, &mut wr.fill, o.hash, &o.encoded, ov, &mut cx);
            }
        }
        // SAFETY: as for `unowned` above.
        #[allow(unsafe_code)]
        let member_obj = unsafe { Unowned::new(&obj) };
        self.bucket_insert(
            &mut state,
            &mut wr.fill,
            new.hash,
            &new.encoded,
            member_obj,
            replaces,
            &mut cx,
        );
        let prev = self.publish(wr, state, cx);

        self.locate_at(
            &mut w,
            id_hash,
            old.as_ref().map(|o| &o.obj),
            obj,
            new.hash,
            member,
        );
        // The previous state may still be read: its generation keeps the old version.
        if let Some(o) = old {
            prev.generation.retire([o.obj]);
        }
        drop(prev);
        self.garbage.collect();
        Ok(true)
    }

    /// Records in the identity table (the writer's alone; readers never see it) that
    /// `obj` is stored under the key of hash `key_hash`, in place of `stored`: the
    /// version the table holds for its identity, found by pointer without reading that
    /// object (in a batch's commit it is cold by then); `None` if it holds none.
    fn locate_at(
        &self,
        w: &mut Writer<K>,
        id_hash: u64,
        stored: Option<&Arc<K>>,
        obj: Arc<K>,
        key_hash: u64,
        member: Option<Member<K>>,
    ) {
        let mut located = Located {
            obj,
            key_hash,
            member,
        };
        if let Some(stored) = stored {
            match w.ids.replace(id_hash, |o| Arc::ptr_eq(o, stored), located) {
                Ok(()) => return,
                Err(l) => located = l,
            }
            // The caller found `stored` in the table, under the writer mutex.
            debug_assert!(false, "a located object missing from the identity table");
        }
        let meta = self.acc.meta;
        let hasher = &self.hasher;
        w.ids.set(
            id_hash,
            located,
            |o, new| meta(o).identity() == meta(new).identity(),
            |o| hasher.hash_identity(&meta(o).identity()),
        );
    }

    /// The stored object with `view`'s identity, the hash of its key and its member of
    /// the secondary indexes' groups.
    fn locate(
        &self,
        w: &Writer<K>,
        id_hash: u64,
        view: MetaView<'_>,
    ) -> Option<(Arc<K>, u64, Option<Member<K>>)> {
        w.ids
            .find(id_hash, |o| {
                (self.acc.meta)(o).identity() == view.identity()
            })
            .map(|l| (Arc::clone(l.obj), l.key_hash, l.member))
    }

    /// The member of the secondary indexes' groups of `obj`, a stored object.
    fn member_of(&self, w: &Writer<K>, obj: &Arc<K>) -> Option<Member<K>> {
        if self.secondary.is_empty() {
            return None;
        }
        let id_hash = self.hasher.hash_identity(&(self.acc.meta)(obj).identity());
        w.ids
            .find(id_hash, |o| Arc::ptr_eq(o, obj))
            .and_then(|l| l.member)
    }

    /// The encoded key (of hash `hash`) in `st`'s exact-key table that holds `obj`, and
    /// whether `obj` is alone under it.
    fn encoded_key_of(&self, st: &State<K>, hash: u64, obj: MetaView<'_>) -> (Vec<u8>, bool) {
        let holds = |e: exact::Entry<'_, K>| e.value().is_some_and(|v| v.contains(obj, self.acc));
        match st.exact.current_where(hash, holds) {
            Some(e) => (
                e.key().to_vec(),
                e.value().is_some_and(|v| v.single().is_ok()),
            ),
            None => {
                // The identity table and the exact-key table change together under the
                // writer mutex (`validate` checks that they agree), so this cannot
                // happen.
                debug_assert!(false, "located object missing from its key");
                (Vec::new(), false)
            }
        }
    }

    /// Whether `same` says the object stored for `keys` is unchanged: the only object
    /// under exactly `keys`, or else the first (in order) for which `same` answers.
    /// `same(stored)` is `None` when `stored` is not of the same identity, else whether
    /// it is unchanged.
    fn stored_unchanged<S: AsRef<str>>(&self, keys: &[S], same: &Same<'_, K>) -> bool {
        match self.get(keys) {
            Ok(found) => match &found[..] {
                [one] => same(one).unwrap_or(false),
                several => several.iter().find_map(|s| same(s)).unwrap_or(false),
            },
            Err(_) => false,
        }
    }

    /// Removes the member `old` from the key encoded `encoded` (hash `hash`) in the
    /// draft `state`'s exact-key table.
    fn bucket_remove(
        &self,
        state: &mut State<K>,
        fill: &mut Fill,
        hash: u64,
        encoded: &[u8],
        old: MetaView<'_>,
        cx: &mut Draft,
    ) {
        let (acc, hasher) = (self.acc, &self.hasher);
        let removed = |v: Option<Value<'_, K>>| match v {
            Some(v) => bucket::removed(&v, old, acc),
            None => {
                debug_assert!(false, "located object missing from its key");
                // Nothing under the key: nothing is stored.
                None
            }
        };
        state
            .exact
            .update(fill, hash, encoded, removed, cx, |k| hasher.hash_encoded(k));
    }

    /// Adds `obj` to the key encoded `encoded` (hash `hash`) in the draft `state`'s
    /// exact-key table, replacing an equal member. `replaces` is the member it
    /// replaces, if the caller knows it is under that key and orders as `obj` (see
    /// [`bucket::inserted`]).
    #[allow(clippy::too_many_arguments)]
    fn bucket_insert(
        &self,
        state: &mut State<K>,
        fill: &mut Fill,
        hash: u64,
        encoded: &[u8],
        obj: Unowned<K>,
        replaces: Option<&Arc<K>>,
        cx: &mut Draft,
    ) {
        let (acc, hasher) = (self.acc, &self.hasher);
        let inserted =
            |v: Option<Value<'_, K>>| Some(bucket::inserted(v.as_ref(), obj, replaces, acc));
        state.exact.update(fill, hash, encoded, inserted, cx, |k| {
            hasher.hash_encoded(k)
        });
    }

    /// Stores `stored` under the key encoded `encoded` (hash `hash`) in the draft
    /// `state`'s exact-key table (see [`exact::Table::set`]).
    fn exact_set(
        &self,
        state: &mut State<K>,
        fill: &mut Fill,
        hash: u64,
        encoded: &[u8],
        stored: Option<exact::Stored<K>>,
        cx: &mut Draft,
    ) {
        let hasher = &self.hasher;
        state
            .exact
            .set(fill, hash, encoded, stored, cx, |k| hasher.hash_encoded(k));
    }

    /// Updates `state` for `obj` (ordered as `view`, under the key `encoded`), which
    /// replaces `old` (with its view; ordering as `obj` if `same_order`) if there is
    /// one. The common update, a new version under the same key, finds the old
    /// version by pointer ([`state_replace`](Self::state_replace)); anything else moves
    /// it ([`state_move`](Self::state_move)).
    #[allow(clippy::too_many_arguments)]
    fn state_upsert(
        &self,
        state: &mut State<K>,
        cx: &mut Draft,
        old: Option<(&Old<K>, MetaView<'_>)>,
        same_order: bool,
        obj: Unowned<K>,
        view: MetaView<'_>,
        encoded: &[u8],
    ) {
        match old {
            Some((o, _)) if same_order && o.encoded == encoded => {
                self.state_replace(state, cx, &o.obj, obj, view, encoded);
            }
            _ => self.state_move(state, cx, old, same_order, obj, view, encoded),
        }
    }

    /// Updates `state` for `obj` (ordered as `view`) now under the key `encoded`, and
    /// no longer where `old` was. An object of the same order under the same prefix is
    /// replaced in place: one path copy per tree instead of two.
    #[allow(clippy::too_many_arguments)]
    fn state_move(
        &self,
        state: &mut State<K>,
        cx: &mut Draft,
        old: Option<(&Old<K>, MetaView<'_>)>,
        same_order: bool,
        obj: Unowned<K>,
        view: MetaView<'_>,
        encoded: &[u8],
    ) {
        if old.is_some_and(|(o, ov)| !first_is_namespace(&o.encoded, ov)) {
            state.foreign -= 1;
        }
        if !first_is_namespace(encoded, view) {
            state.foreign += 1;
        }
        if old.is_none() {
            state.len += 1;
        }
        if self.needs_list(state.foreign) {
            self.ensure_list(state, cx);
        }
        if let Some(all) = &mut state.all {
            if let Some((_, ov)) = old
                && !same_order
            {
                all.remove(&by_order(self.acc, ov), sep_of(self.acc), cx);
            }
            all.insert(obj.clone(), &by_order(self.acc, view), sep_of(self.acc), cx);
        }
        for d in 1..self.num_keys {
            let prefix = &encoded[..bucket::prefix_len(encoded, d)];
            let tree = &mut state.prefixes[d - 1];
            if let Some((o, ov)) = old {
                let old_prefix = &o.encoded[..bucket::prefix_len(&o.encoded, d)];
                if !(same_order && old_prefix == prefix) {
                    self.group_remove(tree, old_prefix, ov, cx);
                }
            }
            self.group_add(tree, prefix, &obj, view, cx);
        }
    }

    /// [`state_move`](Self::state_move) for `obj` (ordered as `view`) replacing `old`,
    /// which orders the same and is under the same key `encoded`: each tree finds `old`
    /// in its leaf by pointer ([`PTree::replace_where`]), reading no other object.
    fn state_replace(
        &self,
        state: &mut State<K>,
        cx: &mut Draft,
        old: &Arc<K>,
        obj: Unowned<K>,
        view: MetaView<'_>,
        encoded: &[u8],
    ) {
        let acc = self.acc;
        let is_old = |e: &Unowned<K>| Arc::ptr_eq(e, old);
        let target = by_order(acc, view);
        // The same key and the same order: how many objects there are, and which of
        // them are foreign, stays as it is.
        if let Some(all) = &mut state.all
            && !all.replace_where(obj.clone(), &target, is_old, cx)
        {
            // The old version is in every tree (`validate` checks it).
            debug_assert!(false, "replaced object missing from the list");
            all.insert(obj.clone(), &target, sep_of(acc), cx);
        }
        for d in 1..self.num_keys {
            let prefix = &encoded[..bucket::prefix_len(encoded, d)];
            let tree = &mut state.prefixes[d - 1];
            let found = tree.update(&by_prefix(prefix), cx, |g, cx| {
                if !g.members.replace_where(obj.clone(), &target, is_old, cx) {
                    debug_assert!(false, "replaced object missing from its group");
                    g.members.insert(obj.clone(), &target, sep_of(acc), cx);
                }
            });
            if !found {
                debug_assert!(false, "replaced object's group missing");
                self.group_add(tree, prefix, &obj, view, cx);
            }
        }
    }

    /// Takes `stored` (under the key `encoded`, with its identity's `member` of the
    /// secondary indexes' groups) out of `state`; the member is retired.
    fn state_remove(
        &self,
        state: &mut State<K>,
        stored: &K,
        encoded: &[u8],
        member: Option<Member<K>>,
        cx: &mut Draft,
    ) {
        let old = (self.acc.meta)(stored);
        if !self.secondary.is_empty() {
            self.secondary_remove(state, cx, stored, old, member);
        }
        state.len -= 1;
        if !first_is_namespace(encoded, old) {
            state.foreign -= 1;
        }
        if let Some(all) = &mut state.all {
            all.remove(&by_order(self.acc, old), sep_of(self.acc), cx);
        }
        for d in 1..self.num_keys {
            let prefix = &encoded[..bucket::prefix_len(encoded, d)];
            self.group_remove(&mut state.prefixes[d - 1], prefix, old, cx);
        }
    }

    /// Adds (or replaces) `obj` in the group of `prefix`, creating the group if needed.
    fn group_add<E: Clone + Elem + AsRef<K>>(
        &self,
        tree: &mut StateTree<Group<K, E>>,
        prefix: &[u8],
        obj: &E,
        view: MetaView<'_>,
        cx: &mut Draft,
    ) {
        let target = by_prefix(prefix);
        let acc = self.acc;
        let found = tree.update(&target, cx, |g, cx| {
            g.members
                .insert(obj.clone(), &by_order(acc, view), sep_of(acc), cx);
        });
        if !found {
            let group = Group::new(prefix.into(), PTree::single(obj.clone(), cx));
            tree.insert(group, &target, group_sep, cx);
        }
    }

    /// Removes `old` from the group of `prefix`, and the group if that emptied it.
    fn group_remove<E: Clone + Elem + AsRef<K>>(
        &self,
        tree: &mut StateTree<Group<K, E>>,
        prefix: &[u8],
        old: MetaView<'_>,
        cx: &mut Draft,
    ) {
        let target = by_prefix(prefix);
        let acc = self.acc;
        let mut emptied = false;
        tree.update(&target, cx, |g, cx| {
            g.members.remove(&by_order(acc, old), sep_of(acc), cx);
            emptied = g.members.is_empty();
        });
        if emptied {
            // Its members' tree is empty: the removal unlinked its last node.
            tree.remove(&target, group_sep, cx);
        }
    }

    /// `obj`'s keys in every secondary index (nothing without one), before the write
    /// takes any lock: a refused key refuses the write.
    fn secondary_keys<S: AsRef<str>>(
        &self,
        op: Operation,
        obj: &K,
        keys: &[S],
    ) -> Result<SecondaryKeys, StoreError> {
        self.secondary
            .iter()
            .map(|s| {
                s.keys_of(obj)
                    .map_err(|e| StoreError::new(op, keys, e.kind))
            })
            .collect()
    }

    /// The label marks of an object whose secondary keys are `keys` (see
    /// [`marks_of`]), if the store keeps them: when it has a label index, which is the
    /// last index when there is one.
    fn marks(&self, keys: &SecondaryKeys) -> Option<u64> {
        match (&self.labels, keys.last()) {
            (Some(_), Some(labels)) => Some(marks_of(labels)),
            _ => None,
        }
    }

    /// The keys of `stored` (an object the store holds) in the secondary index `s`.
    /// They were read when it was written, from the same paths, so they read again.
    fn stored_keys(s: &Secondary<K>, stored: &K) -> Vec<Vec<u8>> {
        s.keys_of(stored).unwrap_or_else(|_| {
            debug_assert!(false, "a stored object's secondary keys no longer read");
            Vec::new()
        })
    }

    /// The secondary indexes' part of a write of `obj` (ordered as `view`, with the keys
    /// `new`) that replaces `old` (with its view and its identity's member; ordering as
    /// `obj` if `same_order`), if there is one. Returns the identity's member, for the
    /// identity table.
    ///
    /// An identity in no group (no key in any index) has no member (`None`).
    ///
    /// A version of the same order keeps its identity's member: it leaves the groups of
    /// the prefixes it no longer has and joins those it gains, and the groups it stays
    /// in are not touched, since they hold the member, whose current version it becomes
    /// (the common update, whose keys did not change, touches no group at all).
    /// Anything else is a new identity to the groups: the old member (if any) leaves
    /// every group and is retired, and a new one joins.
    #[allow(clippy::too_many_arguments)]
    fn secondary_upsert(
        &self,
        state: &mut State<K>,
        cx: &mut Draft,
        old: Option<Stored<'_, K>>,
        same_order: bool,
        obj: &Arc<K>,
        view: MetaView<'_>,
        new: &SecondaryKeys,
    ) -> Option<Member<K>> {
        let grouped = new.iter().any(|keys| !keys.is_empty());
        let indexes = self.secondary.iter().zip(&mut state.secondary).zip(new);
        if let Some((stored, ov, Some(member))) = old
            && same_order
            && grouped
        {
            for ((s, st), new) in indexes {
                let had = Self::stored_keys(s, stored);
                if had == *new {
                    continue;
                }
                for d in s.depths() {
                    let tree = &mut st.depths[d - 1];
                    let was: Vec<&[u8]> = prefixes(&had, d).collect();
                    let is: Vec<&[u8]> = prefixes(new, d).collect();
                    for p in &was {
                        if is.binary_search(p).is_err() {
                            self.group_remove(tree, p, ov, cx);
                        }
                    }
                    for p in &is {
                        if was.binary_search(p).is_err() {
                            self.group_add(tree, p, &member, view, cx);
                        }
                    }
                }
            }
            member.set(obj, self.marks(new), cx);
            return Some(member);
        }
        if let Some((stored, ov, member)) = old {
            self.secondary_remove(state, cx, stored, ov, member);
        }
        if !grouped {
            return None;
        }
        let member = Member::new(obj, self.marks(new), cx.stamp());
        for ((s, st), new) in self.secondary.iter().zip(&mut state.secondary).zip(new) {
            for d in s.depths() {
                for p in prefixes(new, d) {
                    self.group_add(&mut st.depths[d - 1], p, &member, view, cx);
                }
            }
        }
        Some(member)
    }

    /// The secondary indexes' part of removing `old` (ordered as `ov`), whose identity's
    /// member (`member`) leaves every group and is retired (`None`: it is in none).
    fn secondary_remove(
        &self,
        state: &mut State<K>,
        cx: &mut Draft,
        old: &K,
        ov: MetaView<'_>,
        member: Option<Member<K>>,
    ) {
        let Some(member) = member else {
            return;
        };
        for (s, st) in self.secondary.iter().zip(&mut state.secondary) {
            let keys = Self::stored_keys(s, old);
            for d in s.depths() {
                for p in prefixes(&keys, d) {
                    self.group_remove(&mut st.depths[d - 1], p, ov, cx);
                }
            }
        }
        // SAFETY: the identity leaves the identity table in this write (its entry is
        // removed, or given another member or none, at the commit), and the writer uses
        // this member no more.
        #[allow(unsafe_code)]
        unsafe {
            member.retire(cx);
        }
    }

    /// Publishes `state` with one swap of the published pointer, at which exact and
    /// prefix readers switch to it together (exact readers of older states pass over
    /// the entries this write stored, by their stamp). Returns the previous state.
    ///
    /// The previous state's generation is linked to the new one's, so that whatever a
    /// later write retires stays reachable from every older state still read (see
    /// [`retire`](crate::index::retire)); the caller retires what this write took out
    /// into `prev.generation` before dropping it.
    fn publish(&self, w: &mut Writer<K>, mut state: State<K>, mut cx: Draft) -> Arc<State<K>> {
        // The list is no longer needed once no object is foreign (checked once per
        // write, so that a batch does not drop and rebuild it change by change).
        if !self.needs_list(state.foreign)
            && let Some(all) = state.all.take()
        {
            cx.retire_tree(&all);
        }
        state.stamp = cx.stamp();
        let state = Arc::new(state);
        // What the write took out of the trees is freed with the previous generation.
        w.state.generation.link(&state.generation, [], cx.finish());
        let prev = self.published.swap(Arc::clone(&state));
        w.state = state;
        prev
    }

    /// Whether the published state must keep a list of its own (see [`State::all`]):
    /// with one key component (no groups), or `foreign` objects whose first key
    /// component is not their namespace (the groups are then in another order).
    fn needs_list(&self, foreign: usize) -> bool {
        self.num_keys == 1 || foreign > 0
    }

    /// Builds `state`'s list from its depth-1 groups if it has none (the first foreign
    /// object arrived): O(n), once per switch. The groups are still in namespace order
    /// here: the change that needs the list is applied to it afterwards.
    fn ensure_list(&self, state: &mut State<K>, cx: &Draft) {
        if state.all.is_some() {
            return;
        }
        let items: Vec<Unowned<K>> = state
            .prefixes
            .first()
            .map(|groups| {
                groups
                    .iter()
                    .flat_map(|g| g.members.iter().cloned())
                    .collect()
            })
            .unwrap_or_default();
        state.all = Some(PTree::from_sorted(items, sep_of(self.acc), cx));
    }

    fn hash_keys<S: AsRef<str>>(&self, keys: &[S]) -> u64 {
        self.hasher
            .hash_components(keys.iter().map(|k| k.as_ref().as_bytes()))
    }

    fn check_count<S: AsRef<str>>(&self, op: Operation, keys: &[S]) -> Result<(), StoreError> {
        if keys.len() == self.num_keys {
            // Only a write stores a key; a read of a longer one finds nothing.
            if !matches!(op, Operation::Get) {
                check_key_len(op, keys)?;
            }
            Ok(())
        } else {
            Err(StoreError::new(
                op,
                keys,
                ErrorKind::KeyCount {
                    expected: self.num_keys,
                    given: keys.len(),
                },
            ))
        }
    }

    /// See [`MemoryStore::validate`].
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn validate(&self) -> Result<(), String> {
        let w = self.writer.lock();
        let st = self.published.load_full();
        if !Arc::ptr_eq(&st, &w.state) {
            return Err("published state is not the writer's state".into());
        }
        let order = |a: &Unowned<K>, b: &Unowned<K>| (self.acc.meta)(a).order(&(self.acc.meta)(b));
        match &st.all {
            Some(all) => {
                all.validate(order, sep_of(self.acc))?;
                if all.len() != st.len {
                    return Err(format!(
                        "{} listed, but the state counts {}",
                        all.len(),
                        st.len
                    ));
                }
            }
            None if self.needs_list(st.foreign) => {
                return Err(format!("no list with {} foreign objects", st.foreign));
            }
            None => {}
        }
        // The snapshot is in order, whichever trees it reads.
        let mut prev: Option<&Arc<K>> = None;
        let snapshot = st.snapshot();
        for o in &snapshot {
            if prev.is_some_and(|p| order_arcs(self.acc, p, o) != Ordering::Less) {
                return Err("list() out of order".into());
            }
            prev = Some(o);
        }
        if snapshot.iter().count() != st.len {
            return Err("list() yields another count than len()".into());
        }
        let mut in_buckets = 0;
        let mut foreign = 0;
        st.exact
            .validate(&w.fill, |k| self.hasher.hash_encoded(k))?;
        let mut keys_seen: HashTable<&[u8]> = HashTable::new();
        {
            for (_, e) in st.exact.entries() {
                let encoded = e.key();
                let h = self.hasher.hash_encoded(encoded);
                if keys_seen.find(h, |k| *k == encoded).is_some() {
                    return Err(format!("key {encoded:?} in two slots"));
                }
                keys_seen.insert_unique(h, encoded, |k| self.hasher.hash_encoded(k));
                if e.at() > st.stamp {
                    return Err(format!("an entry stamped {} in state {}", e.at(), st.stamp));
                }
                let parts = key::decode(encoded).map_err(|e| e.to_string())?;
                if parts.len() != self.num_keys {
                    return Err(format!(
                        "stored key has {} components, not {}",
                        parts.len(),
                        self.num_keys
                    ));
                }
                if h != self.hash_keys(&parts) {
                    return Err(format!("key {parts:?} hashes apart from its components"));
                }
                let Some(b) = e.value() else {
                    continue;
                };
                b.validate(self.acc)?;
                let encoded = encoded.to_vec();
                let mut err = None;
                b.for_each(|obj| {
                    in_buckets += 1;
                    let view = (self.acc.meta)(obj);
                    if !first_is_namespace(&encoded, view) {
                        foreign += 1;
                    }
                    if st.find(self.acc, view).is_none_or(|o| !Arc::ptr_eq(o, obj)) {
                        err = Some(format!(
                            "{} is in a bucket but not in the list",
                            view.display()
                        ));
                    }
                    let id_hash = self.hasher.hash_identity(&view.identity());
                    match w.ids.find(id_hash, |o| Arc::ptr_eq(o, obj)) {
                        Some(l) if l.key_hash == h => {}
                        _ => err = Some(format!("{} is not located at its bucket", view.display())),
                    }
                    for d in 1..self.num_keys {
                        let p = &encoded[..bucket::prefix_len(&encoded, d)];
                        let ok = st.prefixes[d - 1]
                            .get(&by_prefix(p))
                            .and_then(|g| g.members.get(&by_order(self.acc, view)))
                            .is_some_and(|o| Arc::ptr_eq(o, obj));
                        if !ok {
                            err = Some(format!(
                                "{} missing from its depth-{d} group",
                                view.display()
                            ));
                        }
                    }
                });
                if let Some(e) = err {
                    return Err(e);
                }
            }
        }
        if in_buckets != st.len || w.ids.len() != st.len {
            return Err(format!(
                "{in_buckets} objects in buckets, {} located, {} listed",
                w.ids.len(),
                st.len
            ));
        }
        if foreign != st.foreign {
            return Err(format!(
                "{foreign} objects whose first key is not their namespace, the state counts {}",
                st.foreign
            ));
        }
        for (d, tree) in st.prefixes.iter().enumerate() {
            tree.validate(|a, b| a.prefix[..].cmp(&b.prefix[..]), group_sep)?;
            let mut total = 0;
            for g in tree.iter() {
                if g.members.is_empty() {
                    return Err(format!("empty group left at depth {}", d + 1));
                }
                g.members.validate(order, sep_of(self.acc))?;
                total += g.members.len();
            }
            if total != st.len {
                return Err(format!(
                    "depth-{} groups hold {total} of {} objects",
                    d + 1,
                    st.len
                ));
            }
        }
        self.validate_secondary(&w, &st)
    }

    /// Every secondary index against the objects stored: each group holds exactly the
    /// objects with a key of its prefix, in order, and no group is empty.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    fn validate_secondary(&self, w: &Writer<K>, st: &State<K>) -> Result<(), String> {
        if st.secondary.len() != self.secondary.len() {
            return Err("the state has another count of secondary indexes".into());
        }
        let meta = self.acc.meta;
        let order = |a: &Member<K>, b: &Member<K>| meta(a.as_ref()).order(&meta(b.as_ref()));
        for l in w.ids.iter() {
            let keys: SecondaryKeys = self
                .secondary
                .iter()
                .map(|s| s.keys_of(l.obj))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let grouped = keys.iter().any(|k| !k.is_empty());
            match l.member {
                None if !grouped => {}
                None => return Err("an identity in a group without a member".into()),
                Some(_) if !grouped => {
                    return Err("a member of an identity in no group".into());
                }
                Some(m) => {
                    if !Arc::ptr_eq(&m.current(), l.obj) {
                        return Err("a member whose current version is not the stored one".into());
                    }
                    match m.at(st.stamp) {
                        Found::Version(v, _) if !Arc::ptr_eq(&v, l.obj) => {
                            return Err("a member that does not give the stored version".into());
                        }
                        Found::Version(_, marks)
                            if marks != self.marks(&keys).unwrap_or(ALL_MARKS) =>
                        {
                            return Err("a member whose marks are not its version's".into());
                        }
                        Found::Version(..) => {}
                        Found::Look(_) => {
                            return Err("a member that does not give the stored version".into());
                        }
                    }
                }
            }
        }
        for (s, sst) in self.secondary.iter().zip(&st.secondary) {
            if sst.depths.len() != s.num_keys {
                return Err(format!("index {}: {} depths", s.name, sst.depths.len()));
            }
            let mut want: Vec<BTreeMap<Vec<u8>, Vec<LocatedRef<'_, K>>>> =
                (0..s.num_keys).map(|_| BTreeMap::new()).collect();
            for l in w.ids.iter() {
                let keys = s.keys_of(l.obj).map_err(|e| e.to_string())?;
                for d in s.depths() {
                    for p in prefixes(&keys, d) {
                        want[d - 1].entry(p.to_vec()).or_default().push(l);
                    }
                }
            }
            // Depths the index does not keep (see `Secondary::labels`) stay empty:
            // `want` has nothing for them.
            for (d, (tree, want)) in sst.depths.iter().zip(&mut want).enumerate() {
                tree.validate(|a, b| a.prefix[..].cmp(&b.prefix[..]), group_sep)?;
                if tree.len() != want.len() {
                    return Err(format!(
                        "index {}: {} groups at depth {}, {} prefixes among the objects",
                        s.name,
                        tree.len(),
                        d + 1,
                        want.len()
                    ));
                }
                for g in tree.iter() {
                    g.members.validate(order, sep_of(self.acc))?;
                    let Some(objects) = want.get_mut(&g.prefix[..]) else {
                        return Err(format!(
                            "index {}: a depth-{} group of a prefix no object has",
                            s.name,
                            d + 1
                        ));
                    };
                    objects.sort_by(|a, b| order_arcs(self.acc, a.obj, b.obj));
                    let same = objects.len() == g.members.len()
                        && objects
                            .iter()
                            .zip(g.members.iter())
                            .all(|(a, b)| a.member.is_some_and(|m| m.is(b)));
                    if !same {
                        return Err(format!(
                            "index {}: a depth-{} group holds {} objects, not the {} with its prefix",
                            s.name,
                            d + 1,
                            g.members.len(),
                            objects.len()
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Freshness: the versions writes applied, and waits for them (see
/// [`freshness`](crate::freshness)).
impl<K: Send + Sync + 'static> Index<K> {
    /// `obj`'s (namespace, name, uid).
    pub(crate) fn view_of<'a>(&self, obj: &'a K) -> MetaView<'a> {
        (self.acc.meta)(obj)
    }

    /// `obj`'s resourceVersion.
    pub(crate) fn version_of<'a>(&self, obj: &'a K) -> Option<&'a str> {
        (self.acc.version)(obj)
    }

    /// Whether the object ordered as `view` is stored at `want` or past it: `None` when
    /// no object of that (namespace, name, uid) is stored. Reads the published state,
    /// taking no lock.
    fn stored_reached(&self, view: MetaView<'_>, want: Version<'_>) -> Option<bool> {
        let acc = self.acc;
        self.published.with(|st| {
            st.find(acc, view).map(|stored| {
                (acc.version)(stored.as_ref()).is_some_and(|rv| Version::of(rv).reached(want))
            })
        })
    }

    /// Waits until the object ordered as `view`, written at `rv`, is stored at `rv` or
    /// past it, or is gone from a store that has applied `rv`.
    pub(crate) async fn wait_for_object(
        &self,
        view: MetaView<'_>,
        rv: Option<&str>,
        timeout: std::time::Duration,
    ) -> Result<(), WaitError> {
        let rv = rv.unwrap_or("");
        let want = Version::wanted(rv)?;
        self.freshness
            .wait(rv, want, timeout, |applied| {
                self.stored_reached(view, want)
                    .unwrap_or_else(|| applied.reached(want))
            })
            .await
    }

    /// Waits until the store has applied `rv`.
    pub(crate) async fn wait_for_version(
        &self,
        rv: &str,
        timeout: std::time::Duration,
    ) -> Result<(), WaitError> {
        let want = Version::wanted(rv)?;
        self.freshness
            .wait(rv, want, timeout, |applied| applied.reached(want))
            .await
    }

    /// Records a published write's versions (gathered by the caller from its objects).
    pub(crate) fn applied(&self, versions: Versions) {
        self.freshness.applied(versions);
    }
}
