//! The exact-key index: one open-addressing table that readers probe without a lock.
//!
//! # Shape
//!
//! A table is an array of slots, each a pointer to the [`Head`] of one composite key's
//! entry (or null). An entry is one allocation: the key's encoding (see
//! [`key`](crate::index::key)) inline after a 24-byte header, so a probe confirms its
//! key in the entry's own cache lines and never reads an object's namespace or name.
//! The pointer carries 16 bits of the key's hash in its top bits (on 64-bit targets,
//! where user-space addresses leave them clear), so a probe passes over other keys'
//! slots without reading their entries. Slots are found by linear probing from the
//! hash's low bits; the table is rebuilt larger before it is 13/16 full, so a probe
//! always ends at a null slot.
//!
//! # Versions
//!
//! Entries never change once published. A write that changes a key's objects makes a
//! new entry stamped with the write's stamp, pointing to the one it replaces (`prev`),
//! and stores it in the key's slot before it publishes its state; removing a key stores
//! a *tombstone*, an entry of no objects. A reader takes the table and the stamp `s`
//! from the state it loaded, and walks from the slot's entry along `prev` to the first
//! stamped at or before `s`: what that state holds, however the writer has moved on.
//! So an exact read agrees with every prefix read and snapshot of the same or a later
//! state, and takes no lock: the writer never waits for a reader, and a reader never
//! waits for the writer.
//!
//! A key keeps its slot from its first write until the table is rebuilt (a tombstone
//! keeps it too), so slots only go from null to an entry and from an entry to a newer
//! one of the same key: a probe that started before a write still ends at the right
//! slot or at a null one. A rebuild (to grow, or to drop tombstones) makes a new table
//! holding the same live entries, which the write's state publishes; readers of older
//! states keep probing the old one, which no write changes any more.
//!
//! # Lifetimes
//!
//! What a write replaces (an entry, a tombstone, a whole table) is retired into its
//! [`Draft`], so the generation of the state before the write frees it (see
//! [`retire`](crate::index::retire)): a reader follows `prev` to an entry only when the
//! entry after it is newer than its state, so written by a write whose previous state
//! is the reader's or later, and whose generation the reader holds through its own.
//! Objects are held uncounted ([`Unowned`]), alive as long as the states that hold them
//! (the identity table keeps the current ones); a key of several objects owns a counted
//! tree of them ([`Value::Many`]), freed with its entry.
//!
//! Every `unsafe` block of the table is in this module.

use std::alloc::Layout;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Acquire, Release};

use crate::index::ptree::{Draft, PTree};
use crate::index::retire::{Retired, Unowned};
use crate::sync::{Arc, AtomicPtr};

/// The fill (in sixteenths) past which a table is rebuilt before a new key goes in.
const MAX_FILL_16THS: usize = 13;
/// The fewest slots a table has.
const MIN_SLOTS: usize = 16;
/// The longest key encoding an entry holds (a long key's length is a `u32`).
pub(crate) const MAX_KEY_BYTES: usize = u32::MAX as usize;

/// An entry's header; the key's encoding follows it in the same allocation, after its
/// length when the length is not in `link`.
#[repr(C)]
pub(crate) struct Head<K> {
    /// The stamp of the write that stored it.
    at: u64,
    /// The entry of the same key it replaced (null for none): the key's objects before
    /// `at`, for readers of older states. When its low bit ([`SHORT`]) is set, the
    /// top 16 bits hold the key's length instead of address bits (see [`link`]); else
    /// the length is a `u32` in front of the key's bytes. Its second bit ([`PLAIN`])
    /// says the key's encoding has no escaped NUL byte.
    link: *const Head<K>,
    /// The key's objects: 0 for none (a tombstone); else a pointer tagged in its low
    /// bit: clear, one object (`Arc::as_ptr`, uncounted); set, a `Box<PTree<Arc<K>>>`
    /// this entry owns.
    value: usize,
    objects: std::marker::PhantomData<*const K>,
}

/// Where the key bytes (or a long key's length) start: right after the header.
const KEY_OFFSET: usize = std::mem::size_of::<Head<()>>();

/// The bit of [`Head::link`] that says the key's length is in its top 16 bits (an
/// entry is aligned to 8 bytes, so the bit is otherwise 0).
const SHORT: usize = 1;

