//! Loom models of k8s-store's concurrency protocols; the models are in `tests/`.
//!
//! Run them with
//!
//! ```text
//! RUSTFLAGS="--cfg k8s_store_loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
//!     cargo test -p k8s-store-loom-tests --release
//! ```
//!
//! Without the cfg every model is compiled out and only the plain tests run.
//!
//! This library is the models' shared harness. Apart from `model` (the loom entry point,
//! built only under the cfg) it is free of loom, so its checker is tested without the
//! model checker too (`tests/plain.rs`):
//!
//! - [`Tag`] names one version of an object (namespace, name, uid, resourceVersion) and
//!   builds the `serde_json::Value` the store holds.
//! - [`Model`] is a sequential reference model of a two-key store; [`Op`] is one write,
//!   applied to the model ([`Model::apply`]) or to a real store ([`Op::run`]).
//! - [`History`] is the sequence of states a single writer's ops pass through, and an
//!   [`Observer`] checks one reader thread's reads against it: every read must match
//!   one state, and the states matched by one thread's successive reads must never go
//!   back. That is exactly what linearizability allows for sequential reads racing a
//!   sequence of writes: each read takes effect at one point between the writes, and a
//!   later read of the same thread takes effect at a later point. Reads that know some
//!   writes have returned (through a loom atomic the writer bumps) additionally must not
//!   match a state before them ([`Observer::at_least`]).
//! - [`serial_outcomes`] enumerates what two concurrent writers may produce, and
//!   [`fits`] checks a reader's recorded [`Read`]s against one of those orders.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use k8s_store::MemoryStore;
use serde_json::{Value, json};

/// The store every model uses: two key components.
pub type Store = MemoryStore<Value>;

/// A store with two key components and two shards (the loom default as well).
///
/// # Panics
/// Never: the settings are valid.
pub fn new_store() -> Store {
    MemoryStore::<Value>::builder(2)
        .shards(2)
        .build()
        .expect("valid store settings")
}

/// One version of an object: what the models write and what reads return.
///
/// Derived order is (namespace, name, uid, resourceVersion), so sorting tags sorts them
/// the way the store sorts objects (two tags of different identities never share
/// (namespace, name, uid)).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tag {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`; may be empty (identity is then namespace and name).
    pub uid: String,
    /// `metadata.resourceVersion`, to tell updates of one identity apart.
    pub rv: String,
}

impl Tag {
    /// The object `namespace/name` with `uid` at resourceVersion `rv`.
    pub fn new(namespace: &str, name: &str, uid: &str, rv: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
            rv: rv.into(),
        }
    }

    /// The same identity at another resourceVersion.
    #[must_use]
    pub fn with_rv(&self, rv: &str) -> Self {
        Self {
            rv: rv.into(),
            ..self.clone()
        }
    }

    /// The object the store holds for this tag.
    pub fn object(&self) -> Arc<Value> {
        Arc::new(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "namespace": self.namespace,
                "name": self.name,
                "uid": self.uid,
                "resourceVersion": self.rv,
            },
        }))
    }

    /// The tag of an object the store returned.
    ///
    /// # Panics
    /// If the object lacks the metadata every model object has.
    pub fn of(obj: &Value) -> Self {
        let field = |f: &str| {
            obj["metadata"][f]
                .as_str()
                .unwrap_or_else(|| panic!("object without metadata.{f}"))
                .to_owned()
        };
        Self {
            namespace: field("namespace"),
            name: field("name"),
            uid: field("uid"),
            rv: field("resourceVersion"),
        }
    }

    /// Who the object is: its uid when set, else its namespace and name.
    pub fn identity(&self) -> Identity {
        if self.uid.is_empty() {
            Identity::Name(self.namespace.clone(), self.name.clone())
        } else {
            Identity::Uid(self.uid.clone())
        }
    }
}

impl std::fmt::Display for Tag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}@{}", self.namespace, self.name, self.rv)
    }
}

/// An object's identity, as the store defines it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Identity {
    /// `metadata.uid`.
    Uid(String),
    /// Namespace and name, for objects without a uid.
    Name(String, String),
}

/// A composite key (or a prefix of one).
pub type Keys = Vec<String>;

/// `[a, b]` as owned key components.
pub fn keys(a: &str, b: &str) -> Keys {
    vec![a.to_owned(), b.to_owned()]
}

