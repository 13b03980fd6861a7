//! Loading: the document parsed with every setting's location, then each resource's
//! settings checked (types, ranges, field paths, what applies to which tier).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use serde_saphyr::{Location, Spanned};

use crate::feed::indexer::{Indexer, Segment, parse_path};
use crate::index::secondary::LabelIndex;
use crate::object::json_kind;

use super::duration::parse_duration_value;
use super::error::ConfigError;
use super::strip::{FieldStripper, field};
use super::{
    Config, IDENTITY_FIELDS, MissingFieldPolicy, RESOURCE_FIELDS, ResourceConfig, StoreKind,
};

/// The document as parsed: every setting kept as JSON with its location, so that each
/// error can name its exact path and line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    watched_resources: Spanned<RawResources>,
}

pub(super) struct RawResources(Vec<RawResource>);

pub(super) struct RawResource {
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
pub(super) struct BodySeed<'a>(&'a str);

pub(super) type RawFields = Vec<(Spanned<String>, Spanned<Value>)>;

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
pub(crate) fn resource_path(name: &str) -> String {
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

pub(super) fn load(yaml: &str, file: Option<&Path>) -> Result<Config, ConfigError> {
    let ctx = Ctx { file };
    let raw: Option<RawConfig> =
        serde_saphyr::from_str(yaml).map_err(|e: serde_saphyr::Error| {
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
                source: Some(Box::new(e)),
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
            source: None,
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

/// An on-demand store is fed by a metadata-only watch: every `index_by` path must be in
/// `metadata`. Checked when loading and again by `Stores::start` (the fields are public).
pub(crate) fn check_on_demand_index(index_by: &[String]) -> Result<(), (usize, String)> {
    match index_by
        .iter()
        .enumerate()
        .find(|(_, p)| !p.starts_with("metadata."))
    {
        Some((i, p)) => Err((
            i,
            format!(
                "{p:?} is outside metadata, but `store: on-demand` is fed by a \
                 metadata-only watch that never sees it: index by metadata fields \
                 (namespace, name, labels, annotations) or set `store: full`"
            ),
        )),
        None => Ok(()),
    }
}

pub(super) struct Ctx<'a> {
    file: Option<&'a Path>,
}

/// One setting as read: its value and where it was.
pub(super) struct Setting<T> {
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
        let mut indexes: Option<Setting<BTreeMap<String, Vec<String>>>> = None;
        let mut index_labels: Option<Setting<LabelIndex>> = None;
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
                "indexes" => indexes = Some(self.typed(&path, at, v)?),
                "index_labels" => {
                    let value = match &v {
                        Value::String(all) if all == "all" => LabelIndex::All,
                        Value::Array(keys) => LabelIndex::Keys(
                            keys.iter()
                                .map(|k| k.as_str().filter(|k| !k.is_empty()).map(str::to_owned))
                                .collect::<Option<_>>()
                                .ok_or_else(|| {
                                    self.invalid(
                                        &path,
                                        &at,
                                        "every label key must be a non-empty string",
                                    )
                                })?,
                        ),
                        _ => {
                            return Err(self.invalid(
                                &path,
                                &at,
                                "give `all` (every label key) or a list of label keys, \
                                 such as [app, tier]",
                            ));
                        }
                    };
                    index_labels = Some(Setting { value, at });
                }
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
        // indexes
        let mut secondary = Vec::new();
        if let Some(ix) = &indexes {
            for (name, paths) in &ix.value {
                let here = format!("{rpath}.indexes.{name}");
                if name.trim().is_empty() {
                    return Err(self.invalid(
                        format!("{rpath}.indexes"),
                        &ix.at,
                        "an index needs a name (the one lookups give), such as by_node",
                    ));
                }
                if paths.is_empty() {
                    return Err(self.invalid(
                        &here,
                        &ix.at,
                        "is empty: give at least one field path, such as [\"spec.nodeName\"]",
                    ));
                }
                for (i, p) in paths.iter().enumerate() {
                    // What `ignore_fields` may not remove: the path, or for a
                    // multi-valued one (`spec.tls[*].secretName`) the array it reads.
                    let whole = p.split("[*]").next().unwrap_or(p);
                    let segs = parse_path(whole)
                        .map_err(|e| self.invalid(format!("{here}[{i}]"), &ix.at, e))?;
                    if store.value == StoreKind::OnDemand
                        && !crate::on_demand::builder::kept_path(p)
                    {
                        return Err(self.invalid(
                            format!("{here}[{i}]"),
                            &ix.at,
                            format!(
                                "{p:?} is not a field an on-demand store keeps: it is fed by a \
                                 metadata-only watch and keeps references, which hold \
                                 metadata.namespace, .name, .uid, .labels, .annotations and \
                                 .ownerReferences only; index by those, or set `store: full`"
                            ),
                        ));
                    }
                    index_paths.push((p.as_str(), segs));
                }
                let indexer =
                    Indexer::new(paths).map_err(|e| self.invalid(&here, &ix.at, e.kind))?;
                secondary.push((name.clone(), indexer));
            }
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
                            "{p:?} would remove index field {name}: remove it from \
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
            && let Err((i, reason)) = check_on_demand_index(&index_by.value)
        {
            return Err(self.invalid(format!("{rpath}.index_by[{i}]"), &index_by.at, reason));
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
            indexes: indexes.map(|s| s.value).unwrap_or_default(),
            index_labels: index_labels.map(|s| s.value),
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
            secondary,
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
pub(super) enum WholeNumberError {
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
pub(super) fn whole_number(v: &Value, max: u64) -> Result<u64, WholeNumberError> {
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

pub(super) fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

pub(super) fn check_api_version(api_version: &str) -> Result<(), String> {
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
