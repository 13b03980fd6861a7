//! [`Keys`]: an object's key components in one buffer, as a watch hands them to a store.

use std::fmt;

use smallvec::SmallVec;

/// Bytes of key text a [`Keys`] keeps in itself before it allocates: a namespace and a
/// name of up to 40 bytes together (`kube-system` and a pod's generated name fit).
const INLINE_TEXT: usize = 40;
/// Components a [`Keys`] keeps in itself before it allocates their bounds.
const INLINE_PARTS: usize = 2;

/// An object's key components, one after another in one buffer: what an
/// [`Indexer`](crate::Indexer) extracts ([`Indexer::key_list`](crate::Indexer::key_list))
/// and a watch's [`Target`](crate::watch::Target) takes.
///
/// A `Vec<String>` costs an allocation per component and one for the list, made for
/// every watch event and freed right after (the store keeps its own encoding); a relist
/// of 100,000 objects made and freed 300,000 of them. `Keys` keeps up to 40 bytes of
/// text in two components in itself (72 bytes in all) and allocates nothing for them;
/// longer text, or more components, take one allocation each.
///
/// Stores take keys as a slice (`&[S]` with `S: AsRef<str>`); [`Keys::to_vec`] or
/// `keys.iter().collect::<Vec<_>>()` gives one.
///
/// # Examples
///
/// ```
/// use k8s_store::Keys;
///
/// let keys: Keys = ["shop", "cart"].into_iter().collect();
/// assert_eq!(keys.len(), 2);
/// assert_eq!(keys.get(1), Some("cart"));
/// assert_eq!(keys, ["shop", "cart"]);
/// assert_eq!(keys.to_vec(), vec!["shop".to_string(), "cart".to_string()]);
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Keys {
    /// The components' bytes, one after another. Only whole `&str`s are appended, so
    /// every boundary in `ends` is a character boundary.
    text: SmallVec<[u8; INLINE_TEXT]>,
    /// Where each component ends in `text`.
    ends: SmallVec<[usize; INLINE_PARTS]>,
}

impl Keys {
    /// No components.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a component.
    pub fn push(&mut self, component: &str) {
        self.text.extend_from_slice(component.as_bytes());
        self.ends.push(self.text.len());
    }

    /// How many components there are.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Component `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)?;
        let start = match i {
            0 => 0,
            _ => self.ends[i - 1],
        };
        Some(self.slice(start, end))
    }

    /// The components in order.
    pub fn iter(&self) -> KeyIter<'_> {
        KeyIter {
            keys: self,
            start: 0,
            next: 0,
        }
    }

    /// The components as owned strings.
    pub fn to_vec(&self) -> Vec<String> {
        self.iter().map(str::to_owned).collect()
    }

    fn slice(&self, start: usize, end: usize) -> &str {
        // Cannot fail: `push` appends whole `&str`s and records where each ends, and
        // components are cut only at those ends, so every slice is whole UTF-8.
        std::str::from_utf8(&self.text[start..end]).expect("keys are cut at str boundaries")
    }
}

/// The components of a [`Keys`], in order.
#[derive(Debug, Clone)]
pub struct KeyIter<'a> {
    keys: &'a Keys,
    /// Where the next component starts in the text.
    start: usize,
    /// The index of the next component.
    next: usize,
}

impl<'a> Iterator for KeyIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let end = *self.keys.ends.get(self.next)?;
        let part = self.keys.slice(self.start, end);
        self.start = end;
        self.next += 1;
        Some(part)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.keys.ends.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for KeyIter<'_> {}

impl<'a> IntoIterator for &'a Keys {
    type Item = &'a str;
    type IntoIter = KeyIter<'a>;
    fn into_iter(self) -> KeyIter<'a> {
        self.iter()
    }
}

impl<S: AsRef<str>> FromIterator<S> for Keys {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> Self {
        let mut keys = Self::new();
        keys.extend(iter);
        keys
    }
}

impl<S: AsRef<str>> Extend<S> for Keys {
    fn extend<I: IntoIterator<Item = S>>(&mut self, iter: I) {
        for s in iter {
            self.push(s.as_ref());
        }
    }
}

impl<S: AsRef<str>> From<&[S]> for Keys {
    fn from(keys: &[S]) -> Self {
        keys.iter().collect()
    }
}

impl<S: AsRef<str>> From<Vec<S>> for Keys {
    fn from(keys: Vec<S>) -> Self {
        keys.iter().collect()
    }
}

impl<S: AsRef<str>> PartialEq<[S]> for Keys {
    fn eq(&self, other: &[S]) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a == b.as_ref())
    }
}

impl<S: AsRef<str>, const N: usize> PartialEq<[S; N]> for Keys {
    fn eq(&self, other: &[S; N]) -> bool {
        *self == other[..]
    }
}

impl<S: AsRef<str>> PartialEq<Vec<S>> for Keys {
    fn eq(&self, other: &Vec<S>) -> bool {
        *self == other[..]
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Key components however a caller holds them: a [`Keys`] or a `Vec` of strings. What
/// a relist (`replace`) takes per object, so that a watch's [`Keys`] reach the index
/// without being copied into strings first.
pub(crate) trait Components {
    /// The components as a slice of `&str` a store's methods take, without allocating
    /// for up to four of them.
    fn parts(&self) -> SmallVec<[&str; 4]>;
}

impl Components for Keys {
    fn parts(&self) -> SmallVec<[&str; 4]> {
        self.iter().collect()
    }
}

impl<S: AsRef<str>> Components for Vec<S> {
    fn parts(&self) -> SmallVec<[&str; 4]> {
        self.iter().map(AsRef::as_ref).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any components, of any UTF-8 and any length (inline or not), come back as
        /// they went in; two lists are equal as `Keys` exactly when they are equal as
        /// lists.
        #[test]
        fn any_components_round_trip_and_compare_as_lists(
            a in proptest::collection::vec(".{0,30}", 0..6),
            b in proptest::collection::vec(".{0,30}", 0..6),
        ) {
            let ka: Keys = a.iter().collect();
            let kb: Keys = b.iter().collect();
            prop_assert_eq!(ka.to_vec(), a.clone());
            prop_assert_eq!(ka.len(), a.len());
            prop_assert_eq!(Components::parts(&ka).len(), a.len());
            prop_assert_eq!(ka == kb, a == b);
            prop_assert!(ka == a);
        }
    }

    #[test]
    fn components_round_trip_whatever_their_bytes() {
        let parts = ["", "a/b", "ünï/cödé", "", "\0", &"x".repeat(100), "🦀"];
        let keys: Keys = parts.iter().collect();
        assert_eq!(keys.len(), parts.len());
        assert_eq!(keys, parts);
        assert_eq!(keys.iter().len(), parts.len());
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(keys.get(i), Some(*p));
        }
        assert_eq!(keys.get(parts.len()), None);
        assert_eq!(keys.to_vec(), parts.map(str::to_owned).to_vec());
        assert_eq!(Components::parts(&keys).as_slice(), parts.as_slice());
        assert_eq!(format!("{keys:?}"), format!("{parts:?}"));
    }

    #[test]
    fn component_boundaries_tell_apart_what_joined_text_would_not() {
        let a: Keys = ["ab", "c"].into_iter().collect();
        let b: Keys = ["a", "bc"].into_iter().collect();
        let c: Keys = ["abc"].into_iter().collect();
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, ["ab", "c", ""]);
        assert!(Keys::new().is_empty());
        assert_eq!(Keys::new(), [""; 0]);
        assert_ne!(Keys::new(), [""]);
    }
}
