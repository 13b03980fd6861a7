//! Objects and tree nodes in the published trees without reference counts, and their
//! reclamation.
//!
//! Every tree of a published state holds its objects as [`Unowned`] copies: bitwise
//! copies of an `Arc<K>` that own no count. A write copies the leaf it changes in each
//! tree; with counted `Arc`s that copy incremented the count of each of the leaf's up
//! to 32 objects, and dropping the old leaf decremented them again: two atomic
//! operations per object, each on a cache line of its own that is usually cold (the
//! objects are spread over the heap), and they were most of a write's time. With
//! `Unowned` elements a leaf copy copies pointers.
//!
//! The trees' nodes are linked the same way ([`Uncounted`](crate::index::ptree::Uncounted)):
//! a copy of an inner node copies its children's pointers and touches none of them. A
//! write changes in place the nodes it allocated itself (marked with its stamp), copies
//! any other node on its path, and *retires* every node it replaced or unlinked
//! ([`Retired`]) into the generation of the state before it, exactly as it retires
//! objects; a relist retires the whole trees it replaces. Retired nodes are freed with
//! their generation, and a freed node frees none of its children (they are shared with
//! the newer version, which owns them).
//!
//! Something must then keep every object a state can reach alive, for as long as that
//! state can be read. The counts are held in two places:
//!
//! - the writer's identity table holds one counted `Arc` for every object of the
//!   current state;
//! - each published state has a [`Generation`]. When the writer publishes state `N`,
//!   the objects it took out of the identity table since state `N - 1` (replaced,
//!   removed, cleared) are moved, still counted, into generation `N - 1`'s retired list,
//!   and generation `N - 1` is linked to generation `N`.
//!
//! Nodes follow the same rule with the current state's trees in the identity table's
//! place: a node is owned by the current state's trees until a write takes it out of
//! them, then by the generation it is retired into; the argument below holds for them
//! word for word.
//!
//! # Safety argument
//!
//! **Invariant.** Every object reachable from the trees of a state `S` that can still
//! be read has a counted `Arc` either in the writer's identity table or in the retired
//! list of a generation reachable from `S`'s generation through `next` links.
//!
//! - An object enters a state's trees only by a write that also puts its counted `Arc`
//!   in the identity table (before the identity table can drop it).
//! - It leaves the identity table only by a write `N` that also takes it out of the
//!   trees of state `N`, and its counted `Arc` is moved into generation `N - 1`. The
//!   states that can hold it are `N - 1` and older: each is the state `j <= N - 1` of
//!   a generation `j`, and generations `j .. N - 1` are linked in order (each write
//!   links the previous generation to its own), so generation `N - 1` is reachable
//!   from each.
//! - The writer holds state `N - 1` (and so generation `N - 1`) until it has retired
//!   into it and linked it: a generation is never dropped before it holds what it must.
//! - When the index itself is dropped, the identity table's counts are moved into the
//!   last state's generation ([`Generation::retire`]), so snapshots that outlive the
//!   store stay valid.
//! - Readers reach `Unowned` elements only through a state, a [`Snapshot`] or a prefix
//!   group, each of which holds its generation (an `Arc`) while it is read; they turn
//!   an element into a counted `Arc` by cloning it (`Arc::clone` through the `&Arc<K>`
//!   an `Unowned` derefs to), never by taking it.
//!
//! A generation is dropped when no state up to it can be read any more: then nothing
//! can reach its retired objects, and dropping it releases their counts.
//!
//! # Cost
//!
//! Per write: one allocation for the generation, uncontended locks of the previous
//! one, and the retired nodes' list. A snapshot (or a prefix read in progress) keeps alive every object replaced or
//! removed after it was taken, until it is dropped, where counted leaves kept only the
//! objects the snapshot itself holds: memory that grows with the writes made while an
//! old snapshot is held, as with any epoch-based reclamation.
//!
//! [`Snapshot`]: crate::Snapshot

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::sync::{Arc, Mutex};

/// A tree node (or a whole tree) that a write took out of the published trees, to be
/// freed with the generation it is retired into (see the module documentation and
/// [`ptree::Uncounted`](crate::index::ptree::Uncounted)). Type-erased: a pointer and
/// the function that frees it.
pub(crate) struct Retired {
    ptr: NonNull<()>,
    free: unsafe fn(NonNull<()>),
}

