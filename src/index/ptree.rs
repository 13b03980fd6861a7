//! A persistent (copy-on-write) B+tree of sorted elements.
//!
//! Cloning a tree copies its root pointer. A write copies only the nodes on the path
//! from the root to the leaf it changes, so an old clone (a published snapshot) stays
//! valid and unchanged, and a new one shares every untouched node with it. How nodes
//! link and are freed is the [`Link`]: counted (`Arc`, for the buckets' trees) or
//! uncounted (the published state's trees, whose replaced nodes the writer retires into
//! generations; see [`retire`](crate::index::retire)). This is what makes `list()` O(1) on an unchanged store and
//! cheap right after a write: no rebuild of N entries.
//!
//! The tree has no `Ord` bound: every operation takes a [`Target`], a comparator
//! `cmp(element)` that says how an element is ordered relative to the target
//! (`element.cmp(target)`) plus the target's [`Sep`], so the element type can be
//! ordered by fields it reaches through a pointer (objects by namespace, name and uid)
//! without copying those fields into the leaves.
//!
//! Inner nodes route by separators: each child carries the [`Sep`] of its first element,
//! a 32-byte order-preserving prefix of its sort key kept inline in the parent. A
//! descent compares the target's `Sep` with those and reads an element (for objects,
//! a cold pointer chase to their namespace and name) only where two are equal; without
//! them every routing step walked down to a subtree's first element and read it.
//!
//! Single-threaded: the store wraps it; its invariants are checked by [`PTree::validate`]
//! from unit tests, property tests and the fuzz targets.

use std::cmp::Ordering;

use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::index::retire::Retired;
use crate::sync::Arc;

/// Most elements in a leaf. A write copies the leaf it changes, cloning every element
/// (for objects, a reference-count increment on a usually cold cache line), so
/// narrower leaves make updates faster and cost memory per object; the measured
/// trade-off is in [`crate::docs::performance`].
const LEAF_MAX: usize = 32;
/// Most children of an inner node (cloning a child touches only a node's count).
const INNER_MAX: usize = 32;
/// How full `from_sorted` packs nodes of width `max`, leaving room to insert.
const fn fill(max: usize) -> usize {
    max - max / 4
}

pub(crate) struct PTree<T, L = Counted<T>> {
    root: Option<L>,
    len: usize,
    elements: PhantomData<T>,
}

/// A tree of the published state: uncounted nodes (see [`Link`]).
pub(crate) type StateTree<T> = PTree<T, Uncounted<T>>;

/// A leaf's elements, kept in the node itself (with room for the one an insert adds
/// before a split): a leaf is one allocation, so reading or copying one is one miss
/// and one `malloc`, not two.
pub(crate) type Items<T> = smallvec::SmallVec<[T; LEAF_MAX + 1]>;

/// A node: the elements themselves (a leaf), or its children (an inner node).
pub(crate) enum Node<T, L> {
    Leaf(Items<T>),
    Inner(Vec<Child<T, L>>),
}

/// How a node links to its children, and what a write does with the nodes it copies
/// and unlinks: the one thing that differs between the two kinds of tree.
///
/// - [`Counted`]: `Arc`-linked nodes. Copying a node counts each child once more, and
///   a node is freed when its last holder is; nothing else keeps track. The trees of
///   the exact-key table's keys of several objects, which readers walk in place.
/// - [`Uncounted`]: nodes linked by plain pointers that own nothing, so a copy copies
///   pointers and touches no child. The writer retires every node it replaces or
///   unlinks into a [`Draft`], which hands them to the previous state's generation;
///   they are freed with it (see [`retire`](crate::index::retire)). The published
///   state's trees.
pub(crate) trait Link<T>: Sized {
    /// What one write carries through every change it makes to a tree.
    type Cx;
    /// A link to a new node (one the current write made).
    fn new(node: Node<T, Self>, cx: &Self::Cx) -> Self;
    /// The node.
    fn get(&self) -> &Node<T, Self>;
    /// Another link to the same node, for a copy of its parent.
    fn share(&self) -> Self;
    /// The node, to be changed: in place if no other version of the tree can reach it,
    /// else a copy that replaces it here (older versions keep the original).
    fn make_mut(&mut self, cx: &mut Self::Cx) -> &mut Node<T, Self>
    where
        T: Clone;
    /// The node is no longer in this version of the tree.
    fn unlink(self, cx: &mut Self::Cx);
}

/// `Arc`-linked nodes (see [`Link`]).
pub(crate) struct Counted<T>(Arc<Node<T, Counted<T>>>);

impl<T> Link<T> for Counted<T> {
    type Cx = ();
    fn new(node: Node<T, Self>, (): &()) -> Self {
        Self(Arc::new(node))
    }
    fn get(&self) -> &Node<T, Self> {
        &self.0
    }
    fn share(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
    fn make_mut(&mut self, (): &mut ()) -> &mut Node<T, Self>
    where
        T: Clone,
    {
        Arc::make_mut(&mut self.0)
    }
    fn unlink(self, (): &mut ()) {}
}

/// Nodes linked by pointers that own nothing (see [`Link`] and
/// [`retire`](crate::index::retire)). Dropping one does nothing.
pub(crate) struct Uncounted<T>(NonNull<Stamped<T>>);

/// An uncounted node and the write that made it.
struct Stamped<T> {
    /// The [`Draft::stamp`] of the write that allocated this node: that write, and only
    /// it, changes the node in place (no published version can reach it yet).
    stamp: u64,
    node: Node<T, Uncounted<T>>,
}

// SAFETY: an `Uncounted` is a shared reference to an immutable node as far as any
// thread but the writer's can tell (the writer changes in place only nodes its current,
// unpublished write allocated, which no other thread can reach), so it is `Send` and
// `Sync` exactly when `&T` would be; who frees it is the generations' business
// (`retire`), which hands nodes over only once no thread can read them.
#[allow(unsafe_code)]
unsafe impl<T: Send + Sync> Send for Uncounted<T> {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl<T: Send + Sync> Sync for Uncounted<T> {}

/// One write to uncounted trees: its stamp, and the nodes it replaced or unlinked,
/// which go to the previous state's generation when the write publishes
/// ([`Draft::finish`]). A draft dropped without finishing leaks those nodes (never
/// frees a node a published version may still reach).
pub(crate) struct Draft {
    stamp: u64,
    retired: Vec<Retired>,
}

impl Draft {
    /// A write with `stamp`, which must differ from every stamp an earlier write to the
    /// same trees used (the writer counts them from 1; 0 is for trees only ever read,
    /// such as a snapshot built whole).
    pub(crate) fn new(stamp: u64) -> Self {
        Self {
            stamp,
            // A single write retires about three nodes per tree it changes: room for
            // them without growing (the list then becomes the generation's own).
            retired: Vec::with_capacity(16),
        }
    }

