//! Secondary indexes and selectors on the on-demand tier, against the in-process API
//! server through a real `kube::Client`: queries answered from the references alone,
//! bodies read through the cache only when asked for.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_store::{CachedStore, ErrorKind, Indexer, LabelIndex, Selector};
use k8s_store_sim::{ApiServer, Verb};

fn secret(name: &str, labels: &[(&str, &str)], owner: Option<&str>) -> Secret {
    let mut s = Secret::default();
    s.metadata.namespace = Some("default".into());
    s.metadata.name = Some(name.into());
    s.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    s.metadata.owner_references = owner.map(|uid| {
        vec![OwnerReference {
            uid: uid.into(),
            kind: "Deployment".into(),
            ..OwnerReference::default()
        }]
    });
    s.data = Some(BTreeMap::new());
    s
}

fn names<T: AsRef<str>>(v: impl IntoIterator<Item = T>) -> Vec<String> {
    v.into_iter().map(|n| n.as_ref().to_owned()).collect()
}

async fn setup() -> (ApiServer, CachedStore<Secret>) {
    let server = ApiServer::start().await.expect("server");
    let store = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .index(
            "by_owner",
            Indexer::new(["metadata.ownerReferences[*].uid"]).unwrap(),
        )
        .index(
            "by_type",
            Indexer::new(["metadata.labels['type']"]).unwrap(),
        )
        .label_index(LabelIndex::keys(["app"]))
        .build()
        .expect("store");
    for (name, labels, owner) in [
        ("a", vec![("app", "web"), ("type", "tls")], Some("d1")),
        ("b", vec![("app", "web"), ("type", "basic")], Some("d1")),
        ("c", vec![("app", "db"), ("type", "tls")], Some("d2")),
        ("d", vec![], None),
    ] {
        let created = server
            .create(&secret(name, &labels, owner))
            .expect("create");
        store.add(&created, &["default", name]).expect("add");
    }
    store.validate().expect("valid");
    (server, store)
}

