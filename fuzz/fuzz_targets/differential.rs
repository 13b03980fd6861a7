//! `MemoryStore<serde_json::Value>` against a model: a `BTreeMap` from identity to
//! (object, keys), scanned linearly for every query.
//!
//! Every result is compared with the model, order included (namespace, name, uid), and
//! by pointer: the store must hand back the very `Arc`s it was given. Wrong key counts
//! must return the documented error and change nothing. `validate()` runs every few
//! operations and at the end; snapshots taken earlier must not change under later
//! writes.
//!
//! Key components and metadata come from a small alphabet with `/`, NUL, `:`, the empty
//! string and non-ASCII text, so joined-string ambiguities (`["a/b", "c"]` against
//! `["a", "b/c"]`), equal (namespace, name) with different uids, uid versus name
//! identities, and keys equal to the object's own namespace or name (the store's elided
//! buckets) all come up often. `Bulk` adds many objects at once so that the persistent
//! trees split and merge (their nodes hold 32 entries). Metadata fields that are
//! present but not strings (numbers) must be refused with `InvalidMetadata`, never read
//! as empty; `null` reads as absent.
//!
//! `Watch` operations drive a second store, a `MemoryStore<ConfigMap>`, through a
//! `watch::Feeder` with any sequence of watcher events, including relist events out of
//! order (`InitDone` or `InitApply` with no `Init` before them, repeated `Init`s),
//! against a model of the feeder: a relist is buffered from `Init` and swapped in at
//! its `InitDone`; a stray `InitDone` changes nothing and a stray `InitApply` is an
//! upsert, each counted in `stray_relist_events`; readers are ready from the first
//! completed relist on.

#![no_main]

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::Arbitrary;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store::watch::{FeedOptions, Feeder};
use k8s_store::{ErrorKind, Indexer, MemoryReader, MemoryStore, Operation, Snapshot, StoreError};
use kube_runtime::watcher::Event;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const ALPHABET: &[&str] = &[
    "", "/", "a", "a/b", "b/c", "\0", "é", "日本", ":", "a\0", "b",
];
const N: usize = ALPHABET.len();

/// Validate after this many operations (and at the end).
const VALIDATE_EVERY: usize = 4;
/// How many old snapshots are kept and re-checked.
const MAX_SNAPSHOTS: usize = 4;

/// A metadata field of a generated object.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Field {
    Absent,
    Str(u8),
    /// Present but not a string: the object is refused.
    Number,
    /// `null`: reads as absent.
    Null,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct ObjSpec {
    namespace: Field,
    name: Field,
    uid: Field,
}

/// A key vector. `len` is mapped to a length (see the `*_keys` functions) and each
/// component to an alphabet entry or, for an object's keys, its own namespace or name.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct KeySpec {
    len: u8,
    comps: [u8; 4],
}

#[derive(Arbitrary, Debug)]
enum Op {
    Add(ObjSpec, KeySpec),
    Update(ObjSpec, KeySpec),
    /// Upserts a new version of the `i`-th stored object (in model order) under new keys.
    Move(u16, KeySpec),
    Get(KeySpec),
    Delete(KeySpec),
    Remove(ObjSpec),
    /// Removes the `i`-th stored object (in model order).
    RemoveExisting(u16),
    List,
    Len,
    Clear,
    Replace(Vec<(ObjSpec, KeySpec)>),
    /// Keeps `list()` and the model's content at this point, to re-check later.
    Snapshot,
    /// Adds `count` generated objects.
    Bulk {
        start: u16,
        count: u8,
        mode: u8,
    },
    /// A watcher event for the feeder's store.
    Watch(WatchOp),
}

/// A watcher event; objects are named by an index into `FEED_NAMES`.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum WatchOp {
    Init,
    InitApply(u8),
    InitDone,
    Apply(u8),
    Delete(u8),
}

const FEED_NAMES: &[&str] = &["a", "b", "c", "d", "/", "é"];

#[derive(Arbitrary, Debug)]
struct Input {
    num_keys: u8,
    shards: u8,
    ops: Vec<Op>,
}

// ---------------------------------------------------------------------------------
// The model. It reads metadata itself (not through the crate's `Object` impl).