/// The bit of [`Head::link`] that says the key's encoding is plain: no component has
/// a NUL byte, so it is compared with a caller's key in one piece per component
/// ([`key::entry_eq`](crate::index::key::entry_eq)).
const PLAIN: usize = 2;

/// The bits of [`Head::link`] below an entry's alignment.
const LOW: usize = SHORT | PLAIN;
const _: () = assert!(std::mem::align_of::<Head<()>>() > LOW);

/// Where a short key's length sits in [`Head::link`]: the 16 bits above the 48 that
/// user-space addresses use on 64-bit targets (those that do not are linked without it).
const LEN_SHIFT: u32 = 48;

/// `prev` with the length of a key of `len` bytes in it, if it fits, and whether the
/// key is `plain` (see [`Head::link`]); if the length does not fit, it goes in front
/// of the key.
#[inline]
fn link<K>(prev: *const Head<K>, len: usize, plain: bool) -> *const Head<K> {
    let plain = if plain { PLAIN } else { 0 };
    #[cfg(target_pointer_width = "64")]
    {
        if prev.addr() >> LEN_SHIFT == 0 && len < 1 << (usize::BITS - LEN_SHIFT) {
            return prev.map_addr(|a| a | SHORT | plain | (len << LEN_SHIFT));
        }
    }
    let _ = len;
    prev.map_addr(|a| a | plain)
}

/// The entry a [`Head::link`] points to, and its key's length if the link holds it.
#[inline]
fn unlink<K>(link: *const Head<K>) -> (*const Head<K>, Option<usize>) {
    #[cfg(target_pointer_width = "64")]
    {
        if link.addr() & SHORT != 0 {
            let prev = link.map_addr(|a| a & ((1 << LEN_SHIFT) - 1) & !LOW);
            return (prev, Some(link.addr() >> LEN_SHIFT));
        }
    }
    (link.map_addr(|a| a & !LOW), None)
}

/// The tag bit of a [`Head::value`] that holds a tree.
const MANY: usize = 1;

/// The objects under one key, as a reader or the writer finds them.
pub(crate) enum Value<'a, K> {
    /// One object.
    One(Unowned<K>),
    /// Two or more, in (namespace, name, uid) order.
    Many(&'a PTree<Arc<K>>),
}

/// The objects the writer stores under a key.
pub(crate) enum Stored<K> {
    One(Unowned<K>),
    Many(PTree<Arc<K>>),
}

impl<K> Head<K> {
    /// The layout of an entry whose key (with its length, for a long one) takes
    /// `bytes` bytes after the header.
    fn layout(bytes: usize) -> Layout {
        // The header's size and alignment are small constants and `bytes` is bounded by
        // `MAX_KEY_BYTES + 4`, so the size cannot overflow `isize`.
        Layout::from_size_align(KEY_OFFSET + bytes, std::mem::align_of::<Head<K>>())
            .unwrap_or_else(|_| Layout::new::<Head<K>>())
    }

    /// A new entry, owned by the caller until it is freed with [`free_entry`].
    fn alloc(
        at: u64,
        prev: *const Head<K>,
        stored: Option<Stored<K>>,
        key: &[u8],
    ) -> NonNull<Self> {
        let len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        let key = &key[..len as usize];
        let link = link(prev, key.len(), crate::index::key::is_plain(key));
        let (_, short) = unlink(link);
        // A long key's length goes in front of it.
        let start = if short.is_some() { 0 } else { 4 };
        let value = match stored {
            None => 0,
            Some(Stored::One(obj)) => Arc::as_ptr(&obj) as usize,
            Some(Stored::Many(tree)) => Box::into_raw(Box::new(tree)) as usize | MANY,
        };
        let layout = Self::layout(start + key.len());
        // SAFETY: the layout has a non-zero size (the header's). The header is written
        // whole, then a long key's length and the key bytes into the rest of the
        // allocation, which the layout sized for them; none of the three overlap.
        #[allow(unsafe_code)]
        unsafe {
            let p = std::alloc::alloc(layout).cast::<Head<K>>();
            let Some(p) = NonNull::new(p) else {
                std::alloc::handle_alloc_error(layout)
            };
            p.as_ptr().write(Head {
                at,
                link,
                value,
                objects: std::marker::PhantomData,
            });
            let rest = p.as_ptr().cast::<u8>().add(KEY_OFFSET);
            if start != 0 {
                rest.cast::<u32>().write_unaligned(len);
            }
            std::ptr::copy_nonoverlapping(key.as_ptr(), rest.add(start), key.len());
            p
        }
    }
}

