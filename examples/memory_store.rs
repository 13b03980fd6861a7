//! The full tier by hand: a writer, a reader, exact and prefix gets, a snapshot.
//!
//! ```sh
//! cargo run --example memory_store
//! ```

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store::{Indexer, MemoryStore};

fn config_map(namespace: &str, name: &str, team: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.namespace = Some(namespace.into());
    cm.metadata.name = Some(name.into());
    cm.metadata.labels = Some([("team".to_owned(), team.to_owned())].into());
    cm
}

fn main() -> Result<(), k8s_store::StoreError> {
    // Keys: the namespace, then the `team` label (keys need not be unique).
    let indexer = Indexer::new(["metadata.namespace", "metadata.labels['team']"])?;
    let store = MemoryStore::<ConfigMap>::new(indexer.len())?; // the writer
    let reader = store.reader(); // what reconcilers hold: Clone, read-only

    for (ns, name, team) in [
        ("prod", "web", "frontend"),
        ("prod", "api", "backend"),
        ("prod", "db", "backend"),
        ("dev", "web", "frontend"),
    ] {
        let cm = config_map(ns, name, team);
        let keys = indexer.keys(&cm)?;
        store.add(Arc::new(cm), &keys)?;
    }
    store.mark_ready(); // filled by hand: tell readers the list is complete

    let backend = reader.get(&["prod", "backend"])?; // exact: (namespace, team)
    let prod = reader.get(&["prod"])?; // prefix: the whole namespace
    println!("prod/backend: {:?}", names(&backend));
    println!("prod: {:?}", names(&prod));

    // A snapshot is O(1) and never changes; later writes are not in it.
    let before = reader.list();
    let moved = config_map("prod", "db", "data");
    let keys = indexer.keys(&moved)?;
    store.update(Arc::new(moved), &keys)?; // same identity, new keys: it moves
    println!(
        "after the move: prod/backend {:?}, prod/data {:?}; the snapshot still has {} objects",
        names(&reader.get(&["prod", "backend"])?),
        names(&reader.get(&["prod", "data"])?),
        before.len()
    );
    println!("objects {}", reader.len());
    Ok(())
}

fn names(objs: &[Arc<ConfigMap>]) -> Vec<String> {
    objs.iter()
        .map(|o| o.metadata.name.clone().unwrap_or_default())
        .collect()
}
