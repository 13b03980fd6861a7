//! [`Objects`]: what a `get` returns.

use std::fmt;
use std::ops::Deref;

use smallvec::SmallVec;

use crate::sync::Arc;

/// The objects a `get` returns, in (namespace, name, uid) order: a slice of `Arc`s
/// (it derefs to `[Arc<K>]`) that holds one object without allocating, so an exact
/// `get` of a key that holds one object costs what [`get_one`] does. More than one
/// object are kept on the heap, as a `Vec` would keep them.
///
/// Iterate it (by value or by reference), index it, or turn it into a `Vec` with
/// [`into_vec`](Self::into_vec) (free when it is on the heap).
///
/// [`get_one`]: crate::MemoryReader::get_one
pub struct Objects<K>(SmallVec<[Arc<K>; 1]>);

impl<K> Objects<K> {
    /// No objects.
    pub fn new() -> Self {
        Self(SmallVec::new())
    }

    /// The objects as a `Vec` (an allocation for one object, none for more).
    pub fn into_vec(self) -> Vec<Arc<K>> {
        self.0.into_vec()
    }

    pub(crate) fn one(obj: Arc<K>) -> Self {
        let mut v = SmallVec::new();
        v.push(obj);
        Self(v)
    }
}

impl<K> Default for Objects<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> Clone for Objects<K> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<K> Deref for Objects<K> {
    type Target = [Arc<K>];
    fn deref(&self) -> &[Arc<K>] {
        &self.0
    }
}

impl<K> AsRef<[Arc<K>]> for Objects<K> {
    fn as_ref(&self) -> &[Arc<K>] {
        &self.0
    }
}

impl<K: fmt::Debug> fmt::Debug for Objects<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl<K: PartialEq> PartialEq for Objects<K> {
    fn eq(&self, other: &Self) -> bool {
        self.0[..] == other.0[..]
    }
}

impl<K: PartialEq> PartialEq<Vec<Arc<K>>> for Objects<K> {
    fn eq(&self, other: &Vec<Arc<K>>) -> bool {
        self.0[..] == other[..]
    }
}

impl<K: PartialEq> PartialEq<[Arc<K>]> for Objects<K> {
    fn eq(&self, other: &[Arc<K>]) -> bool {
        self.0[..] == *other
    }
}

impl<K> From<Objects<K>> for Vec<Arc<K>> {
    fn from(o: Objects<K>) -> Self {
        o.into_vec()
    }
}

impl<K> From<Vec<Arc<K>>> for Objects<K> {
    fn from(v: Vec<Arc<K>>) -> Self {
        Self(SmallVec::from_vec(v))
    }
}

impl<K> FromIterator<Arc<K>> for Objects<K> {
    fn from_iter<I: IntoIterator<Item = Arc<K>>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a, K> IntoIterator for &'a Objects<K> {
    type Item = &'a Arc<K>;
    type IntoIter = std::slice::Iter<'a, Arc<K>>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<K> IntoIterator for Objects<K> {
    type Item = Arc<K>;
    type IntoIter = IntoIter<K>;
    fn into_iter(self) -> IntoIter<K> {
        IntoIter(self.0.into_iter())
    }
}

/// The objects of an [`Objects`], by value.
pub struct IntoIter<K>(smallvec::IntoIter<[Arc<K>; 1]>);

impl<K> Iterator for IntoIter<K> {
    type Item = Arc<K>;
    fn next(&mut self) -> Option<Arc<K>> {
        self.0.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl<K> DoubleEndedIterator for IntoIter<K> {
    fn next_back(&mut self) -> Option<Arc<K>> {
        self.0.next_back()
    }
}

impl<K> ExactSizeIterator for IntoIter<K> {}

impl<K> fmt::Debug for IntoIter<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("remaining", &self.0.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_object_is_held_inline_and_more_spill() {
        let a = Arc::new(1);
        let one = Objects::one(Arc::clone(&a));
        assert!(!one.0.spilled(), "one object is not on the heap");
        assert_eq!(one.len(), 1);
        assert_eq!(one, vec![Arc::clone(&a)]);
        let two: Objects<i32> = [Arc::clone(&a), Arc::new(2)].into_iter().collect();
        assert!(two.0.spilled());
        assert_eq!(two.iter().map(|x| **x).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(
            two.clone()
                .into_iter()
                .rev()
                .map(|x| *x)
                .collect::<Vec<_>>(),
            [2, 1]
        );
        assert_eq!(two.into_vec().len(), 2);
        assert!(Objects::<i32>::default().is_empty());
    }
}
