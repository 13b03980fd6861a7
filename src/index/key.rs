//! Composite keys: how key components are hashed, encoded and compared.
//!
//! Components are arbitrary UTF-8 (empty strings, `/`, `:`, NUL, any unicode), and two
//! different component vectors must never be confused. The original design joined
//! components with `/`, so `["a/b", "c"]` and `["a", "b/c"]` collided. Here:
//!
//! - **Hashing** feeds each component's length before its bytes, so the hash input of
//!   distinct vectors differs (hash equality is only ever a hint; buckets compare keys).
//! - **Encoding** (for keys that must be stored) is order-preserving and prefix-free, in
//!   the style of FoundationDB's tuple layer: each component's bytes with every `0x00`
//!   escaped as `0x00 0xFF`, followed by the terminator `0x00 0x01`. Encoding is
//!   injective, [`decode`] inverts it, the byte order of encodings is the
//!   component-by-component order of the vectors, and the encoding of a prefix of
//!   components is a byte prefix of the encoding of the whole.

use std::hash::{BuildHasher, Hasher};

const ESC: u8 = 0x00;
const ESCAPED_NUL: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

/// The hasher for composite keys and identities.
///
/// Seeded per store at random (keys come from objects that cluster users write, so a
/// fixed seed would let them craft collisions); fixed under loom and fuzzing, so that
/// models and crash inputs replay with the same table layout.
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyHasher {
    #[cfg(not(any(k8s_store_loom, fuzzing)))]
    state: foldhash::fast::RandomState,
    #[cfg(any(k8s_store_loom, fuzzing))]
    state: foldhash::fast::FixedState,
}

impl KeyHasher {
    /// The hash of a composite key given as components.
    pub(crate) fn hash_components<'a, I>(&self, components: I) -> u64
    where
        I: IntoIterator<Item = &'a [u8]>,
    {
        let mut h = self.state.build_hasher();
        for c in components {
            h.write_usize(c.len());
            h.write(c);
        }
        h.finish()
    }

    /// The hash of a composite key given encoded: [`hash_components`] of its
    /// components.
    ///
    /// [`hash_components`]: Self::hash_components
    pub(crate) fn hash_encoded(&self, encoded: &[u8]) -> u64 {
        let mut h = self.state.build_hasher();
        for_each_component(encoded, |c| {
            h.write_usize(c.len());
            h.write(c);
        });
        h.finish()
    }

    /// The hash of an object identity.
    pub(crate) fn hash_identity(&self, id: &crate::object::Identity<'_>) -> u64 {
        let mut h = self.state.build_hasher();
        match id {
            crate::object::Identity::Uid(uid) => {
                h.write_u8(1);
                h.write(uid.as_bytes());
            }
            crate::object::Identity::Name { namespace, name } => {
                h.write_u8(2);
                h.write_usize(namespace.len());
                h.write(namespace.as_bytes());
                h.write(name.as_bytes());
            }
        }
        h.finish()
    }
}

/// Appends the encoding of one component to `out`.
pub(crate) fn encode_component(out: &mut Vec<u8>, component: &[u8]) {
    for piece in component.split(|&b| b == 0).enumerate() {
        if piece.0 > 0 {
            out.extend_from_slice(&[ESC, ESCAPED_NUL]);
        }
        out.extend_from_slice(piece.1);
    }
    out.extend_from_slice(&[ESC, TERMINATOR]);
}

/// Encodes a composite key (or a prefix of one).
pub fn encode<S: AsRef<str>>(components: &[S]) -> Vec<u8> {
    let mut out = Vec::with_capacity(components.iter().map(|c| c.as_ref().len() + 2).sum());
    for c in components {
        encode_component(&mut out, c.as_ref().as_bytes());
    }
    out
}

/// Why [`decode`] rejected its input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends inside a component (no terminator).
    #[error("encoded key ends without a terminator at byte {0}")]
    Unterminated(usize),
    /// A `0x00` is followed by something other than `0xFF` or `0x01`.
    #[error("invalid escape at byte {0}")]
    BadEscape(usize),
    /// A component is not UTF-8.
    #[error("component {0} is not UTF-8")]
    NotUtf8(usize),
}

