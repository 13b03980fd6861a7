//! Shared by the tests of field paths: typed objects of several kinds (and a custom
//! resource with every shape serde has), paths drawn from an object's own JSON, and
//! their text as the indexer parses it.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};

use super::PathStep;

/// Typed objects as JSON, by kind (`Pod`, `Ingress`, `Deployment`, `Service`,
/// `ConfigMap`, `DynamicObject`): each deserialises into its type, and its
/// `to_value` is this JSON with the type's defaults.
pub(crate) fn fixtures() -> Vec<(&'static str, Value)> {
    let meta = |name: &str| {
        json!({
            "namespace": "shop",
            "name": name,
            "uid": format!("uid-{name}"),
            "resourceVersion": "42",
            "creationTimestamp": "2024-05-01T10:00:00Z",
            "labels": {"app": "web", "app.kubernetes.io/name": "ünï/cödé", "empty": ""},
            "annotations": {"a.b/c": "{\"json\": true}", "n": "1"},
            "ownerReferences": [
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f",
                 "uid": "u1", "controller": true, "blockOwnerDeletion": true},
                {"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u2"},
            ],
            "finalizers": ["b/f", "a", "b/f"],
            "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "apiVersion": "v1",
                 "time": "2024-05-01T10:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {".": {}}}},
            ],
        })
    };
    let container = |name: &str| {
        json!({
            "name": name,
            "image": format!("registry/{name}:1.0"),
            "args": ["--port", "8080", ""],
            "ports": [
                {"containerPort": 8080, "protocol": "TCP", "name": "http"},
                {"containerPort": 9090, "hostPort": 0},
            ],
            "env": [
                {"name": "A", "value": "1"},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "EMPTY"},
            ],
            "resources": {
                "limits": {"cpu": "500m", "memory": "1Gi"},
                "requests": {"cpu": "0.25"},
            },
            "livenessProbe": {
                "httpGet": {"port": "http", "path": "/healthz"},
                "initialDelaySeconds": 5,
                "periodSeconds": 10,
            },
            "readinessProbe": {"tcpSocket": {"port": 8080}},
            "securityContext": {"privileged": false, "runAsUser": 1000},
        })
    };
    vec![
        (
            "Pod",
            json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": meta("web-1"),
                "spec": {
                    "nodeName": "node-a",
                    "nodeSelector": {"kubernetes.io/os": "linux", "zone": "a"},
                    "containers": [container("web"), container("sidecar")],
                    "initContainers": [],
                    "tolerations": [
                        {"key": "k", "operator": "Exists", "effect": "NoSchedule",
                         "tolerationSeconds": 30},
                        {"operator": "Exists"},
                    ],
                    "hostNetwork": true,
                    "priority": 0,
                    "overhead": {"cpu": "10m"},
                    "securityContext": {"runAsUser": 1000, "fsGroup": 2000},
                    "volumes": [
                        {"name": "data", "emptyDir": {}},
                        {"name": "cfg", "configMap": {"name": "cfg", "items": [
                            {"key": "a", "path": "a.txt", "mode": 420}]}},
                    ],
                },
                "status": {
                    "phase": "Running",
                    "podIP": "10.0.0.7",
                    "podIPs": [{"ip": "10.0.0.7"}, {"ip": "fd00::7"}],
                    "startTime": "2024-05-01T10:00:01Z",
                    "conditions": [
                        {"type": "Ready", "status": "True",
                         "lastTransitionTime": "2024-05-01T10:00:05Z"},
                        {"type": "PodScheduled", "status": "True"},
                    ],
                    "containerStatuses": [
                        {"name": "web", "ready": true, "restartCount": 2, "image": "i",
                         "imageID": "sha", "state": {"running": {"startedAt": "2024-05-01T10:00:02Z"}}},
                    ],
                },
            }),
        ),
        (
            "Ingress",
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": meta("web"),
                "spec": {
                    "ingressClassName": "nginx",
                    "tls": [
                        {"hosts": ["b.example", "a.example"], "secretName": "s1"},
                        {"hosts": []},
                        {"secretName": "s2"},
                    ],
                    "rules": [
                        {"host": "a.example", "http": {"paths": [
                            {"path": "/", "pathType": "Prefix", "backend": {"service":
                                {"name": "web", "port": {"number": 80}}}},
                            {"path": "/api", "pathType": "Exact", "backend": {"service":
                                {"name": "api", "port": {"name": "http"}}}},
                        ]}},
                        {"http": {"paths": []}},
                    ],
                    "defaultBackend": {"resource": {"apiGroup": "g", "kind": "K", "name": "r"}},
                },
                "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ports": [
                    {"port": 443, "protocol": "TCP"}]}]}},
            }),
        ),
        (
            "Deployment",
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": meta("web"),
                "spec": {
                    "replicas": 3,
                    "paused": false,
                    "selector": {
                        "matchLabels": {"app": "web"},
                        "matchExpressions": [
                            {"key": "tier", "operator": "In", "values": ["a", "b"]},
                            {"key": "x", "operator": "Exists"},
                        ],
                    },
                    "strategy": {"type": "RollingUpdate",
                                 "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                    "template": {
                        "metadata": {"labels": {"app": "web"}},
                        "spec": {"containers": [container("web")], "nodeName": "n"},
                    },
                },
                "status": {"replicas": 3, "readyReplicas": 2, "conditions": [
                    {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                     "lastUpdateTime": "2024-05-01T10:00:00Z"}]},
            }),
        ),
        (
            "Service",
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta("web"),
                "spec": {
                    "type": "NodePort",
                    "clusterIP": "10.96.0.10",
                    "clusterIPs": ["10.96.0.10", "fd00::10"],
                    "ports": [
                        {"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"},
                        {"port": 80, "targetPort": 8080, "nodePort": 30080},
                    ],
                    "selector": {"app": "web", "a.b/c": "d"},
                    "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
                    "ipFamilies": ["IPv4", "IPv6"],
                    "publishNotReadyAddresses": true,
                },
                "status": {"loadBalancer": {}},
            }),
        ),
        (
            "ConfigMap",
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta("cfg"),
                "data": {"a": "1", "b.c": "", "x": "{\"y\": 2}"},
                "binaryData": {"bin": "AAEC"},
                "immutable": true,
            }),
        ),
        (
            "DynamicObject",
            json!({
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": meta("w"),
                "spec": {
                    "size": 3,
                    "ratio": 1.5,
                    "negative": -7,
                    "big": 18446744073709551615u64,
                    "enabled": true,
                    "nothing": null,
                    "empty": [],
                    "emptyMap": {},
                    "grid": [[1, "2", null], [], [true, [3]], [{"a": 1}]],
                    "hosts": [{"name": "a", "ports": [80, 443]}, {"name": null}, {}, "odd", 5],
                    "a.b": {"c.d": "dotted"},
                    "": "empty key",
                    "ünï": {"cödé": "ok"},
                },
                "status": {"nodes": ["n1", "n2", "n1"]},
            }),
        ),
    ]
}

