//! A synthetic cluster shaped like a real one: namespaces of services, each with
//! EndpointSlices labelled with its name and the Pods its selector picks, ingresses
//! routing to them with TLS secrets, opaque secrets of a few KB, and a few Pods no
//! Service selects. Deterministic for a given scale.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ApiResource;
use serde_json::{Value, json};

/// How big the synthetic cluster is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scale {
    pub(crate) namespaces: usize,
    pub(crate) services_per_ns: usize,
    pub(crate) ingresses_per_ns: usize,
    pub(crate) slices_per_service: usize,
    pub(crate) opaque_secrets_per_ns: usize,
    pub(crate) secret_bytes: usize,
}

impl Scale {
    /// 200 namespaces: 2,000 Ingresses, 5,000 Services, 10,000 EndpointSlices,
    /// 20,000 Secrets (2,000 TLS + 18,000 opaque) of about 4 KB.
    pub(crate) const FULL: Scale = Scale {
        namespaces: 200,
        services_per_ns: 25,
        ingresses_per_ns: 10,
        slices_per_service: 2,
        opaque_secrets_per_ns: 90,
        secret_bytes: 3 * 1024,
    };
    /// A tenth of that, for CI.
    pub(crate) const SMALL: Scale = Scale {
        namespaces: 20,
        ..Scale::FULL
    };

    pub(crate) fn ingresses(&self) -> usize {
        self.namespaces * self.ingresses_per_ns
    }
    pub(crate) fn services(&self) -> usize {
        self.namespaces * self.services_per_ns
    }
    pub(crate) fn slices(&self) -> usize {
        self.services() * self.slices_per_service
    }
    pub(crate) fn secrets(&self) -> usize {
        self.namespaces * (self.ingresses_per_ns + self.opaque_secrets_per_ns)
    }
    /// The Pods of every Service of a namespace and the few no Service selects.
    pub(crate) fn pods_per_ns(&self) -> usize {
        (0..self.services_per_ns)
            .map(|s| pod_count(backing(s)))
            .sum::<usize>()
            + UNSELECTED_PODS
    }
    pub(crate) fn pods(&self) -> usize {
        self.namespaces * self.pods_per_ns()
    }
}

/// A small deterministic PRNG (xorshift64*), so the demo needs no `rand`.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub(crate) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TEAMS: [&str; 6] = [
    "payments", "search", "checkout", "identity", "catalog", "platform",
];

pub(crate) fn namespace(i: usize) -> String {
    format!("{}-{:03}", TEAMS[i % TEAMS.len()], i)
}

pub(crate) fn service_name(s: usize) -> String {
    format!("svc-{s:02}")
}

fn app_labels(app: &str, ns: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".into(), app.into()),
        ("app.kubernetes.io/instance".into(), format!("{app}-{ns}")),
        ("app.kubernetes.io/managed-by".into(), "Helm".into()),
        ("helm.sh/chart".into(), format!("{app}-1.4.2")),
    ])
}

fn last_applied(kind: &str, ns: &str, name: &str) -> BTreeMap<String, String> {
    // What `kubectl apply` leaves behind: a copy of the object, stripped by the demo's
    // configuration (`ignore_fields`).
    let copy = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"{kind}\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"{ns}\",\"labels\":{{\"team\":\"{ns}\"}}}},\"spec\":{{{}}}}}",
        "\"x\":1,".repeat(40).trim_end_matches(',')
    );
    BTreeMap::from([
        (
            "kubectl.kubernetes.io/last-applied-configuration".into(),
            copy,
        ),
        ("meta.helm.sh/release-name".into(), name.into()),
        ("meta.helm.sh/release-namespace".into(), ns.into()),
    ])
}

fn meta(ns: &str, name: &str, app: &str, kind: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        labels: Some(app_labels(app, ns)),
        annotations: Some(last_applied(kind, ns, name)),
        ..ObjectMeta::default()
    }
}

/// What stands behind Service `s` of a namespace: it decides the Service's selector
/// and which Pods exist for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// A Deployment of `replicas` Pods, plus one canary Pod (its own ReplicaSet, the
    /// same app labels) when `canary`. The Service selects `app.kubernetes.io/name` and
    /// `app.kubernetes.io/instance`, so it serves the canary too.
    Deployment { replicas: usize, canary: bool },
    /// A StatefulSet of a primary and two replicas; the Service selects the primary
    /// only (`app.kubernetes.io/component: primary` besides name and instance).
    Primary,
    /// An external database: no selector, EndpointSlices written by hand. Kubernetes
    /// picks no Pods for a Service without a selector, so neither may a controller
    /// (an empty selector would select every Pod).
    External,
}

