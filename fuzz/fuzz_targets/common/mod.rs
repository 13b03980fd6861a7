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
//! the secondary indexes of its target ([`INDEXES`], or [`JSON_INDEXES`] for JSON
//! objects): `ab`, by the labels `a` and `b` (an object without both, or with one that
//! is not a string, is in no entry of it); `ns`, by namespace (every object is in it);
//! `fin`, by each distinct finalizer (`metadata.finalizers[*]`); `fo`, by the product of
//! the owner references' uids and the finalizers; and for JSON objects `ifo`, the
//! product of `spec.items[*]`, the finalizers and the owner uids. Generated objects
//! carry the labels from the alphabet, absent, `null` or a number, and some carry
//! arrays ([`Arrays`], decoded by [`elements`]): none to three elements with repeats
//! and the empty string, elements that are not strings (skipped, absent, or for a spec
//! item a number, a boolean, or a mapping the indexer refuses as not a scalar), empty
//! or absent arrays, and 15 to 18 distinct values, so that `fo` comes to 225 to 324
//! keys around [`MAX_ENTRIES_PER_OBJECT`] (256). The model computes each object's keys
//! itself when it is written ([`index_keys`]: each path's distinct values, none if a
//! path has none, their product, `TooManyValues` past the bound, `NotAScalar` for the
//! first path with an object or a list): a write the model refuses must be refused with
//! exactly that error (after the key count and metadata checks; in a batch or a
//! `replace`, the first refused change refuses all) and change nothing. `Move` may
//! relabel what it moves; `Bulk` may give its objects shared finalizers and owners. A
//! `GetBy` looks up one of the indexes or a name the store does not have (a prefix of
//! one, the empty name, `labels`) with 0 to 3 components (taken from a key in that
//! index of a stored object that has one, or from the alphabet), and must return the
//! model's objects (each once, however many of its keys match), order and pointers
//! included, or exactly the model's error (`UnknownIndex` before `PrefixLength`). Every
//! write path (single writes, batches, `replace`, `clear`, delete by key, `remove`, and
//! the feeder's) keeps the indexes, `validate()` checks them against the objects, and
//! at the end every prefix of every key of every object in each index is read back.
//!
//! Selectors: each store has a label index over every key, `a` only, `b` and `c`, or
//! none ([`Input::label_index`]). `Select` builds a selector of up to [`MAX_TERMS`]
//! terms (`k=v`, `k!=v`, `k in (..)`, `k notin (..)`, `k`, `!k` over the keys `a`, `b`,
//! `c` and values that objects carry and one they do not, `()` included), renders it as
//! a string in one of several styles (spaces, `==`, values in reverse order, the empty
//! value last), and parses it: the parse must equal `Selector::from_requirements` of
//! the terms. `SelectRaw` parses any string: a refusal must be `InvalidSelector` naming
//! the string and a byte position in it at a character boundary; a selector parsed must
//! print as a string that parses back to it. Either way `select` (or `select_in` a
//! namespace) must return exactly the objects the model's own evaluation accepts
//! ([`requirement_holds`], Kubernetes' semantics: `!=`, `notin` and `!k` hold without
//! the label), in order and by pointer, and `select_stats` must count it as indexed
//! exactly when the label index covers the key of an `=` or `in` term.
//!
//! The model is a `BTreeMap` from (namespace, name, uid) to (object, keys, secondary
//! keys), with an identity index, scanned linearly for every query, secondary lookups
//! and selectors included. It reads metadata, labels and arrays itself, through
//! [`FuzzObject::meta`], [`FuzzObject::label`] and [`FuzzObject::values`], not through
//! the crate's `Object` impls or its indexer.

mod selector;
use selector::requirement_holds;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use k8s_store::{
    Batch, ErrorKind, Indexer, LabelIndex, MAX_ENTRIES_PER_OBJECT, MemoryStore, MemoryStoreBuilder,
    Object, Operation, Requirement, Selector, Snapshot, StoreError, TooManyValues,
};

pub const ALPHABET: &[&str] = &[
    "", "/", "a", "a/b", "b/c", "\0", "é", "日本", ":", "a\0", "b",
];
pub const N: usize = ALPHABET.len();

/// How many old snapshots are kept and re-checked.
const MAX_SNAPSHOTS: usize = 4;

/// A field path of a secondary index, as the model reads it (through
/// [`FuzzObject::values`], never through the crate's indexer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    LabelA,
    LabelB,
    Namespace,
    /// `metadata.finalizers[*]`: multi-valued.
    Finalizers,
    /// `metadata.ownerReferences[*].uid`: multi-valued.
    OwnerUids,
    /// `spec.items[*]` (JSON objects only): multi-valued, its elements any JSON.
    Items,
}

