#![cfg(k8s_store_loom)]
//! A write that moves objects between values of a secondary index racing lookups on
//! that index, on a second index and on the primary key (issue 15): no reader sees an
//! object under neither value or under both, or an old version after a new one. And
//! writes that keep every key, which change only the identity's version records (the
//! groups hold members, see `k8s_store`'s `index::latest`): each read is of one
//! state's versions. And updates that change a label but keep every other key, so
//! the member, read by selectors answered from the label index, which pass over an
//! object by the label marks its member gives with the version a reader takes: each
//! version must come with its own marks.
//!
//! What the store promises (the crate's "Guarantees", [`MemoryStore`]'s "Concurrency",
//! [`MemoryStoreBuilder::index`], `get_by` and `select`): writes, a batch included, are
//! linearizable; a write shows in every index at once, `get_by` is as consistent with
//! `get` as two gets are, and `select` reads one published state as `list` does. So
//! each read of one reader thread, whichever index, key or selector it asks, takes
//! effect at one point between the writes, and a later read of the
//! same thread at the same point or a later one. The [`Observer`] below checks exactly
//! that against the states the writer passes through (with one write, two: before and
//! after it): every read must return what some state at or after the one the previous
//! read matched returns, and a read made after the reader learned that the write
//! returned must match the state after it. For a move of `x` from `app=a` to `app=b`:
//!
//! - `by_app=a` then `by_app=b`: "gone from a" then "not yet in b" is forbidden (the
//!   object in neither value);
//! - `by_app=b` then `by_app=a`: "in b" then "still in a" is forbidden (in both);
//! - any read that returned the new version (from either index or the primary key)
//!   then any read that returns the old one, or misses the new one, is forbidden;
//! - one read returning part of a batch (one of two moved objects, or one at its new
//!   version beside the other at its old one) fits no state and is forbidden;
//! - "in a" then "in b", and "not in b" then "gone from a", are allowed (the write took
//!   effect between the two reads).
//!
//! Every model reads in one order and in the reverse order, so each ordered pair of
//! reads is checked both ways.
//!
//! The store has two key components, `[namespace, name]`, two shards, and two indexes:
//! `by_app` (`metadata.labels['app']`, one component) and `by_ns_app`
//! (`metadata.namespace`, `metadata.labels['app']`), read exactly (its depth-2 groups)
//! and by the prefix `["ns"]` (its depth-1 groups, where a move replaces the object in
//! place). The primary is read by exact gets (under the shard lock, not on the
//! published state as `get_by` is) and by a prefix get. Shards as computed in
//! `moves.rs`: `["ns", "a"]` and `["ns", "b"]` are in shard 0, `["ns", "new"]` and
//! `["ns", "shared"]` in shard 1.
//!
//! The label models (`a_label_change_that_keeps_the_member_is_seen_with_its_marks`,
//! `two_label_changes_are_seen_with_each_versions_marks`) use the same store with the
//! label index on every label ([`LabelIndex::All`]), and give their objects a second
//! label, `tier`. The other models' objects have `app` alone and their store no label
//! index: they explore the executions they did before the label models.
//!
//! # Seeded bugs
//!
//! Each model was run against bugs seeded in `src/index/memory.rs`,
//! `src/index/latest.rs` and `src/sync/mod.rs` (never committed) with
//! `LOOM_MAX_PREEMPTIONS` 2 and 3 (6 to 9: 3; 10 to 12: 0 to 3, and 10 up to 5), and
//! failed on
//! the ones its write goes through (with 1, only `two_readers_see_one_move`, which has
//! a thread more, finds some). The two twins
//! marked `#[should_panic]` keep a version of the first two made from outside the
//! library: the write split in parts, each published on its own.
//!
//! 1. `upsert` publishing in two steps: first a state with the object taken out of
//!    every secondary index (`secondary_remove`), then the write. The final state and
//!    `validate()` are right; only a racing reader sees it. Caught by
//!    `a_move_is_seen_in_exactly_one_value` (`by_ns_app ["ns"]` empty after reads
//!    that showed `x@1`), `a_move_of_both_keys_is_seen_in_one_place` and
//!    `two_readers_see_one_move` (`by_app ["a"]` empty, then `by_app ["b"]` empty: in
//!    neither value). Twin: `a_move_made_as_remove_then_add_is_caught`.
//! 2. `apply` publishing the state after its first change, then the rest. Caught by
//!    `a_batch_is_seen_whole_or_not_at_all` (`get ["ns"]` returned `x@2` beside
//!    `y@1`). Twin: `a_batch_applied_change_by_change_is_caught`.
//! 3. `upsert` publishing before it takes the shard lock (a write under the same
//!    primary key): the index shows the new version while the exact-key bucket still
//!    holds the old one. Caught by `a_move_is_seen_in_exactly_one_value` and
//!    `two_readers_see_one_move` (`by_app ["b"]` showed `x@2`, then the exact
//!    `get ["ns", "a"]` `x@1`).
//! 4. The same for a write that changes shard, before it takes both locks. Caught by
//!    `a_move_of_both_keys_is_seen_in_one_place` (as 3, through `by_app ["b"]` and
//!    `get ["ns", "a"]`).
//! 5. `apply` publishing before it takes the shard locks. Caught by
//!    `a_batch_is_seen_whole_or_not_at_all` (`by_ns_app ["ns"]` showed both objects at
//!    resourceVersion 2, then `get ["ns", "new"]` `y@1`).
//! 6. `secondary_upsert` skipping the removal from the old value's groups. Every
//!    model with a move fails: the final `get_by` of the old value still shows the
//!    object (the groups hold its identity's member, which gives its new version), and
//!    `two_readers_see_one_move` reports a read that fits no state.
//! 7. `Member::at` taking the current version whatever the reader's state. Every
//!    model but the twins fails: a reader of the state before an update is given the
//!    new version by `get_by` and then the old one by `get`.
//! 8. `Member::at` walking back one record at most. Caught by
//!    `two_updates_that_keep_their_keys_are_seen_in_order` (`by_ns_app ["ns"]` showed
//!    `x@2` beside `y@1`).
//! 9. `Versioned::read` loading `at` the second time with `Relaxed` (a real bug of
//!    the first version, found by this model): a reader that saw the version change
//!    under it read a record older than its state's, which the generation of the
//!    state before had freed. `two_updates_that_keep_their_keys_are_seen_in_order`
//!    ends in a segmentation fault.
//! 10. `Versioned::set` storing `marks` after the final store of `at` (the new stamp)
//!     instead of before it. Not caught, by either label model, up to 5 preemptions,
//!     nor by `a_label_change_that_keeps_the_member_is_seen_with_its_marks` with no
//!     bound: no reader can take a version with marks of another write. A reader that
//!     loads the new `marks` synchronises with their store, which follows the store of
//!     the new stamp, so its second load of `at` sees that stamp, not the one its first
//!     load saw, and it reads the record, as it does when it sees the new `version`
//!     after `WRITING`. Every field stored after some store of `at` is guarded by it;
//!     what breaks the check is a field stored before `at` is set to `WRITING`: seeded
//!     as `marks` stored first, it is caught by both label models (2 and 3
//!     preemptions, not 0 or 1), with the reads of 11.
//! 11. `Member::at`'s walk of the records taking the current marks with a record's
//!     version. Caught (2 and 3 preemptions, not 0 or 1) by
//!     `a_label_change_that_keeps_the_member_is_seen_with_its_marks`: a reader of the
//!     state before the update, given `x@1` with the marks of `x@2` (which lack one
//!     of the two bits of `tier=1`), passes over it, then reads what the write has not
//!     yet published (`select "app=a,tier=2"` empty, `select "app=a,tier=1"` empty,
//!     then `get ["ns", "a"]` `x@1`; reversed, `x@1`, empty, then empty again); and by
//!     `two_label_changes_are_seen_with_each_versions_marks` (`select "app=a,tier=1"`
//!     returned `y@1` without `x@1`). A variant that takes the current marks only past
//!     the first record is caught by the second alone (with 3: a reader of the first
//!     state walks two records back to `x@1`).
//! 12. `Member::set` keeping the new version's marks in the record of the version it
//!     replaces. Caught by both label models as 11, with the same reads.
//!
//! [`MemoryStore`]: k8s_store::MemoryStore
//! [`MemoryStoreBuilder::index`]: k8s_store::MemoryStoreBuilder::index
//! [`LabelIndex::All`]: k8s_store::LabelIndex::All

