//! The harness of the on-demand tier's models (`singleflight.rs`, `invalidation.rs`): a
//! deterministic in-process API server and a fetcher whose futures the model controls.
//!
//! Deterministic fetchers are for model checking and fuzzing only; everything else
//! fetches through `ApiFetcher`.

// Each model file compiles this module into its own test crate and uses a part of it.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_store::{CachedStore, ErrorKind, Fetch, FetchError, Fetched, Operation, StoreError};
use loom::sync::Mutex;
use loom::sync::atomic::{AtomicUsize, Ordering};

/// The namespace and name of the one object the models fetch.
pub const NS: &str = "ns";
/// See [`NS`].
pub const NAME: &str = "a";
/// Its uid.
pub const UID: &str = "ua";
/// A second object's name (same namespace, same server answer), for models that need
/// two objects competing for the cache.
pub const NAME_B: &str = "b";

/// What the API server answers for the object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The object at this resourceVersion.
    Found(&'static str),
    /// `404 Not Found`.
    NotFound,
    /// A 500.
    Fails,
}

/// The API server: one object's current state, behind a loom mutex so that the model
/// interleaves server changes with fetches.
#[derive(Debug)]
pub struct Server {
    answer: Mutex<Answer>,
    calls: AtomicUsize,
}

impl Server {
    /// A server answering `answer`.
    pub fn new(answer: Answer) -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(answer),
            calls: AtomicUsize::new(0),
        })
    }

    /// Changes what the server answers from now on (a write on the API server, whose
    /// watch event the model delivers afterwards).
    pub fn set(&self, answer: Answer) {
        *self.answer.lock().expect("loom lock") = answer;
    }

    /// How many fetches the store made.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn answer(&self) -> Answer {
        *self.answer.lock().expect("loom lock")
    }
}

/// Returns `Pending` once (after waking itself), then `Ready`: a fetch "on the wire",
/// during which loom may run other threads and a caller may drop the future.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The models' [`Fetch`]: reads the [`Server`] when first polled, then yields once
/// before answering, so that a watch event, another caller or a cancellation can come
/// between the read and the answer.
#[derive(Debug)]
pub struct ModelFetcher {
    server: Arc<Server>,
}

impl ModelFetcher {
    /// A fetcher over `server`.
    pub fn new(server: &Arc<Server>) -> Self {
        Self {
            server: Arc::clone(server),
        }
    }
}

impl Fetch<ConfigMap> for ModelFetcher {
    fn fetch(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Fetched<ConfigMap>>, FetchError>> + Send {
        assert!(
            namespace == NS && (name == NAME || name == NAME_B),
            "fetched an unknown object {namespace}/{name}"
        );
        let name = name.to_owned();
        let server = Arc::clone(&self.server);
        async move {
            server.calls.fetch_add(1, Ordering::SeqCst);
            let answer = server.answer();
            YieldOnce(false).await;
            match answer {
                Answer::Found(rv) => Ok(Some(Fetched {
                    // A new allocation per fetch: callers sharing one `Arc` shared a fetch
                    // (or its cached body).
                    object: Arc::new(config_map_named(&name, rv)),
                    bytes: 100,
                })),
                Answer::NotFound => Ok(None),
                Answer::Fails => Err(FetchError::Api {
                    code: 500,
                    reason: "InternalError".into(),
                    message: "injected".into(),
                }),
            }
        }
    }
}

/// The store every model uses: two key components, room for four bodies, a TTL no
/// model reaches.
pub type Cached = CachedStore<ConfigMap, ModelFetcher>;

/// A store over `fetcher`.
pub fn new_cached(fetcher: ModelFetcher) -> Cached {
    new_cached_with(fetcher, 4)
}

/// A store over `fetcher` with room for `max_entries` bodies.
pub fn new_cached_with(fetcher: ModelFetcher, max_entries: usize) -> Cached {
    CachedStore::<ConfigMap>::builder(2)
        .shards(2)
        .max_entries(max_entries)
        .ttl(Duration::from_secs(3600))
        .fetch_concurrency(4)
        .build_with_fetcher(fetcher)
        .expect("valid settings")
}

/// The object at resourceVersion `rv`.
pub fn config_map(rv: &str) -> ConfigMap {
    config_map_named(NAME, rv)
}

/// The object `name` (in [`NS`]) at resourceVersion `rv`.
pub fn config_map_named(name: &str, rv: &str) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.namespace = Some(NS.into());
    cm.metadata.name = Some(name.into());
    cm.metadata.uid = Some(format!("u{name}"));
    cm.metadata.resource_version = Some(rv.into());
    cm
}

/// The object's keys.
pub fn keys() -> [&'static str; 2] {
    [NS, NAME]
}

/// The resourceVersion of a returned object.
pub fn rv(cm: &ConfigMap) -> &str {
    cm.metadata
        .resource_version
        .as_deref()
        .expect("every model object has a resourceVersion")
}

/// Asserts that `err` is the injected fetch failure.
pub fn assert_fetch_error(err: &StoreError) {
    assert_eq!(err.operation, Operation::Fetch, "{err}");
    assert!(
        matches!(
            &err.kind,
            ErrorKind::Fetch { cause, .. } if matches!(**cause, FetchError::Api { code: 500, .. })
        ),
        "{err}"
    );
}