impl Path {
    /// The path as the store's indexer is given it.
    pub fn text(self) -> &'static str {
        match self {
            Path::LabelA => "metadata.labels['a']",
            Path::LabelB => "metadata.labels['b']",
            Path::Namespace => "metadata.namespace",
            Path::Finalizers => "metadata.finalizers[*]",
            Path::OwnerUids => "metadata.ownerReferences[*].uid",
            Path::Items => "spec.items[*]",
        }
    }
}

/// A secondary index: its name and paths.
pub type IndexDef = (&'static str, &'static [Path]);

/// The secondary indexes of every fuzzed store of typed objects (and of the feeder's):
/// `ab` by the labels `a` and `b`, `ns` by namespace, `fin` by each distinct finalizer
/// (multi-valued), and `fo` by the product of the owner references' uids and the
/// finalizers (two multi-valued components: past [`MAX_ENTRIES_PER_OBJECT`] values an
/// object is refused).
pub const INDEXES: &[IndexDef] = &[
    ("ab", &[Path::LabelA, Path::LabelB]),
    ("ns", &[Path::Namespace]),
    ("fin", &[Path::Finalizers]),
    ("fo", &[Path::OwnerUids, Path::Finalizers]),
];

/// [`INDEXES`] and, for JSON objects, `ifo`: the product of three multi-valued
/// components, the first a `[*]` over a spec array whose elements may be numbers,
/// booleans, `null` (no value) or objects (refused: not a scalar).
pub const JSON_INDEXES: &[IndexDef] = &[
    ("ab", &[Path::LabelA, Path::LabelB]),
    ("ns", &[Path::Namespace]),
    ("fin", &[Path::Finalizers]),
    ("fo", &[Path::OwnerUids, Path::Finalizers]),
    ("ifo", &[Path::Items, Path::Finalizers, Path::OwnerUids]),
];

/// The names a `GetBy` looks up besides the store's indexes: names the stores do not
/// have (a prefix of `ab`, the empty name, and the label index's internal name, which
/// is not looked up by name).
const UNKNOWN_NAMES: [&str; 3] = ["a", "", "labels"];

/// The label keys of the selectors generated structurally: the two objects carry and
/// one none carries.
pub const SELECTOR_KEYS: [&str; 3] = ["a", "b", "c"];
/// The values of the selectors generated structurally: those of [`ALPHABET`] that are
/// valid label values, and one no object carries.
pub const SELECTOR_VALUES: [&str; 4] = ["", "a", "b", "x"];

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
    /// The object's arrays, if it has any (most have none, which costs nothing).
    pub arrays: Option<Arrays>,
}

/// The arrays of a generated object: `metadata.finalizers`, the uids of
/// `metadata.ownerReferences` and (JSON objects only) `spec.items`, each decoded by
/// [`elements`] from its byte.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Arrays {
    pub finalizers: u8,
    pub owners: u8,
    #[allow(dead_code, reason = "read by `differential` only")]
    pub items: u8,
}

/// An element of a generated array. Each target writes it into its array as it can:
/// a typed object keeps only `Str` elements; a JSON object writes them all (as a
/// finalizer, an owner reference whose `uid` is it, or a spec item).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Elem {
    Str(String),
    /// `7`: skipped as a finalizer, an absent uid, the value `7` as a spec item.
    Number,
    /// `null`: skipped everywhere (an owner reference that is `null` is skipped).
    Null,
    /// `{}`: skipped as a finalizer, an owner reference without a uid, refused as a
    /// spec item (not a scalar).
    Map,
    /// `true`: skipped as a finalizer and as an owner reference (not a mapping), the
    /// value `true` as a spec item.
    Bool,
}

/// What small arrays are made of.
fn small(i: usize) -> Elem {
    match i % 8 {
        0 => Elem::Str(String::new()),
        1 => Elem::Str("a".into()),
        2 => Elem::Str("b".into()),
        3 => Elem::Str("é".into()),
        4 => Elem::Number,
        5 => Elem::Null,
        6 => Elem::Map,
        _ => Elem::Bool,
    }
}

