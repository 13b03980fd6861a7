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
//! `validate()` runs every `LIMITS.validate_every` (24) operations, after every
//! `Replace` and `Clear` (which rebuild the whole state), at the end and once the store
//! is emptied. An input runs at most `LIMITS.ops` (48) operations; a `Replace` takes at
//! most `LIMITS.replace` (32) items and a `Batch` at most `LIMITS.batch` (12) changes,
//! and the objects `Bulk` operations add and the changes `Batch` operations make come
//! to at most `LIMITS.bulk` (12) per input in all. The store has two or four shards.
//! (Reading a JSON object's metadata is a chain of map lookups that the fuzzer's
//! instrumentation makes costly, about 10 µs a write and 7 µs an object per
//! `validate()`: larger stores would bring this target down to a few hundred
//! executions a second. The trees' splits and merges, which need more than 32 objects,
//! are `differential_typed`'s job.)
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
//! events as one batch: the model still takes them one by one. The fed store is
//! compared with the model after every `Watch` and every burst; it has two shards and
//! is built by an input's first `Watch` or `WatchBurst` operation.

#![no_main]

mod common;

use std::collections::BTreeMap;
use std::fmt;

use common::{ALPHABET, Field, FuzzObject, Input, Limits, Meta, N, ObjSpec, WatchOp};
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

impl FuzzObject for Value {
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

    fn generate(spec: ObjSpec, seq: u64) -> Self {
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
        // The body's key sorts after `metadata`, so that reading metadata compares
        // one key less (each comparison is traced by the fuzzer).
        let mut obj = json!({ "seq": seq });
        // An object whose metadata is all absent sometimes has no metadata at all.
        if !m.is_empty() || seq.is_multiple_of(2) {
            obj["metadata"] = Value::Object(m);
        }
        obj
    }

    fn named(namespace: &str, name: &str, uid: Option<String>, seq: u64) -> Self {
        let mut obj = json!({
            "metadata": { "namespace": namespace, "name": name },
            "seq": seq,
        });
        if let Some(uid) = uid {
            obj["metadata"]["uid"] = uid.into();
        }
        obj
    }

    fn version(&self, seq: u64) -> Self {
        let mut obj = self.clone();
        obj["seq"] = seq.into();
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
        // Two shards: a store of the default 1,024 costs its 1,024 tables to build and
        // to swap at every relist, for nothing the model could see.
        let writer = MemoryStore::<ConfigMap>::builder(2)
            .shards(2)
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
                let (name, obj) = self.object(i);
                let rv = self.seq.to_string();
                match &mut self.relist {
                    Some(relist) => relist.insert(name, rv),
                    None => {
                        self.stray += 1;
                        self.state.insert(name, rv)
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
                let (name, obj) = self.object(i);
                self.state.insert(name, self.seq.to_string());
                Event::Apply(obj)
            }
            WatchOp::Delete(i) => {
                let (name, obj) = self.object(i);
                self.state.remove(&name);
                Event::Delete(obj)
            }
        }
    }

    fn check(&self, what: &dyn fmt::Display) {
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

fuzz_target!(|input: Input| {
    let store: MemoryStore<Value> = MemoryStore::<Value>::builder(input.num_keys())
        .shards(input.shards())
        .build()
        .expect("valid settings");
    // Built on the first `Watch` operation only.
    let mut feed: Option<Feed> = None;
    let mut watch = |events: &[WatchOp], what: &dyn fmt::Display| {
        feed.get_or_insert_with(Feed::new).handle(events, what);
    };
    common::run(&store, &input, LIMITS, Some(&mut watch));
});