/// Decodes what [`encode`] produced back into its components.
///
/// # Errors
/// [`DecodeError`] if `bytes` is not an encoding of a component vector.
pub fn decode(bytes: &[u8]) -> Result<Vec<String>, DecodeError> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            ESC => match bytes.get(i + 1) {
                Some(&ESCAPED_NUL) => {
                    current.push(0);
                    i += 2;
                }
                Some(&TERMINATOR) => {
                    let c = String::from_utf8(std::mem::take(&mut current))
                        .map_err(|_| DecodeError::NotUtf8(out.len()))?;
                    out.push(c);
                    i += 2;
                }
                Some(_) => return Err(DecodeError::BadEscape(i)),
                None => return Err(DecodeError::Unterminated(i)),
            },
            b => {
                current.push(b);
                i += 1;
            }
        }
    }
    if current.is_empty() && (bytes.is_empty() || bytes.ends_with(&[ESC, TERMINATOR])) {
        Ok(out)
    } else {
        Err(DecodeError::Unterminated(bytes.len()))
    }
}

/// Calls `f` with each decoded component of a valid encoding, without allocating for
/// components that contain no NUL byte.
pub(crate) fn for_each_component(bytes: &[u8], mut f: impl FnMut(&[u8])) {
    let mut start = 0;
    let mut i = 0;
    let mut owned: Option<Vec<u8>> = None;
    while i < bytes.len() {
        if bytes[i] == ESC {
            let next = bytes.get(i + 1).copied();
            if next == Some(ESCAPED_NUL) {
                let buf = owned.get_or_insert_with(Vec::new);
                buf.extend_from_slice(&bytes[start..i]);
                buf.push(0);
                i += 2;
                start = i;
                continue;
            }
            // Terminator (a stored encoding is always valid).
            match owned.take() {
                Some(mut buf) => {
                    buf.extend_from_slice(&bytes[start..i]);
                    f(&buf);
                }
                None => f(&bytes[start..i]),
            }
            i += 2;
            start = i;
            continue;
        }
        i += 1;
    }
}

/// Byte-string equality for the short strings of the read paths (names, namespaces,
/// resourceVersions): up to 16 bytes it compares two overlapping words in registers
/// instead of calling `memcmp`, which dominated the cost of a hit.
#[inline]
pub(crate) fn short_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    match (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        (Some(a0), Some(b0)) if a.len() <= 16 => {
            // Both are at least 8 long (first_chunk), so last_chunk is Some as well.
            a0 == b0 && a.last_chunk::<8>() == b.last_chunk::<8>()
        }
        (None, None) => match (a.first_chunk::<4>(), b.first_chunk::<4>()) {
            (Some(a0), Some(b0)) => a0 == b0 && a.last_chunk::<4>() == b.last_chunk::<4>(),
            _ => a.iter().zip(b).all(|(x, y)| x == y),
        },
        _ => a == b,
    }
}

/// Whether the encoding `bytes` is exactly the encoding of `components`, compared
/// without allocating.
///
/// A component without a NUL byte is encoded as its own bytes and a terminator, so it
/// is compared in one piece (the exact-key index's probe, for every key); one with a
/// NUL byte goes through the escapes.
#[inline]
pub(crate) fn encoded_eq<S: AsRef<str>>(bytes: &[u8], components: &[S]) -> bool {
    let mut rest = bytes;
    for (i, c) in components.iter().enumerate() {
        let c = c.as_ref().as_bytes();
        if c.contains(&0) {
            return escaped_eq(rest, &components[i..]);
        }
        match strip_plain(rest, c) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// `bytes` after the encoding of the NUL-free component `c` at its start, if it is
/// there: `c`'s own bytes, then a terminator.
#[inline]
fn strip_plain<'a>(bytes: &'a [u8], c: &[u8]) -> Option<&'a [u8]> {
    let n = c.len();
    match bytes.get(..n + 2) {
        Some(head) if head[n..] == [ESC, TERMINATOR] && short_eq(&head[..n], c) => {
            Some(&bytes[n + 2..])
        }
        _ => None,
    }
}

/// Whether an encoding has no escaped NUL byte: none of its components had one.
pub(crate) fn is_plain(encoded: &[u8]) -> bool {
    !encoded.windows(2).any(|w| w == [ESC, ESCAPED_NUL])
}

