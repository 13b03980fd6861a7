//! The versions of an identity, which the groups of secondary indexes hold in place
//! of the versions themselves.
//!
//! A group of a secondary index (or of the label index) holds each of its objects as a
//! [`Member`]: a pointer to the [`Latest`] of the object's identity, which the writer
//! allocates when the identity is first stored in a group and retires when it leaves
//! them all. A write of a new version whose keys in every secondary index are those of
//! the version it replaces (the common update: a new `resourceVersion`, a status
//! change) sets the `Latest` and touches no group: when every group held the object
//! itself, each of the object's groups was a path copy of two trees per write, most of
//! a write's cost with a few indexes and labels.
//!
//! # Versions
//!
//! A `Latest` holds the current version, the stamp of the write that made it current,
//! and a pointer to a *record* of the version before (its stamp, and the record before
//! it), read without a lock ([`Versioned`]). A reader of the published state of stamp
//! `s` takes the current version if it was made at or before `s` (nearly always), else
//! walks the records to the first made at or before `s`: the version that state holds.
//!
//! Each write that replaces a version makes the record of it and, at once, retires
//! that record into the generation of the state before the write, like a tree node it
//! replaced: freed once no state up to that one can be read. Only a reader of such a
//! state needs it: a reader of state `s` reads a record only if the version after it
//! was made after `s`, so by a write whose previous state is `s` or later, and whose
//! generation the reader holds through its own. So every record a walk reaches is
//! alive, however many writes raced it, and a `Latest` costs its own 24 bytes between
//! writes. A walk always ends at the version of the reader's state: a `Latest` made by
//! a relist starts at stamp 0, one made by a write at that write's stamp, and a state
//! holds a member only from the state its identity joined a group in.
//!
//! A group's members are ordered by (namespace, name, uid), read from the current
//! version: an identity's order never changes (an object of the same identity whose
//! order changes gets a new `Latest`), so the order the writer reads is every
//! version's.
//!
//! The versions are kept alive as the trees' objects are (see
//! [`retire`](crate::index::retire)): the current one by the identity table, older
//! ones by the generations of the states that can still reach them.

use std::ptr::NonNull;

use crate::index::ptree::{Draft, Elem};
use crate::index::retire::{Retired, Unowned};
use crate::sync::{ALL_MARKS, Arc, MarkCell, Versioned};

/// An identity's versions (see the module documentation).
#[repr(C)]
pub(crate) struct Latest<K> {
    versions: Versioned,
    objects: std::marker::PhantomData<Record<K>>,
}

/// A [`Latest`] with the label marks of its current version beside it: what a store
/// with a label index allocates (see [`secondary::marks_of`]). A [`Member`] of one is
/// tagged ([`MARKED`]); `repr(C)` puts the `Latest` first, so the member's pointer,
/// untagged, is to both.
///
/// [`secondary::marks_of`]: crate::index::secondary::marks_of
#[repr(C)]
struct Marked<K> {
    latest: Latest<K>,
    marks: MarkCell,
}

/// The bit of a [`Member`]'s pointer that says it points to a [`Marked`] (a `Latest`
/// is aligned to 8 bytes, so the bit is otherwise 0).
const MARKED: usize = 1;

/// A version that is no longer current (see the module documentation). Never changed.
struct Record<K> {
    version: *const K,
    /// The stamp of the write that made it current.
    at: u64,
    /// Its label marks ([`ALL_MARKS`] for a member without them; see [`Member::at`]).
    marks: u64,
    /// The record of the version before it (null for none).
    before: *const Record<K>,
}

/// A pointer to an identity's [`Latest`] that owns nothing: what the groups of
/// secondary indexes hold. Copying it copies a pointer. Tagged with [`MARKED`] when
/// the `Latest` is a [`Marked`]'s.
pub(crate) struct Member<K>(NonNull<Latest<K>>);

impl<K> Clone for Member<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Member<K> {}

