//! The configuration: the example file, every kind of bad input, durations and stripping.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_store::config::{Config, ConfigError, MissingFieldPolicy, StoreKind};
use kube::core::DynamicObject;
use serde_json::json;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/example.yaml");

/// A valid on-demand resource, for the cases to break one line of.
const SECRETS: &str = r#"
watched_resources:
  secrets:
    api_version: v1
    kind: Secret
    index_by: ["metadata.namespace", "metadata.name"]
    store: on-demand
"#;

/// A valid full resource.
const INGRESSES: &str = r#"
watched_resources:
  ingresses:
    api_version: networking.k8s.io/v1
    kind: Ingress
    index_by: ["metadata.namespace", "metadata.name"]
    store: full
"#;

fn error(yaml: &str) -> String {
    match Config::from_yaml(yaml) {
        Ok(config) => panic!("expected an error, loaded {config:?}\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

#[track_caller]
fn assert_error(yaml: &str, parts: &[&str]) {
    let msg = error(yaml);
    for part in parts {
        assert!(msg.contains(part), "{part:?} not in:\n{msg}\nfor:\n{yaml}");
    }
}

fn meta(ns: &str, name: &str) -> kube::core::ObjectMeta {
    kube::core::ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

#[test]
fn example_file_loads_the_four_resources() {
    let config = Config::from_path(EXAMPLE).unwrap();
    let names: Vec<_> = config
        .watched_resources
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        names,
        ["endpointslices", "ingresses", "secrets", "services"]
    );

    let ar = config.watched_resources["ingresses"].api_resource();
    assert_eq!(
        (
            &*ar.group,
            &*ar.version,
            &*ar.api_version,
            &*ar.kind,
            &*ar.plural
        ),
        (
            "networking.k8s.io",
            "v1",
            "networking.k8s.io/v1",
            "Ingress",
            "ingresses"
        )
    );
    let ar = config.watched_resources["services"].api_resource();
    assert_eq!(
        (&*ar.group, &*ar.version, &*ar.api_version, &*ar.plural),
        ("", "v1", "v1", "services")
    );
    let ar = config.watched_resources["endpointslices"].api_resource();
    assert_eq!(
        (&*ar.group, &*ar.version, &*ar.kind, &*ar.plural),
        ("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices")
    );
    let ar = config.watched_resources["secrets"].api_resource();
    assert_eq!((&*ar.group, &*ar.plural), ("", "secrets"));

    for name in ["ingresses", "services", "endpointslices"] {
        let r = &config.watched_resources[name];
        assert_eq!(r.store, StoreKind::Full, "{name}");
        assert_eq!(r.cache_ttl, None);
        assert_eq!(r.missing_fields, MissingFieldPolicy::Error);
        assert_eq!(r.index_labels, None, "{name}");
    }
    // The secondary indexes the demo and the controller example query.
    let indexes = |name: &str| {
        let r = &config.watched_resources[name];
        r.secondary_indexers()
            .map(|(index, _)| (index.to_owned(), r.indexes[index].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        indexes("ingresses"),
        [(
            "by_tls_secret".to_owned(),
            vec![
                "metadata.namespace".to_owned(),
                "spec.tls[*].secretName".to_owned()
            ]
        )]
    );
    assert_eq!(
        indexes("endpointslices"),
        [(
            "by_service".to_owned(),
            vec![
                "metadata.namespace".to_owned(),
                "metadata.labels['kubernetes.io/service-name']".to_owned()
            ]
        )]
    );
    assert!(indexes("services").is_empty() && indexes("secrets").is_empty());
    let secrets = config.get("secrets").unwrap();
    assert_eq!(secrets.store, StoreKind::OnDemand);
    assert_eq!(secrets.cache_ttl, Some(Duration::from_secs(300)));
    assert_eq!(secrets.ttl(), Duration::from_secs(300));
    assert_eq!(secrets.max_cache_entries, Some(2000));
    assert_eq!(secrets.max_entries(), 2000);
    assert_eq!(secrets.max_cache_bytes, None);
    assert_eq!(
        secrets.ignore_fields,
        ["metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']"]
    );
}

/// The indexer of `r`'s secondary index `name`.
#[track_caller]
fn secondary<'a>(r: &'a k8s_store::config::ResourceConfig, name: &str) -> &'a k8s_store::Indexer {
    r.secondary_indexers()
        .find_map(|(index, indexer)| (index == name).then_some(indexer))
        .unwrap_or_else(|| panic!("no index {name}"))
}

#[test]
fn example_indexers_read_the_configured_keys() {
    let config = Config::from_path(EXAMPLE).unwrap();

    let ingress = Ingress {
        metadata: meta("shop", "web"),
        ..Default::default()
    };
    let ix = config.watched_resources["ingresses"].indexer();
    assert_eq!(ix.keys(&ingress).unwrap(), ["shop", "web"]);

    let svc = Service {
        metadata: meta("shop", "cart"),
        ..Default::default()
    };
    let ix = config.watched_resources["services"].indexer();
    assert_eq!(ix.keys(&svc).unwrap(), ["shop", "cart"]);

    let mut slice = EndpointSlice {
        metadata: meta("shop", "cart-x7k2p"),
        address_type: "IPv4".into(),
        ..Default::default()
    };
    slice.metadata.labels = Some([("kubernetes.io/service-name".into(), "cart".into())].into());
    let slices = &config.watched_resources["endpointslices"];
    let ix = slices.indexer();
    assert_eq!(ix.keys(&slice).unwrap(), ["shop", "cart-x7k2p"]);
    let by_service = secondary(slices, "by_service");
    assert_eq!(by_service.key_sets(&slice).unwrap(), [["shop", "cart"]]);
    // Without the label: still stored under its name, in no entry of by_service.
    slice.metadata.labels = None;
    assert_eq!(ix.keys(&slice).unwrap(), ["shop", "cart-x7k2p"]);
    assert!(by_service.key_sets(&slice).unwrap().is_empty());

    // Ingresses by TLS Secret: one key per distinct Secret, none without TLS.
    let ingresses = &config.watched_resources["ingresses"];
    let by_tls = secondary(ingresses, "by_tls_secret");
    let tls = |secret: &str| k8s_openapi::api::networking::v1::IngressTLS {
        secret_name: Some(secret.into()),
        ..Default::default()
    };
    let mut ingress = Ingress {
        metadata: meta("shop", "web"),
        spec: Some(k8s_openapi::api::networking::v1::IngressSpec {
            tls: Some(vec![tls("web-tls"), tls("api-tls"), tls("web-tls")]),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        by_tls.key_sets(&ingress).unwrap(),
        [["shop", "api-tls"], ["shop", "web-tls"]]
    );
    ingress.spec = None;
    assert!(by_tls.key_sets(&ingress).unwrap().is_empty());

    let secret = Secret {
        metadata: meta("shop", "tls"),
        ..Default::default()
    };
    let ix = config.watched_resources["secrets"].indexer();
    assert_eq!(ix.keys(&secret).unwrap(), ["shop", "tls"]);
}

#[test]
fn missing_fields_empty_gives_an_empty_component() {
    let yaml = INGRESSES.replace(
        r#"index_by: ["metadata.namespace", "metadata.name"]"#,
        "index_by: [metadata.namespace, spec.ingressClassName]\n    missing_fields: empty",
    );
    let config = Config::from_yaml(&yaml).unwrap();
    let r = &config.watched_resources["ingresses"];
    assert_eq!(r.missing_fields, MissingFieldPolicy::Empty);
    let ingress = Ingress {
        metadata: meta("shop", "web"),
        ..Default::default()
    };
    assert_eq!(r.indexer().keys(&ingress).unwrap(), ["shop", ""]);
}

#[test]
fn optional_settings_are_loaded_and_defaults_apply() {
    let yaml = SECRETS.to_owned()
        + "    plural: secrets\n    namespace: shop\n    label_selector: \"app=web\"\n    \
           field_selector: \"metadata.name!=x\"\n    max_cache_bytes: 67108864\n    \
           index_shards: 64\n";
    let config: Config = yaml.parse().unwrap();
    let r = &config.watched_resources["secrets"];
    assert_eq!(r.plural.as_deref(), Some("secrets"));
    assert_eq!(r.namespace.as_deref(), Some("shop"));
    assert_eq!(r.label_selector.as_deref(), Some("app=web"));
    assert_eq!(r.field_selector.as_deref(), Some("metadata.name!=x"));
    assert_eq!(r.max_cache_bytes, Some(64 << 20));
    assert_eq!(r.index_shards, Some(64));
    assert_eq!(r.ttl(), Duration::from_secs(300));
    assert_eq!(r.max_entries(), 10_000);

    // A plural override wins over the guess.
    let yaml = INGRESSES.replace("kind: Ingress", "kind: Ingress\n    plural: ingressez");
    let config = Config::from_yaml(&yaml).unwrap();
    assert_eq!(
        config.watched_resources["ingresses"].api_resource().plural,
        "ingressez"
    );
}

#[test]
fn durations_parse_in_every_documented_form() {
    for (text, want) in [
        ("250ms", Duration::from_millis(250)),
        ("90s", Duration::from_secs(90)),
        ("\"300s\"", Duration::from_secs(300)),
        ("5m", Duration::from_secs(300)),
        ("1h", Duration::from_secs(3600)),
        ("1h30m", Duration::from_secs(5400)),
        ("300", Duration::from_secs(300)),
        ("\"300\"", Duration::from_secs(300)),
    ] {
        let config = Config::from_yaml(&format!("{SECRETS}    cache_ttl: {text}\n")).unwrap();
        assert_eq!(config.watched_resources["secrets"].ttl(), want, "{text}");
    }
}

#[test]
fn rejects_bad_durations_naming_the_setting() {
    for (text, detail) in [
        ("0", "must be above zero"),
        ("0s", "must be above zero"),
        ("-5", "negative"),
        ("\"-5m\"", "negative"),
        ("5 minutes", "invalid duration \"5 minutes\""),
        ("5d", "unknown unit"),
        ("1.5", "not a whole number of seconds"),
        ("30m1h", "out of order"),
        ("[5m]", "found a list"),
    ] {
        assert_error(
            &format!("{SECRETS}    cache_ttl: {text}\n"),
            &[
                "watched_resources.secrets.cache_ttl: ",
                detail,
                "(line 8, column 16)",
            ],
        );
    }
    assert_error(
        &format!("{SECRETS}    cache_ttl: 5 minutes\n"),
        &["250ms, 90s, 5m, 1h or 1h30m"],
    );
}

#[test]
fn rejects_unknown_fields_listing_the_valid_ones() {
    assert_error(
        &format!("{SECRETS}    cache_tll: 5m\n"),
        &[
            "watched_resources.secrets: unknown field `cache_tll`, expected one of",
            "`cache_ttl`",
            "`max_cache_entries`",
            "(line 8, column 5)",
        ],
    );
    // Also with an empty value.
    assert_error(
        &format!("{SECRETS}    labels:\n"),
        &["unknown field `labels`", "`label_selector`"],
    );
    // At the top level.
    let msg = error(&format!("{SECRETS}watched_resource: {{}}\n"));
    assert!(msg.contains("unknown field `watched_resource`"), "{msg}");
    assert!(msg.contains("watched_resources"), "{msg}");
    assert!(msg.contains("line 8"), "{msg}");
}

#[test]
fn rejects_unknown_store_and_missing_fields_values() {
    assert_error(
        &SECRETS.replace("store: on-demand", "store: ful"),
        &[
            "watched_resources.secrets.store: unknown variant `ful`, expected `full` or `on-demand`",
            "(line 7, column 12)",
        ],
    );
    assert_error(
        &SECRETS.replace("store: on-demand", "store: ondemand"),
        &["unknown variant `ondemand`, expected `full` or `on-demand`"],
    );
    assert_error(
        &SECRETS.replace("store: on-demand", "store: Full"),
        &["unknown variant `Full`"],
    );
    assert_error(
        &format!("{SECRETS}    missing_fields: skip\n"),
        &[
            "watched_resources.secrets.missing_fields: unknown variant `skip`, expected `error` or `empty`",
        ],
    );
}

#[test]
fn rejects_missing_required_settings() {
    for field in ["api_version", "kind", "index_by"] {
        let yaml: String = SECRETS
            .lines()
            .filter(|l| !l.trim_start().starts_with(field))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_error(
            &yaml,
            &[&format!(
                "watched_resources.secrets: missing field `{field}`"
            )],
        );
    }
    assert_error(
        &SECRETS.replace("    store: on-demand\n", ""),
        &[
            "watched_resources.secrets: missing field `store`",
            "`store: full`",
            "`store: on-demand`",
        ],
    );
    assert_error(
        &SECRETS.replace("store: on-demand", "store:"),
        &["missing field `store`"],
    );
}

#[test]
fn rejects_bad_index_by() {
    assert_error(
        &SECRETS.replace(r#"["metadata.namespace", "metadata.name"]"#, "[]"),
        &[
            "watched_resources.secrets.index_by: is empty",
            "metadata.namespace",
        ],
    );
    assert_error(
        &SECRETS.replace(r#""metadata.name""#, r#""metadata..name""#),
        &[
            "watched_resources.secrets.index_by[1]: invalid field path \"metadata..name\": empty field name",
            "(line 6, column 15)",
        ],
    );
    assert_error(
        &SECRETS.replace(r#""metadata.name""#, r#""metadata.labels['a""#),
        &["index_by[1]: invalid field path", "unterminated quote"],
    );
    assert_error(
        &SECRETS.replace(
            r#"["metadata.namespace", "metadata.name"]"#,
            "metadata.name",
        ),
        &[
            "watched_resources.secrets.index_by: invalid type: string \"metadata.name\", expected a sequence",
        ],
    );
}

#[test]
fn rejects_bad_ignore_fields() {
    assert_error(
        &format!("{SECRETS}    ignore_fields: [\"status\", \"spec[\"]\n"),
        &[
            "watched_resources.secrets.ignore_fields[1]: invalid field path \"spec[\"",
            "(line 8, column 20)",
        ],
    );
    for (path, removes) in [
        ("metadata", "metadata.name"),
        ("metadata.name", "metadata.name"),
        ("metadata['namespace']", "metadata.namespace"),
        ("metadata.uid", "metadata.uid"),
        ("metadata.resourceVersion", "metadata.resourceVersion"),
        ("kind", "kind"),
    ] {
        assert_error(
            &format!("{SECRETS}    ignore_fields: [\"{path}\"]\n"),
            &[
                "watched_resources.secrets.ignore_fields[0]: ",
                &format!("would remove {removes}, which the store needs to identify objects"),
            ],
        );
    }
    let yaml = SECRETS.replace(
        r#""metadata.name""#,
        r#""metadata.labels['app.kubernetes.io/name']""#,
    );
    for path in [
        "metadata.labels",
        "metadata.labels['app.kubernetes.io/name']",
    ] {
        assert_error(
            &format!("{yaml}    ignore_fields: [\"{path}\"]\n"),
            &[
                "ignore_fields[0]: ",
                "would remove index field metadata.labels['app.kubernetes.io/name']",
            ],
        );
    }
    // A sibling of an index field is fine.
    let config = Config::from_yaml(&format!(
        "{yaml}    ignore_fields: [\"metadata.labels['other']\", \"metadata.annotations\"]\n"
    ))
    .unwrap();
    assert_eq!(config.watched_resources["secrets"].ignore_fields.len(), 2);
}

#[test]
fn rejects_cache_settings_on_a_full_store() {
    for (line, field) in [
        ("cache_ttl: 5m", "cache_ttl"),
        ("max_cache_entries: 100", "max_cache_entries"),
        ("max_cache_bytes: 1000", "max_cache_bytes"),
    ] {
        assert_error(
            &format!("{INGRESSES}    {line}\n"),
            &[
                &format!("watched_resources.ingresses.{field}: only applies to `store: on-demand`"),
                "set `store: on-demand`",
                "(line 8,",
            ],
        );
    }
}

#[test]
fn rejects_zero_cache_limits() {
    assert_error(
        &format!("{SECRETS}    max_cache_entries: 0\n"),
        &["watched_resources.secrets.max_cache_entries: must be above zero"],
    );
    assert_error(
        &format!("{SECRETS}    max_cache_entries: -1\n"),
        &[
            "watched_resources.secrets.max_cache_entries: -1 is negative: give a whole number from 1 to",
        ],
    );
    assert_error(
        &format!("{SECRETS}    max_cache_bytes: 0\n"),
        &["watched_resources.secrets.max_cache_bytes: must be above zero"],
    );
}

#[test]
fn rejects_shard_counts_that_are_not_powers_of_two() {
    for bad in ["0", "1", "3", "1000"] {
        assert_error(
            &format!("{INGRESSES}    index_shards: {bad}\n"),
            &[
                &format!(
                    "watched_resources.ingresses.index_shards: {bad} is not a power of two of at \
                     least 2"
                ),
                "(line 8,",
            ],
        );
    }
    assert_error(
        &format!("{INGRESSES}    index_shards: -4\n"),
        &["watched_resources.ingresses.index_shards: -4 is negative: give a whole number from 2"],
    );
    let config = Config::from_yaml(&format!("{INGRESSES}    index_shards: 2\n")).unwrap();
    assert_eq!(config.watched_resources["ingresses"].index_shards, Some(2));
    let config = Config::from_yaml(INGRESSES).unwrap();
    assert_eq!(config.watched_resources["ingresses"].index_shards, None);
}

#[test]
fn rejects_shard_counts_past_the_maximum_at_load_time() {
    // 2^40 is a power of two: it used to pass here and abort the process in
    // `Stores::start`, on an allocation of 2^40 shards.
    for big in ["1099511627776", "131072"] {
        assert_error(
            &format!("{INGRESSES}    index_shards: {big}\n"),
            &[
                &format!(
                    "watched_resources.ingresses.index_shards: {big} is more than the 65536 \
                     shards a store takes"
                ),
                "(line 8,",
            ],
        );
    }
    let config = Config::from_yaml(&format!("{INGRESSES}    index_shards: 65536\n")).unwrap();
    assert_eq!(
        config.watched_resources["ingresses"].index_shards,
        Some(k8s_store::MAX_SHARDS)
    );
}

#[test]
fn out_of_range_numbers_are_called_too_large_with_the_range() {
    // Integers past 64 bits reach the loader as floats; they must not be described as
    // floats, nor as fractions.
    let max_u64 = u64::MAX.to_string();
    for (setting, value, range) in [
        ("max_cache_entries", "18446744073709551616", "from 1 to "),
        (
            "max_cache_entries",
            "340282366920938463463374607431768211456",
            "from 1 to ",
        ),
        ("max_cache_bytes", "18446744073709551616", "from 1 to "),
        ("index_shards", "99999999999999999999", "from 2 to "),
    ] {
        let msg = error(&format!("{SECRETS}    {setting}: {value}\n"));
        assert!(
            msg.contains(&format!(
                "watched_resources.secrets.{setting}: the number is too large: give a whole \
                 number {range}"
            )),
            "{msg}"
        );
        assert!(
            !msg.contains("floating point") && !msg.contains("e+"),
            "{msg}"
        );
    }
    let msg = error(&format!("{SECRETS}    cache_ttl: 99999999999999999999\n"));
    assert!(
        msg.contains(&format!(
            "watched_resources.secrets.cache_ttl: the number of seconds is too large (at most \
             {max_u64})"
        )),
        "{msg}"
    );
    assert!(!msg.contains("whole number of seconds"), "{msg}");
    // The largest values in range load.
    let config = Config::from_yaml(&format!(
        "{SECRETS}    max_cache_entries: {max_u64}\n    max_cache_bytes: {max_u64}\n    \
         cache_ttl: {max_u64}\n"
    ))
    .unwrap();
    let secrets = &config.watched_resources["secrets"];
    assert_eq!(secrets.max_cache_entries, Some(usize::MAX));
    assert_eq!(secrets.max_cache_bytes, Some(u64::MAX));
    assert_eq!(secrets.cache_ttl, Some(Duration::from_secs(u64::MAX)));
    // Fractions and other types are still named as such.
    assert_error(
        &format!("{SECRETS}    max_cache_entries: 12.5\n"),
        &["max_cache_entries: 12.5 is not a whole number: give a whole number from 1 to"],
    );
    assert_error(
        &format!("{SECRETS}    max_cache_entries: many\n"),
        &["max_cache_entries: expected a whole number, found a string"],
    );
    assert_error(
        &format!("{SECRETS}    cache_ttl: 1.5\n"),
        &["cache_ttl: 1.5 is not a whole number of seconds"],
    );
    assert_error(
        &format!("{SECRETS}    max_cache_bytes: -18446744073709551617\n"),
        &["max_cache_bytes: the number is negative"],
    );
}

#[test]
fn rejects_more_index_by_paths_than_a_store_takes() {
    let paths: Vec<String> = (0..=k8s_store::MAX_KEYS)
        .map(|i| format!("\"metadata.labels['k{i}']\""))
        .collect();
    assert_error(
        &format!(
            "watched_resources:\n  many:\n    api_version: v1\n    kind: ConfigMap\n    \
             index_by: [{}]\n    store: full\n",
            paths.join(", ")
        ),
        &[
            "watched_resources.many.index_by: has 65 field paths, more than the 64 key \
             components a store takes",
            "(line 5,",
        ],
    );
}

#[test]
fn rejects_bad_api_versions_and_kinds() {
    for (api_version, detail) in [
        ("\"\"", "is empty"),
        ("a/b/c", "has more than one '/'"),
        ("/v1", "has an empty group"),
        ("apps/", "has an empty version"),
        ("core/v1", "the core group is written `v1`"),
    ] {
        assert_error(
            &SECRETS.replace("api_version: v1", &format!("api_version: {api_version}")),
            &[
                "watched_resources.secrets.api_version: ",
                detail,
                "(line 4, column 18)",
            ],
        );
    }
    assert_error(
        &SECRETS.replace("api_version: v1", "api_version: apps/"),
        &["`group/version`, such as `networking.k8s.io/v1`"],
    );
    assert_error(
        &SECRETS.replace("kind: Secret", "kind: \"\""),
        &["watched_resources.secrets.kind: is empty"],
    );
    assert_error(
        &SECRETS.replace("kind: Secret", "kind: 5"),
        &["watched_resources.secrets.kind: invalid type: integer `5`, expected a string"],
    );
}

#[test]
fn rejects_empty_or_misshapen_documents() {
    assert_error(
        "watched_resources: {}\n",
        &["watched_resources: no resources are configured"],
    );
    assert_error(
        "watched_resources:\n",
        &["watched_resources: no resources are configured"],
    );
    assert_error("", &["the configuration is empty"]);
    assert_error("# nothing\n", &["the configuration is empty"]);
    assert_error("other: 1\n", &["unknown field `other`"]);
    assert_error("{}\n", &["missing field `watched_resources`"]);
    assert_error(
        "watched_resources:\n  secrets: 3\n",
        &["watched_resources.secrets", "(a mapping", "line 2"],
    );
    assert_error(
        "watched_resources:\n  secrets:\n",
        &["watched_resources.secrets"],
    );
    assert_error(
        "watched_resources: [a, b]\n",
        &["a mapping from store names to their settings", "line 1"],
    );
    assert_error(
        &SECRETS.replace("  secrets:", "  \"\":"),
        &["watched_resources[\"\"]: a resource needs a name"],
    );
    assert_error(
        &format!("{SECRETS}    kind: Secret\n"),
        &["duplicate", "kind", "line 8"],
    );
    assert_error("watched_resources: [\n", &["line"]);
}

#[test]
fn names_the_file_and_the_os_error() {
    let missing = concat!(env!("CARGO_MANIFEST_DIR"), "/config/does-not-exist.yaml");
    let err = Config::from_path(missing).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    let source = std::error::Error::source(&err).expect("the OS error is the source");
    assert_eq!(
        source.downcast_ref::<std::io::Error>().map(|e| e.kind()),
        Some(std::io::ErrorKind::NotFound)
    );
    let msg = err.to_string();
    assert!(msg.contains("does-not-exist.yaml"), "{msg}");
    assert!(msg.contains("os error"), "{msg}");

    let dir = std::env::temp_dir().join(format!("k8s-store-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.yaml");
    std::fs::write(&file, SECRETS.replace("store: on-demand", "store: ful")).unwrap();
    let msg = Config::from_path(&file).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        msg.starts_with(&format!(
            "{}: watched_resources.secrets.store: ",
            file.display()
        )),
        "{msg}"
    );
    match Config::from_yaml(&SECRETS.replace("store: on-demand", "store: ful")).unwrap_err() {
        ConfigError::Invalid {
            path, line, column, ..
        } => {
            assert_eq!(path, "watched_resources.secrets.store");
            assert_eq!((line, column), (Some(7), Some(12)));
        }
        other => panic!("{other:?}"),
    }
}

const STRIPPED: &str = r#"
watched_resources:
  pods:
    api_version: v1
    kind: Pod
    index_by: ["metadata.namespace", "metadata.name"]
    store: full
    ignore_fields:
      - "metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']"
      - "metadata.labels['example.com/build.id']"
      - "metadata.ownerReferences"
      - "status"
      - "spec.containers[0].env"
      - "spec.absent.deeper"
"#;

#[test]
fn strips_managed_fields_and_the_configured_paths_only() {
    let config = Config::from_yaml(STRIPPED).unwrap();
    let pods = &config.watched_resources["pods"];
    let mut obj = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
            "managedFields": [{"manager": "kubectl"}],
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "ou"}],
            "labels": {"example.com/build.id": "42", "example.com/build": "keep", "app": "web"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": "{...}",
                "kubectl.kubernetes.io/other": "keep"
            }
        },
        "spec": {"containers": [{"name": "a", "env": [{"name": "X"}]}, {"name": "b", "env": []}]},
        "status": {"phase": "Running"}
    });
    pods.strip_fields(&mut obj);
    assert_eq!(
        obj,
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"example.com/build": "keep", "app": "web"},
                "annotations": {"kubectl.kubernetes.io/other": "keep"}
            },
            "spec": {"containers": [{"name": "a"}, {"name": "b", "env": []}]}
        })
    );

    // Stripping again is a no-op; so is an object with none of the fields.
    let before = obj.clone();
    pods.stripper().strip(&mut obj);
    assert_eq!(obj, before);
    let mut bare = json!({"metadata": {"name": "x"}});
    pods.strip_fields(&mut bare);
    assert_eq!(bare, json!({"metadata": {"name": "x"}}));
}