/// A published entry, read through a pointer to its whole allocation (the key's bytes
/// follow the header, outside what a `&Head` would cover).
pub(crate) struct Entry<'a, K> {
    p: NonNull<Head<K>>,
    life: std::marker::PhantomData<&'a Head<K>>,
}

impl<K> Clone for Entry<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Entry<'_, K> {}

impl<'a, K> Entry<'a, K> {
    /// # Safety
    ///
    /// `p` is an entry made by [`Head::alloc`], alive for `'a`.
    #[allow(unsafe_code)]
    unsafe fn new(p: NonNull<Head<K>>) -> Self {
        Self {
            p,
            life: std::marker::PhantomData,
        }
    }

    #[inline]
    fn head(self) -> *const Head<K> {
        self.p.as_ptr()
    }

    /// The header's fields, copied out (no reference to the header is made).
    #[inline]
    fn fields(self) -> (u64, *const Head<K>, usize) {
        // SAFETY: alive for `'a` (`new`), and never written after it was published.
        #[allow(unsafe_code)]
        unsafe {
            let h = self.head();
            ((*h).at, (*h).link, (*h).value)
        }
    }

    /// The key's encoding.
    #[inline]
    pub(crate) fn key(self) -> &'a [u8] {
        // SAFETY: as for `fields`.
        #[allow(unsafe_code)]
        unsafe {
            key_of(self.head())
        }
    }

    /// The stamp of the write that stored it.
    #[inline]
    pub(crate) fn at(self) -> u64 {
        self.fields().0
    }

    /// The entry it replaced, if a reader of an older state can still reach it.
    #[inline]
    fn prev(self) -> Option<Entry<'a, K>> {
        let prev = NonNull::new(self.prev_ptr().cast_mut())?;
        // SAFETY: the caller reads a state older than this entry, which keeps the one
        // it replaced alive (module documentation).
        #[allow(unsafe_code)]
        Some(unsafe { Entry::new(prev) })
    }

    /// Whether the key's encoding has no escaped NUL byte (see [`PLAIN`]).
    #[inline]
    pub(crate) fn is_plain(self) -> bool {
        self.fields().1.addr() & PLAIN != 0
    }

    /// The pointer to the entry it replaced (null for none).
    #[inline]
    fn prev_ptr(self) -> *const Head<K> {
        unlink(self.fields().1).0
    }

    /// Whether it holds objects (it is not a tombstone).
    #[inline]
    fn is_live(self) -> bool {
        self.fields().2 != 0
    }

    /// The key's objects; `None` for a tombstone.
    #[inline]
    pub(crate) fn value(self) -> Option<Value<'a, K>> {
        match self.fields().2 {
            0 => None,
            v if v & MANY == 0 => {
                // SAFETY: an object held by an entry is alive while a state that holds
                // the entry's version can be read (module documentation), and whoever
                // reads this entry's value reads such a state.
                #[allow(unsafe_code)]
                Some(Value::One(unsafe { Unowned::from_raw(v as *const K) }))
            }
            v => {
                // SAFETY: the tree is this entry's own, freed with it.
                #[allow(unsafe_code)]
                Some(Value::Many(unsafe {
                    &*((v & !MANY) as *const PTree<Arc<K>>)
                }))
            }
        }
    }
}

/// The key bytes of the entry at `h`.
///
/// # Safety
///
/// `h` is an entry made by [`Head::alloc`] (a pointer to its whole allocation), alive
/// for `'a`.
#[allow(unsafe_code)]
#[inline]
unsafe fn key_of<'a, K>(h: *const Head<K>) -> &'a [u8] {
    // SAFETY: the caller's promise. `alloc` put `len` initialised key bytes right after
    // the header (after a long key's `u32` length), in the same allocation; the pointer
    // is the allocation's own, so its provenance covers them.
    unsafe {
        let rest = h.cast::<u8>().add(KEY_OFFSET);
        match unlink((*h).link).1 {
            Some(len) => std::slice::from_raw_parts(rest, len),
            None => {
                let len = rest.cast::<u32>().read_unaligned() as usize;
                std::slice::from_raw_parts(rest.add(4), len)
            }
        }
    }
}

