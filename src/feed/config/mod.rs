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
//! | `indexes` | no | secondary indexes: a mapping from each index's name to its field paths (`by_node: ["spec.nodeName"]`), queried with `get_by` ([`MemoryReader::get_by`](crate::MemoryReader::get_by), [`CachedReader::get_by`](crate::CachedReader::get_by)); kept in name order. On an `on-demand` store only `metadata` fields its references keep: namespace, name, uid, labels, annotations, ownerReferences |
//! | `index_labels` | no | `all` or a list of label keys: a label index, so that `select` answers selectors from it (see [`LabelIndex`](crate::LabelIndex)); defaults to none |
//! | `store` | yes | `full` (bodies in memory) or `on-demand` (references in memory, bodies fetched and cached) |
//! | `namespace` | no | watch one namespace; defaults to all |
//! | `label_selector`, `field_selector` | no | passed to the watch as they are |
//! | `ignore_fields` | no | field paths removed before objects are stored; `metadata.managedFields` always is |
//! | `missing_fields` | no | `error` (default: the object is logged and skipped) or `empty` (a missing index field is `""`) |
//! | `index_shards` | no | kept for compatibility, with no effect (the exact-key index is one lock-free table); still checked: a power of two from 2 to [`MAX_SHARDS`](crate::MAX_SHARDS) (65,536), reported by `shards()` (see [`MemoryStoreBuilder::shards`](crate::MemoryStoreBuilder::shards)) |
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
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use kube::core::{ApiResource, DynamicObject, GroupVersionKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::feed::indexer::Indexer;

mod duration;
mod error;
mod load;
mod strip;

pub use error::ConfigError;
pub(crate) use load::{check_on_demand_index, resource_path};
use load::{load, split_api_version};
pub use strip::FieldStripper;

// The on-demand defaults are the builder's: defined once, there.
pub use crate::on_demand::builder::{DEFAULT_CACHE_TTL, DEFAULT_MAX_CACHE_ENTRIES};

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
    "indexes",
    "index_labels",
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
    /// The secondary indexes: each one's name and the field paths its keys are read
    /// from (see [`MemoryStoreBuilder::index`](crate::MemoryStoreBuilder::index)).
    pub indexes: BTreeMap<String, Vec<String>>,
    /// The label keys indexed for selectors (`index_labels`); `None`: no label index.
    pub index_labels: Option<crate::LabelIndex>,
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
    /// A shard count for the exact-key index (a power of two, at least 2), kept for
    /// compatibility: it is checked and reported by the store's `shards()`, and has no
    /// effect. `None` leaves the store's default (see
    /// [`MemoryStoreBuilder::shards`](crate::MemoryStoreBuilder::shards)).
    pub index_shards: Option<usize>,
    /// How long an on-demand store keeps a fetched body; see [`ttl`](Self::ttl).
    pub cache_ttl: Option<Duration>,
    /// How many bodies an on-demand store caches; see [`max_entries`](Self::max_entries).
    pub max_cache_entries: Option<usize>,
    /// A byte budget for an on-demand store's cached bodies; `None` is no budget.
    pub max_cache_bytes: Option<u64>,
    indexer: Indexer,
    secondary: Vec<(String, Indexer)>,
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

    /// The secondary indexes' names and indexers, in name order, compiled from
    /// `indexes` at load time.
    pub fn secondary_indexers(&self) -> impl Iterator<Item = (&str, &Indexer)> {
        self.secondary.iter().map(|(n, i)| (n.as_str(), i))
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
/// `missing_fields: empty`. The indexer's own [`MissingField`](crate::MissingField)
/// (one type, under the name the configuration has always used).
pub use crate::feed::indexer::MissingField as MissingFieldPolicy;

#[cfg(test)]
mod tests {
    use super::duration::parse_duration;
    use super::load::resource_path;
    use super::strip::{field, remove_path};
    use super::*;
    use crate::feed::indexer::{Segment, parse_path};

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