/// The tags of a read result, in the order the store returned them.
pub fn tags<'a>(objs: impl IntoIterator<Item = &'a Arc<Value>>) -> Vec<Tag> {
    objs.into_iter().map(|o| Tag::of(o)).collect()
}

/// A sequential reference model of a `MemoryStore` with two key components.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    objects: BTreeMap<Identity, (Tag, Keys)>,
}

/// What a write returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `add`, `update` and `replace` return nothing of interest.
    Done,
    /// `remove` returned whether the object was present.
    Removed(bool),
    /// `delete` returned how many objects were under the key.
    Deleted(usize),
    /// `apply(batch)` returned how many upserts it applied and how many stored objects
    /// it removed.
    Applied(usize, usize),
}

/// One write, applied to a [`Model`] or to a real store.
#[derive(Clone, Debug)]
pub enum Op {
    /// `add(obj, keys)`: an upsert by identity, moving the object if its keys changed.
    Add(Tag, Keys),
    /// `remove(obj)`: one object by identity.
    Remove(Tag),
    /// `delete(keys)`: every object under exactly `keys`.
    Delete(Keys),
    /// `replace(items)`: the whole content at once.
    Replace(Vec<(Tag, Keys)>),
    /// `apply(batch)`: upserts (`Some(keys)`) and removals (`None`) in order, as one
    /// write.
    Batch(Vec<(Tag, Option<Keys>)>),
}

impl Op {
    /// Applies the write to `store`.
    ///
    /// # Panics
    /// If the store rejects the write (every model write is well formed).
    pub fn run(&self, store: &Store) -> Outcome {
        match self {
            Op::Add(tag, keys) => {
                store.add(tag.object(), keys).expect("add");
                Outcome::Done
            }
            Op::Remove(tag) => Outcome::Removed(store.remove(&tag.object()).expect("remove")),
            Op::Delete(keys) => Outcome::Deleted(store.delete(keys).expect("delete")),
            Op::Replace(items) => {
                store
                    .replace(items.iter().map(|(t, k)| (t.object(), k.clone())))
                    .expect("replace");
                Outcome::Done
            }
            Op::Batch(changes) => {
                let mut batch = k8s_store::Batch::new();
                for (t, k) in changes {
                    match k {
                        Some(k) => batch.upsert(t.object(), k),
                        None => batch.remove(t.object()),
                    };
                }
                let applied = store.apply(batch).expect("apply");
                Outcome::Applied(applied.upserted, applied.removed)
            }
        }
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Add(t, k) => write!(f, "add {t} at {k:?}"),
            Op::Remove(t) => write!(f, "remove {t}"),
            Op::Delete(k) => write!(f, "delete {k:?}"),
            Op::Batch(changes) => {
                f.write_str("batch [")?;
                for (i, (t, k)) in changes.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    match k {
                        Some(k) => write!(f, "add {t} at {k:?}")?,
                        None => write!(f, "remove {t}")?,
                    }
                }
                f.write_str("]")
            }
            Op::Replace(items) => {
                f.write_str("replace with [")?;
                for (i, (t, k)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t} at {k:?}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl Model {
    /// The state after `ops` from empty.
    pub fn after(ops: &[Op]) -> Self {
        let mut m = Self::default();
        for op in ops {
            m.apply(op);
        }
        m
    }

    /// Applies one write and returns what the store should return for it.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Add(tag, keys) => {
                self.objects
                    .insert(tag.identity(), (tag.clone(), keys.clone()));
                Outcome::Done
            }
            Op::Remove(tag) => Outcome::Removed(self.objects.remove(&tag.identity()).is_some()),
            Op::Delete(keys) => {
                let before = self.objects.len();
                self.objects.retain(|_, (_, k)| k != keys);
                Outcome::Deleted(before - self.objects.len())
            }
            Op::Replace(items) => {
                self.objects.clear();
                for (tag, keys) in items {
                    self.objects
                        .insert(tag.identity(), (tag.clone(), keys.clone()));
                }
                Outcome::Done
            }
            Op::Batch(changes) => {
                let (mut upserted, mut removed) = (0, 0);
                for (tag, keys) in changes {
                    match keys {
                        Some(keys) => {
                            upserted += 1;
                            self.objects
                                .insert(tag.identity(), (tag.clone(), keys.clone()));
                        }
                        None => {
                            removed += usize::from(self.objects.remove(&tag.identity()).is_some())
                        }
                    }
                }
                Outcome::Applied(upserted, removed)
            }
        }
    }

    /// What `get(query)` returns: the objects under exactly `query` (two components)
    /// or under every key that starts with it (one component), sorted.
    pub fn get(&self, query: &[String]) -> Vec<Tag> {
        let mut out: Vec<Tag> = self
            .objects
            .values()
            .filter(|(_, k)| k.len() >= query.len() && k[..query.len()] == *query)
            .map(|(t, _)| t.clone())
            .collect();
        out.sort();
        out
    }

    /// What `list()` returns.
    pub fn list(&self) -> Vec<Tag> {
        let mut out: Vec<Tag> = self.objects.values().map(|(t, _)| t.clone()).collect();
        out.sort();
        out
    }

    /// What `len()` returns.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the model holds nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every full key in use, and every first component in use.
    pub fn queries(&self) -> Vec<Keys> {
        let mut out: Vec<Keys> = Vec::new();
        for (_, k) in self.objects.values() {
            out.push(k.clone());
            out.push(k[..1].to_vec());
        }
        out.sort();
        out.dedup();
        out
    }

    /// Asserts that `store` holds exactly this state: its list, its length, and the
    /// exact and prefix gets of every key in this state and in `extra`.
    ///
    /// # Panics
    /// On the first difference.
    pub fn assert_matches(&self, store: &Store, extra: &[Keys]) {
        assert_eq!(tags(&store.list()), self.list(), "list");
        assert_eq!(store.len(), self.len(), "len");
        let mut queries = self.queries();
        queries.extend(extra.iter().cloned());
        for q in queries {
            assert_eq!(
                tags(&store.get(&q).expect("get")),
                self.get(&q),
                "get {q:?}"
            );
        }
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("{")?;
        for (i, (t, k)) in self.objects.values().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{t} at {k:?}")?;
        }
        f.write_str("}")
    }
}