fn meta<'a>(v: &'a Value, field: &str) -> &'a str {
    v.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Id {
    Uid(String),
    Name(String, String),
}

fn identity(v: &Value) -> Id {
    let uid = meta(v, "uid");
    if uid.is_empty() {
        Id::Name(meta(v, "namespace").to_owned(), meta(v, "name").to_owned())
    } else {
        Id::Uid(uid.to_owned())
    }
}

fn order(a: &Value, b: &Value) -> Ordering {
    (meta(a, "namespace"), meta(a, "name"), meta(a, "uid")).cmp(&(
        meta(b, "namespace"),
        meta(b, "name"),
        meta(b, "uid"),
    ))
}

struct Model {
    num_keys: usize,
    map: BTreeMap<Id, (Arc<Value>, Vec<String>)>,
}

impl Model {
    fn upsert(&mut self, obj: Arc<Value>, keys: Vec<String>) {
        self.map.insert(identity(&obj), (obj, keys));
    }

    fn sorted(&self, filter: impl Fn(&[String]) -> bool) -> Vec<Arc<Value>> {
        let mut v: Vec<Arc<Value>> = self
            .map
            .values()
            .filter(|(_, k)| filter(k))
            .map(|(o, _)| Arc::clone(o))
            .collect();
        v.sort_by(|a, b| order(a, b));
        v
    }

    fn all(&self) -> Vec<Arc<Value>> {
        self.sorted(|_| true)
    }

    fn get(&self, prefix: &[String]) -> Result<Vec<Arc<Value>>, StoreError> {
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
        let before = self.map.len();
        self.map.retain(|_, (_, k)| k != keys);
        before - self.map.len()
    }

