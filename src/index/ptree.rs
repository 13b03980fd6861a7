//! A persistent (copy-on-write) B+tree of sorted elements.
//!
//! Cloning a tree is one reference-count increment. A write copies only the nodes on
//! the path from the root to the leaf it changes (`Arc::make_mut`), so an old clone
//! (a published snapshot) stays valid and unchanged, and a new one shares every
//! untouched node with it. This is what makes `list()` O(1) on an unchanged store and
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

pub(crate) struct PTree<T> {
    root: Option<Arc<Node<T>>>,
    len: usize,
}

enum Node<T> {
    Leaf(Vec<T>),
    Inner(Vec<Child<T>>),
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
    pub(crate) fn new() -> Self {
        Self {
            bytes: [0; 32],
            len: 0,
        }
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// Raw bytes, for keys ordered as plain byte strings.
    pub(crate) fn bytes(mut self, bytes: &[u8]) -> Self {
        let n = bytes.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    /// One component of a tuple of strings ordered component by component: NUL is
    /// escaped as `00 FF` and every component ends with `00 01`, so a shorter
    /// component sorts before any longer one it begins.
    pub(crate) fn component(mut self, bytes: &[u8]) -> Self {
        // Runs without NUL (all of a real name) are copied whole; only a NUL is
        // escaped byte by byte.
        let mut rest = bytes;
        while self.len < self.bytes.len() {
            let run = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            self = self.bytes(&rest[..run]);
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
        self
    }

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
struct Child<T> {
    /// How many elements are under `node`.
    len: usize,
    /// The `Sep` of the first element under `node`.
    sep: Sep,
    node: Arc<Node<T>>,
}

impl<T> Clone for Child<T> {
    fn clone(&self) -> Self {
        Self {
            len: self.len,
            sep: self.sep,
            node: Arc::clone(&self.node),
        }
    }
}

/// Copies with room for one more entry: a copied node is about to be written.
fn clone_with_room<E: Clone>(v: &[E]) -> Vec<E> {
    let mut out = Vec::with_capacity(v.len() + 1);
    out.extend_from_slice(v);
    out
}

impl<T: Clone> Clone for Node<T> {
    fn clone(&self) -> Self {
        match self {
            Node::Leaf(v) => Node::Leaf(clone_with_room(v)),
            Node::Inner(c) => Node::Inner(clone_with_room(c)),
        }
    }
}

impl<T> Clone for PTree<T> {
    fn clone(&self) -> Self {
        Self {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<T> Default for PTree<T> {
    fn default() -> Self {
        Self { root: None, len: 0 }
    }
}

impl<T> std::fmt::Debug for PTree<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PTree")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<T> Node<T> {
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
                Node::Inner(c) => node = &c.first()?.node,
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
fn route<T, F: Fn(&T) -> Ordering>(children: &[Child<T>], t: &Target<F>) -> usize {
    children
        .partition_point(|c| match c.sep.cmp(&t.sep) {
            Ordering::Less => true,
            Ordering::Greater => false,
            // Nodes are never empty (checked by `validate`); an empty one would sort first.
            Ordering::Equal => c.node.first().map_or(Ordering::Less, &t.cmp) != Ordering::Greater,
        })
        .saturating_sub(1)
}

impl<T> Child<T> {
    fn of(node: Node<T>, sep_of: &impl Fn(&T) -> Sep) -> Option<Self> {
        Some(Self {
            sep: node.sep(sep_of)?,
            len: node.len(),
            node: Arc::new(node),
        })
    }
}

impl<T: Clone> PTree<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A tree of one element.
    pub(crate) fn single(item: T) -> Self {
        Self {
            root: Some(Arc::new(Node::Leaf(vec![item]))),
            len: 1,
        }
    }

    /// Builds a tree from elements already sorted and free of duplicates.
    pub(crate) fn from_sorted(items: Vec<T>, sep_of: impl Fn(&T) -> Sep) -> Self {
        let len = items.len();
        let mut level: Vec<Child<T>> = Vec::with_capacity(len / fill(LEAF_MAX) + 1);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let leaf: Vec<T> = items.by_ref().take(fill(LEAF_MAX)).collect();
            level.extend(Child::of(Node::Leaf(leaf), &sep_of));
        }
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len() / fill(INNER_MAX) + 1);
            let mut it = level.into_iter().peekable();
            while it.peek().is_some() {
                let inner: Vec<Child<T>> = it.by_ref().take(fill(INNER_MAX)).collect();
                next.extend(Child::of(Node::Inner(inner), &sep_of));
            }
            level = next;
        }
        Self {
            root: level.pop().map(|c| c.node),
            len,
        }
    }

    /// The element equal to the target.
    pub(crate) fn get<F: Fn(&T) -> Ordering>(&self, t: &Target<F>) -> Option<&T> {
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Leaf(v) => return v.binary_search_by(&t.cmp).ok().map(|i| &v[i]),
                Node::Inner(c) => node = &c[route(c, t)].node,
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
    ) -> Option<T> {
        debug_assert_eq!(sep_of(&item), t.sep, "target and item disagree");
        debug_assert_eq!((t.cmp)(&item), Ordering::Equal, "target and item disagree");
        let Some(root) = self.root.as_mut() else {
            *self = Self::single(item);
            return None;
        };
        let (old, split, _) = insert_rec(root, item, t, &sep_of);
        if old.is_none() {
            self.len += 1;
        }
        if let Some(right) = split {
            let left = Child {
                len: root.len(),
                // A node a split leaves behind keeps its first element.
                sep: root.sep(&sep_of).unwrap_or(NO_SEP),
                node: Arc::clone(root),
            };
            *root = Arc::new(Node::Inner(vec![left, right]));
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
    ) -> Option<T> {
        let root = self.root.as_mut()?;
        let (old, _) = remove_rec(root, t, &sep_of);
        if old.is_some() {
            self.len -= 1;
        }
        if self.len == 0 {
            self.root = None;
        } else {
            // Collapse inner roots with a single child.
            while let Some(Node::Inner(c)) = self.root.as_deref() {
                if c.len() != 1 {
                    break;
                }
                let only = Arc::clone(&c[0].node);
                self.root = Some(only);
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
    ) -> bool {
        let Some(mut node) = self.root.as_mut() else {
            return false;
        };
        loop {
            match Arc::make_mut(node) {
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
        f: impl FnOnce(&mut T),
    ) -> bool {
        match self.root.as_mut() {
            Some(root) => update_rec(root, t, f),
            None => false,
        }
    }

    /// The elements in order.
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        let mut it = Iter {
            stack: Vec::new(),
            leaf: [].iter(),
            remaining: self.len,
        };
        if let Some(root) = self.root.as_deref() {
            it.descend(root);
        }
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
        let Some(root) = self.root.as_deref() else {
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

/// What an insert did below a node: the element it replaced, the right half of a
/// split, and whether the node's first element is now the inserted one.
type Inserted<T> = (Option<T>, Option<Child<T>>, bool);

fn insert_rec<T: Clone, F: Fn(&T) -> Ordering>(
    node: &mut Arc<Node<T>>,
    item: T,
    t: &Target<F>,
    sep_of: &impl Fn(&T) -> Sep,
) -> Inserted<T> {
    match Arc::make_mut(node) {
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
                let right = v.split_off(at);
                v.shrink_to_fit();
                (None, Child::of(Node::Leaf(right), sep_of), i == 0)
            }
        },
        Node::Inner(children) => {
            let i = route(children, t);
            let (old, split, first) = insert_rec(&mut children[i].node, item, t, sep_of);
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
                    child.len = child.node.len();
                    children.insert(i + 1, right);
                }
            }
            let first = first && i == 0;
            if children.len() <= INNER_MAX {
                return (old, None, first);
            }
            let right = children.split_off(children.len() / 2);
            children.shrink_to_fit();
            (old, Child::of(Node::Inner(right), sep_of), first)
        }
    }
}

fn update_rec<T: Clone, F: Fn(&T) -> Ordering>(
    node: &mut Arc<Node<T>>,
    t: &Target<F>,
    f: impl FnOnce(&mut T),
) -> bool {
    match Arc::make_mut(node) {
        Node::Leaf(v) => match v.binary_search_by(&t.cmp) {
            Ok(i) => {
                f(&mut v[i]);
                true
            }
            Err(_) => false,
        },
        Node::Inner(children) => {
            let i = route(children, t);
            update_rec(&mut children[i].node, t, f)
        }
    }
}

/// Removes the element equal to the target below `node`; also says whether the node's
/// first element changed (its parent's `Sep` for it must then be recomputed).
fn remove_rec<T: Clone, F: Fn(&T) -> Ordering>(
    node: &mut Arc<Node<T>>,
    t: &Target<F>,
    sep_of: &impl Fn(&T) -> Sep,
) -> (Option<T>, bool) {
    match Arc::make_mut(node) {
        Node::Leaf(v) => match v.binary_search_by(&t.cmp) {
            Ok(i) => (Some(v.remove(i)), i == 0),
            Err(_) => (None, false),
        },
        Node::Inner(children) => {
            let i = route(children, t);
            let (old, first) = remove_rec(&mut children[i].node, t, sep_of);
            let Some(old) = old else {
                return (None, false);
            };
            children[i].len -= 1;
            if children[i].len == 0 {
                children.remove(i);
                return (Some(old), i == 0);
            }
            if first && let Some(sep) = children[i].node.sep(sep_of) {
                children[i].sep = sep;
            }
            if children[i].node.width() < children[i].node.min() && children.len() > 1 {
                let left = if i + 1 < children.len() { i } else { i - 1 };
                merge(children, left, sep_of);
            }
            (Some(old), first && i == 0)
        }
    }
}

/// Merges child `i + 1` into child `i`, splitting the result again if it is too wide.
fn merge<T: Clone>(children: &mut Vec<Child<T>>, i: usize, sep_of: &impl Fn(&T) -> Sep) {
    let right = children.remove(i + 1);
    let left = &mut children[i];
    match (Arc::make_mut(&mut left.node), &*right.node) {
        (Node::Leaf(a), Node::Leaf(b)) => a.extend_from_slice(b),
        (Node::Inner(a), Node::Inner(b)) => a.extend_from_slice(b),
        // All leaves are at one depth (checked by `validate`), so siblings are always
        // of one kind.
        _ => unreachable!("siblings of different kinds"),
    }
    left.len += right.len;
    if left.node.width() <= left.node.max() {
        return;
    }
    let split = match Arc::make_mut(&mut left.node) {
        Node::Leaf(a) => {
            let r = a.split_off(a.len() / 2);
            Child::of(Node::Leaf(r), sep_of)
        }
        Node::Inner(a) => {
            let r = a.split_off(a.len() / 2);
            Child::of(Node::Inner(r), sep_of)
        }
    };
    if let Some(split) = split {
        left.len -= split.len;
        children.insert(i + 1, split);
    }
}

#[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
fn validate_rec<T>(
    node: &Node<T>,
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
                let n = validate_rec(&c.node, depth + 1, leaf_depth, sep_of)?;
                if n != c.len {
                    return Err(format!(
                        "child holds {n} elements but its len says {}",
                        c.len
                    ));
                }
                if c.node.first().map(sep_of) != Some(c.sep) {
                    return Err("a child's separator is not its first element's".into());
                }
                total += n;
            }
            Ok(total)
        }
    }
}

/// In-order iterator over a [`PTree`].
pub(crate) struct Iter<'a, T> {
    stack: Vec<std::slice::Iter<'a, Child<T>>>,
    leaf: std::slice::Iter<'a, T>,
    remaining: usize,
}

impl<'a, T> Iter<'a, T> {
    fn descend(&mut self, mut node: &'a Node<T>) {
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
                            node = &first.node;
                        }
                        None => return,
                    }
                }
            }
        }
    }
}

