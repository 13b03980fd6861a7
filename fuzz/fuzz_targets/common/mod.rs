//! The differential model and driver shared by `differential` (a `MemoryStore` of
//! `serde_json::Value`) and `differential_typed` (a `MemoryStore` of `ConfigMap`): the
//! input format, a model of the store, the generated objects and keys, the comparisons
//! and [`run`], which drives a store and its model through one input. Each target
//! supplies its object type (through [`FuzzObject`]) and its [`Limits`].
//!
//! An input mixes single writes (`add`, `update`, `delete`, `remove`), reads, `replace`,
//! `clear` and batches (`MemoryStore::apply`): each `Batch` operation is up to
//! [`Limits::batch`] upserts and removals, built as the single writes are (generated
//! objects and keys, or an index into what is stored at that point of the batch, so
//! that one batch moves or removes what it upserted), and its changes count in the
//! input's [`Limits::bulk`] budget. The model makes the same changes one by one, in
//! order: a batch must apply with the same `Applied` counts, or, if any change has a
//! wrong key count or metadata of the wrong type, be refused whole with exactly the
//! error of the first such change (`Operation::Apply { item }`) and change nothing.
//!
//! Every store is built (by [`store`], or [`with_indexes`] for another builder) with
//! the two secondary indexes of [`INDEXES`]: `ab`, by the labels `a` and `b` (an object
//! without both, or with one that is not a string, is in no entry of it), and `ns`, by
//! namespace (every object is in it). Generated objects carry the labels from the
//! alphabet, absent, `null` or a number; `Move` may relabel what it moves. A `GetBy`
//! looks up `ab`, `ns` or a name the store does not have with 0 to 3 components (taken
//! from a stored object's key in that index or from the alphabet), and must return the
//! model's objects, order and pointers included, or exactly the model's error
//! (`UnknownIndex` before `PrefixLength`). Every write path (single writes, batches,
//! `replace`, `clear`, delete by key, `remove`, and the feeder's) keeps the indexes, and
//! `validate()` checks them against the objects.
//!
//! The model is a `BTreeMap` from (namespace, name, uid) to (object, keys), with an
//! identity index, scanned linearly for every query, secondary lookups included. It
//! reads metadata and labels itself, through [`FuzzObject::meta`] and
//! [`FuzzObject::label`], not through the crate's `Object` impls.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use k8s_store::{
    Batch, ErrorKind, Indexer, MemoryStore, MemoryStoreBuilder, Object, Operation, Snapshot,
    StoreError,
};

pub const ALPHABET: &[&str] = &[
    "", "/", "a", "a/b", "b/c", "\0", "é", "日本", ":", "a\0", "b",
];
pub const N: usize = ALPHABET.len();

/// How many old snapshots are kept and re-checked.
const MAX_SNAPSHOTS: usize = 4;

/// The secondary indexes of every fuzzed store: name and field paths. The model reads
/// the same fields in [`secondary_key`].
pub const INDEXES: [(&str, &[&str]); 2] = [
    ("ab", &["metadata.labels['a']", "metadata.labels['b']"]),
    ("ns", &["metadata.namespace"]),
];

/// The names a `GetBy` looks up: `ab` twice as often as `ns` (it has twice the prefix
/// lengths), and two the stores do not have (one a prefix of `ab`, one empty).
const LOOKUP_NAMES: [&str; 5] = ["ab", "ab", "ns", "a", ""];

// ---------------------------------------------------------------------------------
// Input.

/// A metadata field of a generated object.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Field {
    Absent,
    Str(u8),
    /// Present but not a string: the object is refused (JSON objects only; a typed
    /// object has no such field and reads it as absent).
    Number,
    /// `null`: reads as absent.
    Null,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct ObjSpec {
    pub namespace: Field,
    pub name: Field,
    pub uid: Field,
    pub labels: Labels,
}

/// The labels `a` and `b` of a generated object (the keys of the index `ab`). A label
/// that is `null` or a number (JSON objects; a typed object has neither) reads as
/// absent: the object is then in no entry of `ab`.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Labels {
    pub a: Field,
    pub b: Field,
}

/// A label of the index `ab`.
#[derive(Debug, Clone, Copy)]
pub enum Label {
    A,
    B,
}

impl Label {
    pub fn key(self) -> &'static str {
        match self {
            Label::A => "a",
            Label::B => "b",
        }
    }
}

/// A key vector. `len` is mapped to a length (see the `*_keys` functions) and each
/// component to an alphabet entry or, for an object's keys, its own namespace or name.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct KeySpec {
    len: u8,
    comps: [u8; 4],
}