/// Frees an entry made by [`Head::alloc`], and the tree it owns.
///
/// # Safety
///
/// `ptr` is such an entry, freed once, when no reader can reach it.
#[allow(unsafe_code)]
unsafe fn free_entry<K>(ptr: NonNull<()>) {
    let p = ptr.cast::<Head<K>>();
    // SAFETY: the caller's promise: the entry is ours, and so is its tree.
    unsafe {
        let h = p.as_ptr();
        let value = (*h).value;
        let bytes = match unlink((*h).link).1 {
            Some(len) => len,
            None => 4 + key_of(h).len(),
        };
        if value & MANY != 0 {
            drop(Box::from_raw((value & !MANY) as *mut PTree<Arc<K>>));
        }
        std::alloc::dealloc(h.cast(), Head::<K>::layout(bytes));
    }
}

/// The 16-bit tag of a hash that a slot's pointer carries; never 0 (0 marks a pointer
/// that could not be tagged).
#[inline]
fn tag_of(hash: u64) -> usize {
    ((hash >> 48) as usize) | 1
}

#[cfg(target_pointer_width = "64")]
const TAG_SHIFT: u32 = 48;

/// `p` tagged with `tag`, if its address leaves the tag's bits clear.
#[inline]
fn tagged<K>(p: NonNull<Head<K>>, tag: usize) -> *mut Head<K> {
    #[cfg(target_pointer_width = "64")]
    {
        if p.as_ptr().addr() >> TAG_SHIFT == 0 {
            return p.as_ptr().map_addr(|a| a | (tag << TAG_SHIFT));
        }
    }
    let _ = tag;
    p.as_ptr()
}

/// A slot's pointer without its tag, and the tag (0 for none).
#[inline]
fn untag<K>(p: *mut Head<K>) -> (*const Head<K>, usize) {
    #[cfg(target_pointer_width = "64")]
    {
        let tag = p.addr() >> TAG_SHIFT;
        (p.map_addr(|a| a & ((1 << TAG_SHIFT) - 1)).cast_const(), tag)
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        (p.cast_const(), 0)
    }
}

/// A table's slots.
struct Slots<K> {
    mask: usize,
    slots: Box<[AtomicPtr<Head<K>>]>,
}

/// Frees a table made by [`Table::new`], not its entries.
///
/// # Safety
///
/// `ptr` is such a table, freed once, when no reader can reach it.
#[allow(unsafe_code)]
unsafe fn free_slots<K>(ptr: NonNull<()>) {
    // SAFETY: the caller's promise.
    drop(unsafe { Box::from_raw(ptr.cast::<Slots<K>>().as_ptr()) });
}

/// A state's exact-key table (see the module documentation): a pointer that owns
/// nothing, copied into each state the writer publishes. The writer frees tables and
/// entries only through generations.
pub(crate) struct Table<K>(NonNull<Slots<K>>);

impl<K> Clone for Table<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Table<K> {}

// SAFETY: a `Table` gives shared access to atomics that only the store's writer sets,
// to immutable entries, and through them to objects `K` as `&K` (and counted `Arc<K>`
// clones): `Send` and `Sync` exactly when those are.
#[allow(unsafe_code)]
unsafe impl<K: Send + Sync> Send for Table<K> {}
// SAFETY: as for `Send`.
#[allow(unsafe_code)]
unsafe impl<K: Send + Sync> Sync for Table<K> {}

/// What only the writer knows of the current table.
#[derive(Debug, Default)]
pub(crate) struct Fill {
    /// Slots that are not null.
    used: usize,
    /// Entries that are not tombstones: the number of keys.
    live: usize,
}

/// The fewest slots (a power of two) that hold `keys` keys within the fill limit.
fn slots_for(keys: usize) -> usize {
    (keys
        .saturating_mul(16)
        .div_ceil(MAX_FILL_16THS)
        .max(MIN_SLOTS))
    .checked_next_power_of_two()
    .unwrap_or(1 << (usize::BITS - 1))
}

impl<K> Table<K> {
    /// An empty table with room for `keys` keys. The writer owns it until it retires it.
    pub(crate) fn new(keys: usize) -> Self {
        let n = slots_for(keys);
        let slots: Box<[AtomicPtr<Head<K>>]> = (0..n)
            .map(|_| AtomicPtr::new(std::ptr::null_mut()))
            .collect();
        let s = Box::new(Slots { mask: n - 1, slots });
        Self(NonNull::from(Box::leak(s)))
    }

