//! `MemoryStore<ConfigMap>` against the model of `differential` (see
//! `common/mod.rs`), with stores large enough for the persistent trees to split and
//! merge.
//!
//! The same operations, keys and checks as `differential`, on a typed object: every
//! result is compared with the model, order included (namespace, name, uid), and by
//! pointer; wrong key counts must return the documented error and change nothing;
//! batches (`MemoryStore::apply`, up to `LIMITS.batch` (12) upserts and removals) must
//! apply as the same changes one by one would, with the same counts, or be refused
//! whole; snapshots taken earlier must not change under later writes; the secondary
//! indexes of `common::INDEXES` (`ab`, by the labels `a` and `b` in `metadata.labels`,
//! `ns`, by namespace, and the multi-valued `fin`, by each finalizer, and `fo`, by
//! owner uids times finalizers, whose bound of 256 keys an object with 16 and 16
//! values meets, stored, and one with 16 and 17 exceeds, refused) are kept by every write path, checked
//! by `validate()` and queried by `GetBy` operations (known and unknown names, 0 to 3
//! components) against the model, a refused object's `TooManyValues` included; label
//! selectors, generated and raw, are compared with the model's evaluation through
//! `select` and `select_in`, with a label index or none (see `common/mod.rs`);
//! at the end every prefix of every stored key, and of every stored object's key in
//! each secondary index, is read back and the store is emptied key by key. What
//! differs is the budget: `Bulk` and `Batch` operations may add or change up to
//! `LIMITS.bulk` (34) objects per input in all (a `Replace` takes up to
//! `LIMITS.replace` (24) items), so that the trees of the store (the list, the prefix
//! groups, the members of a shared key, and the secondary indexes' groups, which
//! `Bulk` fills with one shared pair of labels or spread ones; their nodes hold 32
//! entries) split into two or more leaves and merge back as objects move and go, one
//! change at a time or many in one batch. A typed object's metadata is read through
//! plain fields, two to three times cheaper than a JSON object's map lookups under the
//! fuzzer's instrumentation, which is what makes such stores affordable at a couple of
//! thousand executions a second on 2 cores. (The secondary indexes, which every write
//! updates and every `validate()` checks, cost about two fifths of the executions on
//! the same inputs.) (`differential` keeps the JSON objects, their metadata of the
//! wrong type, and the watch feeder, with a smaller `Bulk` and `Batch` budget; a typed
//! object has no metadata of the wrong type, so `Number` and `null` fields and labels
//! read as absent here, a batch is refused for a wrong key count only, and `Watch`
//! operations are ignored.)
//!
//! `validate()` runs every `LIMITS.validate_every` (32) operations, after every
//! `Replace` and `Clear` (which rebuild the whole state), at the end and once the store
//! is emptied. An input runs at most `LIMITS.ops` (48) operations; a `Batch` makes at
//! most `LIMITS.batch` (12) changes. The store has two or four shards.

#![no_main]

mod common;

use std::collections::BTreeMap;