/// The states one writer's ops pass through: `states[0]` after the setup ops,
/// `states[i]` after the first `i` writes.
#[derive(Clone, Debug)]
pub struct History {
    setup: Vec<Op>,
    writes: Vec<Op>,
    states: Vec<Model>,
    outcomes: Vec<Outcome>,
}

impl History {
    /// The history of `writes` applied after `setup`.
    pub fn new(setup: Vec<Op>, writes: Vec<Op>) -> Self {
        let mut m = Model::after(&setup);
        let mut states = vec![m.clone()];
        let mut outcomes = Vec::new();
        for op in &writes {
            outcomes.push(m.apply(op));
            states.push(m.clone());
        }
        Self {
            setup,
            writes,
            states,
            outcomes,
        }
    }

    /// Applies the setup ops to `store` (before any thread is spawned).
    pub fn set_up(&self, store: &Store) {
        for op in &self.setup {
            op.run(store);
        }
    }

    /// The writes, in order.
    pub fn writes(&self) -> &[Op] {
        &self.writes
    }

    /// State `i`: after the setup and the first `i` writes.
    pub fn state(&self, i: usize) -> &Model {
        &self.states[i]
    }

    /// The state after every write.
    pub fn last(&self) -> &Model {
        self.states.last().expect("at least the initial state")
    }

    /// How many writes there are.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether there are no writes.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Runs write `i` on `store` and asserts it returned what the model says.
    ///
    /// # Panics
    /// If the store's outcome differs from the model's.
    pub fn run(&self, i: usize, store: &Store) {
        let got = self.writes[i].run(store);
        assert_eq!(got, self.outcomes[i], "outcome of `{}`", self.writes[i]);
    }

    fn describe(&self) -> String {
        let mut s = String::new();
        for (i, m) in self.states.iter().enumerate() {
            if i > 0 {
                let _ = writeln!(s, "    -- {}", self.writes[i - 1]);
            }
            let _ = writeln!(s, "  state {i}: {m}");
        }
        s
    }
}

/// One read and what it returned, to be matched against model states.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    /// `get(query)` returned these objects.
    Get(Keys, Vec<Tag>),
    /// `list()` returned these objects.
    List(Vec<Tag>),
    /// `len()` returned this.
    Len(usize),
}

impl Read {
    /// Runs `store.get(query)`.
    ///
    /// # Panics
    /// If the store rejects the query (every model query is well formed).
    pub fn get(store: &Store, query: &[String]) -> Self {
        Read::Get(query.to_vec(), tags(&store.get(query).expect("get")))
    }

