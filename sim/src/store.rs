//! The object store and the event log.
//!
//! One mutex guards everything (objects, the global resourceVersion counter, the event
//! log), so every write gets a unique, strictly increasing resourceVersion and lands in
//! the log in that order, like etcd revisions. Objects are `Arc<Value>`: handlers clone
//! the `Arc`s out under the lock and serialise after releasing it.
//!
//! The log keeps the last `capacity` events (each with the object's previous state), which
//! serves three purposes:
//! - watches replay every event after their starting resourceVersion;
//! - a paged list continues *at its first page's resourceVersion* (a consistent snapshot,
//!   like etcd MVCC): the current state is overlaid with the pre-images of every change
//!   made since;
//! - anything older than the oldest retained event is "compacted": watches and
//!   continuations from there answer 410 Expired.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::core::ApiResource;
use serde_json::{Map, Value};
use tokio::sync::watch;

use super::error::{ApiError, Details};
use super::meta;

/// A JSON object.
type JsonMap = Map<String, Value>;

/// (namespace or `""` for cluster-scoped objects, name). The map order is the list order.
pub(crate) type ObjKey = (String, String);

/// A registered resource.
#[derive(Debug)]
pub(crate) struct ResourceInfo {
    pub(crate) ar: ApiResource,
    pub(crate) namespaced: bool,
}

impl ResourceInfo {
    /// `plural` for the core group, `plural.group` otherwise (as in Status messages).
    pub(crate) fn qualified(&self) -> String {
        if self.ar.group.is_empty() {
            self.ar.plural.clone()
        } else {
            format!("{}.{}", self.ar.plural, self.ar.group)
        }
    }

    pub(crate) fn details(&self, name: &str) -> Details {
        Details {
            name: name.to_string(),
            group: self.ar.group.clone(),
            kind: self.ar.plural.clone(),
        }
    }

    pub(crate) fn not_found(&self, name: &str) -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", self.qualified()),
        )
        .with_details(self.details(name))
    }

    fn conflict(&self, name: &str, why: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                self.qualified()
            ),
        )
        .with_details(self.details(name))
    }

    fn invalid(&self, name: &str, field_error: &str) -> ApiError {
        ApiError::invalid(
            format!("{} \"{name}\" is invalid: {field_error}", self.ar.kind),
            Details {
                name: name.to_string(),
                group: self.ar.group.clone(),
                kind: self.ar.kind.clone(),
            },
        )
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One entry of the event log.
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) res: usize,
    pub(crate) ty: EventType,
    pub(crate) key: ObjKey,
    /// The new state (for `Deleted`: the last state, stamped with the deletion's RV).
    pub(crate) object: Arc<Value>,
    /// The state before this event (`None` for `Added`).
    pub(crate) prev: Option<Arc<Value>>,
}

struct ResourceState {
    info: Arc<ResourceInfo>,
    objects: BTreeMap<ObjKey, Arc<Value>>,
}

struct Inner {
    rv: u64,
    /// Events with `rv <= compacted_rv` are no longer in the log.
    compacted_rv: u64,
    resources: Vec<ResourceState>,
    index: HashMap<(String, String, String), usize>,
    log: VecDeque<Arc<Event>>,
    counter: u64,
}

/// Where a list reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListAt {
    /// The current state.
    Current,
    /// The current state, provided it is at least this resourceVersion.
    NotOlderThan(u64),
    /// The state at exactly this resourceVersion.
    Exact(u64),
}

/// A page of a list.
pub(crate) struct ListPage {
    pub(crate) items: Vec<Arc<Value>>,
    /// The resourceVersion the page was read at.
    pub(crate) rv: u64,
    /// More objects follow this key.
    pub(crate) next: Option<ObjKey>,
}

/// The result of reading the log for a watch.
pub(crate) enum Fetch {
    /// The requested resourceVersion is older than the oldest retained event.
    Gone { requested: u64, oldest: u64 },
    /// Events of the resource after the requested resourceVersion, in order, and the
    /// global resourceVersion up to which the log has been read.
    Events {
        events: Vec<Arc<Event>>,
        scanned_to: u64,
    },
}

/// Preconditions of a delete (`DeleteOptions.preconditions`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Preconditions {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
}

