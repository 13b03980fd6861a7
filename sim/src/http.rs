//! The HTTP front end: routing, query parameters, content negotiation, verbs.
//!
//! One fallback handler does its own routing so that every failure is a real-looking
//! `metav1.Status`: 404 for unknown paths and resources, 405 for methods a resource path
//! does not serve, 400/422/406 for bad parameters, bodies and `Accept` headers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::watch;

use super::counters::LiveCounters;
use super::error::{ApiError, Details};
use super::fault::FaultTable;
use super::render::{self, ObjectView, Shape};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{ListAt, ObjKey, Preconditions, ResourceInfo, Store};
use super::token::ContinueToken;
use super::verb::Verb;
use super::watch::{self as watchstream, Control, WatchSpec, WatchStart};

/// The request body limit of a real API server (3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;
/// The watch timeout when a client gives none (the API server's `--min-request-timeout`).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

/// Everything the handlers share.
pub(crate) struct App {
    pub(crate) store: Arc<Store>,
    pub(crate) faults: FaultTable,
    pub(crate) counters: Arc<LiveCounters>,
    pub(crate) control: watch::Sender<Control>,
    pub(crate) bookmark_interval: Duration,
    pub(crate) addr: SocketAddr,
}

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

async fn handle(State(app): State<Arc<App>>, req: Request) -> Response {
    app.counters.arrived();
    let response = dispatch(&app, req).await.unwrap_or_else(error_response);
    app.counters.response(response.status().as_u16());
    response
}

fn json_response(code: StatusCode, body: Vec<u8>) -> Response {
    (
        code,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn error_response(e: ApiError) -> Response {
    let body = serde_json::to_vec(&e.status_json()).unwrap_or_default();
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(code, body);
    if let Some(secs) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

fn value_response(code: StatusCode, value: &impl serde::Serialize) -> Result<Response, ApiError> {
    let body = serde_json::to_vec(value).map_err(internal)?;
    Ok(json_response(code, body))
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        500,
        "InternalError",
        format!("Internal error occurred: {e}"),
    )
}

/// Decodes `%XX` escapes in a path segment.
fn percent_decode(s: &str) -> Result<String, ApiError> {
    if !s.contains('%') {
        return Ok(s.to_string());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| ApiError::bad_request(format!("invalid escape in path {s:?}")))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request(format!("invalid path {s:?}")))
}

/// What a path addresses.
enum Target {
    Version,
    CoreVersions,
    Groups,
    GroupVersion {
        group: String,
        version: String,
    },
    Resource {
        group: String,
        version: String,
        plural: String,
        namespace: Option<String>,
        name: Option<String>,
    },
}

fn parse_path(path: &str) -> Result<Target, ApiError> {
    let segments = path
        .trim_matches('/')
        .split('/')
        .map(percent_decode)
        .collect::<Result<Vec<_>, _>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return Ok(Target::Version),
        ["api"] => return Ok(Target::CoreVersions),
        ["apis"] => return Ok(Target::Groups),
        ["api", version] => {
            return Ok(Target::GroupVersion {
                group: String::new(),
                version: version.to_string(),
            });
        }
        ["apis", group, version] => {
            return Ok(Target::GroupVersion {
                group: group.to_string(),
                version: version.to_string(),
            });
        }
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let (plural, namespace, name) = match rest {
        [plural] => (*plural, None, None),
        ["namespaces", ns, plural] => (*plural, Some(*ns), None),
        ["namespaces", ns, plural, name] => (*plural, Some(*ns), Some(*name)),
        [plural, name] => (*plural, None, Some(*name)),
        _ => return Err(ApiError::path_not_found()),
    };
    if plural.is_empty() || namespace == Some("") || name == Some("") {
        return Err(ApiError::path_not_found());
    }
    Ok(Target::Resource {
        group: group.to_string(),
        version: version.to_string(),
        plural: plural.to_string(),
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
    })
}

/// The decoded query string.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(req: &Request) -> Result<Self, ApiError> {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(req.uri())
            .map(|q| Query(q.0))
            .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A Go `strconv.ParseBool` parameter.
    fn bool(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "false" | "FALSE" | "False" | "") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value {other:?} for boolean parameter {key}"
            ))),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value {v:?} for integer parameter {key}"))
            }),
        }
    }

    fn dry_run(&self) -> Result<bool, ApiError> {
        let mut dry = false;
        for (k, v) in &self.0 {
            if k == "dryRun" {
                if v == "All" {
                    dry = true;
                } else {
                    return Err(ApiError::bad_request(format!(
                        "Invalid dryRun value: {v:?}, supported values: \"All\""
                    )));
                }
            }
        }
        Ok(dry)
    }

    fn labels(&self) -> Result<LabelSelector, ApiError> {
        LabelSelector::parse(self.get("labelSelector").unwrap_or("")).map_err(ApiError::bad_request)
    }

    fn fields(&self) -> Result<FieldSelector, ApiError> {
        FieldSelector::parse(self.get("fieldSelector").unwrap_or("")).map_err(ApiError::bad_request)
    }

    fn resource_version(&self) -> Result<Option<u64>, ApiError> {
        match self.get("resourceVersion") {
            None | Some("") | Some("0") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v:?}"))),
        }
    }
}