    /// This write's stamp.
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp
    }

    /// Hands `r` (something other than a node that this write took out of use) to the
    /// generation this draft is finished into, to be freed with it.
    pub(crate) fn retire(&mut self, r: Retired) {
        self.retired.push(r);
    }

    /// The nodes this write took out of its trees, to be freed once no version that
    /// reaches them can be read (the caller hands them to the previous generation).
    pub(crate) fn finish(mut self) -> Vec<Retired> {
        std::mem::take(&mut self.retired)
    }

    /// Takes a whole tree out of use (a relist, or the store dropped): every node in it
    /// is freed with the generation `finish` hands them to, and every tree its elements
    /// own ([`Elem`]). None of its nodes may be in another live tree.
    pub(crate) fn retire_tree<T: Elem>(&mut self, tree: &PTree<T, Uncounted<T>>) {
        if let Some(root) = &tree.root {
            // SAFETY: the caller's promise: the tree is out of every live version, so its
            // nodes are freed only with the generation that holds this, once no version
            // that reaches them can be read; none was retired before (each node is
            // retired once: when replaced, when unlinked, or whole with its tree).
            #[allow(unsafe_code)]
            self.retired
                .push(unsafe { Retired::new(root.0.cast(), free_tree::<T>) });
        }
    }
}

/// Frees the uncounted node at `ptr`, not its children.
///
/// # Safety
///
/// `ptr` came from `Box::into_raw` of a `Stamped<T>` and is freed once, when no version
/// of any tree can reach it.
#[allow(unsafe_code)]
unsafe fn free_node<T>(ptr: NonNull<()>) {
    // SAFETY: the caller's promise. Dropping the node drops its elements (uncounted
    // ones release nothing) and its children's links (which own nothing).
    drop(unsafe { Box::from_raw(ptr.cast::<Stamped<T>>().as_ptr()) });
}

/// Frees the uncounted tree under `ptr`: every node, and the trees its elements own.
///
/// # Safety
///
/// As [`free_node`], for every node of the tree, none of which is in a live tree.
#[allow(unsafe_code)]
unsafe fn free_tree<T: Elem>(ptr: NonNull<()>) {
    // SAFETY: the caller's promise: the node is ours to free, and so is its subtree.
    let mut node = unsafe { Box::from_raw(ptr.cast::<Stamped<T>>().as_ptr()) };
    match &mut node.node {
        Node::Leaf(items) => {
            for item in items {
                // SAFETY: the element's trees belong to this tree alone (the caller's
                // promise extends to them).
                unsafe { item.free_trees() };
            }
        }
        Node::Inner(children) => {
            for c in children.iter() {
                // SAFETY: a child of a node we free whole is ours to free whole.
                unsafe { free_tree::<T>(c.node.0.cast()) };
            }
        }
    }
}

/// An element of an uncounted tree, which may own uncounted trees of its own (a group
/// of a prefix index owns its members' tree).
pub(crate) trait Elem {
    /// Frees the uncounted trees this element owns, when the tree holding it is freed
    /// whole.
    ///
    /// # Safety
    ///
    /// Called once, when no version of any tree can reach those trees.
    #[allow(unsafe_code)]
    unsafe fn free_trees(&mut self) {}
}

impl<T> Link<T> for Uncounted<T> {
    type Cx = Draft;
    fn new(node: Node<T, Self>, cx: &Draft) -> Self {
        let stamped = Box::new(Stamped {
            stamp: cx.stamp,
            node,
        });
        Self(NonNull::from(Box::leak(stamped)))
    }
    fn get(&self) -> &Node<T, Self> {
        // SAFETY: a link is read only through a tree that a live version holds (the
        // writer's state, a published state, a snapshot, a group read out of one), and
        // each holds the generation that frees what later writes take out of it (see
        // `retire`): the node outlives the borrow.
        #[allow(unsafe_code)]
        unsafe {
            &self.0.as_ref().node
        }
    }
    fn share(&self) -> Self {
        Self(self.0)
    }
    fn make_mut(&mut self, cx: &mut Draft) -> &mut Node<T, Self>
    where
        T: Clone,
    {
        // SAFETY: only the writer calls this, on its own unpublished draft. A node of
        // this write's stamp was allocated by this write and no other version can
        // reach it, so it is changed in place; any other is copied, the copy replaces
        // it here, and the original (which older versions may still read) is retired,
        // to be freed with the previous generation.
        #[allow(unsafe_code)]
        unsafe {
            if self.0.as_ref().stamp != cx.stamp {
                let copy = Self::new(self.0.as_ref().node.clone(), cx);
                let old = std::mem::replace(self, copy);
                cx.retired.push(Retired::new(old.0.cast(), free_node::<T>));
            }
            &mut self.0.as_mut().node
        }
    }
    fn unlink(self, cx: &mut Draft) {
        // SAFETY: the node left this version of the tree; older versions may still
        // reach it, so it is freed with the previous generation (each node is
        // unlinked once: it is in no tree after this).
        #[allow(unsafe_code)]
        cx.retired
            .push(unsafe { Retired::new(self.0.cast(), free_node::<T>) });
    }
}

/// A short summary of an element's sort key, compared as four big-endian words:
/// `sep(a) < sep(b)` implies `a < b`; equal summaries say nothing (the elements are
/// then compared in full). See [`SepBuilder`].
pub(crate) type Sep = [u64; 4];

/// The `Sep` of a tree that is only iterated, never searched (every routing step
/// falls back to a full comparison, which stays correct).
pub(crate) const NO_SEP: Sep = [0; 4];

/// Builds a [`Sep`]: the first 32 bytes of an order-preserving byte encoding of a sort
/// key, padded with zeros. Truncating and zero-padding keep the order (if two padded
/// prefixes differ, the first difference lies inside both encodings, or the shorter
/// encoding is a prefix of the longer one and sorts first either way).
#[derive(Clone, Copy)]
pub(crate) struct SepBuilder {
    bytes: [u8; 32],
    len: usize,
}

impl SepBuilder {
    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            bytes: [0; 32],
            len: 0,
        }
    }

    #[inline]
    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// Raw bytes, for keys ordered as plain byte strings.
    #[inline]
    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Self {
        self.put(bytes);
        self
    }

    #[inline]
    fn put(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// One component of a tuple of strings ordered component by component: NUL is
    /// escaped as `00 FF` and every component ends with `00 01`, so a shorter
    /// component sorts before any longer one it begins.
    #[cfg(test)]
    pub(crate) fn component(mut self, bytes: &[u8]) -> Self {
        self.add_component(bytes);
        self
    }

    /// [`component`](Self::component) in place (what a relist's build calls for every
    /// object, three times: no copies of the builder).
    #[inline]
    pub(crate) fn add_component(&mut self, bytes: &[u8]) {
        // Runs without NUL (all of a real name) are copied whole; only a NUL is
        // escaped byte by byte.
        let mut rest = bytes;
        while self.len < self.bytes.len() {
            // Only what still fits is scanned (a long name is not read to its end).
            let room = rest.len().min(self.bytes.len() - self.len);
            let run = rest[..room].iter().position(|&b| b == 0).unwrap_or(room);
            self.put(&rest[..run]);
            match rest.get(run..) {
                Some([0, tail @ ..]) => {
                    self.push(0);
                    self.push(0xFF);
                    rest = tail;
                }
                _ => break,
            }
        }
        self.push(0);
        self.push(1);
    }

    #[inline]
    pub(crate) fn finish(&self) -> Sep {
        let word = |i: usize| {
            let mut w = [0; 8];
            w.copy_from_slice(&self.bytes[i * 8..i * 8 + 8]);
            u64::from_be_bytes(w)
        };
        [word(0), word(1), word(2), word(3)]
    }
}

