//! [`FieldStripper`]: `metadata.managedFields` and `ignore_fields`, compiled once and
//! applied to every object before it is stored.

use kube::core::DynamicObject;
use serde_json::Value;

use crate::feed::indexer::Segment;

/// `metadata.managedFields` and a resource's `ignore_fields`, compiled once at load time
/// and applied to every object before it is stored.
///
/// Paths that are absent from an object are skipped. A path ending in an array index
/// (`spec.rules[0]`) removes that element; later elements move up.
#[derive(Debug, Clone)]
pub struct FieldStripper {
    /// Every path as segments, `metadata.managedFields` first.
    paths: Vec<Vec<Segment>>,
    /// The same paths as they apply to a [`DynamicObject`].
    dynamic: Vec<DynamicPath>,
    /// Whether some path needs `metadata` as JSON to be removed from a `DynamicObject`.
    meta_json: bool,
}

#[derive(Debug, Clone)]
pub(super) enum DynamicPath {
    ManagedFields,
    Labels,
    Label(String),
    Annotations,
    Annotation(String),
    /// A path inside `metadata` that its typed fields cannot reach directly.
    Meta(Vec<Segment>),
    /// A path outside `metadata`, inside `data`.
    Data(Vec<Segment>),
}

impl FieldStripper {
    pub(super) fn new(ignore: Vec<Vec<Segment>>) -> Self {
        let managed = vec![field("metadata"), field("managedFields")];
        let mut paths = vec![managed];
        paths.extend(ignore);
        let dynamic: Vec<DynamicPath> = paths.iter().filter_map(|p| classify(p)).collect();
        let meta_json = dynamic.iter().any(|p| matches!(p, DynamicPath::Meta(_)));
        Self {
            paths,
            dynamic,
            meta_json,
        }
    }

    /// Removes `metadata.managedFields` and the ignored paths from a JSON object.
    ///
    /// # Examples
    /// ```
    /// use k8s_store::config::Config;
    /// use serde_json::json;
    ///
    /// let config = Config::from_yaml(r#"
    /// watched_resources:
    ///   pods:
    ///     api_version: v1
    ///     kind: Pod
    ///     index_by: ["metadata.namespace", "metadata.name"]
    ///     store: full
    ///     ignore_fields: ["metadata.labels['pod-template-hash']", "status"]
    /// "#)?;
    /// let mut pod = json!({
    ///     "metadata": {"name": "p", "managedFields": [{}], "labels": {"app": "web", "pod-template-hash": "abc"}},
    ///     "status": {"phase": "Running"},
    /// });
    /// config.watched_resources["pods"].strip_fields(&mut pod);
    /// assert_eq!(pod, json!({"metadata": {"name": "p", "labels": {"app": "web"}}}));
    /// # Ok::<(), k8s_store::config::ConfigError>(())
    /// ```
    pub fn strip(&self, obj: &mut Value) {
        for path in &self.paths {
            remove_path(obj, path);
        }
    }

    /// Removes `metadata.managedFields` and the ignored paths from a [`DynamicObject`]:
    /// metadata fields through its typed `metadata`, all others from `data`.
    ///
    /// Labels, annotations and `managedFields` are removed in place. Other metadata paths
    /// (`metadata.ownerReferences`) go through JSON, once per call; if the result is no
    /// longer valid metadata (a required field of an owner reference was removed), the
    /// metadata is left as it was and a warning is logged.
    pub fn strip_dynamic(&self, obj: &mut DynamicObject) {
        let meta = &mut obj.metadata;
        for path in &self.dynamic {
            match path {
                DynamicPath::ManagedFields => meta.managed_fields = None,
                DynamicPath::Labels => meta.labels = None,
                DynamicPath::Annotations => meta.annotations = None,
                DynamicPath::Label(k) => {
                    if let Some(labels) = &mut meta.labels {
                        labels.remove(k);
                    }
                }
                DynamicPath::Annotation(k) => {
                    if let Some(annotations) = &mut meta.annotations {
                        annotations.remove(k);
                    }
                }
                DynamicPath::Meta(_) => {}
                DynamicPath::Data(p) => {
                    remove_path(&mut obj.data, p);
                }
            }
        }
        if self.meta_json {
            self.strip_meta_json(obj);
        }
    }

    fn strip_meta_json(&self, obj: &mut DynamicObject) {
        let mut json = match serde_json::to_value(&obj.metadata) {
            Ok(json) => json,
            Err(error) => {
                tracing::warn!(%error, "cannot serialise metadata to strip ignore_fields from it");
                return;
            }
        };
        let mut changed = false;
        for path in &self.dynamic {
            if let DynamicPath::Meta(p) = path {
                changed |= remove_path(&mut json, p);
            }
        }
        if changed {
            match serde_json::from_value(json) {
                Ok(meta) => obj.metadata = meta,
                Err(error) => tracing::warn!(
                    %error,
                    namespace = obj.metadata.namespace.as_deref().unwrap_or(""),
                    name = obj.metadata.name.as_deref().unwrap_or(""),
                    "ignore_fields left metadata invalid; kept it unstripped"
                ),
            }
        }
    }
}

pub(super) fn classify(path: &[Segment]) -> Option<DynamicPath> {
    let Some((Segment::Field(first), rest)) = path.split_first() else {
        return Some(DynamicPath::Data(path.to_vec()));
    };
    if first != "metadata" {
        return Some(DynamicPath::Data(path.to_vec()));
    }
    Some(match rest {
        [] => return None, // `metadata` itself is refused at load time
        [Segment::Field(f), ..] if f == "managedFields" => DynamicPath::ManagedFields,
        [Segment::Field(f)] if f == "labels" => DynamicPath::Labels,
        [Segment::Field(f)] if f == "annotations" => DynamicPath::Annotations,
        [Segment::Field(f), Segment::Field(k)] if f == "labels" => DynamicPath::Label(k.clone()),
        [Segment::Field(f), Segment::Field(k)] if f == "annotations" => {
            DynamicPath::Annotation(k.clone())
        }
        // Label and annotation values are strings: nothing below them to remove.
        [Segment::Field(f), ..] if f == "labels" || f == "annotations" => return None,
        _ => DynamicPath::Meta(rest.to_vec()),
    })
}

/// Removes the value at `path` from `v`; whether there was one.
pub(super) fn remove_path(v: &mut Value, path: &[Segment]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut v = v;
    for seg in parents {
        let next = match seg {
            Segment::Field(f) => v.get_mut(f.as_str()),
            Segment::Index(i) => v.get_mut(*i),
        };
        match next {
            Some(next) => v = next,
            None => return false,
        }
    }
    match (last, v) {
        (Segment::Field(f), Value::Object(map)) => map.remove(f.as_str()).is_some(),
        (Segment::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

pub(super) fn field(name: &str) -> Segment {
    Segment::Field(name.to_owned())
}