    #[inline]
    fn slots(&self) -> &Slots<K> {
        // SAFETY: a table is freed only by its generation, once no state that holds it
        // can be read (module documentation).
        #[allow(unsafe_code)]
        unsafe {
            self.0.as_ref()
        }
    }

    /// The slot of the key of hash `hash` that `eq` recognises, and its entry; or the
    /// null slot where the key would go.
    #[inline]
    fn find(&self, hash: u64, eq: impl Fn(&[u8]) -> bool) -> (usize, Option<Entry<'_, K>>) {
        self.find_where(hash, |e| eq(e.key()))
    }

    /// As [`find`](Self::find), for the entry `pred` recognises.
    #[inline]
    fn find_where(
        &self,
        hash: u64,
        pred: impl Fn(Entry<'_, K>) -> bool,
    ) -> (usize, Option<Entry<'_, K>>) {
        let s = self.slots();
        let tag = tag_of(hash);
        let mut i = hash as usize & s.mask;
        loop {
            let p = s.slots[i].load(Acquire);
            if p.is_null() {
                return (i, None);
            }
            let (p, t) = untag(p);
            if t == 0 || t == tag {
                // SAFETY: an entry in a slot is alive while the table can be read
                // (module documentation); the `Acquire` load synchronises with the
                // `Release` store that published it whole.
                #[allow(unsafe_code)]
                let e = unsafe { Entry::new(NonNull::new_unchecked(p.cast_mut())) };
                if pred(e) {
                    return (i, Some(e));
                }
            }
            // The writer keeps a null slot in every table (`MAX_FILL_16THS`), so the
            // probe ends.
            i = (i + 1) & s.mask;
        }
    }

    /// The objects the state of stamp `stamp` (one that holds this table) has under the
    /// key of hash `hash` that `eq` recognises (given an entry's key and whether it is
    /// plain: see [`Entry::is_plain`]): for any thread.
    #[inline]
    pub(crate) fn get(
        &self,
        hash: u64,
        stamp: u64,
        eq: impl Fn(&[u8], bool) -> bool,
    ) -> Option<Value<'_, K>> {
        let (_, mut e) = self.find_where(hash, |e| eq(e.key(), e.is_plain()));
        while let Some(h) = e {
            if h.at() <= stamp {
                return h.value();
            }
            // An entry newer than the reader's state was stored by a write whose
            // previous state is the reader's or later; that write retired the entry it
            // replaced into that state's generation, which the reader holds (module
            // documentation).
            e = h.prev();
        }
        None
    }