    /// The error a write of `obj` under `keys` must return: a wrong key count first,
    /// then identity metadata of the wrong type.
    fn write_error(
        &self,
        operation: Operation,
        obj: &Value,
        keys: &[String],
    ) -> Option<StoreError> {
        self.key_count_error(operation, keys)
            .or_else(|| metadata_error(obj).map(|kind| StoreError::new(operation, keys, kind)))
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

/// The first identity field that is present, not `null` and not a string.
fn metadata_error(v: &Value) -> Option<ErrorKind> {
    let m = v.get("metadata")?;
    for (key, field) in [
        ("namespace", "metadata.namespace"),
        ("name", "metadata.name"),
        ("uid", "metadata.uid"),
    ] {
        match m.get(key) {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(_) => {
                return Some(ErrorKind::InvalidMetadata {
                    field,
                    found: "a number",
                });
            }
        }
    }
    None
}

/// The feeder's side: its store, and a model of what it must hold.
struct Feed {
    feeder: Feeder<ConfigMap, MemoryStore<ConfigMap>>,
    /// The store, read as a reconciler would (the feeder owns its writer).
    store: MemoryReader<ConfigMap>,
    /// name -> resourceVersion of what the store must hold.
    state: BTreeMap<String, String>,
    /// The relist being buffered, if one was begun by `Init`.
    relist: Option<BTreeMap<String, String>>,
    stray: u64,
    /// Whether a relist has completed (the readers' readiness).
    ready: bool,
    seq: u64,
}

impl Feed {
    fn new() -> Self {
        let writer = MemoryStore::<ConfigMap>::new(2).expect("valid settings");
        let store = writer.reader();
        let indexer = Indexer::new(["metadata.namespace", "metadata.name"]).expect("valid paths");
        let feeder =
            Feeder::new(writer, indexer, FeedOptions::new("fuzz")).expect("matching key counts");
        Self {
            feeder,
            store,
            state: BTreeMap::new(),
            relist: None,
            stray: 0,
            ready: false,
            seq: 0,
        }
    }

    /// A new version of the object named by `i` (every version has its own
    /// resourceVersion, so no `Apply` is skipped as unchanged).
    fn object(&mut self, i: u8) -> (String, ConfigMap) {
        self.seq += 1;
        let name = FEED_NAMES[usize::from(i) % FEED_NAMES.len()].to_owned();
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.name = Some(name.clone());
        cm.metadata.resource_version = Some(self.seq.to_string());
        (name, cm)
    }

    fn handle(&mut self, op: WatchOp, what: &str) {
        match op {
            WatchOp::Init => {
                self.relist = Some(BTreeMap::new());
                self.feeder.handle(Event::Init);
            }
            WatchOp::InitApply(i) => {
                let (name, obj) = self.object(i);
                let rv = self.seq.to_string();
                match &mut self.relist {
                    Some(relist) => relist.insert(name, rv),
                    None => {
                        self.stray += 1;
                        self.state.insert(name, rv)
                    }
                };
                self.feeder.handle(Event::InitApply(obj));
            }
            WatchOp::InitDone => {
                match self.relist.take() {
                    Some(relist) => {
                        self.state = relist;
                        self.ready = true;
                    }
                    None => self.stray += 1,
                }
                self.feeder.handle(Event::InitDone);
            }
            WatchOp::Apply(i) => {
                let (name, obj) = self.object(i);
                self.state.insert(name, self.seq.to_string());
                self.feeder.handle(Event::Apply(obj));
            }
            WatchOp::Delete(i) => {
                let (name, obj) = self.object(i);
                self.state.remove(&name);
                self.feeder.handle(Event::Delete(obj));
            }
        }
        let got: BTreeMap<String, String> = self
            .store
            .list()
            .iter()
            .map(|o| {
                (
                    o.metadata.name.clone().unwrap_or_default(),
                    o.metadata.resource_version.clone().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            got, self.state,
            "{what}: the fed store differs from the model"
        );
        assert_eq!(
            self.feeder.status().stats().stray_relist_events,
            self.stray,
            "{what}: stray relist events"
        );
        assert_eq!(self.store.is_ready(), self.ready, "{what}: readiness");
    }
}

// ---------------------------------------------------------------------------------
// Generating objects and keys.

struct Gen {
    /// Gives every generated object a distinct body, so a stale version is noticed.
    seq: u64,
}

impl Gen {
    fn object(&mut self, spec: ObjSpec) -> Arc<Value> {
        self.seq += 1;
        let mut m = Map::new();
        for (name, f) in [
            ("namespace", spec.namespace),
            ("name", spec.name),
            ("uid", spec.uid),
        ] {
            match f {
                Field::Absent => {}
                Field::Str(i) => {
                    m.insert(name.into(), ALPHABET[usize::from(i) % N].into());
                }
                Field::Number => {
                    m.insert(name.into(), json!(7));
                }
                Field::Null => {
                    m.insert(name.into(), Value::Null);
                }
            }
        }
        let mut obj = json!({ "data": { "seq": self.seq } });
        // An object whose metadata is all absent sometimes has no metadata at all.
        if !m.is_empty() || self.seq.is_multiple_of(2) {
            obj["metadata"] = Value::Object(m);
        }
        Arc::new(obj)
    }

    /// A new version (new body, same metadata) of `old`.
    fn version_of(&mut self, old: &Value) -> Arc<Value> {
        self.seq += 1;
        let mut obj = old.clone();
        obj["data"] = json!({ "seq": self.seq });
        Arc::new(obj)
    }

    fn named(&mut self, ns: &str, name: &str, uid: Option<String>) -> Arc<Value> {
        self.seq += 1;
        let mut obj = json!({
            "metadata": { "namespace": ns, "name": name },
            "data": { "seq": self.seq },
        });
        if let Some(uid) = uid {
            obj["metadata"]["uid"] = uid.into();
        }
        Arc::new(obj)
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
fn object_keys(spec: KeySpec, num_keys: usize, obj: &Value) -> Vec<String> {
    spec.comps[..write_len(spec, num_keys)]
        .iter()
        .map(|&c| match usize::from(c) % (N + 2) {
            i if i < N => ALPHABET[i].to_owned(),
            i if i == N => meta(obj, "namespace").to_owned(),
            _ => meta(obj, "name").to_owned(),
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
// Comparing.

fn describe(v: &[Arc<Value>]) -> Vec<String> {
    v.iter()
        .map(|o| {
            format!(
                "({:?}, {:?}, {:?}) seq {}",
                meta(o, "namespace"),
                meta(o, "name"),
                meta(o, "uid"),
                o["data"]["seq"]
            )
        })
        .collect()
}

fn same_objects(what: &str, got: &[Arc<Value>], want: &[Arc<Value>]) {
    let same = got.len() == want.len() && got.iter().zip(want).all(|(g, w)| Arc::ptr_eq(g, w));
    assert!(
        same,
        "{what}: store returned\n  {:?}\nmodel expects\n  {:?}",
        describe(got),
        describe(want)
    );
}

fn same_result<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: Result<T, StoreError>,
    want: Result<T, StoreError>,
) {
    assert_eq!(got, want, "{what}");
}

fn check_snapshot(what: &str, snap: &Snapshot<Value>, want: &[Arc<Value>]) {
    assert_eq!(snap.len(), want.len(), "{what}: len");
    assert_eq!(snap.is_empty(), want.is_empty(), "{what}: is_empty");
    let iter = snap.iter();
    assert_eq!(iter.len(), want.len(), "{what}: iterator length");
    let got: Vec<Arc<Value>> = snap.into_iter().cloned().collect();
    same_objects(what, &got, want);
    same_objects(what, &snap.to_vec(), want);
}

fn validate(store: &MemoryStore<Value>, after: &str) {
    if let Err(e) = store.validate() {
        panic!("validate() after {after}: {e}");
    }
}

// ---------------------------------------------------------------------------------

fuzz_target!(|input: Input| run(input));

fn run(input: Input) {
    let num_keys = 1 + usize::from(input.num_keys) % 3;
    let builder = MemoryStore::<Value>::builder(num_keys);
    let builder = match input.shards % 3 {
        0 => builder.shards(2),
        1 => builder.shards(4),
        _ => builder,
    };
    let store: MemoryStore<Value> = builder.build().expect("valid settings");
    let mut model = Model {
        num_keys,
        map: BTreeMap::new(),
    };
    let mut generator = Gen { seq: 0 };
    let mut feed = Feed::new();
    let mut snapshots: Vec<(Snapshot<Value>, Vec<Arc<Value>>)> = Vec::new();

    for (step, op) in input.ops.into_iter().enumerate() {
        let what = format!("op {step} {op:?}");
        match op {
            Op::Add(spec, ks) | Op::Update(spec, ks) => {
                let is_add = matches!(op, Op::Add(..));
                let obj = generator.object(spec);
                let keys = object_keys(ks, num_keys, &obj);
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
                same_result(&format!("{what} keys {keys:?}"), got, want);
            }
            Op::Move(i, ks) => {
                let all = model.all();
                if !all.is_empty() {
                    let old = &all[usize::from(i) % all.len()];
                    let obj = generator.version_of(old);
                    let keys = object_keys(ks, num_keys, &obj);
                    let got = store.update(Arc::clone(&obj), &keys);
                    let want = match model.key_count_error(Operation::Update, &keys) {
                        Some(e) => Err(e),
                        None => {
                            model.upsert(obj, keys.clone());
                            Ok(())
                        }
                    };
                    same_result(&format!("{what} keys {keys:?}"), got, want);
                }
            }
            Op::Get(ks) => {
                let keys = plain_keys(ks, usize::from(ks.len) % (num_keys + 2));
                let what = format!("{what} get {keys:?}");
                match (store.get(&keys), model.get(&keys)) {
                    (Ok(got), Ok(want)) => same_objects(&what, &got, &want),
                    (got, want) => {
                        same_result(&what, got.map(|v| describe(&v)), want.map(|v| describe(&v)))
                    }
                }
                // The `&str` form must agree with the `String` form.
                let strs: Vec<&str> = keys.iter().map(String::as_str).collect();
                match (store.get(&strs), model.get(&keys)) {
                    (Ok(got), Ok(want)) => same_objects(&what, &got, &want),
                    (got, want) => {
                        same_result(&what, got.map(|v| describe(&v)), want.map(|v| describe(&v)))
                    }
                }
            }
            Op::Delete(ks) => {
                let keys = plain_keys(ks, write_len(ks, num_keys));
                let got = store.delete(&keys);
                let want = match model.key_count_error(Operation::Delete, &keys) {
                    Some(e) => Err(e),
                    None => Ok(model.delete(&keys)),
                };
                same_result(&format!("{what} keys {keys:?}"), got, want);
            }
            Op::Remove(spec) => {
                let probe = generator.object(spec);
                let got = store.remove(&probe);
                let want = match metadata_error(&probe) {
                    Some(kind) => Err(StoreError::new(Operation::Remove, &[] as &[&str], kind)),
                    None => Ok(model.map.remove(&identity(&probe)).is_some()),
                };
                same_result(&what, got, want);
            }
            Op::RemoveExisting(i) => {
                let all = model.all();
                if !all.is_empty() {
                    let target = &all[usize::from(i) % all.len()];
                    // Remove by identity through a different value of the same identity.
                    let probe = generator.version_of(target);
                    let got = store.remove(&probe);
                    assert!(model.map.remove(&identity(&probe)).is_some());
                    same_result(&what, got, Ok(true));
                    // Removing again finds nothing.
                    same_result(&what, store.remove(&probe), Ok(false));
                }
            }
            Op::List => {
                check_snapshot(&what, &store.list(), &model.all());
                for (n, (snap, want)) in snapshots.iter().enumerate() {
                    check_snapshot(&format!("{what}: snapshot #{n}"), snap, want);
                }
            }
            Op::Len => {}
            Op::Clear => {
                store.clear();
                model.map.clear();
            }
            Op::Replace(items) => {
                let items: Vec<(Arc<Value>, Vec<String>)> = items
                    .into_iter()
                    .map(|(spec, ks)| {
                        let obj = generator.object(spec);
                        let keys = object_keys(ks, num_keys, &obj);
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
                    check_snapshot(&format!("{what} (failed)"), &store.list(), &model.all());
                    check_snapshot(&format!("{what} (failed, before)"), &before, &model.all());
                } else {
                    model.map.clear();
                    for (obj, keys) in items {
                        model.upsert(obj, keys);
                    }
                }
            }
            Op::Snapshot => {
                if snapshots.len() == MAX_SNAPSHOTS {
                    snapshots.remove(0);
                }
                snapshots.push((store.list(), model.all()));
            }
            Op::Bulk { start, count, mode } => {
                for i in 0..usize::from(count % 80) {
                    let j = usize::from(start) + i;
                    let ns = ALPHABET[j % N];
                    let name = format!("bulk{}", j / 3);
                    let uid = (mode & 1 == 1).then(|| format!("u{j}"));
                    let obj = generator.named(ns, &name, uid);
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
            Op::Watch(event) => feed.handle(event, &what),
        }
        // Cheap checks after every operation.
        assert_eq!(store.len(), model.map.len(), "{what}: len");
        assert_eq!(store.is_empty(), model.map.is_empty(), "{what}: is_empty");
        if step % VALIDATE_EVERY == VALIDATE_EVERY - 1 {
            validate(&store, &what);
        }
    }

    validate(&store, "the last operation");
    check_snapshot("final list", &store.list(), &model.all());
    for (n, (snap, want)) in snapshots.iter().enumerate() {
        check_snapshot(&format!("final: snapshot #{n}"), snap, want);
    }
    // Every stored object, looked up by its exact keys and by each prefix.
    for (obj, keys) in model.map.values() {
        for d in 1..=num_keys {
            let got = store.get(&keys[..d]).expect("valid prefix length");
            assert!(
                got.iter().any(|o| Arc::ptr_eq(o, obj)),
                "final: {:?} missing from get({:?})",
                describe(std::slice::from_ref(obj)),
                &keys[..d]
            );
        }
    }
    // Delete everything by key; the store ends empty and valid.
    let distinct: std::collections::BTreeSet<&Vec<String>> =
        model.map.values().map(|(_, k)| k).collect();
    let mut total = 0;
    for keys in distinct {
        total += store.delete(keys).expect("valid key count");
    }
    assert_eq!(total, model.map.len(), "final: delete counts");
    assert!(
        store.is_empty(),
        "final: not empty after deleting every key"
    );
    validate(&store, "deleting every key");
}
