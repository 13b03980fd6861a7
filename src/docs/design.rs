//! How the crate is built.
//!
//! # Readers and one writer
//!
//! Each store has one writer, the [`MemoryStore`](crate::MemoryStore) or
//! [`CachedStore`](crate::CachedStore) itself: not `Clone`, with the whole
//! [`Store`](crate::Store) interface (`add`, `update`, `remove`, `delete`, `replace`,
//! `clear`). Any number of readers come from `reader()`
//! ([`MemoryReader`](crate::MemoryReader), [`CachedReader`](crate::CachedReader)):
//! cheap to clone, with the reads only. This is kube-runtime's reflector shape (a
//! `Writer` and cloneable `Store`s). The store is the writer, rather than a
//! `(reader, writer)` pair being made, so that a store fed by hand, in a test or by
//! code of the user's own, needs no second type and keeps the original design's
//! interface; whatever feeds the store (a [`Feeder`](crate::watch::Feeder), a watch
//! task) takes it by value, which makes "one writer" a fact of ownership. Readers
//! outlive the writer: they keep answering from the last state, and readiness says the
//! writer is gone ([`WriterDropped`](crate::WriterDropped)).
//!
//! # The exact index: DashMap shards
//!
//! A composite key hashes (foldhash, seeded at random per store; each component's
//! length before its bytes, so two key vectors never hash the same input) to one of
//! the shards (1,024 by default) of a `dashmap::DashMap`. The crate drives the
//! `hashbrown::HashTable` inside each shard itself (dashmap's `raw-api`, pinned to
//! `7.0.0-rc2`, whose shards are safe `HashTable`s where 6.x exposes an unsafe
//! `RawTable`): moving an object between two keys must hold both keys' shard locks at
//! once, which dashmap's per-key API cannot express.
//!
//! A bucket is 16 bytes: either one object whose key components are its own namespace
//! or name (`index_by: [metadata.namespace, metadata.name]`), stored with no key bytes
//! at all (two bits a component say which field each one is), or a stored, escaped key
//! ([`key`](crate::key)) with a persistent tree of members.
//!
//! Why 1,024 shards: on a machine with few cores a reader can be preempted while it
//! holds a shard's read lock, and a write that needs that shard then waits for the
//! reader to be scheduled again. The chance that a preempted reader holds the very
//! shard a write needs is one in the shard count; a CPU-limited pod is throttled the
//! same way, for a whole period. The cost is one more cache line to miss on uniform
//! exact gets and 128 bytes per shard. The measurements are in
//! [`performance`](super::performance).
//!
//! # The published state: ArcSwap and persistent B+trees
//!
//! Every object in (namespace, name, uid) order, and for each prefix depth the groups
//! of objects sharing that prefix, live in copy-on-write B+trees published as one `Arc`
//! through `ArcSwap`. `list()` clones the root (O(1)); a prefix get finds its group
//! (O(log groups)) and copies the members outside any lock, so its cost follows the
//! result's size, not the store's. A write copies only the nodes on its path
//! (O(log n)); unchanged nodes are shared with every older snapshot.
//!
//! The list of every object is a tree of its own only when it has to be. When every
//! object's first key component is its namespace (`index_by: [metadata.namespace,
//! ...]`, the usual index), the depth-1 groups are ordered by namespace, and those
//! groups one after another *are* the (namespace, name, uid) list: `list()` then takes
//! the groups' root, and a write changes one tree fewer (the largest, about half of a
//! write's tree work). The state counts the objects keyed otherwise; the first one
//! makes the writer build the list from the groups (O(n), once), and the write that
//! removes the last one drops it. Stores of one key component always keep the list.
//!
//! Inner nodes route by separators: for each child, the first 32 bytes of an
//! order-preserving encoding of its first element's (namespace, name, uid), inline in
//! the node. A descent compares bytes it already has and reads an object only where
//! two separators tie (keys sharing their first 32 bytes) and in the leaf.
//!
//! # Writes: prepare, then commit
//!
//! Writes are serialised by one mutex (one watch, one writer: uncontended). A write
//! first builds the new state with no shard lock held (the tree path copies), then
//! takes the write locks of at most two shards (old and new key, in index order) to
//! update the buckets and publish the state, and drops what it replaced after
//! unlocking. Publishing while holding the shard locks is what makes exact and prefix
//! readers switch together (linearizability); the loom models check it.
//!
//! A writer-private `HashTable` maps each identity to the stored object and its key's
//! hash, which makes moves and single-object removal O(1) without a second copy of any
//! string (objects are hashed and compared through their own metadata).
//!
//! # Freshness: a lock shared by writes and waits
//!
//! Each store records, after every write is published, the newest resourceVersion it
//! applied (see [`freshness`](crate::freshness)). Waiters check their condition and
//! register their waker under one small mutex, which the writer takes once per write
//! to record and take the waiters: uncontended with no one waiting (one lock and
//! unlock per write), and no wake-up can fall between a waiter's check and its
//! registration. A tokio channel per store would have cost the writer a lock per
//! notifier per write, as the watch feed's change signal does when it has receivers.
//!
//! # Secondary indexes and the label index: more groups in the same state
//!
//! A secondary index is more trees of groups in the published state, beside the
//! primary key's: for an index of `n` paths, one tree per depth `1..=n`, whose group of
//! an encoded prefix holds, in (namespace, name, uid) order, every object with a key
//! that starts with it, once however many of its keys do (multi-valued `[*]` paths
//! give an object several). The groups are the primary key's own type, so lookups,
//! snapshots and reclamation are the same code, and a write builds every index's
//! change into the one state it publishes: no lookup can see an object in one index
//! and not another. A write reads the keys of the version it replaces from that
//! object again rather than keeping them: nothing per object is stored for them.
//!
//! The secondary groups hold not the objects but a *member* per identity: 24 bytes
//! with its current version, the stamp of the write that made it current, and a
//! pointer to a record of the version before, which the writer replaces and readers
//! read without a lock (a sequence check on the stamp). An update that leaves every key
//! as it was (nearly every watch event: a new resourceVersion, a status change) sets
//! the member and touches no group; when every group held the object itself, each of
//! its groups was a path copy of two trees per write, 4.4× the write's cost with five
//! labels alone. A query takes each member's current version if it is not newer than
//! the state it read (nearly always), else walks the records to that state's version:
//! one query, one state, as before. Each record is retired into the generations as it
//! is made, like a node the write replaced, so it lives exactly as long as a reader of
//! an older state can need it. A read pays one more cache line per result (the
//! member's), and an identity in no group has no member.
//!
//! The label index is one such index of `[label key, value]` with one key per indexed
//! label, keeping only its depth-2 groups: a group of every object carrying a key
//! would be one more large tree that nearly every write changes. A selector reads the
//! members of the group (or, for `in`, groups) of its cheapest `=`/`in` term on an
//! indexed key and checks the rest of its terms on them; a namespace is one run of a
//! group's members, found by one descent. Anything else reads every object, counted.
//! In a store with a label index, each member also keeps its version's *label marks*
//! (8 bytes more, read in the same stamp check): two bits per indexed label, hashed
//! from its key and value. A candidate whose marks lack the bits of every value of
//! another `=`/`in` term cannot meet it and is passed over without reading its labels
//! (a map and its strings, about six dependent cache misses on a cold object); one
//! whose marks have them is checked on its labels as before, so the marks change a
//! query's cost, never its answer. For `app=X,tier=Y` on the bench's Pods about 28%
//! of the 1,000 candidates pass (25% match), and the query takes about half the time
//! it took without them.
//!
//! # The on-demand tier: the cache owns, the reference points
//!
//! The on-demand index stores `Arc<Reference>`s (namespace, name, uid,
//! resourceVersion, keys). Bodies live in a bounded `quick_cache` (its capacity rounded
//! down to a multiple of its shard count so that the entry bound is exact), with an
//! expiry per entry.
//!
//! When a fetched body of a reference's version is cached, the reference also gets a
//! *hint*: an `ArcSwapOption` (through the `sync` shim) holding the body and its expiry.
//! A hit is then the index probe and that load, with no second probe in the cache.
//! Correctness rests on the cache entry recording its owner: every path that drops an
//! entry (quick_cache's eviction hook, invalidation by a watch event, expiry, `clear`
//! by draining) clears the owner's hint, and a fill clears the previous entry's hint
//! before it sets the new one and inserts, so a hint never outlives its entry and the
//! bodies kept alive are exactly the resident ones. The eviction policy learns of hint
//! hits through one `get` per body per 50 ms, enough for a CLOCK-like policy whose hand
//! passes each entry once per `capacity / miss rate`. A relist keeps unchanged
//! references (the same `Arc`), so their hints survive it.
//!
//! Misses go through the crate's own singleflight rather than quick_cache's
//! placeholders, which hand a failed load to the next caller (one `GET` per waiter on
//! a 500); ours hands the one error, as one `Arc<FetchError>`, to every waiter. A
//! leader that is cancelled hands the flight to a waiter; one that panics wakes its
//! waiters with [`FetchError::LeaderPanicked`](crate::FetchError::LeaderPanicked).
//! A watch event for an object marks its flight, so that a body fetched before the
//! event goes to the callers already waiting but is never cached.
//!
//! # Libraries not used
//!
//! `crossbeam-epoch` is not used. Old states are reclaimed through ArcSwap and a chain
//! of per-state generations: the objects and the nodes in the published trees are
//! uncounted pointers, kept alive by the writer's identity table and current trees and
//! by the generations, each of which holds what one write replaced until no state
//! that reaches it can be read (`index::retire`; the buckets' own trees, cloned out by
//! exact readers, keep `Arc`-linked nodes): a
//! `crossbeam-epoch` guard pins one thread for a short critical section and is not
//! `Send`, where a `Snapshot` is held across awaits and threads for as long as its
//! user likes. And the structure epochs would serve (an ordered `crossbeam-skiplist`
//! over encoded keys) yields prefix ranges in key order, not the (namespace, name,
//! uid) order results must be in, so every prefix get would have to sort again.
//!
//! # Errors
//!
//! Every error's message is complete on its own (kube's errors are written the same
//! way), for logs that print only the top error, and `source()` returns the underlying
//! error for code that inspects it: a [`StoreError`](crate::StoreError) of a failed
//! fetch leads to its [`FetchError`](crate::FetchError), whose source is the
//! `kube::Error` of a failed connection. A chain printer that prints every level
//! therefore repeats text. Decode errors keep no source: serde's message can quote the
//! body, which may be a Secret's.