// SAFETY: a `Member` gives shared access to a `Latest` (atomics that only the store's
// writer sets), to immutable records, and through them to objects `K` as `&K` (and
// counted `Arc<K>` clones): `Send` and `Sync` exactly when those are.
#[allow(unsafe_code)]
unsafe impl<K: Send + Sync> Send for Member<K> {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl<K: Send + Sync> Sync for Member<K> {}

impl<K> Elem for Member<K> {}

/// What a reader finds in a [`Latest`] for the state it reads.
pub(crate) enum Found<K> {
    /// The version of that state, and its label marks (what the writer gave with it:
    /// see [`secondary::marks_of`](crate::index::secondary::marks_of)).
    Version(Unowned<K>, u64),
    /// No version is that old (which the module documentation rules out): the caller
    /// looks the object up in the state. The current version gives its identity.
    Look(Unowned<K>),
}

impl<K> Member<K> {
    /// A new identity's `Latest`, with `obj` current since the write stamped `at`, and
    /// its label marks `marks` beside it if there are any (a store with a label index
    /// gives them to every member). The writer owns it until it
    /// [`retire`](Self::retire)s it.
    pub(crate) fn new(obj: &Arc<K>, marks: Option<u64>, at: u64) -> Self {
        let latest = Latest {
            versions: Versioned::new(Arc::as_ptr(obj) as usize, at),
            objects: std::marker::PhantomData,
        };
        match marks {
            None => Self(NonNull::from(Box::leak(Box::new(latest)))),
            Some(marks) => {
                let marked = Box::new(Marked {
                    latest,
                    marks: MarkCell::new(marks),
                });
                let ptr = NonNull::from(Box::leak(marked)).cast::<Latest<K>>();
                Self(ptr.map_addr(|a| a | MARKED))
            }
        }
    }

    /// The `Latest` (or `Marked`) this member points to, untagged.
    #[inline]
    fn untagged(&self) -> NonNull<Latest<K>> {
        // SAFETY: clearing the tag bit of a pointer to an 8-byte aligned allocation
        // leaves its address, which is not null.
        #[allow(unsafe_code)]
        unsafe {
            NonNull::new_unchecked(self.0.as_ptr().map_addr(|a| a & !MARKED))
        }
    }

    #[inline]
    fn versions(&self) -> &Versioned {
        // SAFETY: a `Latest` is freed only by its generation, once no state that holds
        // a `Member` of it can be read, and after its writer stopped using it
        // (`retire`).
        #[allow(unsafe_code)]
        unsafe {
            &self.untagged().as_ref().versions
        }
    }

    /// The cell of the current version's label marks, if this member has them.
    #[inline]
    fn cell(&self) -> Option<&MarkCell> {
        if self.0.addr().get() & MARKED == 0 {
            return None;
        }
        // SAFETY: a tagged member points to the `Latest` that begins a `Marked`
        // (`new`), alive as long as the member can be read (`versions`).
        #[allow(unsafe_code)]
        unsafe {
            Some(&self.untagged().cast::<Marked<K>>().as_ref().marks)
        }
    }

    /// Makes `obj` (whose label marks are `marks`, if the store keeps them: exactly
    /// when this member has a cell for them) the current version, by the write of
    /// `cx`, which retires the record of the version it replaces (see the module
    /// documentation). The writer only.
    pub(crate) fn set(&self, obj: &Arc<K>, marks: Option<u64>, cx: &mut Draft) {
        let v = self.versions();
        let cell = self.cell();
        debug_assert_eq!(
            cell.is_some(),
            marks.is_some(),
            "marks for a member without"
        );
        let (version, at, old_marks) = v.current(cell);
        let older = if at == cx.stamp() {
            // A batch that writes an identity twice: the version it replaces is its
            // own, which no state holds.
            v.older()
        } else {
            let record = NonNull::from(Box::leak(Box::new(Record {
                version: version as *const K,
                at,
                marks: old_marks,
                before: v.older() as *const Record<K>,
            })));
            // SAFETY: `free_record` frees exactly this box, once, when the generation
            // of the state before this write is dropped: no reader that can reach it is
            // left then (module documentation).
            #[allow(unsafe_code)]
            cx.retire(unsafe { Retired::new(record.cast(), free_record::<K>) });
            record.as_ptr() as usize
        };
        v.set(
            Arc::as_ptr(obj) as usize,
            cx.stamp(),
            older,
            cell.zip(marks),
        );
    }

