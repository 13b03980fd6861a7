//! Secondary indexes of a `MemoryStore`: the contract, case by case (the property model
//! in `tests/model.rs` drives them with random operations against a scan).

mod common;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec};
use k8s_store::{Batch, ErrorKind, Indexer, MemoryStore, Operation};

/// A ConfigMap with the labels given (`(key, value)` pairs).
fn labelled(ns: &str, name: &str, labels: &[(&str, &str)]) -> Arc<ConfigMap> {
    let mut c = ConfigMap::default();
    c.metadata.namespace = Some(ns.into());
    c.metadata.name = Some(name.into());
    if !labels.is_empty() {
        c.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
    }
    Arc::new(c)
}

fn names(objs: &[Arc<ConfigMap>]) -> Vec<String> {
    objs.iter()
        .map(|o| {
            format!(
                "{}/{}",
                o.metadata.namespace.as_deref().unwrap_or(""),
                o.metadata.name.as_deref().unwrap_or("")
            )
        })
        .collect()
}

/// A store keyed by (namespace, name) with `by_app` (the `app` label) and `by_team_tier`
/// (the `team` and `tier` labels).
fn store() -> MemoryStore<ConfigMap> {
    MemoryStore::builder(2)
        .index("by_app", Indexer::new(["metadata.labels['app']"]).unwrap())
        .index(
            "by_team_tier",
            Indexer::new(["metadata.labels['team']", "metadata.labels['tier']"]).unwrap(),
        )
        .build()
        .unwrap()
}

fn add(s: &MemoryStore<ConfigMap>, o: Arc<ConfigMap>) {
    let keys = [
        o.metadata.namespace.clone().unwrap_or_default(),
        o.metadata.name.clone().unwrap_or_default(),
    ];
    s.add(o, &keys).unwrap();
    s.validate().unwrap();
}

#[test]
fn finds_objects_by_a_secondary_key_in_order() {
    let s = store();
    add(&s, labelled("b", "x", &[("app", "web")]));
    add(&s, labelled("a", "y", &[("app", "web")]));
    add(&s, labelled("a", "x", &[("app", "db")]));
    add(&s, labelled("a", "z", &[("app", "web")]));
    let r = s.reader();
    assert_eq!(
        names(&r.get_by("by_app", &["web"]).unwrap()),
        ["a/y", "a/z", "b/x"]
    );
    assert_eq!(names(&r.get_by("by_app", &["db"]).unwrap()), ["a/x"]);
    assert!(r.get_by("by_app", &["cache"]).unwrap().is_empty());
}

#[test]
fn answers_prefix_lookups_on_a_composite_secondary_key() {
    let s = store();
    add(&s, labelled("a", "1", &[("team", "red"), ("tier", "api")]));
    add(&s, labelled("a", "2", &[("team", "red"), ("tier", "web")]));
    add(&s, labelled("a", "3", &[("team", "blue"), ("tier", "api")]));
    assert_eq!(
        names(&s.get_by("by_team_tier", &["red"]).unwrap()),
        ["a/1", "a/2"]
    );
    assert_eq!(
        names(&s.get_by("by_team_tier", &["red", "web"]).unwrap()),
        ["a/2"]
    );
    assert_eq!(
        names(&s.get_by("by_team_tier", &["blue", "api"]).unwrap()),
        ["a/3"]
    );
}

#[test]
fn an_object_missing_a_field_is_in_no_entry_of_that_index_only() {
    let s = store();
    // No `tier`: not in by_team_tier at all (not even under the prefix `red`), but in
    // the primary key and in by_app.
    add(&s, labelled("a", "1", &[("team", "red"), ("app", "web")]));
    assert!(s.get_by("by_team_tier", &["red"]).unwrap().is_empty());
    assert_eq!(names(&s.get_by("by_app", &["web"]).unwrap()), ["a/1"]);
    assert_eq!(names(&s.get(&["a", "1"]).unwrap()), ["a/1"]);
}

