//! The k8s-store demo: a synthetic cluster in an in-process API server, stores fed by
//! watches as the example configuration says, and an ingress-controller-like render
//! loop reading them while the cluster churns, then the questions a controller asks
//! its indexes (EndpointSlices by Service, Ingresses by TLS Secret, Pods by each
//! Service's selector), counted and timed. With `--kubeconfig` (or `KUBECONFIG`) it
//! runs the same watches, renders and queries read-only against a real cluster.

mod cluster;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use k8s_store::config::Config;
use k8s_store::stores::{AnyStore, Stores};
use k8s_store::{Selector, StoreError};
use k8s_store_sim::{ApiServer, Verb};
use kube::api::DynamicObject;

use cluster::{Rng, Scale};

/// The example configuration shipped in the repository (`config/example.yaml`), used
/// when `--config` is not given.
const EXAMPLE_CONFIG: &str = include_str!("../../config/example.yaml");

/// The demo's Pods store (`demo/pods.yaml`), added to the example configuration's
/// stores when `--config` is not given.
const PODS_CONFIG: &str = include_str!("../pods.yaml");

/// The EndpointSlices' secondary index by the Service they belong to.
const BY_SERVICE: &str = "by_service";
/// The Ingresses' secondary index by the TLS Secrets they name.
const BY_TLS_SECRET: &str = "by_tls_secret";
/// The secondary indexes the renders and queries read: (store, index).
const INDEXES: [(&str, &str); 2] = [("endpointslices", BY_SERVICE), ("ingresses", BY_TLS_SECRET)];

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScaleArg {
    /// 20 namespaces: 200 Ingresses, 500 Services, 1,000 EndpointSlices, 2,000 Secrets,
    /// 1,180 Pods.
    Small,
    /// 200 namespaces: 2,000 Ingresses, 5,000 Services, 10,000 EndpointSlices, 20,000
    /// Secrets, 11,800 Pods.
    Full,
}

/// Runs k8s-store against a synthetic cluster (or a real one) and reports what it did.
///
/// Without a kubeconfig: starts an in-process Kubernetes API server, seeds it with a
/// synthetic cluster, loads the example configuration (Ingresses, Services and
/// EndpointSlices in full stores, Secrets on demand) and the demo's Pods store, syncs
/// the stores from watches, then runs renders (list every Ingress; get its Services,
/// their EndpointSlices and its TLS Secrets) while the API server applies churn, then
/// asks the secondary indexes and the label index (EndpointSlices of every Service,
/// Ingresses of every Secret, Pods of every Service's selector), and prints a report.
///
/// With --kubeconfig or KUBECONFIG: the same watches, renders and queries, read-only,
/// against that cluster (no seeding, no churn).
#[derive(Debug, Parser)]
#[command(name = "k8s-store-demo", version)]
struct Args {
    /// Size of the synthetic cluster.
    #[arg(long, value_enum, default_value = "full")]
    scale: ScaleArg,
    /// Seconds of renders (and churn) after the sync.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Configuration file (defaults to the example configuration, built in).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run read-only against this cluster instead of the in-process API server.
    /// Also taken from the KUBECONFIG environment variable.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// API server writes per second during the load (in-process server only).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    churn: u32,
    /// Concurrent render loops.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    renderers: u64,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                print!("{e}");
                return ExitCode::SUCCESS;
            }
            // One line: clap's first line, without its usage block.
            let rendered = e.to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            eprintln!("{first} (see --help)");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(args: &Args) -> Result<Config> {
    let config = match &args.config {
        Some(path) => Config::from_path(path)?,
        None => {
            let mut config =
                Config::from_yaml(EXAMPLE_CONFIG).context("the built-in example configuration")?;
            let pods = Config::from_yaml(PODS_CONFIG).context("the built-in Pods store")?;
            config.watched_resources.extend(pods.watched_resources);
            config
        }
    };
    for name in ["ingresses", "services", "endpointslices", "secrets"] {
        if config.get(name).is_none() {
            bail!(
                "the configuration has no store named {name:?}; the demo's renders read \
                 ingresses, services, endpointslices and secrets (see config/example.yaml)"
            );
        }
    }
    for (store, index) in INDEXES {
        if config
            .get(store)
            .is_some_and(|r| !r.indexes.contains_key(index))
        {
            bail!(
                "the store {store:?} has no index {index:?}; the demo's renders and queries \
                 read it (see config/example.yaml)"
            );
        }
    }
    Ok(config)
}

