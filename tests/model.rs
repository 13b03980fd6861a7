//! Random operation sequences against a simple model (a BTreeMap), comparing every
//! result including order, with `validate()` after every step.
//!
//! Every store has two secondary indexes beside its primary key: `ab`, by the labels
//! `a` and `b` (an object without both is in no entry), `ns`, by namespace, `tags`, by
//! each distinct finalizer (a multi-valued path: 0 to 3 of them, duplicates included)
//! and the namespace, and a
//! label index of the key `a` (so that selectors on `a` use it and those on `b` alone
//! scan). The model answers their lookups and selectors by a scan.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::json_obj;
use k8s_store::{
    Batch, ErrorKind, Indexer, LabelIndex, MemoryStore, Operation, Requirement, Selector,
};
use proptest::prelude::*;
use serde_json::Value;

/// A small alphabet with the characters that broke the original: `/`, empty, NUL,
/// multibyte.
const ALPHABET: &[&str] = &["", "/", "a", "a/b", "b/c", "b", "\0", "é", "日本", ":"];

#[derive(Debug, Clone)]
struct Obj {
    ns: String,
    name: String,
    uid: String,
    /// The labels `a` and `b`, when set.
    a: Option<String>,
    b: Option<String>,
    /// `metadata.finalizers`, duplicates and all.
    tags: Vec<String>,
}

impl Obj {
    /// (namespace, name, uid): the result order, and (by construction) unique per identity.
    fn order(&self) -> (String, String, String) {
        (self.ns.clone(), self.name.clone(), self.uid.clone())
    }
    /// UID when set, else (namespace, name).
    fn identity(&self) -> (bool, String, String) {
        if self.uid.is_empty() {
            (false, self.ns.clone(), self.name.clone())
        } else {
            (true, self.uid.clone(), String::new())
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(Obj, Vec<String>),
    Get(Vec<String>),
    /// A lookup in a secondary index (`ab`, `ns`, or one the store does not have).
    GetBy(&'static str, Vec<String>),
    /// A selector query, in one namespace or all.
    Select(Option<String>, Selector),
    Delete(Vec<String>),
    Remove(Obj),
    List,
    Replace(Vec<(Obj, Vec<String>)>),
    Clear,
    /// Upserts (`Some(keys)`) and removals (`None`) applied as one batch.
    Batch(Vec<(Obj, Option<Vec<String>>)>),
}

fn s() -> impl Strategy<Value = String> {
    proptest::sample::select(ALPHABET).prop_map(str::to_owned)
}

/// A requirement on the label `a` or `b`, with values a selector can hold.
fn requirement() -> impl Strategy<Value = Requirement> {
    let key = proptest::sample::select(&["a", "b"][..]).prop_map(str::to_owned);
    let value = proptest::sample::select(&["", "a", "b"][..]).prop_map(str::to_owned);
    let values = proptest::collection::btree_set(value.clone(), 1..3);
    prop_oneof![
        (key.clone(), value.clone()).prop_map(|(key, value)| Requirement::Equals { key, value }),
        (key.clone(), value).prop_map(|(key, value)| Requirement::NotEquals { key, value }),
        (key.clone(), values.clone()).prop_map(|(key, values)| Requirement::In { key, values }),
        (key.clone(), values).prop_map(|(key, values)| Requirement::NotIn { key, values }),
        key.clone().prop_map(|key| Requirement::Exists { key }),
        key.prop_map(|key| Requirement::DoesNotExist { key }),
    ]
}

fn label() -> impl Strategy<Value = Option<String>> {
    prop_oneof![1 => Just(None), 4 => s().prop_map(Some)]
}

fn obj() -> impl Strategy<Value = Obj> {
    // uids from a tiny set so that equal uids with different names happen.
    (
        s(),
        s(),
        proptest::sample::select(&["", "", "u1", "u2"][..]),
        label(),
        label(),
        proptest::collection::vec(s(), 0..4),
    )
        .prop_map(|(ns, name, uid, a, b, tags)| Obj {
            ns,
            name,
            uid: uid.to_owned(),
            a,
            b,
            tags,
        })
}

fn keys(n: usize) -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        8 => proptest::collection::vec(s(), n),
        1 => proptest::collection::vec(s(), 0..=n + 1),
    ]
}

fn op(n: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (obj(), keys(n), any::<bool>()).prop_map(|(o, k, own)| {
            let k = own_namespace_first(&o, k, own);
            Op::Add(o, k)
        }),
        6 => proptest::collection::vec(s(), 0..=n + 1).prop_map(Op::Get),
        6 => (
            proptest::sample::select(&["ab", "ab", "ns", "tags", "tags", "nope"][..]),
            proptest::collection::vec(s(), 0..=3)
        )
            .prop_map(|(i, k)| Op::GetBy(i, k)),
        4 => (
            proptest::option::of(s()),
            proptest::collection::vec(requirement(), 0..3)
        )
            .prop_map(|(ns, reqs)| Op::Select(ns, Selector::from_requirements(reqs).unwrap())),
        2 => keys(n).prop_map(Op::Delete),
        4 => obj().prop_map(Op::Remove),
        2 => Just(Op::List),
        1 => proptest::collection::vec((obj(), keys(n), any::<bool>()), 0..6).prop_map(|items| {
            Op::Replace(
                items
                    .into_iter()
                    .map(|(o, k, own)| {
                        let k = own_namespace_first(&o, k, own);
                        (o, k)
                    })
                    .collect(),
            )
        }),
        1 => Just(Op::Clear),
        3 => proptest::collection::vec(
            (obj(), prop_oneof![3 => keys(n).prop_map(Some), 1 => Just(None)], any::<bool>()),
            0..12,
        )
        .prop_map(|items| {
            Op::Batch(
                items
                    .into_iter()
                    .map(|(o, k, own)| {
                        let k = k.map(|k| own_namespace_first(&o, k, own));
                        (o, k)
                    })
                    .collect(),
            )
        }),
    ]
}

