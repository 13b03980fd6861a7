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

mod select {
    use super::*;
    use k8s_store::{LabelIndex, Selector};
    use std::collections::BTreeMap;

    fn labels_of(o: &ConfigMap) -> BTreeMap<String, String> {
        o.metadata.labels.clone().unwrap_or_default()
    }

    /// 300 objects in 3 namespaces, with `app` (5 values), `tier` (3), and every
    /// seventh object without labels.
    fn filled(which: Option<LabelIndex>) -> MemoryStore<ConfigMap> {
        let mut b = MemoryStore::builder(2);
        if let Some(w) = which {
            b = b.label_index(w);
        }
        let s = b.build().unwrap();
        for i in 0..300 {
            let ns = format!("ns{}", i % 3);
            let name = format!("o{i:03}");
            let app = format!("app{}", i % 5);
            let tier = ["api", "web", "db"][i % 3 / 2 + i % 2];
            let labels: Vec<(&str, &str)> = if i % 7 == 0 {
                Vec::new()
            } else {
                vec![("app", &app), ("tier", tier)]
            };
            s.add(labelled(&ns, &name, &labels), &[&ns, &name]).unwrap();
        }
        s.validate().unwrap();
        s
    }

    const SELECTORS: &[&str] = &[
        "app=app1",
        "app=app1,tier=web",
        "app in (app1,app3),tier!=db",
        "tier in (api)",
        "app",
        "!app",
        "app!=app2",
        "app notin (app0,app1)",
        "app=none",
        "app in (none,app4)",
        "",
        "tier=web,app",
    ];

