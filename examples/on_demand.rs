//! The on-demand tier: references in memory, bodies fetched from the API server when
//! read (once, however many readers ask at once), then cached.
//!
//! ```sh
//! cargo run --example on_demand
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_store::CachedStore;
use k8s_store_sim::{ApiServer, Verb};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = ApiServer::start().await?; // or a real cluster: kube::Client::try_default()
    let mut secret = Secret::default();
    secret.metadata.namespace = Some("default".into());
    secret.metadata.name = Some("tls".into());
    secret.data = Some(BTreeMap::from([(
        "tls.key".to_owned(),
        ByteString(b"not really a key".to_vec()),
    )]));
    let created = server.create(&secret)?;

    let store = CachedStore::<Secret>::builder(2)
        .client(server.client())
        .max_entries(1_000) // at most 1,000 bodies in memory
        .ttl(Duration::from_secs(300)) // the staleness bound if watch events are missed
        .build()?;
    let reader = store.reader();
    store.add(&created, &["default", "tls"])?; // a reference: no body kept yet

    // Ten reads on their own tasks: one GET between them (the others wait for it, or
    // hit the body it cached).
    let reads = (0..10).map(|_| {
        let reader = reader.clone();
        tokio::spawn(async move { reader.get(&["default", "tls"]).await })
    });
    for read in reads {
        assert_eq!(read.await??.len(), 1);
    }
    let stats = reader.stats();
    println!(
        "reads 10 gets_at_server {} fetches {} coalesced {} entries {}",
        server.counters().requests(Verb::Get, "secrets"),
        stats.fetches,
        stats.coalesced,
        stats.entries
    );
    // Bodies never appear in Debug output.
    println!("{reader:?}");
    Ok(())
}
