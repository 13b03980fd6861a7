//! `MemoryStore<serde_json::Value>` against a model (in `common/mod.rs`, shared with
//! `differential_typed`): a `BTreeMap` from (namespace, name, uid) to (object, keys),
//! scanned linearly for every query.
//!
//! Every result is compared with the model, order included (namespace, name, uid), and
//! by pointer: the store must hand back the very `Arc`s it was given. Wrong key counts
//! must return the documented error and change nothing. `Batch` operations apply
//! upserts and removals as one `MemoryStore::apply` beside the single writes (some of
//! them moving or removing what the same batch upserted): the model makes the same
//! changes one by one and the `Applied` counts must match, and a batch with one bad
//! change (a wrong key count, metadata of the wrong type) must be refused whole, that
//! change named by `Operation::Apply { item }`, with nothing applied. Snapshots taken
//! earlier must not change under later writes. At the end every prefix of every stored
//! key is read back (exactly the model's objects under it, in order) and the store is
//! emptied key by key.
//!
//! The store has five secondary indexes (`common::JSON_INDEXES`): `ab`, by the labels
//! `a` and `b`, `ns`, by namespace, and three multi-valued ones: `fin` (each
//! finalizer), `fo` (owner uids times finalizers) and `ifo` (`spec.items[*]` times
//! finalizers times owner uids). Generated JSON arrays hold strings and also numbers,
//! `null`, `true` and `{}`: a finalizer that is not a string is skipped, an owner
//! reference that is not a mapping is skipped and a `uid` that is not a string is
//! absent, a spec item that is `null` has no value, a number or boolean is its JSON
//! text, and a mapping is refused (`NotAScalar`); an object with too many keys in `fo`
//! or `ifo` is refused (`TooManyValues`), each as the model computes it. It also has a
//! label index, or none, and `Select` and `SelectRaw` operations compare selectors with
//! the model (see `common/mod.rs`). Generated objects carry each label from the alphabet,
//! absent, `null` or a number (the last two read as absent, and an object without both
//! labels is in no entry of `ab`; a label of the wrong type is not an error), `Bulk`
//! gives them none, one shared pair or spread ones, and a `Move` (alone or in a batch)
//! may relabel what it moves. `GetBy` operations look up `ab`, `ns`, or a name the
//! store does not have (`a`, the empty name), with 0 to 3 components, half of them
//! starting with a stored object's key in that index: the objects must be the model's,
//! in order and by pointer, and the errors exactly its errors (`UnknownIndex` with the
//! store's index names, else `PrefixLength`). Every write path (single writes, batches,
//! `replace`, `clear`, delete by key, `remove`) runs with the indexes, `validate()`
//! checks each index against the objects, and at the end every prefix of every stored
//! object's key in each index is read back too.
//!
//! `validate()` runs every `LIMITS.validate_every` (24) operations, after every
//! `Replace` and `Clear` (which rebuild the whole state), at the end and once the store
//! is emptied. An input runs at most `LIMITS.ops` (48) operations; a `Replace` takes at
//! most `LIMITS.replace` (32) items and a `Batch` at most `LIMITS.batch` (12) changes,
//! and the objects `Bulk` operations add and the changes `Batch` operations make come
//! to at most `LIMITS.bulk` (12) per input in all. The store has two or four shards.
//! (Reading a JSON object's metadata is a chain of map lookups that the fuzzer's
//! instrumentation makes costly: about 10 µs a write and 7 µs an object per
//! `validate()` without the secondary indexes, which read the labels and namespace of
//! every written object and of the version it replaces, and of every object again in
//! `validate()`, and cost about a quarter of the executions on the same inputs; the
//! multi-valued indexes, the label index and the selectors about a
//! twentieth more (1,326 against 1,244 executions a second in a minute from the same
//! seed corpus). Larger
//! stores would bring this target down to a few hundred executions a second. The
//! trees' splits and merges, which need more than 32 objects, are
//! `differential_typed`'s job.)
//!
//! Key components and metadata come from a small alphabet with `/`, NUL, `:`, the empty
//! string and non-ASCII text, so joined-string ambiguities (`["a/b", "c"]` against
//! `["a", "b/c"]`), equal (namespace, name) with different uids, uid versus name
//! identities, and keys equal to the object's own namespace or name (the store's elided
//! buckets) all come up often. `Bulk` adds many objects at once, under shared or
//! spread keys. Metadata fields that are present but not strings (numbers) must be
//! refused with `InvalidMetadata`, never read as empty; `null` reads as absent.
//!
//! `Watch` operations drive a second store, a `MemoryStore<ConfigMap>`, through a
//! `watch::Feeder` with any sequence of watcher events, including relist events out of
//! order (`InitDone` or `InitApply` with no `Init` before them, repeated `Init`s),
//! against a model of the feeder: a relist is buffered from `Init` and swapped in at
//! its `InitDone`; a stray `InitDone` changes nothing and a stray `InitApply` is an
//! upsert, each counted in `stray_relist_events`; readers are ready from the first
//! completed relist on. `WatchBurst` operations feed up to 16 events at once through
//! `Feeder::handle_batch`, which writes the `Apply`s and `Delete`s between relist
//! events as one batch: the model still takes them one by one. The fed store has the
//! same two secondary indexes, and its objects labels picked by the event's byte (a
//! `Delete` event's labels may differ from the stored version's). After every `Watch`
//! and every burst it is compared with the model: its list, `get_by("ns", ["ns"])`,
//! `get_by("ab", ..)` for every prefix of every key its objects can have (stale entries
//! of any other key are `validate()`'s to find), and `validate()`. It has two shards
//! and is built by an input's first `Watch` or `WatchBurst` operation.