/// `keys` with its first component replaced by `o`'s namespace when `own` (stores
/// keyed by namespace first keep no list of their own: both kinds of store, and the
/// switches between them, are exercised).
fn own_namespace_first(o: &Obj, mut keys: Vec<String>, own: bool) -> Vec<String> {
    if own && let Some(first) = keys.first_mut() {
        first.clone_from(&o.ns);
    }
    keys
}

fn to_value(o: &Obj) -> Arc<Value> {
    let mut v = Arc::unwrap_or_clone(json_obj(&o.ns, &o.name, &o.uid));
    for (k, l) in [("a", &o.a), ("b", &o.b)] {
        if let Some(l) = l {
            v["metadata"]["labels"][k] = Value::from(l.as_str());
        }
    }
    if !o.tags.is_empty() {
        v["metadata"]["finalizers"] = Value::from(o.tags.clone());
    }
    Arc::new(v)
}

/// `o`'s keys in the secondary index `index` (none, one, or one per distinct tag).
fn secondary_keys(o: &Obj, index: &str) -> Vec<Vec<String>> {
    match index {
        "ab" => match (&o.a, &o.b) {
            (Some(a), Some(b)) => vec![vec![a.clone(), b.clone()]],
            _ => Vec::new(),
        },
        "ns" => vec![vec![o.ns.clone()]],
        "tags" => o
            .tags
            .iter()
            .map(|t| vec![t.clone(), o.ns.clone()])
            .collect(),
        _ => Vec::new(),
    }
}

fn meta(v: &Value, f: &str) -> String {
    v["metadata"][f].as_str().unwrap_or("").to_owned()
}

fn seen(v: &[Arc<Value>]) -> Vec<(String, String, String)> {
    v.iter()
        .map(|o| (meta(o, "namespace"), meta(o, "name"), meta(o, "uid")))
        .collect()
}