#[test]
fn moves_an_object_between_values_and_leaves_nothing_behind() {
    let s = store();
    add(&s, labelled("a", "1", &[("app", "web")]));
    let before = s.list();
    add(&s, labelled("a", "1", &[("app", "db")]));
    assert!(s.get_by("by_app", &["web"]).unwrap().is_empty());
    assert_eq!(names(&s.get_by("by_app", &["db"]).unwrap()), ["a/1"]);
    // The snapshot taken before is unchanged.
    assert_eq!(
        before
            .iter()
            .next()
            .unwrap()
            .metadata
            .labels
            .as_ref()
            .unwrap()["app"],
        "web"
    );
}

#[test]
fn an_object_gains_and_loses_its_values() {
    let s = store();
    add(&s, labelled("a", "1", &[]));
    assert!(s.get_by("by_app", &["web"]).unwrap().is_empty());
    add(&s, labelled("a", "1", &[("app", "web")]));
    assert_eq!(names(&s.get_by("by_app", &["web"]).unwrap()), ["a/1"]);
    add(&s, labelled("a", "1", &[]));
    assert!(s.get_by("by_app", &["web"]).unwrap().is_empty());
}

#[test]
fn an_update_under_the_same_value_replaces_the_version_in_the_index() {
    let s = store();
    add(&s, labelled("a", "1", &[("app", "web"), ("v", "1")]));
    add(&s, labelled("a", "1", &[("app", "web"), ("v", "2")]));
    let found = s.get_by("by_app", &["web"]).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].metadata.labels.as_ref().unwrap()["v"], "2");
}

#[test]
fn removals_leave_every_index() {
    let s = store();
    add(&s, labelled("a", "1", &[("app", "web")]));
    add(&s, labelled("a", "2", &[("app", "web")]));
    add(&s, labelled("b", "3", &[("app", "web")]));
    assert!(s.remove(&labelled("a", "1", &[])).unwrap());
    s.validate().unwrap();
    assert_eq!(
        names(&s.get_by("by_app", &["web"]).unwrap()),
        ["a/2", "b/3"]
    );
    assert_eq!(s.delete(&["b", "3"]).unwrap(), 1);
    s.validate().unwrap();
    assert_eq!(names(&s.get_by("by_app", &["web"]).unwrap()), ["a/2"]);
    s.clear();
    s.validate().unwrap();
    assert!(s.get_by("by_app", &["web"]).unwrap().is_empty());
}

#[test]
fn a_batch_and_a_relist_keep_every_index() {
    let s = store();
    let mut batch = Batch::new();
    batch
        .upsert(labelled("a", "1", &[("app", "web")]), &["a", "1"])
        .upsert(labelled("a", "2", &[("app", "web")]), &["a", "2"])
        .upsert(labelled("a", "1", &[("app", "db")]), &["a", "1"])
        .remove(labelled("a", "2", &[]));
    s.apply(batch).unwrap();
    s.validate().unwrap();
    assert!(s.get_by("by_app", &["web"]).unwrap().is_empty());
    assert_eq!(names(&s.get_by("by_app", &["db"]).unwrap()), ["a/1"]);

    s.replace([
        (labelled("c", "9", &[("app", "web")]), vec!["c", "9"]),
        (labelled("b", "8", &[("app", "web")]), vec!["b", "8"]),
        (
            labelled("b", "7", &[("team", "red"), ("tier", "api")]),
            vec!["b", "7"],
        ),
    ])
    .unwrap();
    s.validate().unwrap();
    assert!(s.get_by("by_app", &["db"]).unwrap().is_empty());
    assert_eq!(
        names(&s.get_by("by_app", &["web"]).unwrap()),
        ["b/8", "c/9"]
    );
    assert_eq!(
        names(&s.get_by("by_team_tier", &["red", "api"]).unwrap()),
        ["b/7"]
    );
}

#[test]
fn odd_values_are_keys_like_any_other() {
    let s = store();
    for (i, v) in ["", "/", "a/b", "日本", "\0", "x\0y"].iter().enumerate() {
        add(&s, labelled("a", &i.to_string(), &[("app", v)]));
    }
    for (i, v) in ["", "/", "a/b", "日本", "\0", "x\0y"].iter().enumerate() {
        assert_eq!(
            names(&s.get_by("by_app", &[v]).unwrap()),
            [format!("a/{i}")],
            "value {v:?}"
        );
    }
}