fn gets(server: &ApiServer) -> u64 {
    server.counters().requests(Verb::Get, "secrets")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_from_references_without_fetching() {
    let (server, store) = setup().await;
    let refs = store.references_by("by_owner", &["d1"]).unwrap();
    assert_eq!(names(refs.iter().map(|r| r.name())), ["a", "b"]);
    let refs = store.references_by("by_type", &["tls"]).unwrap();
    assert_eq!(names(refs.iter().map(|r| r.name())), ["a", "c"]);
    let sel: Selector = "app=web,type!=basic".parse().unwrap();
    let refs = store.select_references(&sel);
    assert_eq!(names(refs.iter().map(|r| r.name())), ["a"]);
    assert_eq!(store.select_stats().indexed, 1);
    // `type` is not in the label index: a scan of the references, still no fetch.
    let refs = store.select_references(&"type=tls".parse().unwrap());
    assert_eq!(names(refs.iter().map(|r| r.name())), ["a", "c"]);
    assert_eq!(store.select_stats().scans, 1);
    assert_eq!(gets(&server), 0, "no body was fetched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_the_matched_objects_fetches_their_bodies_once() {
    let (server, store) = setup().await;
    let bodies = store.get_by("by_owner", &["d1"]).await.unwrap();
    assert_eq!(
        names(bodies.iter().map(|s| s.metadata.name.clone().unwrap())),
        ["a", "b"]
    );
    assert_eq!(gets(&server), 2);
    let web = store.select(&"app=web".parse().unwrap()).await.unwrap();
    assert_eq!(web.len(), 2);
    assert_eq!(gets(&server), 2, "cached bodies are not fetched again");
    let in_ns = store
        .select_in("other", &"app=web".parse().unwrap())
        .await
        .unwrap();
    assert!(in_ns.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_follow_updates_removals_and_relists() {
    let (server, store) = setup().await;
    let moved = server
        .replace(&secret("a", &[("app", "db"), ("type", "tls")], Some("d2")))
        .expect("replace");
    store.update(&moved, &["default", "a"]).unwrap();
    store.validate().unwrap();
    assert_eq!(
        names(
            store
                .references_by("by_owner", &["d2"])
                .unwrap()
                .iter()
                .map(|r| r.name())
        ),
        ["a", "c"]
    );
    assert!(
        store
            .select_references(&"app=web,type=tls".parse().unwrap())
            .is_empty()
    );
    store.remove(&moved).unwrap();
    store.validate().unwrap();
    assert_eq!(
        names(
            store
                .references_by("by_owner", &["d2"])
                .unwrap()
                .iter()
                .map(|r| r.name())
        ),
        ["c"]
    );
    store
        .replace([(
            secret("z", &[("app", "web")], Some("d9")),
            vec!["default", "z"],
        )])
        .unwrap();
    store.validate().unwrap();
    assert_eq!(
        names(
            store
                .references_by("by_owner", &["d9"])
                .unwrap()
                .iter()
                .map(|r| r.name())
        ),
        ["z"]
    );
    assert_eq!(
        names(
            store
                .select_references(&"app=web".parse().unwrap())
                .iter()
                .map(|r| r.name())
        ),
        ["z"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_outside_what_references_keep_is_a_build_error() {
    let server = ApiServer::start().await.expect("server");
    let e = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .index("by_type", Indexer::new(["type"]).unwrap())
        .build()
        .unwrap_err();
    assert!(matches!(e.kind, ErrorKind::InvalidSetting(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("\"type\"") && msg.contains("metadata-only watch"),
        "{msg}"
    );
}

/// Both tiers configured in YAML, started by `Stores::start` and queried through
/// `AnyStore`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_indexes_answer_through_any_store() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_store::config::Config;
    use k8s_store::stores::Stores;
    use std::time::Duration;

    let server = ApiServer::start().await.expect("server");
    for (name, app) in [("a", "web"), ("b", "db")] {
        server
            .create(&secret(name, &[("app", app), ("type", "tls")], Some("d1")))
            .expect("create");
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = Some("default".into());
        cm.metadata.name = Some(name.into());
        cm.metadata.labels = Some([("app".to_string(), app.to_string())].into());
        cm.data = Some([("owner".to_string(), format!("team-{name}"))].into());
        server.create(&cm).expect("create");
    }
    let config = Config::from_yaml(
        "watched_resources:
  configmaps:
    api_version: v1
    kind: ConfigMap
    index_by: [metadata.namespace, metadata.name]
    store: full
    indexes: {by_owner: [\"data.owner\"]}
    index_labels: all
  secrets:
    api_version: v1
    kind: Secret
    index_by: [metadata.namespace, metadata.name]
    store: on-demand
    indexes: {by_deployment: [\"metadata.ownerReferences[*].uid\"]}
    index_labels: [app]
",
    )
    .expect("config");
    let stores = Stores::start(&config, server.client()).expect("stores");
    tokio::time::timeout(Duration::from_secs(20), stores.ready())
        .await
        .expect("in time")
        .expect("ready");
    let web: Selector = "app=web".parse().unwrap();
    let cms = stores.get("configmaps").expect("configmaps");
    assert_eq!(cms.index_names(), ["by_owner"]);
    assert_eq!(cms.get_by("by_owner", &["team-b"]).await.unwrap().len(), 1);
    assert_eq!(cms.select(None, &web).await.unwrap().len(), 1);
    assert_eq!(cms.select(Some("other"), &web).await.unwrap().len(), 0);
    assert_eq!(cms.select_stats().indexed, 2);
    let secrets = stores.get("secrets").expect("secrets");
    assert_eq!(secrets.index_names(), ["by_deployment"]);
    let owned = secrets.get_by("by_deployment", &["d1"]).await.unwrap();
    assert_eq!(owned.len(), 2, "bodies fetched through the cache");
    let web_secrets = secrets.select(Some("default"), &web).await.unwrap();
    assert_eq!(web_secrets.len(), 1);
    assert_eq!(secrets.select_stats().indexed, 1);
}
