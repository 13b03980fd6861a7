//! A synthetic cluster shaped like a real one: namespaces of services, each with
//! EndpointSlices labelled with its name, ingresses routing to them with TLS secrets,
//! and opaque secrets of a few KB. Deterministic for a given scale.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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

pub(crate) fn service(ns: &str, s: usize) -> Service {
    let name = service_name(s);
    Service {
        metadata: meta(ns, &name, &name, "Service"),
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([(
                "app.kubernetes.io/name".into(),
                name.clone(),
            )])),
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