    /// The current entry of the key, tombstones included: the writer's view.
    pub(crate) fn current(&self, hash: u64, eq: impl Fn(&[u8]) -> bool) -> Option<Entry<'_, K>> {
        self.find(hash, eq).1
    }

    /// The current entry among those of hash `hash` that `pred` recognises: the
    /// writer's view.
    pub(crate) fn current_where(
        &self,
        hash: u64,
        pred: impl Fn(Entry<'_, K>) -> bool,
    ) -> Option<Entry<'_, K>> {
        self.find_where(hash, pred).1
    }

    /// Stores `stored` (`None`: nothing) as the objects under the key encoded `key`
    /// (hash `hash`), by the write of `cx`; the entry it replaces is retired into `cx`.
    /// May rebuild the table first (growing it): `self` is then the new one, and the
    /// old one is retired into `cx`. The writer only, on the table of the state it is
    /// about to publish; `rehash` gives the hash of a stored key's encoding.
    pub(crate) fn set(
        &mut self,
        fill: &mut Fill,
        hash: u64,
        key: &[u8],
        stored: Option<Stored<K>>,
        cx: &mut Draft,
        rehash: impl Fn(&[u8]) -> u64,
    ) {
        self.update(fill, hash, key, |_| stored, cx, rehash);
    }

    /// As [`set`](Self::set), storing what `change` makes of the key's current objects
    /// (`None`: none, or a tombstone), found by the same probe.
    pub(crate) fn update(
        &mut self,
        fill: &mut Fill,
        hash: u64,
        key: &[u8],
        change: impl FnOnce(Option<Value<'_, K>>) -> Option<Stored<K>>,
        cx: &mut Draft,
        rehash: impl Fn(&[u8]) -> u64,
    ) {
        let (mut i, old) = self.find(hash, |k| k == key);
        let stored = change(old.and_then(|o| o.value()));
        let Some(o) = old else {
            if stored.is_none() {
                return;
            }
            if (fill.used + 1) * 16 > self.slots().slots.len() * MAX_FILL_16THS {
                // Room for the live keys and an eighth more: with few tombstones that
                // is past the limit, so the table doubles; with an eighth of its
                // entries tombstones it stays, without them.
                self.rebuild(fill, fill.live + fill.live / 8 + 1, cx, &rehash);
                i = self.find(hash, |k| k == key).0;
            }
            let e = Head::alloc(cx.stamp(), std::ptr::null(), stored, key);
            self.slots().slots[i].store(tagged(e, tag_of(hash)), Release);
            fill.used += 1;
            fill.live += 1;
            return;
        };
        let old = o.p;
        let was_live = o.is_live();
        if !was_live && stored.is_none() {
            return;
        }
        // An entry this write stored itself was never published: no state holds it, so
        // the new one replaces it in the chain (a reader that already read it still
        // reaches its `prev`, and it is retired below like any other).
        let prev = if o.at() == cx.stamp() {
            o.prev_ptr()
        } else {
            old.as_ptr().cast_const()
        };
        let is_live = stored.is_some();
        let e = Head::alloc(cx.stamp(), prev, stored, key);
        self.slots().slots[i].store(tagged(e, tag_of(hash)), Release);
        // SAFETY: the entry is out of the table's current version; `free_entry` frees it
        // with the generation of the state before this write (module documentation).
        #[allow(unsafe_code)]
        cx.retire(unsafe { Retired::new(old.cast(), free_entry::<K>) });
        match (was_live, is_live) {
            (true, false) => fill.live -= 1,
            (false, true) => fill.live += 1,
            _ => {}
        }
        if !is_live && fill.used > MIN_SLOTS {
            let slots = self.slots().slots.len();
            if fill.live * 8 < slots {
                // An eighth full: rebuild smaller, without the tombstones.
                self.rebuild(fill, 2 * fill.live, cx, &rehash);
            } else if (fill.used - fill.live) * 8 > fill.used {
                // An eighth tombstones: rebuild at the same size without them, which
                // costs a pass over the table once per `used / 8` removals.
                self.rebuild(fill, fill.live, cx, &rehash);
            }
        }
    }

    /// Replaces the table with a new one of room for `keys` keys holding the live
    /// entries (the same ones; tombstones are retired), retiring the old table.
    fn rebuild(
        &mut self,
        fill: &mut Fill,
        keys: usize,
        cx: &mut Draft,
        rehash: &dyn Fn(&[u8]) -> u64,
    ) {
        let new = Table::<K>::new(keys.max(fill.live));
        let ns = new.slots();
        let mut live = 0;
        // Each entry is read for its key (a cache miss on a large table): the entries
        // `AHEAD` slots on are asked for while this one is read.
        const AHEAD: usize = 8;
        let old = &self.slots().slots;
        for (n, slot) in old.iter().enumerate() {
            if let Some(ahead) = old.get(n + AHEAD) {
                crate::index::latest::prefetch(untag(ahead.load(Acquire)).0.cast());
            }
            let p = slot.load(Acquire);
            if p.is_null() {
                continue;
            }
            let (p, _) = untag(p);
            // SAFETY: `p` is not null (checked above).
            #[allow(unsafe_code)]
            let nn = unsafe { NonNull::new_unchecked(p.cast_mut()) };
            // SAFETY: the current entries of the writer's own table are alive.
            #[allow(unsafe_code)]
            let e = unsafe { Entry::new(nn) };
            if !e.is_live() {
                // A tombstone: readers of the old table (older states) may still
                // read it.
                // SAFETY: out of every later table; freed with the generation of the
                // state before this write.
                #[allow(unsafe_code)]
                cx.retire(unsafe { Retired::new(nn.cast(), free_entry::<K>) });
                continue;
            }
            let h = rehash(e.key());
            let mut i = h as usize & ns.mask;
            while !ns.slots[i].load(Acquire).is_null() {
                i = (i + 1) & ns.mask;
            }
            ns.slots[i].store(tagged(nn, tag_of(h)), Release);
            live += 1;
        }
        let old = std::mem::replace(self, new);
        // SAFETY: the old table is out of the state this write publishes; it is freed
        // (not its entries, which the new table holds or `cx` frees) with the
        // generation of the state before this write.
        #[allow(unsafe_code)]
        cx.retire(unsafe { Retired::new(old.0.cast(), free_slots::<K>) });
        fill.used = live;
        fill.live = live;
    }

    /// Takes the table and every entry in it out of use (a relist replaced it, or the
    /// store is dropped): `cx` frees them with the generation it is finished into.
    pub(crate) fn retire_all(self, cx: &mut Draft) {
        for slot in self.slots().slots.iter() {
            let p = slot.load(Acquire);
            if let Some(p) = NonNull::new(untag(p).0.cast_mut()) {
                // SAFETY: each entry is in one slot of this table, which is out of use.
                #[allow(unsafe_code)]
                cx.retire(unsafe { Retired::new(p.cast(), free_entry::<K>) });
            }
        }
        // SAFETY: as above, for the table itself.
        #[allow(unsafe_code)]
        cx.retire(unsafe { Retired::new(self.0.cast(), free_slots::<K>) });
    }

    /// Every current entry with its slot, tombstones included, for invariant checks
    /// (the writer's).
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn entries(&self) -> impl Iterator<Item = (usize, Entry<'_, K>)> {
        self.slots().slots.iter().enumerate().filter_map(|(i, s)| {
            let p = NonNull::new(untag(s.load(Acquire)).0.cast_mut())?;
            // SAFETY: as in `find`.
            #[allow(unsafe_code)]
            Some((i, unsafe { Entry::new(p) }))
        })
    }

    /// Checks the table's invariants against `fill`: each entry reachable by a probe
    /// for its own key (no null slot between its hash's home slot and it), its tag
    /// right, and the counts.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn validate(
        &self,
        fill: &Fill,
        rehash: impl Fn(&[u8]) -> u64,
    ) -> Result<(), String> {
        let s = self.slots();
        let (mut used, mut live) = (0, 0);
        for (i, e) in self.entries() {
            used += 1;
            if e.is_live() {
                live += 1;
            }
            let h = rehash(e.key());
            let (found, _) = self.find(h, |k| k == e.key());
            if found != i {
                return Err(format!("entry in slot {i} is found by a probe at {found}"));
            }
            let (_, t) = untag(s.slots[i].load(Acquire));
            if t != 0 && t != tag_of(h) {
                return Err(format!("slot {i} has tag {t:#x}, its key {:#x}", tag_of(h)));
            }
        }
        if used != fill.used || live != fill.live {
            return Err(format!(
                "table holds {used} entries ({live} live), the writer counts {} ({})",
                fill.used, fill.live
            ));
        }
        if used * 16 > s.slots.len() * MAX_FILL_16THS {
            return Err(format!("table {used} of {} full", s.slots.len()));
        }
        Ok(())
    }
}

