//! `CachedStore<ConfigMap>` over a deterministic in-process API server, against a model.
//!
//! The fuzzer interleaves watch events (`add`, `update`, `remove`, `delete`, `replace`,
//! `clear`), changes on the API server that no event reports (yet), injected fetch
//! failures, reads run to completion (`get`, `fetch`, `list`), and reads left pending
//! part-way (started, polled later, or dropped: a cancelled leader). Every fetch
//! yields once before answering, so a pending read holds its fetch in flight while
//! later operations run. A single thread drives everything with a no-op waker.
//!
//! The references a read resolves must be exactly those of a `MemoryStore` model
//! (upsert by identity, moves, prefix gets, (namespace, name, uid) order). Every body
//! returned by a read that ran to completion is checked against the server's log of
//! fetches (each body carries the serial number of the fetch that produced it):
//!
//! - it answers that object, and no watch event for its (namespace, name) came after
//!   the fetch read the server (**no stale body**: not from the cache, not by joining a
//!   detached fetch);
//! - a body served for a reference with a resourceVersion has that resourceVersion,
//!   unless it was fetched during the read, or by a fetch the read joined;
//! - an object is left out only if such a fetch answered 404, and a read fails only
//!   if such a fetch failed, with [`Operation::Fetch`] and the injected cause.
//!
//! The store has two secondary indexes, `ab` (the labels `a` and `b`) and `own` (the
//! owner references' uids, multi-valued: none to three per object, with repeats and
//! the empty uid), and a label index over every key, over `a` only, or none (picked by
//! the input). Watch events carry ConfigMaps with those labels and owner references,
//! which the references keep. `ReferencesBy` (`ab`, `own` or an unknown name, 0 to 3
//! components) must find exactly the model's references, in order, or its error, and
//! `SelectReferences` (a table of selectors with every kind of term, on labels objects
//! carry and one they do not, in all namespaces or one) exactly those whose labels the
//! model's own evaluation of the selector accepts; neither fetches anything.
//!
//! Also, after every operation: the counters agree with the log (`fetches`,
//! `fetch_errors`, `not_found`), the cache stays within `max_entries` (or `max_bytes`)
//! and its byte count matches its entries. `validate()` passes every `VALIDATE_EVERY`
//! (8) operations, at the first point no read is pending once it is due, and at the
//! end, once every pending read has finished. An input runs at most `MAX_OPS` (64)
//! operations; the store's index has two shards.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use arbitrary::Arbitrary;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_store::{
    CachedStore, ErrorKind, Fetch, FetchError, Fetched, Indexer, LabelIndex, Objects, Operation,
    Reference, Selector, StoreError,
};
use libfuzzer_sys::fuzz_target;

#[path = "common/selector.rs"]
mod selector;
use selector::requirement_holds;

const NAMESPACES: &[&str] = &["", "ns", "/", "é"];
const NAMES: &[&str] = &["", "a", "b", "a/b", "日本"];
const UIDS: &[&str] = &["", "u1", "u2"];
const KEYS: &[&str] = &["", "a", "/", "é", "ns"];
const NUM_KEYS: usize = 2;

/// Reads left pending at once, at most.
const MAX_PENDING: usize = 4;
/// Operations run per input, at most; the rest of a longer input is ignored.
const MAX_OPS: usize = 64;
/// `validate()` after every this many operations (at the first moment no read is
/// pending once it is due), and at the end.
const VALIDATE_EVERY: usize = 8;
/// Polls of a read before it is declared hung.
const MAX_ROUNDS: usize = 10_000;
/// Response sizes are in `MIN_BYTES..=MAX_BYTES`.
const MIN_BYTES: u64 = 100;
const MAX_BYTES: u64 = 200;

/// `clear()` invalidates fetches in flight like any watch event (it once did not: this
/// target found it). `false` would model the old behaviour.
const CLEAR_INVALIDATES_FLIGHTS: bool = true;

// ---------------------------------------------------------------------------------
// Input.

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Obj {
    ns: u8,
    name: u8,
    uid: u8,
    /// Labels and owner references (see [`Ref::labels`] and [`Ref::owners`]).
    meta: u8,
}

/// The resourceVersion a watch event carries.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Rv {
    /// The server's current one (a new one if the server lacks the object).
    Server,
    /// One the server has not reached (the watch is ahead of the fetches).
    Fresh,
    /// A small number, maybe an old version, maybe another object's.
    Old(u8),
    /// None at all (any cached body will do).
    Absent,
}

/// Keys: `len` selects the length (mostly 2), each component an alphabet entry or the
/// object's own namespace or name.
#[derive(Arbitrary, Debug, Clone, Copy)]
struct Keys {
    len: u8,
    comps: [u8; 3],
}

