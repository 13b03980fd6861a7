//! A kube-runtime `Controller` over Ingresses whose reconciler reads each Ingress's
//! backend Services, their EndpointSlices and the Pods they select from full stores and
//! its TLS Secrets from an on-demand store, every store fed through
//! `watch::reflect`/`feed` from the same watch that triggers reconciles: one watch per
//! resource.
//!
//! The questions that are not "the object called X" go to indexes, never to a scan:
//! - a Service's EndpointSlices: the slices' `by_service` secondary index (their
//!   `kubernetes.io/service-name` label);
//! - a Service's Pods: the Pod store's label index, queried with the Service's
//!   `spec.selector` (`select_in`);
//! - which Ingresses a changed Secret, Service, slice or Pod concerns: the Ingress
//!   store's `by_tls_secret` and `by_backend` indexes (multi-valued `[*]` paths), so a
//!   rotated certificate reconciles the Ingresses that serve it, not every Ingress of
//!   its namespace.
//!
//! ```sh
//! cargo run --example controller                 # against the in-process API server
//! KUBECONFIG=~/.kube/config cargo run --example controller -- --seconds 30   # a real cluster, read-only
//! ```
//!
//! With no `KUBECONFIG` it starts the in-process API server, seeds a small cluster
//! (`--namespaces`, three Ingresses each, two Pods per Service; in `team-0` one
//! Service's selector matches none, as after a relabelling gone wrong) and, at the end,
//! prints how many watches the server saw per resource (one each) beside the
//! reconciles.
//!
//! Built with `--features metrics`, it also serves every store's and watch's metrics
//! on `http://127.0.0.1:<port>/metrics` (printed at the start) and prints a few lines
//! of its own last scrape.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS,
};
use k8s_store::watch::{FeedOptions, FeedStreamExt, Feeder};
use k8s_store::{
    CachedReader, CachedStore, Indexer, LabelIndex, MemoryReader, MemoryStore, Selector,
};
use k8s_store_sim::{ApiServer, Verb};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, ResourceExt};

/// The Ingress store's secondary indexes, by the objects an Ingress names: its TLS
/// Secrets and its rules' backend Services. (`spec.defaultBackend` would need an index
/// of its own; this controller reads the rules only.)
const BY_TLS_SECRET: &str = "by_tls_secret";
const BY_BACKEND: &str = "by_backend";
/// The EndpointSlice store's index by the Service a slice belongs to.
const BY_SERVICE: &str = "by_service";

/// What the reconciler reads.
struct Ctx {
    services: MemoryReader<Service>,
    slices: MemoryReader<EndpointSlice>,
    pods: MemoryReader<Pod>,
    secrets: CachedReader<Secret>,
    reconciles: AtomicU64,
    /// Services, EndpointSlices, Secrets and Pods read.
    reads: [AtomicU64; 4],
    /// Backends whose Service selects no Pod.
    without_pods: AtomicU64,
}

/// A Service's `spec.selector` as a selector, or `None` without one: Kubernetes picks
/// no Pods for such a Service (its endpoints are written by hand), whereas the empty
/// selector matches every Pod.
fn pod_selector(svc: &Service) -> Option<Selector> {
    let selector = svc.spec.as_ref()?.selector.as_ref()?;
    (!selector.is_empty()).then(|| Selector::from(selector))
}