/// identity -> (object, keys)
type Model = BTreeMap<(bool, String, String), (Obj, Vec<String>)>;

fn model_get(m: &Model, prefix: &[String]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = m
        .values()
        .filter(|(_, k)| k.starts_with(prefix))
        .map(|(o, _)| o.order())
        .collect();
    out.sort();
    out
}

fn run(n: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let store = MemoryStore::<Value>::builder(n)
        .shards(2)
        .index(
            "ab",
            Indexer::new(["metadata.labels['a']", "metadata.labels['b']"]).unwrap(),
        )
        .index("ns", Indexer::new(["metadata.namespace"]).unwrap())
        .index(
            "tags",
            Indexer::new(["metadata.finalizers[*]", "metadata.namespace"]).unwrap(),
        )
        .label_index(LabelIndex::keys(["a"]))
        .build()
        .unwrap();
    let mut model = Model::new();
    let mut snapshots = Vec::new();
    for op in ops {
        match op {
            Op::Add(o, k) => {
                let r = store.add(to_value(&o), &k);
                if k.len() == n {
                    prop_assert!(r.is_ok());
                    model.insert(o.identity(), (o, k));
                } else {
                    prop_assert_eq!(
                        r.unwrap_err().kind,
                        ErrorKind::KeyCount {
                            expected: n,
                            given: k.len()
                        }
                    );
                }
            }
            Op::Get(k) => {
                let r = store.get(&k);
                if k.is_empty() || k.len() > n {
                    prop_assert_eq!(
                        r.unwrap_err().kind,
                        ErrorKind::PrefixLength {
                            max: n,
                            given: k.len()
                        }
                    );
                } else {
                    let want = model_get(&model, &k);
                    prop_assert_eq!(seen(&r.unwrap()), want.clone(), "get {:?}", k);
                    // get_one on a full key: the one object, none, or how many share it.
                    if k.len() == n {
                        match (store.get_one(&k), want.len()) {
                            (Ok(None), 0) => {}
                            (Ok(Some(o)), 1) => prop_assert_eq!(seen(&[o]), want),
                            (Err(e), found) => {
                                prop_assert_eq!(e.kind, ErrorKind::NotUnique { found })
                            }
                            (r, found) => {
                                prop_assert!(false, "get_one {:?}: {:?} for {}", k, r, found)
                            }
                        }
                    }
                }
            }
            Op::GetBy(index, k) => {
                let r = store.get_by(index, &k);
                let max = match index {
                    "ab" | "tags" => Some(2),
                    "ns" => Some(1),
                    _ => None,
                };
                match max {
                    None => prop_assert_eq!(
                        r.unwrap_err().kind,
                        ErrorKind::UnknownIndex {
                            name: index.into(),
                            known: vec!["ab".into(), "ns".into(), "tags".into()]
                        }
                    ),
                    Some(max) if k.is_empty() || k.len() > max => prop_assert_eq!(
                        r.unwrap_err().kind,
                        ErrorKind::PrefixLength {
                            max,
                            given: k.len()
                        }
                    ),
                    Some(_) => {
                        let mut want: Vec<_> = model
                            .values()
                            .filter(|(o, _)| {
                                secondary_keys(o, index).iter().any(|sk| sk.starts_with(&k))
                            })
                            .map(|(o, _)| o.order())
                            .collect();
                        want.sort();
                        prop_assert_eq!(seen(&r.unwrap()), want, "get_by {} {:?}", index, k);
                    }
                }
            }
            Op::Select(ns, sel) => {
                let got = match &ns {
                    Some(ns) => store.select_in(ns, &sel),
                    None => store.select(&sel),
                };
                let mut want: Vec<_> = model
                    .values()
                    .filter(|(o, _)| ns.as_ref().is_none_or(|ns| *ns == o.ns))
                    .filter(|(o, _)| {
                        let labels: BTreeMap<String, String> = [("a", &o.a), ("b", &o.b)]
                            .into_iter()
                            .filter_map(|(k, v)| Some((k.to_owned(), v.clone()?)))
                            .collect();
                        sel.matches(&labels)
                    })
                    .map(|(o, _)| o.order())
                    .collect();
                want.sort();
                prop_assert_eq!(seen(&got), want, "select {:?} in {:?}", sel.to_string(), ns);
            }
            Op::Delete(k) => {
                let r = store.delete(&k);
                if k.len() == n {
                    let before = model.len();
                    model.retain(|_, (_, mk)| *mk != k);
                    prop_assert_eq!(r.unwrap(), before - model.len());
                } else {
                    prop_assert!(r.is_err());
                }
            }
            Op::Remove(o) => {
                prop_assert_eq!(
                    store.remove(&to_value(&o)).unwrap(),
                    model.remove(&o.identity()).is_some()
                );
            }
            Op::List => {
                let snap = store.list();
                let want: Vec<_> = {
                    let mut v: Vec<_> = model.values().map(|(o, _)| o.order()).collect();
                    v.sort();
                    v
                };
                prop_assert_eq!(seen(&snap.to_vec()), want.clone());
                prop_assert_eq!(store.len(), want.len());
                snapshots.push((snap, want));
            }
            Op::Replace(items) => {
                let r = store.replace(items.iter().map(|(o, k)| (to_value(o), k.clone())));
                if items.iter().all(|(_, k)| k.len() == n) {
                    prop_assert!(r.is_ok());
                    model.clear();
                    for (o, k) in items {
                        model.insert(o.identity(), (o, k));
                    }
                } else {
                    prop_assert!(r.is_err());
                }
            }
            Op::Clear => {
                store.clear();
                model.clear();
            }
            Op::Batch(changes) => {
                let mut batch = Batch::new();
                for (o, k) in &changes {
                    match k {
                        Some(k) => batch.upsert(to_value(o), k),
                        None => batch.remove(to_value(o)),
                    };
                }
                let r = store.apply(batch);
                let bad = changes
                    .iter()
                    .position(|(_, k)| k.as_ref().is_some_and(|k| k.len() != n));
                match bad {
                    Some(item) => {
                        let e = r.unwrap_err();
                        prop_assert_eq!(e.operation, Operation::Apply { item: item as u32 });
                        let given = changes[item].1.as_ref().map_or(0, Vec::len);
                        prop_assert_eq!(e.kind, ErrorKind::KeyCount { expected: n, given });
                    }
                    None => {
                        // The same changes one by one, on the model.
                        let (mut upserted, mut removed) = (0, 0);
                        for (o, k) in changes {
                            match k {
                                Some(k) => {
                                    upserted += 1;
                                    model.insert(o.identity(), (o, k));
                                }
                                None => {
                                    removed += usize::from(model.remove(&o.identity()).is_some())
                                }
                            }
                        }
                        let applied = r.unwrap();
                        prop_assert_eq!((applied.upserted, applied.removed), (upserted, removed));
                    }
                }
                let mut want: Vec<_> = model.values().map(|(o, _)| o.order()).collect();
                want.sort();
                prop_assert_eq!(seen(&store.list().to_vec()), want);
            }
        }
        store.validate().map_err(TestCaseError::fail)?;
    }
    // Snapshots taken along the way never changed.
    for (snap, want) in snapshots {
        prop_assert_eq!(seen(&snap.to_vec()), want);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn one_key(ops in proptest::collection::vec(op(1), 0..120)) {
        run(1, ops)?;
    }

    #[test]
    fn two_keys(ops in proptest::collection::vec(op(2), 0..120)) {
        run(2, ops)?;
    }

    #[test]
    fn three_keys(ops in proptest::collection::vec(op(3), 0..120)) {
        run(3, ops)?;
    }
}