/// The Backing of Service `s`: in each namespace of 25, one external Service, five
/// primaries and nineteen Deployments of 1 to 3 replicas, three of them with a canary.
pub(crate) fn backing(s: usize) -> Backing {
    if s % 25 == 24 {
        Backing::External
    } else if s % 5 == 3 {
        Backing::Primary
    } else {
        Backing::Deployment {
            replicas: 1 + s % 3,
            canary: s.is_multiple_of(6),
        }
    }
}

fn pod_count(backing: Backing) -> usize {
    match backing {
        Backing::Deployment { replicas, canary } => replicas + usize::from(canary),
        Backing::Primary => 3,
        Backing::External => 0,
    }
}

/// Pods per namespace that no Service selects: two finished Job Pods and a debugging
/// toolbox.
const UNSELECTED_PODS: usize = 3;

fn service_selector(ns: &str, s: usize) -> Option<BTreeMap<String, String>> {
    let name = service_name(s);
    let mut selector = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), name.clone()),
        (
            "app.kubernetes.io/instance".to_owned(),
            format!("{name}-{ns}"),
        ),
    ]);
    match backing(s) {
        Backing::Deployment { .. } => {}
        Backing::Primary => {
            selector.insert("app.kubernetes.io/component".into(), "primary".into());
        }
        Backing::External => return None,
    }
    Some(selector)
}

pub(crate) fn service(ns: &str, s: usize) -> Service {
    let name = service_name(s);
    Service {
        metadata: meta(ns, &name, &name, "Service"),
        spec: Some(ServiceSpec {
            selector: service_selector(ns, s),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: 80,
                target_port: Some(
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080),
                ),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            cluster_ip: Some(format!("10.96.{}.{}", s % 250, (s * 7) % 250)),
            type_: Some("ClusterIP".into()),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

pub(crate) fn endpoint_slice(ns: &str, s: usize, k: usize, generation: u64) -> EndpointSlice {
    let svc = service_name(s);
    let name = format!("{svc}-{k}");
    let mut metadata = meta(ns, &name, &svc, "EndpointSlice");
    metadata
        .labels
        .get_or_insert_default()
        .insert("kubernetes.io/service-name".into(), svc.clone());
    metadata.labels.get_or_insert_default().insert(
        "endpointslice.kubernetes.io/managed-by".into(),
        "endpointslice-controller.k8s.io".into(),
    );
    metadata.annotations = None;
    let endpoints: Vec<Endpoint> = (0..3 + (s + k + generation as usize) % 3)
        .map(|e| Endpoint {
            addresses: vec![format!(
                "10.{}.{}.{}",
                1 + s % 200,
                k * 10 + e,
                generation % 250
            )],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            node_name: Some(format!("node-{}", (s + e) % 40)),
            zone: Some(["eu-west-1a", "eu-west-1b", "eu-west-1c"][e % 3].into()),
            ..Endpoint::default()
        })
        .collect();
    EndpointSlice {
        metadata,
        address_type: "IPv4".into(),
        endpoints: Some(endpoints),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]),
    }
}

pub(crate) fn tls_secret_name(i: usize) -> String {
    format!("ingress-{i:02}-tls")
}

pub(crate) fn ingress(ns: &str, i: usize, scale: &Scale) -> Ingress {
    let name = format!("ingress-{i:02}");
    let host = format!("{name}.{ns}.example.com");
    let backends: Vec<usize> = (0..2)
        .map(|b| (i * 2 + b) % scale.services_per_ns)
        .collect();
    let paths = backends
        .iter()
        .enumerate()
        .map(|(b, &s)| HTTPIngressPath {
            path: Some(if b == 0 {
                "/".into()
            } else {
                format!("/api/v{b}")
            }),
            path_type: "Prefix".into(),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: service_name(s),
                    port: Some(ServiceBackendPort {
                        number: Some(80),
                        name: None,
                    }),
                }),
                resource: None,
            },
        })
        .collect();
    Ingress {
        metadata: meta(ns, &name, &name, "Ingress"),
        spec: Some(IngressSpec {
            ingress_class_name: Some("nginx".into()),
            tls: Some(vec![IngressTLS {
                hosts: Some(vec![host.clone()]),
                secret_name: Some(tls_secret_name(i)),
            }]),
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            default_backend: None,
        }),
        status: None,
    }
}