/// A table built whole for a relist, before any reader can see it.
pub(crate) struct Builder<K> {
    table: Table<K>,
    fill: Fill,
    scratch: Vec<u8>,
}

impl<K> Builder<K> {
    /// A builder for at most `items` objects.
    pub(crate) fn new(items: usize) -> Self {
        Self {
            table: Table::new(items),
            fill: Fill::default(),
            scratch: Vec::new(),
        }
    }

    /// Adds `obj` under `keys` (hash `hash`), replacing an equal member: every entry
    /// stamped 0. `obj` is a stored object (see [`bucket::inserted`]).
    pub(crate) fn add<S: AsRef<str>>(
        &mut self,
        hash: u64,
        keys: &[S],
        obj: Unowned<K>,
        acc: crate::object::Accessors<K>,
    ) {
        let (i, old) = self
            .table
            .find(hash, |k| crate::index::key::encoded_eq(k, keys));
        let slot = &self.table.slots().slots[i];
        match old {
            None => {
                // Sized for every object (`new`), so it never fills up.
                debug_assert!(
                    (self.fill.used + 1) * 16 <= self.table.slots().slots.len() * MAX_FILL_16THS
                );
                self.scratch.clear();
                for k in keys {
                    crate::index::key::encode_component(&mut self.scratch, k.as_ref().as_bytes());
                }
                let e = Head::alloc(0, std::ptr::null(), Some(Stored::One(obj)), &self.scratch);
                slot.store(tagged(e, tag_of(hash)), Release);
                self.fill.used += 1;
                self.fill.live += 1;
            }
            Some(old) => {
                let stored = crate::index::bucket::inserted(old.value().as_ref(), obj, None, acc);
                let e = Head::alloc(0, std::ptr::null(), Some(stored), old.key());
                let old = old.p;
                slot.store(tagged(e, tag_of(hash)), Release);
                // SAFETY: no reader has seen this table, and the slot no longer holds it.
                #[allow(unsafe_code)]
                unsafe {
                    free_entry::<K>(old.cast())
                };
            }
        }
    }

