#![cfg(k8s_store_loom)]
//! A reference's hint (its direct pointer to its cached body) racing the cache's
//! eviction of that body: the cache has room for one body and two objects compete
//! for it. Whatever the interleaving, a hint never outlives its cache entry (checked
//! by `validate()`: every hinted reference owns the entry of its key), the bodies the
//! store keeps alive are the resident ones, and every read returns the object asked
//! for at the version the store knows.

mod common;

use std::sync::Arc;

use common::{
    Answer, Cached, ModelFetcher, NAME, NAME_B, NS, Server, config_map_named, new_cached_with, rv,
};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store_loom_tests::model;
use loom::future::block_on;

fn get(store: &Cached, name: &str) -> Arc<ConfigMap> {
    let got = block_on(store.get(&[NS, name])).expect("get");
    assert_eq!(got.len(), 1, "{name}");
    let obj = Arc::clone(&got[0]);
    assert_eq!(obj.metadata.name.as_deref(), Some(name));
    assert_eq!(rv(&obj), "1");
    obj
}

/// `a` is cached (and hinted); one thread reads `a` (a hit through the hint, or a
/// refetch if it lost the race) while another reads `b`, whose fill evicts `a` (or
/// itself, in the stand-in cache's order), clearing the evicted body's hint.
#[test]
fn eviction_clears_the_hint_of_the_body_it_drops() {
    model(|| {
        let server = Server::new(Answer::Found("1"));
        let store = Arc::new(new_cached_with(ModelFetcher::new(&server), 1));
        for name in [NAME, NAME_B] {
            store
                .add(&config_map_named(name, "1"), &[NS, name])
                .expect("add");
        }
        let a = get(&store, NAME);

        let reader = {
            let store = Arc::clone(&store);
            loom::thread::spawn(move || get(&store, NAME))
        };
        let b = get(&store, NAME_B);
        let a_again = reader.join().expect("reader");

        store.validate().expect("validate");
        let stats = store.stats();
        assert!(stats.entries <= 1, "{stats:?}");
        // Bodies the store keeps alive beyond our handles: at most the resident one.
        let ours = [&a, &a_again, &b];
        let held_by_store = ours
            .iter()
            .enumerate()
            .filter(|(i, o)| !ours[..*i].iter().any(|p| Arc::ptr_eq(p, o)))
            .filter(|(_, o)| {
                let handles = ours.iter().filter(|p| Arc::ptr_eq(p, o)).count();
                Arc::strong_count(o) > handles
            })
            .count();
        assert!(
            held_by_store <= 1,
            "{held_by_store} bodies held with room for one"
        );
    });
}