#[derive(Arbitrary, Debug)]
pub enum Op {
    Add(ObjSpec, KeySpec),
    Update(ObjSpec, KeySpec),
    /// Upserts a new version of the `i`-th stored object (in model order) under new keys,
    /// with new labels if given.
    Move(u16, KeySpec, Option<Labels>),
    Get(KeySpec),
    /// A lookup in a secondary index: the name is [`LOOKUP_NAMES`] indexed by the `u8`
    /// (modulo 5), the component count `len % 4`; with `len`'s high bit, the components
    /// start with those of the key in that index of the stored object `comps[3]` (in
    /// model order, modulo their count), if it has one.
    GetBy(u8, KeySpec),
    Delete(KeySpec),
    Remove(ObjSpec),
    /// Removes the `i`-th stored object (in model order).
    RemoveExisting(u16),
    List,
    Len,
    Clear,
    /// Replaces everything with these objects (at most [`Limits::replace`] of them).
    Replace(Vec<(ObjSpec, KeySpec)>),
    /// Applies these changes as one `Batch` (at most [`Limits::batch`] of them, and
    /// fewer once the input's [`Limits::bulk`] budget, which they share with `Bulk`, is
    /// spent).
    Batch(Vec<BatchOp>),
    /// Keeps `list()` and the model's content at this point, to re-check later.
    Snapshot,
    /// Adds `count % 80` generated objects (fewer once the input's
    /// [`Limits::bulk`] budget is spent).
    Bulk {
        start: u16,
        count: u8,
        mode: u8,
    },
    /// A watcher event for the feeder's store (`differential` only; ignored elsewhere).
    Watch(WatchOp),
    /// Watcher events ready together, which the feeder writes as one batch
    /// (`Feeder::handle_batch`; `differential` only). At most [`MAX_BURST`] are used.
    WatchBurst(Vec<WatchOp>),
}

/// The most events of a `WatchBurst` used.
pub const MAX_BURST: usize = 16;

/// A change of a `Batch`, generated as the single writes are. An index names the
/// `i`-th object stored at that point of the batch (in model order, after the batch's
/// earlier changes), so that one batch changes the same object more than once.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum BatchOp {
    /// An upsert of a generated object (as `Add` and `Update`).
    Upsert(ObjSpec, KeySpec),
    /// An upsert of a new version of the `i`-th stored object under new keys, with new
    /// labels if given (as `Move`).
    Move(u16, KeySpec, Option<Labels>),
    /// A removal of a generated object's identity (as `Remove`).
    Remove(ObjSpec),
    /// A removal of the `i`-th stored object (as `RemoveExisting`).
    RemoveExisting(u16),
}

/// A watcher event; objects are named by an index into the feeder's names.
#[derive(Arbitrary, Debug, Clone, Copy)]
#[allow(dead_code, reason = "read by `differential` only")]
pub enum WatchOp {
    Init,
    InitApply(u8),
    InitDone,
    Apply(u8),
    Delete(u8),
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    num_keys: u8,
    shards: u8,
    ops: Vec<Op>,
}

impl Input {
    /// The store's key count, 1 to 3.
    pub fn num_keys(&self) -> usize {
        1 + usize::from(self.num_keys) % 3
    }

    /// Two or four shards, never the default 1,024: building those per input, visiting
    /// them in every `validate()` and rebuilding them at every `replace` and `clear`
    /// cost more than the operations.
    pub fn shards(&self) -> usize {
        if self.shards.is_multiple_of(2) { 2 } else { 4 }
    }
}

/// What one input may do, per target.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Operations run per input, at most; the rest of a longer input is ignored.
    pub ops: usize,
    /// Objects `Bulk` operations add, and changes `Batch` operations make, per input,
    /// in all.
    pub bulk: usize,
    /// Items of one `Replace`, at most (the rest are ignored).
    pub replace: usize,
    /// Changes of one `Batch`, at most (the rest are ignored).
    pub batch: usize,
    /// `validate()` after every this many operations (and after every `Replace` and
    /// `Clear`, and at the end).
    pub validate_every: usize,
}

// ---------------------------------------------------------------------------------
// The objects.

/// A metadata field the model reads.
#[derive(Debug, Clone, Copy)]
pub enum Meta {
    Namespace,
    Name,
    Uid,
}

/// An object type the model can generate and read.
pub trait FuzzObject: fmt::Debug + Send + Sync + 'static {
    /// The field as the store must read it: `""` when absent (or `null`).
    fn meta(&self, field: Meta) -> &str;
    /// The label as the store's indexer must read it: `None` when absent or not a
    /// string.
    fn label(&self, label: Label) -> Option<&str>;
    /// The generated object `spec`, its body marked with `seq`.
    fn generate(spec: ObjSpec, seq: u64) -> Self;
    /// An object with this namespace, name, uid and labels `a` and `b`, its body marked
    /// with `seq`.
    fn named(
        namespace: &str,
        name: &str,
        uid: Option<String>,
        labels: [Option<&str>; 2],
        seq: u64,
    ) -> Self;
    /// A new version of `self`: the same metadata, the body marked with `seq`.
    fn version(&self, seq: u64) -> Self;
    /// A new version of `self` with the labels `labels` instead of its own (its other
    /// metadata the same), the body marked with `seq`.
    fn relabel(&self, labels: Labels, seq: u64) -> Self;
    /// The `seq` of the body, for messages.
    fn seq(&self) -> String;
    /// The error writing `self` must fail with, if its identity metadata is of the
    /// wrong type.
    fn metadata_error(&self) -> Option<ErrorKind>;
}

