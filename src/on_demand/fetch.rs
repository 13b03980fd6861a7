//! How the on-demand tier reaches the API server: the [`Fetch`] trait and its real
//! implementation over a `kube::Client`, [`ApiFetcher`].

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use kube::Resource;
use kube::client::Body;
use kube::core::params::GetParams;
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::error::FetchError;
use crate::sync::Arc;

/// One object's body as fetched, with its size on the wire (the cache's byte weight).
pub struct Fetched<K> {
    /// The object.
    pub object: Arc<K>,
    /// The size of the response body in bytes.
    pub bytes: usize,
}

impl<K> Clone for Fetched<K> {
    fn clone(&self) -> Self {
        Self {
            object: Arc::clone(&self.object),
            bytes: self.bytes,
        }
    }
}

impl<K> fmt::Debug for Fetched<K> {
    // Never prints the object: it may be a Secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetched")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects, for messages.
fn display_name(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_owned()
    } else {
        format!("{namespace}/{name}")
    }
}

/// Checks that a fetched body is the object asked for (the on-demand tier calls it for
/// every fetcher's answer, before anything is cached or served).
pub(crate) fn check_identity<K: Resource>(
    namespace: &str,
    name: &str,
    fetched: Option<Fetched<K>>,
) -> Result<Option<Fetched<K>>, FetchError> {
    let Some(f) = fetched else { return Ok(None) };
    let meta = f.object.meta();
    let got_ns = meta.namespace.as_deref().unwrap_or("");
    let got_name = meta.name.as_deref().unwrap_or("");
    if got_ns == namespace && got_name == name {
        Ok(Some(f))
    } else {
        Err(FetchError::WrongObject {
            asked: display_name(namespace, name),
            got: display_name(got_ns, got_name),
        })
    }
}

/// Refuses what cannot be a namespace: a DNS-1123 label, as the API server requires
/// (`""` is a cluster-scoped object's, and is not sent).
fn check_namespace(namespace: &str) -> Result<(), FetchError> {
    let bad = |reason| {
        Err(FetchError::InvalidName {
            field: "namespace",
            value: namespace.to_owned(),
            reason,
        })
    };
    let b = namespace.as_bytes();
    if b.len() > 63 {
        return bad("a namespace has at most 63 characters");
    }
    let inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !b.is_empty() && (!b.iter().all(inner) || !edge(b.first()) || !edge(b.last())) {
        return bad(
            "a namespace consists of lowercase letters, digits and '-', and starts and ends \
             with a letter or digit",
        );
    }
    Ok(())
}