// SAFETY: a `Retired` is only ever freed (by its generation, on whichever thread drops
// that), never read; the nodes it frees hold elements that are `Send + Sync` (objects,
// groups of them), as the trees that held them were.
#[allow(unsafe_code)]
unsafe impl Send for Retired {}
// SAFETY: as for `Send`: no `&Retired` gives access to anything.
#[allow(unsafe_code)]
unsafe impl Sync for Retired {}

impl Retired {
    /// # Safety
    ///
    /// `free(ptr)` must be sound once no version of any tree can reach what `ptr`
    /// points to, and nothing else may free it.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn new(ptr: NonNull<()>, free: unsafe fn(NonNull<()>)) -> Self {
        Self { ptr, free }
    }
}

/// A copy of an `Arc<K>` that owns no reference count: dropping it does nothing, and
/// cloning it copies a pointer. See the [module documentation](self) for what keeps
/// the object alive.
#[repr(transparent)]
pub(crate) struct Unowned<K>(ManuallyDrop<Arc<K>>);

impl<K> Unowned<K> {
    /// A copy of `obj` that owns no count.
    ///
    /// # Safety
    ///
    /// The caller must keep a counted `Arc` of the same object alive for as long as
    /// this copy, or any clone of it, can be read: in the index, by putting it in the
    /// writer's identity table in the same write that puts this copy in a tree (see the
    /// module documentation).
    #[allow(unsafe_code)]
    pub(crate) unsafe fn new(obj: &Arc<K>) -> Self {
        // SAFETY: a bitwise copy of the `Arc`'s pointer. `ManuallyDrop` keeps the copy
        // from ever releasing a count it does not own; that the pointer stays valid is
        // the caller's promise.
        Self(ManuallyDrop::new(unsafe { std::ptr::read(obj) }))
    }
}

impl<K> Unowned<K> {
    /// A copy, owning no count, of the `Arc` whose pointer (`Arc::as_ptr`) is `ptr`.
    ///
    /// # Safety
    ///
    /// As [`new`](Self::new), and `ptr` must be the pointer of a live `Arc<K>`.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn from_raw(ptr: *const K) -> Self {
        // SAFETY: the caller's promise: `ptr` is a live `Arc`'s, so this is a bitwise
        // copy of it, which `ManuallyDrop` never releases.
        Self(ManuallyDrop::new(unsafe { Arc::from_raw(ptr) }))
    }
}

impl<K> Clone for Unowned<K> {
    fn clone(&self) -> Self {
        // SAFETY: a copy of an `Unowned` is made only where the original is (the trees
        // copy an element only into a new version of the same index's state), so the
        // promise `self` was made under covers it.
        #[allow(unsafe_code)]
        unsafe {
            Self::new(&self.0)
        }
    }
}

impl<K> std::ops::Deref for Unowned<K> {
    type Target = Arc<K>;

    fn deref(&self) -> &Arc<K> {
        &self.0
    }
}

impl<K> AsRef<K> for Unowned<K> {
    fn as_ref(&self) -> &K {
        &self.0
    }
}

/// What a published state keeps alive beyond its own trees: the objects written out of
/// the identity table after it, and the next generation. See the [module
/// documentation](self).
pub(crate) struct Generation<K> {
    links: Mutex<Links<K>>,
    /// Where this generation's nodes go when it is dropped, for the writer to free
    /// ([`Garbage`]); `None` frees them at once (a snapshot built whole, no writer).
    garbage: Option<Arc<Garbage>>,
}

/// Retired nodes of dropped generations, waiting for the writer to free them.
///
/// A generation is dropped by whichever thread lets go of it last, and with it every
/// later generation that no state holds any more: a reader that held an old state
/// walks the chain the writer has built since. Freeing the nodes on that walk made it
/// slower than the writer makes generations (each write retires several nodes, and
/// freeing another thread's allocations is slow), so a reader on a store written flat
/// out could walk for as long as the writes went on, while everything retired waited
/// for it: memory grew by a gigabyte in seconds. The walk now only hands each
/// generation's nodes here (one short lock), and the writer frees them at the end of
/// its next write ([`Garbage::collect`]), outside every other lock. What is left when
/// the last generation goes is freed with this.
pub(crate) struct Garbage {
    nodes: Mutex<Vec<Vec<Retired>>>,
}

