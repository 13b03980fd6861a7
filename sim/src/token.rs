//! Continue tokens: opaque to clients, they carry the list's resourceVersion, the resource,
//! the namespace scope and the last key returned.

use super::store::ObjKey;

/// The decoded content of a `continue` token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContinueToken {
    pub(crate) rv: u64,
    pub(crate) resource: String,
    pub(crate) namespace: Option<String>,
    pub(crate) after: ObjKey,
}

type Wire = (u64, String, Option<String>, String, String);

impl ContinueToken {
    pub(crate) fn encode(&self) -> String {
        let wire: Wire = (
            self.rv,
            self.resource.clone(),
            self.namespace.clone(),
            self.after.0.clone(),
            self.after.1.clone(),
        );
        // Serialising a tuple of strings and integers cannot fail.
        let json = serde_json::to_vec(&wire).unwrap_or_default();
        let mut out = String::with_capacity(json.len() * 2);
        for b in json {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// `None` when the token was not produced by [`ContinueToken::encode`].
    pub(crate) fn decode(token: &str) -> Option<Self> {
        let bytes = token.as_bytes();
        if !bytes.len().is_multiple_of(2) {
            return None;
        }
        let mut json = Vec::with_capacity(bytes.len() / 2);
        for pair in bytes.chunks(2) {
            let hi = hex_value(pair[0])?;
            let lo = hex_value(pair[1])?;
            json.push(hi << 4 | lo);
        }
        let (rv, resource, namespace, ns, name): Wire = serde_json::from_slice(&json).ok()?;
        Some(Self {
            rv,
            resource,
            namespace,
            after: (ns, name),
        })
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let t = ContinueToken {
            rv: 42,
            resource: "configmaps".into(),
            namespace: Some("default".into()),
            after: ("default".into(), "a\"b".into()),
        };
        assert_eq!(ContinueToken::decode(&t.encode()), Some(t));
        assert_eq!(ContinueToken::decode("zz"), None);
        assert_eq!(ContinueToken::decode("abc"), None);
    }
}
