//! An in-process Kubernetes API server for controller tests and demos: what envtest is
//! to Go controllers, without a binary to download.
//!
//! [`ApiServer`] speaks the real Kubernetes HTTP protocol on a loopback port, so code
//! under test talks to it through an ordinary [`kube::Client`]: typed `Api<K>` calls,
//! metadata-only calls, `kube::runtime::watcher` and `metadata_watcher` all work as
//! against a cluster. Objects are stored as JSON, so any registered resource works.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use k8s_openapi::api::core::v1::ConfigMap;
//! use k8s_store_sim::{ApiServer, Fault, Route, Verb};
//! use kube::api::{Api, ListParams};
//!
//! let server = ApiServer::start().await?;
//! let api: Api<ConfigMap> = Api::namespaced(server.client(), "default");
//! let mut cm = ConfigMap::default();
//! cm.metadata.name = Some("settings".into());
//! cm.metadata.namespace = Some("default".into());
//! server.create(&cm)?; // in-process, no HTTP; watchers see it like any other write
//! assert_eq!(api.list(&ListParams::default()).await?.items.len(), 1);
//!
//! server.set_fault(Route::get("configmaps"), Fault::status(500))?;
//! assert!(api.get("settings").await.is_err());
//! assert_eq!(server.counters().requests(Verb::Get, "configmaps"), 1);
//! # Ok(()) }
//! ```
//!
//! # What it serves
//!
//! For every registered resource (core `/api/v1/...` and group `/apis/{group}/{version}/...`
//! paths, namespaced and all-namespaces): get, list, watch, create (POST), update (PUT),
//! delete and deletecollection, plus `/version` and legacy discovery (`/api`, `/apis`,
//! `/api/v1`, `/apis/{group}/{version}`).
//!
//! - **resourceVersion** is one global counter (like etcd's revision), as a decimal string.
//! - **list** returns the current RV; `limit` + `continue` pages are a consistent snapshot
//!   at the first page's RV (reconstructed from the event log); a continue token older
//!   than the log answers 410 Expired. `resourceVersion` + `resourceVersionMatch` follow
//!   the API semantics (Exact reads a past snapshot if still in the log).
//! - **selectors**: full label selector syntax; field selectors on `metadata.name` and
//!   `metadata.namespace` (any other field is a 400, like a field the resource does not
//!   index).
//! - **watch**: `resourceVersion` unset or `"0"` sends synthetic ADDED events for the
//!   current state, then live events; an RV replays every event after it from the log,
//!   or sends an `ERROR` event with a 410 Expired `Status` if it is older than the log.
//!   BOOKMARKs every [`ApiServerBuilder::bookmark_interval`] and before a `timeoutSeconds`
//!   end when `allowWatchBookmarks=true`. `sendInitialEvents=true` (streaming lists) is
//!   implemented: ADDED for the current state, then a BOOKMARK annotated
//!   `k8s.io/initial-events-end: "true"`. Objects entering or leaving a label selector
//!   by a modification are sent as ADDED / DELETED, like the watch cache does.
//! - **metadata-only**: `Accept: application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1`
//!   (get, watch, writes) and `...;as=PartialObjectMetadataList;...` (list) answer
//!   `meta.k8s.io/v1` `PartialObjectMetadata(List)` with only the metadata.
//! - **errors** are `metav1.Status` bodies with the code and reason a real server uses.
//!
//! Deliberately not implemented, answered like a server that lacks them: PATCH (405),
//! subresources such as `/status` (404), the legacy `/api/v1/watch/...` paths (404),
//! Table and protobuf responses (406), aggregated discovery (plain discovery is
//! returned). Not simulated: namespace existence checks, finalizers and graceful deletion
//! (a delete removes the object at once), `generation`, `managedFields`, admission.
//!
//! # Faults and counters
//!
//! See [`Fault`], [`Route`] and [`Counters`]; [`ApiServer::drop_watches`] cuts every
//! open watch, [`ApiServer::compact`] makes every older resourceVersion expire.
//!
//! The default [`ApiServer::client`] retries 429/503/504 like every kube client (up to
//! 15 times, honouring `Retry-After`); build one from [`ApiServer::config`] with
//! `default_retry = false` to see those statuses directly.

mod counters;
mod error;
mod fault;
mod http;
mod meta;
mod render;
mod selector;
mod store;
mod token;
mod verb;
mod watch;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::Resource;
use kube::core::ApiResource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use counters::Counters;
pub use error::SimError;
pub use fault::{Fault, Route};
pub use verb::Verb;

