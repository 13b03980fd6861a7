//! A persistent (copy-on-write) B+tree of sorted elements.
//!
//! Cloning a tree is one reference-count increment. A write copies only the nodes on
//! the path from the root to the leaf it changes (`Arc::make_mut`), so an old clone
//! (a published snapshot) stays valid and unchanged, and a new one shares every
//! untouched node with it. This is what makes `list()` O(1) on an unchanged store and
//! cheap right after a write: no rebuild of N entries.
//!
//! The tree has no `Ord` bound: every operation takes a comparator `cmp(element)` that
//! says how an element is ordered relative to the target (`element.cmp(target)`), so
//! the element type can be ordered by fields it reaches through a pointer (objects by
//! namespace, name and uid) without copying those fields.
//!
//! Single-threaded: the store wraps it; its invariants are checked by [`PTree::validate`]
//! from unit tests, property tests and the fuzz targets.

use std::cmp::Ordering;

use crate::sync::Arc;

/// Most elements in a leaf. A write copies the leaf it changes, cloning every element
/// (for objects, a reference-count increment on a usually cold cache line); measured,
/// 16-wide leaves made writes no faster (the comparisons on the way down dominate) and
/// cost more memory.
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

/// An inner node's entry. It keeps no copy of its subtree's first element for routing:
/// such a copy would be one more reference count to touch, on a cold object, for every
/// child of every node a write copies (and one more reference that could keep a replaced
/// object alive). Routing reads the first element through the subtree instead.
struct Child<T> {
    /// How many elements are under `node`.
    len: usize,
    node: Arc<Node<T>>,
}