fn meta<O: FuzzObject>(o: &O, field: Meta) -> &str {
    o.meta(field)
}

/// A key in a secondary index: its components (only the first `.1` are used).
type SecondaryKey<'a> = ([&'a str; 2], usize);

/// `o`'s key in the secondary index `INDEXES[index]`, as the store must read it, if it
/// has one (the paths of [`INDEXES`], read by the model).
fn secondary_key<O: FuzzObject>(o: &O, index: usize) -> Option<SecondaryKey<'_>> {
    match index {
        0 => Some(([o.label(Label::A)?, o.label(Label::B)?], 2)),
        _ => Some(([meta(o, Meta::Namespace), ""], 1)),
    }
}

/// Whether `key` starts with `prefix`.
fn has_prefix((comps, len): SecondaryKey<'_>, prefix: &[String]) -> bool {
    prefix.len() <= len && prefix.iter().zip(comps).all(|(p, c)| p == c)
}

/// The indexers of [`INDEXES`], parsed once rather than for every input.
static INDEXERS: LazyLock<Vec<Indexer>> = LazyLock::new(|| {
    INDEXES
        .iter()
        .map(|(_, paths)| Indexer::new(*paths).expect("valid paths"))
        .collect()
});

/// Adds the secondary indexes of [`INDEXES`] to `builder`.
pub fn with_indexes<K: Send + Sync + 'static>(
    builder: MemoryStoreBuilder<K>,
) -> MemoryStoreBuilder<K> {
    INDEXES
        .iter()
        .zip(INDEXERS.iter())
        .fold(builder, |b, ((name, _), indexer)| {
            b.index(*name, indexer.clone())
        })
}