/// What a search looks for: `cmp(element)` is `element.cmp(target)`, and `sep` is the
/// target's [`Sep`] (as `sep_of` would give for an element equal to it).
pub(crate) struct Target<F> {
    pub(crate) sep: Sep,
    pub(crate) cmp: F,
}

/// An inner node's entry. It keeps no copy of its subtree's first element (that would
/// be one more reference count to touch, on a cold object, for every child of every
/// node a write copies), only that element's [`Sep`], inline.
pub(crate) struct Child<T, L> {
    /// How many elements are under `node`.
    len: usize,
    /// The `Sep` of the first element under `node`.
    sep: Sep,
    node: L,
    elements: PhantomData<T>,
}

impl<T, L: Link<T>> Clone for Child<T, L> {
    fn clone(&self) -> Self {
        Self {
            len: self.len,
            sep: self.sep,
            node: self.node.share(),
            elements: PhantomData,
        }
    }
}

/// Copies with room for one more entry: a copied node is about to be written.
fn clone_with_room<E: Clone>(v: &[E]) -> Vec<E> {
    let mut out = Vec::with_capacity(v.len() + 1);
    out.extend_from_slice(v);
    out
}

impl<T: Clone, L: Link<T>> Clone for Node<T, L> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(v) => Node::Leaf(v.clone()),
            Node::Inner(c) => Node::Inner(clone_with_room(c)),
        }
    }
}

impl<T, L: Link<T>> Clone for PTree<T, L> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.as_ref().map(L::share),
            len: self.len,
            elements: PhantomData,
        }
    }
}

impl<T, L> Default for PTree<T, L> {
    fn default() -> Self {
        Self {
            root: None,
            len: 0,
            elements: PhantomData,
        }
    }
}

impl<T, L> std::fmt::Debug for PTree<T, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PTree")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T, L: Link<T>> Node<T, L> {
    fn max(&self) -> usize {
        match self {
            Node::Leaf(_) => LEAF_MAX,
            Node::Inner(_) => INNER_MAX,
        }
    }

    /// Below this width a non-root node is merged with a neighbour.
    fn min(&self) -> usize {
        self.max() / 4
    }

    fn width(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(c) => c.len(),
        }
    }

    /// The `Sep` of the leftmost element of the subtree.
    fn sep(&self, sep_of: &impl Fn(&T) -> Sep) -> Option<Sep> {
        match self {
            Node::Leaf(v) => v.first().map(sep_of),
            Node::Inner(c) => c.first().map(|c| c.sep),
        }
    }

    /// The leftmost element of the subtree.
    fn first(&self) -> Option<&T> {
        let mut node = self;
        loop {
            match node {
                Node::Leaf(v) => return v.first(),
                Node::Inner(c) => node = c.first()?.node.get(),
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Node::Leaf(v) => v.len(),
            Node::Inner(c) => c.iter().map(|c| c.len).sum(),
        }
    }
}