#![no_main]

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use common::{
    ALPHABET, Arrays, Elem, Field, FuzzObject, IndexDef, Input, Label, Labels, Limits, Meta, N,
    ObjSpec, Path, WatchOp,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store::watch::{FeedOptions, Feeder};
use k8s_store::{ErrorKind, Indexer, MemoryReader, MemoryStore};
use kube_runtime::watcher::Event;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const LIMITS: Limits = Limits {
    ops: 48,
    bulk: 12,
    replace: 32,
    batch: 12,
    validate_every: 24,
};

/// A generated JSON field: absent (`None`), or its value.
fn json_field(f: Field) -> Option<Value> {
    match f {
        Field::Absent => None,
        Field::Str(i) => Some(ALPHABET[usize::from(i) % N].into()),
        Field::Number => Some(json!(7)),
        Field::Null => Some(Value::Null),
    }
}

/// The `metadata.labels` of `labels`, if any is present.
fn json_labels(labels: Labels) -> Option<Value> {
    let m: Map<String, Value> = [("a", labels.a), ("b", labels.b)]
        .into_iter()
        .filter_map(|(k, f)| Some((k.to_owned(), json_field(f)?)))
        .collect();
    (!m.is_empty()).then_some(Value::Object(m))
}

/// An element as JSON.
fn json_elem(e: Elem) -> Value {
    match e {
        Elem::Str(s) => s.into(),
        Elem::Number => json!(7),
        Elem::Null => Value::Null,
        Elem::Map => json!({}),
        Elem::Bool => json!(true),
    }
}

/// An owner reference whose `uid` is `e`: a full one for a string, one with a `uid` of
/// the wrong type for a number, one without a `uid` for a mapping, and `null` or `true`
/// (not a mapping) as they are.
fn json_owner(e: Elem) -> Value {
    match e {
        Elem::Str(uid) => json!({"apiVersion": "v1", "kind": "K", "name": "o", "uid": uid}),
        Elem::Number => json!({"uid": 7}),
        e => json_elem(e),
    }
}

/// Gives `obj` (with a `metadata` mapping) the arrays of `arrays`.
fn with_arrays(obj: &mut Value, arrays: Option<Arrays>) {
    let Some(arrays) = arrays else { return };
    let array = |b, f: fn(Elem) -> Value| {
        common::elements(b).map(|v| Value::Array(v.into_iter().map(f).collect()))
    };
    if let Some(v) = array(arrays.finalizers, json_elem) {
        obj["metadata"]["finalizers"] = v;
    }
    if let Some(v) = array(arrays.owners, json_owner) {
        obj["metadata"]["ownerReferences"] = v;
    }
    if let Some(v) = array(arrays.items, json_elem) {
        obj["spec"] = json!({ "items": v });
    }
}

/// The elements of the array at `v`, none if it is not an array.
fn array_at(v: Option<&Value>) -> &[Value] {
    match v {
        Some(Value::Array(a)) => a,
        _ => &[],
    }
}

impl FuzzObject for Value {
    const INDEXES: &'static [IndexDef] = common::JSON_INDEXES;

    fn meta(&self, field: Meta) -> &str {
        let field = match field {
            Meta::Namespace => "namespace",
            Meta::Name => "name",
            Meta::Uid => "uid",
        };
        self.get("metadata")
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn label(&self, label: Label) -> Option<&str> {
        self.get("metadata")?
            .get("labels")?
            .get(label.key())?
            .as_str()
    }

    /// As the Kubernetes API documents these fields, read here by hand: a finalizer
    /// that is not a string is skipped, an owner reference that is not a mapping is
    /// skipped and a `uid` that is not a string is absent; a spec item that is `null`
    /// has no value, a number or boolean prints as JSON does, a mapping or list is not
    /// a scalar.
    fn values(&self, path: Path) -> Result<Vec<String>, &'static str> {
        let m = self.get("metadata");
        let one = |v: Option<&str>| v.map(str::to_owned).into_iter().collect();
        Ok(match path {
            Path::LabelA => one(self.label(Label::A)),
            Path::LabelB => one(self.label(Label::B)),
            Path::Namespace => one(Some(self.meta(Meta::Namespace))),
            Path::Finalizers => array_at(m.and_then(|m| m.get("finalizers")))
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            Path::OwnerUids => array_at(m.and_then(|m| m.get("ownerReferences")))
                .iter()
                .filter_map(|r| r.as_object()?.get("uid")?.as_str())
                .map(str::to_owned)
                .collect(),
            Path::Items => {
                let items = array_at(self.get("spec").and_then(|s| s.get("items")));
                let mut out = Vec::with_capacity(items.len());
                for v in items {
                    match v {
                        Value::Null => {}
                        Value::String(s) => out.push(s.clone()),
                        Value::Bool(b) => out.push(b.to_string()),
                        Value::Number(n) => out.push(n.to_string()),
                        Value::Object(_) => return Err("an object"),
                        Value::Array(_) => return Err("an array"),
                    }
                }
                out
            }
        })
    }

    fn generate(spec: ObjSpec, seq: u64) -> Self {
        let mut m = Map::new();
        for (name, f) in [
            ("namespace", spec.namespace),
            ("name", spec.name),
            ("uid", spec.uid),
        ] {
            if let Some(v) = json_field(f) {
                m.insert(name.into(), v);
            }
        }
        if let Some(labels) = json_labels(spec.labels) {
            m.insert("labels".into(), labels);
        }
        // The body's key sorts after `metadata`, so that reading metadata compares
        // one key less (each comparison is traced by the fuzzer).
        let mut obj = json!({ "seq": seq });
        // An object whose metadata is all absent sometimes has no metadata at all.
        if !m.is_empty() || seq.is_multiple_of(2) || spec.arrays.is_some() {
            obj["metadata"] = Value::Object(m);
        }
        with_arrays(&mut obj, spec.arrays);
        obj
    }

    fn named(
        namespace: &str,
        name: &str,
        uid: Option<String>,
        labels: [Option<&str>; 2],
        arrays: Option<Arrays>,
        seq: u64,
    ) -> Self {
        let mut obj = json!({
            "metadata": { "namespace": namespace, "name": name },
            "seq": seq,
        });
        if let Some(uid) = uid {
            obj["metadata"]["uid"] = uid.into();
        }
        for (key, value) in ["a", "b"].into_iter().zip(labels) {
            if let Some(value) = value {
                obj["metadata"]["labels"][key] = value.into();
            }
        }
        with_arrays(&mut obj, arrays);
        obj
    }

    fn version(&self, seq: u64) -> Self {
        let mut obj = self.clone();
        obj["seq"] = seq.into();
        obj
    }

    fn relabel(&self, labels: Labels, seq: u64) -> Self {
        let mut obj = self.version(seq);
        match json_labels(labels) {
            // Creates `metadata` if there was none (its identity still reads as empty).
            Some(labels) => obj["metadata"]["labels"] = labels,
            None => {
                if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                    m.remove("labels");
                }
            }
        }
        obj
    }

    fn seq(&self) -> String {
        self["seq"].to_string()
    }

    /// The first identity field that is present, not `null` and not a string.
    fn metadata_error(&self) -> Option<ErrorKind> {
        let m = self.get("metadata")?;
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
}

// ---------------------------------------------------------------------------------
// The feeder.

const FEED_NAMES: &[&str] = &["a", "b", "c", "d", "/", "é"];

/// The labels `a` and `b` of a feeder object (keys of the index `ab`), picked by its
/// event's byte divided by the number of names.
const FEED_LABELS: &[[Option<&str>; 2]] = &[
    [None, None],
    [Some("a"), Some("b")],
    [Some("a"), None],
    [Some("a"), Some("a")],
    [Some(""), Some("b")],
    [Some("b"), Some("b")],
];

/// The lookups in `ab` checked after every event: every prefix of every key in
/// [`FEED_LABELS`].
const FEED_LOOKUPS: &[&[&str]] = &[
    &["a"],
    &["a", "b"],
    &["a", "a"],
    &[""],
    &["", "b"],
    &["b"],
    &["b", "b"],
];

/// What the feeder's store must hold of one object: its resourceVersion and labels.
type Held = (String, [Option<&'static str>; 2]);

/// The feeder's side: its store, and a model of what it must hold.
struct Feed {
    feeder: Feeder<ConfigMap, MemoryStore<ConfigMap>>,
    /// The store, read as a reconciler would (the feeder owns its writer).
    store: MemoryReader<ConfigMap>,
    /// name -> what the store must hold.
    state: BTreeMap<String, Held>,
    /// The relist being buffered, if one was begun by `Init`.
    relist: Option<BTreeMap<String, Held>>,
    stray: u64,
    /// Whether a relist has completed (the readers' readiness).
    ready: bool,
    seq: u64,
}

impl Feed {
    fn new() -> Self {
        // Two shards: a store of the default 1,024 costs its 1,024 tables to build and
        // to swap at every relist, for nothing the model could see. The secondary
        // indexes of the other stores.
        let writer = common::with_indexes(
            MemoryStore::<ConfigMap>::builder(2).shards(2),
            common::INDEXES,
        )
        .build()
        .expect("valid settings");
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
    /// resourceVersion, so no `Apply` is skipped as unchanged), with the labels picked
    /// by `i` too; with what the store must hold of it.
    fn object(&mut self, i: u8) -> (String, Held, ConfigMap) {
        self.seq += 1;
        let i = usize::from(i);
        let name = FEED_NAMES[i % FEED_NAMES.len()].to_owned();
        let labels = FEED_LABELS[(i / FEED_NAMES.len()) % FEED_LABELS.len()];
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some("ns".into());
        cm.metadata.name = Some(name.clone());
        cm.metadata.resource_version = Some(self.seq.to_string());
        let set: BTreeMap<String, String> = ["a", "b"]
            .into_iter()
            .zip(labels)
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        cm.metadata.labels = (!set.is_empty()).then_some(set);
        (name, (self.seq.to_string(), labels), cm)
    }

    /// Feeds `ops`: one alone with `Feeder::handle`, several as one burst with
    /// `Feeder::handle_batch` (which batches the `Apply`s and `Delete`s between relist
    /// events); the model takes them one by one either way, and the store must match
    /// it after.
    fn handle(&mut self, ops: &[WatchOp], what: &dyn fmt::Display) {
        let events: Vec<Event<ConfigMap>> = ops.iter().map(|&op| self.event(op)).collect();
        if let [_] = ops {
            events.into_iter().for_each(|e| self.feeder.handle(e));
        } else {
            self.feeder.handle_batch(events);
        }
        self.check(what);
    }

    /// The event of `op`, with the model updated for it.
    fn event(&mut self, op: WatchOp) -> Event<ConfigMap> {
        match op {
            WatchOp::Init => {
                self.relist = Some(BTreeMap::new());
                Event::Init
            }
            WatchOp::InitApply(i) => {
                let (name, held, obj) = self.object(i);
                match &mut self.relist {
                    Some(relist) => relist.insert(name, held),
                    None => {
                        self.stray += 1;
                        self.state.insert(name, held)
                    }
                };
                Event::InitApply(obj)
            }
            WatchOp::InitDone => {
                match self.relist.take() {
                    Some(relist) => {
                        self.state = relist;
                        self.ready = true;
                    }
                    None => self.stray += 1,
                }
                Event::InitDone
            }
            WatchOp::Apply(i) => {
                let (name, held, obj) = self.object(i);
                self.state.insert(name, held);
                Event::Apply(obj)
            }
            WatchOp::Delete(i) => {
                // Its labels may differ from the stored version's: the store must
                // remove what it holds from the indexes, not what the event says.
                let (name, _, obj) = self.object(i);
                self.state.remove(&name);
                Event::Delete(obj)
            }
        }
    }

    fn check(&self, what: &dyn fmt::Display) {
        // (name, resourceVersion) of each object, in order.
        let seen = |objects: &[Arc<ConfigMap>]| -> Vec<(String, String)> {
            objects
                .iter()
                .map(|o| {
                    (
                        o.metadata.name.clone().unwrap_or_default(),
                        o.metadata.resource_version.clone().unwrap_or_default(),
                    )
                })
                .collect()
        };
        let want = |filter: &dyn Fn(&[Option<&str>; 2]) -> bool| -> Vec<(String, String)> {
            self.state
                .iter()
                .filter(|(_, (_, labels))| filter(labels))
                .map(|(name, (rv, _))| (name.clone(), rv.clone()))
                .collect()
        };
        let all = want(&|_| true);
        assert_eq!(
            seen(&self.store.list().to_vec()),
            all,
            "{what}: the fed store differs from the model"
        );
        let by_ns = self.store.get_by("ns", &["ns"]).expect("a known index");
        assert_eq!(seen(&by_ns), all, "{what}: the fed store's get_by(\"ns\")");
        for &prefix in FEED_LOOKUPS {
            let got = self.store.get_by("ab", prefix).expect("a known index");
            let want = want(&|labels| {
                labels.iter().all(Option::is_some)
                    && prefix.iter().zip(labels).all(|(p, l)| Some(*p) == *l)
            });
            assert_eq!(
                seen(&got),
                want,
                "{what}: the fed store's get_by(\"ab\", {prefix:?})"
            );
        }
        if let Err(e) = self.store.validate() {
            panic!("{what}: validate() of the fed store: {e}");
        }
        assert_eq!(
            self.feeder.status().stats().stray_relist_events,
            self.stray,
            "{what}: stray relist events"
        );
        assert_eq!(self.store.is_ready(), self.ready, "{what}: readiness");
    }
}

// ---------------------------------------------------------------------------------

fuzz_target!(|input: Input| {
    let store: MemoryStore<Value> = common::store(&input);
    // Built on the first `Watch` operation only.
    let mut feed: Option<Feed> = None;
    let mut watch = |events: &[WatchOp], what: &dyn fmt::Display| {
        feed.get_or_insert_with(Feed::new).handle(events, what);
    };
    common::run(&store, &input, LIMITS, Some(&mut watch));
});