#[test]
fn an_unknown_index_name_is_an_error_listing_the_names() {
    let s = store();
    let e = s.get_by("by_ap", &["web"]).unwrap_err();
    assert_eq!(e.operation, Operation::Get);
    assert_eq!(
        e.kind,
        ErrorKind::UnknownIndex {
            name: "by_ap".into(),
            known: vec!["by_app".into(), "by_team_tier".into()],
        }
    );
    assert!(e.to_string().contains("by_app, by_team_tier"), "{e}");
    let plain = MemoryStore::<ConfigMap>::new(2).unwrap();
    let e = plain.get_by("by_app", &["web"]).unwrap_err();
    assert!(e.to_string().contains("has none"), "{e}");
    assert_eq!(
        s.index_names().collect::<Vec<_>>(),
        ["by_app", "by_team_tier"]
    );
}

#[test]
fn a_wrong_key_count_is_an_error() {
    let s = store();
    let none: [&str; 0] = [];
    for keys in [&none[..], &["a", "b", "c"][..]] {
        assert_eq!(
            s.get_by("by_team_tier", keys).unwrap_err().kind,
            ErrorKind::PrefixLength {
                max: 2,
                given: keys.len()
            }
        );
    }
    assert_eq!(
        s.get_by("by_app", &["a", "b"]).unwrap_err().kind,
        ErrorKind::PrefixLength { max: 1, given: 2 }
    );
}

#[test]
fn index_names_must_be_given_and_distinct() {
    let e = MemoryStore::<ConfigMap>::builder(1)
        .index("", Indexer::new(["metadata.name"]).unwrap())
        .build()
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::InvalidSetting(_)), "{e}");
    let e = MemoryStore::<ConfigMap>::builder(1)
        .index("x", Indexer::new(["metadata.name"]).unwrap())
        .index("x", Indexer::new(["metadata.uid"]).unwrap())
        .build()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("two secondary indexes are named \"x\""),
        "{e}"
    );
}

#[test]
fn indexes_fields_outside_metadata() {
    let s = MemoryStore::<Pod>::builder(2)
        .index("by_node", Indexer::new(["spec.nodeName"]).unwrap())
        .build()
        .unwrap();
    for (name, node) in [
        ("p1", Some("n1")),
        ("p2", Some("n2")),
        ("p3", Some("n1")),
        ("p4", None),
    ] {
        let mut p = Pod::default();
        p.metadata.namespace = Some("ns".into());
        p.metadata.name = Some(name.into());
        p.spec = Some(PodSpec {
            node_name: node.map(Into::into),
            ..PodSpec::default()
        });
        s.add(Arc::new(p), &["ns", name]).unwrap();
    }
    s.validate().unwrap();
    let on_n1: Vec<_> = s
        .get_by("by_node", &["n1"])
        .unwrap()
        .iter()
        .map(|p| p.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(on_n1, ["p1", "p3"]);
    assert_eq!(s.len(), 4);
}

#[test]
fn a_key_that_does_not_read_refuses_the_write_and_changes_nothing() {
    // `data` is a map, not a scalar: no object can be indexed by it.
    let s = MemoryStore::<ConfigMap>::builder(2)
        .index("by_data", Indexer::new(["data"]).unwrap())
        .build()
        .unwrap();
    let mut c = (*labelled("a", "1", &[])).clone();
    c.data = Some([("k".to_string(), "v".to_string())].into());
    let c = Arc::new(c);
    let e = s.add(Arc::clone(&c), &["a", "1"]).unwrap_err();
    assert_eq!(e.operation, Operation::Add);
    assert!(matches!(e.kind, ErrorKind::NotAScalar { .. }), "{e}");
    assert!(s.is_empty());
    // In a batch: the change is named, and nothing of the batch is applied.
    let mut batch = Batch::new();
    batch
        .upsert(labelled("a", "0", &[]), &["a", "0"])
        .upsert(c, &["a", "1"]);
    let e = s.apply(batch).unwrap_err();
    assert_eq!(e.operation, Operation::Apply { item: 1 });
    assert!(s.is_empty());
    s.validate().unwrap();
}