/// The child whose range holds the target: the last one whose first element is not
/// greater than the target (the first child when the target precedes them all).
fn route<T, L: Link<T>, F: Fn(&T) -> Ordering>(children: &[Child<T, L>], t: &Target<F>) -> usize {
    children
        .partition_point(|c| match c.sep.cmp(&t.sep) {
            Ordering::Less => true,
            Ordering::Greater => false,
            // Nodes are never empty (checked by `validate`); an empty one would sort first.
            Ordering::Equal => {
                c.node.get().first().map_or(Ordering::Less, &t.cmp) != Ordering::Greater
            }
        })
        .saturating_sub(1)
}

impl<T, L: Link<T>> Child<T, L> {
    fn of(node: Node<T, L>, sep_of: &impl Fn(&T) -> Sep, cx: &L::Cx) -> Option<Self> {
        Some(Self {
            sep: node.sep(sep_of)?,
            len: node.len(),
            node: L::new(node, cx),
            elements: PhantomData,
        })
    }
}

impl<T: Clone, L: Link<T>> PTree<T, L> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A tree of one element.
    pub(crate) fn single(item: T, cx: &L::Cx) -> Self {
        Self {
            root: Some(L::new(Node::Leaf(smallvec::smallvec![item]), cx)),
            len: 1,
            elements: PhantomData,
        }
    }

    /// Builds a tree from elements already sorted and free of duplicates.
    pub(crate) fn from_sorted(items: Vec<T>, sep_of: impl Fn(&T) -> Sep, cx: &L::Cx) -> Self {
        let len = items.len();
        let mut level: Vec<Child<T, L>> = Vec::with_capacity(len / fill(LEAF_MAX) + 1);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let leaf: Items<T> = items.by_ref().take(fill(LEAF_MAX)).collect();
            level.extend(Child::of(Node::Leaf(leaf), &sep_of, cx));
        }
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len() / fill(INNER_MAX) + 1);
            let mut it = level.into_iter().peekable();
            while it.peek().is_some() {
                let inner: Vec<Child<T, L>> = it.by_ref().take(fill(INNER_MAX)).collect();
                next.extend(Child::of(Node::Inner(inner), &sep_of, cx));
            }
            level = next;
        }
        Self {
            root: level.pop().map(|c| c.node),
            len,
            elements: PhantomData,
        }
    }

    /// The element equal to the target.
    pub(crate) fn get<F: Fn(&T) -> Ordering>(&self, t: &Target<F>) -> Option<&T> {
        let mut node = self.root.as_ref()?.get();
        loop {
            match node {
                Node::Leaf(v) => return v.binary_search_by(&t.cmp).ok().map(|i| &v[i]),
                Node::Inner(c) => node = c[route(c, t)].node.get(),
            }
        }
    }

    /// Inserts `item` (equal to the target `t`), or replaces the element equal to it
    /// and returns the old one. `sep_of` gives an element's [`Sep`].
    pub(crate) fn insert<F: Fn(&T) -> Ordering>(
        &mut self,
        item: T,
        t: &Target<F>,
        sep_of: impl Fn(&T) -> Sep,
        cx: &mut L::Cx,
    ) -> Option<T> {
        debug_assert_eq!(sep_of(&item), t.sep, "target and item disagree");
        debug_assert_eq!((t.cmp)(&item), Ordering::Equal, "target and item disagree");
        let Some(root) = self.root.as_mut() else {
            *self = Self::single(item, cx);
            return None;
        };
        let (old, split, _) = insert_rec(root, item, t, &sep_of, cx);
        if old.is_none() {
            self.len += 1;
        }
        if let Some(right) = split {
            let left = Child {
                len: root.get().len(),
                // A node a split leaves behind keeps its first element.
                sep: root.get().sep(&sep_of).unwrap_or(NO_SEP),
                node: root.share(),
                elements: PhantomData,
            };
            // The old root stays in the tree, as the new root's first child.
            *root = L::new(Node::Inner(vec![left, right]), cx);
        }
        old
    }

    /// Removes and returns the element equal to the target.
    ///
    /// One walk down the tree. A miss still copies the shared nodes on its path (the
    /// store only removes elements it knows are present).
    pub(crate) fn remove<F: Fn(&T) -> Ordering>(
        &mut self,
        t: &Target<F>,
        sep_of: impl Fn(&T) -> Sep,
        cx: &mut L::Cx,
    ) -> Option<T> {
        let root = self.root.as_mut()?;
        let (old, _) = remove_rec(root, t, &sep_of, cx);
        if old.is_some() {
            self.len -= 1;
        }
        if self.len == 0 {
            if let Some(root) = self.root.take() {
                root.unlink(cx);
            }
        } else {
            // Collapse inner roots with a single child.
            while let Some(root) = self.root.take() {
                match root.get() {
                    Node::Inner(c) if c.len() == 1 => {
                        self.root = Some(c[0].node.share());
                        root.unlink(cx);
                    }
                    _ => {
                        self.root = Some(root);
                        break;
                    }
                }
            }
        }
        old
    }

    /// Replaces the element for which `is_old` holds by `item`, where both order equal
    /// to the target `t`; returns whether one was found (if not, nothing is replaced,
    /// though the nodes on the path may have been copied).
    ///
    /// Unlike [`insert`](Self::insert), the leaf is searched with `is_old` alone (for
    /// objects, a pointer comparison on the leaf's own memory) instead of a binary
    /// search that reads the elements it compares (for objects, a cold pointer chase
    /// to their names for each of about five comparisons). Inner nodes route by
    /// separators as ever. The separators on the path stay valid: `item` orders where
    /// the element it replaces did.
    pub(crate) fn replace_where<F: Fn(&T) -> Ordering>(
        &mut self,
        item: T,
        t: &Target<F>,
        is_old: impl Fn(&T) -> bool,
        cx: &mut L::Cx,
    ) -> bool {
        let Some(mut node) = self.root.as_mut() else {
            return false;
        };
        loop {
            match node.make_mut(cx) {
                Node::Leaf(v) => {
                    return match v.iter_mut().find(|e| is_old(e)) {
                        Some(slot) => {
                            *slot = item;
                            true
                        }
                        None => false,
                    };
                }
                Node::Inner(children) => {
                    let i = route(children, t);
                    node = &mut children[i].node;
                }
            }
        }
    }

    /// Applies `f` to the element equal to the target, in place (copying only the
    /// nodes on its path). `f` must not change how the element orders. Returns whether
    /// the element was found.
    pub(crate) fn update<F: Fn(&T) -> Ordering>(
        &mut self,
        t: &Target<F>,
        cx: &mut L::Cx,
        f: impl FnOnce(&mut T, &mut L::Cx),
    ) -> bool {
        match self.root.as_mut() {
            Some(root) => update_rec(root, t, cx, f),
            None => false,
        }
    }

    /// The elements in order.
    pub(crate) fn iter(&self) -> Iter<'_, T, L> {
        let mut it = Iter {
            stack: Vec::new(),
            leaf: [].iter(),
            remaining: self.len,
        };
        if let Some(root) = self.root.as_ref() {
            it.descend(root.get());
        }
        it
    }

    /// In-order iterator from the first element not less than the target: `t.cmp`
    /// may answer `Less` for the elements before it and `Greater` for the rest (a
    /// range's start, such as the first object of a namespace), never `Equal`.
    /// O(log n) to start: it descends once, counting the elements it skips.
    pub(crate) fn iter_from<F: Fn(&T) -> Ordering>(&self, t: &Target<F>) -> Iter<'_, T, L> {
        let mut it = Iter {
            stack: Vec::new(),
            leaf: [].iter(),
            remaining: self.len,
        };
        let Some(root) = self.root.as_ref() else {
            return it;
        };
        let mut node = root.get();
        let mut skipped = 0;
        loop {
            match node {
                Node::Leaf(v) => {
                    let at = v.partition_point(|e| (t.cmp)(e) == Ordering::Less);
                    skipped += at;
                    it.leaf = v[at..].iter();
                    break;
                }
                Node::Inner(c) => {
                    let i = route(c, t);
                    skipped += c[..i].iter().map(|c| c.len).sum::<usize>();
                    it.stack.push(c[i + 1..].iter());
                    node = c[i].node.get();
                }
            }
        }
        it.remaining = self.len - skipped;
        it
    }

    /// Checks every structural invariant; `order` compares two elements and `sep_of`
    /// gives an element's [`Sep`].
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn validate(
        &self,
        order: impl Fn(&T, &T) -> Ordering,
        sep_of: impl Fn(&T) -> Sep,
    ) -> Result<(), String> {
        let Some(root) = self.root.as_ref().map(L::get) else {
            return if self.len == 0 {
                Ok(())
            } else {
                Err(format!("empty tree with len {}", self.len))
            };
        };
        let mut leaf_depth = None;
        let n = validate_rec(root, 0, &mut leaf_depth, &sep_of)?;
        if n != self.len {
            return Err(format!("tree holds {n} elements but len says {}", self.len));
        }
        let mut prev: Option<&T> = None;
        for e in self.iter() {
            if let Some(p) = prev {
                if order(p, e) != Ordering::Less {
                    return Err("elements out of order or duplicated".into());
                }
                if sep_of(p) > sep_of(e) {
                    return Err("separators out of the elements' order".into());
                }
            }
            prev = Some(e);
        }
        Ok(())
    }
}