use std::sync::Arc;

use k8s_store::{
    Batch, Indexer, LabelIndex, MemoryReader, MemoryStore, MemoryStoreBuilder, Selector,
};
use k8s_store_loom_tests::{Keys, Tag, keys, model, tags};
use loom::sync::atomic::{AtomicUsize, Ordering};
use serde_json::{Value, json};

/// One version of an object: who it is, its primary key, its `app` label and its
/// `tier` label if it has one (only the label models' objects do).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Version {
    tag: Tag,
    key: Keys,
    app: &'static str,
    tier: Option<&'static str>,
}

impl Version {
    /// `ns/name` under the primary key `["ns", name]`.
    fn new(name: &str, uid: &str, rv: &str, app: &'static str) -> Self {
        Self {
            tag: Tag::new("ns", name, uid, rv),
            key: keys("ns", name),
            app,
            tier: None,
        }
    }

    /// The same identity under the same primary key at resourceVersion `rv`, labelled
    /// `app` (and `tier` as it was).
    fn moved(&self, rv: &str, app: &'static str) -> Self {
        Self {
            tag: self.tag.with_rv(rv),
            key: self.key.clone(),
            app,
            tier: self.tier,
        }
    }

    /// The same, labelled `tier=tier` too.
    fn tier(self, tier: &'static str) -> Self {
        Self {
            tier: Some(tier),
            ..self
        }
    }

