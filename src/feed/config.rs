//! The configuration: which Kubernetes resources a controller watches and how each is
//! stored.
//!
//! It is YAML, loaded with [`Config::from_path`] or [`Config::from_yaml`], and checked
//! completely at load time: unknown fields, unknown choices, malformed `api_version`s,
//! unparsable field paths and durations, and settings that do not apply to the chosen
//! `store` are errors that name where the problem is (`watched_resources.secrets.cache_ttl`,
//! with the line and column) and what to write instead. A typo never silently falls back
//! to a default. `config/example.yaml` is a commented example.
//!
//! ```yaml
//! watched_resources:
//!   ingresses:                      # the store's name, used to look it up
//!     api_version: networking.k8s.io/v1
//!     kind: Ingress
//!     index_by: ["metadata.namespace", "metadata.name"]
//!     store: full
//!   secrets:
//!     api_version: v1
//!     kind: Secret
//!     index_by: ["metadata.namespace", "metadata.name"]
//!     store: on-demand
//!     cache_ttl: 5m
//!     max_cache_entries: 5000
//! ```
//!
//! Per resource:
//!
//! | Field | Required | Meaning |
//! |---|---|---|
//! | `api_version` | yes | `v1` for the core group, else `group/version` |
//! | `kind` | yes | the kind, as in the objects' `kind` |
//! | `plural` | no | the resource's plural; defaults to the guess of kube's [`ApiResource::from_gvk`] |
//! | `index_by` | yes | the key components, as field paths (see [`Indexer`]); 1 to [`MAX_KEYS`](crate::MAX_KEYS) (64) of them |
//! | `store` | yes | `full` (bodies in memory) or `on-demand` (references in memory, bodies fetched and cached) |
//! | `namespace` | no | watch one namespace; defaults to all |
//! | `label_selector`, `field_selector` | no | passed to the watch as they are |
//! | `ignore_fields` | no | field paths removed before objects are stored; `metadata.managedFields` always is |
//! | `missing_fields` | no | `error` (default: the object is logged and skipped) or `empty` (a missing index field is `""`) |
//! | `index_shards` | no | the exact-key index's shard count, a power of two from 2 to [`MAX_SHARDS`](crate::MAX_SHARDS) (65,536); defaults to 1,024 (see [`MemoryStoreBuilder::shards`](crate::MemoryStoreBuilder::shards)) |
//! | `cache_ttl` | no, `on-demand` only | how long a fetched body is kept: `250ms`, `90s`, `5m`, `1h30m` or an integer of seconds; defaults to 5 minutes |
//! | `max_cache_entries` | no, `on-demand` only | the most bodies cached; defaults to 10,000 |
//! | `max_cache_bytes` | no, `on-demand` only | a byte budget for cached bodies; defaults to none |
//!
//! Field paths (in `index_by` and `ignore_fields`) are parsed once, at load time. Numbers
//! are whole numbers in the setting's range; one outside it (including integers too wide
//! for 64 bits, which YAML parsers read as floats) is an error that says so and gives the
//! range, at load time: nothing a configuration says can fail later in `Stores::start`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use crate::feed::indexer::{Indexer, Segment, parse_path};
use crate::object::json_kind;

/// How long an on-demand store keeps a fetched body when `cache_ttl` is not given.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);

/// How many bodies an on-demand store caches when `max_cache_entries` is not given.
pub const DEFAULT_MAX_CACHE_ENTRIES: usize = 10_000;

/// Fields a store needs to identify objects; `ignore_fields` may not remove them. Each
/// is given as written and as its field names, so that no path is parsed (and no parse
/// can fail) at load time; a unit test checks that the two agree.
const IDENTITY_FIELDS: [(&str, &[&str]); 6] = [
    ("metadata.name", &["metadata", "name"]),
    ("metadata.namespace", &["metadata", "namespace"]),
    ("metadata.uid", &["metadata", "uid"]),
    ("metadata.resourceVersion", &["metadata", "resourceVersion"]),
    ("apiVersion", &["apiVersion"]),
    ("kind", &["kind"]),
];

/// The settings a watched resource accepts, in the order the docs list them.
const RESOURCE_FIELDS: &[&str] = &[
    "api_version",
    "kind",
    "plural",
    "index_by",
    "store",
    "namespace",
    "label_selector",
    "field_selector",
    "ignore_fields",
    "missing_fields",
    "index_shards",
    "cache_ttl",
    "max_cache_entries",
    "max_cache_bytes",
];

