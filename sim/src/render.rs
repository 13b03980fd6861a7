//! JSON rendering of objects, lists and watch events, full or metadata-only, without
//! cloning the stored objects.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde_json::Value;

use super::store::ResourceInfo;

/// The `Accept`-negotiated representation of objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// The objects themselves (`application/json`).
    Full,
    /// `as=PartialObjectMetadata;g=meta.k8s.io;v=v1` (objects, watch events).
    Meta,
    /// `as=PartialObjectMetadataList;g=meta.k8s.io;v=v1` (lists).
    MetaList,
}

pub(crate) const META_API_VERSION: &str = "meta.k8s.io/v1";

/// One object, full or as `PartialObjectMetadata`.
pub(crate) struct ObjectView<'a> {
    pub(crate) object: &'a Value,
    pub(crate) meta_only: bool,
}

impl Serialize for ObjectView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if !self.meta_only {
            return self.object.serialize(s);
        }
        let mut map = s.serialize_map(Some(3))?;
        map.serialize_entry("kind", "PartialObjectMetadata")?;
        map.serialize_entry("apiVersion", META_API_VERSION)?;
        match self.object.get("metadata") {
            Some(md) => map.serialize_entry("metadata", md)?,
            None => map.serialize_entry("metadata", &serde_json::Map::new())?,
        }
        map.end()
    }
}

struct Items<'a> {
    items: &'a [Arc<Value>],
    meta_only: bool,
}

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.items.len()))?;
        for item in self.items {
            seq.serialize_element(&ObjectView {
                object: item,
                meta_only: self.meta_only,
            })?;
        }
        seq.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListMeta {
    resource_version: String,
    #[serde(rename = "continue", skip_serializing_if = "Option::is_none")]
    continue_: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct List<'a> {
    kind: &'a str,
    api_version: &'a str,
    metadata: ListMeta,
    items: Items<'a>,
}

/// A `{Kind}List` (or `PartialObjectMetadataList`) body.
pub(crate) fn list_body(
    info: &ResourceInfo,
    items: &[Arc<Value>],
    rv: u64,
    continue_: Option<String>,
    meta_only: bool,
) -> Result<Vec<u8>, serde_json::Error> {
    let list_kind = format!("{}List", info.ar.kind);
    let (kind, api_version) = if meta_only {
        ("PartialObjectMetadataList", META_API_VERSION)
    } else {
        (list_kind.as_str(), info.ar.api_version.as_str())
    };
    serde_json::to_vec(&List {
        kind,
        api_version,
        metadata: ListMeta {
            resource_version: rv.to_string(),
            continue_,
        },
        items: Items { items, meta_only },
    })
}

#[derive(Serialize)]
struct WatchLine<'a, O> {
    #[serde(rename = "type")]
    ty: &'a str,
    object: O,
}

/// Appends one watch event line (`{"type":..,"object":..}\n`) to `buf`.
pub(crate) fn watch_line(
    buf: &mut Vec<u8>,
    ty: &str,
    object: &impl Serialize,
) -> Result<(), serde_json::Error> {
    serde_json::to_writer(&mut *buf, &WatchLine { ty, object })?;
    buf.push(b'\n');
    Ok(())
}

/// The object of a BOOKMARK event.
pub(crate) fn bookmark(info: &ResourceInfo, meta_only: bool, rv: u64, initial_end: bool) -> Value {
    let (kind, api_version) = if meta_only {
        ("PartialObjectMetadata", META_API_VERSION)
    } else {
        (info.ar.kind.as_str(), info.ar.api_version.as_str())
    };
    let mut metadata = serde_json::json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        metadata["annotations"] = serde_json::json!({ "k8s.io/initial-events-end": "true" });
    }
    serde_json::json!({ "kind": kind, "apiVersion": api_version, "metadata": metadata })
}