/// [`encoded_eq`], given whether `bytes` [`is_plain`]: if it is, each component is
/// compared in one piece, without looking for NUL bytes in it.
///
/// Exact when `bytes` holds as many components as `components` (as every key of one
/// store does): a plain encoding has one NUL byte per component, before each
/// terminator, so bytes equal to the components laid end to end with a terminator
/// after each hold no NUL byte of the components, and are their encoding.
#[inline]
pub(crate) fn entry_eq<S: AsRef<str>>(bytes: &[u8], plain: bool, components: &[S]) -> bool {
    if !plain {
        return encoded_eq(bytes, components);
    }
    let mut rest = bytes;
    for c in components {
        match strip_plain(rest, c.as_ref().as_bytes()) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

/// [`encoded_eq`], piece by piece between the escaped NUL bytes.
fn escaped_eq<S: AsRef<str>>(bytes: &[u8], components: &[S]) -> bool {
    let mut rest = bytes;
    for c in components {
        for (n, piece) in c.as_ref().as_bytes().split(|&b| b == 0).enumerate() {
            if n > 0 {
                match rest.strip_prefix(&[ESC, ESCAPED_NUL]) {
                    Some(r) => rest = r,
                    None => return false,
                }
            }
            match rest.strip_prefix(piece) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        match rest.strip_prefix(&[ESC, TERMINATOR]) {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_eq_and_entry_eq_agree_with_comparing_encodings() {
        // Components with NUL bytes next to U+0001 (the terminator's second byte) and
        // 0xFF's neighbours, empty ones, and splits of the same bytes.
        let parts = [
            "",
            "a",
            "\0",
            "a\0",
            "\0b",
            "a\0\u{1}b",
            "\u{1}",
            "b",
            "a\0\0",
            "ÿ",
        ];
        let mut vectors: Vec<Vec<&str>> = Vec::new();
        for a in parts {
            vectors.push(vec![a]);
            for b in parts {
                vectors.push(vec![a, b]);
                for c in ["", "\0", "b"] {
                    vectors.push(vec![a, b, c]);
                }
            }
        }
        for stored in &vectors {
            let bytes = encode(stored);
            for given in &vectors {
                assert_eq!(
                    encoded_eq(&bytes, given),
                    encode(given) == bytes,
                    "{stored:?} against {given:?}"
                );
                // Every key of one store has as many components.
                if given.len() == stored.len() {
                    assert_eq!(
                        entry_eq(&bytes, is_plain(&bytes), given),
                        encode(given) == bytes,
                        "{stored:?} against {given:?}, an entry's key"
                    );
                }
            }
            let plain = stored.iter().all(|c| !c.contains('\0'));
            assert_eq!(is_plain(&bytes), plain, "{stored:?} is plain");
        }
    }

    #[test]
    fn short_eq_agrees_with_slice_eq() {
        let words: Vec<Vec<u8>> = (0..40)
            .flat_map(|n| {
                let base: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
                let mut variants = vec![base.clone()];
                for pos in 0..n {
                    let mut v = base.clone();
                    v[pos as usize] ^= 1;
                    variants.push(v);
                }
                variants
            })
            .collect();
        for a in &words {
            for b in &words {
                assert_eq!(short_eq(a, b), a == b, "{a:?} vs {b:?}");
            }
        }
    }

    fn comps(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for_each_component(bytes, |c| v.push(c.to_vec()));
        v
    }

    #[test]
    fn slash_joined_collisions_encode_apart() {
        assert_ne!(encode(&["a/b", "c"]), encode(&["a", "b/c"]));
        assert_ne!(encode(&["", "a"]), encode(&["a", ""]));
        assert_ne!(encode(&["a\0", ""]), encode(&["a", "\0"]));
    }

    #[test]
    fn decode_inverts_encode_for_odd_components() {
        let keys = ["", "/", "a\0b", "\0", "ünï/cødé", "\u{10FFFF}", ":"];
        let e = encode(&keys);
        assert_eq!(decode(&e).unwrap(), keys);
        let c = comps(&e);
        assert_eq!(
            c,
            keys.iter()
                .map(|k| k.as_bytes().to_vec())
                .collect::<Vec<_>>()
        );
        assert!(encoded_eq(&e, &keys));
        assert!(!encoded_eq(&e, &keys[..6]));
    }

    #[test]
    fn decode_rejects_malformed_input() {
        assert_eq!(decode(b"abc"), Err(DecodeError::Unterminated(3)));
        assert_eq!(decode(&[0]), Err(DecodeError::Unterminated(0)));
        assert_eq!(decode(&[0, 7]), Err(DecodeError::BadEscape(0)));
        assert_eq!(decode(&[0xC3, 0, 1]), Err(DecodeError::NotUtf8(0)));
        assert_eq!(decode(&[]), Ok(vec![]));
    }

    #[test]
    fn prefix_encoding_is_byte_prefix() {
        let full = encode(&["ns", "name"]);
        assert!(full.starts_with(&encode(&["ns"])));
        assert!(!encode(&["nsx"]).starts_with(&encode(&["ns"])));
    }

    #[test]
    fn hash_separates_boundaries() {
        let h = KeyHasher::default();
        let a = h.hash_components([&b"a/b"[..], b"c"]);
        let b = h.hash_components([&b"a"[..], b"b/c"]);
        assert_ne!(a, b);
    }
}