/// The array a byte stands for: `None` (absent), or its elements. From `0xF0` up, 15
/// to 18 distinct strings (`v0`, `v1`, ...), so that two such arrays in one index come
/// to 225 to 324 keys, around [`MAX_ENTRIES_PER_OBJECT`] (256); else 0 to 3 elements
/// of [`small`] from `(b >> 2) % 8` on, in steps of `b >> 5` (a step of 0 repeats one
/// element), an empty array being present or absent by bit 2.
pub fn elements(b: u8) -> Option<Vec<Elem>> {
    if b >= 0xF0 {
        let n = 15 + usize::from(b & 3);
        return Some((0..n).map(|j| Elem::Str(format!("v{j}"))).collect());
    }
    let n = usize::from(b & 3);
    if n == 0 {
        return (b & 4 != 0).then(Vec::new);
    }
    let (start, step) = (usize::from(b >> 2), usize::from(b >> 5));
    Some((0..n).map(|j| small(start + j * step)).collect())
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
    /// A lookup in a secondary index: the name is one of the target's indexes or of
    /// [`UNKNOWN_NAMES`], picked by the `u8`, the component count `len % 4`; with
    /// `len`'s high bit, the components start with those of a key in that index (the
    /// `comps[2]`-th) of the stored object `comps[3]` (in model order, modulo their
    /// counts), if it has one.
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
    /// A selector generated from terms, rendered as a string and parsed.
    Select(SelectSpec),
    /// A selector string of any bytes: parsed, and if valid, selected with.
    SelectRaw(String, Option<u8>),
}

/// A selector built from terms over [`SELECTOR_KEYS`] and [`SELECTOR_VALUES`] (at most
/// [`MAX_TERMS`] of them), rendered in a `style`, and looked up in all namespaces or,
/// with `namespace`, in the alphabet entry it names.
#[derive(Arbitrary, Debug)]
pub struct SelectSpec {
    terms: Vec<Term>,
    style: u8,
    namespace: Option<u8>,
}

/// The most terms of a generated selector used.
pub const MAX_TERMS: usize = 5;

