//! The index contract of `MemoryStore`, rule by rule (DESIGN section 2).

mod common;

use std::sync::Arc;

use common::{cm, cm_v, json_obj, names, version};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_store::{ErrorKind, MemoryStore, Operation, Store};

fn store(n: usize) -> MemoryStore<ConfigMap> {
    let s = MemoryStore::<ConfigMap>::new(n).unwrap();
    s.validate().unwrap();
    s
}

#[test]
fn zero_keys_is_a_construction_error() {
    let err = MemoryStore::<ConfigMap>::new(0).unwrap_err();
    assert_eq!(err.kind, ErrorKind::ZeroKeys);
    assert_eq!(err.operation, Operation::Build);
    assert!(err.to_string().contains("num_keys = 0"), "{err}");
}

#[test]
fn shard_count_must_be_a_power_of_two() {
    for bad in [0, 1, 3, 12] {
        let err = MemoryStore::<ConfigMap>::builder(2)
            .shards(bad)
            .build()
            .unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::InvalidSetting(_)),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("power of two"), "{err}");
    }
    let s = MemoryStore::<ConfigMap>::builder(2)
        .shards(2)
        .build()
        .unwrap();
    s.add(cm("a", "b", None), &["a", "b"]).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(s.shards(), 2);
    assert!(format!("{s:?}").contains("shards: 2"), "{s:?}");
    // The default: at least 1024 shards, whatever the machine's core count.
    let shards = MemoryStore::<ConfigMap>::new(2).unwrap().shards();
    assert!(shards >= 1024 && shards.is_power_of_two(), "{shards}");
}

#[test]
fn absurd_key_and_shard_counts_are_errors_before_anything_is_allocated() {
    // Each of these used to panic ("capacity overflow") or abort the process on an
    // allocation of one tree per key depth or of 2^40 shards.
    for n in [k8s_store::MAX_KEYS + 1, 1 << 40, usize::MAX] {
        let err = MemoryStore::<ConfigMap>::new(n).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::TooManyKeys {
                max: k8s_store::MAX_KEYS,
                given: n
            }
        );
        assert_eq!(err.operation, Operation::Build);
        assert!(
            err.to_string().contains("at most 64 key components"),
            "{err}"
        );
        let err = k8s_store::Indexer::new(vec!["metadata.name"; n.min(1000)]).unwrap_err();
        assert!(matches!(err.kind, ErrorKind::TooManyKeys { .. }), "{err}");
    }
    let s = MemoryStore::<ConfigMap>::new(k8s_store::MAX_KEYS).unwrap();
    let keys: Vec<String> = (0..k8s_store::MAX_KEYS).map(|i| i.to_string()).collect();
    s.add(cm("a", "b", None), &keys).unwrap();
    assert_eq!(s.get(&keys[..1]).unwrap().len(), 1);
    s.validate().unwrap();

    for shards in [k8s_store::MAX_SHARDS * 2, 1 << 40, 1 << 63] {
        let err = MemoryStore::<ConfigMap>::builder(2)
            .shards(shards)
            .build()
            .unwrap_err();
        assert!(
            matches!(err.kind, ErrorKind::InvalidSetting(_)),
            "{shards}: {err}"
        );
        assert!(
            err.to_string().contains(&format!(
                "shards = {shards}: must be a power of two from 2 to 65536"
            )),
            "{err}"
        );
    }
    let s = MemoryStore::<ConfigMap>::builder(2)
        .shards(k8s_store::MAX_SHARDS)
        .build()
        .unwrap();
    assert_eq!(s.shards(), k8s_store::MAX_SHARDS);
}