    /// The value of its label `key`, if it has one.
    fn label(&self, key: &str) -> Option<&'static str> {
        match key {
            "app" => Some(self.app),
            "tier" => self.tier,
            _ => None,
        }
    }

    /// The same, under the primary key `key`.
    fn at(self, key: Keys) -> Self {
        Self { key, ..self }
    }

    /// Its keys in a query's index (the primary key for [`Query::Get`]).
    fn keys_in(&self, index: Option<&str>) -> Keys {
        match index {
            None => self.key.clone(),
            Some("by_app") => vec![self.app.to_owned()],
            Some("by_ns_app") => keys(&self.tag.namespace, self.app),
            Some(other) => unreachable!("no index {other}"),
        }
    }

    fn object(&self) -> Arc<Value> {
        let labels = match self.tier {
            None => json!({ "app": self.app }),
            Some(tier) => json!({ "app": self.app, "tier": tier }),
        };
        Arc::new(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "namespace": self.tag.namespace,
                "name": self.tag.name,
                "uid": self.tag.uid,
                "resourceVersion": self.tag.rv,
                "labels": labels,
            },
        }))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at {:?} app={}", self.tag, self.key, self.app)?;
        match self.tier {
            Some(tier) => write!(f, " tier={tier}"),
            None => Ok(()),
        }
    }
}

/// What the store holds at one point: one version per identity.
type State = Vec<Version>;