    pub(crate) fn finish(self) -> (Table<K>, Fill) {
        (self.table, self.fill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::retire::Generation;

    /// Keys 5 and 55 are longer than a link holds (their length goes before them).
    fn key(i: usize) -> Vec<u8> {
        let long = if i % 50 == 5 {
            "x".repeat(1 << 16)
        } else {
            String::new()
        };
        crate::index::key::encode(&["ns", &format!("k{i}{long}")])
    }

    fn hash(k: &[u8]) -> u64 {
        // One seed for the whole test (a store's hasher is seeded once).
        static HASHER: std::sync::OnceLock<crate::index::key::KeyHasher> =
            std::sync::OnceLock::new();
        HASHER.get_or_init(Default::default).hash_encoded(k)
    }

    /// Sets, reads back at every stamp, grows, removes past a purge and a shrink, and
    /// frees everything through a generation: the table's unsafe code end to end
    /// (run under Miri as well as natively).
    #[test]
    fn versions_rebuilds_and_frees() {
        let objects: Vec<Arc<u32>> = (0..60).map(Arc::new).collect();
        let mut t = Table::<u32>::new(0);
        let mut fill = Fill::default();
        let generation = Generation::<u32>::new();
        let mut retired = Vec::new();
        let stamp = std::cell::Cell::new(0);
        let mut write = |t: &mut Table<u32>, fill: &mut Fill, i: usize, obj: Option<&Arc<u32>>| {
            stamp.set(stamp.get() + 1);
            let mut cx = Draft::new(stamp.get());
            let k = key(i);
            // SAFETY (of the test): `objects` outlives the table.
            #[allow(unsafe_code)]
            let stored = obj.map(|o| Stored::One(unsafe { Unowned::new(o) }));
            t.set(fill, hash(&k), &k, stored, &mut cx, hash);
            retired.extend(cx.finish());
            stamp.get()
        };
        let get = |t: &Table<u32>, i: usize, at: u64| {
            let k = key(i);
            t.get(hash(&k), at, |b, _| b == k).map(|v| match v {
                Value::One(o) => **o,
                Value::Many(_) => u32::MAX,
            })
        };
        // Growth: 60 keys pass 13/16 of 16, 32 and 64 slots (each growth doubles).
        let mut added = Vec::new();
        for (i, obj) in objects.iter().enumerate() {
            added.push(write(&mut t, &mut fill, i, Some(obj)));
        }
        t.validate(&fill, hash).unwrap();
        assert_eq!(
            t.slots().slots.len(),
            128,
            "60 keys in the fewest slots that hold them"
        );
        for (i, short) in [(54, true), (55, false)] {
            let k = key(i);
            let e = t.current(hash(&k), |b| b == k).unwrap();
            assert_eq!(e.key(), k);
            #[cfg(target_pointer_width = "64")]
            assert_eq!(
                unlink(e.fields().1).1.is_some(),
                short,
                "key {i}'s length in the link"
            );
            let _ = short;
        }
        for (i, &at) in added.iter().enumerate() {
            assert_eq!(get(&t, i, at), Some(i as u32));
            assert_eq!(get(&t, i, at - 1), None, "key {i} before its write");
        }
        // A new version of key 3, readable at both stamps.
        let before = stamp.get();
        let updated = write(&mut t, &mut fill, 3, Some(&objects[7]));
        assert_eq!(get(&t, 3, before), Some(3));
        assert_eq!(get(&t, 3, updated), Some(7));
        // Removals: tombstones, a purge once they are an eighth, then shrinks.
        for i in 0..52 {
            let at = write(&mut t, &mut fill, i, None);
            t.validate(&fill, hash).unwrap();
            assert_eq!(get(&t, i, at), None);
        }
        for i in 52..60 {
            assert_eq!(get(&t, i, stamp.get()), Some(i as u32));
        }
        assert_eq!(t.slots().slots.len(), 32, "rebuilt smaller as keys went");
        // Everything goes with a generation, as a relist or a dropped store does.
        let mut cx = Draft::new(stamp.get() + 1);
        t.retire_all(&mut cx);
        retired.extend(cx.finish());
        generation.retire_nodes(retired);
        drop(generation);
    }
}