#[test]
fn json_metadata_of_the_wrong_type_is_refused_not_read_as_empty() {
    use serde_json::json;
    let s = MemoryStore::<serde_json::Value>::new(1).unwrap();
    // Two objects whose names are numbers used to share the empty identity: the
    // second silently replaced the first.
    for (obj, field, found) in [
        (
            json!({"metadata": {"name": 5}}),
            "metadata.name",
            "a number",
        ),
        (
            json!({"metadata": {"name": 6}}),
            "metadata.name",
            "a number",
        ),
        (
            json!({"metadata": {"name": "a", "namespace": true}}),
            "metadata.namespace",
            "a boolean",
        ),
        (
            json!({"metadata": {"name": "a", "uid": ["u"]}}),
            "metadata.uid",
            "a list",
        ),
        (
            json!({"metadata": {"name": "a", "resourceVersion": 7}}),
            "metadata.resourceVersion",
            "a number",
        ),
        (json!({"metadata": "default/a"}), "metadata", "a string"),
    ] {
        let obj = Arc::new(obj);
        let expected = ErrorKind::InvalidMetadata { field, found };
        let err = s.add(Arc::clone(&obj), &["k"]).unwrap_err();
        assert_eq!(
            (err.operation, &err.kind),
            (Operation::Add, &expected),
            "{obj}"
        );
        assert!(
            err.to_string()
                .contains(&format!("{field} is {found}, not a string")),
            "{err}"
        );
        assert_eq!(
            s.update(Arc::clone(&obj), &["k"]).unwrap_err().kind,
            expected
        );
        assert_eq!(s.remove(&obj).unwrap_err().kind, expected);
        let err = s
            .replace([(json_obj("ns", "ok", ""), vec!["k"]), (obj, vec!["k"])])
            .unwrap_err();
        assert_eq!((err.operation, err.kind), (Operation::Replace, expected));
        assert!(s.is_empty(), "nothing was stored");
    }
    // Strings, `null` and absent fields are fine: null reads as absent.
    s.add(
        Arc::new(json!({"metadata": {"name": "a", "uid": null}})),
        &["k"],
    )
    .unwrap();
    s.add(Arc::new(json!({"metadata": null, "spec": 1})), &["k"])
        .unwrap();
    s.add(
        Arc::new(json!({"metadata": {"name": "b", "namespace": "ns", "resourceVersion": "3"}})),
        &["k"],
    )
    .unwrap();
    assert_eq!(s.len(), 3);
    s.validate().unwrap();
}

#[test]
fn wrong_key_counts_are_errors_that_change_nothing() {
    let s = store(2);
    s.add(cm("ns", "a", None), &["ns", "a"]).unwrap();
    for keys in [vec![], vec!["ns"], vec!["ns", "a", "x"]] {
        let err = s.add(cm("ns", "b", None), &keys).unwrap_err();
        assert_eq!(err.operation, Operation::Add);
        assert_eq!(
            err.kind,
            ErrorKind::KeyCount {
                expected: 2,
                given: keys.len()
            }
        );
        assert_eq!(err.keys, keys);
        let msg = err.to_string();
        assert!(
            msg.starts_with("add ")
                && msg.contains("expected 2")
                && msg.contains(&format!("got {}", keys.len())),
            "{msg}"
        );
        let err = s.update(cm("ns", "a", None), &keys).unwrap_err();
        assert_eq!(err.operation, Operation::Update);
        let err = s.delete(&keys).unwrap_err();
        assert_eq!(err.operation, Operation::Delete);
    }
    assert_eq!(names(&s.get(&["ns"]).unwrap()), ["ns/a"]);
    assert_eq!(s.len(), 1);
    s.validate().unwrap();
}

#[test]
fn get_takes_one_to_num_keys_components() {
    let s = store(2);
    let err = s.get::<&str>(&[]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PrefixLength { max: 2, given: 0 });
    let err = s.get(&["a", "b", "c"]).unwrap_err();
    assert_eq!(err.kind, ErrorKind::PrefixLength { max: 2, given: 3 });
    assert!(err.to_string().contains("1..=2"), "{err}");
    assert!(s.get(&["absent"]).unwrap().is_empty());
    assert!(s.get(&["absent", "x"]).unwrap().is_empty());
}