/// A path drawn from `json` by `choices`: each choice picks the next step among the
/// value's own keys or indices, `[*]`, or a step that reaches nothing (a missing key, an
/// index past the end, a field of a list, an element of a mapping, anything past a
/// scalar). `[*]` continues down its first element. Always starts with a field.
pub(crate) fn draw(json: &Value, choices: &[u16]) -> Vec<PathStep> {
    let mut path = Vec::new();
    let mut at = Some(json);
    for (i, &c) in choices.iter().enumerate() {
        let c = usize::from(c);
        let (step, next) = match at {
            Some(Value::Object(map)) => {
                let keys: Vec<&String> = map.keys().collect();
                match c % (keys.len() + 3) {
                    n if n < keys.len() => (PathStep::Field(keys[n].clone()), map.get(keys[n])),
                    n if n == keys.len() => (PathStep::Field("missing".into()), None),
                    n if n == keys.len() + 1 && i > 0 => (PathStep::Each, None),
                    _ if i > 0 => (PathStep::Index(c / 7 % 2), None),
                    _ => (PathStep::Field("missing".into()), None),
                }
            }
            Some(Value::Array(items)) if i > 0 => match c % 6 {
                0..=2 => (PathStep::Each, items.first()),
                3 => {
                    let n = c / 6 % (items.len() + 1);
                    (PathStep::Index(n), items.get(n))
                }
                4 => (PathStep::Index(items.len()), None),
                _ => (PathStep::Field("0".into()), None),
            },
            _ => match c % 3 {
                0 if i > 0 => (PathStep::Each, None),
                1 if i > 0 => (PathStep::Index(0), None),
                _ => (PathStep::Field("x".into()), None),
            },
        };
        path.push(step);
        at = next;
    }
    path
}