impl Garbage {
    pub(crate) fn new() -> Self {
        Self {
            nodes: Mutex::new(Vec::new()),
        }
    }

    fn put(&self, nodes: Vec<Retired>) {
        if !nodes.is_empty() {
            self.nodes.lock().push(nodes);
        }
    }

    /// Frees every node handed here so far. The writer calls it after each write.
    pub(crate) fn collect(&self) {
        let lists = std::mem::take(&mut *self.nodes.lock());
        lists.into_iter().flatten().for_each(free);
    }
}

impl Drop for Garbage {
    fn drop(&mut self) {
        self.collect();
    }
}

/// Frees a retired node (or tree): the one place they are freed.
fn free(r: Retired) {
    // SAFETY: a retired node is freed once, here: it reaches this only from a dropped
    // generation (directly, or through `Garbage`), when no state up to that generation
    // can be read any more, and later states do not reach it (the writer retires a
    // node only once it is out of the trees it publishes next; see the module
    // documentation).
    #[allow(unsafe_code)]
    unsafe {
        (r.free)(r.ptr)
    };
}

struct Links<K> {
    /// Counted `Arc`s of objects this generation's state (or an older one) may hold
    /// and the next one does not.
    retired: Vec<Arc<K>>,
    /// Tree nodes likewise: replaced by copies, unlinked, or whole trees a relist
    /// replaced. Freed when this generation is.
    nodes: Vec<Retired>,
    next: Option<Arc<Generation<K>>>,
}

impl<K> Generation<K> {
    /// A generation whose nodes are freed when it is dropped.
    pub(crate) fn new() -> Arc<Self> {
        Self::with(None)
    }

    /// A generation whose nodes go to `garbage` when it is dropped, for the writer to
    /// free.
    pub(crate) fn collected_by(garbage: &Arc<Garbage>) -> Arc<Self> {
        Self::with(Some(Arc::clone(garbage)))
    }

    /// The next generation of the same store: its nodes go where this one's go.
    pub(crate) fn successor(&self) -> Arc<Self> {
        Self::with(self.garbage.clone())
    }

    fn with(garbage: Option<Arc<Garbage>>) -> Arc<Self> {
        Arc::new(Self {
            links: Mutex::new(Links {
                retired: Vec::new(),
                nodes: Vec::new(),
                next: None,
            }),
            garbage,
        })
    }

    /// Keeps `objects` alive until this generation is dropped. The writer calls it
    /// while it still holds this generation's state.
    pub(crate) fn retire(&self, objects: impl IntoIterator<Item = Arc<K>>) {
        self.links.lock().retired.extend(objects);
    }

    /// Keeps the tree nodes `nodes` until this generation is dropped, then frees them.
    /// The writer calls it while it still holds this generation's state.
    pub(crate) fn retire_nodes(&self, nodes: Vec<Retired>) {
        self.links.lock().add_nodes(nodes);
    }

    /// Retires `objects` here and links this generation to `next`, the generation of
    /// the state the writer is about to publish. Called once per generation.
    /// The nodes the write took out of the trees (`nodes`) are retired here too, under
    /// the same lock.
    pub(crate) fn link(
        &self,
        next: &Arc<Self>,
        objects: impl IntoIterator<Item = Arc<K>>,
        nodes: Vec<Retired>,
    ) {
        let mut links = self.links.lock();
        links.retired.extend(objects);
        links.add_nodes(nodes);
        debug_assert!(links.next.is_none(), "a generation linked twice");
        links.next = Some(Arc::clone(next));
    }

    /// How many generations follow this one, for tests.
    #[cfg(test)]
    pub(crate) fn chain_len(&self) -> usize {
        let mut n = 0;
        let mut next = self.links.lock().next.clone();
        while let Some(g) = next {
            n += 1;
            next = g.links.lock().next.clone();
        }
        n
    }
}

impl<K> Links<K> {
    /// Takes `nodes` over (the write's own list when this one has none yet).
    fn add_nodes(&mut self, nodes: Vec<Retired>) {
        if self.nodes.is_empty() {
            self.nodes = nodes;
        } else {
            self.nodes.extend(nodes);
        }
    }
}