    /// Runs `store.list()`, checks that the snapshot agrees with itself, and returns
    /// the snapshot as well.
    ///
    /// # Panics
    /// If the snapshot's length, emptiness or order disagree with its iteration.
    pub fn list(store: &Store) -> (Self, k8s_store::Snapshot<Value>) {
        let snapshot = store.list();
        let got = tags(&snapshot);
        assert_eq!(snapshot.len(), got.len(), "snapshot len vs its iteration");
        assert_eq!(snapshot.is_empty(), got.is_empty(), "snapshot is_empty");
        assert!(got.is_sorted(), "snapshot out of order");
        (Read::List(got), snapshot)
    }

    /// Runs `store.len()`.
    pub fn len(store: &Store) -> Self {
        Read::Len(store.len())
    }

    /// Whether this read could have been made in state `m`.
    pub fn matches(&self, m: &Model) -> bool {
        match self {
            Read::Get(q, got) => m.get(q) == *got,
            Read::List(got) => m.list() == *got,
            Read::Len(got) => m.len() == *got,
        }
    }

    /// The objects the read returned (none for `len`).
    pub fn tags(&self) -> &[Tag] {
        match self {
            Read::Get(_, got) | Read::List(got) => got,
            Read::Len(_) => &[],
        }
    }
}

impl std::fmt::Display for Read {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Read::Get(q, got) => write!(f, "get {q:?} -> {}", show(got)),
            Read::List(got) => write!(f, "list -> {}", show(got)),
            Read::Len(got) => write!(f, "len -> {got}"),
        }
    }
}

/// The first state at or after `from` that `read` matches.
fn next_match(read: &Read, states: &[Model], from: usize) -> Option<usize> {
    (from..states.len()).find(|&i| read.matches(&states[i]))
}

/// Whether one thread's sequential `reads` fit the sequence of `states`: each read
/// matches a state at or after the one the previous read matched.
pub fn fits(reads: &[Read], states: &[Model]) -> bool {
    let mut at = 0;
    reads.iter().all(|r| match next_match(r, states, at) {
        Some(i) => {
            at = i;
            true
        }
        None => false,
    })
}

/// Checks one thread's sequential reads against a [`History`] as they are made.
///
/// Each read must match some state at or after the state the previous read matched
/// (greedily the earliest, which leaves the most room for the reads after it), and at
/// or after any lower bound set by [`at_least`](Self::at_least).
#[derive(Debug)]
pub struct Observer<'h> {
    history: &'h History,
    who: &'static str,
    at: usize,
    log: Vec<String>,
}

impl<'h> Observer<'h> {
    /// An observer that has seen nothing yet.
    pub fn new(history: &'h History, who: &'static str) -> Self {
        Self {
            history,
            who,
            at: 0,
            log: Vec::new(),
        }
    }

    /// The state the last read matched (its earliest possible one).
    pub fn at(&self) -> usize {
        self.at
    }

    /// Records that the first `writes` writes have returned (the reader learned it
    /// through a synchronising atomic): later reads must see at least them.
    pub fn at_least(&mut self, writes: usize) {
        self.log.push(format!("knows {writes} write(s) returned"));
        self.at = self.at.max(writes);
    }

    /// Checks one read.
    ///
    /// # Panics
    /// If no state at or after the current one matches: the read contradicts
    /// linearizability.
    pub fn check(&mut self, read: &Read) {
        let found = next_match(read, &self.history.states, self.at);
        self.log.push(read.to_string());
        match found {
            Some(i) => self.at = i,
            None => panic!(
                "{}: a read matches no state at or after state {}; not linearizable.\n\
                 reads:\n  {}\nhistory:\n{}",
                self.who,
                self.at,
                self.log.join("\n  "),
                self.history.describe()
            ),
        }
    }

    /// Checks a `get(query)` that returned `got`.
    ///
    /// # Panics
    /// See [`check`](Self::check).
    pub fn check_get(&mut self, query: &[String], got: &[Tag]) {
        self.check(&Read::Get(query.to_vec(), got.to_vec()));
    }

    /// Checks a `list()` that returned `got`.
    ///
    /// # Panics
    /// See [`check`](Self::check).
    pub fn check_list(&mut self, got: &[Tag]) {
        self.check(&Read::List(got.to_vec()));
    }

    /// Checks a `len()` that returned `got`.
    ///
    /// # Panics
    /// See [`check`](Self::check).
    pub fn check_len(&mut self, got: usize) {
        self.check(&Read::Len(got));
    }