/// The store for `input`: its key and shard counts, and the secondary indexes of
/// [`INDEXES`].
pub fn store<O: FuzzObject + Object<M>, M>(input: &Input) -> MemoryStore<O> {
    with_indexes(MemoryStore::<O>::builder(input.num_keys()).shards(input.shards()))
        .build()
        .expect("valid settings")
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Id {
    Uid(String),
    Name(String, String),
}

pub fn identity<O: FuzzObject>(o: &O) -> Id {
    let uid = meta(o, Meta::Uid);
    if uid.is_empty() {
        Id::Name(
            meta(o, Meta::Namespace).to_owned(),
            meta(o, Meta::Name).to_owned(),
        )
    } else {
        Id::Uid(uid.to_owned())
    }
}

/// (namespace, name, uid): the store's order. Unique per identity (an identity is the
/// uid if there is one, else the namespace and name), so the model can be kept in it.
type OrderKey = (String, String, String);

fn order_key<O: FuzzObject>(o: &O) -> OrderKey {
    (
        meta(o, Meta::Namespace).to_owned(),
        meta(o, Meta::Name).to_owned(),
        meta(o, Meta::Uid).to_owned(),
    )
}

// ---------------------------------------------------------------------------------
// The model.

/// A stored object and its keys.
type Entry<O> = (Arc<O>, Vec<String>);

/// How to undo one write to the model: its identity's entry before the write, and
/// where the write put it (`None`: removed).
struct Undo<O> {
    id: Id,
    before: Option<(OrderKey, Entry<O>)>,
    after: Option<OrderKey>,
}

struct Model<O> {
    num_keys: usize,
    /// Every object with its keys, in the store's order (so listing needs no sort).
    map: BTreeMap<OrderKey, Entry<O>>,
    /// Where each identity is in `map`.
    ids: BTreeMap<Id, OrderKey>,
}

impl<O: FuzzObject> Model<O> {
    fn new(num_keys: usize) -> Self {
        Self {
            num_keys,
            map: BTreeMap::new(),
            ids: BTreeMap::new(),
        }
    }

    /// Inserts `obj`, replacing the object of the same identity wherever it was.
    fn upsert(&mut self, obj: Arc<O>, keys: Vec<String>) {
        let at = order_key(&*obj);
        if let Some(old) = self.ids.insert(identity(&*obj), at.clone()) {
            self.map.remove(&old);
        }
        self.map.insert(at, (obj, keys));
    }

    /// Removes the object of identity `id`; whether there was one.
    fn remove(&mut self, id: &Id) -> bool {
        match self.ids.remove(id) {
            Some(at) => self.map.remove(&at).is_some(),
            None => false,
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.ids.clear();
    }

    /// [`upsert`](Self::upsert), with what undoes it.
    fn upsert_undoable(&mut self, obj: Arc<O>, keys: Vec<String>) -> Undo<O> {
        let id = identity(&*obj);
        let at = order_key(&*obj);
        let before = self.ids.insert(id.clone(), at.clone()).map(|old| {
            let entry = self.map.remove(&old).expect("an identity's entry");
            (old, entry)
        });
        self.map.insert(at.clone(), (obj, keys));
        Undo {
            id,
            before,
            after: Some(at),
        }
    }

    /// [`remove`](Self::remove), with what undoes it (`None`: there was nothing to
    /// remove).
    fn remove_undoable(&mut self, id: Id) -> Option<Undo<O>> {
        let at = self.ids.remove(&id)?;
        let entry = self.map.remove(&at).expect("an identity's entry");
        Some(Undo {
            id,
            before: Some((at, entry)),
            after: None,
        })
    }

    /// Undoes `log`'s writes, the last first.
    fn undo(&mut self, log: Vec<Undo<O>>) {
        for u in log.into_iter().rev() {
            if let Some(at) = u.after {
                self.map.remove(&at);
                self.ids.remove(&u.id);
            }
            if let Some((at, entry)) = u.before {
                self.ids.insert(u.id, at.clone());
                self.map.insert(at, entry);
            }
        }
    }

    fn sorted(&self, filter: impl Fn(&[String]) -> bool) -> Vec<Arc<O>> {
        self.map
            .values()
            .filter(|(_, k)| filter(k))
            .map(|(o, _)| Arc::clone(o))
            .collect()
    }

    fn all(&self) -> Vec<Arc<O>> {
        self.sorted(|_| true)
    }

    /// The `i`-th stored object (modulo their count) in the store's order, if any.
    fn nth(&self, i: u16) -> Option<Arc<O>> {
        let n = self.map.len();
        let (obj, _) = self.map.values().nth(usize::from(i) % n.max(1))?;
        Some(Arc::clone(obj))
    }

    /// A lookup in the secondary index `name`: the error, or every object with a key in
    /// it that starts with `prefix`, in order.
    fn get_by(&self, name: &str, prefix: &[String]) -> Result<Vec<Arc<O>>, StoreError> {
        let error = |kind| Err(StoreError::new(Operation::Get, prefix, kind));
        let Some(index) = INDEXES.iter().position(|(n, _)| *n == name) else {
            return error(ErrorKind::UnknownIndex {
                name: name.to_owned(),
                known: INDEXES.iter().map(|(n, _)| (*n).to_owned()).collect(),
            });
        };
        let max = INDEXES[index].1.len();
        if prefix.is_empty() || prefix.len() > max {
            return error(ErrorKind::PrefixLength {
                max,
                given: prefix.len(),
            });
        }
        Ok(self
            .map
            .values()
            .filter(|(o, _)| secondary_key(&**o, index).is_some_and(|k| has_prefix(k, prefix)))
            .map(|(o, _)| Arc::clone(o))
            .collect())
    }

    fn get(&self, prefix: &[String]) -> Result<Vec<Arc<O>>, StoreError> {
        if prefix.is_empty() || prefix.len() > self.num_keys {
            return Err(StoreError::new(
                Operation::Get,
                prefix,
                ErrorKind::PrefixLength {
                    max: self.num_keys,
                    given: prefix.len(),
                },
            ));
        }
        Ok(self.sorted(|k| k.starts_with(prefix)))
    }

    fn delete(&mut self, keys: &[String]) -> usize {
        let gone: Vec<Id> = self
            .map
            .values()
            .filter(|(_, k)| k == keys)
            .map(|(o, _)| identity(&**o))
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone.len()
    }

    /// The error a write of `obj` under `keys` must return: a wrong key count first,
    /// then identity metadata of the wrong type.
    fn write_error(&self, operation: Operation, obj: &O, keys: &[String]) -> Option<StoreError> {
        self.key_count_error(operation, keys).or_else(|| {
            obj.metadata_error()
                .map(|kind| StoreError::new(operation, keys, kind))
        })
    }

    fn key_count_error(&self, operation: Operation, keys: &[String]) -> Option<StoreError> {
        (keys.len() != self.num_keys).then(|| {
            StoreError::new(
                operation,
                keys,
                ErrorKind::KeyCount {
                    expected: self.num_keys,
                    given: keys.len(),
                },
            )
        })
    }
}

// ---------------------------------------------------------------------------------
// Generating objects and keys.

/// Gives every generated object a distinct body, so a stale version is noticed.
struct Gen {
    seq: u64,
}

impl Gen {
    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

/// Mostly `num_keys` components (else add/update/delete would nearly always fail),
/// sometimes any length in `0..=num_keys + 1`.
fn write_len(spec: KeySpec, num_keys: usize) -> usize {
    if spec.len < 0xE0 {
        num_keys
    } else {
        usize::from(spec.len) % (num_keys + 2)
    }
}

/// Keys for `obj`: components are alphabet entries or the object's namespace or name.
fn object_keys<O: FuzzObject>(spec: KeySpec, num_keys: usize, obj: &O) -> Vec<String> {
    spec.comps[..write_len(spec, num_keys)]
        .iter()
        .map(|&c| match usize::from(c) % (N + 2) {
            i if i < N => ALPHABET[i].to_owned(),
            i if i == N => meta(obj, Meta::Namespace).to_owned(),
            _ => meta(obj, Meta::Name).to_owned(),
        })
        .collect()
}

fn plain_keys(spec: KeySpec, len: usize) -> Vec<String> {
    spec.comps[..len]
        .iter()
        .map(|&c| ALPHABET[usize::from(c) % N].to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------
// Comparing. Messages name the operation through `What`, formatted only when a check
// fails (formatting every operation's `Debug` form cost more than most operations).

/// The operation a check is about: `op <step> <its Debug form>`.
pub struct What<'a> {
    step: usize,
    op: &'a Op,
}

impl fmt::Display for What<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op {} {:?}", self.step, self.op)
    }
}

fn describe<O: FuzzObject>(v: &[Arc<O>]) -> Vec<String> {
    v.iter()
        .map(|o| {
            format!(
                "({:?}, {:?}, {:?}) labels ({:?}, {:?}) seq {}",
                meta(&**o, Meta::Namespace),
                meta(&**o, Meta::Name),
                meta(&**o, Meta::Uid),
                o.label(Label::A),
                o.label(Label::B),
                o.seq()
            )
        })
        .collect()
}

fn same_objects<O: FuzzObject>(what: impl fmt::Display, got: &[Arc<O>], want: &[Arc<O>]) {
    let same = got.len() == want.len() && got.iter().zip(want).all(|(g, w)| Arc::ptr_eq(g, w));
    assert!(
        same,
        "{what}: store returned\n  {:?}\nmodel expects\n  {:?}",
        describe(got),
        describe(want)
    );
}

fn same_result<T: PartialEq + fmt::Debug>(
    what: impl fmt::Display,
    got: Result<T, StoreError>,
    want: Result<T, StoreError>,
) {
    assert_eq!(got, want, "{what}");
}

fn check_snapshot<O: FuzzObject>(what: impl fmt::Display, snap: &Snapshot<O>, want: &[Arc<O>]) {
    assert_eq!(snap.len(), want.len(), "{what}: len");
    assert_eq!(snap.is_empty(), want.is_empty(), "{what}: is_empty");
    let iter = snap.iter();
    assert_eq!(iter.len(), want.len(), "{what}: iterator length");
    let got: Vec<Arc<O>> = snap.into_iter().cloned().collect();
    same_objects(&what, &got, want);
    same_objects(&what, &snap.to_vec(), want);
}

fn validate<O: FuzzObject>(store: &MemoryStore<O>, after: impl fmt::Display) {
    if let Err(e) = store.validate() {
        panic!("validate() after {after}: {e}");
    }
}

/// A prefix get, store against model: the same objects in the same order, or the same
/// error; through `String` and `&str` keys alike.
fn check_get<O: FuzzObject>(
    what: impl fmt::Display,
    store: &MemoryStore<O>,
    model: &Model<O>,
    keys: &[String],
) {
    let want = model.get(keys);
    let strs: Vec<&str> = keys.iter().map(String::as_str).collect();
    for got in [store.get(keys), store.get(&strs)] {
        match (&got, &want) {
            (Ok(got), Ok(want)) => same_objects(&what, got, want),
            (got, want) => assert_eq!(
                got.as_ref().map(|v| describe(v)),
                want.as_ref().map(|v| describe(v)),
                "{what}"
            ),
        }
    }
}

/// A lookup in a secondary index, store against model: the same objects in the same
/// order, or the same error; through `String` and `&str` keys alike.
fn check_get_by<O: FuzzObject>(
    what: impl fmt::Display,
    store: &MemoryStore<O>,
    model: &Model<O>,
    name: &str,
    keys: &[String],
) {
    let want = model.get_by(name, keys);
    let strs: Vec<&str> = keys.iter().map(String::as_str).collect();
    for got in [store.get_by(name, keys), store.get_by(name, &strs)] {
        match (&got, &want) {
            (Ok(got), Ok(want)) => same_objects(&what, got, want),
            (got, want) => assert_eq!(
                got.as_ref().map(|v| describe(v)),
                want.as_ref().map(|v| describe(v)),
                "{what}"
            ),
        }
    }
}

/// The new version of `old` a `Move` writes: relabelled if `labels` are given.
fn moved<O: FuzzObject>(old: &O, labels: Option<Labels>, seq: u64) -> O {
    match labels {
        Some(labels) => old.relabel(labels, seq),
        None => old.version(seq),
    }
}

/// A `Batch` of `changes`, store against model: the model makes the same changes one by
/// one, in order; the store must apply them all, with the same counts, or refuse them
/// all with the error of the first refused change (the model then undoes them). Either
/// way `list()` from before the batch is unchanged.
fn check_batch<O: FuzzObject>(
    what: &What<'_>,
    store: &MemoryStore<O>,
    model: &mut Model<O>,
    generator: &mut Gen,
    changes: &[BatchOp],
) {
    let num_keys = model.num_keys;
    // The state before, to check that the batch leaves it intact.
    let before = (store.list(), model.all());
    // The batch, and the model following its changes one by one as they are added (so
    // that an index names an object as the earlier changes left it), logged to be
    // undone if the batch is refused; the error of its first refused change, after
    // which the model is left alone.
    let mut batch = Batch::with_capacity(changes.len());
    let mut log: Vec<Undo<O>> = Vec::with_capacity(changes.len());
    let mut refused: Option<StoreError> = None;
    let (mut upserted, mut removed) = (0, 0);
    for change in changes {
        let operation = Operation::Apply {
            item: u32::try_from(batch.len()).expect("a short batch"),
        };
        match *change {
            BatchOp::Upsert(spec, ks) => {
                let obj = Arc::new(O::generate(spec, generator.next()));
                let keys = object_keys(ks, num_keys, &*obj);
                batch.upsert(Arc::clone(&obj), &keys);
                if refused.is_none() {
                    refused = model.write_error(operation, &obj, &keys);
                    if refused.is_none() {
                        log.push(model.upsert_undoable(obj, keys));
                        upserted += 1;
                    }
                }
            }
            BatchOp::Move(i, ks, labels) => {
                let Some(old) = model.nth(i) else { continue };
                let obj = Arc::new(moved(&*old, labels, generator.next()));
                let keys = object_keys(ks, num_keys, &*obj);
                if refused.is_none() {
                    refused = model.key_count_error(operation, &keys);
                    if refused.is_none() {
                        log.push(model.upsert_undoable(Arc::clone(&obj), keys.clone()));
                        upserted += 1;
                    }
                }
                batch.upsert_owned(obj, keys);
            }
            BatchOp::Remove(spec) => {
                let probe = Arc::new(O::generate(spec, generator.next()));
                if refused.is_none() {
                    refused = probe
                        .metadata_error()
                        .map(|kind| StoreError::new(operation, &[] as &[&str], kind));
                    if refused.is_none()
                        && let Some(u) = model.remove_undoable(identity(&*probe))
                    {
                        log.push(u);
                        removed += 1;
                    }
                }
                batch.remove(probe);
            }
            BatchOp::RemoveExisting(i) => {
                let Some(target) = model.nth(i) else { continue };
                // Through a different value of the same identity.
                let probe = Arc::new(target.version(generator.next()));
                if refused.is_none() {
                    let u = model.remove_undoable(identity(&*probe));
                    log.push(u.expect("a stored object"));
                    removed += 1;
                }
                batch.remove(probe);
            }
        }
    }
    let len = batch.len();
    let got = store.apply(batch).map(|a| (a.upserted, a.removed));
    let failed = refused.is_some();
    let want = match refused {
        Some(e) => Err(e),
        None => Ok((upserted, removed)),
    };
    same_result(format_args!("{what} ({len} changes)"), got, want);
    if failed {
        model.undo(log);
    }
    // Applied whole (or, refused, not at all); the state before is intact.
    let all = model.all();
    check_snapshot(format_args!("{what}: list after"), &store.list(), &all);
    check_snapshot(format_args!("{what}: list before"), &before.0, &before.1);
}

// ---------------------------------------------------------------------------------

/// Where `Watch` and `WatchBurst` operations go: the events (one for `Watch`, fed
/// alone; several for `WatchBurst`, fed together), and the operation for messages.
pub type Watch<'a> = &'a mut dyn FnMut(&[WatchOp], &dyn fmt::Display);

/// Runs `input` against `store` (empty, built by [`store`]: `input.num_keys()` keys,
/// `input.shards()` shards and the secondary indexes of [`INDEXES`]) and a model;
/// `Watch` operations go to `watch`, if given.
pub fn run<O: FuzzObject>(
    store: &MemoryStore<O>,
    input: &Input,
    limits: Limits,
    mut watch: Option<Watch<'_>>,
) {
    let num_keys = input.num_keys();
    let mut model: Model<O> = Model::new(num_keys);
    let mut generator = Gen { seq: 0 };
    let mut snapshots: Vec<(Snapshot<O>, Vec<Arc<O>>)> = Vec::new();
    let mut bulk_left = limits.bulk;
    assert!(
        store.index_names().eq(INDEXES.iter().map(|(n, _)| *n)),
        "index_names"
    );

    for (step, op) in input.ops.iter().take(limits.ops).enumerate() {
        let what = What { step, op };
        match *op {
            Op::Add(spec, ks) | Op::Update(spec, ks) => {
                let is_add = matches!(op, Op::Add(..));
                let obj = Arc::new(O::generate(spec, generator.next()));
                let keys = object_keys(ks, num_keys, &*obj);
                let operation = if is_add {
                    Operation::Add
                } else {
                    Operation::Update
                };
                let got = if is_add {
                    store.add(Arc::clone(&obj), &keys)
                } else {
                    store.update(Arc::clone(&obj), &keys)
                };
                let want = match model.write_error(operation, &obj, &keys) {
                    Some(e) => Err(e),
                    None => {
                        model.upsert(obj, keys.clone());
                        Ok(())
                    }
                };
                same_result(format_args!("{what} keys {keys:?}"), got, want);
            }
            Op::Move(i, ks, labels) => {
                if let Some(old) = model.nth(i) {
                    let obj = Arc::new(moved(&*old, labels, generator.next()));
                    let keys = object_keys(ks, num_keys, &*obj);
                    let got = store.update(Arc::clone(&obj), &keys);
                    let want = match model.key_count_error(Operation::Update, &keys) {
                        Some(e) => Err(e),
                        None => {
                            model.upsert(obj, keys.clone());
                            Ok(())
                        }
                    };
                    same_result(format_args!("{what} keys {keys:?}"), got, want);
                }
            }
            Op::Get(ks) => {
                let keys = plain_keys(ks, usize::from(ks.len) % (num_keys + 2));
                check_get(format_args!("{what} get {keys:?}"), store, &model, &keys);
            }
            Op::GetBy(name, ks) => {
                let name = LOOKUP_NAMES[usize::from(name) % LOOKUP_NAMES.len()];
                let mut keys = plain_keys(ks, usize::from(ks.len) % 4);
                // Half the lookups start with a stored object's key, to find something.
                if ks.len & 0x80 != 0
                    && let Some(index) = INDEXES.iter().position(|(n, _)| *n == name)
                    && let Some(obj) = model.nth(u16::from(ks.comps[3]))
                    && let Some((comps, len)) = secondary_key(&*obj, index)
                {
                    for (k, c) in keys.iter_mut().zip(&comps[..len]) {
                        (*c).clone_into(k);
                    }
                }
                check_get_by(
                    format_args!("{what} get_by {name:?} {keys:?}"),
                    store,
                    &model,
                    name,
                    &keys,
                );
            }
            Op::Delete(ks) => {
                let keys = plain_keys(ks, write_len(ks, num_keys));
                let got = store.delete(&keys);
                let want = match model.key_count_error(Operation::Delete, &keys) {
                    Some(e) => Err(e),
                    None => Ok(model.delete(&keys)),
                };
                same_result(format_args!("{what} keys {keys:?}"), got, want);
            }
            Op::Remove(spec) => {
                let probe = O::generate(spec, generator.next());
                let got = store.remove(&probe);
                let want = match probe.metadata_error() {
                    Some(kind) => Err(StoreError::new(Operation::Remove, &[] as &[&str], kind)),
                    None => Ok(model.remove(&identity(&probe))),
                };
                same_result(&what, got, want);
            }
            Op::RemoveExisting(i) => {
                if let Some(target) = model.nth(i) {
                    // Remove by identity through a different value of the same identity.
                    let probe = target.version(generator.next());
                    let got = store.remove(&probe);
                    assert!(model.remove(&identity(&probe)));
                    same_result(&what, got, Ok(true));
                    // Removing again finds nothing.
                    same_result(&what, store.remove(&probe), Ok(false));
                }
            }
            Op::List => {
                check_snapshot(&what, &store.list(), &model.all());
                for (n, (snap, want)) in snapshots.iter().enumerate() {
                    check_snapshot(format_args!("{what}: snapshot #{n}"), snap, want);
                }
            }
            Op::Len => {}
            Op::Clear => {
                store.clear();
                model.clear();
            }
            Op::Replace(ref items) => {
                let items: Vec<(Arc<O>, Vec<String>)> = items
                    .iter()
                    .take(limits.replace)
                    .map(|&(spec, ks)| {
                        let obj = Arc::new(O::generate(spec, generator.next()));
                        let keys = object_keys(ks, num_keys, &*obj);
                        (obj, keys)
                    })
                    .collect();
                let want = match items
                    .iter()
                    .find_map(|(o, k)| model.write_error(Operation::Replace, o, k))
                {
                    Some(e) => Err(e),
                    None => Ok(()),
                };
                let before = store.list();
                let got = store.replace(items.iter().cloned());
                let failed = want.is_err();
                same_result(&what, got, want);
                if failed {
                    // Nothing changed.
                    let all = model.all();
                    check_snapshot(format_args!("{what} (failed)"), &store.list(), &all);
                    check_snapshot(format_args!("{what} (failed, before)"), &before, &all);
                } else {
                    model.clear();
                    for (obj, keys) in items {
                        model.upsert(obj, keys);
                    }
                }
            }
            Op::Batch(ref changes) => {
                let take = changes.len().min(limits.batch).min(bulk_left);
                bulk_left -= take;
                check_batch(&what, store, &mut model, &mut generator, &changes[..take]);
            }
            Op::Snapshot => {
                if snapshots.len() == MAX_SNAPSHOTS {
                    snapshots.remove(0);
                }
                snapshots.push((store.list(), model.all()));
            }
            Op::Bulk { start, count, mode } => {
                let count = usize::from(count % 80).min(bulk_left);
                bulk_left -= count;
                for i in 0..count {
                    let j = usize::from(start) + i;
                    let ns = ALPHABET[j % N];
                    let name = format!("bulk{}", j / 3);
                    let uid = (mode & 1 == 1).then(|| format!("u{j}"));
                    let labels = match (mode >> 3) % 4 {
                        // No labels: in no entry of `ab`.
                        0 => [None, None],
                        // One shared key: a big group at both depths.
                        1 => [Some("a"), Some("a")],
                        // A few first components, spread second ones.
                        2 => [Some(ALPHABET[j % 3]), Some(ALPHABET[(j / 3) % N])],
                        // The namespace first; the second on every other object only.
                        _ => [Some(ns), (j % 2 == 0).then_some("b")],
                    };
                    let obj = Arc::new(O::named(ns, &name, uid, labels, generator.next()));
                    let keys: Vec<String> = (0..num_keys)
                        .map(|d| match (mode >> 1) % 4 {
                            // Keys from the object's own metadata (elided buckets).
                            0 if d % 2 == 0 => ns.to_owned(),
                            0 => name.clone(),
                            // One shared key: a big bucket and big groups.
                            1 => "a".to_owned(),
                            // Spread over the alphabet.
                            2 => ALPHABET[(j / N.pow(d as u32)) % N].to_owned(),
                            // A shared first component, then distinct ones.
                            _ if d == 0 => ns.to_owned(),
                            _ => name.clone(),
                        })
                        .collect();
                    store
                        .add(Arc::clone(&obj), &keys)
                        .unwrap_or_else(|e| panic!("{what}: add {i}: {e}"));
                    model.upsert(obj, keys);
                }
            }
            Op::Watch(event) => {
                if let Some(watch) = watch.as_mut() {
                    watch(&[event], &what);
                }
            }
            Op::WatchBurst(ref events) => {
                if let Some(watch) = watch.as_mut() {
                    watch(&events[..events.len().min(MAX_BURST)], &what);
                }
            }
        }
        // Cheap checks after every operation.
        assert_eq!(store.len(), model.map.len(), "{what}: len");
        assert_eq!(store.is_empty(), model.map.is_empty(), "{what}: is_empty");
        // `validate()` every few operations, and after every whole-state rebuild.
        let rebuilt = matches!(op, Op::Replace(_) | Op::Clear);
        if rebuilt || step % limits.validate_every == limits.validate_every - 1 {
            validate(store, &what);
        }
    }

    validate(store, "the last operation");
    check_snapshot("final list", &store.list(), &model.all());
    for (n, (snap, want)) in snapshots.iter().enumerate() {
        check_snapshot(format_args!("final: snapshot #{n}"), snap, want);
    }
    // Every prefix of every stored object's keys, through one get each: exactly the
    // model's objects under it, in order (so every stored object is found under each
    // of its prefixes). Grouped in one pass over the model (a get per object would be
    // quadratic in a bucket that `Bulk` filled); the model's order is the store's.
    let mut under: BTreeMap<&[String], Vec<Arc<O>>> = BTreeMap::new();
    for (obj, keys) in model.map.values() {
        for d in 1..=num_keys {
            under.entry(&keys[..d]).or_default().push(Arc::clone(obj));
        }
    }
    for (prefix, want) in &under {
        let got = store.get(prefix).expect("valid prefix length");
        same_objects(format_args!("final: get({prefix:?})"), &got, want);
    }
    // The same for every prefix of every stored object's key in each secondary index.
    for (index, (name, _)) in INDEXES.iter().enumerate() {
        let mut under: BTreeMap<&[&str], Vec<Arc<O>>> = BTreeMap::new();
        let keys: Vec<(SecondaryKey<'_>, &Arc<O>)> = model
            .map
            .values()
            .filter_map(|(obj, _)| Some((secondary_key(&**obj, index)?, obj)))
            .collect();
        for ((comps, len), obj) in &keys {
            for d in 1..=*len {
                under.entry(&comps[..d]).or_default().push(Arc::clone(obj));
            }
        }
        for (prefix, want) in &under {
            let got = store
                .get_by(name, prefix)
                .expect("a known index, a valid length");
            same_objects(
                format_args!("final: get_by({name:?}, {prefix:?})"),
                &got,
                want,
            );
        }
    }
    // Delete everything by key; the store ends empty and valid.
    let distinct: BTreeSet<&Vec<String>> = model.map.values().map(|(_, k)| k).collect();
    let mut total = 0;
    for keys in distinct {
        total += store.delete(keys).expect("valid key count");
    }
    assert_eq!(total, model.map.len(), "final: delete counts");
    assert!(
        store.is_empty(),
        "final: not empty after deleting every key"
    );
    validate(store, "deleting every key");
}