impl<K> Drop for Generation<K> {
    fn drop(&mut self) {
        // Unlinks the chain iteratively: a snapshot held across a million writes holds a
        // million generations, which a recursive drop would take a million stack frames
        // to release.
        let (nodes, mut next) = {
            let mut links = self.links.lock();
            (std::mem::take(&mut links.nodes), links.next.take())
        };
        match &self.garbage {
            Some(garbage) => garbage.put(nodes),
            None => nodes.into_iter().for_each(free),
        }
        while let Some(g) = next {
            match Arc::try_unwrap(g) {
                // The last holder: take its successor before it is dropped (its own
                // `drop` then finds no `next`), releasing its retired objects here and
                // handing its nodes on.
                Ok(g) => next = g.links.lock().next.take(),
                // Someone else still holds it (and so the rest of the chain).
                Err(_) => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_chain_drops_without_recursion_and_releases_every_object() {
        // Deep enough to overflow the stack if the drop recursed (fewer under Miri,
        // which is slow; the recursion would show there as well, just not overflow).
        let n = if cfg!(miri) { 500 } else { 200_000 };
        let objects: Vec<Arc<u64>> = (0..n).map(Arc::new).collect();
        let first = Generation::new();
        let mut last = Arc::clone(&first);
        for o in &objects {
            let next = Generation::new();
            last.link(&next, [Arc::clone(o)], Vec::new());
            last = next;
        }
        drop(last);
        assert_eq!(first.chain_len(), objects.len());
        assert!(objects.iter().all(|o| Arc::strong_count(o) == 2));
        drop(first);
        assert!(objects.iter().all(|o| Arc::strong_count(o) == 1));
    }

    #[test]
    fn a_generation_held_keeps_what_later_writes_retired() {
        let o = Arc::new(7);
        let g0 = Generation::new();
        let g1 = Generation::new();
        let g2 = Generation::new();
        g0.link(&g1, [], Vec::new());
        g1.link(&g2, [Arc::clone(&o)], Vec::new());
        drop((g1, g2));
        assert_eq!(Arc::strong_count(&o), 2, "g0 reaches g1's retired object");
        drop(g0);
        assert_eq!(Arc::strong_count(&o), 1);
    }

    /// A retired node that counts its frees.
    #[allow(unsafe_code)]
    unsafe fn count_free(ptr: NonNull<()>) {
        // SAFETY: made by `Box::into_raw` of a `&'static AtomicUsize` below, freed once.
        let counter = unsafe {
            Box::from_raw(
                ptr.cast::<&'static std::sync::atomic::AtomicUsize>()
                    .as_ptr(),
            )
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn counted(counter: &'static std::sync::atomic::AtomicUsize) -> Retired {
        let ptr = NonNull::from(Box::leak(Box::new(counter))).cast();
        // SAFETY: `count_free` frees exactly that box, once (by the generation).
        #[allow(unsafe_code)]
        unsafe {
            Retired::new(ptr, count_free)
        }
    }

    #[test]
    fn a_store_generation_hands_its_nodes_to_the_writer_to_free() {
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        static FREED: AtomicUsize = AtomicUsize::new(0);
        let garbage = Arc::new(Garbage::new());
        let g0 = Generation::<u8>::collected_by(&garbage);
        let g1 = g0.successor();
        g0.link(&g1, [], vec![counted(&FREED), counted(&FREED)]);
        // A reader lets go of the old generation: nothing is freed on its thread.
        drop(g0);
        assert_eq!(FREED.load(Relaxed), 0);
        // The writer's next write collects.
        garbage.collect();
        assert_eq!(FREED.load(Relaxed), 2);
        // What no write collected is freed with the last generation.
        let g2 = g1.successor();
        g1.link(&g2, [], vec![counted(&FREED)]);
        drop(g1);
        drop(garbage);
        assert_eq!(FREED.load(Relaxed), 2);
        drop(g2);
        assert_eq!(FREED.load(Relaxed), 3);
    }

    #[test]
    fn unowned_copies_own_no_count() {
        let o = Arc::new(String::from("x"));
        let counted = {
            // SAFETY: `o` outlives every copy (they end with this block).
            #[allow(unsafe_code)]
            let u = unsafe { Unowned::new(&o) };
            let v = u.clone();
            assert_eq!(Arc::strong_count(&o), 1);
            let counted = Arc::clone(&v);
            assert_eq!(Arc::strong_count(&o), 2);
            counted
        };
        // The copies are gone and released nothing.
        assert_eq!(Arc::strong_count(&o), 2);
        drop(counted);
        assert_eq!(*o, "x");
    }
}
