//! The versions of an identity, which the groups of secondary indexes hold in place
//! of the versions themselves.
//!
//! A group of a secondary index (or of the label index) holds each of its objects as a
//! [`Member`]: a pointer to the [`Latest`] of the object's identity, which the writer
//! allocates when the identity is first stored and retires when it is removed. A write
//! of a new version whose keys in every secondary index are those of the version it
//! replaces (the common update: a new `resourceVersion`, a status change) gives the
//! `Latest` a new record and touches no group: when every group held the object
//! itself, each of the object's groups was a path copy of two trees per write, most of
//! a write's cost with a few indexes and labels.
//!
//! # Records
//!
//! A `Latest` points to its newest *record*: a version, the stamp of the write that
//! made it current, and the record before it. Records are never changed once
//! published ([`Newest`]). A reader of the published state of stamp `s` walks from the
//! newest record to the first made at or before `s`: the version that state holds
//! (nearly always the first record; one step back when a write of the object raced the
//! read).
//!
//! A record replaced by a newer one is retired like a tree node: into the generation
//! of the state before the write that replaced it, freed when no state up to that one
//! can be read. A reader of state `s` needs a record only if every newer one was made
//! after `s`; each of those replacements retired its predecessor into a generation at
//! or after `s`'s, which the reader holds through its state. So every record a walk
//! reaches is alive, however many writes raced it, and the walk always ends at the
//! version of the reader's state: a `Latest` made by a relist starts at stamp 0, one
//! made by a write at that write's stamp, and a state holds a member only from the
//! state its identity was stored in.
//!
//! A group's members are ordered by (namespace, name, uid), read from the newest
//! version: an identity's order never changes (an object of the same identity whose
//! order changes gets a new `Latest`), so the order the writer reads is every
//! version's.
//!
//! The versions records point to are kept alive as the trees' objects are (see
//! [`retire`](crate::index::retire)): the newest by the identity table, older ones by
//! the generations of the states that can still reach them.

use std::ptr::NonNull;

use crate::index::ptree::{Draft, Elem};
use crate::index::retire::{Retired, Unowned};
use crate::sync::{Arc, Newest};

/// An identity's versions (see the module documentation): its newest record.
pub(crate) struct Latest<K> {
    newest: Newest,
    records: std::marker::PhantomData<Record<K>>,
}

/// One version of an identity (see the module documentation). Never changed once
/// [`Latest::newest`] points to it.
struct Record<K> {
    version: *const K,
    /// The stamp of the write that made it current.
    at: u64,
    /// The record it replaced (null for the first).
    before: *const Record<K>,
}

/// A pointer to an identity's [`Latest`] that owns nothing: what the groups of
/// secondary indexes hold. Copying it copies a pointer.
pub(crate) struct Member<K>(NonNull<Latest<K>>);

impl<K> Clone for Member<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Member<K> {}

// SAFETY: a `Member` gives shared access to a `Latest` (an atomic that only the
// store's writer sets), to immutable records, and through them to objects `K` as `&K`
// (and counted `Arc<K>` clones): `Send` and `Sync` exactly when those are.
#[allow(unsafe_code)]
unsafe impl<K: Send + Sync> Send for Member<K> {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl<K: Send + Sync> Sync for Member<K> {}

impl<K> Elem for Member<K> {}

/// What a reader finds in a [`Latest`] for the state it reads.
pub(crate) enum Found<K> {
    /// The version of that state.
    Version(Unowned<K>),
    /// No record is that old (which the module documentation rules out): the caller
    /// looks the object up in the state. The newest version gives its identity.
    Look(Unowned<K>),
}

/// A new record, owned by the caller until a `Latest` points to it.
fn record<K>(obj: &Arc<K>, at: u64, before: *const Record<K>) -> usize {
    let r = Box::new(Record {
        version: Arc::as_ptr(obj),
        at,
        before,
    });
    Box::into_raw(r) as usize
}

impl<K> Member<K> {
    /// A new identity's `Latest`, with `obj` current since the write stamped `at`.
    /// The writer owns it until it [`retire`](Self::retire)s it.
    pub(crate) fn new(obj: &Arc<K>, at: u64) -> Self {
        let latest = Box::new(Latest {
            newest: Newest::new(record(obj, at, std::ptr::null())),
            records: std::marker::PhantomData,
        });
        Self(NonNull::from(Box::leak(latest)))
    }

    fn newest(&self) -> &Record<K> {
        // SAFETY: a `Latest` is freed only by its generation, once no state that holds
        // a `Member` of it can be read, and after its writer stopped using it
        // (`retire`); its newest record is retired with it, or when replaced (module
        // documentation), and is never null.
        #[allow(unsafe_code)]
        unsafe {
            &*(self.0.as_ref().newest.get() as *const Record<K>)
        }
    }

    /// Makes `obj` the current version, by the write stamped `at` (`cx`), which
    /// retires the record it replaces. The writer only.
    pub(crate) fn set(&self, obj: &Arc<K>, cx: &mut Draft) {
        let newest = self.newest();
        // A batch that writes an identity twice replaces its own record: the new one
        // follows the version before the batch, which the first one followed (no state
        // holds the version in between).
        let before = if newest.at == cx.stamp() {
            newest.before
        } else {
            newest as *const Record<K>
        };
        let replaced = NonNull::from(newest).cast();
        // SAFETY: a `Latest` is alive while its writer uses it (see `newest`).
        #[allow(unsafe_code)]
        let latest = unsafe { self.0.as_ref() };
        latest.newest.set(record(obj, cx.stamp(), before));
        // SAFETY: the record is out of the `Latest` from the next state on; readers of
        // older states may still walk it, and the generation it goes to outlives them
        // (module documentation). Each record is replaced once.
        #[allow(unsafe_code)]
        cx.retire(unsafe { Retired::new(replaced, free_record::<K>) });
    }