/// Negotiates the representation from the `Accept` header (first acceptable entry wins).
fn negotiate(headers: &HeaderMap) -> Result<Shape, ApiError> {
    let Some(accept) = headers.get(header::ACCEPT) else {
        return Ok(Shape::Full);
    };
    let accept = accept
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid Accept header"))?;
    if accept.trim().is_empty() {
        return Ok(Shape::Full);
    }
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let mime = parts.next().unwrap_or("").to_ascii_lowercase();
        if !matches!(mime.as_str(), "application/json" | "application/*" | "*/*") {
            continue;
        }
        let (mut as_, mut g, mut v) = (None, None, None);
        for param in parts {
            match param.split_once('=') {
                Some(("as", x)) => as_ = Some(x),
                Some(("g", x)) => g = Some(x),
                Some(("v", x)) => v = Some(x),
                _ => {}
            }
        }
        let meta_group = g == Some("meta.k8s.io") && matches!(v, Some("v1" | "v1beta1"));
        match as_ {
            None => return Ok(Shape::Full),
            Some("PartialObjectMetadata") if meta_group => return Ok(Shape::Meta),
            Some("PartialObjectMetadataList") if meta_group => return Ok(Shape::MetaList),
            // Table, aggregated discovery and anything else: not served here.
            Some(_) => continue,
        }
    }
    Err(ApiError::new(
        406,
        "NotAcceptable",
        format!("only the following media types are accepted: application/json (got {accept:?})"),
    ))
}

fn not_acceptable(what: &str) -> ApiError {
    ApiError::new(
        406,
        "NotAcceptable",
        format!(
            "the server was unable to respond with a content type that the client supports ({what})"
        ),
    )
}

async fn dispatch(app: &Arc<App>, req: Request) -> Result<Response, ApiError> {
    let target = parse_path(req.uri().path())?;
    let (group, version, plural, namespace, name) = match target {
        Target::Version => return discovery_version(&req),
        Target::CoreVersions => return core_versions(app, &req),
        Target::Groups => return groups(app, &req),
        Target::GroupVersion { group, version } => {
            return group_version(app, &req, &group, &version);
        }
        Target::Resource {
            group,
            version,
            plural,
            namespace,
            name,
        } => (group, version, plural, namespace, name),
    };
    let Some((res, info)) = app.store.resolve(&group, &version, &plural) else {
        return Err(ApiError::path_not_found());
    };
    // A namespaced resource's object needs a namespace; a cluster-scoped one has none.
    if (info.namespaced && namespace.is_none() && name.is_some())
        || (!info.namespaced && namespace.is_some())
    {
        return Err(ApiError::path_not_found());
    }
    let query = Query::parse(&req)?;
    let watch = query.bool("watch")?.unwrap_or(false);
    let method = req.method().clone();
    let verb = match (&method, name.is_some()) {
        (&Method::GET, _) if watch => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::GET, true) => Verb::Get,
        (&Method::POST, false) => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        (&Method::DELETE, false) => Verb::DeleteCollection,
        _ => return Err(ApiError::method_not_allowed(method.as_str())),
    };
    app.counters.request(verb, &plural);
    let in_flight = app.counters.in_flight(verb == Verb::Watch);
    let continued = verb == Verb::List && query.get("continue").is_some_and(|c| !c.is_empty());
    let decision = app
        .faults
        .decide(verb, &plural, verb == Verb::Watch || continued);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    if let Some(fail) = decision.fail {
        return Err(fail);
    }
    if info.namespaced
        && namespace.is_none()
        && matches!(verb, Verb::Create | Verb::DeleteCollection)
    {
        return Err(ApiError::method_not_allowed(method.as_str()));
    }
    let shape = negotiate(req.headers())?;
    let (namespace, name) = match decision.substitute {
        Some((ns, other)) => (ns, Some(other)),
        None => (namespace, name),
    };
    let ctx = Ctx {
        app,
        res,
        info: &info,
        namespace: namespace.as_deref(),
        query: &query,
        shape,
    };
    let response = match verb {
        Verb::Get => ctx.get(name.as_deref().unwrap_or_default()),
        Verb::List => ctx.list(decision.gone),
        Verb::Watch => {
            return ctx.watch(
                name,
                decision.gone,
                decision.drop_watch_after,
                decision.delay_watch_events,
                in_flight,
            );
        }
        Verb::Create => ctx.create(read_body(req).await?),
        Verb::Update => ctx.update(name.as_deref().unwrap_or_default(), read_body(req).await?),
        Verb::Delete => ctx.delete(name.as_deref().unwrap_or_default(), read_body(req).await?),
        Verb::DeleteCollection => ctx.delete_collection(),
        Verb::Patch => Err(ApiError::method_not_allowed(
            "PATCH (patch is not implemented by the simulated API server; use PUT)",
        )),
    };
    drop(in_flight);
    response
}