#[test]
fn error_messages_escape_odd_keys() {
    let s = store(1);
    let err = s
        .add(cm("a", "b", None), &["a/b", "\0", "ü\"x"])
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(r#"["a/b", "\0", "ü\"x"]"#), "{msg}");
}

#[test]
fn exact_get_returns_only_that_key() {
    let s = store(2);
    s.add(cm("ns", "a", None), &["ns", "a"]).unwrap();
    s.add(cm("ns", "ab", None), &["ns", "ab"]).unwrap();
    s.add(cm("nsx", "a", None), &["nsx", "a"]).unwrap();
    assert_eq!(names(&s.get(&["ns", "a"]).unwrap()), ["ns/a"]);
    assert_eq!(names(&s.get(&["ns"]).unwrap()), ["ns/a", "ns/ab"]);
    assert_eq!(names(&s.get(&["nsx"]).unwrap()), ["nsx/a"]);
    assert!(s.get(&["n"]).unwrap().is_empty());
}

#[test]
fn joined_string_collisions_do_not_happen() {
    // The original joined keys with '/', so these collided.
    let s = store(2);
    s.add(cm("x", "1", None), &["a/b", "c"]).unwrap();
    s.add(cm("x", "2", None), &["a", "b/c"]).unwrap();
    assert_eq!(names(&s.get(&["a/b", "c"]).unwrap()), ["x/1"]);
    assert_eq!(names(&s.get(&["a", "b/c"]).unwrap()), ["x/2"]);
    assert_eq!(names(&s.get(&["a"]).unwrap()), ["x/2"]);
    assert_eq!(names(&s.get(&["a/b"]).unwrap()), ["x/1"]);
    assert!(s.get(&["a/b/c"]).unwrap().is_empty());
    s.validate().unwrap();
}

#[test]
fn odd_keys_are_distinct_and_round_trip() {
    let keys: [[&str; 2]; 9] = [
        ["", ""],
        ["", "a"],
        ["a", ""],
        ["/", "/"],
        ["\0", ""],
        ["", "\0"],
        ["日本", "é"],
        [":", "a:b"],
        ["a\0b", "c"],
    ];
    let s = store(2);
    for (i, k) in keys.iter().enumerate() {
        s.add(cm("n", &format!("o{i}"), None), k).unwrap();
    }
    s.validate().unwrap();
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(names(&s.get(k).unwrap()), [format!("n/o{i}")], "{k:?}");
    }
    assert_eq!(names(&s.get(&[""]).unwrap()), ["n/o0", "n/o1", "n/o5"]);
    assert_eq!(s.get(&["\0"]).unwrap().len(), 1);
}