/// A loaded and validated configuration.
///
/// # Examples
/// ```
/// use k8s_store::config::{Config, StoreKind};
///
/// let config = Config::from_yaml(r#"
/// watched_resources:
///   services:
///     api_version: v1
///     kind: Service
///     index_by: ["metadata.namespace", "metadata.name"]
///     store: full
/// "#)?;
/// let services = &config.watched_resources["services"];
/// assert_eq!(services.store, StoreKind::Full);
/// assert_eq!(services.api_resource().plural, "services");
/// assert_eq!(services.indexer().len(), 2);
/// # Ok::<(), k8s_store::config::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// The resources to watch, by store name.
    pub watched_resources: BTreeMap<String, ResourceConfig>,
}

impl Config {
    /// Parses and validates a configuration.
    ///
    /// # Errors
    /// [`ConfigError::Yaml`] when the text is not YAML or not shaped like a configuration
    /// (an unknown top-level field, a list where a mapping belongs), and
    /// [`ConfigError::Invalid`] for the first setting that is wrong.
    pub fn from_yaml(yaml: &str) -> Result<Self, ConfigError> {
        load(yaml, None)
    }

    /// Reads, parses and validates the configuration file at `path`. Error messages start
    /// with the path.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read, else as [`Config::from_yaml`].
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        load(&text, Some(path))
    }

    /// The resource configured under `name`.
    pub fn get(&self, name: &str) -> Option<&ResourceConfig> {
        self.watched_resources.get(name)
    }
}

impl FromStr for Config {
    type Err = ConfigError;

    fn from_str(yaml: &str) -> Result<Self, ConfigError> {
        Self::from_yaml(yaml)
    }
}

/// How one watched resource is stored, validated when the configuration was loaded.
///
/// The public fields are the settings as loaded. [`indexer`](Self::indexer) and the
/// [`stripper`](Self::stripper) are compiled from `index_by`, `missing_fields` and
/// `ignore_fields` at load time; changing those fields afterwards does not change them.
#[derive(Debug, Clone)]
pub struct ResourceConfig {
    /// `v1` for the core group, else `group/version` (`networking.k8s.io/v1`).
    pub api_version: String,
    /// The kind (`Ingress`).
    pub kind: String,
    /// The plural resource name, when the configuration overrides the guessed one.
    pub plural: Option<String>,
    /// The field paths the key components are read from, in order (at least one).
    pub index_by: Vec<String>,
    /// Whether bodies are kept in memory or fetched on demand.
    pub store: StoreKind,
    /// The one namespace to watch; `None` watches all.
    pub namespace: Option<String>,
    /// A label selector for the watch (`app=web`).
    pub label_selector: Option<String>,
    /// A field selector for the watch (`metadata.name!=x`).
    pub field_selector: Option<String>,
    /// Field paths removed from objects before they are stored (besides
    /// `metadata.managedFields`, which always is).
    pub ignore_fields: Vec<String>,
    /// What to do with an object that lacks an index field.
    pub missing_fields: MissingFieldPolicy,
    /// The exact-key index's shard count (a power of two, at least 2); `None` leaves
    /// the store's default (see [`MemoryStoreBuilder::shards`](crate::MemoryStoreBuilder::shards)).
    pub index_shards: Option<usize>,
    /// How long an on-demand store keeps a fetched body; see [`ttl`](Self::ttl).
    pub cache_ttl: Option<Duration>,
    /// How many bodies an on-demand store caches; see [`max_entries`](Self::max_entries).
    pub max_cache_entries: Option<usize>,
    /// A byte budget for an on-demand store's cached bodies; `None` is no budget.
    pub max_cache_bytes: Option<u64>,
    indexer: Indexer,
    stripper: FieldStripper,
}

impl ResourceConfig {
    /// The resource's group, version, kind and plural, for `Api::all_with` and friends.
    ///
    /// The plural is `plural` when given, else kube's guess from the kind
    /// (`Ingress` → `ingresses`, `EndpointSlice` → `endpointslices`).
    pub fn api_resource(&self) -> ApiResource {
        let (group, version) = split_api_version(&self.api_version);
        let gvk = GroupVersionKind::gvk(group, version, &self.kind);
        match &self.plural {
            Some(plural) => ApiResource::from_gvk_with_plural(&gvk, plural),
            None => ApiResource::from_gvk(&gvk),
        }
    }

    /// The indexer for `index_by`, using an empty component for a missing field when
    /// `missing_fields` is `empty`. Cloned from the one compiled at load time.
    pub fn indexer(&self) -> Indexer {
        self.indexer.clone()
    }