    /// The current version (for any thread but the writer, a recent one: its identity
    /// and order are every version's).
    pub(crate) fn current(&self) -> Unowned<K> {
        // SAFETY: a version is kept alive by the identity table while it is current,
        // and after by the generations of the states the caller can reach (module
        // documentation).
        #[allow(unsafe_code)]
        unsafe {
            Unowned::from_raw(self.versions().version() as *const K)
        }
    }

    /// The version the state of stamp `stamp` holds, with the label marks the writer
    /// gave with it.
    #[inline]
    pub(crate) fn at(&self, stamp: u64) -> Found<K> {
        let v = self.versions();
        let version = v.read(stamp, self.cell()).or_else(|| {
            let mut r = v.older() as *const Record<K>;
            while !r.is_null() {
                // SAFETY: a record a reader of `stamp` reaches is alive while it reads
                // its state (module documentation).
                #[allow(unsafe_code)]
                let record = unsafe { &*r };
                if record.at <= stamp {
                    return Some((record.version as usize, record.marks));
                }
                r = record.before;
            }
            None
        });
        match version {
            Some((p, marks)) => {
                // SAFETY: as in `current`: a version of a state the caller reads.
                #[allow(unsafe_code)]
                let v = unsafe { Unowned::from_raw(p as *const K) };
                Found::Version(v, marks)
            }
            None => Found::Look(self.current()),
        }
    }

    /// Asks the CPU to bring this member's `Latest` into its cache: a hint, which
    /// changes nothing any read returns (a query issues it a few members ahead, so that
    /// their cache misses overlap instead of following one another).
    #[inline]
    pub(crate) fn prefetch(&self) {
        prefetch(self.untagged().as_ptr().cast());
    }

    /// The current version's label marks, as a hint (they may be a version's other
    /// than the one a reader takes): for deciding what to prefetch, never a result.
    #[inline]
    pub(crate) fn marks_hint(&self) -> u64 {
        self.cell().map_or(ALL_MARKS, MarkCell::hint)
    }

    /// Asks the CPU to bring the reference count of this member's current version into
    /// its cache (reading the `Latest`, which [`prefetch`](Self::prefetch) should have
    /// brought in). A hint, as `prefetch`; nothing under the loom cfg, where it would
    /// only be one more atomic load for the model to explore.
    #[inline]
    pub(crate) fn prefetch_version(&self) {
        #[cfg(not(k8s_store_loom))]
        {
            // An `Arc`'s counts are the 16 bytes before the value it points to.
            let version = self.versions().version() as *const u8;
            prefetch(version.wrapping_sub(16));
        }
    }

    /// Whether this is the `Latest` `other` points to.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn is(&self, other: &Member<K>) -> bool {
        self.0 == other.0
    }

    /// Hands the `Latest` to the generation `cx` is finished into: freed once no state
    /// that may hold this member can be read (its records were retired when made).
    ///
    /// # Safety
    ///
    /// Called once, when the identity leaves every group, and the writer uses no copy
    /// of this member after the write that retires it.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn retire(self, cx: &mut Draft) {
        // SAFETY: `free_latest` frees exactly this box, once (the caller's promise),
        // when the generation it is retired into is dropped.
        let free = if self.cell().is_some() {
            free_marked::<K>
        } else {
            free_latest::<K>
        };
        cx.retire(unsafe { Retired::new(self.untagged().cast(), free) });
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
            &*(self.versions().version() as *const K)
        }
    }
}