#[derive(Arbitrary, Debug, Clone, Copy)]
struct Name {
    ns: u8,
    name: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Add(Obj, Rv, Keys),
    Update(Obj, Rv, Keys),
    /// A change on the server and its watch event at once: the common case.
    Sync(Obj, Keys),
    Remove(Obj, Rv),
    Delete(Keys),
    Replace(Vec<(Obj, Rv, Keys)>),
    Clear,
    Get(Keys),
    Fetch(Name),
    List,
    /// The server changes without an event (yet).
    ServerPut(Obj),
    ServerDelete(Name),
    /// Fetches of the object fail from now on (or stop failing).
    ServerFail(Name, bool),
    /// Starts a `get` and leaves it pending.
    StartGet(Keys),
    /// Starts a `fetch` and leaves it pending.
    StartFetch(Name),
    /// Polls a pending read once.
    Poll(u8),
    /// Drops a pending read.
    Cancel(u8),
    /// `references_by`: the index is [`INDEX_NAMES`] (or an unknown name) picked by
    /// the `u8`, the components from [`INDEX_VALUES`] (`len % 4` of them).
    ReferencesBy(u8, Keys),
    /// `select_references` with the selector [`SELECTORS`] picked by the `u8`, in all
    /// namespaces or (`select_references_in`) in the one picked.
    SelectReferences(u8, Option<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// The label index: every key, `a` only, or none (see [`label_index`]).
    label_index: u8,
    max_entries: u8,
    /// 0: bounded by entries; else by bytes.
    budget: u8,
    concurrency: u8,
    ops: Vec<Op>,
}

// ---------------------------------------------------------------------------------
// The API server and the fetcher.

type Key = (String, String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Found { rv: u64, uid: String },
    NotFound,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    Done,
    Cancelled,
}

#[derive(Debug)]
struct Logged {
    key: Key,
    answer: Answer,
    /// The object's invalidation epoch when the fetch read the server.
    epoch: u64,
    state: State,
}

#[derive(Debug, Default)]
struct Server {
    objects: BTreeMap<Key, (u64, String)>,
    failing: BTreeSet<Key>,
    /// Watch events (invalidations) per object so far, as the model counts them.
    epochs: BTreeMap<Key, u64>,
    /// Every fetch, by serial number.
    log: Vec<Logged>,
    /// Every key `log` has a fetch of (kept as fetches start, not collected from the
    /// log at every `clear`).
    fetched: BTreeSet<Key>,
    /// How many fetches in `log` are `Done` with `Answer::Failed`, and with
    /// `Answer::NotFound` (counted as they finish; a fetch is done once and stays so).
    done_failed: u64,
    done_not_found: u64,
}

impl Server {
    fn epoch(&self, key: &Key) -> u64 {
        self.epochs.get(key).copied().unwrap_or(0)
    }

    fn invalidate(&mut self, key: Key) {
        *self.epochs.entry(key).or_default() += 1;
    }

    fn injected() -> FetchError {
        FetchError::Api {
            code: 500,
            reason: "InternalError".into(),
            message: "injected".into(),
        }
    }
}

type Shared = Arc<Mutex<Server>>;

fn lock(s: &Shared) -> MutexGuard<'_, Server> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Fetcher(Shared);

/// Marks a fetch cancelled if its future is dropped before answering.
struct InFlight {
    shared: Shared,
    serial: usize,
    done: bool,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.done {
            lock(&self.shared).log[self.serial].state = State::Cancelled;
        }
    }
}

/// `Pending` once (after waking itself), then `Ready`: the fetch is on the wire.
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

impl Fetch<ConfigMap> for Fetcher {
    fn fetch(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<Fetched<ConfigMap>>, FetchError>> + Send {
        let shared = Arc::clone(&self.0);
        let key = (namespace.to_owned(), name.to_owned());
        async move {
            // The server is read when the fetch starts and answered after a yield.
            let (serial, answer) = {
                let mut s = lock(&shared);
                let answer = if s.failing.contains(&key) {
                    Answer::Failed
                } else {
                    match s.objects.get(&key) {
                        Some((rv, uid)) => Answer::Found {
                            rv: *rv,
                            uid: uid.clone(),
                        },
                        None => Answer::NotFound,
                    }
                };
                let epoch = s.epoch(&key);
                if !s.fetched.contains(&key) {
                    s.fetched.insert(key.clone());
                }
                s.log.push(Logged {
                    key: key.clone(),
                    answer: answer.clone(),
                    epoch,
                    state: State::InFlight,
                });
                (s.log.len() - 1, answer)
            };
            let mut guard = InFlight {
                shared: Arc::clone(&shared),
                serial,
                done: false,
            };
            YieldOnce(false).await;
            guard.done = true;
            {
                let mut s = lock(&shared);
                s.log[serial].state = State::Done;
                match answer {
                    Answer::Failed => s.done_failed += 1,
                    Answer::NotFound => s.done_not_found += 1,
                    Answer::Found { .. } => {}
                }
            }
            match answer {
                Answer::Found { rv, uid } => Ok(Some(Fetched {
                    object: Arc::new(body(&key, rv, &uid, serial)),
                    bytes: (MIN_BYTES + serial as u64 % (MAX_BYTES - MIN_BYTES + 1)) as usize,
                })),
                Answer::NotFound => Ok(None),
                Answer::Failed => Err(Server::injected()),
            }
        }
    }
}

fn body(key: &Key, rv: u64, uid: &str, serial: usize) -> ConfigMap {
    let mut cm = ConfigMap::default();
    cm.metadata.namespace = Some(key.0.clone());
    cm.metadata.name = Some(key.1.clone());
    cm.metadata.uid = Some(uid.to_owned());
    cm.metadata.resource_version = Some(rv.to_string());
    cm.data = Some([("serial".to_owned(), serial.to_string())].into());
    cm
}

fn serial_of(b: &ConfigMap) -> usize {
    b.data.as_ref().expect("data")["serial"]
        .parse()
        .expect("serial")
}

fn key_of(b: &ConfigMap) -> Key {
    (
        b.metadata.namespace.clone().unwrap_or_default(),
        b.metadata.name.clone().unwrap_or_default(),
    )
}

// ---------------------------------------------------------------------------------
// The model of the references (MemoryStore semantics).

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Ref {
    ns: String,
    name: String,
    uid: String,
    rv: Option<String>,
    /// Labels and owner references, decoded by [`Ref::labels`] and [`Ref::owners`].
    meta: u8,
}

/// The values of the labels `a` and `b` (absent, or one of these).
const LABEL_VALUES: [Option<&str>; 4] = [None, Some("a"), Some("b"), Some("")];
/// The uids of owner references (with a repeat and the empty uid).
const OWNER_UIDS: [&str; 4] = ["o1", "o2", "o1", ""];

/// The secondary indexes of the store: the labels `a` and `b`, and the owner references'
/// uids (multi-valued). The on-demand tier's references keep what these read.
const INDEXES: [(&str, &[&str]); 2] = [
    ("ab", &["metadata.labels['a']", "metadata.labels['b']"]),
    ("own", &["metadata.ownerReferences[*].uid"]),
];
/// The names `ReferencesBy` looks up: the indexes and one the store does not have.
const INDEX_NAMES: [&str; 3] = ["ab", "own", "a"];
/// The components `ReferencesBy` looks up.
const INDEX_VALUES: [&str; 5] = ["a", "b", "", "o1", "o2"];
/// The selectors of `SelectReferences`: each kind of term, on a label objects carry
/// and one they do not, alone and together.
const SELECTORS: [&str; 16] = [
    "",
    "a=a",
    "a!=a",
    "a in (a,b)",
    "a notin (a)",
    "a",
    "!a",
    "a=,b",
    "a=a,b=b",
    "b in (),a notin (b)",
    "a in (a,),b!=a",
    "c",
    "!c,a in (b)",
    "c!=a,b=a",
    "c in (a),a",
    "a notin (,b),!b",
];

/// The store's label index for the input's byte.
fn label_index(b: u8) -> Option<LabelIndex> {
    match b % 3 {
        0 => Some(LabelIndex::All),
        1 => Some(LabelIndex::keys(["a"])),
        _ => None,
    }
}

impl Ref {
    /// The labels `a` and `b`, from bits 0-1 and 2-3 of `meta`.
    fn labels(&self) -> [Option<&'static str>; 2] {
        let m = usize::from(self.meta);
        [LABEL_VALUES[m & 3], LABEL_VALUES[(m >> 2) & 3]]
    }

