//! The writer's identity table: where each identity's stored object is.
//!
//! For each identity, the counted object the store holds, the hash of its composite key
//! (so a write finds the object's exact-key entry without extracting its keys again)
//! and, in a store with secondary indexes, its [`Member`] of their groups. A store
//! without secondary indexes never has a member, so its table leaves the field out:
//! 16 bytes an identity where 24 would be, about 10 bytes an object at a table's usual
//! fill.
//!
//! Only the writer touches it, under the writer mutex; readers never see it.

use hashbrown::HashTable;

use crate::index::latest::Member;
use crate::sync::Arc;

/// What the table holds of one identity.
pub(crate) struct Located<K> {
    /// The stored object (counted: the table keeps the current objects alive).
    pub obj: Arc<K>,
    /// The hash of its composite key's encoding.
    pub key_hash: u64,
    /// Its member of the secondary indexes' groups (`None` when it is in none: no
    /// secondary index, or no key in any).
    pub member: Option<Member<K>>,
}

/// One identity of a store without secondary indexes: a [`Located`] without a member.
struct Plain<K> {
    obj: Arc<K>,
    key_hash: u64,
}

/// What the table holds of one identity, borrowed.
pub(crate) struct LocatedRef<'a, K> {
    pub obj: &'a Arc<K>,
    pub key_hash: u64,
    pub member: Option<Member<K>>,
}

impl<K> Clone for LocatedRef<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for LocatedRef<'_, K> {}

/// The identity table, with or without members (see the module documentation).
pub(crate) struct Ids<K>(Table<K>);

enum Table<K> {
    /// No secondary index: no identity has a member.
    Plain(HashTable<Plain<K>>),
    /// Secondary indexes: each identity may have one.
    Grouped(HashTable<Located<K>>),
}
use Table::{Grouped, Plain as Bare};

impl<K> Default for Ids<K> {
    fn default() -> Self {
        Ids(Bare(HashTable::new()))
    }
}

impl<K> Plain<K> {
    fn of(l: Located<K>) -> Self {
        // A store without secondary indexes makes no member (`Index::secondary` is
        // empty, so no object has a secondary key).
        debug_assert!(
            l.member.is_none(),
            "a member in a store without secondary indexes"
        );
        Plain {
            obj: l.obj,
            key_hash: l.key_hash,
        }
    }
}

impl<K> Ids<K> {
    /// An empty table with room for `capacity` identities; `grouped` when the store has
    /// secondary indexes.
    pub(crate) fn with_capacity(grouped: bool, capacity: usize) -> Self {
        Ids(if grouped {
            Grouped(HashTable::with_capacity(capacity))
        } else {
            Bare(HashTable::with_capacity(capacity))
        })
    }

    /// The number of identities.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Bare(t) => t.len(),
            Grouped(t) => t.len(),
        }
    }

    /// The identity of hash `hash` whose stored object `eq` recognises.
    #[inline]
    pub(crate) fn find(
        &self,
        hash: u64,
        eq: impl Fn(&Arc<K>) -> bool,
    ) -> Option<LocatedRef<'_, K>> {
        match &self.0 {
            Bare(t) => t.find(hash, |l| eq(&l.obj)).map(|l| LocatedRef {
                obj: &l.obj,
                key_hash: l.key_hash,
                member: None,
            }),
            Grouped(t) => t.find(hash, |l| eq(&l.obj)).map(|l| LocatedRef {
                obj: &l.obj,
                key_hash: l.key_hash,
                member: l.member,
            }),
        }
    }

    /// Replaces what the table holds of the identity of hash `hash` whose stored object
    /// `eq` recognises with `new`; gives `new` back if there is none.
    pub(crate) fn replace(
        &mut self,
        hash: u64,
        eq: impl Fn(&Arc<K>) -> bool,
        new: Located<K>,
    ) -> Result<(), Located<K>> {
        match &mut self.0 {
            Bare(t) => match t.find_mut(hash, |l| eq(&l.obj)) {
                Some(l) => {
                    *l = Plain::of(new);
                    Ok(())
                }
                None => Err(new),
            },
            Grouped(t) => match t.find_mut(hash, |l| eq(&l.obj)) {
                Some(l) => {
                    *l = new;
                    Ok(())
                }
                None => Err(new),
            },
        }
    }

    /// Stores `new` as what the table holds of its identity (of hash `hash`): in place
    /// of the stored object that `same(stored, &new.obj)` recognises, or added if there
    /// is none. `rehash` gives the hash of a stored object's identity (for a growth).
    pub(crate) fn set(
        &mut self,
        hash: u64,
        new: Located<K>,
        same: impl Fn(&Arc<K>, &Arc<K>) -> bool,
        rehash: impl Fn(&Arc<K>) -> u64,
    ) {
        match &mut self.0 {
            Bare(t) => match t.find_mut(hash, |l| same(&l.obj, &new.obj)) {
                Some(l) => *l = Plain::of(new),
                None => {
                    t.insert_unique(hash, Plain::of(new), |l| rehash(&l.obj));
                }
            },
            Grouped(t) => match t.find_mut(hash, |l| same(&l.obj, &new.obj)) {
                Some(l) => *l = new,
                None => {
                    t.insert_unique(hash, new, |l| rehash(&l.obj));
                }
            },
        }
    }

    /// Adds an identity of hash `hash` that the table does not hold; `rehash` gives
    /// the hash of a stored object's identity (for a growth).
    pub(crate) fn insert_unique(
        &mut self,
        hash: u64,
        new: Located<K>,
        rehash: impl Fn(&Arc<K>) -> u64,
    ) {
        match &mut self.0 {
            Bare(t) => {
                t.insert_unique(hash, Plain::of(new), |l| rehash(&l.obj));
            }
            Grouped(t) => {
                t.insert_unique(hash, new, |l| rehash(&l.obj));
            }
        }
    }

    /// Removes the identity of hash `hash` whose stored object `eq` recognises; false
    /// if there is none.
    pub(crate) fn remove(&mut self, hash: u64, eq: impl Fn(&Arc<K>) -> bool) -> bool {
        match &mut self.0 {
            Bare(t) => t
                .find_entry(hash, |l| eq(&l.obj))
                .map(|e| e.remove())
                .is_ok(),
            Grouped(t) => t
                .find_entry(hash, |l| eq(&l.obj))
                .map(|e| e.remove())
                .is_ok(),
        }
    }

    /// Every identity, in no order.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn iter(&self) -> impl Iterator<Item = LocatedRef<'_, K>> {
        let (plain, grouped) = match &self.0 {
            Bare(t) => (Some(t.iter()), None),
            Grouped(t) => (None, Some(t.iter())),
        };
        let plain = plain.into_iter().flatten().map(|l| LocatedRef {
            obj: &l.obj,
            key_hash: l.key_hash,
            member: None,
        });
        let grouped = grouped.into_iter().flatten().map(|l| LocatedRef {
            obj: &l.obj,
            key_hash: l.key_hash,
            member: l.member,
        });
        plain.chain(grouped)
    }

    /// Empties the table, giving each stored object and its member.
    pub(crate) fn into_parts(self) -> impl Iterator<Item = (Arc<K>, Option<Member<K>>)> {
        let (plain, grouped) = match self.0 {
            Bare(t) => (Some(t.into_iter()), None),
            Grouped(t) => (None, Some(t.into_iter())),
        };
        let plain = plain.into_iter().flatten().map(|l| (l.obj, None));
        let grouped = grouped.into_iter().flatten().map(|l| (l.obj, l.member));
        plain.chain(grouped)
    }
}