impl<T: Elem> PTree<T, Uncounted<T>> {
    /// Frees every node of the tree, and the trees its elements own.
    ///
    /// # Safety
    ///
    /// No version of any tree can reach any of those nodes any more, and none of them
    /// was retired (they are freed here, once).
    #[allow(unsafe_code)]
    pub(crate) unsafe fn free_whole(&mut self) {
        if let Some(root) = self.root.take() {
            // SAFETY: the caller's promise.
            unsafe { free_tree::<T>(root.0.cast()) };
        }
        self.len = 0;
    }
}

/// What an insert did below a node: the element it replaced, the right half of a
/// split, and whether the node's first element is now the inserted one.
type Inserted<T, L> = (Option<T>, Option<Child<T, L>>, bool);

fn insert_rec<T: Clone, L: Link<T>, F: Fn(&T) -> Ordering>(
    node: &mut L,
    item: T,
    t: &Target<F>,
    sep_of: &impl Fn(&T) -> Sep,
    cx: &mut L::Cx,
) -> Inserted<T, L> {
    match node.make_mut(cx) {
        Node::Leaf(v) => match v.binary_search_by(&t.cmp) {
            Ok(i) => (Some(std::mem::replace(&mut v[i], item)), None, false),
            Err(i) => {
                v.insert(i, item);
                if v.len() <= LEAF_MAX {
                    return (None, None, i == 0);
                }
                // Appending (the common order of a sequential load) keeps the left leaf
                // full; anything else splits in half.
                let at = if i == v.len() - 1 {
                    LEAF_MAX
                } else {
                    v.len() / 2
                };
                let right: Items<T> = v.drain(at..).collect();
                (None, Child::of(Node::Leaf(right), sep_of, cx), i == 0)
            }
        },
        Node::Inner(children) => {
            let i = route(children, t);
            let (old, split, first) = insert_rec(&mut children[i].node, item, t, sep_of, cx);
            let child = &mut children[i];
            if first {
                child.sep = t.sep;
            }
            match split {
                None => {
                    if old.is_none() {
                        child.len += 1;
                    }
                }
                Some(right) => {
                    child.len = child.node.get().len();
                    children.insert(i + 1, right);
                }
            }
            let first = first && i == 0;
            if children.len() <= INNER_MAX {
                return (old, None, first);
            }
            let right = children.split_off(children.len() / 2);
            children.shrink_to_fit();
            (old, Child::of(Node::Inner(right), sep_of, cx), first)
        }
    }
}