use counters::LiveCounters;
use fault::FaultTable;
use http::App;
use store::{ResourceInfo, Store};
use watch::Control;

/// The default number of events the log keeps for watch resumption and paged lists.
pub const DEFAULT_EVENT_LOG_CAPACITY: usize = 100_000;
/// The default interval between BOOKMARK events on watches that allow them.
pub const DEFAULT_BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

fn core(plural: &str, kind: &str) -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn grouped(group: &str, version: &str, plural: &str, kind: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// The resources every server starts with: core v1 Secrets, ConfigMaps, Services and
/// (cluster-scoped) Namespaces, `networking.k8s.io/v1` Ingresses and
/// `discovery.k8s.io/v1` EndpointSlices.
pub fn default_resources() -> Vec<(ApiResource, bool)> {
    vec![
        (core("secrets", "Secret"), true),
        (core("configmaps", "ConfigMap"), true),
        (core("services", "Service"), true),
        (core("namespaces", "Namespace"), false),
        (
            grouped("networking.k8s.io", "v1", "ingresses", "Ingress"),
            true,
        ),
        (
            grouped("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice"),
            true,
        ),
    ]
}

/// Configures and starts an [`ApiServer`].
#[derive(Debug, Clone)]
pub struct ApiServerBuilder {
    event_log_capacity: usize,
    bookmark_interval: Duration,
    addr: SocketAddr,
    resources: Vec<(ApiResource, bool)>,
}

impl Default for ApiServerBuilder {
    fn default() -> Self {
        Self {
            event_log_capacity: DEFAULT_EVENT_LOG_CAPACITY,
            bookmark_interval: DEFAULT_BOOKMARK_INTERVAL,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            resources: default_resources(),
        }
    }
}

impl ApiServerBuilder {
    /// How many events the log keeps (default [`DEFAULT_EVENT_LOG_CAPACITY`]). Watches and
    /// list continuations from before the oldest kept event get 410 Expired. Old object
    /// versions stay in memory while their events are in the log.
    pub fn event_log_capacity(mut self, events: usize) -> Self {
        self.event_log_capacity = events;
        self
    }

    /// How often watches with `allowWatchBookmarks=true` get a BOOKMARK (default 1 s).
    pub fn bookmark_interval(mut self, interval: Duration) -> Self {
        self.bookmark_interval = interval;
        self
    }

    /// The address to listen on (default `127.0.0.1:0`, a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Serves one more resource (see [`ApiServer::register`]).
    pub fn register(mut self, resource: ApiResource, namespaced: bool) -> Self {
        self.resources.push((resource, namespaced));
        self
    }

    /// Binds the socket and starts serving on the current tokio runtime.
    pub async fn start(self) -> Result<ApiServer, SimError> {
        let store = Arc::new(Store::new(self.event_log_capacity));
        for (resource, namespaced) in self.resources {
            store.register(resource, namespaced);
        }
        let listener = tokio::net::TcpListener::bind(self.addr).await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let config = kube::Config::new(
            url.parse()
                .map_err(|e: axum::http::uri::InvalidUri| SimError::Url(e.to_string()))?,
        );
        let client = kube::Client::try_from(config.clone())?;
        let (control, _) = tokio::sync::watch::channel(Control::default());
        let app = Arc::new(App {
            store,
            faults: FaultTable::default(),
            counters: Arc::new(LiveCounters::default()),
            control,
            bookmark_interval: self.bookmark_interval,
            addr,
        });
        let mut shutdown = app.control.subscribe();
        let router = http::router(app.clone());
        let task = tokio::spawn(async move {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                // Watch events are small writes: do not let Nagle hold them back.
                let _ = tcp.set_nodelay(true);
            });
            let result = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = shutdown.wait_for(|c| c.shutdown).await;
                })
                .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "sim: API server stopped with an error");
            }
        });
        Ok(ApiServer {
            app,
            addr,
            url,
            config,
            client,
            task: Some(task),
        })
    }
}

/// An in-process Kubernetes API server on a loopback port. Dropping it stops it.
pub struct ApiServer {
    app: Arc<App>,
    addr: SocketAddr,
    url: String,
    config: kube::Config,
    client: kube::Client,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiServer")
            .field("url", &self.url)
            .field("resource_version", &self.resource_version())
            .finish_non_exhaustive()
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.app.control.send_modify(|c| c.shutdown = true);
    }
}