    /// The current version, as the writer set it last (for any other thread, a recent
    /// one: its identity and order are every version's).
    pub(crate) fn current(&self) -> Unowned<K> {
        // SAFETY: a record's version is kept alive by the identity table while it is
        // the newest, and after by the generations of the states the caller can reach
        // (module documentation).
        #[allow(unsafe_code)]
        unsafe {
            Unowned::from_raw(self.newest().version)
        }
    }

    /// The version the state of stamp `stamp` holds.
    pub(crate) fn at(&self, stamp: u64) -> Found<K> {
        let mut r = self.newest();
        while r.at > stamp {
            if r.before.is_null() {
                return Found::Look(self.current());
            }
            // SAFETY: a record a reader of `stamp` reaches is alive while it reads its
            // state (module documentation).
            #[allow(unsafe_code)]
            {
                r = unsafe { &*r.before };
            }
        }
        // SAFETY: as in `current`: a version of a state the caller reads.
        #[allow(unsafe_code)]
        Found::Version(unsafe { Unowned::from_raw(r.version) })
    }

    /// Whether this is the `Latest` `other` points to.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn is(&self, other: &Member<K>) -> bool {
        self.0 == other.0
    }

    /// Hands the `Latest` and its newest record to the generation `cx` is finished
    /// into: freed once no state that may hold this member can be read.
    ///
    /// # Safety
    ///
    /// Called once, when the identity leaves the writer's identity table, and the
    /// writer uses no copy of this member after the write that retires it.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn retire(self, cx: &mut Draft) {
        let newest = NonNull::from(self.newest()).cast();
        // SAFETY: `free_record` and `free_latest` free exactly these boxes, once (the
        // caller's promise; the newest record is retired only here), when the
        // generation they are retired into is dropped.
        unsafe {
            cx.retire(Retired::new(newest, free_record::<K>));
            cx.retire(Retired::new(self.0.cast(), free_latest::<K>));
        }
    }
}

impl<K> AsRef<K> for Member<K> {
    /// The current version (see [`current`](Member::current)): the writer's view, by
    /// which group trees order their members.
    fn as_ref(&self) -> &K {
        // SAFETY: as in `current`; the reference lives as long as `self` (a copy held
        // in a tree or by the writer), which the version outlives.
        #[allow(unsafe_code)]
        unsafe {
            &*self.newest().version
        }
    }
}

/// Frees a retired [`Record`].
///
/// # Safety
///
/// `ptr` came from `record` and is freed once, when nothing can read it.
#[allow(unsafe_code)]
unsafe fn free_record<K>(ptr: NonNull<()>) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(ptr.cast::<Record<K>>().as_ptr()) });
}

/// Frees a retired [`Latest`].
///
/// # Safety
///
/// `ptr` came from [`Member::new`] and is freed once, when nothing can read it.
#[allow(unsafe_code)]
unsafe fn free_latest<K>(ptr: NonNull<()>) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(ptr.cast::<Latest<K>>().as_ptr()) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::retire::Generation;

    fn picked(m: &Member<String>, stamp: u64) -> Option<String> {
        match m.at(stamp) {
            Found::Version(v) => Some(v.as_ref().clone()),
            Found::Look(_) => None,
        }
    }

    #[test]
    fn a_reader_gets_the_version_of_its_state() {
        let v = |s: &str| Arc::new(s.to_owned());
        let (v1, v2, v3, v4) = (v("1"), v("2"), v("3"), v("4"));
        let g = Generation::<String>::new();
        let write = |stamp: u64, f: &mut dyn FnMut(&mut Draft)| {
            let mut cx = Draft::new(stamp);
            f(&mut cx);
            g.retire_nodes(cx.finish());
        };
        let m = Member::new(&v1, 3);
        assert_eq!(picked(&m, 3).as_deref(), Some("1"));
        // Older than the identity: no state that old holds the member.
        assert_eq!(picked(&m, 2), None);

        write(5, &mut |cx| m.set(&v2, cx));
        assert_eq!(picked(&m, 4).as_deref(), Some("1"), "the previous version");
        assert_eq!(picked(&m, 5).as_deref(), Some("2"));
        assert_eq!(picked(&m, 9).as_deref(), Some("2"));

        // A write of the identity twice (a batch): its first version is no state's.
        write(6, &mut |cx| {
            m.set(&v3, cx);
            m.set(&v4, cx);
        });
        assert_eq!(picked(&m, 4).as_deref(), Some("1"));
        assert_eq!(picked(&m, 5).as_deref(), Some("2"));
        assert_eq!(picked(&m, 6).as_deref(), Some("4"));
        assert_eq!(m.current().as_ref(), "4");
        assert_eq!(m.as_ref(), "4");

        // SAFETY: retired once, and nothing reads it after.
        #[allow(unsafe_code)]
        write(7, &mut |cx| unsafe { m.retire(cx) });
        // Every record and the `Latest` are freed with the generation (Miri checks
        // that nothing leaks or is freed twice).
        drop(g);
    }
}