async fn real_client(path: &std::path::Path) -> Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    kube::Client::try_from(config).context("building the client")
}

fn bar(multi: &MultiProgress, quiet: bool, len: u64, msg: String) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = multi.add(ProgressBar::new(len));
    pb.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(msg);
    pb
}

fn seed(server: &ApiServer, scale: &Scale, multi: &MultiProgress, quiet: bool) -> Result<()> {
    let total =
        (scale.ingresses() + scale.services() + scale.slices() + scale.secrets() + scale.pods())
            as u64;
    let pb = bar(multi, quiet, total, "seeding the API server".into());
    let mut rng = Rng::new(42);
    let pods = cluster::pods_resource();
    for n in 0..scale.namespaces {
        let ns = cluster::namespace(n);
        for s in 0..scale.services_per_ns {
            server.create(&cluster::service(&ns, s))?;
            for k in 0..scale.slices_per_service {
                server.create(&cluster::endpoint_slice(&ns, s, k, 0))?;
            }
            let backing = cluster::service_pods(&ns, s, 0);
            pb.inc((1 + scale.slices_per_service + backing.len()) as u64);
            for pod in backing {
                server.create_json(&pods, pod)?;
            }
        }
        for pod in cluster::unselected_pods(&ns) {
            server.create_json(&pods, pod)?;
            pb.inc(1);
        }
        for i in 0..scale.ingresses_per_ns {
            server.create(&cluster::ingress(&ns, i, scale))?;
            server.create(&cluster::tls_secret(&ns, i, scale, &mut rng))?;
            pb.inc(2);
        }
        for k in 0..scale.opaque_secrets_per_ns {
            server.create(&cluster::opaque_secret(&ns, k, scale, &mut rng))?;
            pb.inc(1);
        }
    }
    pb.finish();
    Ok(())
}

/// What one render read.
#[derive(Debug, Default, Clone, Copy)]
struct Rendered {
    ingresses: u64,
    services: u64,
    slices: u64,
    secrets: u64,
}

fn strings_at<'a>(value: &'a serde_json::Value, path: &[&str]) -> Vec<&'a str> {
    // Walks objects by key and arrays element-wise, collecting the strings at the end.
    let mut current = vec![value];
    for key in path {
        let mut next = Vec::new();
        for v in current {
            match v {
                serde_json::Value::Array(items) => {
                    next.extend(items.iter().filter_map(|i| i.get(key)));
                }
                other => next.extend(other.get(key)),
            }
        }
        current = next
            .into_iter()
            .flat_map(|v| match v {
                serde_json::Value::Array(items) if *key != path[path.len() - 1] => {
                    items.iter().collect::<Vec<_>>()
                }
                other => vec![other],
            })
            .collect();
    }
    current
        .into_iter()
        .filter_map(serde_json::Value::as_str)
        .collect()
}

/// `get_by` on a store of either tier. `AnyStore` passes `get` and `list` through but
/// not `get_by`, so the demo matches on the tier.
async fn get_by(
    store: &AnyStore,
    index: &str,
    keys: &[&str],
) -> Result<Vec<Arc<DynamicObject>>, StoreError> {
    match store {
        AnyStore::Full(s) => s.get_by(index, keys),
        AnyStore::OnDemand(s) => s.get_by(index, keys).await,
    }
}

/// `select_in` on a store of either tier (as [`get_by`]).
async fn select_in(
    store: &AnyStore,
    namespace: &str,
    selector: &Selector,
) -> Result<Vec<Arc<DynamicObject>>, StoreError> {
    match store {
        AnyStore::Full(s) => Ok(s.select_in(namespace, selector)),
        AnyStore::OnDemand(s) => s.select_in(namespace, selector).await,
    }
}

