//! Label and field selectors, parsed and matched the way the API server does.
//!
//! Label selectors support the full `k8s.io/apimachinery/pkg/labels` grammar: `key`,
//! `!key`, `key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
//! `key>1`, `key<1`, comma-separated (all must hold). Field selectors support
//! `metadata.name` and `metadata.namespace` with `=`, `==` and `!=`; any other field is
//! rejected like a real server rejects a field label the resource does not index.

use std::collections::BTreeSet;

use serde_json::Value;

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct LabelSelector {
    requirements: Vec<LabelRequirement>,
}

#[derive(Debug, Clone, PartialEq)]
enum LabelRequirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    Comma,
    Open,
    Close,
}

fn is_special(c: char) -> bool {
    matches!(c, '!' | '=' | ',' | '(' | ')' | '<' | '>') || c.is_whitespace()
}

fn lex(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        chars.next();
        let token = match c {
            '!' if chars.peek() == Some(&'=') => {
                chars.next();
                Token::NotEq
            }
            '!' => Token::Not,
            '=' if chars.peek() == Some(&'=') => {
                chars.next();
                Token::DoubleEq
            }
            '=' => Token::Eq,
            '>' => Token::Gt,
            '<' => Token::Lt,
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            first => {
                let mut ident = String::from(first);
                while let Some(&next) = chars.peek() {
                    if is_special(next) {
                        break;
                    }
                    ident.push(next);
                    chars.next();
                }
                Token::Ident(ident)
            }
        };
        tokens.push(token);
    }
    tokens
}

/// `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`, at most `max` characters.
fn is_qualified_name_part(s: &str, max: usize) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// A DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, at most 253 characters.
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            let b = label.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        })
}

fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !is_dns_subdomain(prefix)
    {
        return Err(format!(
            "invalid label key {key:?}: prefix must be a DNS subdomain"
        ));
    }
    if !is_qualified_name_part(name, 63) {
        return Err(format!(
            "invalid label key {key:?}: name part must consist of alphanumeric characters, \
             '-', '_' or '.', and must start and end with an alphanumeric character"
        ));
    }
    Ok(())
}

fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_qualified_name_part(value, 63) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?}: must be 63 characters or less and consist of \
             alphanumeric characters, '-', '_' or '.', starting and ending with an alphanumeric"
        ))
    }
}

impl LabelSelector {
    /// Parses a selector; the error is the message a real server puts in its 400.
    pub(crate) fn parse(input: &str) -> Result<Self, String> {
        let tokens = lex(input);
        let mut pos = 0;
        let mut requirements = Vec::new();
        if tokens.is_empty() {
            return Ok(Self { requirements });
        }
        loop {
            requirements.push(parse_requirement(&tokens, &mut pos)?);
            match tokens.get(pos) {
                None => break,
                Some(Token::Comma) => pos += 1,
                Some(other) => {
                    return Err(format!(
                        "unable to parse requirement: found {other:?}, expected ','"
                    ));
                }
            }
        }
        Ok(Self { requirements })
    }

    /// Whether `object` (a Kubernetes object as JSON) matches.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        if self.requirements.is_empty() {
            return true;
        }
        let labels = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object);
        let get = |key: &str| labels.and_then(|l| l.get(key)).and_then(Value::as_str);
        self.requirements.iter().all(|req| match req {
            LabelRequirement::Exists(k) => get(k).is_some(),
            LabelRequirement::NotExists(k) => get(k).is_none(),
            LabelRequirement::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelRequirement::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelRequirement::In(k, set) => get(k).is_some_and(|v| set.contains(v)),
            LabelRequirement::NotIn(k, set) => get(k).is_none_or(|v| !set.contains(v)),
            LabelRequirement::GreaterThan(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v > *n),
            LabelRequirement::LessThan(k, n) => get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .is_some_and(|v| v < *n),
        })
    }
}