    /// The label `key` as the model reads it.
    fn label(&self, key: &str) -> Option<&'static str> {
        match key {
            "a" => self.labels()[0],
            "b" => self.labels()[1],
            _ => None,
        }
    }

    /// The owner references' uids: `(meta >> 4) % 4` of them, from [`OWNER_UIDS`] on
    /// from `meta >> 6` (none: no `ownerReferences` at all).
    fn owners(&self) -> Vec<&'static str> {
        let m = usize::from(self.meta);
        (0..(m >> 4) % 4)
            .map(|j| OWNER_UIDS[((m >> 6) + j) % OWNER_UIDS.len()])
            .collect()
    }

    /// The reference's keys in the index `INDEXES[index]`, as the model reads them.
    fn index_keys(&self, index: usize) -> Vec<Vec<String>> {
        match index {
            0 => match self.labels() {
                [Some(a), Some(b)] => vec![vec![a.to_owned(), b.to_owned()]],
                _ => Vec::new(),
            },
            _ => {
                let uids: BTreeSet<&str> = self.owners().into_iter().collect();
                uids.into_iter().map(|u| vec![u.to_owned()]).collect()
            }
        }
    }

    fn key(&self) -> Key {
        (self.ns.clone(), self.name.clone())
    }

    fn reference(&self) -> Reference {
        Reference::new(&self.ns, &self.name, &self.uid, self.rv.as_deref())
    }

    fn config_map(&self) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.namespace = (!self.ns.is_empty()).then(|| self.ns.clone());
        cm.metadata.name = Some(self.name.clone());
        cm.metadata.uid = (!self.uid.is_empty()).then(|| self.uid.clone());
        cm.metadata.resource_version = self.rv.clone();
        let labels: BTreeMap<String, String> = ["a", "b"]
            .into_iter()
            .zip(self.labels())
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        cm.metadata.labels = (!labels.is_empty()).then_some(labels);
        let owners = self.owners();
        cm.metadata.owner_references = (!owners.is_empty()).then(|| {
            owners
                .into_iter()
                .map(|uid| OwnerReference {
                    api_version: "v1".into(),
                    kind: "K".into(),
                    name: "o".into(),
                    uid: uid.to_owned(),
                    ..OwnerReference::default()
                })
                .collect()
        });
        cm
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Id {
    Uid(String),
    Name(String, String),
}

fn identity(r: &Ref) -> Id {
    if r.uid.is_empty() {
        Id::Name(r.ns.clone(), r.name.clone())
    } else {
        Id::Uid(r.uid.clone())
    }
}

#[derive(Default)]
struct Model {
    refs: BTreeMap<Id, (Ref, Vec<String>)>,
}

impl Model {
    fn select(&self, f: impl Fn(&[String]) -> bool) -> Vec<Ref> {
        let mut v: Vec<Ref> = self
            .refs
            .values()
            .filter(|(_, k)| f(k))
            .map(|(r, _)| r.clone())
            .collect();
        v.sort_by(|a, b| (&a.ns, &a.name, &a.uid).cmp(&(&b.ns, &b.name, &b.uid)));
        v
    }

    /// (namespace, name, uid) of the references `f` accepts, in order.
    fn ids(&self, f: impl Fn(&Ref) -> bool) -> Vec<(String, String, String)> {
        let mut v: Vec<(String, String, String)> = self
            .refs
            .values()
            .filter(|(r, _)| f(r))
            .map(|(r, _)| (r.ns.clone(), r.name.clone(), r.uid.clone()))
            .collect();
        v.sort();
        v
    }
}

/// (namespace, name, uid) of each reference, in order.
fn ids(refs: &[Arc<Reference>]) -> Vec<(String, String, String)> {
    refs.iter()
        .map(|r| {
            (
                r.namespace().to_owned(),
                r.name().to_owned(),
                r.uid().to_owned(),
            )
        })
        .collect()
}

fn key_count_error(operation: Operation, keys: &[String]) -> Option<StoreError> {
    (keys.len() != NUM_KEYS).then(|| {
        StoreError::new(
            operation,
            keys,
            ErrorKind::KeyCount {
                expected: NUM_KEYS,
                given: keys.len(),
            },
        )
    })
}