    #[test]
    fn answers_every_selector_as_a_scan_does_in_order() {
        for which in [
            None,
            Some(LabelIndex::All),
            Some(LabelIndex::keys(["tier"])),
        ] {
            let s = filled(which.clone());
            let all = s.list().to_vec();
            for text in SELECTORS {
                let sel: Selector = text.parse().unwrap();
                let want: Vec<_> = all.iter().filter(|o| sel.matches(&labels_of(o))).collect();
                let got = s.select(&sel);
                assert_eq!(
                    names(&got),
                    names(&want.iter().map(|o| Arc::clone(o)).collect::<Vec<_>>()),
                    "{text:?} with {which:?}"
                );
                for ns in ["ns0", "ns2", "absent"] {
                    let want_ns: Vec<_> = want
                        .iter()
                        .filter(|o| o.metadata.namespace.as_deref() == Some(ns))
                        .map(|o| Arc::clone(o))
                        .collect();
                    assert_eq!(
                        names(&s.select_in(ns, &sel)),
                        names(&want_ns),
                        "{text:?} in {ns} with {which:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn counts_indexed_queries_and_scans() {
        let s = filled(Some(LabelIndex::keys(["app"])));
        let q = |t: &str| s.select(&t.parse().unwrap()).len();
        q("app=app1");
        q("app in (app1,app2)");
        q("tier=web,app=app3");
        q("app,app=app4");
        assert_eq!(s.select_stats().indexed, 4);
        assert_eq!(s.select_stats().scans, 0);
        // Not covered by the index, or no term that narrows: scans.
        q("tier=web");
        q("app!=app1");
        q("app");
        q("");
        assert_eq!(s.select_stats().scans, 4);
        let plain = filled(None);
        plain.select(&"app=app1".parse().unwrap());
        assert_eq!(plain.select_stats().scans, 1);
        assert_eq!(plain.select_stats().indexed, 0);
    }

    #[test]
    fn follows_objects_as_their_labels_change() {
        let s = filled(Some(LabelIndex::All));
        let sel: Selector = "app=moved".parse().unwrap();
        assert!(s.select(&sel).is_empty());
        add(&s, labelled("ns1", "o001", &[("app", "moved")]));
        assert_eq!(names(&s.select(&sel)), ["ns1/o001"]);
        assert!(!names(&s.select(&"app=app1".parse().unwrap())).contains(&"ns1/o001".to_string()));
        s.remove(&labelled("ns1", "o001", &[])).unwrap();
        s.validate().unwrap();
        assert!(s.select(&sel).is_empty());
    }

    #[test]
    fn the_label_index_is_not_a_named_index() {
        let s = filled(Some(LabelIndex::All));
        assert_eq!(s.index_names().count(), 0);
        assert!(matches!(
            s.get_by("labels", &["app"]).unwrap_err().kind,
            ErrorKind::UnknownIndex { .. }
        ));
    }
}

mod multi_valued {
    use super::*;
    use k8s_openapi::api::networking::v1::{Ingress, IngressSpec, IngressTLS};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
    use k8s_store::MAX_ENTRIES_PER_OBJECT;

    fn ingress(ns: &str, name: &str, secrets: &[&str]) -> Arc<Ingress> {
        let mut i = Ingress::default();
        i.metadata.namespace = Some(ns.into());
        i.metadata.name = Some(name.into());
        i.spec = Some(IngressSpec {
            tls: Some(
                secrets
                    .iter()
                    .map(|s| IngressTLS {
                        secret_name: Some(s.to_string()),
                        hosts: None,
                    })
                    .collect(),
            ),
            ..IngressSpec::default()
        });
        Arc::new(i)
    }

    fn by_secret() -> MemoryStore<Ingress> {
        MemoryStore::builder(2)
            .index(
                "by_tls_secret",
                Indexer::new(["metadata.namespace", "spec.tls[*].secretName"]).unwrap(),
            )
            .build()
            .unwrap()
    }

    fn put(s: &MemoryStore<Ingress>, i: Arc<Ingress>) {
        let keys = [
            i.metadata.namespace.clone().unwrap(),
            i.metadata.name.clone().unwrap(),
        ];
        s.add(i, &keys).unwrap();
        s.validate().unwrap();
    }

    fn found(s: &MemoryStore<Ingress>, keys: &[&str]) -> Vec<String> {
        s.get_by("by_tls_secret", keys)
            .unwrap()
            .iter()
            .map(|i| i.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn an_object_is_found_once_under_each_of_its_values() {
        let s = by_secret();
        put(&s, ingress("a", "web", &["tls-a", "tls-b", "tls-a"]));
        put(&s, ingress("a", "api", &["tls-b"]));
        put(&s, ingress("a", "none", &[]));
        assert_eq!(found(&s, &["a", "tls-a"]), ["web"]);
        assert_eq!(found(&s, &["a", "tls-b"]), ["api", "web"]);
        // The prefix: each object once, however many of its keys share it.
        assert_eq!(found(&s, &["a"]), ["api", "web"]);
        assert!(found(&s, &["b", "tls-a"]).is_empty());
    }

    #[test]
    fn an_object_gains_and_loses_values_of_an_array() {
        let s = by_secret();
        put(&s, ingress("a", "web", &["x", "y"]));
        put(&s, ingress("a", "web", &["y", "z"]));
        assert!(found(&s, &["a", "x"]).is_empty());
        assert_eq!(found(&s, &["a", "y"]), ["web"]);
        assert_eq!(found(&s, &["a", "z"]), ["web"]);
        put(&s, ingress("a", "web", &[]));
        assert!(found(&s, &["a"]).is_empty());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn too_many_values_refuse_the_write_naming_the_object_and_the_index() {
        let s = by_secret();
        put(&s, ingress("a", "web", &["old"]));
        let many: Vec<String> = (0..=MAX_ENTRIES_PER_OBJECT)
            .map(|i| format!("s{i}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = s
            .update(ingress("a", "web", &many), &["a", "web"])
            .unwrap_err();
        let ErrorKind::TooManyValues(t) = &e.kind else {
            panic!("expected TooManyValues, got {e}");
        };
        assert_eq!(t.index.as_deref(), Some("by_tls_secret"));
        assert_eq!(t.object, "a/web");
        assert_eq!(t.found, MAX_ENTRIES_PER_OBJECT + 1);
        let msg = e.to_string();
        assert!(
            msg.contains("by_tls_secret") && msg.contains("a/web"),
            "{msg}"
        );
        // Nothing changed: the old version is still stored and indexed.
        assert_eq!(found(&s, &["a", "old"]), ["web"]);
        s.validate().unwrap();
        // At the limit it is accepted.
        let at_limit = &many[..MAX_ENTRIES_PER_OBJECT];
        s.update(ingress("a", "web", at_limit), &["a", "web"])
            .unwrap();
        s.validate().unwrap();
        assert_eq!(found(&s, &["a"]), ["web"]);
        assert_eq!(found(&s, &["a", "s7"]), ["web"]);
    }

    #[test]
    fn pods_by_owner_uid() {
        let s = MemoryStore::<Pod>::builder(2)
            .index(
                "by_owner",
                Indexer::new(["metadata.ownerReferences[*].uid"]).unwrap(),
            )
            .build()
            .unwrap();
        for (name, owners) in [
            ("p1", vec!["rs-1"]),
            ("p2", vec!["rs-1", "job-9"]),
            ("p3", vec![]),
        ] {
            let mut p = Pod::default();
            p.metadata.namespace = Some("ns".into());
            p.metadata.name = Some(name.into());
            p.metadata.owner_references = Some(
                owners
                    .iter()
                    .map(|uid| OwnerReference {
                        uid: uid.to_string(),
                        ..OwnerReference::default()
                    })
                    .collect(),
            );
            s.add(Arc::new(p), &["ns", name]).unwrap();
        }
        s.validate().unwrap();
        let owned = |uid: &str| -> Vec<String> {
            s.get_by("by_owner", &[uid])
                .unwrap()
                .iter()
                .map(|p| p.metadata.name.clone().unwrap())
                .collect()
        };
        assert_eq!(owned("rs-1"), ["p1", "p2"]);
        assert_eq!(owned("job-9"), ["p2"]);
        assert!(owned("rs-2").is_empty());
    }
}

mod fed {
    use super::*;
    use k8s_store::watch::{FeedOptions, Feeder};
    use kube::runtime::watcher::Event;

    /// A ConfigMap whose `data` (indexed by `by_data`, which takes scalars) is a map
    /// when `bad`, and absent otherwise.
    fn cm(name: &str, app: &str, bad: bool) -> ConfigMap {
        let mut c = (*labelled("ns", name, &[("app", app)])).clone();
        if bad {
            c.data = Some([("k".to_string(), "v".to_string())].into());
        }
        c
    }

    #[test]
    fn an_object_its_indexes_cannot_read_is_skipped_not_the_batch_or_the_relist() {
        let store = Arc::new(
            MemoryStore::<ConfigMap>::builder(2)
                .index("by_app", Indexer::new(["metadata.labels['app']"]).unwrap())
                .index("by_data", Indexer::new(["data"]).unwrap())
                .build()
                .unwrap(),
        );
        let indexer = Indexer::new(["metadata.namespace", "metadata.name"]).unwrap();
        let mut feeder = Feeder::new(Arc::clone(&store), indexer, FeedOptions::new("t")).unwrap();
        let status = feeder.status();
        // A relist with one object the store cannot index: the others are swapped in.
        feeder.handle(Event::Init);
        feeder.handle(Event::InitApply(cm("a", "web", false)));
        feeder.handle(Event::InitApply(cm("b", "web", true)));
        feeder.handle(Event::InitApply(cm("c", "web", false)));
        feeder.handle(Event::InitDone);
        assert!(status.is_ready());
        assert_eq!(
            names(&store.get_by("by_app", &["web"]).unwrap()),
            ["ns/a", "ns/c"]
        );
        assert_eq!(status.stats().index_errors, 1);
        // A burst: the bad one skipped (and the stored version it replaces removed),
        // the rest written as one batch.
        feeder.handle_batch([
            Event::Apply(cm("d", "web", false)),
            Event::Apply(cm("a", "web", true)),
            Event::Apply(cm("e", "db", false)),
        ]);
        store.validate().unwrap();
        assert_eq!(
            names(&store.get_by("by_app", &["web"]).unwrap()),
            ["ns/c", "ns/d"]
        );
        assert_eq!(names(&store.get_by("by_app", &["db"]).unwrap()), ["ns/e"]);
        assert_eq!(status.stats().index_errors, 2);
        assert_eq!(status.stats().store_errors, 0);
        // One event on its own: the same.
        feeder.handle(Event::Apply(cm("c", "web", true)));
        assert_eq!(names(&store.get_by("by_app", &["web"]).unwrap()), ["ns/d"]);
        assert_eq!(status.stats().index_errors, 3);
        store.validate().unwrap();
    }

    #[test]
    fn a_multi_valued_indexer_cannot_be_a_watch_key() {
        let store = MemoryStore::<ConfigMap>::new(1).unwrap();
        let e = Feeder::new(
            store,
            Indexer::new(["metadata.finalizers[*]"]).unwrap(),
            FeedOptions::new("t"),
        )
        .expect_err("refused");
        assert!(matches!(e.kind, ErrorKind::InvalidSetting(_)), "{e}");
        assert!(e.to_string().contains("secondary index"), "{e}");
    }
}
