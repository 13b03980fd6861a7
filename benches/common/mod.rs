//! The workload both benchmark targets share: ConfigMaps of about 1 KB, spread evenly
//! over namespaces, as a controller watching ConfigMaps across a cluster would hold.
//!
//! Everything is generated from a fixed seed, so two runs (and the two benchmark
//! targets) see the same objects.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub(crate) mod paired;

/// Namespaces in the full workload.
pub(crate) const NAMESPACES: usize = 100;
/// ConfigMaps per namespace.
pub(crate) const PER_NAMESPACE: usize = 1_000;
/// Objects in the full workload.
pub(crate) const OBJECTS: usize = NAMESPACES * PER_NAMESPACE;

/// The objects of one workload and the keys they are stored under.
pub(crate) struct Workload {
    /// `namespaces[n]` is `team-{n:03}`.
    pub(crate) namespaces: Vec<String>,
    /// In namespace-major order: object `i` lives in namespace `i / PER_NAMESPACE`, so
    /// the first `10 * PER_NAMESPACE` objects are exactly the first ten namespaces.
    pub(crate) objects: Vec<Arc<ConfigMap>>,
    /// `keys[i]` is `[namespace, name]` of `objects[i]`, the composite key of every
    /// store under test.
    pub(crate) keys: Vec<[String; 2]>,
}

impl Workload {
    /// `namespaces * PER_NAMESPACE` objects, deterministic for a given `seed`.
    pub(crate) fn generate(namespaces: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let ns_names: Vec<String> = (0..namespaces).map(|n| format!("team-{n:03}")).collect();
        let mut objects = Vec::with_capacity(namespaces * PER_NAMESPACE);
        let mut keys = Vec::with_capacity(namespaces * PER_NAMESPACE);
        for (n, ns) in ns_names.iter().enumerate() {
            for j in 0..PER_NAMESPACE {
                let i = n * PER_NAMESPACE + j;
                let cm = config_map(ns, i, &mut rng);
                keys.push([ns.clone(), cm.metadata.name.clone().unwrap_or_default()]);
                objects.push(Arc::new(cm));
            }
        }
        Self {
            namespaces: ns_names,
            objects,
            keys,
        }
    }

    /// The mean number of bytes in the `data` values and keys: the "~1 KB" of the
    /// workload.
    pub(crate) fn mean_data_bytes(&self) -> usize {
        let total: usize = self
            .objects
            .iter()
            .map(|o| {
                o.data
                    .as_ref()
                    .map_or(0, |d| d.iter().map(|(k, v)| k.len() + v.len()).sum())
            })
            .sum();
        total / self.objects.len().max(1)
    }
}

/// The next version of `cm` as a watch would deliver it after an edit: a new
/// resourceVersion and one changed value; same identity (uid), namespace and name.
pub(crate) fn next_version(cm: &ConfigMap) -> ConfigMap {
    let mut next = cm.clone();
    let rv: u64 = next
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    next.metadata.resource_version = Some((rv + 1_000_000).to_string());
    if let Some(data) = next.data.as_mut() {
        data.insert("LOG_LEVEL".into(), "debug".into());
    }
    next
}

/// `len` indices into `0..n`, uniformly random: generated before measuring, so that
/// no benchmark loop calls the RNG.
pub(crate) fn uniform_indices(n: usize, len: usize, seed: u64) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(0..n) as u32).collect()
}

/// `len` indices drawn uniformly from a fixed random subset of `hot` of `0..n`.
pub(crate) fn hot_indices(n: usize, hot: usize, len: usize, seed: u64) -> Vec<u32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let set: Vec<u32> = (0..hot).map(|_| rng.random_range(0..n) as u32).collect();
    (0..len)
        .map(|_| set[rng.random_range(0..set.len())])
        .collect()
}

fn hex(rng: &mut StdRng, digits: usize) -> String {
    let mut s = String::with_capacity(digits);
    for _ in 0..digits {
        let d: u32 = rng.random_range(0..16);
        s.push(char::from_digit(d, 16).unwrap_or('0'));
    }
    s
}