fn prefix_error(keys: &[String]) -> Option<StoreError> {
    (keys.is_empty() || keys.len() > NUM_KEYS).then(|| {
        StoreError::new(
            Operation::Get,
            keys,
            ErrorKind::PrefixLength {
                max: NUM_KEYS,
                given: keys.len(),
            },
        )
    })
}

// ---------------------------------------------------------------------------------
// Generating.

struct Gen {
    /// The resourceVersion counter (shared by the server and `Rv::Fresh`).
    rv: u64,
    /// The labels and owners (`Obj::meta`) of each resourceVersion given so far: one
    /// resourceVersion stands for one version of the metadata, as in Kubernetes (a
    /// relist keeps the reference it holds when the resourceVersion is unchanged).
    metas: BTreeMap<String, u8>,
}

fn pick<'a>(alphabet: &[&'a str], i: u8) -> &'a str {
    alphabet[usize::from(i) % alphabet.len()]
}

fn name_key(n: Name) -> Key {
    (
        pick(NAMESPACES, n.ns).to_owned(),
        pick(NAMES, n.name).to_owned(),
    )
}

impl Gen {
    fn next(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn reference(&mut self, o: Obj, rv: Rv, server: &Server) -> Ref {
        let ns = pick(NAMESPACES, o.ns).to_owned();
        let name = pick(NAMES, o.name).to_owned();
        let rv = match rv {
            Rv::Server => Some(match server.objects.get(&(ns.clone(), name.clone())) {
                Some((v, _)) => v.to_string(),
                None => self.next().to_string(),
            }),
            Rv::Fresh => Some(self.next().to_string()),
            Rv::Old(v) => Some((v % 4).to_string()),
            Rv::Absent => None,
        };
        Ref {
            ns,
            name,
            uid: pick(UIDS, o.uid).to_owned(),
            meta: match &rv {
                Some(v) => *self.metas.entry(v.clone()).or_insert(o.meta),
                None => o.meta,
            },
            rv,
        }
    }
}

/// Mostly two components; sometimes 0..=3.
fn key_len(k: Keys) -> usize {
    if k.len < 0xD0 {
        NUM_KEYS
    } else {
        usize::from(k.len) % (NUM_KEYS + 2)
    }
}

fn object_keys(k: Keys, r: &Ref) -> Vec<String> {
    k.comps[..key_len(k)]
        .iter()
        .map(|&c| match usize::from(c) % (KEYS.len() + 2) {
            i if i < KEYS.len() => KEYS[i].to_owned(),
            i if i == KEYS.len() => r.ns.clone(),
            _ => r.name.clone(),
        })
        .collect()
}

fn plain_keys(k: Keys, len: usize) -> Vec<String> {
    k.comps[..len]
        .iter()
        .map(|&c| pick(KEYS, c).to_owned())
        .collect()
}

/// Get queries: 1 or 2 components mostly, sometimes 0 or 3.
fn query_keys(k: Keys) -> Vec<String> {
    let len = if k.len < 0xF0 {
        1 + usize::from(k.len) % NUM_KEYS
    } else {
        usize::from(k.len) % (NUM_KEYS + 2)
    };
    plain_keys(k, len)
}

// ---------------------------------------------------------------------------------
// Driving futures.

type Read = Result<Vec<Arc<ConfigMap>>, StoreError>;
type ReadFuture<'a> = Pin<Box<dyn Future<Output = Read> + 'a>>;

/// A read left pending, with what it must resolve.
struct PendingRead<'a> {
    fut: ReadFuture<'a>,
    what: String,
    /// The (namespace, name)s it may return.
    keys: BTreeSet<Key>,
}