fn filler(rng: &mut Rng, bytes: usize) -> Vec<u8> {
    (0..bytes)
        .map(|_| b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/"[rng.below(44)])
        .collect()
}

pub(crate) fn tls_secret(ns: &str, i: usize, scale: &Scale, rng: &mut Rng) -> Secret {
    let name = tls_secret_name(i);
    let mut s = Secret {
        metadata: meta(ns, &name, &format!("ingress-{i:02}"), "Secret"),
        type_: Some("kubernetes.io/tls".into()),
        ..Secret::default()
    };
    s.metadata.annotations = Some(BTreeMap::from([(
        "cert-manager.io/issuer-name".into(),
        "letsencrypt-prod".into(),
    )]));
    s.data = Some(BTreeMap::from([
        (
            "tls.crt".into(),
            ByteString(filler(rng, scale.secret_bytes * 2 / 3)),
        ),
        (
            "tls.key".into(),
            ByteString(filler(rng, scale.secret_bytes / 3)),
        ),
    ]));
    s
}

pub(crate) fn opaque_secret(ns: &str, k: usize, scale: &Scale, rng: &mut Rng) -> Secret {
    let name = format!("app-config-{k:02}");
    let mut s = Secret {
        metadata: meta(ns, &name, &format!("app-{}", k % 10), "Secret"),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    s.metadata.annotations = None;
    let n = scale.secret_bytes / 2 + rng.below(scale.secret_bytes);
    s.data = Some(BTreeMap::from([
        ("password".into(), ByteString(filler(rng, 32))),
        ("config.json".into(), ByteString(filler(rng, n))),
    ]));
    s
}

/// The resource the demo's API server serves Pods as (the in-process server serves none
/// unless told to).
pub(crate) fn pods_resource() -> ApiResource {
    ApiResource::erase::<k8s_openapi::api::core::v1::Pod>(&())
}

/// A lowercase token of `len` characters from Kubernetes' name alphabet (as in a
/// ReplicaSet's pod-template-hash or a Pod's random suffix), the same for the same seed.
fn token(seed: u64, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    (0..len)
        .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len())]))
        .collect()
}

fn seed_of(ns: &str, s: usize) -> u64 {
    ns.bytes().fold(s as u64 + 1, |h, b| {
        h.wrapping_mul(31).wrapping_add(u64::from(b))
    })
}

/// A running Pod as its controller (`owner`, a `(kind, name)`) and the kubelet leave it,
/// about 2 KB as JSON.
fn pod(
    ns: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    owner: Option<(&str, &str)>,
    image: &str,
    n: u64,
    restarts: u64,
) -> Value {
    let owners: Vec<Value> = owner
        .into_iter()
        .map(|(kind, owner)| {
            json!({
                "apiVersion": if kind == "Job" { "batch/v1" } else { "apps/v1" },
                "kind": kind,
                "name": owner,
                "uid": format!("{}-{}", token(n ^ 0x5eed, 8), token(n, 12)),
                "controller": true,
                "blockOwnerDeletion": true,
            })
        })
        .collect();
    let ip = format!("10.244.{}.{}", (n / 250) % 250, n % 250);
    let node = format!("node-{:02}", n % 40);
    let finished = owner.is_some_and(|(kind, _)| kind == "Job");
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "namespace": ns,
            "name": name,
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
            },
            "ownerReferences": owners,
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": "default",
            "restartPolicy": if finished { "Never" } else { "Always" },
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "containers": [{
                "name": "app",
                "image": image,
                "ports": [
                    {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                    {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                ],
                "env": [
                    {"name": "LOG_LEVEL", "value": "info"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                ],
                "resources": {
                    "requests": {"cpu": "100m", "memory": "128Mi"},
                    "limits": {"memory": "256Mi"},
                },
                "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10},
                "volumeMounts": [{
                    "name": "kube-api-access",
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                    "readOnly": true,
                }],
            }],
            "volumes": [{
                "name": "kube-api-access",
                "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]},
            }],
        },
        "status": {
            "phase": if finished { "Succeeded" } else { "Running" },
            "podIP": ip,
            "hostIP": format!("192.168.0.{}", 10 + n % 40),
            "qosClass": "Burstable",
            "conditions": [
                {"type": "Ready", "status": if finished { "False" } else { "True" }},
                {"type": "ContainersReady", "status": if finished { "False" } else { "True" }},
                {"type": "PodScheduled", "status": "True"},
            ],
            "containerStatuses": [{
                "name": "app",
                "image": image,
                "imageID": format!("{image}@sha256:{}", token(n ^ 0x1a6e, 40)),
                "ready": !finished,
                "started": !finished,
                "restartCount": restarts,
                "state": if finished {
                    json!({"terminated": {"exitCode": 0, "reason": "Completed"}})
                } else {
                    json!({"running": {}})
                },
            }],
        },
    })
}