/// A prefetch of the cache line at `at` (x86-64; nothing elsewhere, or under Miri or
/// the loom cfg).
#[allow(unused_variables)]
#[inline]
pub(crate) fn prefetch(at: *const u8) {
    #[cfg(all(target_arch = "x86_64", not(miri), not(k8s_store_loom)))]
    // SAFETY: a prefetch is a hint: it never faults and reads nothing the program can
    // see, whatever the address.
    #[allow(unsafe_code)]
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(at.cast());
    }
}

/// Frees a retired [`Record`].
///
/// # Safety
///
/// `ptr` came from `Box::into_raw` of a `Record<K>` and is freed once, when nothing
/// can read it.
#[allow(unsafe_code)]
unsafe fn free_record<K>(ptr: NonNull<()>) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(ptr.cast::<Record<K>>().as_ptr()) });
}

/// Frees a retired [`Latest`].
///
/// # Safety
///
/// `ptr` came from [`Member::new`] without marks and is freed once, when nothing can
/// read it.
#[allow(unsafe_code)]
unsafe fn free_latest<K>(ptr: NonNull<()>) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(ptr.cast::<Latest<K>>().as_ptr()) });
}

/// Frees a retired [`Marked`].
///
/// # Safety
///
/// `ptr` (untagged) came from [`Member::new`] with marks and is freed once, when
/// nothing can read it.
#[allow(unsafe_code)]
unsafe fn free_marked<K>(ptr: NonNull<()>) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(ptr.cast::<Marked<K>>().as_ptr()) });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::retire::Generation;

    /// The version `m` gives a reader of `stamp`, checked against its marks (each
    /// version below is marked with its own number).
    fn picked(m: &Member<String>, stamp: u64) -> Option<String> {
        match m.at(stamp) {
            Found::Version(v, marks) => {
                assert_eq!(
                    v.as_ref().parse::<u64>().ok(),
                    Some(marks),
                    "marks of {}",
                    v.as_ref()
                );
                Some(v.as_ref().clone())
            }
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
        let m = Member::new(&v1, Some(1), 3);
        assert_eq!(picked(&m, 3).as_deref(), Some("1"));
        // Older than the identity: no state that old holds the member.
        assert_eq!(picked(&m, 2), None);

        write(5, &mut |cx| m.set(&v2, Some(2), cx));
        assert_eq!(picked(&m, 4).as_deref(), Some("1"), "the previous version");
        assert_eq!(picked(&m, 5).as_deref(), Some("2"));
        assert_eq!(picked(&m, 9).as_deref(), Some("2"));

        // A write of the identity twice (a batch): its first version is no state's.
        write(6, &mut |cx| {
            m.set(&v3, Some(3), cx);
            m.set(&v4, Some(4), cx);
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

    #[test]
    fn a_member_without_marks_gives_all_marks() {
        let (v1, v2) = (Arc::new("1".to_owned()), Arc::new("2".to_owned()));
        let g = Generation::<String>::new();
        let m = Member::new(&v1, None, 1);
        let mut cx = Draft::new(2);
        m.set(&v2, None, &mut cx);
        g.retire_nodes(cx.finish());
        for (stamp, want) in [(1, "1"), (2, "2")] {
            match m.at(stamp) {
                Found::Version(v, marks) => {
                    assert_eq!((v.as_ref().as_str(), marks), (want, ALL_MARKS));
                }
                Found::Look(_) => panic!("no version at {stamp}"),
            }
        }
        assert_eq!(m.marks_hint(), ALL_MARKS);
        let mut cx = Draft::new(3);
        // SAFETY: retired once, and nothing reads it after.
        #[allow(unsafe_code)]
        unsafe {
            m.retire(&mut cx)
        };
        g.retire_nodes(cx.finish());
        drop(g);
    }
}