fn poll<T>(fut: Pin<&mut (dyn Future<Output = T> + '_)>) -> Poll<T> {
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// Runs `fut` to completion, polling the pending reads alongside (it may wait for one
/// of them); pending reads that finish are checked.
fn drive<T>(
    checker: &Checker,
    mut fut: Pin<&mut (dyn Future<Output = T> + '_)>,
    pending: &mut Vec<PendingRead<'_>>,
    what: &dyn fmt::Display,
) -> T {
    for _ in 0..MAX_ROUNDS {
        if let Poll::Ready(r) = poll(fut.as_mut()) {
            return r;
        }
        let mut i = 0;
        while i < pending.len() {
            if let Poll::Ready(r) = poll(pending[i].fut.as_mut()) {
                let p = pending.remove(i);
                checker.check_pending(&p.what, &p.keys, &r);
            } else {
                i += 1;
            }
        }
    }
    panic!("{what}: hung");
}

// ---------------------------------------------------------------------------------
// Checking.

struct Checker {
    shared: Shared,
    max_entries: usize,
    max_bytes: Option<u64>,
}

/// What a read may rely on: the fetches that started during it or were in flight when
/// it started.
struct Window {
    first: usize,
    in_flight: BTreeSet<usize>,
}

impl Window {
    fn covers(&self, serial: usize) -> bool {
        serial >= self.first || self.in_flight.contains(&serial)
    }
}

fn object_name(key: &Key) -> String {
    if key.0.is_empty() {
        key.1.clone()
    } else {
        format!("{}/{}", key.0, key.1)
    }
}

impl Checker {
    fn server(&self) -> MutexGuard<'_, Server> {
        lock(&self.shared)
    }

    fn window(&self) -> Window {
        let s = self.server();
        Window {
            first: s.log.len(),
            in_flight: s
                .log
                .iter()
                .enumerate()
                .filter(|(_, l)| l.state == State::InFlight)
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// Checks a body against the log: a fetch of `key` that answered it, with no watch
    /// event for `key` since that fetch read the server.
    fn body_ok(&self, s: &Server, b: &ConfigMap, key: &Key) -> Result<usize, String> {
        let serial = serial_of(b);
        let Some(l) = s.log.get(serial) else {
            return Err(format!("body with unknown serial {serial}"));
        };
        if l.key != *key || key_of(b) != *key {
            return Err(format!(
                "body of {:?} (fetch #{serial} of {:?}) for {key:?}",
                key_of(b),
                l.key
            ));
        }
        let Answer::Found { rv, uid } = &l.answer else {
            return Err(format!("fetch #{serial} did not answer a body"));
        };
        if b.metadata.resource_version.as_deref() != Some(&*rv.to_string())
            || b.metadata.uid.as_deref() != Some(uid)
        {
            return Err(format!("body of fetch #{serial} altered"));
        }
        let now = s.epoch(key);
        if l.epoch != now {
            return Err(format!(
                "stale body of {key:?} at resourceVersion {rv}: fetch #{serial} read the \
                 server at event epoch {}, the object has had events up to epoch {now}",
                l.epoch
            ));
        }
        Ok(serial)
    }

    /// A fetch in `w` answered `want` for `key` since its last event.
    fn answered(&self, s: &Server, w: &Window, key: &Key, want: &Answer) -> bool {
        s.log.iter().enumerate().any(|(i, l)| {
            w.covers(i) && l.key == *key && l.answer == *want && l.epoch == s.epoch(key)
        })
    }

    fn fetch_error_ok(
        &self,
        s: &Server,
        w: &Window,
        e: &StoreError,
        keys: &[Key],
    ) -> Result<(), String> {
        if e.operation != Operation::Fetch {
            return Err(format!("error names operation {:?}", e.operation));
        }
        let ErrorKind::Fetch { object, cause } = &e.kind else {
            return Err(format!("unexpected error kind {:?}", e.kind));
        };
        if **cause != Server::injected() {
            return Err(format!("unexpected cause {cause:?}"));
        }
        let ok = keys
            .iter()
            .any(|k| object_name(k) == *object && self.answered(s, w, k, &Answer::Failed));
        if ok {
            Ok(())
        } else {
            Err(format!("error for {object:?}, whose fetches did not fail"))
        }
    }

    /// A read of the references `refs` that ran to completion.
    fn check_read(&self, what: &dyn fmt::Display, w: &Window, refs: &[Ref], got: &Read) {
        let s = self.server();
        let keys: Vec<Key> = refs.iter().map(Ref::key).collect();
        let bodies = match got {
            Err(e) => {
                if let Err(why) = self.fetch_error_ok(&s, w, e, &keys) {
                    panic!("{what}: {e}: {why}");
                }
                return;
            }
            Ok(b) => b,
        };
        // Match bodies to an ordered subsequence of `refs`; left-out references must
        // have been answered 404.
        let body_for = |b: &ConfigMap, r: &Ref| -> Result<(), String> {
            let serial = self.body_ok(&s, b, &r.key())?;
            let rv_ok = r.rv.is_none() || b.metadata.resource_version == r.rv;
            if rv_ok || w.covers(serial) {
                Ok(())
            } else {
                Err(format!(
                    "cached body of {:?} at resourceVersion {:?} served for a reference at {:?}",
                    r.key(),
                    b.metadata.resource_version,
                    r.rv
                ))
            }
        };
        let omittable = |r: &Ref| self.answered(&s, w, &r.key(), &Answer::NotFound);
        let mut memo = vec![vec![None; bodies.len() + 1]; refs.len() + 1];
        let mut why = Vec::new();
        if !matching(
            0, 0, refs, bodies, &body_for, &omittable, &mut memo, &mut why,
        ) {
            panic!(
                "{what}: the result does not match the references\n  refs:   {refs:?}\n  \
                 bodies: {:?}\n  why: {why:?}",
                bodies
                    .iter()
                    .map(|b| (key_of(b), b.metadata.resource_version.clone(), serial_of(b)))
                    .collect::<Vec<_>>()
            );
        }
    }

    /// `fetch(ns, name)` that ran to completion.
    fn check_fetch(
        &self,
        what: &dyn fmt::Display,
        w: &Window,
        key: &Key,
        got: &Result<Option<Arc<ConfigMap>>, StoreError>,
    ) {
        let s = self.server();
        match got {
            Err(e) => {
                if let Err(why) = self.fetch_error_ok(&s, w, e, std::slice::from_ref(key)) {
                    panic!("{what}: {e}: {why}");
                }
            }
            Ok(None) => assert!(
                self.answered(&s, w, key, &Answer::NotFound),
                "{what}: None, but no fetch answered 404"
            ),
            Ok(Some(b)) => {
                if let Err(why) = self.body_ok(&s, b, key) {
                    panic!("{what}: {why}");
                }
            }
        }
    }

    /// A read left pending earlier, now finished: whatever it returns must be bodies of
    /// fetches of the objects it was after, in order.
    fn check_pending(&self, what: &dyn fmt::Display, keys: &BTreeSet<Key>, got: &Read) {
        let s = self.server();
        match got {
            Err(e) => {
                assert_eq!(e.operation, Operation::Fetch, "{what}: {e}");
                assert!(matches!(e.kind, ErrorKind::Fetch { .. }), "{what}: {e}");
            }
            Ok(bodies) => {
                let mut last: Option<Key> = None;
                for b in bodies {
                    let key = key_of(b);
                    assert!(keys.contains(&key), "{what}: body of {key:?}");
                    let l = &s.log[serial_of(b)];
                    assert_eq!(l.key, key, "{what}");
                    assert!(last.as_ref() <= Some(&key), "{what}: out of order");
                    last = Some(key);
                }
            }
        }
    }

    /// After every operation.
    fn check_stats(&self, what: &dyn fmt::Display, store: &Store) {
        let stats = store.stats();
        let s = self.server();
        assert_eq!(stats.fetches, s.log.len() as u64, "{what}: fetches");
        // The fetches done with each answer, as the fetcher counts them when they finish.
        assert_eq!(stats.fetch_errors, s.done_failed, "{what}: fetch_errors");
        assert_eq!(stats.not_found, s.done_not_found, "{what}: not_found");
        match self.max_bytes {
            None => assert!(
                stats.entries <= self.max_entries as u64,
                "{what}: {} entries, max_entries {}",
                stats.entries,
                self.max_entries
            ),
            Some(max) => assert!(
                stats.bytes <= max,
                "{what}: {} bytes, max_bytes {max}",
                stats.bytes
            ),
        }
        assert!(
            stats.entries * MIN_BYTES <= stats.bytes && stats.bytes <= stats.entries * MAX_BYTES,
            "{what}: {} bytes counted for {} entries",
            stats.bytes,
            stats.entries
        );
    }
}

/// Whether `bodies[j..]` matches an ordered subsequence of `refs[i..]`, every left-out
/// reference being omittable.
#[allow(clippy::too_many_arguments)]
fn matching(
    i: usize,
    j: usize,
    refs: &[Ref],
    bodies: &[Arc<ConfigMap>],
    body_for: &dyn Fn(&ConfigMap, &Ref) -> Result<(), String>,
    omittable: &dyn Fn(&Ref) -> bool,
    memo: &mut Vec<Vec<Option<bool>>>,
    why: &mut Vec<String>,
) -> bool {
    if let Some(m) = memo[i][j] {
        return m;
    }
    let m = if i == refs.len() {
        j == bodies.len()
    } else {
        let take = j < bodies.len()
            && match body_for(&bodies[j], &refs[i]) {
                Ok(()) => matching(i + 1, j + 1, refs, bodies, body_for, omittable, memo, why),
                Err(e) => {
                    why.push(e);
                    false
                }
            };
        take || {
            let skip = omittable(&refs[i]);
            if !skip {
                why.push(format!("{:?} left out without a 404", refs[i].key()));
            }
            skip && matching(i + 1, j, refs, bodies, body_for, omittable, memo, why)
        }
    };
    memo[i][j] = Some(m);
    m
}

type Store = CachedStore<ConfigMap, Fetcher>;

/// The operation a check is about: `op <step> <its Debug form>`, formatted only when a
/// check fails (formatting every operation's `Debug` form cost more than most
/// operations).
struct What<'a> {
    step: usize,
    op: &'a Op,
}

impl fmt::Display for What<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op {} {:?}", self.step, self.op)
    }
}

/// A message written by a closure when displayed: `What` with more context.
struct Msg<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Display for Msg<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

// ---------------------------------------------------------------------------------

fuzz_target!(|input: Input| run(input));

fn run(input: Input) {
    let shared: Shared = Arc::default();
    let max_entries = 1 + usize::from(input.max_entries % 4);
    let max_bytes = (input.budget != 0).then(|| 150 + 3 * u64::from(input.budget));
    let mut builder = CachedStore::<ConfigMap>::builder(NUM_KEYS);
    for (name, paths) in INDEXES {
        builder = builder.index(name, Indexer::new(paths).expect("valid paths"));
    }
    let which = label_index(input.label_index);
    if let Some(which) = which.clone() {
        builder = builder.label_index(which);
    }
    let mut builder = builder
        .max_entries(max_entries)
        .ttl(Duration::from_secs(3600))
        .fetch_concurrency(1 + usize::from(input.concurrency % 3))
        // Two shards, not the default 1,024: those would be built for every input and
        // visited by every `validate()`.
        .shards(2);
    if let Some(b) = max_bytes {
        builder = builder.max_bytes(b);
    }
    let store: Store = builder
        .build_with_fetcher(Fetcher(Arc::clone(&shared)))
        .expect("valid settings");
    let checker = Checker {
        shared: Arc::clone(&shared),
        max_entries,
        max_bytes,
    };
    let mut model = Model::default();
    let mut generator = Gen {
        rv: 0,
        metas: BTreeMap::new(),
    };
    let mut pending: Vec<PendingRead<'_>> = Vec::new();
    let mut validate_due = false;

    for (step, op) in input.ops.iter().take(MAX_OPS).enumerate() {
        let what = What { step, op };
        match *op {
            Op::Add(o, rv, k) | Op::Update(o, rv, k) => {
                let is_add = matches!(op, Op::Add(..));
                let r = generator.reference(o, rv, &checker.server());
                let keys = object_keys(k, &r);
                let obj = r.config_map();
                let got = if is_add {
                    store.add(&obj, &keys)
                } else {
                    store.update(&obj, &keys)
                };
                let operation = if is_add {
                    Operation::Add
                } else {
                    Operation::Update
                };
                let want = match key_count_error(operation, &keys) {
                    Some(e) => Err(e),
                    None => {
                        checker.server().invalidate(r.key());
                        model.refs.insert(identity(&r), (r, keys.clone()));
                        Ok(())
                    }
                };
                assert_eq!(got, want, "{what} keys {keys:?}");
            }
            Op::Sync(o, k) => {
                let rv = generator.next();
                let r = {
                    let mut s = checker.server();
                    let key = (
                        pick(NAMESPACES, o.ns).to_owned(),
                        pick(NAMES, o.name).to_owned(),
                    );
                    s.objects.insert(key, (rv, pick(UIDS, o.uid).to_owned()));
                    generator.reference(o, Rv::Server, &s)
                };
                let mut keys = object_keys(k, &r);
                keys.resize(NUM_KEYS, String::new());
                store
                    .update(&r.config_map(), &keys)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                checker.server().invalidate(r.key());
                model.refs.insert(identity(&r), (r, keys));
            }
            Op::Remove(o, rv) => {
                let r = generator.reference(o, rv, &checker.server());
                let got = store.remove(&r.reference());
                checker.server().invalidate(r.key());
                let want = model.refs.remove(&identity(&r)).is_some();
                assert_eq!(got, Ok(want), "{what}");
            }
            Op::Delete(k) => {
                let keys = plain_keys(k, key_len(k));
                let got = store.delete(&keys);
                match key_count_error(Operation::Delete, &keys) {
                    Some(want) => {
                        let e = match got {
                            Err(e) => e,
                            Ok(n) => panic!("{what}: Ok({n}), expected {want}"),
                        };
                        assert_eq!(e, want, "{what}");
                    }
                    None => {
                        let gone: Vec<Id> = model
                            .refs
                            .iter()
                            .filter(|(_, (_, k))| *k == keys)
                            .map(|(id, _)| id.clone())
                            .collect();
                        let mut s = checker.server();
                        for id in &gone {
                            let (r, _) = model.refs.remove(id).expect("present");
                            s.invalidate(r.key());
                        }
                        assert_eq!(got, Ok(gone.len()), "{what}");
                    }
                }
            }
            Op::Replace(ref items) => {
                let items: Vec<(Ref, Vec<String>)> = items
                    .iter()
                    .map(|&(o, rv, k)| {
                        let r = generator.reference(o, rv, &checker.server());
                        let keys = object_keys(k, &r);
                        (r, keys)
                    })
                    .collect();
                let got = store.replace(items.iter().map(|(r, k)| (r.config_map(), k.clone())));
                let want = items
                    .iter()
                    .find_map(|(_, k)| key_count_error(Operation::Replace, k));
                match want {
                    Some(e) => assert_eq!(got, Err(e), "{what}"),
                    None => {
                        assert_eq!(got, Ok(()), "{what}");
                        // Invalidated: the old references that are gone or whose
                        // resourceVersion changed (by namespace and name, the last
                        // item winning), and the names no old reference had.
                        let current: BTreeMap<Key, Option<String>> =
                            items.iter().map(|(r, _)| (r.key(), r.rv.clone())).collect();
                        let known: BTreeSet<Key> =
                            model.refs.values().map(|(old, _)| old.key()).collect();
                        let mut s = checker.server();
                        for (old, _) in model.refs.values() {
                            if current.get(&old.key()) != Some(&old.rv) {
                                s.invalidate(old.key());
                            }
                        }
                        for key in current.keys().filter(|k| !known.contains(*k)) {
                            s.invalidate(key.clone());
                        }
                        drop(s);
                        model.refs.clear();
                        for (r, keys) in items {
                            model.refs.insert(identity(&r), (r, keys));
                        }
                    }
                }
            }
            Op::Clear => {
                store.clear();
                model.refs.clear();
                let mut s = checker.server();
                // Every key ever fetched; with the old behaviour, not those in flight.
                let in_flight: BTreeSet<Key> = if CLEAR_INVALIDATES_FLIGHTS {
                    BTreeSet::new()
                } else {
                    s.log
                        .iter()
                        .filter(|l| l.state == State::InFlight)
                        .map(|l| l.key.clone())
                        .collect()
                };
                for key in s.fetched.clone() {
                    if !in_flight.contains(&key) {
                        s.invalidate(key);
                    }
                }
            }
            Op::Get(k) => {
                let keys = query_keys(k);
                let what = Msg(|f| write!(f, "{what} get {keys:?}"));
                let window = checker.window();
                let got = drive(&checker, pin!(store.get(&keys)), &mut pending, &what);
                match prefix_error(&keys) {
                    Some(e) => {
                        assert_eq!(got.map(|_| ()), Err(e), "{what}");
                        assert_eq!(checker.window().first, window.first, "{what}: fetched");
                    }
                    None => {
                        let refs = model.select(|k| k.starts_with(&keys));
                        checker.check_read(&what, &window, &refs, &got.map(Objects::into_vec));
                    }
                }
                // The same key through `get_one`: a count error for a prefix, a
                // uniqueness error (and no fetch) for a shared key, else the same
                // read as `get` without the vector.
                let what = Msg(|f| write!(f, "{what} (get_one)"));
                let window = checker.window();
                let got = drive(&checker, pin!(store.get_one(&keys)), &mut pending, &what);
                let refs = model.select(|k| k.starts_with(&keys));
                if let Some(e) = key_count_error(Operation::Get, &keys) {
                    assert_eq!(got.map(|_| ()), Err(e), "{what}");
                    assert_eq!(checker.window().first, window.first, "{what}: fetched");
                } else if refs.len() > 1 {
                    let err = match got {
                        Err(e) => e,
                        Ok(o) => panic!("{what}: Ok({o:?}), expected NotUnique"),
                    };
                    assert_eq!(
                        err.kind,
                        ErrorKind::NotUnique { found: refs.len() },
                        "{what}"
                    );
                    assert_eq!(checker.window().first, window.first, "{what}: fetched");
                } else {
                    let got = got.map(|o| o.into_iter().collect::<Vec<_>>());
                    checker.check_read(&what, &window, &refs, &got);
                }
            }
            Op::List => {
                let window = checker.window();
                let fut = pin!(async { store.list().await.map(|s| s.to_vec()) });
                let got = drive(&checker, fut, &mut pending, &what);
                let refs = model.select(|_| true);
                checker.check_read(&what, &window, &refs, &got);
            }
            Op::Fetch(n) => {
                let key = name_key(n);
                let window = checker.window();
                let fut = pin!(store.fetch(&key.0, &key.1));
                let got = drive(&checker, fut, &mut pending, &what);
                checker.check_fetch(&what, &window, &key, &got);
            }
            Op::ServerPut(o) => {
                let rv = generator.next();
                let key = (
                    pick(NAMESPACES, o.ns).to_owned(),
                    pick(NAMES, o.name).to_owned(),
                );
                checker
                    .server()
                    .objects
                    .insert(key, (rv, pick(UIDS, o.uid).to_owned()));
            }
            Op::ServerDelete(n) => {
                checker.server().objects.remove(&name_key(n));
            }
            Op::ServerFail(n, on) => {
                let mut s = checker.server();
                if on {
                    s.failing.insert(name_key(n));
                } else {
                    s.failing.remove(&name_key(n));
                }
            }
            Op::StartGet(k) => {
                if pending.len() < MAX_PENDING {
                    let keys = query_keys(k);
                    let refs = match prefix_error(&keys) {
                        Some(_) => Vec::new(),
                        None => model.select(|k| k.starts_with(&keys)),
                    };
                    let what = format!("{what} get {keys:?}");
                    let window = checker.window();
                    let store = &store;
                    let q = keys.clone();
                    let mut fut: ReadFuture<'_> =
                        Box::pin(async move { store.get(&q).await.map(Objects::into_vec) });
                    match poll(fut.as_mut()) {
                        // Done at once: as a read run to completion.
                        Poll::Ready(got) => match prefix_error(&keys) {
                            Some(e) => assert_eq!(got.map(|_| ()), Err(e), "{what}"),
                            None => checker.check_read(&what, &window, &refs, &got),
                        },
                        Poll::Pending => pending.push(PendingRead {
                            fut,
                            what,
                            keys: refs.iter().map(Ref::key).collect(),
                        }),
                    }
                }
            }
            Op::StartFetch(n) => {
                if pending.len() < MAX_PENDING {
                    let key = name_key(n);
                    let store = &store;
                    let k = key.clone();
                    let mut fut: ReadFuture<'_> = Box::pin(async move {
                        store
                            .fetch(&k.0, &k.1)
                            .await
                            .map(|o| o.into_iter().collect())
                    });
                    match poll(fut.as_mut()) {
                        Poll::Ready(got) => checker.check_pending(&what, &[key].into(), &got),
                        Poll::Pending => pending.push(PendingRead {
                            fut,
                            what: what.to_string(),
                            keys: [key].into(),
                        }),
                    }
                }
            }
            Op::Poll(i) => {
                if !pending.is_empty() {
                    let i = usize::from(i) % pending.len();
                    if let Poll::Ready(got) = poll(pending[i].fut.as_mut()) {
                        let p = pending.remove(i);
                        checker.check_pending(&p.what, &p.keys, &got);
                    }
                }
            }
            Op::Cancel(i) => {
                if !pending.is_empty() {
                    let i = usize::from(i) % pending.len();
                    drop(pending.remove(i));
                }
            }
            Op::ReferencesBy(i, k) => {
                let name = INDEX_NAMES[usize::from(i) % INDEX_NAMES.len()];
                let keys: Vec<String> = k.comps[..usize::from(k.len) % 4]
                    .iter()
                    .map(|&c| pick(&INDEX_VALUES, c).to_owned())
                    .collect();
                let got = store.references_by(name, &keys).map(|v| ids(&v));
                let want = match INDEXES.iter().position(|(n, _)| *n == name) {
                    None => Err(StoreError::new(
                        Operation::Get,
                        &keys,
                        ErrorKind::UnknownIndex {
                            name: name.to_owned(),
                            known: INDEXES.iter().map(|(n, _)| (*n).to_owned()).collect(),
                        },
                    )),
                    Some(index) if keys.is_empty() || keys.len() > INDEXES[index].1.len() => {
                        Err(StoreError::new(
                            Operation::Get,
                            &keys,
                            ErrorKind::PrefixLength {
                                max: INDEXES[index].1.len(),
                                given: keys.len(),
                            },
                        ))
                    }
                    Some(index) => {
                        Ok(model.ids(|r| r.index_keys(index).iter().any(|c| c.starts_with(&keys))))
                    }
                };
                assert_eq!(got, want, "{what}: references_by({name:?}, {keys:?})");
            }
            Op::SelectReferences(i, ns) => {
                let text = SELECTORS[usize::from(i) % SELECTORS.len()];
                let selector = Selector::parse(text).expect("a valid selector");
                let ns = ns.map(|n| pick(NAMESPACES, n));
                let got = match ns {
                    Some(ns) => store.select_references_in(ns, &selector),
                    None => store.select_references(&selector),
                };
                let want = model.ids(|r| {
                    ns.is_none_or(|ns| r.ns == ns)
                        && selector
                            .requirements()
                            .iter()
                            .all(|req| requirement_holds(req, r.label(req.key())))
                });
                assert_eq!(
                    ids(&got),
                    want,
                    "{what}: select_references {ns:?} {text:?} (label index {which:?})"
                );
            }
        }
        checker.check_stats(&what, &store);
        // `validate()` every few operations, at the first moment no read is pending
        // once one is due.
        validate_due |= step % VALIDATE_EVERY == VALIDATE_EVERY - 1;
        if validate_due && pending.is_empty() {
            validate_due = false;
            if let Err(e) = store.validate() {
                panic!("validate() after {what}: {e}");
            }
        }
    }

    // Finish the pending reads, then everything must be idle and valid.
    while let Some(mut p) = pending.pop() {
        let got = drive(&checker, p.fut.as_mut(), &mut pending, &p.what);
        checker.check_pending(&p.what, &p.keys, &got);
    }
    checker.check_stats(&"the end", &store);
    store
        .validate()
        .unwrap_or_else(|e| panic!("validate() at the end: {e}"));
    // Every reference, by its exact keys, through a fresh read.
    for (r, keys) in model.refs.values() {
        let window = checker.window();
        let got = drive(&checker, pin!(store.get(keys)), &mut pending, &"final get");
        let refs = model.select(|k| k == keys.as_slice());
        assert!(refs.contains(r));
        checker.check_read(
            &format!("final get {keys:?}"),
            &window,
            &refs,
            &got.map(Objects::into_vec),
        );
    }
}