/// Every path to every value of `json` (the empty path left out), with each list step
/// once as `[*]`, once as the element's index and, for the last step, as an index
/// past the end; and each such path once more with a missing field after it.
pub(crate) fn all_paths(json: &Value) -> Vec<Vec<PathStep>> {
    fn walk(v: &Value, path: &mut Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
        if !path.is_empty() {
            out.push(path.clone());
            let mut deeper = path.clone();
            deeper.push(PathStep::Field("missing".into()));
            out.push(deeper);
        }
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    path.push(PathStep::Field(k.clone()));
                    walk(v, path, out);
                    path.pop();
                }
            }
            Value::Array(items) if !path.is_empty() => {
                let mut past = path.clone();
                past.push(PathStep::Index(items.len()));
                out.push(past);
                for (i, v) in items.iter().enumerate() {
                    for step in [PathStep::Each, PathStep::Index(i)] {
                        // `[*]` once, from the first element.
                        if step == PathStep::Each && i > 0 {
                            continue;
                        }
                        path.push(step);
                        walk(v, path, out);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(json, &mut Vec::new(), &mut out);
    out
}

/// `path` as the indexer's syntax writes it: `.name` for a plain name, `['key']` for
/// any other key (quotes and backslashes escaped), `[n]` and `[*]`.
pub(crate) fn text(path: &[PathStep]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            PathStep::Field(name)
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '$')) =>
            {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(name);
            }
            PathStep::Field(key) => {
                if out.is_empty() {
                    // A path starts with a plain name; none of the tests' objects has
                    // another at its top.
                    out.push_str("missing");
                }
                out.push_str("['");
                for c in key.chars() {
                    if matches!(c, '\'' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push_str("']");
            }
            PathStep::Index(i) => out.push_str(&format!("[{i}]")),
            PathStep::Each => out.push_str("[*]"),
        }
    }
    out
}

