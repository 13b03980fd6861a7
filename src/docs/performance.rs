//! How the stores perform, and why.
//!
//! The tables with the commands that print them are in the README; this page keeps the
//! analysis behind them: the floors that bound exact gets, the writer under readers,
//! and the trade-offs behind the defaults. Every figure here was measured on the
//! project's 2-core virtual machine, whose memory latency drifts by up to 1.5× within
//! minutes on the cases bound by it: compare ratios within one run, not times across
//! runs.
//!
//! # Exact gets and their floors
//!
//! `cargo bench --bench store` measures two floors beside the stores, on the same
//! objects and keys, to show how far any store could go:
//!
//! - *no index*: object `i` read straight from an array, its namespace and name checked
//!   against the caller's keys, its `Arc` cloned into a `Vec` (or an `Option`). No store
//!   that returns `Arc<K>` for a checked key does less.
//! - *a hashed index's floor*: the caller's key hashed (foldhash, as ours), one probe of
//!   a flat open-addressing table of `(hash, Arc)` slots at most half full, built once
//!   and never written (so no lock and no atomics), the key checked, the `Arc` cloned
//!   into a `Vec`. Not a usable store; as lean a hashed lookup as we could write.
//!
//! One run of the previous design, whose exact gets took a shard's read lock (medians,
//! the rows `get_exact_uniform`, `get_exact_hot1pct` and `get_exact_2_threads`):
//!
//! | | uniform, 1 thread | hot 1%, 1 thread | uniform, 2 threads |
//! |---|---:|---:|---:|
//! | kube-runtime (an `ObjectRef` built per call) | 1.45 µs | 168 ns | 1.32 µs |
//! | k8s-store `get` | 1.19 µs | 113 ns | 1.03 µs |
//! | floor, no index (`Vec` / `Option`) | 295 / 205 ns | 37 / 34 ns | 539 / 331 ns |
//! | floor of a hashed index | 784 ns | 135 ns | 794 ns |
//! | **kube-runtime ÷ hashed floor** | **1.85×** | **1.24×** | **1.66×** |
//!
//! Even the hashed floor, which takes no lock and is never written, is well short of 3×
//! kube-runtime: the caller's key must be read and hashed before the table can be
//! probed, and the probe before the object, and each step waits on memory. Only an
//! index that does not hash the key (the no-index floor) could go further, and a
//! key-value store cannot be one. In that run our `get` sat 1.3–1.5× above the hashed
//! floor (both returned a `Vec`; ours also took the shard's read lock and read
//! `hashbrown`'s control bytes before the slot). Exact reads have since become
//! lock-free (see [`design`](super::design)), and the bench has a third floor,
//! `floor_keyed`: the exact table's design without the store around it (one flat table
//! of tagged pointers to entries holding the key's bytes, built once and never written;
//! no published state to load, no stamps, no tombstones), in the same rows as the
//! other floors.
//!
//! The paired rounds add a fourth, `floor_guarded`: `floor_keyed` behind an
//! `arc_swap::ArcSwap`, loaded and its guard dropped on every get. A store that is
//! written while it is read, and frees what a write replaced as soon as no reader holds
//! it, must do at least that much: the reader announces what it reads (arc-swap's debt
//! slot, a hazard pointer, an epoch) and the announcement must be visible before it
//! reads, which costs a fenced instruction, and another to withdraw it. In one full run
//! (201 paired rounds) the guard cost the floor 1.21–1.26× its time, also when the
//! gets miss the cache: the fences keep one get's misses from overlapping the next's.
//! Ours was 1.40–1.51× `floor_keyed` and 1.17–1.22× `floor_guarded`. What is left
//! between ours and the guarded floor is the stamp check and the store's own calls.
//! Readers without fences are possible only if the writer forces them instead (Linux
//! `membarrier`, microseconds per write), which would move the cost to every write.
//!
//! # The writer under readers
//!
//! The `write_2_readers` case runs the writer and two busy readers: three threads on
//! this machine's two cores, so the writer's fair share of a CPU is 67%. The bench
//! reads where the writer's time went (Linux schedstat). In one run of the previous
//! design (exact gets under shard locks, 1,024 shards): 62% on a CPU, 37% runnable but
//! waiting for one, 1% blocked, and per second on a CPU it did 0.81 of its rate alone.
//! At a full fair share it would have reached about 0.6 of its rate alone; the measured
//! ratio was 0.51 (kube-runtime 0.18, whose writer was blocked 35% of the time).
//!
//! # Index shards
//!
//! The exact index has no shards since it became one lock-free table (see
//! [`design`](super::design)): a reader holds nothing a write needs, so a reader
//! preempted in the middle of a read cannot stall the writer. In the previous design
//! that stall was the reason for 1,024 shards (with 8, the writer was blocked 6–16% of
//! the time under two readers; with 1,024, about 1%). The `write_2_readers` case of the
//! store bench prints where the writer's time went on every run (on a CPU, waiting for
//! one, blocked; from Linux schedstat), so its blocked share with readers is measured,
//! not assumed. [`MemoryStoreBuilder::shards`](crate::MemoryStoreBuilder::shards) and
//! [`CachedStoreBuilder::shards`](crate::CachedStoreBuilder::shards) are still accepted
//! and reported back, and change nothing.
//!
//! # Writes
//!
//! An update at 100k objects costs 10.6 µs in the table's run (7–11 µs across runs).
//! Leaves are 32 wide: 16-wide leaves made an update 21% faster (5.4 against 6.9 µs in
//! that run) but cost 10–12 more bytes per object (85 B in the worst case, against the
//! Go original's 88); 24-wide ones were no faster than 32. Inner nodes route by
//! separators (see [`design`](super::design)); without them each routing step read a
//! subtree's first object, and an update took about twice as long.
//!
//! Where a watch `Apply` of an existing object went (100k `DynamicObject`s, scattered
//! keys, a probe timing the phases of `upsert` on a quiet machine, 20,000 applies;
//! measured with the previous, sharded exact index, whose buckets two rows name):
//!
//! | phase | before | after finding the old version by pointer |
//! |---|---:|---:|
//! | locating the stored version (identity table, its bucket's key) | 0.8 µs | 0.8 µs |
//! | the trees: the list, the namespace groups, the group's members | 7.0 µs (the list alone 4.1) | 3.2 µs (the list alone 1.5) |
//! | the buckets and the publication | 0.3 µs | 0.3 µs |
//! | dropping the previous state: its replaced nodes and the replaced object | 2.6 µs | 2.6 µs |
//! | the whole `Feeder::handle` | 12.3 µs | 8.8 µs |
//!
//! An update under the same key finds the old version in each tree's leaf by pointer
//! (`PTree::replace_where`) instead of a binary search that read about five cold
//! objects per leaf. What is left is memory traffic, about 300 first-level cache misses
//! per update in callgrind, most of them from copying nodes (each inner node's child
//! pointers are counted, so copying one touches every child's count) and from the
//! free of the replaced object. That free is a floor every store pays: in the same
//! probe, a `HashMap` of owned `Arc`s (no clone, no lock) took 2.65 µs per replace, of
//! which 1.4 µs was dropping the old object; kube-runtime's `Writer` took 3.0 µs.
//!
//! Since then the trees' nodes are uncounted as well (the crate's `index::retire`
//! reclaims them with the objects): copying an inner node copies its children's
//! pointers instead of counting each child, and the previous state's nodes are freed
//! one by one, without walking down to decrement their children. Measured in a paired
//! probe (100k `DynamicObject`s; 40 rounds, each of 1,000 scattered `Apply`s through
//! `Feeder::handle` and 1,000 through kube-runtime's `Writer`, alternating; the two
//! builds run one after the other three times), ours went from 0.47, 0.48 and 0.50 of
//! kube-runtime's speed to 0.49, 0.50 and 0.50; at 1M objects (one run each) from 0.34
//! to 0.36: about 4%, not the third that counting seemed to cost. `perf` shows why:
//! the cost of a copy is the first load of each node on the path (cold for scattered
//! keys), not the counts, and about a third of a write is `malloc` and `free` (the
//! copies, the nodes they replace, and the replaced object, whose free alone is the
//! 1.4 µs above). Narrower inner nodes, which copy fewer children, were slower for the
//! same reason (16 wide: 0.45 of kube-runtime; 8 wide: 0.42–0.43; 32 wide: 0.49–0.50,
//! one probe each): each level is one more dependent miss.
//!
//! What did move the write was taking a tree out of it. A store keyed by namespace
//! first keeps no list of its own (see [`design`](super::design)): a write changes the
//! groups' tree and the group's members, not the list of all objects, the deepest of
//! the three. In the same paired probe, with CI running on the other core, ours went
//! from 0.42–0.51 to 0.63–0.76 of kube-runtime's speed. The watch table in the README
//! has the bench's figures, beside a *floor* column: a hashed table of the objects
//! themselves with no lock, no clone and no snapshot, the least any store that replaces
//! an object by key does.
//!
//! With glibc's `malloc`, most of what a write spends in the allocator is the work
//! that freeing the replaced object leaves behind (about forty chunks, sorted and
//! coalesced by the next `malloc` that needs room), and it goes to whichever
//! allocation comes next. Three experiments measured no gain for that
//! reason: tree nodes copied into buffers of one size per node kind; freed nodes'
//! buffers kept per thread for the next copies (no `malloc` for a copy at all); and a
//! feeder that kept its batch buffer across bursts instead of allocating half a
//! megabyte per batch of 1,000 `DynamicObject`s. In `perf`, the last removed the
//! buffer's 7.7% of a burst and added 6.6% to the next allocation (the indexer's
//! keys); the bench, alternating the builds, moved within its noise (about 10%).
//! With jemalloc preloaded, the same bench binary wrote one `Apply` about a quarter
//! faster and kube-runtime's writer slower (the README has the figures): the gap to
//! kube-runtime's writer under glibc is about as much the allocator's as the trees'.
//!
//! Two later changes did move it, found with `perf` on the bench's `apply_one_100k`:
//!
//! - Copying a leaf of the groups' tree cloned every group in it, and each group held
//!   its prefix as an `Arc<[u8]>`: about 24 atomic increments per write (and as many
//!   decrements when the copy was freed), which `perf annotate` put at most of the
//!   copy's own time. A prefix of up to 30 bytes (a namespace's) is now kept inline in
//!   its group.
//! - The feeder's unchanged-version check was a lookup of its own before the write,
//!   the first to touch the stored object (about 17% of a write). The write now answers
//!   it from the lookup it makes anyway (`Target::apply_changed`), falling back to the
//!   old rule when the object is not alone under its key.
//!
//! Alternating the bench's quick runs (six pairs), the two together took ours from a
//! median 0.49 to 0.56 of kube-runtime's speed. Keeping every node under 1 KiB (so that
//! glibc serves it from its small bins and never consolidates on a copy: narrower inner
//! nodes and leaves sized by their element) measured no gain, like the allocator
//! experiments above.
//!
//! A third took one allocation out of each leaf: a leaf's elements are now kept in
//! the node itself (a `SmallVec` with room for 33), so reading or copying a leaf is
//! one miss and one `malloc`, not two. In six alternating quick runs against the build
//! before it, ours went from a median 0.59 to 0.63 of kube-runtime's speed for one
//! scattered `Apply` (it won all six pairs); memory per object did not change (58.8 B
//! in `cargo bench --bench memory`). A warm update (`write_alone` in the store bench,
//! the same few objects over and over) went from 0.53–0.60 to 0.57–0.64 of
//! kube-runtime's time, about 7% slower: it copies a bigger node (a leaf of groups is
//! 33 inline groups of 48 bytes) where nothing is cold.
//!
//! The bench's `floor_snapshot` row bounds what persistence itself costs: `floor`'s
//! table plus one path copy (four 256-byte nodes) in a persistent array of the objects'
//! addresses. It came within 4–19% of kube-runtime's writer in three runs. So a store
//! that publishes immutable versions is not bound to be much slower than one that does
//! not. What ours pays above it is its own structures: an ordered path copy in two
//! trees (the groups and the group's members, five nodes, each a header and a separate
//! buffer), the identity table, the exact-key table's entries and the generations.
//!
//! A write finds the identity table's entry of the version it replaces, and that
//! version in its key's exact-key entry when the key is unchanged, by the version's
//! pointer (which the write located first) instead of comparing identities and keys,
//! which reads the replaced object's strings. In a batch's commit that object is cold
//! by then (a thousand other changes were prepared in between). Alternating quick runs
//! put the gain within noise: kube ÷ ours for one `Apply` a median 0.619 before and
//! 0.637 after over five pairs, and no change beyond noise in a burst.
//!
//! # Building a list
//!
//! An initial sync of 100k (`Init`, 100k `InitApply`, `InitDone` through
//! `Feeder::handle_batch`) builds every structure at once in `replace`. A probe timing
//! only that (each sync on its own thread, its events built before and its store
//! dropped after, outside the timing) went from about 160 ms to about 125 ms with four
//! changes, each measured against the one before in alternating runs:
//!
//! - a listed object is boxed as soon as its event is taken and stripped in place: on
//!   its way from the event to the relist's buffer it was moved (copied whole, about
//!   500 bytes) six times;
//! - the group prefix of each object is compared in place with the run being gathered,
//!   instead of encoding every object's key into a new allocation first;
//! - whatever the build needs to know of an object's strings (its `Sep`, identity hash,
//!   elision pattern, whether its first key is its namespace) is worked out in the pass
//!   in arrival order, where the object was just read; the pass in sorted order after
//!   it reads no string where it can help it;
//! - the `Sep` is built in place, scanning a name only as far as 32 bytes reach.
//!
//! Before the boxing and the in-place `Sep`, callgrind counted about 4,000
//! instructions per object: a fifth of them the indexer's three allocations of each
//! object's keys (a `Vec` of two `String`s, which `Target::relist` takes) and their
//! frees after the build, a sixth the moves of objects, the rest the tables and
//! trees. In the bench, kube-runtime's writer took about twice as long as ours: it
//! clones every object.
//!
//! The keys' allocations went last. `perf` put 12% of a sync's build in glibc's
//! `malloc_consolidate`: the 300k small chunks the keys freed at the end of the build
//! sat in its fastbins until the next large free merged them all. A watch now hands a
//! store its keys as [`Keys`](crate::Keys): the components one after another in one
//! buffer kept inline (two components of up to 40 bytes allocate nothing), which
//! `Target::relist` takes. Entries of the build, which now carry those 72 bytes
//! inline, are deduplicated in place (`retain`) instead of collected into a new vector.
//! Four alternating quick runs of `initial_sync_100k` each: kube ÷ ours went from a
//! median 2.31 to 2.83; the relist of a full store went from about 503 to 471 ms; one
//! `Apply` did not change beyond noise.
//!
//! # The on-demand tier's clock
//!
//! Expiry checks read `CLOCK_MONOTONIC_COARSE` on Linux: a few nanoseconds per read,
//! where the precise clock costs about 20 ns, a tenth of a cache hit. Its resolution is
//! the kernel tick (1–4 ms), far below any useful TTL.
//!
//! # Reporting hint hits to the eviction policy
//!
//! A hit served through a reference's hint is reported to the cache's policy at most
//! once per 50 ms per body (a constant). A CLOCK-like hand passes an entry once per
//! `capacity / miss rate`, which is seconds for a cache that mostly hits, so one report
//! per 50 ms loses nothing the policy uses; the hit ratio in the Zipf test is 1.04× an
//! exact LRU's either way. Reporting every 1–4 ms (each clock tick) put the second
//! probe back on nearly every uniform hit (706 ns against 386 ns in a quick run).
