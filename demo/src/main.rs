//! The k8s-store demo: a synthetic cluster in an in-process API server, stores fed by
//! watches as the example configuration says, and an ingress-controller-like render
//! loop reading them while the cluster churns. With `--kubeconfig` (or `KUBECONFIG`)
//! it runs the same watches and renders read-only against a real cluster.

mod cluster;

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
use k8s_store_sim::{ApiServer, Verb};
use kube::api::DynamicObject;

use cluster::{Rng, Scale};

/// The example configuration shipped in the repository (`config/example.yaml`), used
/// when `--config` is not given.
const EXAMPLE_CONFIG: &str = include_str!("../../config/example.yaml");

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ScaleArg {
    /// 20 namespaces: 200 Ingresses, 500 Services, 1,000 EndpointSlices, 2,000 Secrets.
    Small,
    /// 200 namespaces: 2,000 Ingresses, 5,000 Services, 10,000 EndpointSlices, 20,000 Secrets.
    Full,
}

/// Runs k8s-store against a synthetic cluster (or a real one) and reports what it did.
///
/// Without a kubeconfig: starts an in-process Kubernetes API server, seeds it with a
/// synthetic cluster, loads the example configuration (Ingresses, Services and
/// EndpointSlices in full stores, Secrets on demand), syncs the stores from watches,
/// then runs renders (list every Ingress; get its Services, their EndpointSlices and
/// its TLS Secrets) while the API server applies churn, and prints a report.
///
/// With --kubeconfig or KUBECONFIG: the same watches and renders, read-only, against
/// that cluster (no seeding, no churn).
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
        None => Config::from_yaml(EXAMPLE_CONFIG).context("the built-in example configuration")?,
    };
    for name in ["ingresses", "services", "endpointslices", "secrets"] {
        if config.get(name).is_none() {
            bail!(
                "the configuration has no store named {name:?}; the demo's renders read \
                 ingresses, services, endpointslices and secrets (see config/example.yaml)"
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
    let total = (scale.ingresses() + scale.services() + scale.slices() + scale.secrets()) as u64;
    let pb = bar(multi, quiet, total, "seeding the API server".into());
    let mut rng = Rng::new(42);
    for n in 0..scale.namespaces {
        let ns = cluster::namespace(n);
        for s in 0..scale.services_per_ns {
            server.create(&cluster::service(&ns, s))?;
            for k in 0..scale.slices_per_service {
                server.create(&cluster::endpoint_slice(&ns, s, k, 0))?;
            }
            pb.inc(1 + scale.slices_per_service as u64);
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
            out.slices += slices.get(&[ns, svc]).await?.len() as u64;
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
            0..=5 => {
                let s = rng.below(scale.services_per_ns);
                let k = rng.below(scale.slices_per_service);
                server.upsert(&cluster::endpoint_slice(&ns, s, k, generation))?;
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
            let server = ApiServer::start()
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
                "seeded {} Ingresses, {} Services, {} EndpointSlices, {} Secrets in {:.2?}",
                scale.ingresses(),
                scale.services(),
                scale.slices(),
                scale.secrets(),
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