use common::{
    ALPHABET, Arrays, Elem, Field, FuzzObject, IndexDef, Input, Label, Labels, Limits, Meta, N,
    ObjSpec, Path,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_store::{ErrorKind, MemoryStore};
use libfuzzer_sys::fuzz_target;

const LIMITS: Limits = Limits {
    ops: 48,
    bulk: 34,
    replace: 24,
    batch: 12,
    validate_every: 32,
};

fn field(f: Field) -> Option<String> {
    match f {
        Field::Str(i) => Some(ALPHABET[usize::from(i) % N].to_owned()),
        Field::Absent | Field::Number | Field::Null => None,
    }
}

/// `metadata.labels` of `labels`: `None` if every label is absent, an empty map if each
/// is absent or `null` (a typed label has no `null` nor number: those read as absent).
fn labels_of(labels: Labels) -> Option<BTreeMap<String, String>> {
    let set: BTreeMap<String, String> = [("a", labels.a), ("b", labels.b)]
        .into_iter()
        .filter_map(|(k, f)| Some((k.to_owned(), field(f)?)))
        .collect();
    let any = [labels.a, labels.b]
        .iter()
        .any(|f| !matches!(f, Field::Absent));
    any.then_some(set)
}

/// The strings of the array `b` stands for (a typed array holds nothing else), if any.
fn strings(b: u8) -> Option<Vec<String>> {
    let elements = common::elements(b)?;
    Some(
        elements
            .into_iter()
            .filter_map(|e| match e {
                Elem::Str(s) => Some(s),
                _ => None,
            })
            .collect(),
    )
}

/// Gives `cm` the finalizers and owner references of `arrays` (`spec.items` is for JSON
/// objects only).
fn with_arrays(cm: &mut ConfigMap, arrays: Option<Arrays>) {
    let Some(arrays) = arrays else { return };
    cm.metadata.finalizers = strings(arrays.finalizers);
    cm.metadata.owner_references = strings(arrays.owners).map(|uids| {
        uids.into_iter()
            .map(|uid| OwnerReference {
                api_version: "v1".into(),
                kind: "K".into(),
                name: "o".into(),
                uid,
                ..OwnerReference::default()
            })
            .collect()
    });
}

/// The body's mark: the resourceVersion (a `MemoryStore` stores whatever it is given).
fn marked(mut cm: ConfigMap, seq: u64) -> ConfigMap {
    cm.metadata.resource_version = Some(seq.to_string());
    cm
}

impl FuzzObject for ConfigMap {
    const INDEXES: &'static [IndexDef] = common::INDEXES;

    fn meta(&self, field: Meta) -> &str {
        let m = &self.metadata;
        match field {
            Meta::Namespace => m.namespace.as_deref(),
            Meta::Name => m.name.as_deref(),
            Meta::Uid => m.uid.as_deref(),
        }
        .unwrap_or("")
    }

    fn label(&self, label: Label) -> Option<&str> {
        self.metadata
            .labels
            .as_ref()?
            .get(label.key())
            .map(String::as_str)
    }

    fn values(&self, path: Path) -> Result<Vec<String>, &'static str> {
        let m = &self.metadata;
        let one = |v: Option<&str>| v.map(str::to_owned).into_iter().collect();
        Ok(match path {
            Path::LabelA => one(self.label(Label::A)),
            Path::LabelB => one(self.label(Label::B)),
            Path::Namespace => one(Some(self.meta(Meta::Namespace))),
            Path::Finalizers => m.finalizers.iter().flatten().cloned().collect(),
            Path::OwnerUids => m
                .owner_references
                .iter()
                .flatten()
                .map(|r| r.uid.clone())
                .collect(),
            Path::Items => unreachable!("not an index of typed objects"),
        })
    }

    fn generate(spec: ObjSpec, seq: u64) -> Self {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = field(spec.namespace);
        cm.metadata.name = field(spec.name);
        cm.metadata.uid = field(spec.uid);
        cm.metadata.labels = labels_of(spec.labels);
        with_arrays(&mut cm, spec.arrays);
        marked(cm, seq)
    }

    fn named(
        namespace: &str,
        name: &str,
        uid: Option<String>,
        labels: [Option<&str>; 2],
        arrays: Option<Arrays>,
        seq: u64,
    ) -> Self {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some(namespace.to_owned());
        cm.metadata.name = Some(name.to_owned());
        cm.metadata.uid = uid;
        let set: BTreeMap<String, String> = ["a", "b"]
            .into_iter()
            .zip(labels)
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        cm.metadata.labels = (!set.is_empty()).then_some(set);
        with_arrays(&mut cm, arrays);
        marked(cm, seq)
    }

    fn version(&self, seq: u64) -> Self {
        marked(self.clone(), seq)
    }

    fn relabel(&self, labels: Labels, seq: u64) -> Self {
        let mut cm = self.clone();
        cm.metadata.labels = labels_of(labels);
        marked(cm, seq)
    }

    fn seq(&self) -> String {
        self.metadata.resource_version.clone().unwrap_or_default()
    }

    fn metadata_error(&self) -> Option<ErrorKind> {
        None
    }
}

fuzz_target!(|input: Input| {
    let store: MemoryStore<ConfigMap> = common::store(&input);
    common::run(&store, &input, LIMITS, None);
});