/// A term of a generated selector: key and value are indexes into [`SELECTOR_KEYS`]
/// and [`SELECTOR_VALUES`]; the set of `In` and `NotIn` is a bit mask over the values
/// (no bit: `()`, the set of the empty value).
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Term {
    Eq(u8, u8),
    Ne(u8, u8),
    In(u8, u8),
    NotIn(u8, u8),
    Exists(u8),
    Absent(u8),
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

    /// The store's label index, from the shard byte's next two bits: none, every key,
    /// `a` only, or `b` and `c` (which no object carries).
    pub fn label_index(&self) -> Option<LabelIndex> {
        match (self.shards >> 1) % 4 {
            0 => None,
            1 => Some(LabelIndex::All),
            2 => Some(LabelIndex::keys(["a"])),
            _ => Some(LabelIndex::keys(["b", "c"])),
        }
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
    /// The secondary indexes of the target's stores ([`INDEXES`] or [`JSON_INDEXES`]).
    const INDEXES: &'static [IndexDef];
    /// The field as the store must read it: `""` when absent (or `null`).
    fn meta(&self, field: Meta) -> &str;
    /// The label as the store's indexer must read it: `None` when absent or not a
    /// string.
    fn label(&self, label: Label) -> Option<&str>;
    /// The values of `path` as the store's indexer must read them, in document order,
    /// repeats included (a single-valued path: none or one), or what was found that is
    /// not a scalar (`"an object"`, `"an array"`).
    fn values(&self, path: Path) -> Result<Vec<String>, &'static str>;
    /// The generated object `spec`, its body marked with `seq`.
    fn generate(spec: ObjSpec, seq: u64) -> Self;
    /// An object with this namespace, name, uid, labels `a` and `b` and arrays, its
    /// body marked with `seq`.
    fn named(
        namespace: &str,
        name: &str,
        uid: Option<String>,
        labels: [Option<&str>; 2],
        arrays: Option<Arrays>,
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

/// An object's keys in each secondary index (in the order of the target's indexes):
/// distinct and sorted, none if a path has no value.
pub type SecondaryKeys = Vec<Vec<Vec<String>>>;

/// `namespace/name` (or `name` without a namespace): how errors name an object.
fn display<O: FuzzObject>(o: &O) -> String {
    let (ns, name) = (meta(o, Meta::Namespace), meta(o, Meta::Name));
    if ns.is_empty() {
        name.to_owned()
    } else {
        format!("{ns}/{name}")
    }
}

/// `o`'s keys in the secondary index `(name, paths)`, as the model reads them: each
/// path's distinct values (an error for the first path with a value that is not a
/// scalar), none if a path has none, else their product, which may have at most
/// [`MAX_ENTRIES_PER_OBJECT`] keys.
fn index_keys<O: FuzzObject>(
    o: &O,
    (name, paths): IndexDef,
) -> Result<Vec<Vec<String>>, ErrorKind> {
    let mut values: Vec<Vec<String>> = Vec::with_capacity(paths.len());
    for &p in paths {
        let mut v = o.values(p).map_err(|found| ErrorKind::NotAScalar {
            path: p.text().to_owned(),
            object: display(o),
            found,
        })?;
        v.sort();
        v.dedup();
        values.push(v);
    }
    if values.iter().any(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let found = values.iter().fold(1usize, |n, v| n.saturating_mul(v.len()));
    if found > MAX_ENTRIES_PER_OBJECT {
        return Err(ErrorKind::TooManyValues(Box::new(TooManyValues {
            index: Some(name.to_owned()),
            object: display(o),
            paths: paths
                .iter()
                .zip(&values)
                .map(|(p, v)| (p.text().to_owned(), v.len()))
                .collect(),
            limit: MAX_ENTRIES_PER_OBJECT,
            found,
        })));
    }
    let mut keys: Vec<Vec<String>> = vec![Vec::new()];
    for v in &values {
        keys = keys
            .iter()
            .flat_map(|k| {
                v.iter().map(move |x| {
                    let mut k = k.clone();
                    k.push(x.clone());
                    k
                })
            })
            .collect();
    }
    keys.sort();
    Ok(keys)
}

/// `o`'s keys in every secondary index of its target, or the error of the first index
/// that refuses it.
fn secondary_keys<O: FuzzObject>(o: &O) -> Result<SecondaryKeys, ErrorKind> {
    O::INDEXES.iter().map(|&def| index_keys(o, def)).collect()
}

/// The indexers of `defs`, parsed.
fn parse_indexers(defs: &[IndexDef]) -> Vec<Indexer> {
    defs.iter()
        .map(|(_, paths)| Indexer::new(paths.iter().map(|p| p.text())).expect("valid paths"))
        .collect()
}

/// The indexers of [`INDEXES`] and [`JSON_INDEXES`], parsed once rather than for every
/// input.
static INDEXERS: LazyLock<Vec<Indexer>> = LazyLock::new(|| parse_indexers(INDEXES));
static JSON_INDEXERS: LazyLock<Vec<Indexer>> = LazyLock::new(|| parse_indexers(JSON_INDEXES));

/// Adds the secondary indexes `defs` ([`INDEXES`] or [`JSON_INDEXES`]) to `builder`.
pub fn with_indexes<K: Send + Sync + 'static>(
    builder: MemoryStoreBuilder<K>,
    defs: &'static [IndexDef],
) -> MemoryStoreBuilder<K> {
    // (Compared by name: a constant has no one address.)
    let names = |d: &[IndexDef]| d.iter().map(|(name, _)| *name).collect::<Vec<_>>();
    let indexers: &[Indexer] = if names(defs) == names(JSON_INDEXES) {
        &JSON_INDEXERS
    } else {
        assert!(
            names(defs) == names(INDEXES),
            "an index list of this module"
        );
        &INDEXERS
    };
    defs.iter()
        .zip(indexers)
        .fold(builder, |b, ((name, _), indexer)| {
            b.index(*name, indexer.clone())
        })
}

/// The store for `input`: its key and shard counts, the secondary indexes of
/// `O::INDEXES` and its label index, if any.
pub fn store<O: FuzzObject + Object<M>, M>(input: &Input) -> MemoryStore<O> {
    let mut builder = with_indexes(
        MemoryStore::<O>::builder(input.num_keys()).shards(input.shards()),
        O::INDEXES,
    );
    if let Some(which) = input.label_index() {
        builder = builder.label_index(which);
    }
    builder.build().expect("valid settings")
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

/// A stored object, its keys, and its keys in each secondary index (read by the model
/// when it was written).
type Entry<O> = (Arc<O>, Vec<String>, SecondaryKeys);

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

    /// Inserts `obj` (whose secondary keys are `sec`), replacing the object of the same
    /// identity wherever it was.
    fn upsert(&mut self, obj: Arc<O>, keys: Vec<String>, sec: SecondaryKeys) {
        let at = order_key(&*obj);
        if let Some(old) = self.ids.insert(identity(&*obj), at.clone()) {
            self.map.remove(&old);
        }
        self.map.insert(at, (obj, keys, sec));
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
    fn upsert_undoable(&mut self, obj: Arc<O>, keys: Vec<String>, sec: SecondaryKeys) -> Undo<O> {
        let id = identity(&*obj);
        let at = order_key(&*obj);
        let before = self.ids.insert(id.clone(), at.clone()).map(|old| {
            let entry = self.map.remove(&old).expect("an identity's entry");
            (old, entry)
        });
        self.map.insert(at.clone(), (obj, keys, sec));
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
            .filter(|(_, k, _)| filter(k))
            .map(|(o, _, _)| Arc::clone(o))
            .collect()
    }

    fn all(&self) -> Vec<Arc<O>> {
        self.sorted(|_| true)
    }

    /// The `i`-th stored object (modulo their count) in the store's order, if any.
    fn nth(&self, i: u16) -> Option<Arc<O>> {
        let n = self.map.len();
        let (obj, _, _) = self.map.values().nth(usize::from(i) % n.max(1))?;
        Some(Arc::clone(obj))
    }

    /// The keys in the secondary index `index` of the `i`-th stored object (modulo
    /// their count) among those that have any, if one has.
    fn nth_keys(&self, index: usize, i: u8) -> Option<&[Vec<String>]> {
        let with = || {
            self.map
                .values()
                .filter(|(_, _, sec)| !sec[index].is_empty())
        };
        let n = with().count();
        let (_, _, sec) = with().nth(usize::from(i) % n.max(1))?;
        Some(&sec[index])
    }

    /// A lookup in the secondary index `name`: the error, or every object with a key in
    /// it that starts with `prefix`, in order.
    fn get_by(&self, name: &str, prefix: &[String]) -> Result<Vec<Arc<O>>, StoreError> {
        let error = |kind| Err(StoreError::new(Operation::Get, prefix, kind));
        let Some(index) = O::INDEXES.iter().position(|(n, _)| *n == name) else {
            return error(ErrorKind::UnknownIndex {
                name: name.to_owned(),
                known: O::INDEXES.iter().map(|(n, _)| (*n).to_owned()).collect(),
            });
        };
        let max = O::INDEXES[index].1.len();
        if prefix.is_empty() || prefix.len() > max {
            return error(ErrorKind::PrefixLength {
                max,
                given: prefix.len(),
            });
        }
        Ok(self
            .map
            .values()
            .filter(|(_, _, sec)| sec[index].iter().any(|k| k.starts_with(prefix)))
            .map(|(o, _, _)| Arc::clone(o))
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
            .filter(|(_, k, _)| k == keys)
            .map(|(o, _, _)| identity(&**o))
            .collect();
        for id in &gone {
            self.remove(id);
        }
        gone.len()
    }

    /// What a write of `obj` under `keys` must return: a wrong key count first, then
    /// identity metadata of the wrong type, then the first secondary index that refuses
    /// the object (a value that is not a scalar, too many values); else the object's
    /// secondary keys.
    fn check_write(
        &self,
        operation: Operation,
        obj: &O,
        keys: &[String],
    ) -> Result<SecondaryKeys, StoreError> {
        if let Some(e) = self.key_count_error(operation, keys) {
            return Err(e);
        }
        if let Some(kind) = obj.metadata_error() {
            return Err(StoreError::new(operation, keys, kind));
        }
        secondary_keys(obj).map_err(|kind| StoreError::new(operation, keys, kind))
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

    /// The objects (of namespace `namespace`, if given) whose labels `holds` accepts,
    /// in order. The labels are read by the model ([`model_label`]).
    fn select(&self, namespace: Option<&str>, holds: impl Fn(&O) -> bool) -> Vec<Arc<O>> {
        self.map
            .iter()
            .filter(|((ns, _, _), (o, _, _))| namespace.is_none_or(|want| ns == want) && holds(o))
            .map(|(_, (o, _, _))| Arc::clone(o))
            .collect()
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

// ---------------------------------------------------------------------------------
// Selectors.

/// The label `key` of `o` as the model reads it: the objects carry `a` and `b` only.
fn model_label<'a, O: FuzzObject>(o: &'a O, key: &str) -> Option<&'a str> {
    match key {
        "a" => o.label(Label::A),
        "b" => o.label(Label::B),
        _ => None,
    }
}

/// Whether the label index `which` covers the label key `key`.
fn covers(which: &LabelIndex, key: &str) -> bool {
    match which {
        LabelIndex::All => true,
        LabelIndex::Keys(keys) => keys.contains(key),
        other => panic!("a label index the model does not know: {other:?}"),
    }
}

/// Whether `select` answers `selector` from the label index (else it reads every
/// object): the store has one, covering the key of an `=` or `in` term.
fn planned(which: Option<&LabelIndex>, selector: &Selector) -> bool {
    which.is_some_and(|which| {
        selector.requirements().iter().any(|r| match r {
            Requirement::Equals { key, .. } | Requirement::In { key, .. } => covers(which, key),
            _ => false,
        })
    })
}

impl Term {
    fn key(self) -> &'static str {
        let k = match self {
            Term::Eq(k, _)
            | Term::Ne(k, _)
            | Term::In(k, _)
            | Term::NotIn(k, _)
            | Term::Exists(k)
            | Term::Absent(k) => k,
        };
        SELECTOR_KEYS[usize::from(k) % SELECTOR_KEYS.len()]
    }

    fn value(v: u8) -> &'static str {
        SELECTOR_VALUES[usize::from(v) % SELECTOR_VALUES.len()]
    }

    /// The values of the mask `m`: no bit is the set of the empty value (`()`).
    fn set(m: u8) -> BTreeSet<&'static str> {
        let set: BTreeSet<&str> = SELECTOR_VALUES
            .iter()
            .enumerate()
            .filter(|(i, _)| m & (1 << i) != 0)
            .map(|(_, v)| *v)
            .collect();
        if set.is_empty() { [""].into() } else { set }
    }

    /// The term as the crate's requirement.
    fn requirement(self) -> Requirement {
        let key = self.key().to_owned();
        let set = |m| Term::set(m).into_iter().map(str::to_owned).collect();
        match self {
            Term::Eq(_, v) => Requirement::Equals {
                key,
                value: Term::value(v).to_owned(),
            },
            Term::Ne(_, v) => Requirement::NotEquals {
                key,
                value: Term::value(v).to_owned(),
            },
            Term::In(_, m) => Requirement::In {
                key,
                values: set(m),
            },
            Term::NotIn(_, m) => Requirement::NotIn {
                key,
                values: set(m),
            },
            Term::Exists(_) => Requirement::Exists { key },
            Term::Absent(_) => Requirement::DoesNotExist { key },
        }
    }

    /// Whether the term holds for a label `value` (`None`: absent), from the term
    /// itself.
    fn holds(self, value: Option<&str>) -> bool {
        match self {
            Term::Eq(_, v) => value == Some(Term::value(v)),
            Term::Ne(_, v) => value != Some(Term::value(v)),
            Term::In(_, m) => value.is_some_and(|x| Term::set(m).contains(x)),
            Term::NotIn(_, m) => !value.is_some_and(|x| Term::set(m).contains(x)),
            Term::Exists(_) => value.is_some(),
            Term::Absent(_) => value.is_none(),
        }
    }

    /// The term in the string syntax, in a `style`: bit 0 puts spaces around the
    /// tokens, bit 1 writes `==` for `=`, bit 2 lists the values of a set in reverse
    /// order (so that the empty value can come last: `(b,)`).
    fn render(self, style: u8) -> String {
        let sp = if style & 1 != 0 { " " } else { "" };
        let eq = if style & 2 != 0 { "==" } else { "=" };
        let key = self.key();
        let list = |m: u8| {
            let mut values: Vec<&str> = if m & 0xF == 0 {
                // `()`: the empty value, written as nothing.
                Vec::new()
            } else {
                Term::set(m).into_iter().collect()
            };
            if style & 4 != 0 {
                values.reverse();
            }
            values.join(&format!("{sp},{sp}"))
        };
        match self {
            Term::Eq(_, v) => format!("{sp}{key}{sp}{eq}{sp}{}{sp}", Term::value(v)),
            Term::Ne(_, v) => format!("{sp}{key}{sp}!={sp}{}{sp}", Term::value(v)),
            Term::In(_, m) => format!("{sp}{key} in {sp}({sp}{}{sp}){sp}", list(m)),
            Term::NotIn(_, m) => format!("{sp}{key} notin{sp} ({}){sp}", list(m)),
            Term::Exists(_) => format!("{sp}{key}{sp}"),
            Term::Absent(_) => format!("{sp}!{sp}{key}{sp}"),
        }
    }
}

/// Parses `text` as a selector. A refusal must be `InvalidSelector` of `Operation::Select`
/// naming `text` and a byte position in it (at a character boundary, at most its
/// length); a selector parsed must print as a string that parses to an equal selector
/// and prints the same.
fn check_parse(what: &dyn fmt::Display, text: &str) -> Option<Selector> {
    match Selector::parse(text) {
        Ok(selector) => {
            let shown = selector.to_string();
            let again = Selector::parse(&shown).unwrap_or_else(|e| {
                panic!("{what}: {text:?} parsed, but its display {shown:?} does not: {e}")
            });
            assert_eq!(again, selector, "{what}: {text:?} displayed as {shown:?}");
            assert_eq!(again.to_string(), shown, "{what}: {text:?}: display again");
            Some(selector)
        }
        Err(e) => {
            // The message must not panic either.
            let message = e.to_string();
            assert_eq!(e.operation, Operation::Select, "{what}: {message}");
            assert!(e.keys.is_empty(), "{what}: {message}");
            match &e.kind {
                ErrorKind::InvalidSelector {
                    selector,
                    position,
                    reason: _,
                } => {
                    assert_eq!(selector, text, "{what}: {message}");
                    let at = position.unwrap_or_else(|| panic!("{what}: no position: {message}"));
                    let at = usize::try_from(at).expect("a short input");
                    assert!(
                        at <= text.len() && text.is_char_boundary(at),
                        "{what}: position {at} is not a character boundary of {text:?} ({} bytes): {message}",
                        text.len()
                    );
                }
                _ => panic!("{what}: {text:?}: not InvalidSelector: {message}"),
            }
            None
        }
    }
}

/// Where `select` and `select_in` are checked: the store's label index and the query
/// counts `select_stats` must report.
struct Selects {
    label_index: Option<LabelIndex>,
    indexed: u64,
    scans: u64,
}

impl Selects {
    /// `store.select(selector)` (or `select_in(namespace, ..)`) against `want`, the
    /// model's answer: the same objects, in order, by pointer; and the counts.
    fn check<O: FuzzObject>(
        &mut self,
        what: &dyn fmt::Display,
        store: &MemoryStore<O>,
        namespace: Option<&str>,
        selector: &Selector,
        want: &[Arc<O>],
    ) {
        let got = match namespace {
            Some(ns) => store.select_in(ns, selector),
            None => store.select(selector),
        };
        same_objects(
            format_args!("{what}: select {namespace:?} {selector:?}"),
            &got,
            want,
        );
        if planned(self.label_index.as_ref(), selector) {
            self.indexed += 1;
        } else {
            self.scans += 1;
        }
        let stats = store.select_stats();
        assert_eq!(
            (stats.indexed, stats.scans),
            (self.indexed, self.scans),
            "{what}: select_stats (indexed, scans) with label index {:?}",
            self.label_index
        );
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
                    match model.check_write(operation, &obj, &keys) {
                        Ok(sec) => {
                            log.push(model.upsert_undoable(obj, keys, sec));
                            upserted += 1;
                        }
                        Err(e) => refused = Some(e),
                    }
                }
            }
            BatchOp::Move(i, ks, labels) => {
                let Some(old) = model.nth(i) else { continue };
                let obj = Arc::new(moved(&*old, labels, generator.next()));
                let keys = object_keys(ks, num_keys, &*obj);
                if refused.is_none() {
                    match model.check_write(operation, &obj, &keys) {
                        Ok(sec) => {
                            log.push(model.upsert_undoable(Arc::clone(&obj), keys.clone(), sec));
                            upserted += 1;
                        }
                        Err(e) => refused = Some(e),
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
    let mut selects = Selects {
        label_index: input.label_index(),
        indexed: 0,
        scans: 0,
    };
    assert!(
        store.index_names().eq(O::INDEXES.iter().map(|(n, _)| *n)),
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
                let want = model
                    .check_write(operation, &obj, &keys)
                    .map(|sec| model.upsert(obj, keys.clone(), sec));
                same_result(format_args!("{what} keys {keys:?}"), got, want);
            }
            Op::Move(i, ks, labels) => {
                if let Some(old) = model.nth(i) {
                    let obj = Arc::new(moved(&*old, labels, generator.next()));
                    let keys = object_keys(ks, num_keys, &*obj);
                    let got = store.update(Arc::clone(&obj), &keys);
                    let want = model
                        .check_write(Operation::Update, &obj, &keys)
                        .map(|sec| model.upsert(obj, keys.clone(), sec));
                    same_result(format_args!("{what} keys {keys:?}"), got, want);
                }
            }
            Op::Get(ks) => {
                let keys = plain_keys(ks, usize::from(ks.len) % (num_keys + 2));
                check_get(format_args!("{what} get {keys:?}"), store, &model, &keys);
            }
            Op::GetBy(name, ks) => {
                let i = usize::from(name) % (O::INDEXES.len() + UNKNOWN_NAMES.len());
                let name = match O::INDEXES.get(i) {
                    Some((name, _)) => *name,
                    None => UNKNOWN_NAMES[i - O::INDEXES.len()],
                };
                let mut keys = plain_keys(ks, usize::from(ks.len) % 4);
                // Half the lookups start with a key of a stored object that has keys in
                // the index, to find something.
                if ks.len & 0x80 != 0
                    && let Some(index) = O::INDEXES.iter().position(|(n, _)| *n == name)
                    && let Some(keys_of) = model.nth_keys(index, ks.comps[3])
                {
                    let comps = &keys_of[usize::from(ks.comps[2]) % keys_of.len()];
                    for (k, c) in keys.iter_mut().zip(comps) {
                        c.clone_into(k);
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
                let want: Result<Vec<SecondaryKeys>, StoreError> = items
                    .iter()
                    .map(|(o, k)| model.check_write(Operation::Replace, o, k))
                    .collect();
                let before = store.list();
                let got = store.replace(items.iter().cloned());
                same_result(&what, got, want.as_ref().map(|_| ()).map_err(Clone::clone));
                match want {
                    Err(_) => {
                        // Nothing changed.
                        let all = model.all();
                        check_snapshot(format_args!("{what} (failed)"), &store.list(), &all);
                        check_snapshot(format_args!("{what} (failed, before)"), &before, &all);
                    }
                    Ok(secs) => {
                        model.clear();
                        for ((obj, keys), sec) in items.into_iter().zip(secs) {
                            model.upsert(obj, keys, sec);
                        }
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
                    // Arrays for every other mode: shared finalizers and owners, a
                    // few values each (in `fin` and `fo` groups of many objects).
                    let arrays = (mode & 0x20 != 0).then(|| Arrays {
                        finalizers: 0x20 | (j % 4) as u8,
                        owners: 0x24 | ((j / 4) % 4) as u8,
                        items: 0,
                    });
                    let obj = Arc::new(O::named(ns, &name, uid, labels, arrays, generator.next()));
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
                    let sec = secondary_keys(&*obj)
                        .unwrap_or_else(|e| panic!("{what}: add {i}: the model refuses: {e}"));
                    store
                        .add(Arc::clone(&obj), &keys)
                        .unwrap_or_else(|e| panic!("{what}: add {i}: {e}"));
                    model.upsert(obj, keys, sec);
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
            Op::Select(ref spec) => {
                let terms = &spec.terms[..spec.terms.len().min(MAX_TERMS)];
                let sep = if spec.style & 8 != 0 { ", " } else { "," };
                let mut text = terms
                    .iter()
                    .map(|t| t.render(spec.style))
                    .collect::<Vec<_>>()
                    .join(sep);
                if spec.style & 16 != 0 {
                    text = format!("\t{text}\n");
                }
                let parsed = Selector::parse(&text)
                    .unwrap_or_else(|e| panic!("{what}: {text:?} does not parse: {e}"));
                let built = Selector::from_requirements(terms.iter().map(|t| t.requirement()))
                    .unwrap_or_else(|e| panic!("{what}: from_requirements: {e}"));
                assert_eq!(parsed, built, "{what}: {text:?} parsed");
                check_parse(&what, &text);
                let namespace = spec.namespace.map(|i| ALPHABET[usize::from(i) % N]);
                let want = model.select(namespace, |o| {
                    terms.iter().all(|t| t.holds(model_label(o, t.key())))
                });
                selects.check(&what, store, namespace, &parsed, &want);
            }
            Op::SelectRaw(ref text, namespace) => {
                if let Some(selector) = check_parse(&what, text) {
                    let namespace = namespace.map(|i| ALPHABET[usize::from(i) % N]);
                    let want = model.select(namespace, |o| {
                        selector
                            .requirements()
                            .iter()
                            .all(|r| requirement_holds(r, model_label(o, r.key())))
                    });
                    selects.check(&what, store, namespace, &selector, &want);
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
    for (obj, keys, _) in model.map.values() {
        for d in 1..=num_keys {
            under.entry(&keys[..d]).or_default().push(Arc::clone(obj));
        }
    }
    for (prefix, want) in &under {
        let got = store.get(prefix).expect("valid prefix length");
        same_objects(format_args!("final: get({prefix:?})"), &got, want);
    }
    // The same for every prefix of every stored object's keys in each secondary index
    // (an object once under a prefix, however many of its keys share it).
    for (index, (name, paths)) in O::INDEXES.iter().enumerate() {
        let mut under: BTreeMap<&[String], Vec<Arc<O>>> = BTreeMap::new();
        for (obj, _, sec) in model.map.values() {
            for d in 1..=paths.len() {
                let prefixes: BTreeSet<&[String]> = sec[index].iter().map(|k| &k[..d]).collect();
                for prefix in prefixes {
                    under.entry(prefix).or_default().push(Arc::clone(obj));
                }
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
    let distinct: BTreeSet<&Vec<String>> = model.map.values().map(|(_, k, _)| k).collect();
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
