//! The objects under one exact composite key (a [`Value`] of the
//! [`exact`](crate::index::exact) table), and how a write changes them.
//!
//! Most keys hold one object, held uncounted in the key's entry. A key of several
//! objects holds them in a counted persistent tree in (namespace, name, uid) order,
//! which a write copies along one path and a reader walks in place.

use std::cmp::Ordering;

use crate::index::exact::{Stored, Value};
use crate::index::ptree::{PTree, Sep, SepBuilder, Target};
use crate::index::retire::Unowned;
use crate::object::{Accessors, MetaView};
use crate::sync::Arc;

/// The members of a key, taken out of its entry.
pub(crate) enum Members<K> {
    One(Arc<K>),
    Many(PTree<Arc<K>>),
}

impl<K> Members<K> {
    pub(crate) fn into_objects(self) -> crate::Objects<K> {
        match self {
            Members::One(o) => crate::Objects::one(o),
            Members::Many(t) => t.iter().cloned().collect(),
        }
    }
}

/// Orders objects by (namespace, name, uid) relative to `target`.
pub(crate) fn by_order<'t, K, E: AsRef<K>>(
    acc: Accessors<K>,
    target: MetaView<'t>,
) -> Target<impl Fn(&E) -> Ordering + 't>
where
    K: 't,
{
    Target {
        sep: meta_sep(&target),
        cmp: move |e: &E| (acc.meta)(e.as_ref()).order(&target),
    }
}

/// The [`Sep`] of an object in (namespace, name, uid) order.
pub(crate) fn sep_of<K, E: AsRef<K>>(acc: Accessors<K>) -> impl Fn(&E) -> Sep {
    move |e| meta_sep(&(acc.meta)(e.as_ref()))
}

/// The [`Sep`] of [`MetaView::order`]: its first 32 bytes, kept inline in the index's
/// inner tree nodes for routing without reading objects. (Here, not on `MetaView`: the
/// ground floor of the crate knows nothing of the index's trees.)
pub(crate) fn meta_sep(view: &MetaView<'_>) -> Sep {
    let mut b = SepBuilder::new();
    b.add_component(view.namespace.as_bytes());
    b.add_component(view.name.as_bytes());
    b.add_component(view.uid.as_bytes());
    b.finish()
}

impl<K> Value<'_, K> {
    /// Takes the members out (one count, or the tree's root).
    pub(crate) fn members(&self) -> Members<K> {
        match self {
            Value::One(obj) => Members::One(Arc::clone(obj)),
            Value::Many(t) => Members::Many((*t).clone()),
        }
    }

    /// The only member, or how many there are.
    pub(crate) fn single(&self) -> Result<&Arc<K>, usize> {
        match self {
            Value::One(obj) => Ok(obj),
            Value::Many(t) => Err(t.len()),
        }
    }

    /// Whether the object `target` (by order, which implies identity) is a member.
    pub(crate) fn contains(&self, target: MetaView<'_>, acc: Accessors<K>) -> bool {
        match self {
            Value::One(obj) => (acc.meta)(obj).order(&target) == Ordering::Equal,
            Value::Many(t) => t.get(&by_order(acc, target)).is_some(),
        }
    }

    /// Every member, for invariant checks.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<K>)) {
        match self {
            Value::One(obj) => f(obj),
            Value::Many(t) => t.iter().for_each(f),
        }
    }

    /// Checks the members' own invariants.
    #[cfg(any(test, fuzzing, k8s_store_loom, feature = "validate"))]
    pub(crate) fn validate(&self, acc: Accessors<K>) -> Result<(), String> {
        match self {
            Value::One(_) => Ok(()),
            Value::Many(t) if t.len() < 2 => Err(format!("a tree of {} members", t.len())),
            Value::Many(t) => t.validate(|a, b| (acc.meta)(a).order(&(acc.meta)(b)), sep_of(acc)),
        }
    }
}

/// The members `old` (none for a new key) with `obj` added, replacing an equal member.
/// `obj` is a stored object (the identity table holds it by the end of the write).
/// `replaces` is the member it replaces, if the caller knows it (and that it orders as
/// `obj`): a key of that one member is then changed without reading it (in a batch's
/// commit it is cold by then).
pub(crate) fn inserted<K>(
    old: Option<&Value<'_, K>>,
    obj: Unowned<K>,
    replaces: Option<&Arc<K>>,
    acc: Accessors<K>,
) -> Stored<K> {
    if let (Some(Value::One(cur)), Some(m)) = (old, replaces)
        && Arc::ptr_eq(cur, m)
    {
        return Stored::One(obj);
    }
    let view = (acc.meta)(&obj);
    match old {
        None => Stored::One(obj),
        Some(Value::One(cur)) if (acc.meta)(cur).order(&view) == Ordering::Equal => {
            Stored::One(obj)
        }
        Some(Value::One(cur)) => {
            let (cur, obj) = (Arc::clone(cur), Arc::clone(&obj));
            let pair = if view.order(&(acc.meta)(&cur)) == Ordering::Less {
                vec![obj, cur]
            } else {
                vec![cur, obj]
            };
            Stored::Many(PTree::from_sorted(pair, sep_of(acc), &()))
        }
        Some(Value::Many(t)) => {
            let mut t = (*t).clone();
            let replaced = t.insert(Arc::clone(&obj), &by_order(acc, view), sep_of(acc), &mut ());
            drop(replaced);
            Stored::Many(t)
        }
    }
}

/// The members `old` without the member equal to `target` (`None`: none are left).
pub(crate) fn removed<K>(
    old: &Value<'_, K>,
    target: MetaView<'_>,
    acc: Accessors<K>,
) -> Option<Stored<K>> {
    match old {
        Value::One(obj) => {
            // The caller found `target` under this key.
            debug_assert!((acc.meta)(obj).order(&target) == Ordering::Equal);
            None
        }
        Value::Many(t) => {
            let mut t = (*t).clone();
            t.remove(&by_order(acc, target), sep_of(acc), &mut ());
            if t.len() > 1 {
                return Some(Stored::Many(t));
            }
            let last = t.iter().next()?;
            // SAFETY: a member of a stored key is a stored object, which the identity
            // table keeps alive while a state holds it (`retire`'s invariant).
            #[allow(unsafe_code)]
            Some(Stored::One(unsafe { Unowned::new(last) }))
        }
    }
}

/// The byte length of the first `depth` components of a valid encoding.
pub(crate) fn prefix_len(encoded: &[u8], depth: usize) -> usize {
    let mut seen = 0;
    let mut i = 0;
    while i + 1 < encoded.len() && seen < depth {
        if encoded[i] == 0 {
            if encoded[i + 1] == 1 {
                seen += 1;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    i
}
