//! Stores from a YAML configuration: `config/example.yaml` (Ingresses, Services and
//! EndpointSlices in full stores, Secrets on demand), each fed by its own watch.
//!
//! ```sh
//! cargo run --example configuration            # against the in-process API server
//! cargo run --example configuration -- my.yaml # another configuration
//! ```

use k8s_openapi::api::core::v1::Service;
use k8s_store::config::Config;
use k8s_store::stores::Stores;
use k8s_store_sim::ApiServer;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.yaml").into());
    // Every setting is checked here, with the setting's path, line and column.
    let config = Config::from_path(&path)?;

    let server = ApiServer::start().await?;
    let mut svc = Service::default();
    svc.metadata.namespace = Some("default".into());
    svc.metadata.name = Some("web".into());
    server.create(&svc)?;

    let stores = Stores::start(&config, server.client())?;
    stores.ready().await?; // every store has its first full list
    for (name, watched) in stores.iter() {
        println!(
            "store {name} kind {:?} objects {} keys {}",
            watched.store.kind(),
            watched.store.len(),
            watched.store.num_keys()
        );
    }
    let services = stores.get("services").ok_or("no `services` store")?;
    println!(
        "services in default: {}",
        services.get(&["default"]).await?.len()
    );
    Ok(())
}