impl ApiServer {
    /// Starts a server with the default configuration on `127.0.0.1` (a free port).
    pub async fn start() -> Result<Self, SimError> {
        ApiServerBuilder::default().start().await
    }

    /// A builder for a customised server.
    pub fn builder() -> ApiServerBuilder {
        ApiServerBuilder::default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube client for this server (a cheap clone of one client).
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// A kube config for this server, to build differently configured clients (for
    /// example with `default_retry = false`).
    pub fn config(&self) -> kube::Config {
        self.config.clone()
    }

    /// Serves one more resource (a no-op re-registration keeps existing objects).
    pub fn register(&self, resource: ApiResource, namespaced: bool) {
        self.app.store.register(resource, namespaced);
    }

    /// The current (latest) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.app.store.current_rv()
    }

    // ---- faults, counters, watch control ----

    /// Installs `fault` on `route`, replacing any fault installed on exactly that route.
    pub fn set_fault(&self, route: Route, fault: Fault) -> Result<(), SimError> {
        fault.validate()?;
        self.app.faults.set(route, fault);
        Ok(())
    }

    /// Removes the fault installed on exactly `route`.
    pub fn clear_fault(&self, route: &Route) {
        self.app.faults.clear(route);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.app.faults.clear_all();
    }

    /// A snapshot of the request counters.
    pub fn counters(&self) -> Counters {
        self.app.counters.snapshot()
    }

    /// Zeroes the counters (peaks restart from what is in flight now).
    pub fn reset_counters(&self) {
        self.app.counters.reset();
    }

    /// Ends every open watch abruptly (the connection is reset without a final chunk), as
    /// when an API server instance dies. Watches opened afterwards are not affected.
    pub fn drop_watches(&self) {
        self.app.control.send_modify(|c| c.drop_generation += 1);
    }

    /// Drops the event log: every resourceVersion older than the current one becomes too
    /// old (watches from it get a 410 `ERROR` event, list continuations a 410).
    pub fn compact(&self) {
        self.app.store.compact();
    }

    /// Stops the server: open watches end cleanly, then in-flight requests finish.
    pub async fn shutdown(mut self) {
        self.app.control.send_modify(|c| c.shutdown = true);
        if let Some(task) = self.task.take()
            && tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .is_err()
        {
            tracing::warn!("sim: API server did not stop within 5 s");
        }
    }

    // ---- direct (in-process) access ----

    fn resource<K: Resource<DynamicType = ()>>(
        &self,
    ) -> Result<(usize, Arc<ResourceInfo>), SimError> {
        self.resource_of(&ApiResource::erase::<K>(&()))
    }

    fn resource_of(&self, ar: &ApiResource) -> Result<(usize, Arc<ResourceInfo>), SimError> {
        self.app
            .store
            .resolve(&ar.group, &ar.version, &ar.plural)
            .ok_or_else(|| SimError::UnknownResource {
                api_version: ar.api_version.clone(),
                plural: ar.plural.clone(),
            })
    }

    fn typed<K: DeserializeOwned>(value: &Value) -> Result<K, SimError> {
        Ok(K::deserialize(value)?)
    }

    fn namespace_of(value: &Value) -> Option<&str> {
        value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    fn name_of(value: &Value) -> &str {
        value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    /// Creates an object (its namespace is `metadata.namespace`), exactly like a POST:
    /// same validation, same resourceVersion/uid assignment, same watch event.
    pub fn create<K>(&self, object: &K) -> Result<K, SimError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let (res, _) = self.resource::<K>()?;
        let created = self.create_at(res, serde_json::to_value(object)?)?;
        Self::typed(&created)
    }

    /// Creates a JSON object of resource `resource` (see [`ApiServer::create`]).
    pub fn create_json(&self, resource: &ApiResource, object: Value) -> Result<Value, SimError> {
        let (res, _) = self.resource_of(resource)?;
        Ok((*self.create_at(res, object)?).clone())
    }

    fn create_at(&self, res: usize, object: Value) -> Result<Arc<Value>, SimError> {
        let ns = Self::namespace_of(&object).map(str::to_string);
        Ok(self.app.store.create(res, ns.as_deref(), object, false)?)
    }

    /// Replaces an object, exactly like a PUT: a `metadata.resourceVersion` that is not
    /// the current one is a 409 Conflict; none replaces unconditionally.
    pub fn replace<K>(&self, object: &K) -> Result<K, SimError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let (res, _) = self.resource::<K>()?;
        let replaced = self.replace_at(res, serde_json::to_value(object)?)?;
        Self::typed(&replaced)
    }