/// One lookup.
#[derive(Clone, Debug)]
enum Query {
    /// `get(keys)` on the primary key (exact with two components, prefix with one).
    Get(Keys),
    /// `get_by(index, keys)`.
    By(&'static str, Keys),
    /// `select` of a selector of equality terms (`app=a,tier=1`).
    Select(&'static str),
}

impl Query {
    fn by(index: &'static str, keys: &[&str]) -> Self {
        Query::By(index, keys.iter().map(|&k| k.to_owned()).collect())
    }

    fn get(keys: &[&str]) -> Self {
        Query::Get(keys.iter().map(|&k| k.to_owned()).collect())
    }

    fn run(&self, r: &MemoryReader<Value>) -> Vec<Tag> {
        match self {
            Query::Get(q) => tags(&r.get(q).expect("get")),
            Query::By(index, q) => tags(&r.get_by(index, q).expect("get_by")),
            Query::Select(s) => tags(&r.select(&Selector::parse(s).expect("selector"))),
        }
    }

    /// What the query returns in `state`: every object whose keys in the index start
    /// with the query's, or whose labels meet each of the selector's terms, sorted.
    fn answer(&self, state: &State) -> Vec<Tag> {
        let holds = |v: &Version| match self {
            Query::Get(q) => v.keys_in(None).starts_with(q),
            Query::By(index, q) => v.keys_in(Some(index)).starts_with(q),
            Query::Select(s) => s.split(',').all(|term| {
                let (key, value) = term.split_once('=').expect("an equality term");
                v.label(key) == Some(value)
            }),
        };
        let mut out: Vec<Tag> = state
            .iter()
            .filter(|v| holds(v))
            .map(|v| v.tag.clone())
            .collect();
        out.sort();
        out
    }
}

impl std::fmt::Display for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Query::Get(q) => write!(f, "get {q:?}"),
            Query::By(index, q) => write!(f, "get_by {index} {q:?}"),
            Query::Select(s) => write!(f, "select {s:?}"),
        }
    }
}

/// Checks one reader thread's sequential reads against the states a writer passes
/// through (`states[i]` after its first `i` writes), as `k8s_store_loom_tests`'s
/// `Observer` does for the primary key alone: each read must match a state at or after
/// the one the previous read matched (greedily the earliest, which leaves the most room
/// for the reads after it) and at or after any lower bound from [`at_least`].
///
/// [`at_least`]: Self::at_least
struct Observer<'s> {
    states: &'s [State],
    who: &'static str,
    at: usize,
    log: Vec<String>,
}

impl<'s> Observer<'s> {
    fn new(states: &'s [State], who: &'static str) -> Self {
        Self {
            states,
            who,
            at: 0,
            log: Vec::new(),
        }
    }

    /// Records that the first `writes` writes have returned (learned through an
    /// atomic the writer bumps): later reads must see at least them.
    fn at_least(&mut self, writes: usize) {
        self.log.push(format!("knows {writes} write(s) returned"));
        self.at = self.at.max(writes);
    }

    /// Runs `query` on `r` and checks what it returned.
    ///
    /// # Panics
    /// If no state at or after the current one returns the same: the read contradicts
    /// linearizability.
    fn read(&mut self, r: &MemoryReader<Value>, query: &Query) {
        let got = query.run(r);
        let shown: Vec<String> = got.iter().map(ToString::to_string).collect();
        self.log.push(format!("{query} -> [{}]", shown.join(", ")));
        match (self.at..self.states.len()).find(|&i| query.answer(&self.states[i]) == got) {
            Some(i) => self.at = i,
            None => panic!(
                "{}: a read matches no state at or after state {}; not linearizable.\n\
                 reads:\n  {}\nstates:\n{}",
                self.who,
                self.at,
                self.log.join("\n  "),
                describe(self.states)
            ),
        }
    }
}

fn describe(states: &[State]) -> String {
    let mut s = String::new();
    for (i, state) in states.iter().enumerate() {
        let items: Vec<String> = state.iter().map(ToString::to_string).collect();
        s.push_str(&format!("  state {i}: {{{}}}\n", items.join(", ")));
    }
    s
}

/// Makes the store a model starts from, holding a state.
type MakeStore = fn(&State) -> MemoryStore<Value>;

/// The settings of every model's store: two key components, two shards, the indexes
/// `by_app` and `by_ns_app`.
fn builder() -> MemoryStoreBuilder<Value> {
    MemoryStore::<Value>::builder(2)
        .shards(2)
        .index(
            "by_app",
            Indexer::new(["metadata.labels['app']"]).expect("path"),
        )
        .index(
            "by_ns_app",
            Indexer::new(["metadata.namespace", "metadata.labels['app']"]).expect("path"),
        )
}

