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
//! # The exact index: one table, read without a lock
//!
//! A composite key hashes (foldhash, seeded at random per store; each component's
//! length before its bytes, so two key vectors never hash the same input) into one
//! open-addressing table (linear probing), held by the published state. A slot holds a
//! pointer to an immutable *entry*, with 16 bits of the key's hash in the pointer's top
//! bits (on 64-bit targets), so a probe passes over most other keys' slots without
//! reading their entries. An entry is one allocation: a 24-byte header (the stamp of
//! the write that stored it, the entry of the same key it replaced with the key's
//! length in that pointer's top bits, the key's objects: one object held uncounted, or
//! a counted persistent tree of several in (namespace, name, uid) order) followed by
//! the key's encoding ([`key`](crate::key)) inline. A key of 64 KiB or more keeps its
//! length in front of its bytes instead. The internals are in `index::exact`.
//!
//! Why this shape:
//!
//! - **No lock on the hot path.** An exact get loads the published state (an `ArcSwap`
//!   load), probes its table and clones the `Arc` of what it finds; it takes no lock.
//! - **The key is checked without touching the object.** The entry holds the key's
//!   bytes next to its header, so a probe confirms its key in the entry's own cache
//!   lines; the object is read only by the caller. Comparing against the object's
//!   namespace and name, as the previous design did for `[metadata.namespace,
//!   metadata.name]` keys, cost two dependent cache misses into the object.
//! - **The writer never waits for a reader.** The previous design kept the exact index
//!   in the shards of a `dashmap` behind reader-writer locks, and a reader preempted
//!   while it held a shard's read lock (a busy node, a CPU limit) stalled a write that
//!   needed that shard for a whole time slice; 1,024 shards made that rare at the cost
//!   of one more cache line per get. With no lock there is nothing for a reader to hold.
//!
//! How exact reads stay linearizable with prefix reads and snapshots: entries never
//! change once published. A write that changes a key's objects makes a new entry
//! stamped with the write's stamp, pointing to the one it replaces (`prev`), and stores
//! it in the key's slot *before* it publishes its state; removing a key stores a
//! *tombstone*, an entry of no objects. A reader takes the table and the stamp from the
//! state it loaded, and walks from the slot's entry along `prev` to the first entry
//! stamped at or before its state's: what that state holds, whatever the writer has
//! done since. An exact read therefore answers for the same state as a prefix read or
//! a snapshot taken from it, and a state is published in one `ArcSwap` store, the one
//! point at which every kind of read moves to it.
//!
//! A key keeps its slot from its first write until the table is rebuilt (a tombstone
//! keeps it too), so slots only go from empty to an entry and from an entry to a newer
//! one of the same key, and a probe that started before a write still ends at the key's
//! slot or at an empty one, either of which answers for its state. A write rebuilds the
//! table into a new one holding the same live entries when a new key would fill more
//! than 13/16 of its slots (it grows), when a removal leaves fewer than an eighth of
//! its slots live (it shrinks), or when tombstones reach an eighth of its entries (it
//! is purged at the same size). The new table is published with the write's state;
//! readers of older states keep probing the old one, which no write changes any more.
//! Replaced entries, tombstones and tables go to the generations (see [Libraries not
//! used](#libraries-not-used)) and are freed once no state that reaches them can be
//! read. An entry records its key's length in 32 bits: a key whose encoding exceeds
//! `u32::MAX` bytes is refused with
//! [`ErrorKind::KeyTooLong`](crate::ErrorKind::KeyTooLong).
//!
//! The `shards` setting of the builders and the `index_shards` configuration key are
//! still accepted, validated and reported back (`shards()`), for compatibility; they no
//! longer divide anything.
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
//! Writes are serialised by one mutex (one watch, one writer: uncontended), which no
//! reader takes. A write first builds the new state: the tree path copies, and the new
//! entries of the exact-key table, stamped with the write's stamp, which readers of
//! older states pass over. It then publishes the state in one `ArcSwap` store and drops
//! what it replaced afterwards (what an older state may still reach goes to that
//! state's generation). The stamp walk is what makes exact and prefix readers switch
//! together (linearizability); the loom models check it. A batch does the same once for
//! all of its changes, and a relist builds a new table aside and publishes it with its
//! state.
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
//! by the generations, each of which holds what one write replaced until no state that
//! reaches it can be read (`index::retire`). The exact-key table's replaced entries,
//! tombstones and tables go the same way; the tree of a key with several objects keeps
//! `Arc`-linked nodes and is freed with its entry. A `crossbeam-epoch` guard pins one
//! thread for a short critical section and is not `Send`, where a `Snapshot` is held
//! across awaits and threads for as long as its user likes. And the structure epochs
//! would serve (an ordered `crossbeam-skiplist` over encoded keys) yields prefix ranges
//! in key order, not the (namespace, name, uid) order results must be in, so every
//! prefix get would have to sort again.
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