/// The Pods behind Service `s` of `ns` (none for an external one), in a fixed order;
/// `restarts` is their containers' restart count (the churn raises it).
pub(crate) fn service_pods(ns: &str, s: usize, restarts: u64) -> Vec<Value> {
    let app = service_name(s);
    let seed = seed_of(ns, s);
    let image = format!("registry.example.com/{}/{app}:1.{}.0", ns, s % 7);
    let base = |component: &str| {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), app.clone()),
            (
                "app.kubernetes.io/instance".to_owned(),
                format!("{app}-{ns}"),
            ),
            (
                "app.kubernetes.io/component".to_owned(),
                component.to_owned(),
            ),
        ])
    };
    match backing(s) {
        Backing::External => Vec::new(),
        Backing::Deployment { replicas, canary } => {
            let mut pods = Vec::new();
            for (track, count, hash_seed) in [
                ("stable", replicas, seed),
                ("canary", usize::from(canary), seed ^ 0xca),
            ] {
                let hash = token(hash_seed, 10);
                let mut labels = base("server");
                labels.insert("pod-template-hash".into(), hash.clone());
                if track == "canary" {
                    labels.insert("track".into(), "canary".into());
                }
                let rs = format!("{app}-{hash}");
                for r in 0..count {
                    let n = seed.wrapping_add(r as u64 * 7 + u64::from(track == "canary"));
                    let name = format!("{rs}-{}", token(n, 5));
                    pods.push(pod(
                        ns,
                        &name,
                        &labels,
                        Some(("ReplicaSet", &rs)),
                        &image,
                        n,
                        restarts,
                    ));
                }
            }
            pods
        }
        Backing::Primary => (0..3)
            .map(|r| {
                let name = format!("{app}-{r}");
                let mut labels = base(if r == 0 { "primary" } else { "replica" });
                labels.insert("statefulset.kubernetes.io/pod-name".into(), name.clone());
                labels.insert("apps.kubernetes.io/pod-index".into(), r.to_string());
                labels.insert(
                    "controller-revision-hash".into(),
                    format!("{app}-{}", token(seed, 10)),
                );
                let n = seed.wrapping_add(r as u64 * 7);
                pod(
                    ns,
                    &name,
                    &labels,
                    Some(("StatefulSet", &app)),
                    &image,
                    n,
                    restarts,
                )
            })
            .collect(),
    }
}

/// The Pods of `ns` no Service selects: two finished database-migration Job Pods and a
/// toolbox someone started with `kubectl run`.
pub(crate) fn unselected_pods(ns: &str) -> Vec<Value> {
    let seed = seed_of(ns, 1000);
    let mut pods: Vec<Value> = (0..2)
        .map(|j| {
            let job = format!("db-migrate-{}", 28_900_000 + j);
            let uid = format!("{}-{}", token(seed + j, 8), token(seed ^ j, 12));
            let labels = BTreeMap::from([
                ("batch.kubernetes.io/job-name".to_owned(), job.clone()),
                ("job-name".to_owned(), job.clone()),
                ("batch.kubernetes.io/controller-uid".to_owned(), uid.clone()),
                ("controller-uid".to_owned(), uid),
            ]);
            let name = format!("{job}-{}", token(seed + j, 5));
            pod(
                ns,
                &name,
                &labels,
                Some(("Job", &job)),
                "registry.example.com/tools/migrate:3.2",
                seed + j,
                0,
            )
        })
        .collect();
    let labels = BTreeMap::from([("run".to_owned(), "toolbox".to_owned())]);
    pods.push(pod(
        ns,
        "toolbox",
        &labels,
        None,
        "busybox:1.36",
        seed + 2,
        0,
    ));
    debug_assert_eq!(pods.len(), UNSELECTED_PODS);
    pods
}