    /// Runs and checks `store.get(query)`.
    ///
    /// # Panics
    /// See [`check`](Self::check).
    pub fn get(&mut self, store: &Store, query: &[String]) -> Vec<Tag> {
        let read = Read::get(store, query);
        self.check(&read);
        read.tags().to_vec()
    }

    /// Runs and checks `store.list()` (see [`Read::list`]).
    ///
    /// # Panics
    /// See [`check`](Self::check).
    pub fn list(&mut self, store: &Store) -> (k8s_store::Snapshot<Value>, Vec<Tag>) {
        let (read, snapshot) = Read::list(store);
        self.check(&read);
        (snapshot, read.tags().to_vec())
    }

    /// Runs and checks `store.len()`.
    ///
    /// # Panics
    /// See [`check`](Self::check).
    pub fn len(&mut self, store: &Store) -> usize {
        let got = store.len();
        self.check_len(got);
        got
    }
}

fn show(tags: &[Tag]) -> String {
    let items: Vec<String> = tags.iter().map(ToString::to_string).collect();
    format!("[{}]", items.join(", "))
}

/// One serial interleaving of two writers' ops: the states it passes through and what
/// each thread's ops return.
#[derive(Clone, Debug)]
pub struct Serial {
    /// `states[0]` is the initial state, then one state per op.
    pub states: Vec<Model>,
    /// What writer a's ops return, in its order.
    pub a: Vec<Outcome>,
    /// What writer b's ops return, in its order.
    pub b: Vec<Outcome>,
}

impl Serial {
    /// The final state.
    pub fn last(&self) -> &Model {
        self.states.last().expect("at least the initial state")
    }
}

/// Every serial interleaving of `a` and `b` (each op atomic, each thread's ops in
/// order) applied after `initial`: what two concurrent writers may produce.
pub fn serial_outcomes(initial: &Model, a: &[Op], b: &[Op]) -> Vec<Serial> {
    fn go(a: &[Op], b: &[Op], cur: &mut Serial, out: &mut Vec<Serial>) {
        if a.is_empty() && b.is_empty() {
            out.push(cur.clone());
            return;
        }
        if let Some((op, rest)) = a.split_first() {
            let mut m = cur.last().clone();
            cur.a.push(m.apply(op));
            cur.states.push(m);
            go(rest, b, cur, out);
            cur.states.pop();
            cur.a.pop();
        }
        if let Some((op, rest)) = b.split_first() {
            let mut m = cur.last().clone();
            cur.b.push(m.apply(op));
            cur.states.push(m);
            go(a, rest, cur, out);
            cur.states.pop();
            cur.b.pop();
        }
    }
    let mut cur = Serial {
        states: vec![initial.clone()],
        a: Vec::new(),
        b: Vec::new(),
    };
    let mut out = Vec::new();
    go(a, b, &mut cur, &mut out);
    out
}

/// Runs `f` under loom with a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` sets
/// one (the documented run uses 2; every model also passes with 5 in seconds), and
/// logs how many executions loom explored.
#[cfg(k8s_store_loom)]
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};

    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(3);
    }
    // A plain (not loom) counter: how many executions loom explored, for the log.
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let started = std::time::Instant::now();
    b.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!(
        "{}: {} executions explored in {:.2?} (preemption bound {:?})",
        std::thread::current().name().unwrap_or("model"),
        runs.load(Ordering::Relaxed),
        started.elapsed(),
        b.preemption_bound
    );
}

/// Runs every write of `h` on `store` in order, and after each stores into `done` how
/// many have returned (`Release`: a reader that loads `i + 1` knows write `i` has
/// returned, which the [`Observer`]'s `at_least` checks).
#[cfg(k8s_store_loom)]
pub fn write_all(h: &History, store: &Store, done: &loom::sync::atomic::AtomicUsize) {
    for i in 0..h.len() {
        h.run(i, store);
        done.store(i + 1, std::sync::atomic::Ordering::Release);
    }
}

/// A loom thread that runs [`write_all`]: the writer of most models.
#[cfg(k8s_store_loom)]
pub fn spawn_writer(
    h: &Arc<History>,
    store: &Arc<Store>,
    done: &Arc<loom::sync::atomic::AtomicUsize>,
) -> loom::thread::JoinHandle<()> {
    let (h, store, done) = (Arc::clone(h), Arc::clone(store), Arc::clone(done));
    loom::thread::spawn(move || write_all(&h, &store, &done))
}