    /// The cache TTL of an on-demand store. Defaults to: [`DEFAULT_CACHE_TTL`] (5 minutes).
    pub fn ttl(&self) -> Duration {
        self.cache_ttl.unwrap_or(DEFAULT_CACHE_TTL)
    }

    /// The most bodies an on-demand store caches. Defaults to:
    /// [`DEFAULT_MAX_CACHE_ENTRIES`] (10,000).
    pub fn max_entries(&self) -> usize {
        self.max_cache_entries.unwrap_or(DEFAULT_MAX_CACHE_ENTRIES)
    }

    /// The compiled `ignore_fields`, cheap to clone into a watch's event handler.
    pub fn stripper(&self) -> &FieldStripper {
        &self.stripper
    }

    /// Removes `metadata.managedFields` and every `ignore_fields` path from `obj`.
    /// See [`FieldStripper::strip`].
    pub fn strip_fields(&self, obj: &mut Value) {
        self.stripper.strip(obj);
    }

    /// Removes `metadata.managedFields` and every `ignore_fields` path from `obj`.
    /// See [`FieldStripper::strip_dynamic`].
    pub fn strip_dynamic(&self, obj: &mut DynamicObject) {
        self.stripper.strip_dynamic(obj);
    }
}

/// Where a store keeps object bodies: `store: full` or `store: on-demand`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StoreKind {
    /// Every body in memory ([`MemoryStore`](crate::MemoryStore)).
    Full,
    /// References in memory, bodies fetched when read and cached
    /// ([`CachedStore`](crate::CachedStore)).
    OnDemand,
}

impl fmt::Display for StoreKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoreKind::Full => "full",
            StoreKind::OnDemand => "on-demand",
        })
    }
}

/// What to do with an object that lacks an index field: `missing_fields: error` or
/// `missing_fields: empty`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MissingFieldPolicy {
    /// The indexer returns an error; the watch logs it and skips the object (the default).
    #[default]
    Error,
    /// A missing field is an empty key component.
    Empty,
}

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
enum DynamicPath {
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
    fn new(ignore: Vec<Vec<Segment>>) -> Self {
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

fn classify(path: &[Segment]) -> Option<DynamicPath> {
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
fn remove_path(v: &mut Value, path: &[Segment]) -> bool {
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

fn field(name: &str) -> Segment {
    Segment::Field(name.to_owned())
}

/// A configuration that could not be loaded. Every message says where the problem is and
/// what is expected, for example
/// `watched_resources.secrets.cache_ttl: a zero cache_ttl would expire bodies as soon as they are fetched; give a positive duration such as 30s or 5m (line 12, column 16)`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read. Fix: check the path and its permissions.
    #[error("cannot read configuration file {}: {error}", .path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// What the operating system said.
        error: std::io::Error,
    },
    /// The text is not YAML, or not shaped like a configuration (an unknown top-level
    /// field, a list where a mapping belongs, a duplicate key). The message is the YAML
    /// parser's, with the line and column.
    #[error("{}{message}", file_prefix(.file))]
    Yaml {
        /// The file, when loaded with [`Config::from_path`].
        file: Option<PathBuf>,
        /// What is wrong and where.
        message: String,
        /// The line (from 1), when known.
        line: Option<u64>,
        /// The column (from 1), when known.
        column: Option<u64>,
    },
    /// A setting is invalid: unknown, missing, of the wrong type or value, or not
    /// applicable to the resource's `store`.
    #[error("{}{path}: {reason}{}", file_prefix(.file), at_suffix(*.line, *.column))]
    Invalid {
        /// The file, when loaded with [`Config::from_path`].
        file: Option<PathBuf>,
        /// Where in the configuration, as `watched_resources.<name>.<field>`.
        path: String,
        /// What is wrong and what is expected.
        reason: String,
        /// The line (from 1), when known.
        line: Option<u64>,
        /// The column (from 1), when known.
        column: Option<u64>,
    },
}

fn file_prefix(file: &Option<PathBuf>) -> String {
    file.as_ref()
        .map(|f| format!("{}: ", f.display()))
        .unwrap_or_default()
}

fn at_suffix(line: Option<u64>, column: Option<u64>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// Loading

/// The document as parsed: every setting kept as JSON with its location, so that each
/// error can name its exact path and line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    watched_resources: Spanned<RawResources>,
}

struct RawResources(Vec<RawResource>);

struct RawResource {
    name: Spanned<String>,
    fields: Vec<(Spanned<String>, Spanned<Value>)>,
}

impl<'de> Deserialize<'de> for RawResources {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ResourcesVisitor;
        impl<'de> Visitor<'de> for ResourcesVisitor {
            type Value = RawResources;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping from store names to their settings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<RawResources, E> {
                Ok(RawResources(Vec::new())) // reported as empty, with its location
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawResources, A::Error> {
                let mut out = Vec::new();
                while let Some(name) = map.next_key::<Spanned<String>>()? {
                    let fields = map.next_value_seed(BodySeed(&name.value))?;
                    out.push(RawResource { name, fields });
                }
                Ok(RawResources(out))
            }
        }
        d.deserialize_any(ResourcesVisitor)
    }
}

/// Deserialises one resource's settings, naming the resource if they are not a mapping.
struct BodySeed<'a>(&'a str);

type RawFields = Vec<(Spanned<String>, Spanned<Value>)>;

impl<'de> DeserializeSeed<'de> for BodySeed<'_> {
    type Value = RawFields;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RawFields, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for BodySeed<'_> {
    type Value = RawFields;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the settings of {} (a mapping with api_version, kind, index_by and store)",
            resource_path(self.0)
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawFields, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<Spanned<String>>()? {
            out.push((key, map.next_value::<Spanned<Value>>()?));
        }
        Ok(out)
    }
}