#[test]
fn strips_dynamic_objects_in_metadata_and_data() {
    let config = Config::from_yaml(STRIPPED).unwrap();
    let pods = &config.watched_resources["pods"];
    let json = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
            "managedFields": [{"manager": "kubectl"}],
            "ownerReferences": [{"apiVersion": "v1", "kind": "X", "name": "o", "uid": "ou"}],
            "finalizers": ["keep"],
            "labels": {"example.com/build.id": "42", "app": "web"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}
        },
        "spec": {"containers": [{"name": "a", "env": [{"name": "X"}]}]},
        "status": {"phase": "Running"}
    });
    let mut obj: DynamicObject = serde_json::from_value(json).unwrap();
    pods.strip_dynamic(&mut obj);
    let m = &obj.metadata;
    assert_eq!(m.managed_fields, None);
    assert_eq!(m.owner_references, None);
    assert_eq!(m.finalizers, Some(vec!["keep".to_string()]));
    assert_eq!(m.labels, Some([("app".into(), "web".into())].into()));
    assert_eq!(m.annotations, Some(Default::default()));
    assert_eq!(
        (m.name.as_deref(), m.namespace.as_deref(), m.uid.as_deref()),
        (Some("p"), Some("ns"), Some("u"))
    );
    assert_eq!(m.resource_version.as_deref(), Some("7"));
    assert_eq!(obj.types.as_ref().unwrap().kind, "Pod");
    assert_eq!(obj.data, json!({"spec": {"containers": [{"name": "a"}]}}));
}