/// One render: every Ingress, with its backends' Services and EndpointSlices and its
/// TLS Secrets, as an ingress controller builds its configuration.
async fn render(stores: &Stores) -> Result<Rendered> {
    let get = |name: &str| stores.get(name).context("store missing");
    let (ingresses, services, slices, secrets) = (
        get("ingresses")?,
        get("services")?,
        get("endpointslices")?,
        get("secrets")?,
    );
    let mut out = Rendered::default();
    for ing in &ingresses.list().await? {
        out.ingresses += 1;
        let ns = ing.metadata.namespace.as_deref().unwrap_or("");
        let spec = &ing.data["spec"];
        let mut backends = strings_at(
            spec,
            &["rules", "http", "paths", "backend", "service", "name"],
        );
        backends.sort_unstable();
        backends.dedup();
        for svc in backends {
            out.services += services.get(&[ns, svc]).await?.len() as u64;
            // The Service's slices, from the secondary index on their service-name label.
            out.slices += get_by(slices, BY_SERVICE, &[ns, svc]).await?.len() as u64;
        }
        for secret in strings_at(spec, &["tls", "secretName"]) {
            out.secrets += secrets.get(&[ns, secret]).await?.len() as u64;
        }
    }
    Ok(out)
}

/// Writes to the in-process API server at `rate` per second until `stop`.
async fn churn(
    server: Arc<ApiServer>,
    scale: Scale,
    rate: u32,
    stop: Arc<AtomicBool>,
) -> Result<u64> {
    if rate == 0 {
        return Ok(0);
    }
    let mut rng = Rng::new(7);
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut writes = 0u64;
    let mut generation = 1u64;
    while !stop.load(Ordering::Relaxed) {
        interval.tick().await;
        generation += 1;
        let ns = cluster::namespace(rng.below(scale.namespaces));
        match rng.below(10) {
            // Endpoints move most: pods come and go.
            0..=4 => {
                let s = rng.below(scale.services_per_ns);
                let k = rng.below(scale.slices_per_service);
                server.upsert(&cluster::endpoint_slice(&ns, s, k, generation))?;
            }
            // A container restarts (the Pod's status changes, its labels do not).
            5 => {
                let s = rng.below(scale.services_per_ns);
                let mut pods = cluster::service_pods(&ns, s, generation);
                if pods.is_empty() {
                    continue; // an external Service: no Pods
                }
                let pod = pods.swap_remove(rng.below(pods.len()));
                server.upsert_json(&cluster::pods_resource(), pod)?;
            }
            // Certificates rotate.
            6 | 7 => {
                let i = rng.below(scale.ingresses_per_ns);
                server.upsert(&cluster::tls_secret(&ns, i, &scale, &mut rng))?;
            }
            // A service is relabelled.
            8 => {
                let s = rng.below(scale.services_per_ns);
                let mut svc = cluster::service(&ns, s);
                svc.metadata
                    .labels
                    .get_or_insert_default()
                    .insert("rollout".into(), generation.to_string());
                server.upsert(&svc)?;
            }
            // An ingress is deleted and created again.
            _ => {
                let i = rng.below(scale.ingresses_per_ns);
                let name = format!("ingress-{i:02}");
                let _ =
                    server.delete::<k8s_openapi::api::networking::v1::Ingress>(Some(&ns), &name);
                server.create(&cluster::ingress(&ns, i, &scale))?;
                writes += 1;
            }
        }
        writes += 1;
    }
    Ok(writes)
}

/// How many queries the demo compares with the answer found without the index, per
/// kind of query (every n-th query, so that the comparisons cost a few hundred ms).
const SCAN_SAMPLES: usize = 100;