    /// Replaces a JSON object of resource `resource` (see [`ApiServer::replace`]).
    pub fn replace_json(&self, resource: &ApiResource, object: Value) -> Result<Value, SimError> {
        let (res, _) = self.resource_of(resource)?;
        Ok((*self.replace_at(res, object)?).clone())
    }

    fn replace_at(&self, res: usize, object: Value) -> Result<Arc<Value>, SimError> {
        let ns = Self::namespace_of(&object).map(str::to_string);
        let name = Self::name_of(&object).to_string();
        Ok(self
            .app
            .store
            .replace(res, ns.as_deref(), &name, object, false)?)
    }

    /// Creates the object, or replaces it unconditionally (ignoring its
    /// `metadata.resourceVersion`) if it exists.
    pub fn upsert<K>(&self, object: &K) -> Result<K, SimError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let (res, _) = self.resource::<K>()?;
        let result = self.upsert_at(res, serde_json::to_value(object)?)?;
        Self::typed(&result)
    }

    /// [`ApiServer::upsert`] for a JSON object of resource `resource`.
    pub fn upsert_json(&self, resource: &ApiResource, object: Value) -> Result<Value, SimError> {
        let (res, _) = self.resource_of(resource)?;
        Ok((*self.upsert_at(res, object)?).clone())
    }

    fn upsert_at(&self, res: usize, mut object: Value) -> Result<Arc<Value>, SimError> {
        if let Some(Value::Object(md)) = object.get_mut("metadata") {
            md.remove("resourceVersion");
        }
        match self.replace_at(res, object.clone()) {
            Err(SimError::Api { code: 404, .. }) => self.create_at(res, object),
            other => other,
        }
    }

    /// Deletes an object, exactly like a DELETE; returns its last state.
    pub fn delete<K>(&self, namespace: Option<&str>, name: &str) -> Result<K, SimError>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let (res, _) = self.resource::<K>()?;
        let deleted = self.app.store.delete(
            res,
            namespace,
            name,
            &store::Preconditions::default(),
            false,
        )?;
        Self::typed(&deleted)
    }

    /// Deletes an object of resource `resource` (see [`ApiServer::delete`]).
    pub fn delete_json(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, SimError> {
        let (res, _) = self.resource_of(resource)?;
        let deleted = self.app.store.delete(
            res,
            namespace,
            name,
            &store::Preconditions::default(),
            false,
        )?;
        Ok((*deleted).clone())
    }

    /// The object, if it exists.
    pub fn get<K>(&self, namespace: Option<&str>, name: &str) -> Result<Option<K>, SimError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let (res, info) = self.resource::<K>()?;
        let key = (
            namespace
                .filter(|_| info.namespaced)
                .unwrap_or("")
                .to_string(),
            name.to_string(),
        );
        self.app
            .store
            .get(res, &key)
            .map(|v| Self::typed(&v))
            .transpose()
    }

    /// The JSON object of resource `resource`, if it exists.
    pub fn get_json(
        &self,
        resource: &ApiResource,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, SimError> {
        let (res, info) = self.resource_of(resource)?;
        let key = (
            namespace
                .filter(|_| info.namespaced)
                .unwrap_or("")
                .to_string(),
            name.to_string(),
        );
        Ok(self.app.store.get(res, &key).map(|v| (*v).clone()))
    }

    /// Every object of type `K` (all namespaces), in (namespace, name) order.
    pub fn list<K>(&self) -> Result<Vec<K>, SimError>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let (res, _) = self.resource::<K>()?;
        self.app
            .store
            .all(res)
            .iter()
            .map(|v| Self::typed(v))
            .collect()
    }

    /// Every JSON object of resource `resource`, in (namespace, name) order.
    pub fn list_json(&self, resource: &ApiResource) -> Result<Vec<Value>, SimError> {
        let (res, _) = self.resource_of(resource)?;
        Ok(self
            .app
            .store
            .all(res)
            .iter()
            .map(|v| (**v).clone())
            .collect())
    }

    /// How many objects of resource `resource` exist.
    pub fn count(&self, resource: &ApiResource) -> Result<usize, SimError> {
        let (res, _) = self.resource_of(resource)?;
        Ok(self.app.store.len(res))
    }
}