/// A store of two key components and two shards with the indexes `by_app` and
/// `by_ns_app`, holding `state`.
fn store_with(state: &State) -> MemoryStore<Value> {
    filled(builder(), state)
}

/// The same with the label index on every label (the label models' store).
fn labelled_store_with(state: &State) -> MemoryStore<Value> {
    filled(builder().label_index(LabelIndex::All), state)
}

/// The store `builder` builds, holding `state`.
fn filled(builder: MemoryStoreBuilder<Value>, state: &State) -> MemoryStore<Value> {
    let store = builder.build().expect("valid store settings");
    for v in state {
        store.add(v.object(), &v.key).expect("add");
    }
    store
}

/// Asserts that the store answers every query as `state` does, and is valid.
fn assert_holds(store: &MemoryStore<Value>, state: &State, queries: &[Query]) {
    let r = store.reader();
    for q in queries {
        assert_eq!(q.run(&r), q.answer(state), "{q} after the writes");
    }
    store.validate().expect("validate");
}

/// Runs `reads` in order, learning halfway what the writer has finished.
fn run_reads(o: &mut Observer<'_>, r: &MemoryReader<Value>, done: &AtomicUsize, reads: &[Query]) {
    for (i, q) in reads.iter().enumerate() {
        if i == reads.len() / 2 {
            // Whatever the writer has finished by now must be visible.
            o.at_least(done.load(Ordering::Acquire));
        }
        o.read(r, q);
    }
}

fn reversed(reads: &[Query]) -> Vec<Query> {
    reads.iter().rev().cloned().collect()
}

/// How the writer makes each write.
#[derive(Clone, Copy, Debug)]
enum Write {
    /// `update` of each moved object (one) or `apply` of a batch (several): as the
    /// store is meant to be used.
    AsOne,
    /// One batch that upserts each changed object twice: first a version no state
    /// holds (resourceVersion `mid`), then the one of the next state. A reader must
    /// never see the first.
    Twice,
    /// The seeded bug, made from outside: the one write split in parts, each published
    /// on its own, while the states still call it one write.
    Split,
}