impl<'a, T> Iterator for Iter<'a, T> {
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
            self.descend(&next.node);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<T> ExactSizeIterator for Iter<'_, T> {}

impl<T> std::fmt::Debug for Iter<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let mut t = PTree::default();
        for i in 0..10_000u32 {
            assert!(t.insert((i, i), &cmp_to(i), sep_of).is_none());
        }
        t.validate(order, sep_of).unwrap();
        assert_eq!(t.len(), 10_000);
        assert!(t.iter().map(|e| e.0).eq(0..10_000));
        for i in (0..10_000u32).step_by(3) {
            assert_eq!(t.remove(&cmp_to(i), sep_of), Some((i, i)));
        }
        t.validate(order, sep_of).unwrap();
        assert!(t.iter().map(|e| e.0).eq((0..10_000).filter(|i| i % 3 != 0)));
    }

    #[test]
    fn old_clone_is_unchanged_by_later_writes() {
        let mut t = PTree::from_sorted((0..1000u32).map(|i| (i, 0)).collect(), sep_of);
        let snap = t.clone();
        t.insert((5, 1), &cmp_to(5), sep_of);
        t.remove(&cmp_to(7), sep_of);
        t.insert((2000, 0), &cmp_to(2000), sep_of);
        assert_eq!(snap.len(), 1000);
        assert!(snap.iter().map(|e| e.0).eq(0..1000));
        assert_eq!(snap.get(&cmp_to(5)), Some(&(5, 0)));
        assert_eq!(t.get(&cmp_to(5)), Some(&(5, 1)));
        snap.validate(order, sep_of).unwrap();
        t.validate(order, sep_of).unwrap();
    }

    #[test]
    fn replace_where_finds_the_element_by_identity_and_leaves_old_clones_alone() {
        let mut t = PTree::from_sorted((0..1000u32).map(|i| (i, 0)).collect(), sep_of);
        let snap = t.clone();
        for i in (0..1000u32).step_by(7) {
            assert!(t.replace_where((i, 1), &cmp_to(i), |e| *e == (i, 0)));
        }
        assert!(
            !t.replace_where((5, 9), &cmp_to(5), |e| e.1 == 9),
            "no such element"
        );
        t.validate(order, sep_of).unwrap();
        assert!(t.iter().all(|e| e.1 == u32::from(e.0 % 7 == 0)));
        assert!(snap.iter().all(|e| e.1 == 0));
        assert_eq!(t.len(), 1000);
    }

    #[test]
    fn update_changes_in_place() {
        let mut t = PTree::from_sorted((0..500u32).map(|i| (i, 0)).collect(), sep_of);
        let snap = t.clone();
        for i in 0..500u32 {
            assert!(t.update(&cmp_to(i), |e| e.1 = i + 1));
        }
        assert!(!t.update(&cmp_to(9999), |_| unreachable!()));
        t.validate(order, sep_of).unwrap();
        assert!(t.iter().all(|e| e.1 == e.0 + 1));
        assert!(snap.iter().all(|e| e.1 == 0));
    }

    proptest! {
        #[test]
        fn matches_btreemap(ops in proptest::collection::vec((any::<bool>(), 0u32..300, any::<u32>()), 0..2000),
                            initial in 0u32..200) {
            let mut t = PTree::from_sorted((0..initial).map(|i| (i, 0)).collect(), sep_of);
            let mut m: BTreeMap<u32, u32> = (0..initial).map(|i| (i, 0)).collect();
            for (ins, k, v) in ops {
                if ins {
                    prop_assert_eq!(t.insert((k, v), &cmp_to(k), sep_of).map(|e| e.1), m.insert(k, v));
                } else {
                    prop_assert_eq!(t.remove(&cmp_to(k), sep_of).map(|e| e.1), m.remove(&k));
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
