//! Object builders shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{Value, json};

/// A ConfigMap with namespace, name and an optional uid.
pub(crate) fn cm(ns: &str, name: &str, uid: Option<&str>) -> Arc<ConfigMap> {
    let mut c = ConfigMap::default();
    c.metadata.namespace = Some(ns.into());
    c.metadata.name = Some(name.into());
    c.metadata.uid = uid.map(Into::into);
    Arc::new(c)
}

/// A ConfigMap with one data entry, to tell versions apart.
pub(crate) fn cm_v(ns: &str, name: &str, uid: Option<&str>, version: &str) -> Arc<ConfigMap> {
    let mut c = (*cm(ns, name, uid)).clone();
    c.data = Some([("v".to_string(), version.to_string())].into());
    Arc::new(c)
}

pub(crate) fn version(c: &ConfigMap) -> Option<&str> {
    c.data.as_ref()?.get("v").map(String::as_str)
}

/// A JSON object with the given metadata (empty strings leave a field out).
pub(crate) fn json_obj(ns: &str, name: &str, uid: &str) -> Arc<Value> {
    let mut meta = serde_json::Map::new();
    if !ns.is_empty() {
        meta.insert("namespace".into(), json!(ns));
    }
    if !name.is_empty() {
        meta.insert("name".into(), json!(name));
    }
    if !uid.is_empty() {
        meta.insert("uid".into(), json!(uid));
    }
    Arc::new(json!({ "metadata": meta }))
}

pub(crate) fn names(objs: &[Arc<ConfigMap>]) -> Vec<String> {
    objs.iter()
        .map(|o| {
            format!(
                "{}/{}",
                o.metadata.namespace.as_deref().unwrap_or(""),
                o.metadata.name.as_deref().unwrap_or("")
            )
        })
        .collect()
}