/// `watched_resources.<name>`, with the name quoted in brackets unless it is a plain word.
fn resource_path(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    if plain {
        format!("watched_resources.{name}")
    } else {
        format!("watched_resources[{name:?}]")
    }
}

fn load(yaml: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
    let ctx = Ctx { file };
    let raw: Option<RawConfig> = serde_saphyr::from_str(yaml).map_err(|e| {
        let at = e.location();
        // The formatter for end users (not "set DuplicateKeyPolicy in Options"), on one
        // line: the location is in the message, the snippet is left out.
        let message = e.render_with_options(serde_saphyr::render_options! {
            formatter: &serde_saphyr::UserMessageFormatter,
            snippets: serde_saphyr::SnippetMode::Off,
        });
        ConfigError::Yaml {
            file: file.map(Path::to_owned),
            message,
            line: at.map(|l| l.line()),
            column: at.map(|l| l.column()),
        }
    })?;
    let Some(raw) = raw else {
        return Err(ConfigError::Yaml {
            file: file.map(Path::to_owned),
            message: "the configuration is empty: it needs a `watched_resources` mapping of the \
                      resources to watch"
                .into(),
            line: None,
            column: None,
        });
    };
    let resources = raw.watched_resources;
    if resources.value.0.is_empty() {
        return Err(ctx.invalid(
            "watched_resources",
            &resources.referenced,
            "no resources are configured: add at least one, for example \
             `services: {api_version: v1, kind: Service, index_by: [metadata.namespace, metadata.name], store: full}`",
        ));
    }
    let mut watched_resources = BTreeMap::new();
    for raw in resources.value.0 {
        let name = raw.name.value.clone();
        let resource = ctx.resource(raw)?;
        watched_resources.insert(name, resource);
    }
    Ok(Config { watched_resources })
}

struct Ctx<'a> {
    file: Option<&'a Path>,
}

/// One setting as read: its value and where it was.
struct Setting<T> {
    value: T,
    at: Location,
}