#[test]
fn without_ignore_fields_only_managed_fields_go() {
    let config = Config::from_yaml(INGRESSES).unwrap();
    let mut obj = json!({
        "metadata": {"name": "i", "managedFields": [{}], "annotations": {"a": "b"}},
        "status": {}
    });
    config.watched_resources["ingresses"].strip_fields(&mut obj);
    assert_eq!(
        obj,
        json!({"metadata": {"name": "i", "annotations": {"a": "b"}}, "status": {}})
    );
}

#[test]
fn a_yaml_error_keeps_the_parsers_error_as_its_source() {
    let err = Config::from_yaml("watched_resources: [\n").unwrap_err();
    assert!(matches!(err, ConfigError::Yaml { .. }), "{err:?}");
    assert!(std::error::Error::source(&err).is_some(), "{err:?}");
}

#[tokio::test]
async fn start_reports_settings_changed_after_loading_as_configuration_errors() {
    let server = k8s_store_sim::ApiServer::start().await.unwrap();

    // An on-demand store indexed outside metadata: what loading refuses, start refuses
    // the same way, through the configuration's error type.
    let mut config = Config::from_yaml(SECRETS).unwrap();
    config
        .watched_resources
        .get_mut("secrets")
        .unwrap()
        .index_by[1] = "data.password".into();
    let err = k8s_store::stores::Stores::start(&config, server.client()).unwrap_err();
    let ConfigError::Invalid { path, reason, .. } = &err else {
        panic!("expected ConfigError::Invalid, got {err:?}");
    };
    assert_eq!(path, "watched_resources.secrets.index_by[1]");
    assert!(reason.contains("outside metadata"), "{reason}");

    // A shard count the store refuses: ConfigError::Store, the StoreError as its source.
    let mut config = Config::from_yaml(INGRESSES).unwrap();
    config
        .watched_resources
        .get_mut("ingresses")
        .unwrap()
        .index_shards = Some(3);
    let err = k8s_store::stores::Stores::start(&config, server.client()).unwrap_err();
    assert!(matches!(err, ConfigError::Store { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("watched_resources.ingresses: build"),
        "{err}"
    );
    let source = std::error::Error::source(&err).expect("the store's error is the source");
    assert!(
        source.downcast_ref::<k8s_store::StoreError>().is_some(),
        "{source:?}"
    );
}

#[test]
fn indexes_are_loaded_compiled_and_checked() {
    let yaml = format!(
        "{INGRESSES}    indexes:\n      by_class: [\"spec.ingressClassName\"]\n      by_app: [\"metadata.namespace\", \"metadata.labels['app']\"]\n      by_tls: [\"spec.tls[*].secretName\"]\n"
    );
    let config = Config::from_yaml(&yaml).unwrap();
    let rc = &config.watched_resources["ingresses"];
    assert_eq!(
        rc.indexes["by_app"],
        ["metadata.namespace", "metadata.labels['app']"]
    );
    let compiled: Vec<_> = rc
        .secondary_indexers()
        .map(|(n, i)| (n.to_owned(), i.len()))
        .collect();
    assert_eq!(
        compiled,
        [
            ("by_app".to_owned(), 2),
            ("by_class".to_owned(), 1),
            ("by_tls".to_owned(), 1)
        ]
    );
    // ignore_fields may not remove the array a multi-valued path reads.
    assert_error(
        &format!("{yaml}    ignore_fields: [\"spec.tls\"]\n"),
        &[
            "ignore_fields[0]",
            "would remove index field spec.tls[*].secretName",
        ],
    );

    let with = |indexes: &str| format!("{INGRESSES}    indexes: {indexes}\n");
    assert_error(
        &with("{by_x: []}"),
        &["watched_resources.ingresses.indexes.by_x", "is empty"],
    );
    assert_error(
        &with("{by_x: [\"spec..a\"]}"),
        &[
            "watched_resources.ingresses.indexes.by_x[0]",
            "invalid field path",
        ],
    );
    assert_error(
        &with("[\"spec.a\"]"),
        &["watched_resources.ingresses.indexes"],
    );
    assert_error(
        &with("{\"\": [\"spec.a\"]}"),
        &["watched_resources.ingresses.indexes", "needs a name"],
    );
    // ignore_fields may not remove a secondary index's field either.
    assert_error(
        &format!(
            "{}    ignore_fields: [\"spec\"]\n",
            with("{by_class: [\"spec.ingressClassName\"]}")
        ),
        &[
            "ignore_fields[0]",
            "would remove index field spec.ingressClassName",
        ],
    );
    // An on-demand store: metadata its references keep, nothing else.
    let on_demand = Config::from_yaml(&format!(
        "{SECRETS}    indexes: {{by_owner: [\"metadata.ownerReferences[0].uid\"], by_t: [\"metadata.labels['t']\"]}}\n"
    ))
    .unwrap();
    assert_eq!(on_demand.watched_resources["secrets"].indexes.len(), 2);
    assert_error(
        &format!("{SECRETS}    indexes: {{by_type: [\"type\"]}}\n"),
        &[
            "watched_resources.secrets.indexes.by_type[0]",
            "not a field an on-demand store keeps",
        ],
    );
}

#[test]
fn index_labels_is_all_or_a_list_of_keys() {
    let with = |v: &str| format!("{INGRESSES}    index_labels: {v}\n");
    let all = Config::from_yaml(&with("all")).unwrap();
    assert_eq!(
        all.watched_resources["ingresses"].index_labels,
        Some(k8s_store::LabelIndex::All)
    );
    let some = Config::from_yaml(&with("[app, tier]")).unwrap();
    assert_eq!(
        some.watched_resources["ingresses"].index_labels,
        Some(k8s_store::LabelIndex::keys(["app", "tier"]))
    );
    assert!(
        Config::from_yaml(INGRESSES).unwrap().watched_resources["ingresses"]
            .index_labels
            .is_none()
    );
    assert_error(
        &with("some"),
        &["watched_resources.ingresses.index_labels", "give `all`"],
    );
    assert_error(&with("[app, \"\"]"), &["index_labels", "non-empty string"]);
    assert_error(&with("[1]"), &["index_labels", "non-empty string"]);
}