#[test]
fn results_are_sorted_by_namespace_name_uid() {
    let s = store(1);
    s.add(cm("b", "x", Some("2")), &["k"]).unwrap();
    s.add(cm("a", "y", None), &["k"]).unwrap();
    s.add(cm("b", "x", Some("1")), &["k"]).unwrap();
    s.add(cm("a", "x", None), &["k"]).unwrap();
    let got = s.get(&["k"]).unwrap();
    let order: Vec<_> = got
        .iter()
        .map(|o| {
            (
                o.metadata.namespace.clone().unwrap(),
                o.metadata.name.clone().unwrap(),
                o.metadata.uid.clone(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            ("a".into(), "x".into(), None),
            ("a".into(), "y".into(), None),
            ("b".into(), "x".into(), Some("1".into())),
            ("b".into(), "x".into(), Some("2".into())),
        ]
    );
    let listed: Vec<_> = s.list().iter().map(|o| o.metadata.uid.clone()).collect();
    assert_eq!(listed, [None, None, Some("1".into()), Some("2".into())]);
}

/// A store whose first key component is every object's namespace lists them from its
/// namespace groups; one object keyed otherwise makes it keep a list of its own, and
/// the order never depends on which.
#[test]
fn list_order_holds_when_a_first_key_other_than_the_namespace_comes_and_goes() {
    let s = store(2);
    s.add(cm("b", "x", None), &["b", "x"]).unwrap();
    s.add(cm("a", "y", None), &["a", "y"]).unwrap();
    s.validate().unwrap();
    assert_eq!(names(&s.list().to_vec()), ["a/y", "b/x"]);
    // Keyed under "z", listed by its namespace "a": the groups' order is not the list's.
    s.add(cm("a", "z", None), &["z", "z"]).unwrap();
    s.validate().unwrap();
    assert_eq!(names(&s.list().to_vec()), ["a/y", "a/z", "b/x"]);
    let held = s.list();
    // Moved back under its namespace: the list is the groups again.
    s.add(cm("a", "z", None), &["a", "z"]).unwrap();
    s.validate().unwrap();
    assert_eq!(names(&s.list().to_vec()), ["a/y", "a/z", "b/x"]);
    s.add(cm("c", "w", None), &["q", "w"]).unwrap();
    s.remove(&cm("c", "w", None)).unwrap();
    s.validate().unwrap();
    assert_eq!(names(&s.list().to_vec()), ["a/y", "a/z", "b/x"]);
    assert_eq!(s.len(), 3);
    // A snapshot taken while the list was kept apart is unchanged.
    assert_eq!(names(&held.to_vec()), ["a/y", "a/z", "b/x"]);
    assert_eq!(held.len(), 3);
}

#[test]
fn add_is_an_upsert_by_identity() {
    let s = store(2);
    s.add(cm_v("ns", "a", None, "1"), &["ns", "a"]).unwrap();
    s.update(cm_v("ns", "a", None, "2"), &["ns", "a"]).unwrap();
    s.add(cm_v("ns", "a", None, "3"), &["ns", "a"]).unwrap();
    let got = s.get(&["ns", "a"]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(version(&got[0]), Some("3"));
    assert_eq!(s.len(), 1);
    s.validate().unwrap();
}

#[test]
fn uid_is_the_identity_when_set() {
    let s = store(2);
    // Same namespace/name, different uids: two objects (a delete and re-create race).
    s.add(cm("ns", "a", Some("u1")), &["ns", "a"]).unwrap();
    s.add(cm("ns", "a", Some("u2")), &["ns", "a"]).unwrap();
    assert_eq!(s.get(&["ns", "a"]).unwrap().len(), 2);
    // Same uid: one object, whatever else changed.
    s.add(cm_v("ns", "renamed", Some("u1"), "x"), &["ns", "renamed"])
        .unwrap();
    assert_eq!(s.len(), 2);
    assert_eq!(s.get(&["ns", "a"]).unwrap().len(), 1);
    assert_eq!(names(&s.get(&["ns", "renamed"]).unwrap()), ["ns/renamed"]);
    s.validate().unwrap();
    // remove by uid finds it even when the name passed differs.
    assert!(s.remove(&cm("other", "other", Some("u1"))).unwrap());
    assert_eq!(names(&s.list().to_vec()), ["ns/a"]);
    s.validate().unwrap();
}

#[test]
fn moves_object_when_keys_change() {
    let s = store(2);
    s.add(cm("ns", "a", Some("u")), &["ns", "old"]).unwrap();
    s.add(cm("ns", "b", None), &["ns", "old"]).unwrap();
    s.update(cm("ns", "a", Some("u")), &["other", "new"])
        .unwrap();
    assert_eq!(names(&s.get(&["ns", "old"]).unwrap()), ["ns/b"]);
    assert_eq!(names(&s.get(&["ns"]).unwrap()), ["ns/b"]);
    assert_eq!(names(&s.get(&["other", "new"]).unwrap()), ["ns/a"]);
    assert_eq!(names(&s.get(&["other"]).unwrap()), ["ns/a"]);
    assert_eq!(s.len(), 2);
    s.validate().unwrap();
    // And back, many times, across shards.
    for i in 0..100 {
        let k = format!("k{i}");
        s.update(cm("ns", "a", Some("u")), &[k.as_str(), "x"])
            .unwrap();
        assert_eq!(s.get(&[k.as_str()]).unwrap().len(), 1);
    }
    assert_eq!(s.len(), 2);
    assert!(s.get(&["other"]).unwrap().is_empty());
    s.validate().unwrap();
}

#[test]
fn delete_removes_the_whole_key_and_counts() {
    let s = store(2);
    s.add(cm("ns", "a", None), &["ns", "shared"]).unwrap();
    s.add(cm("ns", "b", None), &["ns", "shared"]).unwrap();
    s.add(cm("ns", "c", None), &["ns", "c"]).unwrap();
    assert_eq!(s.delete(&["ns", "shared"]).unwrap(), 2);
    assert_eq!(names(&s.list().to_vec()), ["ns/c"]);
    assert_eq!(s.delete(&["ns", "shared"]).unwrap(), 0);
    assert_eq!(s.delete(&["nope", "x"]).unwrap(), 0);
    s.validate().unwrap();
    // A deleted object can come back.
    s.add(cm("ns", "a", None), &["ns", "a"]).unwrap();
    assert_eq!(s.len(), 2);
    s.validate().unwrap();
}

#[test]
fn remove_keeps_siblings() {
    // The original deleted a whole bucket on a watch delete event.
    let s = store(1);
    s.add(cm("ns", "a", None), &["app=web"]).unwrap();
    s.add(cm("ns", "b", None), &["app=web"]).unwrap();
    s.add(cm("ns", "c", None), &["app=web"]).unwrap();
    assert!(s.remove(&cm("ns", "b", None)).unwrap());
    assert_eq!(names(&s.get(&["app=web"]).unwrap()), ["ns/a", "ns/c"]);
    assert!(!s.remove(&cm("ns", "b", None)).unwrap());
    assert!(!s.remove(&cm("elsewhere", "zzz", None)).unwrap());
    assert!(s.remove(&cm("ns", "a", None)).unwrap());
    assert!(s.remove(&cm("ns", "c", None)).unwrap());
    assert!(s.is_empty());
    assert!(s.get(&["app=web"]).unwrap().is_empty());
    s.validate().unwrap();
}

#[test]
fn snapshots_are_immutable() {
    let s = store(2);
    for i in 0..100 {
        s.add(
            cm("ns", &format!("o{i:03}"), None),
            &["ns", &format!("o{i:03}")],
        )
        .unwrap();
    }
    let before = s.list();
    let copy = before.clone();
    s.delete(&["ns", "o000"]).unwrap();
    s.add(cm("ns", "zzz", None), &["ns", "zzz"]).unwrap();
    s.update(cm_v("ns", "o050", None, "changed"), &["ns", "o050"])
        .unwrap();
    assert_eq!(before.len(), 100);
    assert_eq!(before.iter().len(), 100);
    assert_eq!(
        before.iter().next().unwrap().metadata.name.as_deref(),
        Some("o000")
    );
    assert!(before.iter().all(|o| version(o).is_none()));
    assert_eq!(names(&before.to_vec()), names(&copy.to_vec()));
    let after = s.list();
    assert_eq!(after.len(), 100);
    assert_eq!(
        after.iter().next().unwrap().metadata.name.as_deref(),
        Some("o001")
    );
    let mut n = 0;
    for _ in &after {
        n += 1;
    }
    assert_eq!(n, after.len());
}

#[test]
fn clear_and_replace_swap_the_whole_state() {
    let s = store(2);
    s.add(cm("ns", "gone", None), &["ns", "gone"]).unwrap();
    s.add(cm("ns", "kept", Some("k")), &["ns", "kept"]).unwrap();
    s.replace(vec![
        (cm_v("ns", "kept", Some("k"), "2"), vec!["ns", "moved"]),
        (cm("ns", "new", None), vec!["ns", "new"]),
        (cm_v("ns", "new", None, "last"), vec!["ns", "new2"]),
    ])
    .unwrap();
    s.validate().unwrap();
    assert_eq!(names(&s.list().to_vec()), ["ns/kept", "ns/new"]);
    assert!(s.get(&["ns", "gone"]).unwrap().is_empty());
    assert!(s.get(&["ns", "kept"]).unwrap().is_empty());
    assert_eq!(version(&s.get(&["ns", "moved"]).unwrap()[0]), Some("2"));
    // The same identity twice: the last one wins.
    assert!(s.get(&["ns", "new"]).unwrap().is_empty());
    assert_eq!(version(&s.get(&["ns", "new2"]).unwrap()[0]), Some("last"));

    let err = s
        .replace(vec![(cm("ns", "x", None), vec!["ns"])])
        .unwrap_err();
    assert_eq!(err.operation, Operation::Replace);
    assert_eq!(s.len(), 2, "a rejected replace changes nothing");

    s.clear();
    assert!(s.is_empty());
    assert!(s.list().is_empty());
    assert!(s.get(&["ns"]).unwrap().is_empty());
    s.validate().unwrap();
}

#[test]
fn json_values_and_objects_without_metadata() {
    let s = MemoryStore::<serde_json::Value>::new(1).unwrap();
    s.add(json_obj("ns", "a", ""), &["k"]).unwrap();
    s.add(json_obj("ns", "a", "u1"), &["k"]).unwrap();
    // No metadata at all: the empty identity; a second one replaces the first.
    s.add(Arc::new(serde_json::json!({"spec": 1})), &["k"])
        .unwrap();
    s.add(Arc::new(serde_json::json!({"spec": 2})), &["other"])
        .unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(s.get(&["other"]).unwrap()[0]["spec"], 2);
    assert!(s.remove(&serde_json::json!("not even an object")).unwrap());
    assert_eq!(s.len(), 2);
    s.validate().unwrap();
}

#[test]
fn dynamic_objects_work() {
    use kube::core::{ApiResource, DynamicObject};
    let ar = ApiResource::erase::<ConfigMap>(&());
    let s = MemoryStore::<DynamicObject>::new(2).unwrap();
    let obj = DynamicObject::new("a", &ar).within("ns");
    s.add(Arc::new(obj), &["ns", "a"]).unwrap();
    assert_eq!(
        s.get(&["ns"]).unwrap()[0].metadata.name.as_deref(),
        Some("a")
    );
}

#[test]
fn debug_output_never_shows_objects() {
    let s = MemoryStore::<Secret>::new(1).unwrap();
    let mut secret = Secret::default();
    secret.metadata.name = Some("db".into());
    secret.string_data = Some([("password".to_string(), "hunter2-s3cr3t".to_string())].into());
    s.add(Arc::new(secret), &["db"]).unwrap();
    let shown = format!("{s:?} {:?} {:?}", s.list(), s.list().iter());
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("len: 1"), "{shown}");
}

#[test]
fn many_keys_and_long_keys() {
    // More components than can be elided, and long ones.
    let s = MemoryStore::<ConfigMap>::new(20).unwrap();
    let long = "x".repeat(10_000);
    let mut keys: Vec<String> = (0..20).map(|i| format!("c{i}")).collect();
    keys[3] = long.clone();
    s.add(cm("ns", "a", None), &keys).unwrap();
    assert_eq!(s.get(&keys).unwrap().len(), 1);
    assert_eq!(s.get(&keys[..4]).unwrap().len(), 1);
    assert_eq!(s.get(&keys[..19]).unwrap().len(), 1);
    assert!(
        s.get(
            &keys[..3]
                .iter()
                .chain([&"y".to_string()])
                .collect::<Vec<_>>()
        )
        .unwrap()
        .is_empty()
    );
    s.validate().unwrap();
}

#[tokio::test]
async fn the_store_trait_serves_memory_store_without_boxing() {
    async fn count<S: Store<ConfigMap>>(s: &S, ns: &str) -> usize {
        s.get(&[ns]).await.unwrap().len()
    }
    let s = store(2);
    Store::add(&s, cm("ns", "a", None), &["ns", "a"]).unwrap();
    assert_eq!(count(&s, "ns").await, 1);
    assert_eq!(Store::list(&s).await.unwrap().len(), 1);
    assert_eq!(Store::len(&s), 1);
    Store::clear(&s);
    assert!(Store::is_empty(&s));
}

#[test]
fn replaced_and_removed_versions_are_released() {
    // Nothing inside the store (routing copies, old states) may keep an old version of
    // an object alive once no snapshot references it: it may be a Secret.
    let s = store(2);
    let mut old = Vec::new();
    for i in 0..2_000 {
        let name = format!("o{i:05}");
        let v1 = cm_v("ns", &name, Some(&name), "1");
        s.add(Arc::clone(&v1), &["ns", name.as_str()]).unwrap();
        old.push(v1);
    }
    for i in 0..2_000 {
        let name = format!("o{i:05}");
        // Half keep their key, half move.
        let key = if i % 2 == 0 {
            name.clone()
        } else {
            format!("moved-{name}")
        };
        s.update(cm_v("ns", &name, Some(&name), "2"), &["ns", key.as_str()])
            .unwrap();
    }
    let leaked = old.iter().filter(|v1| Arc::strong_count(v1) != 1).count();
    assert_eq!(
        leaked, 0,
        "{leaked} replaced versions still referenced by the store"
    );
    let gone: Vec<_> = s.list().iter().take(500).cloned().collect();
    for o in &gone {
        assert!(s.remove(o).unwrap());
    }
    let leaked = gone.iter().filter(|o| Arc::strong_count(o) != 1).count();
    assert_eq!(
        leaked, 0,
        "{leaked} removed objects still referenced by the store"
    );
    s.validate().unwrap();
}

/// The index's trees route by 32-byte separators (prefixes of the (namespace, name, uid)
/// order). Namespaces and names sharing their first 40 bytes, with NUL and multibyte
/// characters after, make separators tie everywhere: routing must fall back to full
/// comparisons and still find, order, move and remove every object. Enough objects
/// for several tree levels (leaves hold 32), and a second key depth (prefix groups).
#[test]
fn keys_sharing_long_prefixes_are_found_ordered_moved_and_removed() {
    let s = store(2);
    let long = "x".repeat(40);
    let ns = |i: usize| format!("{long}\u{0}{i:02}");
    let name = |j: usize| format!("{long}é{j:03}");
    let mut expected: Vec<String> = Vec::new();
    // Inserted in an order unlike the sorted one.
    for j in (0..120).rev() {
        for i in [3, 0, 2, 1] {
            s.add(cm(&ns(i), &name(j), None), &[&ns(i), &name(j)])
                .unwrap();
            expected.push(format!("{}/{}", ns(i), name(j)));
        }
    }
    expected.sort();
    s.validate().unwrap();
    assert_eq!(
        names(&s.list().iter().cloned().collect::<Vec<_>>()),
        expected
    );
    for i in 0..4 {
        let got = s.get(&[ns(i).as_str()]).unwrap();
        assert_eq!(got.len(), 120, "namespace {i}");
        let want: Vec<&String> = expected
            .iter()
            .filter(|e| e.starts_with(&format!("{}/", ns(i))))
            .collect();
        assert_eq!(names(&got).iter().collect::<Vec<_>>(), want);
        for j in [0, 57, 119] {
            assert_eq!(
                names(&s.get(&[ns(i), name(j)]).unwrap()),
                [format!("{}/{}", ns(i), name(j))]
            );
        }
    }
    // Move every third object of namespace 0 to another key; remove every fifth of 1.
    for j in (0..120).step_by(3) {
        s.update(
            cm(&ns(0), &name(j), None),
            &[ns(9).as_str(), name(j).as_str()],
        )
        .unwrap();
    }
    for j in (0..120).step_by(5) {
        assert!(s.remove(&cm(&ns(1), &name(j), None)).unwrap());
    }
    s.validate().unwrap();
    assert_eq!(s.get(&[ns(0).as_str()]).unwrap().len(), 80);
    assert_eq!(s.get(&[ns(9).as_str()]).unwrap().len(), 40);
    assert_eq!(s.get(&[ns(1).as_str()]).unwrap().len(), 96);
    assert!(s.get(&[ns(1), name(5)]).unwrap().is_empty());
    assert_eq!(s.len(), 480 - 24);
    // A relist of them all, in an order unlike the sorted one: sorted by the first 32
    // bytes alone, every one of them would tie.
    let items: Vec<_> = (0..120)
        .rev()
        .flat_map(|j| [3, 0, 2, 1].map(|i| (cm(&ns(i), &name(j), None), vec![ns(i), name(j)])))
        .collect();
    s.replace(items).unwrap();
    s.validate().unwrap();
    assert_eq!(
        names(&s.list().iter().cloned().collect::<Vec<_>>()),
        expected
    );
}

#[test]
fn get_one_returns_the_unique_object_or_says_why_not() {
    let s = store(2);
    s.add(cm("ns", "a", Some("u1")), &["ns", "a"]).unwrap();
    // Two objects under one key (a key that is not their namespace and name).
    s.add(cm("ns", "b", Some("u2")), &["team/x", "α"]).unwrap();
    s.add(cm("ns", "c", Some("u3")), &["team/x", "α"]).unwrap();
    // One object under a stored (not elided) key.
    s.add(cm("ns", "d", Some("u4")), &["", "/"]).unwrap();

    let a = s.get_one(&["ns", "a"]).unwrap().expect("present");
    assert_eq!(a.metadata.name.as_deref(), Some("a"));
    let d = s.get_one(&["", "/"]).unwrap().expect("present");
    assert_eq!(d.metadata.name.as_deref(), Some("d"));
    assert!(s.get_one(&["ns", "zz"]).unwrap().is_none());
    // Keys that collide when joined with `/` are still different keys.
    assert!(s.get_one(&["team", "x/α"]).unwrap().is_none());

    let err = s.get_one(&["team/x", "α"]).unwrap_err();
    assert_eq!(err.operation, Operation::Get);
    assert_eq!(err.kind, ErrorKind::NotUnique { found: 2 });
    assert_eq!(err.keys, ["team/x", "α"]);
    assert!(
        err.to_string().contains("2 objects share this key"),
        "{err}"
    );
    assert_eq!(s.get(&["team/x", "α"]).unwrap().len(), 2);

    for keys in [vec!["ns"], vec!["ns", "a", "x"]] {
        let err = s.get_one(&keys).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::KeyCount {
                expected: 2,
                given: keys.len()
            }
        );
    }
    // After one of the two goes, the key is unique again.
    assert!(s.remove(&cm("ns", "b", Some("u2"))).unwrap());
    let c = s.get_one(&["team/x", "α"]).unwrap().expect("present");
    assert_eq!(c.metadata.name.as_deref(), Some("c"));
    s.validate().unwrap();
}

/// A batch is refused whole: a change with the wrong key count, or an object with
/// identity fields of the wrong type, anywhere in it, names that change and applies
/// nothing (not the valid changes before it either).
#[test]
fn a_batch_with_one_bad_change_applies_nothing_and_names_it() {
    let s = store(2);
    s.add(cm("ns", "a", None), &["ns", "a"]).unwrap();
    s.add(cm("ns", "b", None), &["ns", "b"]).unwrap();
    let before = s.list().to_vec();

    let mut batch = k8s_store::Batch::new();
    batch.upsert(cm_v("ns", "a", None, "2"), &["ns", "moved"]);
    batch.remove(cm("ns", "b", None));
    batch.upsert(cm("ns", "c", None), &["ns"]);
    batch.upsert(cm("ns", "d", None), &["ns", "d"]);
    let err = s.apply(batch).unwrap_err();
    assert_eq!(err.operation, Operation::Apply { item: 2 });
    assert_eq!(
        err.kind,
        ErrorKind::KeyCount {
            expected: 2,
            given: 1
        }
    );
    assert_eq!(err.keys, ["ns"]);
    assert!(
        err.to_string()
            .starts_with("apply (change 2 of the batch) [\"ns\"]"),
        "{err}"
    );

    // Identity fields of the wrong type, on a store of JSON objects.
    let j = MemoryStore::<serde_json::Value>::new(1).unwrap();
    j.add(json_obj("ns", "a", ""), &["k"]).unwrap();
    let mut batch = k8s_store::Batch::new();
    batch.remove(json_obj("ns", "a", ""));
    batch.upsert(
        Arc::new(serde_json::json!({"metadata": {"name": 7}})),
        &["k"],
    );
    let err = j.apply(batch).unwrap_err();
    assert_eq!(err.operation, Operation::Apply { item: 1 });
    assert_eq!(
        err.kind,
        ErrorKind::InvalidMetadata {
            field: "metadata.name",
            found: "a number"
        }
    );
    assert_eq!(
        j.len(),
        1,
        "the removal before the bad change was not applied"
    );

    let after = s.list().to_vec();
    assert_eq!(before.len(), after.len());
    assert!(before.iter().zip(&after).all(|(a, b)| Arc::ptr_eq(a, b)));
    assert!(s.get(&["ns", "moved"]).unwrap().is_empty());
    s.validate().unwrap();
    j.validate().unwrap();
}

/// Changes apply in order, as one by one: two upserts of one object leave the second
/// (at its keys: it moves within the batch), an upsert then a removal leave nothing,
/// a removal of an absent object is no change, and an empty batch changes nothing.
#[test]
fn a_batch_applies_its_changes_in_order() {
    let s = store(2);
    s.add(cm_v("ns", "a", Some("ua"), "1"), &["ns", "a"])
        .unwrap();
    let snapshot = s.list();

    let mut batch = k8s_store::Batch::with_capacity(5);
    batch
        .upsert(cm_v("ns", "a", Some("ua"), "2"), &["ns", "first"])
        .upsert(cm_v("ns", "a", Some("ua"), "3"), &["other", "second"])
        .upsert(cm("ns", "b", None), &["ns", "b"])
        .remove(cm("ns", "b", None))
        .remove(cm("ns", "absent", None));
    assert_eq!(batch.len(), 5);
    let applied = s.apply(batch).unwrap();
    assert_eq!((applied.upserted, applied.removed), (3, 1));

    assert!(s.get(&["ns"]).unwrap().is_empty());
    let moved = s.get(&["other", "second"]).unwrap();
    assert_eq!(moved.len(), 1);
    assert_eq!(version(&moved[0]), Some("3"));
    assert_eq!(s.len(), 1);
    // The snapshot from before is untouched.
    assert_eq!(version(&snapshot.to_vec()[0]), Some("1"));
    s.validate().unwrap();

    let applied = s.apply(k8s_store::Batch::new()).unwrap();
    assert_eq!((applied.upserted, applied.removed), (0, 0));
    assert_eq!(s.len(), 1);
}

/// What a batch replaces or removes is released, as after single writes.
#[test]
fn a_batch_keeps_no_replaced_or_removed_object() {
    let s = store(2);
    let old: Vec<_> = (0..500)
        .map(|i| cm_v("ns", &format!("o{i:04}"), None, "1"))
        .collect();
    let mut batch = k8s_store::Batch::new();
    for o in &old {
        let name = o.metadata.name.clone().unwrap();
        batch.upsert(Arc::clone(o), &["ns", name.as_str()]);
    }
    s.apply(batch).unwrap();
    let mut batch = k8s_store::Batch::new();
    for (i, o) in old.iter().enumerate() {
        let name = o.metadata.name.clone().unwrap();
        if i % 2 == 0 {
            batch.upsert(cm_v("ns", &name, None, "2"), &["moved", name.as_str()]);
        } else {
            batch.remove(Arc::clone(o));
        }
    }
    let applied = s.apply(batch).unwrap();
    assert_eq!((applied.upserted, applied.removed), (250, 250));
    let leaked = old.iter().filter(|o| Arc::strong_count(o) != 1).count();
    assert_eq!(
        leaked, 0,
        "{leaked} old objects still referenced by the store"
    );
    assert_eq!(s.get(&["moved"]).unwrap().len(), 250);
    s.validate().unwrap();
}