impl Ctx<'_> {
    fn invalid(
        &self,
        path: impl Into<String>,
        at: &Location,
        reason: impl fmt::Display,
    ) -> ConfigError {
        let known = *at != Location::UNKNOWN;
        ConfigError::Invalid {
            file: self.file.map(Path::to_owned),
            path: path.into(),
            reason: reason.to_string(),
            line: known.then(|| at.line()),
            column: known.then(|| at.column()),
        }
    }

    fn resource(&self, raw: RawResource) -> Result<ResourceConfig, ConfigError> {
        let rpath = resource_path(&raw.name.value);
        let here = raw.name.referenced;
        if raw.name.value.trim().is_empty() {
            return Err(self.invalid(
                &rpath,
                &here,
                "a resource needs a name (the key its store is looked up by), such as `secrets`",
            ));
        }

        let mut api_version: Option<Setting<String>> = None;
        let mut kind: Option<Setting<String>> = None;
        let mut plural: Option<Setting<String>> = None;
        let mut index_by: Option<Setting<Vec<String>>> = None;
        let mut store: Option<Setting<StoreKind>> = None;
        let mut namespace: Option<Setting<String>> = None;
        let mut label_selector: Option<Setting<String>> = None;
        let mut field_selector: Option<Setting<String>> = None;
        let mut ignore_fields: Option<Setting<Vec<String>>> = None;
        let mut missing_fields: Option<Setting<MissingFieldPolicy>> = None;
        let mut index_shards: Option<Setting<usize>> = None;
        let mut cache_ttl: Option<Setting<Duration>> = None;
        let mut max_cache_entries: Option<Setting<usize>> = None;
        let mut max_cache_bytes: Option<Setting<u64>> = None;

        for (key, value) in raw.fields {
            let at = value.referenced;
            let path = format!("{rpath}.{}", key.value);
            if value.value.is_null() {
                // `plural:` with nothing after it is the same as leaving it out; a missing
                // required setting is reported below.
                if !RESOURCE_FIELDS.contains(&key.value.as_str()) {
                    return Err(self.unknown_field(&rpath, &key));
                }
                continue;
            }
            let v = value.value;
            match key.value.as_str() {
                "api_version" => api_version = Some(self.typed(&path, at, v)?),
                "kind" => kind = Some(self.typed(&path, at, v)?),
                "plural" => plural = Some(self.typed(&path, at, v)?),
                "index_by" => index_by = Some(self.typed(&path, at, v)?),
                "store" => store = Some(self.typed(&path, at, v)?),
                "namespace" => namespace = Some(self.typed(&path, at, v)?),
                "label_selector" => label_selector = Some(self.typed(&path, at, v)?),
                "field_selector" => field_selector = Some(self.typed(&path, at, v)?),
                "ignore_fields" => ignore_fields = Some(self.typed(&path, at, v)?),
                "missing_fields" => missing_fields = Some(self.typed(&path, at, v)?),
                "index_shards" => index_shards = Some(self.count(&path, at, &v, 2, u64::MAX)?),
                "cache_ttl" => {
                    let value =
                        parse_duration_value(&v).map_err(|r| self.invalid(&path, &at, r))?;
                    cache_ttl = Some(Setting { value, at });
                }
                "max_cache_entries" => {
                    max_cache_entries = Some(self.count(&path, at, &v, 1, usize::MAX as u64)?);
                }
                "max_cache_bytes" => {
                    max_cache_bytes = Some(self.count(&path, at, &v, 1, u64::MAX)?)
                }
                _ => return Err(self.unknown_field(&rpath, &key)),
            }
        }

        let required = |name: &'static str| {
            self.invalid(
                &rpath,
                &here,
                <serde_json::Error as de::Error>::missing_field(name),
            )
        };
        let api_version = api_version.ok_or_else(|| required("api_version"))?;
        let kind = kind.ok_or_else(|| required("kind"))?;
        let index_by = index_by.ok_or_else(|| required("index_by"))?;
        let store = store.ok_or_else(|| {
            self.invalid(
                &rpath,
                &here,
                "missing field `store`: give `store: full` (bodies in memory) or \
                 `store: on-demand` (bodies fetched when read, then cached)",
            )
        })?;
        let field_path = |f: &str| format!("{rpath}.{f}");

        check_api_version(&api_version.value)
            .map_err(|r| self.invalid(field_path("api_version"), &api_version.at, r))?;
        if api_version.value == "core/v1" {
            return Err(self.invalid(
                field_path("api_version"),
                &api_version.at,
                "the core group is written `v1`, not `core/v1`",
            ));
        }
        if kind.value.trim().is_empty() {
            return Err(self.invalid(
                field_path("kind"),
                &kind.at,
                "is empty: give the kind as in the objects' `kind` field, such as `Ingress`",
            ));
        }
        let non_empty = |s: &Option<Setting<String>>, name: &str, hint: &str| match s {
            Some(s) if s.value.trim().is_empty() => {
                Err(self.invalid(field_path(name), &s.at, format!("is empty: {hint}")))
            }
            _ => Ok(()),
        };
        non_empty(
            &plural,
            "plural",
            "give the plural resource name, such as `ingresses`, or leave `plural` out to derive it from the kind",
        )?;
        non_empty(
            &namespace,
            "namespace",
            "leave `namespace` out to watch all namespaces",
        )?;
        non_empty(
            &label_selector,
            "label_selector",
            "leave `label_selector` out to select all objects",
        )?;
        non_empty(
            &field_selector,
            "field_selector",
            "leave `field_selector` out to select all objects",
        )?;

        // index_by
        if index_by.value.is_empty() {
            return Err(self.invalid(
                field_path("index_by"),
                &index_by.at,
                "is empty: give at least one field path, such as \
                 [\"metadata.namespace\", \"metadata.name\"]",
            ));
        }
        if index_by.value.len() > crate::MAX_KEYS {
            return Err(self.invalid(
                field_path("index_by"),
                &index_by.at,
                format!(
                    "has {} field paths, more than the {} key components a store takes: index \
                     by fewer fields",
                    index_by.value.len(),
                    crate::MAX_KEYS
                ),
            ));
        }
        let mut index_paths = Vec::with_capacity(index_by.value.len());
        for (i, p) in index_by.value.iter().enumerate() {
            let segs = parse_path(p)
                .map_err(|e| self.invalid(format!("{rpath}.index_by[{i}]"), &index_by.at, e))?;
            index_paths.push((p.as_str(), segs));
        }
        let missing = missing_fields.map(|s| s.value).unwrap_or_default();
        let mut indexer = Indexer::new(&index_by.value)
            .map_err(|e| self.invalid(field_path("index_by"), &index_by.at, e.kind))?;
        if missing == MissingFieldPolicy::Empty {
            indexer = indexer.missing_as_empty();
        }

        // ignore_fields
        let mut protected: Vec<(&str, Vec<Segment>, bool)> = IDENTITY_FIELDS
            .iter()
            .map(|(p, names)| (*p, names.iter().map(|n| field(n)).collect(), true))
            .collect();
        protected.extend(index_paths.into_iter().map(|(p, s)| (p, s, false)));
        let mut ignore = Vec::new();
        if let Some(fields) = &ignore_fields {
            for (i, p) in fields.value.iter().enumerate() {
                let here = format!("{rpath}.ignore_fields[{i}]");
                let segs = parse_path(p).map_err(|e| self.invalid(&here, &fields.at, e))?;
                if let Some((name, _, identity)) =
                    protected.iter().find(|(_, q, _)| q.starts_with(&segs))
                {
                    let reason = if *identity {
                        format!(
                            "{p:?} would remove {name}, which the store needs to identify \
                             objects: ignore narrower paths, such as \
                             metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']"
                        )
                    } else {
                        format!(
                            "{p:?} would remove index_by field {name}: remove it from \
                             ignore_fields or index by another field"
                        )
                    };
                    return Err(self.invalid(&here, &fields.at, reason));
                }
                ignore.push(segs);
            }
        }

        // on-demand settings
        let store_kind = store.value;
        if store_kind == StoreKind::OnDemand
            && let Some((i, p)) = index_by
                .value
                .iter()
                .enumerate()
                .find(|(_, p)| !p.starts_with("metadata."))
        {
            return Err(self.invalid(
                format!("{rpath}.index_by[{i}]"),
                &index_by.at,
                format!(
                    "{p:?} is outside metadata, but `store: on-demand` is fed by a \
                     metadata-only watch that never sees it: index by metadata fields \
                     (namespace, name, labels, annotations) or set `store: full`"
                ),
            ));
        }
        if store_kind == StoreKind::Full {
            let given = [
                ("cache_ttl", cache_ttl.as_ref().map(|s| s.at)),
                (
                    "max_cache_entries",
                    max_cache_entries.as_ref().map(|s| s.at),
                ),
                ("max_cache_bytes", max_cache_bytes.as_ref().map(|s| s.at)),
            ];
            if let Some((name, Some(at))) = given.into_iter().find(|(_, at)| at.is_some()) {
                return Err(self.invalid(
                    field_path(name),
                    &at,
                    format!(
                        "only applies to `store: on-demand`, and this store is `full` \
                         (it keeps every body in memory): remove {name} or set `store: on-demand`"
                    ),
                ));
            }
        }
        if let Some(ttl) = &cache_ttl
            && ttl.value.is_zero()
        {
            return Err(self.invalid(
                field_path("cache_ttl"),
                &ttl.at,
                "must be above zero (a zero TTL would drop every body as soon as it is fetched): \
                 give a duration such as 30s or 5m",
            ));
        }
        if let Some(n) = &max_cache_entries
            && n.value == 0
        {
            return Err(self.invalid(
                field_path("max_cache_entries"),
                &n.at,
                "must be above zero (a cache with no entries would fetch on every read): \
                 give a count such as 5000, or leave it out for the default of 10000",
            ));
        }
        if let Some(n) = &index_shards
            && n.value > crate::MAX_SHARDS
        {
            return Err(self.invalid(
                field_path("index_shards"),
                &n.at,
                format!(
                    "{} is more than the {} shards a store takes: give a power of two such as \
                     16, 64 or 1024, or leave it out for the default of 1024",
                    n.value,
                    crate::MAX_SHARDS
                ),
            ));
        }
        if let Some(n) = &index_shards
            && (n.value < 2 || !n.value.is_power_of_two())
        {
            return Err(self.invalid(
                field_path("index_shards"),
                &n.at,
                format!(
                    "{} is not a power of two of at least 2: give one such as 16, 64 or 1024, \
                     or leave it out for the default of 1024",
                    n.value
                ),
            ));
        }
        if let Some(n) = &max_cache_bytes
            && n.value == 0
        {
            return Err(self.invalid(
                field_path("max_cache_bytes"),
                &n.at,
                "must be above zero: give a byte budget such as 67108864 (64 MiB), or leave it \
                 out for no budget",
            ));
        }

        Ok(ResourceConfig {
            api_version: api_version.value,
            kind: kind.value,
            plural: plural.map(|s| s.value),
            index_by: index_by.value,
            store: store_kind,
            namespace: namespace.map(|s| s.value),
            label_selector: label_selector.map(|s| s.value),
            field_selector: field_selector.map(|s| s.value),
            ignore_fields: ignore_fields.map(|s| s.value).unwrap_or_default(),
            missing_fields: missing,
            index_shards: index_shards.map(|s| s.value),
            cache_ttl: cache_ttl.map(|s| s.value),
            max_cache_entries: max_cache_entries.map(|s| s.value),
            max_cache_bytes: max_cache_bytes.map(|s| s.value),
            indexer,
            stripper: FieldStripper::new(ignore),
        })
    }

    /// Converts one setting with serde, so that its messages are serde's
    /// (`unknown variant `ful`, expected `full` or `on-demand``).
    fn typed<T: DeserializeOwned>(
        &self,
        path: &str,
        at: Location,
        v: Value,
    ) -> Result<Setting<T>, ConfigError> {
        serde_json::from_value(v)
            .map(|value| Setting { value, at })
            .map_err(|e| self.invalid(path, &at, e))
    }

    /// Reads a whole-number setting of at most `max` (`min` is only named in messages:
    /// the callers explain a value below it themselves).
    fn count<T: TryFrom<u64>>(
        &self,
        path: &str,
        at: Location,
        v: &Value,
        min: u64,
        max: u64,
    ) -> Result<Setting<T>, ConfigError> {
        let range = format!("give a whole number from {min} to {max}");
        whole_number(v, max)
            .map_err(|e| e.describe(&range))
            .and_then(|n| T::try_from(n).map_err(|_| WholeNumberError::TooLarge.describe(&range)))
            .map(|value| Setting { value, at })
            .map_err(|reason| self.invalid(path, &at, reason))
    }

    fn unknown_field(&self, rpath: &str, key: &Spanned<String>) -> ConfigError {
        self.invalid(
            rpath,
            &key.referenced,
            <serde_json::Error as de::Error>::unknown_field(&key.value, RESOURCE_FIELDS),
        )
    }
}

