//! Properties of the public key encoding, `k8s_store::key::{encode, decode}`:
//!
//! - round trip: `decode(encode(a)) == a`;
//! - injective: `encode(a) == encode(b)` iff `a == b`;
//! - order preserving: the byte order of `encode(a)` and `encode(b)` is the
//!   component-by-component order of `a` and `b` (compared as `Vec<Vec<u8>>`);
//! - prefix: `encode(&a[..k])` is a byte prefix of `encode(a)` for every `k`, and a
//!   byte-prefix relation between encodings only holds for component prefixes;
//! - `decode` of arbitrary bytes never panics, and whatever it accepts re-encodes to
//!   the same bytes (so `decode` accepts exactly the image of `encode`).

#![no_main]

use arbitrary::Arbitrary;
use k8s_store::key::{decode, encode};
use libfuzzer_sys::fuzz_target;

/// Components that collide when joined with `/`, contain NUL or the escape bytes, or
/// are prefixes of each other. Drawing from here makes equal vectors and near misses
/// common; `Raw` covers everything else.
const ALPHABET: &[&str] = &[
    "", "/", "a", "a/b", "b/c", "\0", "\0\0", "a\0", "\u{1}", "\0\u{1}", "é", "日本", ":", "ab",
];

#[derive(Arbitrary, Debug)]
enum Component {
    Small(u8),
    Raw(String),
}

impl Component {
    fn get(&self) -> String {
        match self {
            Component::Small(i) => ALPHABET[usize::from(*i) % ALPHABET.len()].to_owned(),
            Component::Raw(s) => s.clone(),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Input {
    a: Vec<Component>,
    b: Vec<Component>,
    /// When set, `b` is `a` followed by `b` (exercises the prefix properties).
    b_extends_a: bool,
    junk: Vec<u8>,
}

fn bytes(v: &[String]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

fn check_one(a: &[String]) -> Vec<u8> {
    let ea = encode(a);
    match decode(&ea) {
        Ok(d) => assert_eq!(d, a, "decode(encode(a)) != a for {a:?}, encoding {ea:02x?}"),
        Err(e) => panic!("decode(encode({a:?})) failed: {e} (encoding {ea:02x?})"),
    }
    for k in 0..=a.len() {
        let ep = encode(&a[..k]);
        assert!(
            ea.starts_with(&ep),
            "encode of the {k}-prefix of {a:?} is not a byte prefix: {ep:02x?} vs {ea:02x?}"
        );
    }
    ea
}

fuzz_target!(|input: Input| {
    let a: Vec<String> = input.a.iter().map(Component::get).collect();
    let mut b: Vec<String> = input.b.iter().map(Component::get).collect();
    if input.b_extends_a {
        b = a.iter().cloned().chain(b).collect();
    }

    let ea = check_one(&a);
    let eb = check_one(&b);

    assert_eq!(
        ea == eb,
        a == b,
        "injectivity: a = {a:?}, b = {b:?}, encodings {ea:02x?} / {eb:02x?}"
    );
    assert_eq!(
        ea.cmp(&eb),
        bytes(&a).cmp(&bytes(&b)),
        "order: a = {a:?}, b = {b:?}, encodings {ea:02x?} / {eb:02x?}"
    );
    // A byte prefix between encodings means a component prefix, and vice versa.
    assert_eq!(
        eb.starts_with(&ea),
        b.starts_with(&a),
        "prefix: a = {a:?}, b = {b:?}, encodings {ea:02x?} / {eb:02x?}"
    );

    // Arbitrary bytes: never a panic; anything accepted is a canonical encoding.
    if let Ok(d) = decode(&input.junk) {
        assert_eq!(
            encode(&d),
            input.junk,
            "decode accepted non-canonical bytes {:02x?} as {d:?}",
            input.junk
        );
    }
    // Truncations and extensions of a valid encoding: never a panic either (bounded,
    // as each cut decodes the whole prefix).
    for cut in 0..ea.len().min(256) {
        if let Ok(d) = decode(&ea[..cut]) {
            assert_eq!(encode(&d), &ea[..cut]);
        }
    }
    let mut extended = ea.clone();
    extended.extend_from_slice(&input.junk);
    if let Ok(d) = decode(&extended) {
        assert_eq!(encode(&d), extended);
    }
});