async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), MAX_BODY)
        .await
        .map_err(|e| {
            ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body could not be read (limit {MAX_BODY} bytes): {e}"),
            )
        })
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

struct Ctx<'a> {
    app: &'a Arc<App>,
    res: usize,
    info: &'a Arc<ResourceInfo>,
    namespace: Option<&'a str>,
    query: &'a Query,
    shape: Shape,
}

impl Ctx<'_> {
    fn key(&self, name: &str) -> ObjKey {
        (self.namespace.unwrap_or("").to_string(), name.to_string())
    }

    fn object_response(&self, code: StatusCode, object: &Value) -> Result<Response, ApiError> {
        if self.shape == Shape::MetaList {
            return Err(not_acceptable(
                "PartialObjectMetadataList requested for an object",
            ));
        }
        value_response(
            code,
            &ObjectView {
                object,
                meta_only: self.shape == Shape::Meta,
            },
        )
    }

    fn get(&self, name: &str) -> Result<Response, ApiError> {
        if let Some(rv) = self.query.resource_version()? {
            let current = self.app.store.current_rv();
            if rv > current {
                return Err(ApiError::too_large_resource_version(rv, current));
            }
        }
        let object = self
            .app
            .store
            .get(self.res, &self.key(name))
            .ok_or_else(|| self.info.not_found(name))?;
        self.object_response(StatusCode::OK, &object)
    }

    fn list(&self, forced_gone: bool) -> Result<Response, ApiError> {
        if self.shape == Shape::Meta {
            return Err(not_acceptable(
                "PartialObjectMetadata requested for a list; use PartialObjectMetadataList",
            ));
        }
        let labels = self.query.labels()?;
        let fields = self.query.fields()?;
        let limit = self
            .query
            .int("limit")?
            .filter(|l| *l > 0)
            .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
        let rv_param = self.query.get("resourceVersion").unwrap_or("");
        let rv_match = self.query.get("resourceVersionMatch").unwrap_or("");
        let continue_param = self.query.get("continue").unwrap_or("");
        let list_details = Details {
            kind: "ListOptions".into(),
            group: "meta.k8s.io".into(),
            name: String::new(),
        };
        let (at, start_after) = if !continue_param.is_empty() {
            if !rv_param.is_empty() {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let token = ContinueToken::decode(continue_param)
                .filter(|t| {
                    t.resource == self.info.qualified()
                        && t.namespace.as_deref() == self.namespace
                })
                .ok_or_else(|| {
                    ApiError::bad_request("continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)")
                })?;
            if forced_gone {
                return Err(continue_expired());
            }
            (ListAt::Exact(token.rv), Some(token.after))
        } else {
            let rv = self.query.resource_version()?;
            let at = match (rv_match, rv) {
                ("", None) => ListAt::Current,
                ("", Some(rv)) if limit.is_some() => ListAt::Exact(rv),
                ("", Some(rv)) => ListAt::NotOlderThan(rv),
                ("NotOlderThan", None) if rv_param == "0" => ListAt::Current,
                ("NotOlderThan", Some(rv)) => ListAt::NotOlderThan(rv),
                ("Exact", Some(rv)) => ListAt::Exact(rv),
                ("Exact", None) if rv_param == "0" => {
                    return Err(ApiError::invalid(
                        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                        list_details,
                    ));
                }
                ("NotOlderThan" | "Exact", None) => {
                    return Err(ApiError::invalid(
                        "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
                        list_details,
                    ));
                }
                (other, _) => {
                    return Err(ApiError::invalid(
                        format!(
                            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"{other}\": supported values: \"Exact\", \"NotOlderThan\""
                        ),
                        list_details,
                    ));
                }
            };
            (at, None)
        };
        let filter = |k: &ObjKey, v: &Value| fields.matches(&k.0, &k.1) && labels.matches(v);
        let page = self
            .app
            .store
            .list(
                self.res,
                self.namespace,
                at,
                start_after.as_ref(),
                limit,
                &filter,
            )
            .map_err(|e| {
                if e.code == 410 && start_after.is_some() {
                    continue_expired()
                } else {
                    e
                }
            })?;
        let continue_ = page.next.map(|after| {
            ContinueToken {
                rv: page.rv,
                resource: self.info.qualified(),
                namespace: self.namespace.map(str::to_string),
                after,
            }
            .encode()
        });
        // Serialise after the store lock is released: the page holds `Arc`s.
        let body = render::list_body(
            self.info,
            &page.items,
            page.rv,
            continue_,
            self.shape == Shape::MetaList,
        )
        .map_err(internal)?;
        Ok(json_response(StatusCode::OK, body))
    }

    fn watch(
        &self,
        name: Option<String>,
        forced_gone: bool,
        drop_after: Option<u64>,
        event_delay: Option<Duration>,
        in_flight: super::counters::InFlight,
    ) -> Result<Response, ApiError> {
        if self.shape == Shape::MetaList {
            return Err(not_acceptable(
                "PartialObjectMetadataList requested for a watch; use PartialObjectMetadata",
            ));
        }
        let labels = self.query.labels()?;
        let fields = self.query.fields()?;
        let bookmarks = self.query.bool("allowWatchBookmarks")?.unwrap_or(false);
        let send_initial = self.query.bool("sendInitialEvents")?;
        let rv_match = self.query.get("resourceVersionMatch").unwrap_or("");
        let rv = self.query.resource_version()?;
        let details = Details {
            kind: "ListOptions".into(),
            group: "meta.k8s.io".into(),
            name: String::new(),
        };
        let invalid = |why: &str| {
            ApiError::invalid(
                format!("ListOptions.meta.k8s.io \"\" is invalid: {why}"),
                details.clone(),
            )
        };
        match (send_initial, rv_match) {
            (None, "") => {}
            (None, _) => {
                return Err(invalid(
                    "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            (Some(_), "NotOlderThan") => {}
            (Some(_), _) => {
                return Err(invalid(
                    "resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
                ));
            }
        }
        if send_initial.is_some() && !bookmarks {
            return Err(invalid(
                "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
        let start = match (send_initial, rv) {
            (Some(true), _) => WatchStart::Initial { end_bookmark: true },
            (Some(false), None) => WatchStart::Now,
            (None, None) => WatchStart::Initial {
                end_bookmark: false,
            },
            (_, Some(rv)) => WatchStart::From(rv),
        };
        let timeout = match self.query.int("timeoutSeconds")? {
            Some(secs) if secs > 0 => Duration::from_secs(secs.unsigned_abs()),
            _ => DEFAULT_WATCH_TIMEOUT,
        };
        let spec = WatchSpec {
            res: self.res,
            info: self.info.clone(),
            namespace: self.namespace.map(str::to_string),
            name,
            labels,
            fields,
            meta_only: self.shape == Shape::Meta,
            bookmarks,
            timeout,
            start,
            drop_after,
            event_delay,
            gone: forced_gone,
        };
        let stream = watchstream::stream(
            spec,
            self.app.store.clone(),
            self.app.control.subscribe(),
            self.app.bookmark_interval,
            in_flight,
        );
        Ok((
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            Body::from_stream(stream),
        )
            .into_response())
    }

    fn create(&self, body: Bytes) -> Result<Response, ApiError> {
        let dry_run = self.query.dry_run()?;
        let object =
            self.app
                .store
                .create(self.res, self.namespace, parse_json(&body)?, dry_run)?;
        self.object_response(StatusCode::CREATED, &object)
    }

    fn update(&self, name: &str, body: Bytes) -> Result<Response, ApiError> {
        let dry_run = self.query.dry_run()?;
        let object =
            self.app
                .store
                .replace(self.res, self.namespace, name, parse_json(&body)?, dry_run)?;
        self.object_response(StatusCode::OK, &object)
    }

    fn delete(&self, name: &str, body: Bytes) -> Result<Response, ApiError> {
        let mut dry_run = self.query.dry_run()?;
        let mut preconditions = Preconditions::default();
        if !body.iter().all(u8::is_ascii_whitespace) {
            let options = parse_json(&body)?;
            if !options.is_object() {
                return Err(ApiError::bad_request("DeleteOptions must be a JSON object"));
            }
            let text = |p: &str| {
                options
                    .pointer(p)
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            preconditions.uid = text("/preconditions/uid");
            preconditions.resource_version = text("/preconditions/resourceVersion");
            if let Some(modes) = options.get("dryRun").and_then(Value::as_array) {
                dry_run |= modes.iter().any(|m| m == "All");
            }
        }
        let object =
            self.app
                .store
                .delete(self.res, self.namespace, name, &preconditions, dry_run)?;
        self.object_response(StatusCode::OK, &object)
    }

    fn delete_collection(&self) -> Result<Response, ApiError> {
        if self.shape == Shape::Meta {
            return Err(not_acceptable("PartialObjectMetadata requested for a list"));
        }
        let dry_run = self.query.dry_run()?;
        let labels = self.query.labels()?;
        let fields = self.query.fields()?;
        let filter = |k: &ObjKey, v: &Value| fields.matches(&k.0, &k.1) && labels.matches(v);
        let page = self.app.store.list(
            self.res,
            self.namespace,
            ListAt::Current,
            None,
            None,
            &filter,
        )?;
        let mut deleted = Vec::with_capacity(page.items.len());
        for item in &page.items {
            let name = item
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            match self.app.store.delete(
                self.res,
                self.namespace,
                name,
                &Preconditions::default(),
                dry_run,
            ) {
                Ok(object) => deleted.push(object),
                // Deleted concurrently: nothing left to do.
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let body = render::list_body(
            self.info,
            &deleted,
            self.app.store.current_rv(),
            None,
            self.shape == Shape::MetaList,
        )
        .map_err(internal)?;
        Ok(json_response(StatusCode::OK, body))
    }
}

fn continue_expired() -> ApiError {
    ApiError::expired(
        "The provided continue parameter is too old to display a consistent list result. \
         You can start a new list without the continue parameter.",
    )
}

fn only_get(req: &Request) -> Result<(), ApiError> {
    if req.method() == Method::GET {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(req.method().as_str()))
    }
}

fn discovery_version(req: &Request) -> Result<Response, ApiError> {
    only_get(req)?;
    value_response(
        StatusCode::OK,
        &json!({
            "major": "1",
            "minor": "34",
            "emulationMajor": "1",
            "emulationMinor": "34",
            "minCompatibilityMajor": "1",
            "minCompatibilityMinor": "33",
            "gitVersion": "v1.34.0-k8s-store-sim",
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-08-27T00:00:00Z",
            "goVersion": "go1.24.6",
            "compiler": "gc",
            "platform": "linux/amd64",
        }),
    )
}

fn core_versions(app: &App, req: &Request) -> Result<Response, ApiError> {
    only_get(req)?;
    negotiate_discovery(req)?;
    value_response(
        StatusCode::OK,
        &json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": app.addr.to_string()}
            ],
        }),
    )
}

/// Discovery answers plain JSON only (no aggregated discovery), like a pre-1.26 server.
fn negotiate_discovery(req: &Request) -> Result<(), ApiError> {
    match negotiate(req.headers())? {
        Shape::Full => Ok(()),
        _ => Err(not_acceptable("metadata-only discovery")),
    }
}

fn groups(app: &App, req: &Request) -> Result<Response, ApiError> {
    only_get(req)?;
    negotiate_discovery(req)?;
    let mut by_group: Vec<(String, Vec<String>)> = Vec::new();
    for info in app.store.resources() {
        if info.ar.group.is_empty() {
            continue;
        }
        match by_group.iter_mut().find(|(g, _)| *g == info.ar.group) {
            Some((_, versions)) => {
                if !versions.contains(&info.ar.version) {
                    versions.push(info.ar.version.clone());
                }
            }
            None => by_group.push((info.ar.group.clone(), vec![info.ar.version.clone()])),
        }
    }
    let groups: Vec<Value> = by_group
        .iter()
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
                .collect();
            json!({
                "name": group,
                "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
                "versions": versions,
            })
        })
        .collect();
    value_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

fn group_version(
    app: &App,
    req: &Request,
    group: &str,
    version: &str,
) -> Result<Response, ApiError> {
    only_get(req)?;
    negotiate_discovery(req)?;
    let resources: Vec<Value> = app
        .store
        .resources()
        .iter()
        .filter(|i| i.ar.group == group && i.ar.version == version)
        .map(|i| {
            json!({
                "name": i.ar.plural,
                "singularName": i.ar.kind.to_ascii_lowercase(),
                "namespaced": i.namespaced,
                "kind": i.ar.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "update", "watch"],
            })
        })
        .collect();
    if resources.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    value_response(
        StatusCode::OK,
        &json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }),
    )
}