/// Why a setting is not a whole number in range.
enum WholeNumberError {
    Negative(String),
    TooLarge,
    Fractional(String),
    NotANumber(&'static str),
}

impl WholeNumberError {
    fn describe(&self, range: &str) -> String {
        match self {
            Self::Negative(n) => format!("{n} is negative: {range}"),
            Self::TooLarge => format!("the number is too large: {range}"),
            Self::Fractional(n) => format!("{n} is not a whole number: {range}"),
            Self::NotANumber(found) => format!("expected a whole number, found {found}: {range}"),
        }
    }
}

/// A whole number of at most `max` as the YAML parser gives it. Integers wider than
/// 64 bits reach us as floats (the only wider number the parser has), so a float with
/// no fractional part is a too large (or too negative) integer, reported as such; its
/// digits are not echoed, since the float has rounded them.
fn whole_number(v: &Value, max: u64) -> Result<u64, WholeNumberError> {
    let Value::Number(n) = v else {
        return Err(WholeNumberError::NotANumber(json_kind(v)));
    };
    if let Some(u) = n.as_u64() {
        return if u <= max {
            Ok(u)
        } else {
            Err(WholeNumberError::TooLarge)
        };
    }
    if n.is_i64() {
        return Err(WholeNumberError::Negative(n.to_string()));
    }
    match n.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f < 0.0 => {
            Err(WholeNumberError::Negative("the number".into()))
        }
        Some(f) if f.is_finite() && f.fract() == 0.0 && f >= 1.0 => Err(WholeNumberError::TooLarge),
        _ => Err(WholeNumberError::Fractional(n.to_string())),
    }
}

fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

fn check_api_version(api_version: &str) -> Result<(), String> {
    let hint = "give `v1` for the core group or `group/version`, such as `networking.k8s.io/v1`";
    if api_version.trim().is_empty() {
        return Err(format!("is empty: {hint}"));
    }
    if api_version.chars().any(char::is_whitespace) {
        return Err(format!("{api_version:?} contains whitespace: {hint}"));
    }
    if api_version.matches('/').count() > 1 {
        return Err(format!("{api_version:?} has more than one '/': {hint}"));
    }
    let (group, version) = split_api_version(api_version);
    if api_version.contains('/') && group.is_empty() {
        return Err(format!("{api_version:?} has an empty group: {hint}"));
    }
    if version.is_empty() {
        return Err(format!("{api_version:?} has an empty version: {hint}"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Durations

const DURATION_HINT: &str =
    "give an integer number of seconds or a duration such as 250ms, 90s, 5m, 1h or 1h30m";

/// A `cache_ttl` as YAML gives it: an integer of seconds or a string of the same or of
/// `<integer><unit>` parts, units `h`, `m`, `s`, `ms` in that order, each at most once.
fn parse_duration_value(v: &Value) -> Result<Duration, String> {
    match v {
        Value::Number(_) => match whole_number(v, u64::MAX) {
            Ok(secs) => Ok(Duration::from_secs(secs)),
            Err(WholeNumberError::TooLarge) => Err(format!(
                "the number of seconds is too large (at most {}): {DURATION_HINT}",
                u64::MAX
            )),
            Err(WholeNumberError::Negative(n)) => Err(format!("{n} is negative: {DURATION_HINT}")),
            Err(WholeNumberError::Fractional(n)) => Err(format!(
                "{n} is not a whole number of seconds: {DURATION_HINT}"
            )),
            Err(WholeNumberError::NotANumber(found)) => Err(format!(
                "expected a duration, found {found}: {DURATION_HINT}"
            )),
        },
        Value::String(s) => parse_duration(s),
        other => Err(format!(
            "expected a duration, found {}: {DURATION_HINT}",
            json_kind(other)
        )),
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration {text:?}{why}: {DURATION_HINT}");
    if text.is_empty() {
        return Err(bad(""));
    }
    if text.starts_with('-') {
        return Err(bad(" (negative)"));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(Duration::from_secs)
            .map_err(|_| bad(" (too large)"));
    }
    const UNITS: [(&str, u64); 4] = [("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];
    let mut rest = text;
    let mut next_unit = 0; // units must come in decreasing order, each once
    let mut millis: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad(""));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad(" (too large)"))?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(pos) = UNITS.iter().position(|(u, _)| *u == unit) else {
            return Err(bad(if unit.is_empty() {
                " (a number without a unit)"
            } else {
                " (unknown unit)"
            }));
        };
        if pos < next_unit {
            return Err(bad(" (units out of order or repeated)"));
        }
        next_unit = pos + 1;
        millis = n
            .checked_mul(UNITS[pos].1)
            .and_then(|m| millis.checked_add(m))
            .ok_or_else(|| bad(" (too large)"))?;
    }
    Ok(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_fields_are_the_paths_they_spell() {
        for (path, names) in IDENTITY_FIELDS {
            let segments: Vec<Segment> = names.iter().map(|n| field(n)).collect();
            assert_eq!(parse_path(path), Ok(segments), "{path}");
        }
    }

    #[test]
    fn parses_durations_with_units_in_order() {
        let ms = Duration::from_millis;
        for (text, want) in [
            ("250ms", ms(250)),
            ("90s", ms(90_000)),
            ("5m", ms(300_000)),
            ("1h", ms(3_600_000)),
            ("1h30m", ms(5_400_000)),
            ("1m30s500ms", ms(90_500)),
            ("300", ms(300_000)),
            ("0s", ms(0)),
        ] {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
        for bad in [
            "",
            "m",
            "5 m",
            "5x",
            "-5m",
            "30m1h",
            "5m5m",
            "1.5h",
            "5mm",
            "99999999999999999999h",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn quotes_resource_names_that_are_not_plain_words() {
        assert_eq!(resource_path("secrets"), "watched_resources.secrets");
        assert_eq!(resource_path("a.b"), "watched_resources[\"a.b\"]");
        assert_eq!(resource_path(""), "watched_resources[\"\"]");
    }

    #[test]
    fn removes_paths_through_arrays_and_skips_absent_ones() {
        let mut v = serde_json::json!({"a": [{"b": 1, "c": 2}, 3]});
        assert!(remove_path(&mut v, &parse_path("a[0].b").unwrap()));
        assert!(!remove_path(&mut v, &parse_path("a[5].b").unwrap()));
        assert!(!remove_path(&mut v, &parse_path("x.y").unwrap()));
        assert!(remove_path(&mut v, &parse_path("a[1]").unwrap()));
        assert_eq!(v, serde_json::json!({"a": [{"c": 2}]}));
    }
}