/// A custom resource with every shape serde has: renames, `skip_serializing_if`,
/// `flatten` (a map whose keys may repeat a field's, and a struct), maps with keys of
/// other types, enums of every kind, tuples, newtypes, bytes, `char`, unit, Kubernetes
/// newtypes (`Quantity`, `IntOrString`) and any JSON.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Doc {
    pub(crate) metadata: ObjectMeta,
    pub(crate) name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) maybe: Option<i64>,
    pub(crate) nullable: Option<String>,
    pub(crate) flag: bool,
    pub(crate) ratio: f64,
    pub(crate) big: u64,
    pub(crate) neg: i32,
    #[serde(rename = "x.y")]
    pub(crate) dotted: String,
    pub(crate) items: Vec<Item>,
    pub(crate) by_name: BTreeMap<String, Item>,
    pub(crate) by_number: BTreeMap<i32, String>,
    pub(crate) by_flag: BTreeMap<bool, u8>,
    pub(crate) by_colour: BTreeMap<Colour, u8>,
    pub(crate) shapes: Vec<Shape>,
    pub(crate) tagged: Vec<Tagged>,
    pub(crate) pair: (String, u8),
    pub(crate) grid: Vec<Vec<String>>,
    pub(crate) quantity: Option<Quantity>,
    pub(crate) port: Option<IntOrString>,
    pub(crate) bytes: Bytes,
    pub(crate) letter: char,
    pub(crate) nothing: (),
    pub(crate) unit: Unit,
    pub(crate) wrapped: Wrapped,
    pub(crate) any: Value,
    #[serde(flatten)]
    pub(crate) extra: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub(crate) inner: Inner,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Inner {
    pub(crate) inner_a: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) inner_b: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Item {
    pub(crate) key: String,
    pub(crate) value: Option<Value>,
    pub(crate) tags: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub(crate) enum Colour {
    Red,
    Green,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) enum Shape {
    Dot,
    Circle(f64),
    Rect(u8, u8),
    Poly { sides: u8, name: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind")]
pub(crate) enum Tagged {
    A { x: String },
    B(Item),
    C,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Unit;

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Wrapped(pub(crate) Item);

/// Serialised as bytes (`serialize_bytes`), which JSON writes as a list of numbers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl kube::Resource for Doc {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Doc".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "example.com".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "docs".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (-3i64..3).prop_map(Value::from),
        Just(json!(1.5)),
        Just(json!(u64::MAX)),
        prop::sample::select(vec!["a", "b", "", "1", "é/f"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec!["a", "b", "key", "name", "x.y", "0"])
                    .prop_map(str::to_owned),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn any_item() -> impl Strategy<Value = Item> {
    (
        prop::sample::select(vec!["a", "b", "", "é"]),
        prop::option::of(any_json()),
        prop::collection::vec(prop::sample::select(vec!["t", "u", ""]), 0..3),
    )
        .prop_map(|(key, value, tags)| Item {
            key: key.into(),
            value,
            tags: tags.into_iter().map(str::to_owned).collect(),
        })
}

fn any_shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::Dot),
        (-2.0f64..2.0).prop_map(Shape::Circle),
        (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Shape::Rect(a, b)),
        (any::<u8>(), prop::sample::select(vec!["p", ""])).prop_map(|(sides, name)| {
            Shape::Poly {
                sides,
                name: name.into(),
            }
        }),
    ]
}

fn any_tagged() -> impl Strategy<Value = Tagged> {
    prop_oneof![
        Just(Tagged::C),
        any_item().prop_map(Tagged::B),
        prop::sample::select(vec!["x", ""]).prop_map(|x| Tagged::A { x: x.into() }),
    ]
}

/// A [`Doc`] with every field drawn, its flattened map sometimes repeating a field's
/// name.
pub(crate) fn any_doc() -> impl Strategy<Value = Doc> {
    let scalars = (
        prop::option::of(-5i64..5),
        prop::option::of(prop::sample::select(vec!["n", ""])),
        any::<bool>(),
        prop_oneof![Just(0.5f64), Just(-0.0), Just(f64::NAN), Just(1e300)],
        prop_oneof![Just(0u64), Just(u64::MAX)],
        any::<i32>(),
        any::<char>(),
        prop::option::of(prop_oneof![
            (-3i32..3).prop_map(IntOrString::Int),
            Just(IntOrString::String("http".into())),
        ]),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..3)),
    );
    let lists = (
        prop::collection::vec(any_item(), 0..4),
        prop::collection::btree_map(
            prop::sample::select(vec!["a", "b", "x.y"]).prop_map(str::to_owned),
            any_item(),
            0..3,
        ),
        prop::collection::btree_map(-2i32..2, prop::sample::select(vec!["v", "w"]), 0..3),
        prop::collection::btree_map(any::<bool>(), any::<u8>(), 0..2),
        prop::collection::btree_map(
            prop::sample::select(vec![Colour::Red, Colour::Green]),
            any::<u8>(),
            0..2,
        ),
        prop::collection::vec(any_shape(), 0..4),
        prop::collection::vec(any_tagged(), 0..3),
        prop::collection::vec(
            prop::collection::vec(prop::sample::select(vec!["g", "h"]), 0..3),
            0..3,
        ),
        prop::collection::vec(any::<u8>(), 0..3),
        any_json(),
        prop::collection::btree_map(
            prop::sample::select(vec!["name", "flag", "extra", "innerA", "items"])
                .prop_map(str::to_owned),
            any_json(),
            0..3,
        ),
    );
    (scalars, lists).prop_map(|(s, l)| {
        let (maybe, nullable, flag, ratio, big, neg, letter, port, inner_b) = s;
        let (
            items,
            by_name,
            by_number,
            by_flag,
            by_colour,
            shapes,
            tagged,
            grid,
            bytes,
            any,
            extra,
        ) = l;
        Doc {
            metadata: ObjectMeta {
                namespace: Some("ns".into()),
                name: Some("doc".into()),
                ..ObjectMeta::default()
            },
            name: "doc".into(),
            maybe,
            nullable: nullable.map(str::to_owned),
            flag,
            ratio,
            big,
            neg,
            dotted: "dotted".into(),
            wrapped: Wrapped(items.first().cloned().unwrap_or_default()),
            items,
            by_name,
            by_number: by_number
                .into_iter()
                .map(|(k, v)| (k, v.to_owned()))
                .collect(),
            by_flag,
            by_colour,
            shapes,
            tagged,
            pair: ("p".into(), 7),
            grid: grid
                .into_iter()
                .map(|row| row.into_iter().map(str::to_owned).collect())
                .collect(),
            quantity: Some(Quantity("250m".into())),
            port,
            bytes: Bytes(bytes),
            letter,
            nothing: (),
            unit: Unit,
            any,
            extra,
            inner: Inner {
                inner_a: "ia".into(),
                inner_b,
            },
        }
    })
}