/// Refuses what the API server refuses in every object's name, and encodes the rest as
/// one path segment: every byte outside RFC 3986's unreserved characters (and `:`,
/// which RBAC names use) becomes `%XX`, so `?`, `#` and the like reach the server as
/// part of the name.
fn name_segment(name: &str) -> Result<String, FetchError> {
    let bad = |reason| {
        Err(FetchError::InvalidName {
            field: "name",
            value: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("a name is required");
    }
    if name == "." || name == ".." {
        return bad("a name may not be '.' or '..'");
    }
    if name.contains('/') {
        return bad("a name may not contain '/'");
    }
    if name.contains('%') {
        return bad("a name may not contain '%'");
    }
    let mut out = String::with_capacity(name.len());
    for &c in name.as_bytes() {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(c));
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    Ok(out)
}

/// Fetches single objects by namespace and name.
///
/// The crate's implementation is [`ApiFetcher`], over a `kube::Client`; tests and
/// production use it (tests against the in-process API server, crate `k8s-store-sim`).
/// The trait is public for what cannot run a network: a fuzz target or a loom model of
/// your own drives a [`CachedStore`](crate::CachedStore) through
/// [`build_with_fetcher`](crate::CachedStoreBuilder::build_with_fetcher) with a
/// deterministic fetcher, whose answers (a body, `None` for a 404, any [`FetchError`])
/// the target chooses. The store does the rest as it does over HTTP: singleflight,
/// caching, invalidation, the identity check of every body (a body of another object
/// than the one asked for is refused as [`FetchError::WrongObject`]).
///
/// A fetch may be cancelled (its future dropped) at any `.await`; the store hands the
/// flight to a waiting caller.
///
/// # Examples
///
/// A fetcher over a map, as a fuzz target would hold the "server" it generated:
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use k8s_openapi::api::core::v1::ConfigMap;
/// use k8s_store::{CachedStore, Fetch, FetchError, Fetched};
///
/// #[derive(Default)]
/// struct MapFetcher(Mutex<HashMap<(String, String), Arc<ConfigMap>>>);
///
/// impl Fetch<ConfigMap> for MapFetcher {
///     async fn fetch(&self, ns: &str, name: &str) -> Result<Option<Fetched<ConfigMap>>, FetchError> {
///         let found = self.0.lock().unwrap().get(&(ns.into(), name.into())).cloned();
///         Ok(found.map(|object| Fetched { object, bytes: 100 }))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut cm = ConfigMap::default();
/// cm.metadata.namespace = Some("default".into());
/// cm.metadata.name = Some("a".into());
/// let fetcher = MapFetcher::default();
/// fetcher.0.lock().unwrap().insert(("default".into(), "a".into()), Arc::new(cm.clone()));
///
/// let store = CachedStore::<ConfigMap>::builder(2).build_with_fetcher(fetcher)?;
/// store.add(&cm, &["default", "a"])?;
/// assert_eq!(store.get(&["default", "a"]).await?.len(), 1); // fetched
/// assert_eq!(store.get(&["default", "a"]).await?.len(), 1); // cached
/// assert_eq!(store.stats().fetches, 1);
/// # Ok(()) }
/// ```
pub trait Fetch<K>: Send + Sync + 'static {
    /// The object, `Ok(None)` if the API server says it does not exist.
    fn fetch(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Fetched<K>>, FetchError>> + Send;
}

/// Settings of an [`ApiFetcher`].
#[derive(Debug, Clone)]
pub(crate) struct FetchSettings {
    pub(crate) concurrency: usize,
    pub(crate) timeout: Duration,
    pub(crate) max_retries: u32,
    pub(crate) max_retry_after: Duration,
}

/// Fetches objects with `GET` through a `kube::Client`: at most `fetch_concurrency`
/// requests at once across all callers, each bounded by `fetch_timeout`; `429` answers
/// are retried after their `Retry-After` (capped), up to `max_retries` times.
///
/// Note that kube clients built with `kube::Config::default_retry` (the default) already
/// retry 429, 503 and 504 answers themselves, honouring `Retry-After`; the timeout
/// covers those retries, and a 429 that still reaches the fetcher is retried
/// `max_retries` more times.
pub struct ApiFetcher<K: Resource> {
    client: kube::Client,
    dyntype: K::DynamicType,
    permits: Semaphore,
    settings: FetchSettings,
    strip: Option<Stripper<K>>,
    _k: PhantomData<fn() -> K>,
}

pub use crate::object::Stripper;

impl<K: Resource> fmt::Debug for ApiFetcher<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiFetcher")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<K: Resource> ApiFetcher<K> {
    pub(crate) fn new(
        client: kube::Client,
        dyntype: K::DynamicType,
        settings: FetchSettings,
        strip: Option<Stripper<K>>,
    ) -> Self {
        Self {
            client,
            dyntype,
            permits: Semaphore::new(settings.concurrency),
            settings,
            strip,
            _k: PhantomData,
        }
    }

    /// One `GET` of `segment` (the name, encoded) in `namespace` (already checked).
    async fn attempt(&self, namespace: &str, segment: &str) -> Result<Attempt<K>, FetchError>
    where
        K: DeserializeOwned,
    {
        let ns = (!namespace.is_empty()).then_some(namespace);
        let url = K::url_path(&self.dyntype, ns);
        let request = kube::core::Request::new(url)
            .get(segment, &GetParams::default())
            .map_err(|e| FetchError::Transport(kube::Error::BuildRequest(e).into()))?;
        let response = self
            .client
            .send(request.map(Body::from))
            .await
            .map_err(|e| FetchError::Transport(e.into()))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http_retry_after())
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| FetchError::Transport(e.into()))?;
        match status {
            200 => {
                let mut object: K = serde_json::from_slice(&body).map_err(|e| {
                    // Category and position only: serde's message can quote a value.
                    FetchError::Decode(format!(
                        "{:?} error at line {} column {}",
                        e.classify(),
                        e.line(),
                        e.column()
                    ))
                })?;
                object.meta_mut().managed_fields = None;
                if let Some(strip) = &self.strip {
                    strip(&mut object);
                }
                Ok(Attempt::Found(Fetched {
                    object: Arc::new(object),
                    bytes: body.len(),
                }))
            }
            404 => Ok(Attempt::NotFound),
            429 => Ok(Attempt::Throttled(retry_after)),
            code => {
                let (reason, message) = status_fields(&body);
                Err(FetchError::Api {
                    code,
                    reason,
                    message,
                })
            }
        }
    }
}

enum Attempt<K> {
    Found(Fetched<K>),
    NotFound,
    Throttled(Option<Duration>),
}

fn http_retry_after() -> &'static str {
    "retry-after"
}

/// `reason` and `message` of a Status body (empty when it is not one).
fn status_fields(body: &[u8]) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(default)]
        reason: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Status>(body) {
        Ok(s) => (s.reason, s.message),
        Err(_) => (String::new(), String::new()),
    }
}

impl<K> Fetch<K> for ApiFetcher<K>
where
    K: Resource + DeserializeOwned + Send + Sync + 'static,
    K::DynamicType: Send + Sync,
{
    async fn fetch(&self, namespace: &str, name: &str) -> Result<Option<Fetched<K>>, FetchError> {
        // Before any permit or request: what cannot name an object is never sent.
        check_namespace(namespace)?;
        let segment = name_segment(name)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = {
                // `acquire` fails only on a closed semaphore, and nothing closes this one:
                // it is private to the fetcher, which never calls `close`.
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .expect("the fetcher's semaphore is never closed");
                tokio::time::timeout(self.settings.timeout, self.attempt(namespace, &segment))
                    .await
                    .map_err(|_| FetchError::Timeout(self.settings.timeout))??
            };
            match outcome {
                Attempt::Found(f) => return Ok(Some(f)),
                Attempt::NotFound => return Ok(None),
                Attempt::Throttled(retry_after) => {
                    if attempts > self.settings.max_retries {
                        return Err(FetchError::Throttled { attempts });
                    }
                    // Without a Retry-After, back off 100 ms, 200 ms, 400 ms, ...
                    let wait = retry_after
                        .unwrap_or(Duration::from_millis(100 << (attempts - 1).min(6)))
                        .min(self.settings.max_retry_after);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