impl<T> Clone for Child<T> {
    fn clone(&self) -> Self {
        Self {
            len: self.len,
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
fn route<T>(children: &[Child<T>], cmp: &impl Fn(&T) -> Ordering) -> usize {
    // Nodes are never empty (checked by `validate`); an empty one would sort first.
    children
        .partition_point(|c| c.node.first().map_or(Ordering::Less, cmp) != Ordering::Greater)
        .saturating_sub(1)
}

impl<T> Child<T> {
    fn of(node: Node<T>) -> Option<Self> {
        node.first()?;
        Some(Self {
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

    /// Builds a tree from elements already sorted and free of duplicates.
    pub(crate) fn from_sorted(items: Vec<T>) -> Self {
        let len = items.len();
        let mut level: Vec<Child<T>> = Vec::with_capacity(len / fill(LEAF_MAX) + 1);
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let leaf: Vec<T> = items.by_ref().take(fill(LEAF_MAX)).collect();
            level.extend(Child::of(Node::Leaf(leaf)));
        }
        while level.len() > 1 {
            let mut next = Vec::with_capacity(level.len() / fill(INNER_MAX) + 1);
            let mut it = level.into_iter().peekable();
            while it.peek().is_some() {
                let inner: Vec<Child<T>> = it.by_ref().take(fill(INNER_MAX)).collect();
                next.extend(Child::of(Node::Inner(inner)));
            }
            level = next;
        }
        Self {
            root: level.pop().map(|c| c.node),
            len,
        }
    }

    /// The element equal to the target.
    pub(crate) fn get(&self, cmp: impl Fn(&T) -> Ordering) -> Option<&T> {
        let mut node = self.root.as_deref()?;
        loop {
            match node {
                Node::Leaf(v) => return v.binary_search_by(&cmp).ok().map(|i| &v[i]),
                Node::Inner(c) => node = &c[route(c, &cmp)].node,
            }
        }
    }

    /// Inserts `item`, or replaces the element equal to it and returns the old one.
    pub(crate) fn insert(&mut self, item: T, cmp: impl Fn(&T) -> Ordering) -> Option<T> {
        let Some(root) = self.root.as_mut() else {
            self.root = Some(Arc::new(Node::Leaf(vec![item])));
            self.len = 1;
            return None;
        };
        let (old, split) = insert_rec(root, item, &cmp);
        if old.is_none() {
            self.len += 1;
        }
        if let Some(right) = split {
            let left = Child {
                len: root.len(),
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
    pub(crate) fn remove(&mut self, cmp: impl Fn(&T) -> Ordering) -> Option<T> {
        let root = self.root.as_mut()?;
        let old = remove_rec(root, &cmp);
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

    /// Applies `f` to the element equal to the target, in place (copying only the
    /// nodes on its path). `f` must not change how the element orders. Returns whether
    /// the element was found.
    pub(crate) fn update(&mut self, cmp: impl Fn(&T) -> Ordering, f: impl FnOnce(&mut T)) -> bool {
        match self.root.as_mut() {
            Some(root) => update_rec(root, &cmp, f),
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

    /// Checks every structural invariant; `order` compares two elements.
    pub(crate) fn validate(&self, order: impl Fn(&T, &T) -> Ordering) -> Result<(), String> {
        let Some(root) = self.root.as_deref() else {
            return if self.len == 0 {
                Ok(())
            } else {
                Err(format!("empty tree with len {}", self.len))
            };
        };
        let mut leaf_depth = None;
        let n = validate_rec(root, 0, &mut leaf_depth)?;
        if n != self.len {
            return Err(format!("tree holds {n} elements but len says {}", self.len));
        }
        let mut prev: Option<&T> = None;
        for e in self.iter() {
            if let Some(p) = prev
                && order(p, e) != Ordering::Less
            {
                return Err("elements out of order or duplicated".into());
            }
            prev = Some(e);
        }
        Ok(())
    }
}

fn insert_rec<T: Clone>(
    node: &mut Arc<Node<T>>,
    item: T,
    cmp: &impl Fn(&T) -> Ordering,
) -> (Option<T>, Option<Child<T>>) {
    match Arc::make_mut(node) {
        Node::Leaf(v) => match v.binary_search_by(cmp) {
            Ok(i) => (Some(std::mem::replace(&mut v[i], item)), None),
            Err(i) => {
                v.insert(i, item);
                if v.len() <= LEAF_MAX {
                    return (None, None);
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
                (None, Child::of(Node::Leaf(right)))
            }
        },
        Node::Inner(children) => {
            let i = route(children, cmp);
            let (old, split) = insert_rec(&mut children[i].node, item, cmp);
            let child = &mut children[i];
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
            if children.len() <= INNER_MAX {
                return (old, None);
            }
            let right = children.split_off(children.len() / 2);
            children.shrink_to_fit();
            (old, Child::of(Node::Inner(right)))
        }
    }
}

fn update_rec<T: Clone>(
    node: &mut Arc<Node<T>>,
    cmp: &impl Fn(&T) -> Ordering,
    f: impl FnOnce(&mut T),
) -> bool {
    match Arc::make_mut(node) {
        Node::Leaf(v) => match v.binary_search_by(cmp) {
            Ok(i) => {
                f(&mut v[i]);
                true
            }
            Err(_) => false,
        },
        Node::Inner(children) => {
            let i = route(children, cmp);
            update_rec(&mut children[i].node, cmp, f)
        }
    }
}

fn remove_rec<T: Clone>(node: &mut Arc<Node<T>>, cmp: &impl Fn(&T) -> Ordering) -> Option<T> {
    match Arc::make_mut(node) {
        Node::Leaf(v) => v.binary_search_by(cmp).ok().map(|i| v.remove(i)),
        Node::Inner(children) => {
            let i = route(children, cmp);
            let old = remove_rec(&mut children[i].node, cmp)?;
            children[i].len -= 1;
            if children[i].len == 0 {
                children.remove(i);
                return Some(old);
            }
            if children[i].node.width() < children[i].node.min() && children.len() > 1 {
                let left = if i + 1 < children.len() { i } else { i - 1 };
                merge(children, left);
            }
            Some(old)
        }
    }
}

/// Merges child `i + 1` into child `i`, splitting the result again if it is too wide.
fn merge<T: Clone>(children: &mut Vec<Child<T>>, i: usize) {
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
            Child::of(Node::Leaf(r))
        }
        Node::Inner(a) => {
            let r = a.split_off(a.len() / 2);
            Child::of(Node::Inner(r))
        }
    };
    if let Some(split) = split {
        left.len -= split.len;
        children.insert(i + 1, split);
    }
}

fn validate_rec<T>(
    node: &Node<T>,
    depth: usize,
    leaf_depth: &mut Option<usize>,
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
                let n = validate_rec(&c.node, depth + 1, leaf_depth)?;
                if n != c.len {
                    return Err(format!(
                        "child holds {n} elements but its len says {}",
                        c.len
                    ));
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

    fn cmp_to(t: u32) -> impl Fn(&(u32, u32)) -> Ordering {
        move |e| e.0.cmp(&t)
    }

    fn order(a: &(u32, u32), b: &(u32, u32)) -> Ordering {
        a.0.cmp(&b.0)
    }

    #[test]
    fn sequential_inserts_fill_leaves_and_stay_valid() {
        let mut t = PTree::default();
        for i in 0..10_000u32 {
            assert!(t.insert((i, i), cmp_to(i)).is_none());
        }
        t.validate(order).unwrap();
        assert_eq!(t.len(), 10_000);
        assert!(t.iter().map(|e| e.0).eq(0..10_000));
        for i in (0..10_000u32).step_by(3) {
            assert_eq!(t.remove(cmp_to(i)), Some((i, i)));
        }
        t.validate(order).unwrap();
        assert!(t.iter().map(|e| e.0).eq((0..10_000).filter(|i| i % 3 != 0)));
    }

    #[test]
    fn old_clone_is_unchanged_by_later_writes() {
        let mut t = PTree::from_sorted((0..1000u32).map(|i| (i, 0)).collect());
        let snap = t.clone();
        t.insert((5, 1), cmp_to(5));
        t.remove(cmp_to(7));
        t.insert((2000, 0), cmp_to(2000));
        assert_eq!(snap.len(), 1000);
        assert!(snap.iter().map(|e| e.0).eq(0..1000));
        assert_eq!(snap.get(cmp_to(5)), Some(&(5, 0)));
        assert_eq!(t.get(cmp_to(5)), Some(&(5, 1)));
        snap.validate(order).unwrap();
        t.validate(order).unwrap();
    }

    #[test]
    fn update_changes_in_place() {
        let mut t = PTree::from_sorted((0..500u32).map(|i| (i, 0)).collect());
        let snap = t.clone();
        for i in 0..500u32 {
            assert!(t.update(cmp_to(i), |e| e.1 = i + 1));
        }
        assert!(!t.update(cmp_to(9999), |_| unreachable!()));
        t.validate(order).unwrap();
        assert!(t.iter().all(|e| e.1 == e.0 + 1));
        assert!(snap.iter().all(|e| e.1 == 0));
    }

    proptest! {
        #[test]
        fn matches_btreemap(ops in proptest::collection::vec((any::<bool>(), 0u32..300, any::<u32>()), 0..2000),
                            initial in 0u32..200) {
            let mut t = PTree::from_sorted((0..initial).map(|i| (i, 0)).collect());
            let mut m: BTreeMap<u32, u32> = (0..initial).map(|i| (i, 0)).collect();
            for (ins, k, v) in ops {
                if ins {
                    prop_assert_eq!(t.insert((k, v), cmp_to(k)).map(|e| e.1), m.insert(k, v));
                } else {
                    prop_assert_eq!(t.remove(cmp_to(k)).map(|e| e.1), m.remove(&k));
                }
                prop_assert_eq!(t.len(), m.len());
            }
            t.validate(order).map_err(TestCaseError::fail)?;
            prop_assert!(t.iter().map(|e| (e.0, e.1)).eq(m.into_iter()));
        }
    }
}