/// The object store.
pub(crate) struct Store {
    inner: Mutex<Inner>,
    capacity: usize,
    seed: u64,
    rv_tx: watch::Sender<u64>,
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?
        .get(field)?
        .as_str()
        .filter(|s| !s.is_empty())
}

/// Validates a name the way every resource's registry does at least (path segment names).
fn path_segment_error(name: &str) -> Option<String> {
    if name == "." || name == ".." {
        return Some(format!(
            "metadata.name: Invalid value: \"{name}\": may not be '{name}'"
        ));
    }
    for bad in ['/', '%'] {
        if name.contains(bad) {
            return Some(format!(
                "metadata.name: Invalid value: \"{name}\": may not contain '{bad}'"
            ));
        }
    }
    if name.chars().any(char::is_control) {
        return Some(format!(
            "metadata.name: Invalid value: {name:?}: may not contain control characters"
        ));
    }
    if name.len() > 253 {
        return Some(format!(
            "metadata.name: Invalid value: \"{name}\": must be no more than 253 characters"
        ));
    }
    None
}

impl Store {
    pub(crate) fn new(capacity: usize) -> Self {
        let (rv_tx, _) = watch::channel(1);
        Self {
            inner: Mutex::new(Inner {
                // etcd's first revision; "0" means "any" to clients, so never hand it out.
                rv: 1,
                compacted_rv: 0,
                resources: Vec::new(),
                index: HashMap::new(),
                log: VecDeque::new(),
                counter: 0,
            }),
            capacity,
            seed: meta::seed(),
            rv_tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, rv: u64) {
        self.rv_tx.send_if_modified(|current| {
            if rv > *current {
                *current = rv;
                true
            } else {
                false
            }
        });
    }

    /// Registers (or re-registers, keeping its objects) a resource.
    pub(crate) fn register(&self, ar: ApiResource, namespaced: bool) -> usize {
        let mut inner = self.lock();
        let key = (ar.group.clone(), ar.version.clone(), ar.plural.clone());
        let info = Arc::new(ResourceInfo { ar, namespaced });
        if let Some(&idx) = inner.index.get(&key) {
            inner.resources[idx].info = info;
            return idx;
        }
        let idx = inner.resources.len();
        inner.resources.push(ResourceState {
            info,
            objects: BTreeMap::new(),
        });
        inner.index.insert(key, idx);
        idx
    }

    pub(crate) fn resolve(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<(usize, Arc<ResourceInfo>)> {
        let inner = self.lock();
        let key = (group.to_string(), version.to_string(), plural.to_string());
        inner
            .index
            .get(&key)
            .map(|&idx| (idx, inner.resources[idx].info.clone()))
    }

    /// The registered resource `res` (404 if there is none).
    fn info(&self, res: usize) -> Result<Arc<ResourceInfo>, ApiError> {
        self.lock()
            .resources
            .get(res)
            .map(|r| r.info.clone())
            .ok_or_else(ApiError::path_not_found)
    }

    pub(crate) fn resources(&self) -> Vec<Arc<ResourceInfo>> {
        self.lock()
            .resources
            .iter()
            .map(|r| r.info.clone())
            .collect()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.rv_tx.subscribe()
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Drops the whole event log: every resourceVersion before now becomes too old.
    pub(crate) fn compact(&self) {
        let mut inner = self.lock();
        inner.compacted_rv = inner.rv;
        inner.log.clear();
    }

    fn push_event(&self, inner: &mut Inner, event: Event) {
        inner.log.push_back(Arc::new(event));
        while inner.log.len() > self.capacity {
            match inner.log.pop_front() {
                Some(old) => inner.compacted_rv = old.rv,
                None => break,
            }
        }
        if self.capacity == 0 {
            inner.compacted_rv = inner.rv;
        }
    }

    pub(crate) fn get(&self, res: usize, key: &ObjKey) -> Option<Arc<Value>> {
        self.lock().resources.get(res)?.objects.get(key).cloned()
    }

    /// How many objects a resource has.
    pub(crate) fn len(&self, res: usize) -> usize {
        self.lock()
            .resources
            .get(res)
            .map_or(0, |r| r.objects.len())
    }

    /// Every object of a resource, in (namespace, name) order.
    pub(crate) fn all(&self, res: usize) -> Vec<Arc<Value>> {
        self.lock()
            .resources
            .get(res)
            .map(|r| r.objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Checks the body of a create/replace and normalises its type and namespace fields.
    fn prepare(
        info: &ResourceInfo,
        namespace: Option<&str>,
        body: Value,
    ) -> Result<(JsonMap, JsonMap), ApiError> {
        let Value::Object(mut obj) = body else {
            return Err(ApiError::bad_request(
                "the body of the request was in an unknown format - accepted media types include: application/json",
            ));
        };
        if let Some(v) = obj.get("apiVersion").and_then(Value::as_str)
            && !v.is_empty()
            && v != info.ar.api_version
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                info.ar.api_version
            )));
        }
        if let Some(k) = obj.get("kind").and_then(Value::as_str)
            && !k.is_empty()
            && k != info.ar.kind
        {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                info.ar.kind
            )));
        }
        obj.insert(
            "apiVersion".into(),
            Value::String(info.ar.api_version.clone()),
        );
        obj.insert("kind".into(), Value::String(info.ar.kind.clone()));
        let mut metadata = match obj.remove("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err(ApiError::bad_request("metadata must be an object")),
        };
        if info.namespaced {
            let Some(namespace) = namespace else {
                return Err(ApiError::bad_request(format!(
                    "a namespace is required for the namespaced resource {}",
                    info.qualified()
                )));
            };
            match metadata.get("namespace").and_then(Value::as_str) {
                Some(ns) if !ns.is_empty() && ns != namespace => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
            metadata.insert("namespace".into(), Value::String(namespace.to_string()));
        } else {
            metadata.remove("namespace");
        }
        Ok((obj, metadata))
    }

    /// POST: creates an object. `namespace` is the request's (the URL's) namespace.
    pub(crate) fn create(
        &self,
        res: usize,
        namespace: Option<&str>,
        body: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let info = self.info(res)?;
        let (mut obj, mut md) = Self::prepare(&info, namespace, body)?;
        let name = md
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let generate_name = md
            .get("generateName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if name.is_empty() && generate_name.is_empty() {
            return Err(info.invalid(
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        if !name.is_empty()
            && let Some(e) = path_segment_error(&name)
        {
            return Err(info.invalid(&name, &e));
        }
        if md
            .get("resourceVersion")
            .and_then(Value::as_str)
            .is_some_and(|rv| !rv.is_empty())
        {
            return Err(ApiError::new(
                500,
                "InternalError",
                "Internal error occurred: resourceVersion should not be set on objects to be created",
            ));
        }
        for system_field in ["deletionTimestamp", "deletionGracePeriodSeconds", "uid"] {
            md.remove(system_field);
        }
        let ns = namespace
            .filter(|_| info.namespaced)
            .unwrap_or("")
            .to_string();

        let mut inner = self.lock();
        inner.counter += 1;
        let counter = inner.counter;
        let name = if name.is_empty() {
            let mut attempt = counter;
            loop {
                let candidate = format!("{generate_name}{}", meta::name_suffix(self.seed, attempt));
                if !inner.resources[res]
                    .objects
                    .contains_key(&(ns.clone(), candidate.clone()))
                {
                    break candidate;
                }
                attempt = attempt.wrapping_add(0x1_0000_0000);
            }
        } else {
            name
        };
        let key = (ns, name.clone());
        if inner.resources[res].objects.contains_key(&key) {
            return Err(ApiError::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", info.qualified()),
            )
            .with_details(info.details(&name)));
        }
        md.insert("name".into(), Value::String(name));
        md.insert("uid".into(), Value::String(meta::uid(self.seed, counter)));
        md.insert(
            "creationTimestamp".into(),
            Value::String(meta::now_rfc3339()),
        );
        if dry_run {
            obj.insert("metadata".into(), Value::Object(md));
            return Ok(Arc::new(Value::Object(obj)));
        }
        let rv = inner.rv + 1;
        inner.rv = rv;
        md.insert("resourceVersion".into(), Value::String(rv.to_string()));
        obj.insert("metadata".into(), Value::Object(md));
        let object = Arc::new(Value::Object(obj));
        inner.resources[res]
            .objects
            .insert(key.clone(), object.clone());
        self.push_event(
            &mut inner,
            Event {
                rv,
                res,
                ty: EventType::Added,
                key,
                object: object.clone(),
                prev: None,
            },
        );
        drop(inner);
        self.notify(rv);
        Ok(object)
    }

    /// PUT: replaces an existing object.
    pub(crate) fn replace(
        &self,
        res: usize,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let info = self.info(res)?;
        let (mut obj, mut md) = Self::prepare(&info, namespace, body)?;
        let body_name = md.get("name").and_then(Value::as_str).unwrap_or("");
        if body_name != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let body_rv = md
            .get("resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let body_uid = md
            .get("uid")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let key = (
            namespace
                .filter(|_| info.namespaced)
                .unwrap_or("")
                .to_string(),
            name.to_string(),
        );

        let mut inner = self.lock();
        let Some(existing) = inner.resources[res].objects.get(&key).cloned() else {
            return Err(info.not_found(name));
        };
        let existing_uid = meta_str(&existing, "uid").unwrap_or("").to_string();
        let existing_rv = meta_str(&existing, "resourceVersion")
            .unwrap_or("")
            .to_string();
        if let Some(uid) = &body_uid
            && *uid != existing_uid
        {
            return Err(info.conflict(
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {existing_uid}"
                ),
            ));
        }
        if let Some(rv) = &body_rv
            && *rv != existing_rv
        {
            return Err(info.conflict(
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        md.insert("uid".into(), Value::String(existing_uid));
        match existing.pointer("/metadata/creationTimestamp") {
            Some(ts) => md.insert("creationTimestamp".into(), ts.clone()),
            None => md.remove("creationTimestamp"),
        };
        md.remove("generateName");
        if let Some(g) = existing.pointer("/metadata/generateName") {
            md.insert("generateName".into(), g.clone());
        }
        md.insert("resourceVersion".into(), Value::String(existing_rv));
        obj.insert("metadata".into(), Value::Object(md));
        let unchanged = match &*existing {
            Value::Object(e) => *e == obj,
            _ => false,
        };
        if unchanged || dry_run {
            // A no-op update does not write (no new resourceVersion, no event), like etcd3.
            return Ok(if unchanged {
                existing
            } else {
                Arc::new(Value::Object(obj))
            });
        }
        let rv = inner.rv + 1;
        inner.rv = rv;
        if let Some(Value::Object(md)) = obj.get_mut("metadata") {
            md.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let object = Arc::new(Value::Object(obj));
        inner.resources[res]
            .objects
            .insert(key.clone(), object.clone());
        self.push_event(
            &mut inner,
            Event {
                rv,
                res,
                ty: EventType::Modified,
                key,
                object: object.clone(),
                prev: Some(existing),
            },
        );
        drop(inner);
        self.notify(rv);
        Ok(object)
    }

    /// DELETE: removes an object; returns its last state stamped with the deletion's RV.
    pub(crate) fn delete(
        &self,
        res: usize,
        namespace: Option<&str>,
        name: &str,
        preconditions: &Preconditions,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let mut inner = self.lock();
        let Some(state) = inner.resources.get(res) else {
            return Err(ApiError::path_not_found());
        };
        let info = state.info.clone();
        let key = (
            namespace
                .filter(|_| info.namespaced)
                .unwrap_or("")
                .to_string(),
            name.to_string(),
        );
        let Some(existing) = state.objects.get(&key).cloned() else {
            return Err(info.not_found(name));
        };
        let existing_uid = meta_str(&existing, "uid").unwrap_or("");
        let existing_rv = meta_str(&existing, "resourceVersion").unwrap_or("");
        if let Some(uid) = &preconditions.uid
            && uid != existing_uid
        {
            return Err(info.conflict(
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {existing_uid}"
                ),
            ));
        }
        if let Some(rv) = &preconditions.resource_version
            && rv != existing_rv
        {
            return Err(info.conflict(
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {existing_rv}"
                ),
            ));
        }
        if dry_run {
            return Ok(existing);
        }
        let rv = inner.rv + 1;
        inner.rv = rv;
        inner.resources[res].objects.remove(&key);
        let mut last = (*existing).clone();
        if let Some(Value::Object(md)) = last.get_mut("metadata") {
            md.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
        let object = Arc::new(last);
        self.push_event(
            &mut inner,
            Event {
                rv,
                res,
                ty: EventType::Deleted,
                key,
                object: object.clone(),
                prev: Some(existing),
            },
        );
        drop(inner);
        self.notify(rv);
        Ok(object)
    }

    /// Reads one page of a list. `filter` sees each object in scope (key, object).
    pub(crate) fn list(
        &self,
        res: usize,
        namespace: Option<&str>,
        at: ListAt,
        start_after: Option<&ObjKey>,
        limit: Option<usize>,
        filter: &dyn Fn(&ObjKey, &Value) -> bool,
    ) -> Result<ListPage, ApiError> {
        let inner = self.lock();
        let Some(state) = inner.resources.get(res) else {
            return Err(ApiError::path_not_found());
        };
        let current = inner.rv;
        let at_rv = match at {
            ListAt::Current => current,
            ListAt::NotOlderThan(rv) if rv > current => {
                return Err(ApiError::too_large_resource_version(rv, current));
            }
            ListAt::NotOlderThan(_) => current,
            ListAt::Exact(rv) if rv > current => {
                return Err(ApiError::too_large_resource_version(rv, current));
            }
            ListAt::Exact(rv) if rv < inner.compacted_rv => {
                return Err(ApiError::expired(format!(
                    "The resourceVersion for the provided list is too old: {rv} (oldest available: {})",
                    inner.compacted_rv
                )));
            }
            ListAt::Exact(rv) => rv,
        };
        let lower = match (start_after, namespace) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let in_scope = |k: &ObjKey| namespace.is_none_or(|ns| k.0 == ns);
        // The pre-images of everything changed after `at_rv`: the state at `at_rv`.
        let mut overlay: BTreeMap<&ObjKey, Option<&Arc<Value>>> = BTreeMap::new();
        if at_rv < current {
            let start = inner.log.partition_point(|e| e.rv <= at_rv);
            for e in inner.log.range(start..) {
                if e.res == res && in_scope(&e.key) {
                    overlay.entry(&e.key).or_insert(e.prev.as_ref());
                }
            }
        }
        let mut current_iter = state
            .objects
            .range((lower.clone(), Bound::Unbounded))
            .peekable();
        let lower_ref = match &lower {
            Bound::Excluded(k) => Bound::Excluded(k),
            Bound::Included(k) => Bound::Included(k),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut overlay_iter = overlay
            .range::<ObjKey, _>((lower_ref, Bound::Unbounded))
            .peekable();
        let mut items = Vec::new();
        let mut next = None;
        let mut last_returned: Option<&ObjKey> = None;
        loop {
            let (key, value): (&ObjKey, Option<&Arc<Value>>) =
                match (current_iter.peek(), overlay_iter.peek()) {
                    (None, None) => break,
                    (Some(_), None) => match current_iter.next() {
                        Some((k, v)) => (k, Some(v)),
                        None => break,
                    },
                    (None, Some(_)) => match overlay_iter.next() {
                        Some((k, v)) => (*k, *v),
                        None => break,
                    },
                    (Some((ck, _)), Some((ok, _))) => match (*ck).cmp(**ok) {
                        Ordering::Less => match current_iter.next() {
                            Some((k, v)) => (k, Some(v)),
                            None => break,
                        },
                        Ordering::Greater => match overlay_iter.next() {
                            Some((k, v)) => (*k, *v),
                            None => break,
                        },
                        Ordering::Equal => {
                            current_iter.next();
                            match overlay_iter.next() {
                                Some((k, v)) => (*k, *v),
                                None => break,
                            }
                        }
                    },
                };
            if !in_scope(key) {
                break;
            }
            let Some(value) = value else { continue };
            if limit.is_some_and(|l| items.len() >= l) {
                next = last_returned.cloned();
                break;
            }
            if filter(key, value) {
                items.push(value.clone());
                last_returned = Some(key);
            }
        }
        Ok(ListPage {
            items,
            rv: at_rv,
            next,
        })
    }

    /// Up to `max` events of resource `res` after resourceVersion `after`.
    pub(crate) fn events_after(&self, res: usize, after: u64, max: usize) -> Fetch {
        let inner = self.lock();
        if after < inner.compacted_rv {
            return Fetch::Gone {
                requested: after,
                oldest: inner.compacted_rv,
            };
        }
        let start = inner.log.partition_point(|e| e.rv <= after);
        let mut events = Vec::new();
        let mut scanned_to = after.max(inner.rv);
        for e in inner.log.range(start..) {
            if e.res == res {
                events.push(e.clone());
                if events.len() >= max {
                    scanned_to = e.rv;
                    break;
                }
            }
        }
        Fetch::Events { events, scanned_to }
    }
}