fn update_rec<T: Clone, L: Link<T>, F: Fn(&T) -> Ordering>(
    node: &mut L,
    t: &Target<F>,
    cx: &mut L::Cx,
    f: impl FnOnce(&mut T, &mut L::Cx),
) -> bool {
    match node.make_mut(cx) {
        Node::Leaf(v) => match v.binary_search_by(&t.cmp) {
            Ok(i) => {
                f(&mut v[i], cx);
                true
            }
            Err(_) => false,
        },
        Node::Inner(children) => {
            let i = route(children, t);
            update_rec(&mut children[i].node, t, cx, f)
        }
    }
}

/// Removes the element equal to the target below `node`; also says whether the node's
/// first element changed (its parent's `Sep` for it must then be recomputed).
fn remove_rec<T: Clone, L: Link<T>, F: Fn(&T) -> Ordering>(
    node: &mut L,
    t: &Target<F>,
    sep_of: &impl Fn(&T) -> Sep,
    cx: &mut L::Cx,
) -> (Option<T>, bool) {
    match node.make_mut(cx) {
        Node::Leaf(v) => match v.binary_search_by(&t.cmp) {
            Ok(i) => (Some(v.remove(i)), i == 0),
            Err(_) => (None, false),
        },
        Node::Inner(children) => {
            let i = route(children, t);
            let (old, first) = remove_rec(&mut children[i].node, t, sep_of, cx);
            let Some(old) = old else {
                return (None, false);
            };
            children[i].len -= 1;
            if children[i].len == 0 {
                children.remove(i).node.unlink(cx);
                return (Some(old), i == 0);
            }
            if first && let Some(sep) = children[i].node.get().sep(sep_of) {
                children[i].sep = sep;
            }
            let child = children[i].node.get();
            if child.width() < child.min() && children.len() > 1 {
                let left = if i + 1 < children.len() { i } else { i - 1 };
                merge(children, left, sep_of, cx);
            }
            (Some(old), first && i == 0)
        }
    }
}

/// Merges child `i + 1` into child `i`, splitting the result again if it is too wide.
fn merge<T: Clone, L: Link<T>>(
    children: &mut Vec<Child<T, L>>,
    i: usize,
    sep_of: &impl Fn(&T) -> Sep,
    cx: &mut L::Cx,
) {
    let right = children.remove(i + 1);
    let left = &mut children[i];
    match (left.node.make_mut(cx), right.node.get()) {
        (Node::Leaf(a), Node::Leaf(b)) => a.extend(b.iter().cloned()),
        (Node::Inner(a), Node::Inner(b)) => a.extend_from_slice(b),
        // All leaves are at one depth (checked by `validate`), so siblings are always
        // of one kind.
        _ => unreachable!("siblings of different kinds"),
    }
    left.len += right.len;
    // Its elements (or children) are copied into `left`: the node itself leaves the tree.
    right.node.unlink(cx);
    if left.node.get().width() <= left.node.get().max() {
        return;
    }
    let split = match left.node.make_mut(cx) {
        Node::Leaf(a) => Node::Leaf(a.drain(a.len() / 2..).collect()),
        Node::Inner(a) => Node::Inner(a.split_off(a.len() / 2)),
    };
    let split = Child::of(split, sep_of, cx);
    if let Some(split) = split {
        left.len -= split.len;
        children.insert(i + 1, split);
    }
}

#[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
fn validate_rec<T, L: Link<T>>(
    node: &Node<T, L>,
    depth: usize,
    leaf_depth: &mut Option<usize>,
    sep_of: &impl Fn(&T) -> Sep,
) -> Result<usize, String> {
    let w = node.width();
    if w == 0 || w > node.max() {
        return Err(format!("node width {w} outside 1..={}", node.max()));
    }
    match node {
        Node::Leaf(v) => {
            match *leaf_depth {
                None => *leaf_depth = Some(depth),
                Some(d) if d != depth => return Err(format!("leaves at depths {d} and {depth}")),
                Some(_) => {}
            }
            Ok(v.len())
        }
        Node::Inner(children) => {
            let mut total = 0;
            for c in children {
                let n = validate_rec(c.node.get(), depth + 1, leaf_depth, sep_of)?;
                if n != c.len {
                    return Err(format!(
                        "child holds {n} elements but its len says {}",
                        c.len
                    ));
                }
                if c.node.get().first().map(sep_of) != Some(c.sep) {
                    return Err("a child's separator is not its first element's".into());
                }
                total += n;
            }
            Ok(total)
        }
    }
}

/// In-order iterator over a [`PTree`].
pub(crate) struct Iter<'a, T, L = Counted<T>> {
    stack: Vec<std::slice::Iter<'a, Child<T, L>>>,
    leaf: std::slice::Iter<'a, T>,
    remaining: usize,
}

impl<'a, T, L: Link<T>> Iter<'a, T, L> {
    fn descend(&mut self, mut node: &'a Node<T, L>) {
        loop {
            match node {
                Node::Leaf(v) => {
                    self.leaf = v.iter();
                    return;
                }
                Node::Inner(c) => {
                    let mut it = c.iter();
                    match it.next() {
                        Some(first) => {
                            self.stack.push(it);
                            node = first.node.get();
                        }
                        None => return,
                    }
                }
            }
        }
    }
}

impl<'a, T, L: Link<T>> Iterator for Iter<'a, T, L> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        loop {
            if let Some(x) = self.leaf.next() {
                self.remaining -= 1;
                return Some(x);
            }
            let next = loop {
                let top = self.stack.last_mut()?;
                match top.next() {
                    Some(c) => break c,
                    None => {
                        self.stack.pop();
                    }
                }
            };
            self.descend(next.node.get());
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T, L: Link<T>> ExactSizeIterator for Iter<'_, T, L> {}

impl<T, L> Default for Iter<'_, T, L> {
    /// An iterator over nothing.
    fn default() -> Self {
        Self {
            stack: Vec::new(),
            leaf: [].iter(),
            remaining: 0,
        }
    }
}