#[derive(Debug, thiserror::Error)]
enum ReconcileError {
    #[error(transparent)]
    Store(#[from] k8s_store::StoreError),
    #[error(transparent)]
    NotReady(#[from] k8s_store::WriterDropped),
}

async fn reconcile(ingress: Arc<Ingress>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    // Until every store has its first full list, an empty answer could mean "not
    // listed yet": wait (at once after the first time). The Controller is what polls
    // the streams that fill them, so this does not block their progress.
    ctx.services.ready().await?;
    ctx.slices.ready().await?;
    ctx.pods.ready().await?;
    ctx.secrets.ready().await?;
    let ns = ingress.namespace().unwrap_or_default();
    let spec = ingress.spec.as_ref();
    let backends = spec
        .into_iter()
        .flat_map(|s| s.rules.iter().flatten())
        .flat_map(|r| r.http.iter().flat_map(|h| h.paths.iter()))
        .filter_map(|p| p.backend.service.as_ref().map(|s| s.name.clone()));
    for name in backends {
        if let Some(svc) = ctx.services.get_one(&[ns.as_str(), name.as_str()])? {
            ctx.reads[0].fetch_add(1, Ordering::Relaxed);
            // The Pods behind the Service, from the label index: the Pods under its
            // selector's cheapest label, not every Pod of the namespace matched one by
            // one. None at all (rather than none ready) is worth telling the user: the
            // selector and the Pods' labels disagree. A real controller would set a
            // condition or emit an Event; this one counts them.
            if let Some(selector) = pod_selector(&svc) {
                let pods = ctx.pods.select_in(&ns, &selector);
                ctx.reads[3].fetch_add(pods.len() as u64, Ordering::Relaxed);
                if pods.is_empty() {
                    ctx.without_pods.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // The Service's slices (one or more, labelled with its name), from the slices'
        // secondary index: the store itself is keyed by (namespace, name), so a slice
        // without that label is still stored.
        let slices = ctx
            .slices
            .get_by(BY_SERVICE, &[ns.as_str(), name.as_str()])?;
        ctx.reads[1].fetch_add(slices.len() as u64, Ordering::Relaxed);
    }
    for tls in spec.into_iter().flat_map(|s| s.tls.iter().flatten()) {
        if let Some(secret) = &tls.secret_name {
            // Fetched from the API server on the first read, then cached.
            let found = ctx.secrets.get(&[ns.as_str(), secret.as_str()]).await?;
            ctx.reads[2].fetch_add(found.len() as u64, Ordering::Relaxed);
        }
    }
    ctx.reconciles.fetch_add(1, Ordering::Relaxed);
    Ok(Action::requeue(Duration::from_secs(300)))
}

fn error_policy(_: Arc<Ingress>, error: &ReconcileError, _: Arc<Ctx>) -> Action {
    eprintln!("reconcile failed: {error}");
    Action::requeue(Duration::from_secs(5))
}

/// The Ingresses under `[namespace, name]` in the Ingress store's secondary index
/// `index` (our own Ingress store, fed by the same watch as the Controller's): the
/// Ingresses that name that Secret or Service, which a change to it may affect.
fn ingresses_naming(
    ingresses: &MemoryReader<Ingress>,
    index: &str,
    namespace: Option<String>,
    name: &str,
) -> Vec<ObjectRef<Ingress>> {
    let ns = namespace.unwrap_or_default();
    ingresses
        .get_by(index, &[ns.as_str(), name])
        .unwrap_or_default()
        .iter()
        .map(|i| ObjectRef::from_obj(&**i))
        .collect()
}

/// The Ingresses a changed Pod may affect: those routing to a Service that selects it.
/// No index answers "which selectors match these labels", so the namespace's Services
/// are matched one by one (a namespace holds far fewer Services than Pods).
fn ingresses_of_pod(
    ingresses: &MemoryReader<Ingress>,
    services: &MemoryReader<Service>,
    pod: &Pod,
) -> Vec<ObjectRef<Ingress>> {
    let ns = pod.namespace().unwrap_or_default();
    services
        .get(&[ns.as_str()])
        .unwrap_or_default()
        .iter()
        .filter(|svc| pod_selector(svc).is_some_and(|s| s.matches(pod.labels())))
        .flat_map(|svc| ingresses_naming(ingresses, BY_BACKEND, svc.namespace(), &svc.name_any()))
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let seconds = arg("--seconds", 3);
    let namespaces = arg("--namespaces", 4);

    let (client, server) = if std::env::var_os("KUBECONFIG").is_some() {
        (kube::Client::try_default().await?, None)
    } else {
        // The in-process server serves Pods only when told to.
        let server = ApiServer::builder()
            .register(kube::core::ApiResource::erase::<Pod>(&()), true)
            .start()
            .await?;
        seed(&server, namespaces)?;
        (server.client(), Some(server))
    };

    // Full stores for Ingresses (our indexes, beside the Controller's own reflector
    // store), Services, EndpointSlices and Pods; an on-demand store for Secrets. Each
    // is keyed by (namespace, name); the other questions have indexes of their own,
    // kept by the same writes.
    let by_name = || Indexer::new(["metadata.namespace", "metadata.name"]);
    let ingress_store = MemoryStore::<Ingress>::builder(2)
        // `[*]`: an Ingress is under each Secret and each Service it names, once.
        .index(
            BY_TLS_SECRET,
            Indexer::new(["metadata.namespace", "spec.tls[*].secretName"])?,
        )
        .index(
            BY_BACKEND,
            Indexer::new([
                "metadata.namespace",
                "spec.rules[*].http.paths[*].backend.service.name",
            ])?,
        )
        .build()?;
    let service_store = MemoryStore::<Service>::new(2)?;
    let slice_store = MemoryStore::<EndpointSlice>::builder(2)
        .index(
            BY_SERVICE,
            Indexer::new([
                "metadata.namespace",
                "metadata.labels['kubernetes.io/service-name']",
            ])?,
        )
        .build()?;
    // Every label key indexed: a Service's selector may name any of them.
    let pod_store = MemoryStore::<Pod>::builder(2)
        .label_index(LabelIndex::All)
        .build()?;
    let secret_store = CachedStore::<Secret>::builder(2)
        .client(client.clone())
        .max_entries(1_000)
        .build()?;
    let ingresses = ingress_store.reader();
    let ctx = Arc::new(Ctx {
        services: service_store.reader(),
        slices: slice_store.reader(),
        pods: pod_store.reader(),
        secrets: secret_store.reader(),
        reconciles: AtomicU64::new(0),
        reads: Default::default(),
        without_pods: AtomicU64::new(0),
    });

    // One feeder per store (each owns its store's writer), and their watch statuses.
    let ingress_feeder = Feeder::new(ingress_store, by_name()?, FeedOptions::new("ingresses"))?;
    let service_feeder = Feeder::new(service_store, by_name()?, FeedOptions::new("services"))?;
    let slice_feeder = Feeder::new(slice_store, by_name()?, FeedOptions::new("endpointslices"))?;
    let pod_feeder = Feeder::new(pod_store, by_name()?, FeedOptions::new("pods"))?;
    let secret_feeder = Feeder::new(secret_store, by_name()?, FeedOptions::new("secrets"))?;
    #[cfg(feature = "metrics")]
    let statuses = [
        ("ingresses", ingress_feeder.status()),
        ("services", service_feeder.status()),
        ("endpointslices", slice_feeder.status()),
        ("pods", pod_feeder.status()),
        ("secrets", secret_feeder.status()),
    ];

    // One watch per resource: each feeds its store, then drives the Controller.
    let (kube_reader, kube_writer) = reflector::store();
    let ingress_events = watcher(
        Api::<Ingress>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(kube_writer)
    .feed(ingress_feeder)
    .applied_objects();
    let service_events = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .feed(service_feeder)
    .applied_objects();
    let slice_events = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .feed(slice_feeder)
    .applied_objects();
    let pod_events = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .feed(pod_feeder)
        .applied_objects();
    // Secrets: a metadata-only watch; bodies are fetched when a reconcile reads them.
    let secret_events = watcher(
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .feed(secret_feeder)
    .applied_objects();

    #[cfg(feature = "metrics")]
    let metrics_addr = {
        let mut metrics = k8s_store::metrics::StoreMetrics::new();
        metrics
            .add_full("ingresses", &ingresses)?
            .add_full("services", &ctx.services)?
            .add_full("endpointslices", &ctx.slices)?
            .add_full("pods", &ctx.pods)?
            .add_on_demand("secrets", &ctx.secrets)?;
        for (name, status) in &statuses {
            metrics.add_watch(name, status)?;
        }
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        let addr = serve_metrics(registry).await?;
        println!("metrics on http://{addr}/metrics");
        addr
    };

    // Each change reconciles the Ingresses that name the changed object, found in the
    // Ingress store's indexes.
    let (i1, i2, i3, i4) = (
        ingresses.clone(),
        ingresses.clone(),
        ingresses.clone(),
        ingresses.clone(),
    );
    let services = ctx.services.clone();
    let controller = Controller::for_stream(ingress_events, kube_reader)
        .watches_stream(service_events, move |s: Service| {
            ingresses_naming(&i1, BY_BACKEND, s.namespace(), &s.name_any())
        })
        .watches_stream(slice_events, move |s: EndpointSlice| {
            match s.labels().get("kubernetes.io/service-name") {
                Some(svc) => ingresses_naming(&i2, BY_BACKEND, s.namespace(), svc),
                None => Vec::new(), // no Service's slice
            }
        })
        .watches_stream(pod_events, move |p: Pod| {
            ingresses_of_pod(&i3, &services, &p)
        })
        .watches_stream(secret_events, move |s: PartialObjectMeta<Secret>| {
            ingresses_naming(&i4, BY_TLS_SECRET, s.namespace(), &s.name_any())
        })
        .run(reconcile, error_policy, Arc::clone(&ctx))
        .for_each(|_| std::future::ready(()));
    // Against the in-process server: once every Ingress has been reconciled, rotate
    // one TLS Secret. Its metadata watch event reaches the on-demand store (which drops
    // the cached body) and then the Controller, which reconciles the Ingress that
    // serves it (found by `by_tls_secret`); its read fetches the new body.
    let churn = {
        let (ctx, ingresses) = (Arc::clone(&ctx), ingresses.clone());
        let seeded = server.as_ref().map(ApiServer::client);
        async move {
            let Some(client) = seeded else {
                return std::future::pending().await; // a real cluster: read-only
            };
            while ingresses.is_empty()
                || ctx.reconciles.load(Ordering::Relaxed) < ingresses.len() as u64
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let api = Api::<Secret>::namespaced(client, "team-0");
            let mut secret = api.get("app-0-tls").await.expect("the seeded secret");
            secret.data = Some(BTreeMap::from([(
                "tls.crt".to_owned(),
                ByteString(b"rotated".to_vec()),
            )]));
            api.replace("app-0-tls", &Default::default(), &secret)
                .await
                .expect("replace");
            std::future::pending::<()>().await
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(seconds), async {
        tokio::join!(controller, churn)
    })
    .await;

    let reads: Vec<u64> = ctx
        .reads
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .collect();
    println!(
        "ingresses {} reconciles {} services_read {} endpointslices_read {} secrets_read {} \
         pods_read {} backends_without_pods {}",
        ingresses.len(),
        ctx.reconciles.load(Ordering::Relaxed),
        reads[0],
        reads[1],
        reads[2],
        reads[3],
        ctx.without_pods.load(Ordering::Relaxed)
    );
    let stats = ctx.pods.select_stats();
    println!(
        "pods_selects indexed {} scans {}",
        stats.indexed, stats.scans
    );
    let stats = ctx.secrets.stats();
    println!(
        "secrets_cache fetches {} hits {} fetch_errors {}",
        stats.fetches, stats.hits, stats.fetch_errors
    );
    #[cfg(feature = "metrics")]
    for line in scrape(metrics_addr).await?.lines() {
        if line.starts_with("k8s_store_objects")
            || line.starts_with("k8s_store_cache_fetches")
            || line.starts_with("k8s_store_watch_relists")
        {
            println!("scraped {line}");
        }
    }
    if let Some(server) = server {
        let c = server.counters();
        for plural in ["ingresses", "services", "endpointslices", "pods", "secrets"] {
            println!(
                "server {plural} watches {} lists {}",
                c.requests(Verb::Watch, plural),
                c.requests(Verb::List, plural)
            );
        }
    }
    Ok(())
}

/// `namespaces` namespaces of three Ingresses, each with a backend Service (two
/// EndpointSlices, two Pods) and a TLS Secret. In `team-0` the Service `app-2` selects
/// `app.kubernetes.io/name: app-2` while its Pods are labelled `app: app-2`: it selects
/// no Pod.
fn seed(server: &ApiServer, namespaces: u64) -> Result<(), Box<dyn std::error::Error>> {
    for n in 0..namespaces {
        let ns = format!("team-{n}");
        for i in 0..3 {
            let app = format!("app-{i}");
            let selector_key = if n == 0 && i == 2 {
                "app.kubernetes.io/name"
            } else {
                "app"
            };
            let mut svc = Service::default();
            svc.metadata.namespace = Some(ns.clone());
            svc.metadata.name = Some(app.clone());
            svc.spec = Some(ServiceSpec {
                selector: Some(BTreeMap::from([(selector_key.to_owned(), app.clone())])),
                ..Default::default()
            });
            server.create(&svc)?;
            for p in 0..2 {
                let mut pod = Pod::default();
                pod.metadata.namespace = Some(ns.clone());
                pod.metadata.name = Some(format!("{app}-7d9f8b6c5-{p}"));
                pod.metadata.labels = Some(BTreeMap::from([
                    ("app".to_owned(), app.clone()),
                    ("pod-template-hash".to_owned(), "7d9f8b6c5".to_owned()),
                ]));
                server.create(&pod)?;
            }
            for s in 0..2 {
                let mut slice = EndpointSlice::default();
                slice.metadata.namespace = Some(ns.clone());
                slice.metadata.name = Some(format!("{app}-{s}"));
                slice.metadata.labels = Some(BTreeMap::from([(
                    "kubernetes.io/service-name".to_owned(),
                    app.clone(),
                )]));
                slice.address_type = "IPv4".into();
                server.create(&slice)?;
            }
            let mut secret = Secret::default();
            secret.metadata.namespace = Some(ns.clone());
            secret.metadata.name = Some(format!("{app}-tls"));
            secret.data = Some(BTreeMap::from([(
                "tls.crt".to_owned(),
                ByteString(b"-----BEGIN CERTIFICATE-----".to_vec()),
            )]));
            server.create(&secret)?;
            let mut ingress = Ingress::default();
            ingress.metadata.namespace = Some(ns.clone());
            ingress.metadata.name = Some(app.clone());
            ingress.spec = Some(IngressSpec {
                tls: Some(vec![IngressTLS {
                    secret_name: Some(format!("{app}-tls")),
                    ..Default::default()
                }]),
                rules: Some(vec![IngressRule {
                    host: Some(format!("{app}.{ns}.example")),
                    http: Some(HTTPIngressRuleValue {
                        paths: vec![HTTPIngressPath {
                            path: Some("/".into()),
                            path_type: "Prefix".into(),
                            backend: IngressBackend {
                                service: Some(IngressServiceBackend {
                                    name: app.clone(),
                                    ..Default::default()
                                }),
                                ..Default::default()
                            },
                        }],
                    }),
                }]),
                ..Default::default()
            });
            server.create(&ingress)?;
        }
    }
    Ok(())
}

/// Serves `registry` as OpenMetrics text on `/metrics` of a loopback port.
#[cfg(feature = "metrics")]
async fn serve_metrics(
    registry: prometheus_client::registry::Registry,
) -> std::io::Result<std::net::SocketAddr> {
    let registry = Arc::new(registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = Arc::clone(&registry);
            async move {
                let mut text = String::new();
                match prometheus_client::encoding::text::encode(&mut text, &registry) {
                    Ok(()) => Ok(text),
                    Err(_) => Err(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
                }
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// `GET /metrics` from `addr`, as a scraper would (HTTP/1.0: the body ends with the
/// connection).
#[cfg(feature = "metrics")]
async fn scrape(addr: std::net::SocketAddr) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await?;
    let mut response = String::new();
    conn.read_to_string(&mut response).await?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}