/// One ConfigMap of about 1 KB of data, with the labels and annotation a Helm-managed
/// application carries.
fn config_map(ns: &str, i: usize, rng: &mut StdRng) -> ConfigMap {
    let app = format!("svc-{i:05}");
    let name = format!("config-{i:05}-{}", hex(rng, 6));
    let uid = format!(
        "{}-{}-4{}-a{}-{}",
        hex(rng, 8),
        hex(rng, 4),
        hex(rng, 3),
        hex(rng, 3),
        hex(rng, 12)
    );

    let mut yaml = String::with_capacity(600);
    let _ = write!(
        yaml,
        "server:\n  port: 8080\n  shutdownGracePeriod: 30s\n  maxRequestBytes: 1048576\n\
         database:\n  host: postgres.{ns}.svc.cluster.local\n  port: 5432\n  name: {app}\n  \
         pool:\n    min: 2\n    max: 20\n    idleTimeout: 5m\n\
         cache:\n  redis: redis-master.{ns}.svc.cluster.local:6379\n  ttl: 10m\n\
         upstreams:\n"
    );
    for u in 0..5 {
        let _ = writeln!(
            yaml,
            "  - name: dep-{u}\n    url: http://svc-{:05}.{ns}.svc.cluster.local:8080\n    \
             timeout: {}ms",
            rng.random_range(0..OBJECTS),
            100 * (u + 1)
        );
    }
    let mut props = String::with_capacity(200);
    for (k, v) in [
        ("root", "INFO"),
        ("org.apache.http", "WARN"),
        ("io.grpc", "WARN"),
        ("com.example", "DEBUG"),
    ] {
        let _ = writeln!(props, "logging.level.{k}={v}");
    }
    let _ = writeln!(
        props,
        "logging.pattern.console=%d{{ISO8601}} %-5level [%thread] %logger{{36}} - %msg%n"
    );
    let flags = format!(
        "{{\"newCheckout\":{},\"betaSearch\":{},\"rolloutPercent\":{},\"build\":\"{}\"}}",
        rng.random_bool(0.5),
        rng.random_bool(0.5),
        rng.random_range(0..100),
        hex(rng, 12)
    );

    let data = BTreeMap::from([
        ("application.yaml".to_string(), yaml),
        ("logging.properties".to_string(), props),
        ("FEATURE_FLAGS".to_string(), flags),
        ("LOG_LEVEL".to_string(), "info".to_string()),
        (
            "ENDPOINT".to_string(),
            format!("https://{app}.{ns}.svc.cluster.local:8443"),
        ),
    ]);
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), app.clone()),
        (
            "app.kubernetes.io/instance".to_string(),
            format!("{app}-prod"),
        ),
        ("app.kubernetes.io/part-of".to_string(), ns.to_string()),
        (
            "app.kubernetes.io/managed-by".to_string(),
            "Helm".to_string(),
        ),
    ]);
    let annotations = BTreeMap::from([(
        "meta.helm.sh/release-name".to_string(),
        format!("{app}-prod"),
    )]);

    let mut cm = ConfigMap::default();
    cm.metadata.namespace = Some(ns.to_string());
    cm.metadata.name = Some(name);
    cm.metadata.uid = Some(uid);
    cm.metadata.resource_version = Some((1_000_000 + i).to_string());
    cm.metadata.labels = Some(labels);
    cm.metadata.annotations = Some(annotations);
    cm.data = Some(data);
    cm
}

/// A TLS Secret of `crt + key` random bytes of data, labelled like cert-manager's
/// (shared by the on-demand tier's speed and memory benchmarks).
pub(crate) fn tls_secret(
    ns: &str,
    name: &str,
    crt: usize,
    key: usize,
    rng: &mut StdRng,
) -> k8s_openapi::api::core::v1::Secret {
    use k8s_openapi::ByteString;
    let mut bytes = |len: usize| {
        let mut v = vec![0u8; len];
        rng.fill(&mut v[..]);
        ByteString(v)
    };
    let mut s = k8s_openapi::api::core::v1::Secret::default();
    s.metadata.namespace = Some(ns.into());
    s.metadata.name = Some(name.into());
    s.metadata.labels = Some(BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), name.to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "cert-manager".to_owned(),
        ),
    ]));
    s.type_ = Some("kubernetes.io/tls".into());
    s.data = Some(BTreeMap::from([
        ("tls.crt".to_owned(), bytes(crt)),
        ("tls.key".to_owned(), bytes(key)),
    ]));
    s
}

/// Criterion's results as the summary tables read them.
pub(crate) mod criterion_results {
    use std::path::PathBuf;
    use std::time::SystemTime;

    /// Where criterion writes its results, found as criterion finds it.
    pub(crate) fn dir() -> PathBuf {
        if let Some(home) = std::env::var_os("CRITERION_HOME") {
            return PathBuf::from(home);
        }
        if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
            return PathBuf::from(target).join("criterion");
        }
        let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
            let out = std::process::Command::new(cargo)
                .args(["metadata", "--format-version", "1", "--no-deps"])
                .output()
                .ok()?;
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            Some(PathBuf::from(v.get("target_directory")?.as_str()?))
        });
        from_metadata
            .unwrap_or_else(|| PathBuf::from("target"))
            .join("criterion")
    }

    /// The median time per iteration in nanoseconds of `group/id`, if this process
    /// measured it (criterion writes `new/estimates.json` for every benchmark it runs;
    /// older files are from other runs and are ignored).
    pub(crate) fn median_ns(
        dir: &std::path::Path,
        since: SystemTime,
        group: &str,
        id: &str,
    ) -> Option<f64> {
        let path = dir.join(group).join(id).join("new").join("estimates.json");
        let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
        if modified < since {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        v.get("median")?.get("point_estimate")?.as_f64()
    }

    /// A time in ns, µs or ms.
    pub(crate) fn time(ns: f64) -> String {
        if ns >= 1e6 {
            format!("{:.2} ms", ns / 1e6)
        } else if ns >= 1e3 {
            format!("{:.2} µs", ns / 1e3)
        } else {
            format!("{ns:.1} ns")
        }
    }
}