impl<T, L> std::fmt::Debug for Iter<'_, T, L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::retire::Generation;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A coarse separator (four keys share one), so that routing takes both the
    /// separator path and the full-comparison fallback.
    fn sep_of_key(k: u32) -> Sep {
        SepBuilder::new().bytes(&(k / 4).to_be_bytes()).finish()
    }

    fn sep_of(e: &(u32, u32)) -> Sep {
        sep_of_key(e.0)
    }

    fn cmp_to(t: u32) -> Target<impl Fn(&(u32, u32)) -> Ordering> {
        Target {
            sep: sep_of_key(t),
            cmp: move |e: &(u32, u32)| e.0.cmp(&t),
        }
    }

    fn order(a: &(u32, u32), b: &(u32, u32)) -> Ordering {
        a.0.cmp(&b.0)
    }

    #[test]
    fn sequential_inserts_fill_leaves_and_stay_valid() {
        let mut t: PTree<(u32, u32)> = PTree::default();
        for i in 0..10_000u32 {
            assert!(t.insert((i, i), &cmp_to(i), sep_of, &mut ()).is_none());
        }
        t.validate(order, sep_of).unwrap();
        assert_eq!(t.len(), 10_000);
        assert!(t.iter().map(|e| e.0).eq(0..10_000));
        for i in (0..10_000u32).step_by(3) {
            assert_eq!(t.remove(&cmp_to(i), sep_of, &mut ()), Some((i, i)));
        }
        t.validate(order, sep_of).unwrap();
        assert!(t.iter().map(|e| e.0).eq((0..10_000).filter(|i| i % 3 != 0)));
    }

    #[test]
    fn old_clone_is_unchanged_by_later_writes() {
        let mut t: PTree<_> =
            PTree::from_sorted((0..1000u32).map(|i| (i, 0)).collect(), sep_of, &());
        let snap = t.clone();
        t.insert((5, 1), &cmp_to(5), sep_of, &mut ());
        t.remove(&cmp_to(7), sep_of, &mut ());
        t.insert((2000, 0), &cmp_to(2000), sep_of, &mut ());
        assert_eq!(snap.len(), 1000);
        assert!(snap.iter().map(|e| e.0).eq(0..1000));
        assert_eq!(snap.get(&cmp_to(5)), Some(&(5, 0)));
        assert_eq!(t.get(&cmp_to(5)), Some(&(5, 1)));
        snap.validate(order, sep_of).unwrap();
        t.validate(order, sep_of).unwrap();
    }

    #[test]
    fn replace_where_finds_the_element_by_identity_and_leaves_old_clones_alone() {
        let mut t: PTree<_> =
            PTree::from_sorted((0..1000u32).map(|i| (i, 0)).collect(), sep_of, &());
        let snap = t.clone();
        for i in (0..1000u32).step_by(7) {
            assert!(t.replace_where((i, 1), &cmp_to(i), |e| *e == (i, 0), &mut ()));
        }
        assert!(
            !t.replace_where((5, 9), &cmp_to(5), |e| e.1 == 9, &mut ()),
            "no such element"
        );
        t.validate(order, sep_of).unwrap();
        assert!(t.iter().all(|e| e.1 == u32::from(e.0 % 7 == 0)));
        assert!(snap.iter().all(|e| e.1 == 0));
        assert_eq!(t.len(), 1000);
    }

    #[test]
    fn iter_from_starts_at_the_first_element_not_less_than_the_target() {
        let items: Vec<(u32, u32)> = (0..2000).map(|k| (k * 2, k)).collect();
        let tree: PTree<(u32, u32)> = PTree::from_sorted(items, sep_of, &());
        for start in [0u32, 1, 2, 63, 64, 1001, 3998, 3999, 4000, 5000] {
            let t = Target {
                sep: sep_of_key(start),
                cmp: |e: &(u32, u32)| {
                    if e.0 < start {
                        Ordering::Less
                    } else {
                        Ordering::Greater
                    }
                },
            };
            let got: Vec<u32> = tree.iter_from(&t).map(|e| e.0).collect();
            let want: Vec<u32> = (0..2000).map(|k| k * 2).filter(|k| *k >= start).collect();
            assert_eq!(got, want, "from {start}");
            assert_eq!(tree.iter_from(&t).len(), want.len(), "count from {start}");
        }
        let empty: PTree<(u32, u32)> = PTree::default();
        let t = Target {
            sep: sep_of_key(0),
            cmp: |_: &(u32, u32)| Ordering::Greater,
        };
        assert_eq!(empty.iter_from(&t).count(), 0);
    }

    #[test]
    fn update_changes_in_place() {
        let mut t: PTree<_> =
            PTree::from_sorted((0..500u32).map(|i| (i, 0)).collect(), sep_of, &());
        let snap = t.clone();
        for i in 0..500u32 {
            assert!(t.update(&cmp_to(i), &mut (), |e, _| e.1 = i + 1));
        }
        assert!(!t.update(&cmp_to(9999), &mut (), |_, _| unreachable!()));
        t.validate(order, sep_of).unwrap();
        assert!(t.iter().all(|e| e.1 == e.0 + 1));
        assert!(snap.iter().all(|e| e.1 == 0));
    }

    /// An element that owns a heap allocation, so that Miri sees a leak or a double
    /// free of elements as well as of nodes.
    type Owned = (u32, Arc<u32>);

    fn owned_sep(e: &Owned) -> Sep {
        sep_of_key(e.0)
    }

    fn owned_cmp_to(t: u32) -> Target<impl Fn(&Owned) -> Ordering> {
        Target {
            sep: sep_of_key(t),
            cmp: move |e: &Owned| e.0.cmp(&t),
        }
    }

    impl Elem for Owned {}

    /// An old version of a tree, the generation that keeps it, and what it held.
    type Kept = (StateTree<Owned>, Arc<Generation<()>>, Vec<(u32, u32)>);

    /// Uncounted trees as the writer drives them: each write a draft with a new stamp,
    /// its retired nodes handed to the generation of the version before it, old
    /// versions kept (as snapshots) and checked unchanged; at the end the last version
    /// is retired whole and every generation dropped, so that Miri reports any node
    /// freed twice, read after its free, or never freed.
    fn drive_uncounted(ops: &[(bool, u32, u32)], initial: u32, keep_every: usize) {
        let elem = |k: u32, v: u32| (k, Arc::new(v));
        let mut model: BTreeMap<u32, u32> = (0..initial).map(|k| (k, 0)).collect();
        let built = Draft::new(0);
        let mut tree: StateTree<Owned> = PTree::from_sorted(
            (0..initial).map(|k| elem(k, 0)).collect(),
            owned_sep,
            &built,
        );
        let mut generation = Generation::<()>::new();
        let mut kept: Vec<Kept> = Vec::new();
        for (n, chunk) in ops.chunks(3).enumerate() {
            if n % keep_every == 0 {
                let seen = model.iter().map(|(k, v)| (*k, *v)).collect();
                kept.push((tree.clone(), Arc::clone(&generation), seen));
            }
            let mut cx = Draft::new(n as u64 + 1);
            for &(ins, k, v) in chunk {
                if ins {
                    let old = tree.insert(elem(k, v), &owned_cmp_to(k), owned_sep, &mut cx);
                    assert_eq!(old.map(|e| *e.1), model.insert(k, v));
                } else if v % 2 == 0 {
                    let old = tree.remove(&owned_cmp_to(k), owned_sep, &mut cx);
                    assert_eq!(old.map(|e| *e.1), model.remove(&k));
                } else {
                    let found = tree.update(&owned_cmp_to(k), &mut cx, |e, _| e.1 = Arc::new(v));
                    assert_eq!(found, model.contains_key(&k));
                    if let Some(m) = model.get_mut(&k) {
                        *m = v;
                    }
                }
            }
            let next = Generation::new();
            generation.link(&next, [], cx.finish());
            generation = next;
            tree.validate(|a, b| a.0.cmp(&b.0), owned_sep).unwrap();
            assert!(
                tree.iter()
                    .map(|e| (e.0, *e.1))
                    .eq(model.iter().map(|(k, v)| (*k, *v)))
            );
        }
        for (old, _generation, seen) in &kept {
            assert!(old.iter().map(|e| (e.0, *e.1)).eq(seen.iter().copied()));
        }
        drop(kept);
        let mut cx = Draft::new(u64::MAX);
        cx.retire_tree(&tree);
        generation.retire_nodes(cx.finish());
    }

    #[test]
    fn uncounted_versions_stay_unchanged_and_every_node_is_freed_once() {
        let n = if cfg!(miri) { 300 } else { 6_000 };
        let mut x = 7u32;
        let ops: Vec<(bool, u32, u32)> = (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                (!x.is_multiple_of(3), (x >> 8) % 400, x >> 20)
            })
            .collect();
        drive_uncounted(&ops, 200, 5);
        drive_uncounted(&ops, 0, 1);
    }

    proptest! {
        #[test]
        fn matches_btreemap(ops in proptest::collection::vec((any::<bool>(), 0u32..300, any::<u32>()), 0..2000),
                            initial in 0u32..200) {
            let mut t: PTree<_> = PTree::from_sorted((0..initial).map(|i| (i, 0)).collect(), sep_of, &());
            let mut m: BTreeMap<u32, u32> = (0..initial).map(|i| (i, 0)).collect();
            for (ins, k, v) in ops {
                if ins {
                    prop_assert_eq!(t.insert((k, v), &cmp_to(k), sep_of, &mut ()).map(|e| e.1), m.insert(k, v));
                } else {
                    prop_assert_eq!(t.remove(&cmp_to(k), sep_of, &mut ()).map(|e| e.1), m.remove(&k));
                }
                prop_assert_eq!(t.len(), m.len());
                t.validate(order, sep_of).map_err(TestCaseError::fail)?;
            }
            t.validate(order, sep_of).map_err(TestCaseError::fail)?;
            prop_assert!(t.iter().map(|e| (e.0, e.1)).eq(m.into_iter()));
        }
    }

    fn tuple_sep(t: &[String]) -> Sep {
        t.iter()
            .fold(SepBuilder::new(), |b, c| b.component(c.as_bytes()))
            .finish()
    }

    proptest! {
        /// `component` is the escaping it documents, cut to 32 bytes.
        #[test]
        fn component_escapes_nul_and_terminates(
            parts in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..24), 0..4),
        ) {
            let mut reference = Vec::new();
            let mut sep = SepBuilder::new();
            for p in &parts {
                for &b in p {
                    reference.push(b);
                    if b == 0 {
                        reference.push(0xFF);
                    }
                }
                reference.extend([0, 1]);
                sep = sep.component(p);
            }
            reference.resize(32, 0);
            prop_assert_eq!(SepBuilder::new().bytes(&reference).finish(), sep.finish());
        }

        /// A `Sep` never contradicts the order it summarises: tuples of strings
        /// compared component by component, and plain byte strings.
        #[test]
        fn seps_keep_the_order(
            a in proptest::collection::vec("[a\\x00/é]{0,20}", 3),
            b in proptest::collection::vec("[a\\x00/é]{0,20}", 3),
            x in proptest::collection::vec(0u8..3, 0..40),
            y in proptest::collection::vec(0u8..3, 0..40),
        ) {
            let (sa, sb) = (tuple_sep(&a), tuple_sep(&b));
            if sa != sb {
                prop_assert_eq!(sa.cmp(&sb), a.cmp(&b));
            }
            if a == b {
                prop_assert_eq!(sa, sb);
            }
            let (sx, sy) = (SepBuilder::new().bytes(&x).finish(), SepBuilder::new().bytes(&y).finish());
            if sx != sy {
                prop_assert_eq!(sx.cmp(&sy), x.cmp(&y));
            }
        }
    }
}