fn parse_requirement(tokens: &[Token], pos: &mut usize) -> Result<LabelRequirement, String> {
    let negated = if tokens.get(*pos) == Some(&Token::Not) {
        *pos += 1;
        true
    } else {
        false
    };
    let key = match tokens.get(*pos) {
        Some(Token::Ident(key)) => key.clone(),
        other => {
            return Err(format!(
                "unable to parse requirement: found {other:?}, expected a label key"
            ));
        }
    };
    *pos += 1;
    validate_key(&key)?;
    if negated {
        return Ok(LabelRequirement::NotExists(key));
    }
    let op = match tokens.get(*pos) {
        None | Some(Token::Comma) => return Ok(LabelRequirement::Exists(key)),
        Some(op) => op.clone(),
    };
    *pos += 1;
    match op {
        Token::Eq | Token::DoubleEq | Token::NotEq => {
            let value = match tokens.get(*pos) {
                Some(Token::Ident(v)) => {
                    *pos += 1;
                    v.clone()
                }
                None | Some(Token::Comma) => String::new(),
                Some(other) => {
                    return Err(format!(
                        "unable to parse requirement: found {other:?}, expected a label value"
                    ));
                }
            };
            validate_value(&value)?;
            Ok(if op == Token::NotEq {
                LabelRequirement::NotEquals(key, value)
            } else {
                LabelRequirement::Equals(key, value)
            })
        }
        Token::Gt | Token::Lt => {
            let value = match tokens.get(*pos) {
                Some(Token::Ident(v)) => v.parse::<i64>().map_err(|_| {
                    format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer, got {v:?}")
                })?,
                other => {
                    return Err(format!(
                        "unable to parse requirement: found {other:?}, expected an integer"
                    ));
                }
            };
            *pos += 1;
            Ok(if op == Token::Gt {
                LabelRequirement::GreaterThan(key, value)
            } else {
                LabelRequirement::LessThan(key, value)
            })
        }
        Token::Ident(word) if word == "in" || word == "notin" => {
            if tokens.get(*pos) != Some(&Token::Open) {
                return Err("unable to parse requirement: expected '(' after set operator".into());
            }
            *pos += 1;
            let mut values = BTreeSet::new();
            let mut expect_value = true;
            loop {
                match tokens.get(*pos) {
                    Some(Token::Close) => {
                        if expect_value && !values.is_empty() {
                            values.insert(String::new());
                        }
                        *pos += 1;
                        break;
                    }
                    Some(Token::Comma) => {
                        if expect_value {
                            values.insert(String::new());
                        }
                        expect_value = true;
                        *pos += 1;
                    }
                    Some(Token::Ident(v)) if expect_value => {
                        validate_value(v)?;
                        values.insert(v.clone());
                        expect_value = false;
                        *pos += 1;
                    }
                    other => {
                        return Err(format!(
                            "unable to parse requirement: found {other:?} in a set of values"
                        ));
                    }
                }
            }
            if values.is_empty() {
                return Err(format!(
                    "unable to parse requirement: for '{word}' operator, the set of values must be non-empty"
                ));
            }
            Ok(if word == "in" {
                LabelRequirement::In(key, values)
            } else {
                LabelRequirement::NotIn(key, values)
            })
        }
        other => Err(format!(
            "unable to parse requirement: found {other:?}, expected an operator"
        )),
    }
}

/// A parsed field selector on `metadata.name` / `metadata.namespace`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

#[derive(Debug, Clone, PartialEq)]
struct FieldRequirement {
    field: Field,
    equals: bool,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Name,
    Namespace,
}

/// Splits on an unescaped `sep`, keeping escapes in the parts.
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    parts.push(&s[start..]);
    parts
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(e @ ('\\' | ',' | '=' | '!')) => out.push(e),
                Some(e) => return Err(format!("invalid escape sequence \\{e} in {s:?}")),
                None => return Err(format!("unterminated escape sequence in {s:?}")),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

/// The byte index of the first unescaped occurrence of `needle`.
fn find_unescaped(s: &str, needle: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if s[i..].starts_with(needle) {
            return Some(i);
        }
    }
    None
}

impl FieldSelector {
    /// Parses a selector; the error is the message a real server puts in its 400.
    pub(crate) fn parse(input: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(Self { requirements });
        }
        for term in split_unescaped(input, ',') {
            let (field, equals, value) = if let Some(i) = find_unescaped(term, "!=") {
                (&term[..i], false, &term[i + 2..])
            } else if let Some(i) = find_unescaped(term, "==") {
                (&term[..i], true, &term[i + 2..])
            } else if let Some(i) = find_unescaped(term, "=") {
                (&term[..i], true, &term[i + 1..])
            } else {
                return Err(format!(
                    "invalid selector: '{input}'; can't understand '{term}'"
                ));
            };
            let field = match unescape(field.trim())?.as_str() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other => return Err(format!("field label not supported: {other}")),
            };
            requirements.push(FieldRequirement {
                field,
                equals,
                value: unescape(value)?,
            });
        }
        Ok(Self { requirements })
    }

    /// Whether an object with this namespace (`""` when cluster-scoped) and name matches.
    pub(crate) fn matches(&self, namespace: &str, name: &str) -> bool {
        self.requirements.iter().all(|req| {
            let actual = match req.field {
                Field::Name => name,
                Field::Namespace => namespace,
            };
            (actual == req.value) == req.equals
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "x", "labels": labels}})
    }

    #[test]
    fn label_selectors() {
        let o = obj(json!({"app": "web", "tier": "front", "n": "5"}));
        let cases = [
            ("", true),
            ("app", true),
            ("!app", false),
            ("missing", false),
            ("!missing", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("missing!=web", true),
            ("app in (web, db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("missing in (db)", false),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("n>4", true),
            ("n<5", false),
            ("app in (web),tier notin (back,side)", true),
        ];
        for (sel, want) in cases {
            let parsed = LabelSelector::parse(sel).unwrap();
            assert_eq!(parsed.matches(&o), want, "{sel}");
        }
    }

    #[test]
    fn invalid_label_selectors() {
        for sel in [
            "=x",
            "app in web",
            "app in ()",
            "a b",
            "app=(x",
            "-bad=x",
            "x>y",
            "a,,b",
        ] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel}");
        }
        // An empty value is valid.
        assert!(LabelSelector::parse("app==").is_ok());
        assert!(LabelSelector::parse("app=").is_ok());
    }

    #[test]
    fn field_selectors() {
        let sel = FieldSelector::parse("metadata.name=a,metadata.namespace!=kube-system").unwrap();
        assert!(sel.matches("default", "a"));
        assert!(!sel.matches("kube-system", "a"));
        assert!(!sel.matches("default", "b"));
        assert!(FieldSelector::parse("spec.x=1").is_err());
        assert!(FieldSelector::parse("metadata.name").is_err());
        let escaped = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert!(escaped.matches("", "a,b"));
    }
}