/// One model: a writer takes the store from `before` to `after` (the objects of
/// `after` that differ from `before`, in one `update` or one batch), while one reader
/// per element of `readers` reads those queries in that order.
fn check(before: State, after: State, readers: Vec<(&'static str, Vec<Query>)>, write: Write) {
    check_writes(vec![before, after], readers, write);
}

/// [`check`] for a writer that takes the store through each of `states` in turn, one
/// write per step.
fn check_writes(states: Vec<State>, readers: Vec<(&'static str, Vec<Query>)>, write: Write) {
    check_writes_in(store_with, states, readers, write);
}

/// [`check_writes`] on the store `make` makes.
fn check_writes_in(
    make: MakeStore,
    states: Vec<State>,
    readers: Vec<(&'static str, Vec<Query>)>,
    write: Write,
) {
    let states = Arc::new(states);
    let readers = Arc::new(readers);
    model(move || {
        let store = make(&states[0]);
        let reader = store.reader();
        let done = Arc::new(AtomicUsize::new(0));

        let writer = {
            let (states, done) = (Arc::clone(&states), Arc::clone(&done));
            loom::thread::spawn(move || {
                for (step, pair) in states.windows(2).enumerate() {
                    write_step(&store, &pair[0], &pair[1], write);
                    done.store(step + 1, Ordering::Release);
                }
                store
            })
        };

        let others: Vec<_> = (1..readers.len())
            .map(|i| {
                let (states, readers, done) =
                    (Arc::clone(&states), Arc::clone(&readers), Arc::clone(&done));
                let reader = reader.clone();
                loom::thread::spawn(move || {
                    let (who, reads) = &readers[i];
                    run_reads(&mut Observer::new(&states, who), &reader, &done, reads);
                })
            })
            .collect();
        let (who, reads) = &readers[0];
        run_reads(&mut Observer::new(&states, who), &reader, &done, reads);

        let store = writer.join().expect("writer");
        for r in others {
            r.join().expect("reader");
        }
        let all: Vec<Query> = readers.iter().flat_map(|(_, q)| q.clone()).collect();
        assert_holds(&store, states.last().expect("states"), &all);
    });
}

/// One write, taking `store` from `from` to `to`: the objects of `to` that differ from
/// `from`, as `write` says.
fn write_step(store: &MemoryStore<Value>, from: &State, to: &State, write: Write) {
    let changed: Vec<&Version> = to.iter().filter(|v| !from.contains(v)).collect();
    match (write, &changed[..]) {
        (Write::AsOne, [v]) => store.update(v.object(), &v.key).expect("update"),
        (Write::AsOne, _) => {
            let mut batch = Batch::new();
            for v in &changed {
                batch.upsert(v.object(), &v.key);
            }
            let applied = store.apply(batch).expect("apply");
            assert_eq!((applied.upserted, applied.removed), (changed.len(), 0));
        }
        (Write::Twice, _) => {
            let mut batch = Batch::new();
            for v in &changed {
                let mid = Version {
                    tag: v.tag.with_rv("mid"),
                    ..(*v).clone()
                };
                batch.upsert(mid.object(), &mid.key);
                batch.upsert(v.object(), &v.key);
            }
            let applied = store.apply(batch).expect("apply");
            assert_eq!(applied.upserted, 2 * changed.len());
        }
        (Write::Split, [v]) => {
            // Out of every index, then back under its new values.
            let old = from.iter().find(|o| o.tag.uid == v.tag.uid);
            store.remove(&old.expect("moved").object()).expect("remove");
            store.add(v.object(), &v.key).expect("add");
        }
        (Write::Split, _) => {
            for v in &changed {
                store.update(v.object(), &v.key).expect("update");
            }
        }
    }
}

/// `x` (`ns/a`, shard 0), labelled `app=a` at resourceVersion 1.
fn x() -> Version {
    Version::new("a", "ux", "1", "a")
}

/// `y` (`ns/new`, shard 1), at resourceVersion 1 labelled `app`.
fn y(app: &'static str) -> Version {
    Version::new("new", "uy", "1", app)
}

/// Bystanders that stay: `ns/b` under `app=a` (shard 0) and `ns/shared` under `app=b`
/// (shard 1), so the move leaves and joins groups that stay, instead of emptying one
/// and creating the other.
fn bystanders() -> State {
    vec![
        Version::new("b", "uz", "1", "a"),
        Version::new("shared", "uw", "1", "b"),
    ]
}

/// The reads of a move of `x`: both values in both indexes, the primary key exactly
/// (under the shard lock) and by prefix, and `by_ns_app` by prefix (where the move is
/// a replacement in place). `a` is read before `b` in each index.
fn move_reads() -> Vec<Query> {
    vec![
        Query::by("by_app", &["a"]),
        Query::by("by_app", &["b"]),
        Query::get(&["ns", "a"]),
        Query::by("by_ns_app", &["ns", "a"]),
        Query::by("by_ns_app", &["ns", "b"]),
        Query::by("by_ns_app", &["ns"]),
        Query::get(&["ns"]),
    ]
}

/// `x` moved from `app=a` to `app=b` by an update under the same primary key.
fn one_move(with_bystanders: bool) -> (State, State) {
    let extra = if with_bystanders {
        bystanders()
    } else {
        Vec::new()
    };
    let before = [vec![x()], extra.clone()].concat();
    let after = [vec![x().moved("2", "b")], extra].concat();
    (before, after)
}

#[test]
fn a_move_is_seen_in_exactly_one_value() {
    for with_bystanders in [false, true] {
        for reads in [move_reads(), reversed(&move_reads())] {
            let (before, after) = one_move(with_bystanders);
            check(before, after, vec![("reader", reads)], Write::AsOne);
        }
    }
}

/// Two readers at once, in opposite orders.
#[test]
fn two_readers_see_one_move() {
    let (before, after) = one_move(false);
    let reads = vec![
        Query::by("by_app", &["a"]),
        Query::by("by_app", &["b"]),
        Query::get(&["ns", "a"]),
        Query::by("by_ns_app", &["ns", "b"]),
    ];
    let readers = vec![("reader 1", reversed(&reads)), ("reader 2", reads)];
    check(before, after, readers, Write::AsOne);
}

/// A move in the primary key and the index at once: `x` from `["ns", "a"]` (shard 0)
/// to `["other", "a"]` (shard 1), so the write takes both shards' locks, and from
/// `app=a` to `app=b`.
#[test]
fn a_move_of_both_keys_is_seen_in_one_place() {
    let before = vec![x()];
    let after = vec![x().moved("2", "b").at(keys("other", "a"))];
    let reads = vec![
        Query::by("by_app", &["a"]),
        Query::get(&["other", "a"]),
        Query::by("by_app", &["b"]),
        Query::get(&["ns", "a"]),
        Query::by("by_ns_app", &["ns"]),
        Query::get(&["other"]),
    ];
    for reads in [reads.clone(), reversed(&reads)] {
        check(
            before.clone(),
            after.clone(),
            vec![("reader", reads)],
            Write::AsOne,
        );
    }
}

#[test]
#[should_panic(expected = "not linearizable")]
fn a_move_made_as_remove_then_add_is_caught() {
    let (before, after) = one_move(false);
    check(before, after, vec![("reader", move_reads())], Write::Split);
}

/// The reads of a batch moving `x` and `y`: both values of `by_app`, both objects by
/// primary key (one per shard), and everything under `ns` by primary prefix and in
/// `by_ns_app`.
fn batch_reads() -> Vec<Query> {
    vec![
        Query::by("by_app", &["a"]),
        Query::get(&["ns", "a"]),
        Query::by("by_app", &["b"]),
        Query::by("by_ns_app", &["ns"]),
        Query::get(&["ns", "new"]),
        Query::get(&["ns"]),
    ]
}

/// A batch moving `x` (shard 0) and `y` (shard 1): from `app=a` both to `app=b`
/// (`swap` false), or each to the other's value (`swap`: `x` to `b`, `y` from `b` to
/// `a`, so that each value holds one object before and after, and a torn read shows
/// both or neither in one lookup).
fn two_moves(swap: bool) -> (State, State) {
    if swap {
        (
            vec![x(), y("b")],
            vec![x().moved("2", "b"), y("b").moved("2", "a")],
        )
    } else {
        (
            vec![x(), y("a")],
            vec![x().moved("2", "b"), y("a").moved("2", "b")],
        )
    }
}

#[test]
fn a_batch_is_seen_whole_or_not_at_all() {
    for swap in [false, true] {
        for reads in [batch_reads(), reversed(&batch_reads())] {
            let (before, after) = two_moves(swap);
            check(before, after, vec![("reader", reads)], Write::AsOne);
        }
    }
}

#[test]
#[should_panic(expected = "not linearizable")]
fn a_batch_applied_change_by_change_is_caught() {
    let (before, after) = two_moves(false);
    check(before, after, vec![("reader", batch_reads())], Write::Split);
}

/// The reads of updates that leave every key as it was: the objects' one value in both
/// indexes (where the groups hold the identities' members, and a reader picks the
/// version of the state it read), the primary key exactly and by prefix.
fn same_keys_reads() -> Vec<Query> {
    vec![
        Query::by("by_app", &["a"]),
        Query::get(&["ns", "a"]),
        Query::by("by_ns_app", &["ns"]),
        Query::get(&["ns"]),
        Query::by("by_ns_app", &["ns", "a"]),
    ]
}

/// An update of `x` that changes no key (resourceVersion 1 to 2, still `app=a`) touches
/// no group of the secondary indexes: readers of the state before it must still get
/// `x@1` from them, readers after it `x@2`. Also as a batch that writes `x` twice,
/// whose first version no reader may see.
#[test]
fn an_update_that_keeps_its_keys_is_seen_at_one_version() {
    for write in [Write::AsOne, Write::Twice] {
        for reads in [same_keys_reads(), reversed(&same_keys_reads())] {
            let before = [vec![x()], bystanders()].concat();
            let after = [vec![x().moved("2", "a")], bystanders()].concat();
            check(before, after, vec![("reader", reads)], write);
        }
    }
}

/// Two writes while a reader reads the state before both: a batch updating `x` and
/// `y` (both `app=a`, keys unchanged), then an update of `x` alone. A reader of the
/// first state must walk `x`'s records back two versions, and `y`'s one, to the
/// versions of its state: a read showing `x@2` beside `y@1` fits no state.
#[test]
fn two_updates_that_keep_their_keys_are_seen_in_order() {
    let reads = vec![Query::by("by_ns_app", &["ns"]), Query::get(&["ns"])];
    for reads in [reads.clone(), reversed(&reads)] {
        let states = vec![
            vec![x(), y("a")],
            vec![x().moved("2", "a"), y("a").moved("2", "a")],
            vec![x().moved("3", "a"), y("a").moved("2", "a")],
        ];
        check_writes(states, vec![("reader", reads)], Write::AsOne);
    }
}

/// `x` labelled `app=a` and `tier=tier` at resourceVersion `rv`. The label models use
/// the tiers 1, 2 and 3: the marks of `app=a` with one of them lack a bit of each of
/// the other two (worked out from `marks_of` and `mark`), or a version given the
/// marks of another could still pass, and the models could not tell.
fn tiered(rv: &str, tier: &'static str) -> Version {
    x().moved(rv, "a").tier(tier)
}

/// The reads of a change of `x`'s `tier` from 1 to 2: both selectors, then `x` by
/// primary key. A selector is answered from the list of `app=a`, with `x`'s marks
/// checked for its `tier` term, in a state where the list of its `tier` value holds
/// `x` too (of two lists as long, the first term's is walked); else from that empty
/// list, reading no member.
fn tier_reads() -> Vec<Query> {
    vec![
        Query::Select("app=a,tier=2"),
        Query::Select("app=a,tier=1"),
        Query::get(&["ns", "a"]),
    ]
}

/// An update of `x` from `tier=1` to `tier=2` that keeps its identity, its order and
/// its `app=a` (so its keys in `by_app` and `by_ns_app`): its member stays in every
/// group but `tier=1`'s, which it leaves for `tier=2`'s, and its label marks change
/// with its version. A selector that walks `app=a` passes over `x` if the marks given
/// with the version of the reader's state lack its `tier` term's value: a reader of
/// the state before the update given `x@1` with the marks of `x@2` answers
/// `app=a,tier=1` with nothing, as the state after does, and then reads `x@1` by
/// primary key or `app=a,tier=2` as empty (the write has set the member but not yet
/// published).
#[test]
fn a_label_change_that_keeps_the_member_is_seen_with_its_marks() {
    for reads in [tier_reads(), reversed(&tier_reads())] {
        check_writes_in(
            labelled_store_with,
            vec![vec![tiered("1", "1")], vec![tiered("2", "2")]],
            vec![("reader", reads)],
            Write::AsOne,
        );
    }
}

/// Two writes while a reader reads the state before both: a batch changing `x` from
/// `tier=1` to `tier=2` and updating `y` (`app=a`, `tier=1` kept), then `x` to
/// `tier=3`. A reader of the first state selecting `app=a,tier=1` walks `x`'s records
/// back two versions to `x@1` and must take that record's marks: with the marks of a
/// later version it passes over `x@1` and returns `y@1` alone, which fits no state.
#[test]
fn two_label_changes_are_seen_with_each_versions_marks() {
    let y_at = |rv: &str| y("a").moved(rv, "a").tier("1");
    let reads = vec![Query::Select("app=a,tier=1"), Query::get(&["ns"])];
    for reads in [reads.clone(), reversed(&reads)] {
        let states = vec![
            vec![tiered("1", "1"), y_at("1")],
            vec![tiered("2", "2"), y_at("2")],
            vec![tiered("3", "3"), y_at("2")],
        ];
        check_writes_in(
            labelled_store_with,
            states,
            vec![("reader", reads)],
            Write::AsOne,
        );
    }
}