/// One kind of query the demo asks after the load: how many ran, what they returned,
/// how long each took, and a sample answered again without the index.
#[derive(Debug, Default)]
struct QueryRun {
    queries: usize,
    results: usize,
    times: Vec<Duration>,
    /// Per way of answering without the index: what it is, each sampled query's time,
    /// and how many of those answers were the same objects as the index's.
    baselines: Vec<(&'static str, Vec<Duration>, usize)>,
}

impl QueryRun {
    fn new(baselines: &[&'static str]) -> Self {
        Self {
            baselines: baselines.iter().map(|b| (*b, Vec::new(), 0)).collect(),
            ..Self::default()
        }
    }

    /// Whether query `i` of `total` is one of the sampled ones.
    fn sampled(i: usize, total: usize) -> bool {
        i.is_multiple_of(total.div_ceil(SCAN_SAMPLES).max(1))
    }

    /// Times `scan` (baseline `b`) and checks it found exactly `found`.
    fn baseline(
        &mut self,
        b: usize,
        found: &[Arc<DynamicObject>],
        scan: impl FnOnce() -> Vec<Arc<DynamicObject>>,
    ) {
        let t = Instant::now();
        let scanned = scan();
        let elapsed = t.elapsed();
        let (_, times, same) = &mut self.baselines[b];
        times.push(elapsed);
        if scanned.len() == found.len() && scanned.iter().zip(found).all(|(a, b)| Arc::ptr_eq(a, b))
        {
            *same += 1;
        }
    }
}

fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn mean(times: &[Duration]) -> Duration {
    let n = u32::try_from(times.len()).unwrap_or(u32::MAX).max(1);
    times.iter().sum::<Duration>() / n
}

fn labels(obj: &DynamicObject) -> &BTreeMap<String, String> {
    const NONE: &BTreeMap<String, String> = &BTreeMap::new();
    obj.metadata.labels.as_ref().unwrap_or(NONE)
}

fn in_namespace(obj: &DynamicObject, ns: &str) -> bool {
    obj.metadata.namespace.as_deref() == Some(ns)
}

/// A Service's `spec.selector`, or `None` for a Service without one: Kubernetes picks
/// no Pods for it, while the empty selector would pick them all.
fn service_selector(svc: &DynamicObject) -> Option<Selector> {
    let map: BTreeMap<String, String> = svc.data["spec"]["selector"]
        .as_object()?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect();
    (!map.is_empty()).then(|| Selector::from(&map))
}

/// The (namespace, name) of every object of `store`, without fetching a body.
async fn names(store: &AnyStore) -> Result<Vec<(String, String)>> {
    Ok(match store {
        AnyStore::Full(s) => s
            .list()
            .iter()
            .map(|o| {
                (
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default(),
                )
            })
            .collect(),
        AnyStore::OnDemand(s) => s
            .list_references()
            .iter()
            .map(|r| (r.namespace().to_owned(), r.name().to_owned()))
            .collect(),
    })
}

/// The questions a controller asks its indexes, asked once for every object they are
/// about, one at a time, each timed alone: the EndpointSlices of every Service
/// (`by_service`), the Ingresses of every Secret (`by_tls_secret`), and the Pods of
/// every Service's selector (the label index), when there is a `pods` store. A sample
/// of each is answered again without the index, from a snapshot, and compared.
async fn queries(
    stores: &Stores,
    pods_keyed_by_namespace: bool,
) -> Result<Vec<(&'static str, QueryRun)>> {
    let get = |name: &str| stores.get(name).context("store missing");
    let (services, slices, ingresses) =
        (get("services")?, get("endpointslices")?, get("ingresses")?);
    let services = services.list().await?;
    let mut out = Vec::new();

    // EndpointSlices by Service: what a proxy or an ingress controller reads per backend.
    let mut run = QueryRun::new(&["endpointslices: every slice read, label matched"]);
    let all = slices.list().await?;
    for (i, svc) in services.iter().enumerate() {
        let ns = svc.metadata.namespace.as_deref().unwrap_or("");
        let name = svc.metadata.name.as_deref().unwrap_or("");
        let t = Instant::now();
        let found = get_by(slices, BY_SERVICE, &[ns, name]).await?;
        run.times.push(t.elapsed());
        run.queries += 1;
        run.results += found.len();
        if QueryRun::sampled(i, services.len()) {
            run.baseline(0, &found, || {
                all.iter()
                    .filter(|o| {
                        in_namespace(o, ns)
                            && labels(o)
                                .get("kubernetes.io/service-name")
                                .map(String::as_str)
                                == Some(name)
                    })
                    .cloned()
                    .collect()
            });
        }
    }
    out.push(("endpointslices by Service (get_by by_service)", run));

    // Ingresses by TLS Secret: which Ingresses to reload when a Secret changes, asked
    // for every Secret (most are no Ingress's).
    let mut run = QueryRun::new(&["ingresses: every Ingress read, spec.tls matched"]);
    let all = ingresses.list().await?;
    let secrets = names(get("secrets")?).await?;
    for (i, (ns, name)) in secrets.iter().enumerate() {
        let t = Instant::now();
        let found = get_by(ingresses, BY_TLS_SECRET, &[ns.as_str(), name.as_str()]).await?;
        run.times.push(t.elapsed());
        run.queries += 1;
        run.results += found.len();
        if QueryRun::sampled(i, secrets.len()) {
            run.baseline(0, &found, || {
                all.iter()
                    .filter(|o| {
                        in_namespace(o, ns)
                            && strings_at(&o.data["spec"], &["tls", "secretName"])
                                .contains(&name.as_str())
                    })
                    .cloned()
                    .collect()
            });
        }
    }
    out.push(("ingresses by TLS Secret (get_by by_tls_secret)", run));

    // Pods by each Service's selector, in the Service's namespace.
    if let Some(pods) = stores.get("pods") {
        // A full store keyed by namespace first can also answer as controller-runtime
        // does: the namespace's objects (a prefix get), each matched.
        let mut baselines = vec!["pods: every Pod read, selector matched"];
        let by_namespace =
            (pods_keyed_by_namespace && matches!(pods, AnyStore::Full(_))).then(|| {
                baselines.push("pods: prefix get of the namespace, selector matched");
                baselines.len() - 1
            });
        let mut run = QueryRun::new(&baselines);
        let all = pods.list().await?;
        let selected: Vec<_> = services
            .iter()
            .filter_map(|svc| {
                Some((
                    svc.metadata.namespace.clone().unwrap_or_default(),
                    service_selector(svc)?,
                ))
            })
            .collect();
        for (i, (ns, selector)) in selected.iter().enumerate() {
            let t = Instant::now();
            let found = select_in(pods, ns, selector).await?;
            run.times.push(t.elapsed());
            run.queries += 1;
            run.results += found.len();
            if QueryRun::sampled(i, selected.len()) {
                run.baseline(0, &found, || {
                    all.iter()
                        .filter(|o| in_namespace(o, ns) && selector.matches(labels(o)))
                        .cloned()
                        .collect()
                });
                if let (Some(by_ns), AnyStore::Full(pods)) = (by_namespace, pods) {
                    run.baseline(by_ns, &found, || {
                        let in_ns = pods.get(&[ns.as_str()]).unwrap_or_default();
                        in_ns
                            .into_iter()
                            .filter(|o| selector.matches(labels(o)))
                            .collect()
                    });
                }
            }
        }
        out.push(("pods by Service selector (select_in)", run));
    }
    Ok(out)
}

fn approx_json_bytes(objects: &k8s_store::Snapshot<DynamicObject>) -> u64 {
    objects
        .iter()
        .map(|o| serde_json::to_vec(&**o).map_or(0, |v| v.len() as u64))
        .sum()
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

async fn run(args: Args) -> Result<()> {
    let config = load_config(&args)?;
    let kubeconfig = args.kubeconfig.clone().or_else(|| {
        std::env::var_os("KUBECONFIG")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let scale = match args.scale {
        ScaleArg::Small => Scale::SMALL,
        ScaleArg::Full => Scale::FULL,
    };
    let multi = MultiProgress::new();
    let started = Instant::now();

    let (server, client) = match &kubeconfig {
        Some(path) => {
            println!("cluster: {} (read-only)", path.display());
            (None, real_client(path).await?)
        }
        None => {
            // The server serves no Pods unless told to.
            let server = ApiServer::builder()
                .register(cluster::pods_resource(), true)
                .start()
                .await
                .context("starting the in-process API server")?;
            println!(
                "cluster: in-process API server at {} ({:?} scale)",
                server.url(),
                args.scale
            );
            let t = Instant::now();
            seed(&server, &scale, &multi, args.quiet)?;
            println!(
                "seeded {} Ingresses, {} Services, {} EndpointSlices, {} Secrets, {} Pods in {:.2?}",
                scale.ingresses(),
                scale.services(),
                scale.slices(),
                scale.secrets(),
                scale.pods(),
                t.elapsed()
            );
            let client = server.client();
            (Some(Arc::new(server)), client)
        }
    };

    // Sync.
    let sync_start = Instant::now();
    let stores = Stores::start(&config, client).context("starting the watches")?;
    let mut sync_times = Vec::new();
    {
        let bars: Vec<_> = stores
            .iter()
            .map(|(name, w)| {
                let expected = match (name, &server) {
                    ("ingresses", Some(_)) => scale.ingresses(),
                    ("services", Some(_)) => scale.services(),
                    ("endpointslices", Some(_)) => scale.slices(),
                    ("secrets", Some(_)) => scale.secrets(),
                    ("pods", Some(_)) => scale.pods(),
                    _ => 0,
                };
                (
                    name.to_owned(),
                    w,
                    bar(
                        &multi,
                        args.quiet,
                        expected as u64,
                        format!("syncing {name}"),
                    ),
                )
            })
            .collect();
        let mut pending: Vec<_> = bars.into_iter().collect();
        while !pending.is_empty() {
            pending.retain(|(name, w, pb)| {
                pb.set_position(w.status().stats().events.min(pb.length().unwrap_or(0)));
                if w.status().is_ready() {
                    pb.set_position(w.store.len() as u64);
                    pb.finish();
                    sync_times.push((name.clone(), sync_start.elapsed(), w.store.len()));
                    false
                } else {
                    true
                }
            });
            if sync_start.elapsed() > Duration::from_secs(300) {
                bail!("the stores did not sync within 5 minutes");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    println!("\nsync (initial list through watches, swapped in at once):");
    for (name, t, n) in &sync_times {
        println!("  {name:<16} {n:>7} objects  ready after {t:>9.2?}");
    }

    // Load: renders while the API server churns.
    let before: u64 = stores
        .iter()
        .map(|(_, w)| w.status().stats().applied + w.status().stats().deleted)
        .sum();
    let api_before = server.as_ref().map(|s| s.counters());
    let stop = Arc::new(AtomicBool::new(false));
    let churn_task = server
        .as_ref()
        .map(|s| tokio::spawn(churn(Arc::clone(s), scale, args.churn, Arc::clone(&stop))));
    let renders = Arc::new(AtomicU64::new(0));
    let stores = Arc::new(stores);
    let load_start = Instant::now();
    let deadline = load_start + Duration::from_secs(args.duration);
    let pb = if args.quiet {
        ProgressBar::hidden()
    } else {
        let pb = multi.add(ProgressBar::new(args.duration));
        pb.set_style(
            ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} s")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        pb.set_message("renders under churn");
        pb
    };
    let mut tasks = Vec::new();
    for _ in 0..args.renderers {
        let stores = Arc::clone(&stores);
        let renders = Arc::clone(&renders);
        tasks.push(tokio::spawn(async move {
            let mut last = Rendered::default();
            while Instant::now() < deadline {
                last = render(&stores).await?;
                renders.fetch_add(1, Ordering::Relaxed);
                // A render served from memory never waits, so it never yields on its
                // own: let the watches and the churn run between renders.
                tokio::task::yield_now().await;
            }
            Ok::<_, anyhow::Error>(last)
        }));
    }
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        pb.set_position(load_start.elapsed().as_secs().min(args.duration));
    }
    let mut last = Rendered::default();
    for t in tasks {
        last = t.await.context("a render task panicked")??;
    }
    let load_time = load_start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let writes = match churn_task {
        Some(t) => t.await.context("the churn task panicked")??,
        None => 0,
    };
    // Let the watches catch up with the last writes before counting events.
    tokio::time::sleep(Duration::from_millis(300)).await;
    pb.finish();
    let after: u64 = stores
        .iter()
        .map(|(_, w)| w.status().stats().applied + w.status().stats().deleted)
        .sum();

    let renders = renders.load(Ordering::Relaxed);
    println!(
        "\nload ({:.1?}, {} render loops):",
        load_time, args.renderers
    );
    println!(
        "  renders            {renders} ({:.1}/s), each reading {} Ingresses, {} Services, {} EndpointSlices, {} Secrets",
        renders as f64 / load_time.as_secs_f64(),
        last.ingresses,
        last.services,
        last.slices,
        last.secrets
    );
    println!(
        "  churn              {writes} API writes ({:.0}/s)",
        writes as f64 / load_time.as_secs_f64()
    );
    println!(
        "  events applied     {} ({:.0}/s)",
        after - before,
        (after - before) as f64 / load_time.as_secs_f64()
    );

    // Queries: on the settled stores (the churn has stopped), one at a time.
    let pods_keyed_by_namespace = config
        .get("pods")
        .is_some_and(|r| r.index_by.first().map(String::as_str) == Some("metadata.namespace"));
    let runs = queries(&stores, pods_keyed_by_namespace).await?;
    println!(
        "\nqueries (after the load, one at a time, each timed alone: the demo's own timing on \
         this machine{}, not a benchmark):",
        if cfg!(debug_assertions) {
            " in a debug build"
        } else {
            ""
        }
    );
    println!(
        "  {:<48} {:>7} {:>7} {:>10} {:>10}",
        "", "queries", "results", "median", "mean"
    );
    for (what, run) in &runs {
        println!(
            "  {what:<48} {:>7} {:>7} {:>10.2?} {:>10.2?}",
            run.queries,
            run.results,
            median(&run.times),
            mean(&run.times)
        );
    }
    if let Some(pods) = stores.get("pods") {
        let stats = match pods {
            AnyStore::Full(s) => s.select_stats(),
            AnyStore::OnDemand(s) => s.select_stats(),
        };
        println!(
            "  pods select_stats: {} answered from the label index, {} by reading every Pod",
            stats.indexed, stats.scans
        );
    }
    println!(
        "  without the indexes (up to {SCAN_SAMPLES} of each kind, answered again; a live \
         cluster may change in between):"
    );
    for (_, run) in &runs {
        // Medians: one query preempted or faulting in a page moves a mean of 100.
        let indexed = median(&run.times).as_secs_f64().max(1e-9);
        for (how, times, same) in &run.baselines {
            let m = median(times);
            println!(
                "    {how:<52} median {m:>10.2?} {:>6.0}x, same objects {same}/{}",
                m.as_secs_f64() / indexed,
                times.len()
            );
        }
    }

    println!("\nstores:");
    for (name, w) in stores.iter() {
        let stats = w.status().stats();
        match &w.store {
            AnyStore::Full(s) => {
                let snapshot = s.list();
                println!(
                    "  {name:<16} full       {:>7} objects, ~{} as JSON; watch: {} relists, {} errors",
                    snapshot.len(),
                    mib(approx_json_bytes(&snapshot)),
                    stats.relists,
                    stats.watch_errors
                );
            }
            AnyStore::OnDemand(s) => {
                let c = s.stats();
                println!(
                    "  {name:<16} on-demand  {:>7} references, {} bodies cached ({}); watch: {} relists, {} errors",
                    s.len(),
                    c.entries,
                    mib(c.bytes),
                    stats.relists,
                    stats.watch_errors
                );
                println!(
                    "  {:<16}            hit ratio {:.1}% ({} hits, {} misses), {} fetches, {} saved by singleflight, {} fetch errors",
                    "",
                    c.hit_ratio() * 100.0,
                    c.hits,
                    c.misses,
                    c.fetches,
                    c.coalesced,
                    c.fetch_errors
                );
            }
        }
    }

    if let (Some(server), Some(before)) = (&server, api_before) {
        let now = server.counters();
        println!("\nAPI calls during the load (in-process server's counters):");
        for (verb, plural) in [
            (Verb::Get, "secrets"),
            (Verb::List, "ingresses"),
            (Verb::Watch, "ingresses"),
            (Verb::Watch, "services"),
            (Verb::Watch, "endpointslices"),
            (Verb::Watch, "secrets"),
            (Verb::Watch, "pods"),
        ] {
            println!(
                "  {:<6} {plural:<16} {}",
                verb.as_str(),
                now.requests(verb, plural) - before.requests(verb, plural)
            );
        }
        println!(
            "  total               {} (peak {} in flight)",
            now.total_requests() - before.total_requests(),
            now.peak_in_flight()
        );
    }
    println!("\ndone in {:.1?}", started.elapsed());
    Ok(())
}
