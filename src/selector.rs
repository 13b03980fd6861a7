//! Label selectors: Kubernetes' label queries, parsed, converted and matched.
//!
//! The string syntax is the one apimachinery's `labels.Parse` accepts (what `kubectl get
//! -l` and a list's `labelSelector` parameter take); see [`Selector`] for the grammar and
//! for the few places where this parser refuses what apimachinery accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::error::{ErrorKind, Operation, StoreError};

/// The longest label name (the part of a key after its prefix) and the longest label
/// value, in bytes.
const MAX_NAME_LEN: usize = 63;
/// The longest prefix of a label key (a DNS subdomain), in bytes.
const MAX_PREFIX_LEN: usize = 253;

/// A label selector: a list of [`Requirement`]s that must all hold (an empty selector
/// selects everything).
///
/// # Syntax
///
/// [`parse`](Self::parse) takes the string syntax exactly as apimachinery's
/// `labels.Parse` does: comma-separated requirements, each one of
///
/// | requirement           | holds when the label `key` is ...                   |
/// |-----------------------|-----------------------------------------------------|
/// | `key`                 | present (any value)                                 |
/// | `!key`                | absent                                              |
/// | `key=value`           | present and equal to `value`                        |
/// | `key==value`          | the same as `key=value`                             |
/// | `key!=value`          | absent, or present with another value               |
/// | `key in (a,b)`        | present with one of the values                      |
/// | `key notin (a,b)`     | absent, or present with none of the values          |
///
/// - Spaces, tabs, `\r` and `\n` may surround every token (`!=` and `==` are one token
///   each). The empty string (or only whitespace) is the empty selector.
/// - A value may be empty, as Kubernetes label values may: `key=` requires the label
///   to be present and empty. Inside parentheses every comma-separated value may be
///   empty, so `key in ()` is `key in ("")` and `key in (a,)` is `key in (a, "")`,
///   as in apimachinery (whose own documentation gives `z notin ()` as valid).
/// - `in` and `notin` are keywords only where an operator is expected: `in in (notin)`
///   is the key `in` with the value `notin`.
/// - A key is an optional prefix and `/` and a name. The prefix is a DNS subdomain (at
///   most 253 bytes of lowercase letters, digits, `-` and `.`, each dot-separated part
///   starting and ending with a letter or digit); the name is 1 to 63 bytes of letters,
///   digits, `-`, `_` and `.`, starting and ending with a letter or digit. A value
///   follows the name's rules but may also be empty. Kubernetes refuses any other label,
///   so no object carries one.
///
/// Where this parser is stricter than apimachinery's:
/// - `key>n` and `key<n` (`Gt`, `Lt`, meant for node selectors, not label selectors) are
///   refused; [`Requirement`] is `non_exhaustive`, so they can be added later.
/// - A NUL byte is refused like any character outside a label's alphabet (Go's lexer
///   reads a NUL as the end of the input and ignores what follows it).
///
/// # Order, equality and display
///
/// The requirements are kept **sorted by key** (stably: requirements on the same key keep
/// the order they were given in), as apimachinery sorts them. Two selectors that differ
/// only in the order of their requirements are therefore equal. Duplicates are kept
/// (`a,a` has two requirements), as apimachinery keeps them.
///
/// [`Display`](fmt::Display) prints the canonical string: requirements in that order,
/// joined by `,` without spaces, `=` for equality, the values of `in` and `notin` sorted.
/// Parsing it gives back an equal selector, for every selector built by
/// [`parse`](Self::parse), [`from_requirements`](Self::from_requirements) or the
/// `TryFrom` conversions, which all validate. `From<&BTreeMap<String, String>>` (a
/// Service's `spec.selector`) does not validate, as apimachinery's `SelectorFromSet`
/// does not: matching is exact for any strings, but a selector made from labels that
/// Kubernetes would refuse may print as a string that does not parse.
///
/// # Examples
///
/// ```
/// use std::collections::BTreeMap;
/// use k8s_store::{Requirement, Selector};
///
/// let selector: Selector = "tier in (frontend, edge), app = web, !canary".parse()?;
/// assert_eq!(selector.to_string(), "app=web,!canary,tier in (edge,frontend)");
/// assert_eq!(
///     selector.requirements()[0],
///     Requirement::Equals { key: "app".into(), value: "web".into() },
/// );
///
/// let labels = BTreeMap::from([
///     ("app".to_owned(), "web".to_owned()),
///     ("tier".to_owned(), "edge".to_owned()),
/// ]);
/// assert!(selector.matches(&labels));
/// assert!(Selector::default().matches(&labels)); // the empty selector
///
/// let err = Selector::parse("tier in a,b").unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     r#"select []: invalid label selector "tier in a,b" at byte 8: expected `(` after `in`, found "a""#,
/// );
/// # Ok::<(), k8s_store::StoreError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Selector {
    /// Sorted by key, stably.
    requirements: Vec<Requirement>,
}

/// One condition of a [`Selector`] on one label.
///
/// The variants' fields are public so that a requirement can be matched on and built;
/// a requirement built by hand is validated when it enters a selector through
/// [`Selector::from_requirements`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Requirement {
    /// `key=value` (or `key==value`): the label is present and equals `value`.
    Equals {
        /// The label key.
        key: String,
        /// The value it must have (possibly empty).
        value: String,
    },
    /// `key!=value`: the label is absent, or present with another value.
    NotEquals {
        /// The label key.
        key: String,
        /// The value it must not have (possibly empty).
        value: String,
    },
    /// `key in (a,b)`: the label is present with one of `values`.
    In {
        /// The label key.
        key: String,
        /// The values it may have; never empty in a [`Selector`] (`in ()` is the set
        /// holding the empty value).
        values: BTreeSet<String>,
    },
    /// `key notin (a,b)`: the label is absent, or present with none of `values`.
    NotIn {
        /// The label key.
        key: String,
        /// The values it must not have; never empty in a [`Selector`].
        values: BTreeSet<String>,
    },
    /// `key`: the label is present, with any value.
    Exists {
        /// The label key.
        key: String,
    },
    /// `!key`: the label is absent.
    DoesNotExist {
        /// The label key.
        key: String,
    },
}

impl Selector {
    /// Parses Kubernetes' string syntax (see [`Selector`] for the grammar).
    ///
    /// # Errors
    ///
    /// A [`StoreError`] of [`Operation::Select`] and [`ErrorKind::InvalidSelector`]
    /// whose `position` is the byte offset (from 0) of the first token that does not
    /// fit, or of the first offending character of an invalid key or value (the
    /// input's length if it ended too early), and whose message says what was
    /// expected there, for example
    /// ``invalid label selector "tier in a,b" at byte 8: expected `(` after `in`, found "a"``.
    /// No input panics.
    pub fn parse(selector: &str) -> Result<Self, StoreError> {
        let mut parser = Parser::new(selector);
        let requirements = parser.selector()?;
        Ok(Self::sorted(requirements))
    }

    /// A selector of `requirements` (all must hold), sorted by key.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidSelector`] (`selector` is `requirements[i]`, counted in the
    /// order given) for the first requirement with an invalid label key or value, or an
    /// `In` or `NotIn` with no values.
    pub fn from_requirements<I>(requirements: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = Requirement>,
    {
        let requirements = requirements
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r.validate() {
                Ok(()) => Ok(r),
                Err(reason) => Err(structured_error(format!("requirements[{i}]"), reason)),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::sorted(requirements))
    }

    /// The requirements, sorted by key (stably).
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether the selector has no requirements, and so selects everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether an object with these labels is selected: every requirement holds (see
    /// [`Requirement::matches`]). The empty selector matches every object, including
    /// one without labels.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    fn sorted(mut requirements: Vec<Requirement>) -> Self {
        // `sort_by` is stable: requirements on one key keep their given order.
        requirements.sort_by(|a, b| a.key().cmp(b.key()));
        Self { requirements }
    }
}

impl Requirement {
    /// The label key this requirement is about.
    pub fn key(&self) -> &str {
        match self {
            Requirement::Equals { key, .. }
            | Requirement::NotEquals { key, .. }
            | Requirement::In { key, .. }
            | Requirement::NotIn { key, .. }
            | Requirement::Exists { key }
            | Requirement::DoesNotExist { key } => key,
        }
    }

    /// Whether the requirement holds for these labels, with Kubernetes' semantics:
    /// `NotEquals`, `NotIn` and `DoesNotExist` hold when the key is absent; `Equals`,
    /// `In` and `Exists` do not. An empty value is a value: `key=` holds only when the
    /// label is present and empty.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.holds(labels.get(self.key()).map(String::as_str))
    }

    /// Whether the requirement holds for an object whose label [`key`](Self::key) has
    /// `value` (`None`: the object has no such label).
    pub(crate) fn holds(&self, value: Option<&str>) -> bool {
        match self {
            Requirement::Equals { value: wanted, .. } => value == Some(wanted.as_str()),
            Requirement::NotEquals {
                value: unwanted, ..
            } => value != Some(unwanted.as_str()),
            Requirement::In { values, .. } => value.is_some_and(|v| values.contains(v)),
            Requirement::NotIn { values, .. } => !value.is_some_and(|v| values.contains(v)),
            Requirement::Exists { .. } => value.is_some(),
            Requirement::DoesNotExist { .. } => value.is_none(),
        }
    }

    /// Checks the key, the values and (for `In`, `NotIn`) that there is a value, as
    /// apimachinery's `NewRequirement` does. Returns what is wrong.
    fn validate(&self) -> Result<(), String> {
        check_key(self.key()).map_err(|invalid| invalid.reason)?;
        match self {
            Requirement::Equals { value, .. } | Requirement::NotEquals { value, .. } => {
                check_value(value).map_err(|invalid| invalid.reason)
            }
            Requirement::In { key, values } | Requirement::NotIn { key, values } => {
                if values.is_empty() {
                    return Err(format!(
                        "`{}` on label key {key:?} needs at least one value \
                         (`()` in the string syntax is the empty value, not no value)",
                        self.operator_name()
                    ));
                }
                values
                    .iter()
                    .try_for_each(|v| check_value(v).map_err(|invalid| invalid.reason))
            }
            Requirement::Exists { .. } | Requirement::DoesNotExist { .. } => Ok(()),
        }
    }

    fn operator_name(&self) -> &'static str {
        match self {
            Requirement::Equals { .. } => "=",
            Requirement::NotEquals { .. } => "!=",
            Requirement::In { .. } => "in",
            Requirement::NotIn { .. } => "notin",
            Requirement::Exists { .. } => "exists",
            Requirement::DoesNotExist { .. } => "!",
        }
    }
}

impl FromStr for Selector {
    type Err = StoreError;

    /// [`Selector::parse`].
    fn from_str(s: &str) -> Result<Self, StoreError> {
        Self::parse(s)
    }
}

impl fmt::Display for Selector {
    /// The canonical string: see [`Selector`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            requirement.fmt(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    /// The requirement in the string syntax: `key=value`, `key!=value`,
    /// `key in (a,b)`, `key notin (a,b)`, `key` or `!key`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |f: &mut fmt::Formatter<'_>, key: &str, op: &str, values: &BTreeSet<String>| {
            write!(f, "{key} {op} (")?;
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str(value)?;
            }
            f.write_str(")")
        };
        match self {
            Requirement::Equals { key, value } => write!(f, "{key}={value}"),
            Requirement::NotEquals { key, value } => write!(f, "{key}!={value}"),
            Requirement::In { key, values } => set(f, key, "in", values),
            Requirement::NotIn { key, values } => set(f, key, "notin", values),
            Requirement::Exists { key } => f.write_str(key),
            Requirement::DoesNotExist { key } => write!(f, "!{key}"),
        }
    }
}

impl TryFrom<&LabelSelector> for Selector {
    type Error = StoreError;

    /// Converts as apimachinery's `LabelSelectorAsSelector` does: each `matchLabels`
    /// entry becomes an [`Equals`](Requirement::Equals), each `matchExpressions` entry
    /// an `In`, `NotIn`, `Exists` or `DoesNotExist` (operators are case-sensitive). An
    /// empty `LabelSelector` selects everything. (A missing one, where a field holding a
    /// `LabelSelector` is `None`, selects *nothing* in `LabelSelectorAsSelector`, and
    /// everything in some APIs: decide that case before converting.)
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidSelector`] whose `selector` names the field at fault
    /// (`matchLabels["app"]`, `matchExpressions[1]`): an unknown operator, `In` or
    /// `NotIn` without values, `Exists` or `DoesNotExist` with values, or an invalid
    /// label key or value.
    fn try_from(selector: &LabelSelector) -> Result<Self, StoreError> {
        let mut requirements = Vec::new();
        for (key, value) in selector.match_labels.iter().flatten() {
            let requirement = Requirement::Equals {
                key: key.clone(),
                value: value.clone(),
            };
            requirement
                .validate()
                .map_err(|reason| structured_error(format!("matchLabels[{key:?}]"), reason))?;
            requirements.push(requirement);
        }
        for (i, expression) in selector.match_expressions.iter().flatten().enumerate() {
            let at = || format!("matchExpressions[{i}]");
            let key = expression.key.clone();
            let values = expression.values.as_deref().unwrap_or_default();
            let set = || values.iter().cloned().collect::<BTreeSet<_>>();
            let operator = expression.operator.as_str();
            let requirement = match operator {
                "In" | "NotIn" if values.is_empty() => {
                    return Err(structured_error(
                        at(),
                        format!(
                            "operator {operator:?} on label key {key:?} needs at least one value"
                        ),
                    ));
                }
                "Exists" | "DoesNotExist" if !values.is_empty() => {
                    return Err(structured_error(
                        at(),
                        format!(
                            "operator {operator:?} on label key {key:?} takes no values, got {}",
                            values.len()
                        ),
                    ));
                }
                "In" => Requirement::In { key, values: set() },
                "NotIn" => Requirement::NotIn { key, values: set() },
                "Exists" => Requirement::Exists { key },
                "DoesNotExist" => Requirement::DoesNotExist { key },
                _ => {
                    return Err(structured_error(
                        at(),
                        format!(
                            "unknown operator {operator:?}: expected In, NotIn, Exists or DoesNotExist"
                        ),
                    ));
                }
            };
            requirement
                .validate()
                .map_err(|reason| structured_error(at(), reason))?;
            requirements.push(requirement);
        }
        Ok(Self::sorted(requirements))
    }
}

impl TryFrom<&kube::core::Selector> for Selector {
    type Error = StoreError;

    /// Converts kube's selector expression by expression (not through its string form,
    /// which prints an empty `In` set as `in ()`, the empty value).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidSelector`] (`selector` is `expressions[i]`) for an invalid
    /// label key or value, or an `In` or `NotIn` with an empty set (kube matches no
    /// value for it; no string has that meaning).
    fn try_from(selector: &kube::core::Selector) -> Result<Self, StoreError> {
        use kube::core::Expression;
        // kube keeps its expressions private but hands them out by value through
        // `IntoIterator`, hence the clone.
        let mut requirements = Vec::new();
        for (i, expression) in selector.clone().into_iter().enumerate() {
            let requirement = match expression {
                Expression::In(key, values) => Requirement::In { key, values },
                Expression::NotIn(key, values) => Requirement::NotIn { key, values },
                Expression::Equal(key, value) => Requirement::Equals { key, value },
                Expression::NotEqual(key, value) => Requirement::NotEquals { key, value },
                Expression::Exists(key) => Requirement::Exists { key },
                Expression::DoesNotExist(key) => Requirement::DoesNotExist { key },
            };
            requirement
                .validate()
                .map_err(|reason| structured_error(format!("expressions[{i}]"), reason))?;
            requirements.push(requirement);
        }
        Ok(Self::sorted(requirements))
    }
}

impl From<&BTreeMap<String, String>> for Selector {
    /// Equality on each pair, as a Service's (or a ReplicationController's)
    /// `spec.selector` means; an empty map selects everything. Not validated, as
    /// apimachinery's `SelectorFromSet` is not (see [`Selector`]).
    fn from(labels: &BTreeMap<String, String>) -> Self {
        // A map iterates in key order, so the requirements are already sorted.
        Self {
            requirements: labels
                .iter()
                .map(|(key, value)| Requirement::Equals {
                    key: key.clone(),
                    value: value.clone(),
                })
                .collect(),
        }
    }
}

fn structured_error(selector: String, reason: String) -> StoreError {
    StoreError::new::<&str>(
        Operation::Select,
        &[],
        ErrorKind::InvalidSelector {
            selector,
            position: None,
            reason,
        },
    )
}

// ---------------------------------------------------------------------------------
// Validation of label keys and values (apimachinery's `content.IsLabelKey`,
// `content.IsLabelValue`).

/// What is wrong with a key or value, and at which byte of it.
#[derive(Debug)]
struct Invalid {
    offset: usize,
    reason: String,
}

/// What is wrong with a label name or value.
enum NameProblem {
    /// A character outside `[A-Za-z0-9._-]`, at this byte.
    Character(usize, char),
    /// Longer than 63 bytes.
    TooLong(usize),
    /// Starts or ends with `-`, `_` or `.`, at this byte.
    Ends(usize),
}

/// Checks a label name or value (possibly empty; the caller refuses an empty name).
fn check_name_text(text: &str) -> Result<(), NameProblem> {
    if let Some((at, c)) = text
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(NameProblem::Character(at, c));
    }
    if text.len() > MAX_NAME_LEN {
        return Err(NameProblem::TooLong(text.len()));
    }
    // Every character is ASCII now, so bytes are characters.
    let bytes = text.as_bytes();
    if let Some(first) = bytes.first()
        && !first.is_ascii_alphanumeric()
    {
        return Err(NameProblem::Ends(0));
    }
    if let Some(last) = bytes.last()
        && !last.is_ascii_alphanumeric()
    {
        return Err(NameProblem::Ends(bytes.len() - 1));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), Invalid> {
    let (prefix, name, name_at) = match key.split_once('/') {
        None => (None, key, 0),
        Some((prefix, name)) => (Some(prefix), name, prefix.len() + 1),
    };
    if let Some(second) = name.find('/') {
        return Err(Invalid {
            offset: name_at + second,
            reason: format!(
                "label key {key:?} has more than one `/` (a key is an optional prefix, `/` and a name)"
            ),
        });
    }
    if let Some(prefix) = prefix {
        check_prefix(key, prefix)?;
    }
    if name.is_empty() {
        return Err(Invalid {
            offset: name_at,
            reason: format!("label key {key:?} has an empty name"),
        });
    }
    check_name_text(name).map_err(|problem| match problem {
        NameProblem::Character(at, c) => Invalid {
            offset: name_at + at,
            reason: format!(
                "the name of label key {key:?} may hold only letters, digits, `-`, `_` and `.`, not {c:?}"
            ),
        },
        NameProblem::TooLong(len) => Invalid {
            offset: name_at,
            reason: format!(
                "the name of label key {key:?} is {len} bytes long, more than {MAX_NAME_LEN}"
            ),
        },
        NameProblem::Ends(at) => Invalid {
            offset: name_at + at,
            reason: format!(
                "the name of label key {key:?} must start and end with a letter or digit"
            ),
        },
    })
}

/// A label key's prefix: a lowercase DNS-1123 subdomain of at most 253 bytes.
fn check_prefix(key: &str, prefix: &str) -> Result<(), Invalid> {
    if prefix.is_empty() {
        return Err(Invalid {
            offset: 0,
            reason: format!("label key {key:?} has an empty prefix before `/`"),
        });
    }
    if let Some((at, c)) = prefix
        .char_indices()
        .find(|&(_, c)| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.')))
    {
        return Err(Invalid {
            offset: at,
            reason: format!(
                "the prefix of label key {key:?} (a DNS subdomain) may hold only lowercase \
                 letters, digits, `-` and `.`, not {c:?}"
            ),
        });
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(Invalid {
            offset: 0,
            reason: format!(
                "the prefix of label key {key:?} is {} bytes long, more than {MAX_PREFIX_LEN}",
                prefix.len()
            ),
        });
    }
    // Every character is ASCII now. Each dot-separated part must be non-empty and start
    // and end with a letter or digit.
    let mut start = 0;
    for part in prefix.split('.') {
        let bytes = part.as_bytes();
        let bad = match (bytes.first(), bytes.last()) {
            (None, _) | (_, None) => Some(start),
            (Some(first), _) if !first.is_ascii_alphanumeric() => Some(start),
            (_, Some(last)) if !last.is_ascii_alphanumeric() => Some(start + bytes.len() - 1),
            _ => None,
        };
        if let Some(offset) = bad {
            return Err(Invalid {
                offset,
                reason: format!(
                    "the prefix of label key {key:?} (a DNS subdomain) must be dot-separated \
                     parts that each start and end with a lowercase letter or digit"
                ),
            });
        }
        start += part.len() + 1;
    }
    Ok(())
}

fn check_value(value: &str) -> Result<(), Invalid> {
    check_name_text(value).map_err(|problem| match problem {
        NameProblem::Character(at, c) => Invalid {
            offset: at,
            reason: format!(
                "label value {value:?} may hold only letters, digits, `-`, `_` and `.`, not {c:?}"
            ),
        },
        NameProblem::TooLong(len) => Invalid {
            offset: 0,
            reason: format!("label value {value:?} is {len} bytes long, more than {MAX_NAME_LEN}"),
        },
        NameProblem::Ends(at) => Invalid {
            offset: at,
            reason: format!(
                "label value {value:?} must be empty or start and end with a letter or digit"
            ),
        },
    })
}

// ---------------------------------------------------------------------------------
// The lexer and the parser, after apimachinery's `pkg/labels/selector.go`.

/// A token of the string syntax. Words are keys, values and the keywords `in` and
/// `notin`, told apart by where they stand, as apimachinery does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok<'a> {
    Word(&'a str),
    Bang,
    Equals,
    DoubleEquals,
    NotEquals,
    Comma,
    Open,
    Close,
    Greater,
    Less,
    End,
}

impl Tok<'_> {
    /// The token as a message names it.
    fn describe(self) -> String {
        match self {
            Tok::Word(word) => format!("{word:?}"),
            Tok::Bang => "`!`".into(),
            Tok::Equals => "`=`".into(),
            Tok::DoubleEquals => "`==`".into(),
            Tok::NotEquals => "`!=`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Open => "`(`".into(),
            Tok::Close => "`)`".into(),
            Tok::Greater => "`>`".into(),
            Tok::Less => "`<`".into(),
            Tok::End => "the end of the selector".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    tok: Tok<'a>,
    /// The byte offset of its first byte (the input's length for `End`).
    at: usize,
}

/// apimachinery's `isWhitespace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// apimachinery's `isSpecialSymbol`: the bytes that end a word.
fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn next_token(&mut self) -> Token<'a> {
        let bytes = self.input.as_bytes();
        while bytes.get(self.pos).is_some_and(|&b| is_space(b)) {
            self.pos += 1;
        }
        let at = self.pos;
        let Some(&first) = bytes.get(at) else {
            return Token { tok: Tok::End, at };
        };
        // The longest operator wins, as in apimachinery's `scanSpecialSymbol`: `!=` and
        // `==` are the only two-byte ones.
        let second = bytes.get(at + 1).copied();
        let (tok, len) = match (first, second) {
            (b'!', Some(b'=')) => (Tok::NotEquals, 2),
            (b'=', Some(b'=')) => (Tok::DoubleEquals, 2),
            (b'!', _) => (Tok::Bang, 1),
            (b'=', _) => (Tok::Equals, 1),
            (b',', _) => (Tok::Comma, 1),
            (b'(', _) => (Tok::Open, 1),
            (b')', _) => (Tok::Close, 1),
            (b'>', _) => (Tok::Greater, 1),
            (b'<', _) => (Tok::Less, 1),
            _ => {
                let end = bytes[at..]
                    .iter()
                    .position(|&b| is_space(b) || is_special(b))
                    .map_or(bytes.len(), |n| at + n);
                // Cannot panic: `at` is 0 or follows an ASCII byte, and `end` is the
                // input's length or the offset of an ASCII byte, so both are char
                // boundaries (a UTF-8 continuation byte is never ASCII).
                (Tok::Word(&self.input[at..end]), end - at)
            }
        };
        self.pos = at + len;
        Token { tok, at }
    }
}

struct Parser<'a> {
    input: &'a str,
    lexer: Lexer<'a>,
    peeked: Token<'a>,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        let mut lexer = Lexer { input, pos: 0 };
        let peeked = lexer.next_token();
        Self {
            input,
            lexer,
            peeked,
        }
    }

    fn peek(&self) -> Token<'a> {
        self.peeked
    }

    fn bump(&mut self) -> Token<'a> {
        let token = self.peeked;
        if token.tok != Tok::End {
            self.peeked = self.lexer.next_token();
        }
        token
    }

    fn error(&self, position: usize, reason: String) -> StoreError {
        StoreError::new::<&str>(
            Operation::Select,
            &[],
            ErrorKind::InvalidSelector {
                selector: self.input.to_owned(),
                // Saturates, as documented on `ErrorKind::InvalidSelector`.
                position: Some(u32::try_from(position).unwrap_or(u32::MAX)),
                reason,
            },
        )
    }

    fn unexpected(&self, token: Token<'_>, expected: &str) -> StoreError {
        self.error(
            token.at,
            format!("expected {expected}, found {}", token.tok.describe()),
        )
    }

    /// `selector := "" | requirement ("," requirement)*`
    fn selector(&mut self) -> Result<Vec<Requirement>, StoreError> {
        let mut requirements = Vec::new();
        if self.peek().tok == Tok::End {
            return Ok(requirements);
        }
        let mut expected = "a label key or `!`";
        loop {
            requirements.push(self.requirement(expected)?);
            let token = self.bump();
            match token.tok {
                Tok::End => return Ok(requirements),
                Tok::Comma => expected = "a label key or `!` after `,`",
                _ => return Err(self.unexpected(token, "`,` or the end of the selector")),
            }
        }
    }

    /// `requirement := "!" KEY | KEY | KEY ("=" | "==" | "!=") VALUE?
    ///               | KEY ("in" | "notin") "(" values ")"`
    fn requirement(&mut self, expected: &str) -> Result<Requirement, StoreError> {
        let token = self.bump();
        match token.tok {
            Tok::Bang => {
                let key = self.key("a label key after `!`")?;
                let next = self.peek();
                if !matches!(next.tok, Tok::End | Tok::Comma) {
                    return Err(self.unexpected(
                        next,
                        &format!(
                            "`,` or the end of the selector after `!{key}` \
                             (`!key` takes no operator or value)"
                        ),
                    ));
                }
                Ok(Requirement::DoesNotExist { key })
            }
            Tok::Word(word) => {
                self.check_key(word, token.at)?;
                let key = word.to_owned();
                let operator = self.peek();
                match operator.tok {
                    Tok::End | Tok::Comma => Ok(Requirement::Exists { key }),
                    Tok::Equals | Tok::DoubleEquals => {
                        self.bump();
                        let value = self.exact_value(operator)?;
                        Ok(Requirement::Equals { key, value })
                    }
                    Tok::NotEquals => {
                        self.bump();
                        let value = self.exact_value(operator)?;
                        Ok(Requirement::NotEquals { key, value })
                    }
                    Tok::Word("in") => {
                        self.bump();
                        let values = self.values("in")?;
                        Ok(Requirement::In { key, values })
                    }
                    Tok::Word("notin") => {
                        self.bump();
                        let values = self.values("notin")?;
                        Ok(Requirement::NotIn { key, values })
                    }
                    Tok::Greater | Tok::Less => Err(self.error(
                        operator.at,
                        format!(
                            "{} (Kubernetes' `Gt` and `Lt`, meant for node selectors) is not \
                             supported; expected `=`, `==`, `!=`, `in`, `notin`, `,` or the \
                             end of the selector after label key {key:?}",
                            operator.tok.describe()
                        ),
                    )),
                    _ => Err(self.unexpected(
                        operator,
                        &format!(
                            "`=`, `==`, `!=`, `in`, `notin`, `,` or the end of the selector \
                             after label key {key:?}"
                        ),
                    )),
                }
            }
            _ => Err(self.unexpected(token, expected)),
        }
    }

    fn key(&mut self, expected: &str) -> Result<String, StoreError> {
        let token = self.bump();
        match token.tok {
            Tok::Word(word) => {
                self.check_key(word, token.at)?;
                Ok(word.to_owned())
            }
            _ => Err(self.unexpected(token, expected)),
        }
    }

    /// The value after `=`, `==` or `!=`: a word, or nothing (the empty value) before
    /// `,` or the end.
    fn exact_value(&mut self, operator: Token<'_>) -> Result<String, StoreError> {
        let token = self.peek();
        match token.tok {
            Tok::End | Tok::Comma => Ok(String::new()),
            Tok::Word(word) => {
                self.bump();
                self.check_value(word, token.at)?;
                Ok(word.to_owned())
            }
            _ => Err(self.unexpected(
                token,
                &format!(
                    "a label value (possibly empty) after {}",
                    operator.tok.describe()
                ),
            )),
        }
    }

    /// `values := "(" value? ("," value?)* ")"`: comma-separated values, each possibly
    /// empty, so `()` holds the empty value (apimachinery's `parseValues`).
    fn values(&mut self, operator: &str) -> Result<BTreeSet<String>, StoreError> {
        let open = self.bump();
        if open.tok != Tok::Open {
            return Err(self.unexpected(open, &format!("`(` after `{operator}`")));
        }
        let mut values = BTreeSet::new();
        loop {
            let token = self.bump();
            match token.tok {
                Tok::Word(word) => {
                    self.check_value(word, token.at)?;
                    values.insert(word.to_owned());
                    let next = self.bump();
                    match next.tok {
                        Tok::Comma => {}
                        Tok::Close => return Ok(values),
                        _ => {
                            return Err(
                                self.unexpected(next, &format!("`,` or `)` after value {word:?}"))
                            );
                        }
                    }
                }
                // An empty value before `,` or `)`.
                Tok::Comma => {
                    values.insert(String::new());
                }
                Tok::Close => {
                    values.insert(String::new());
                    return Ok(values);
                }
                _ => {
                    return Err(self
                        .unexpected(token, &format!("a value, `,` or `)` in `{operator} (...)`")));
                }
            }
        }
    }

    fn check_key(&self, key: &str, at: usize) -> Result<(), StoreError> {
        check_key(key).map_err(|invalid| self.error(at + invalid.offset, invalid.reason))
    }

    fn check_value(&self, value: &str, at: usize) -> Result<(), StoreError> {
        check_value(value).map_err(|invalid| self.error(at + invalid.offset, invalid.reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    fn eq(key: &str, value: &str) -> Requirement {
        Requirement::Equals {
            key: key.into(),
            value: value.into(),
        }
    }

    fn ne(key: &str, value: &str) -> Requirement {
        Requirement::NotEquals {
            key: key.into(),
            value: value.into(),
        }
    }

    fn set(values: &[&str]) -> BTreeSet<String> {
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    fn is_in(key: &str, values: &[&str]) -> Requirement {
        Requirement::In {
            key: key.into(),
            values: set(values),
        }
    }

    fn not_in(key: &str, values: &[&str]) -> Requirement {
        Requirement::NotIn {
            key: key.into(),
            values: set(values),
        }
    }

    fn exists(key: &str) -> Requirement {
        Requirement::Exists { key: key.into() }
    }

    fn absent(key: &str) -> Requirement {
        Requirement::DoesNotExist { key: key.into() }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn parsed(selector: &str) -> Vec<Requirement> {
        match Selector::parse(selector) {
            Ok(s) => s.requirements,
            Err(e) => panic!("{selector:?} should parse: {e}"),
        }
    }

    /// The position and reason of a parse error, after checking its operation and kind.
    fn parse_error(selector: &str) -> (usize, String, String) {
        let err = match Selector::parse(selector) {
            Ok(s) => panic!("{selector:?} should not parse, got {s:?}"),
            Err(e) => e,
        };
        assert_eq!(err.operation, Operation::Select);
        let message = err.to_string();
        match err.kind {
            ErrorKind::InvalidSelector {
                selector: given,
                position: Some(position),
                reason,
            } => {
                assert_eq!(given, selector);
                assert!(
                    message.contains(&format!("at byte {position}:")),
                    "{message}"
                );
                (position as usize, reason, message)
            }
            other => panic!("{selector:?}: unexpected kind {other:?}"),
        }
    }

    fn structured_reason(err: StoreError) -> (String, String) {
        assert_eq!(err.operation, Operation::Select);
        match err.kind {
            ErrorKind::InvalidSelector {
                selector,
                position: None,
                reason,
            } => (selector, reason),
            other => panic!("unexpected kind {other:?}"),
        }
    }

    // --- The syntax ---------------------------------------------------------------

    #[test]
    fn parses_each_syntax_form_to_its_requirement() {
        let cases = [
            ("app", exists("app")),
            ("!app", absent("app")),
            ("app=web", eq("app", "web")),
            ("app==web", eq("app", "web")),
            ("app!=web", ne("app", "web")),
            ("app in (a,b)", is_in("app", &["a", "b"])),
            ("app notin (a,b)", not_in("app", &["a", "b"])),
            ("app=", eq("app", "")),
            ("app==", eq("app", "")),
            ("app!=", ne("app", "")),
            ("example.com/app=web", eq("example.com/app", "web")),
            ("a.b-c_d=X.y-Z_9", eq("a.b-c_d", "X.y-Z_9")),
        ];
        for (text, expected) in cases {
            assert_eq!(parsed(text), vec![expected], "{text:?}");
        }
    }

    #[test]
    fn parses_the_empty_string_and_whitespace_as_the_empty_selector() {
        for text in ["", " ", " \t\r\n "] {
            let selector = Selector::parse(text).unwrap();
            assert!(selector.is_empty(), "{text:?}");
            assert_eq!(selector, Selector::default());
            assert_eq!(selector.to_string(), "");
        }
    }

    #[test]
    fn accepts_whitespace_around_every_token() {
        let expected = vec![
            eq("app", "web"),
            absent("canary"),
            ne("env", ""),
            is_in("tier", &["a", "b"]),
        ];
        for text in [
            "app=web,!canary,env!=,tier in (a,b)",
            " app = web , ! canary , env != , tier in ( a , b ) ",
            "\tapp\n==\r\nweb,\n!\tcanary,env!=\t,tier\tin(a,b)",
            "tier in(a,b),app=web,env!=,!canary",
        ] {
            assert_eq!(parsed(text), expected, "{text:?}");
        }
        assert_eq!(parsed("a notin(b)"), vec![not_in("a", &["b"])]);
    }

    #[test]
    fn keeps_requirements_sorted_by_key_and_keeps_duplicates_in_given_order() {
        assert_eq!(
            parsed("b=1,a,b=3,!a"),
            vec![exists("a"), absent("a"), eq("b", "1"), eq("b", "3")]
        );
        assert_eq!(
            Selector::parse("b,a").unwrap(),
            Selector::parse("a,b").unwrap()
        );
        assert_eq!(parsed("a,a"), vec![exists("a"), exists("a")]);
    }

    #[test]
    fn reads_in_and_notin_as_keys_and_values_outside_the_operator_position() {
        assert_eq!(
            parsed("in in (in,notin),notin=in,!in,x!=notin"),
            vec![
                is_in("in", &["in", "notin"]),
                absent("in"),
                eq("notin", "in"),
                ne("x", "notin")
            ]
        );
    }

    #[test]
    fn parses_empty_values_in_parentheses_as_apimachinery_does() {
        assert_eq!(parsed("a in ()"), vec![is_in("a", &[""])]);
        assert_eq!(parsed("a notin ( )"), vec![not_in("a", &[""])]);
        assert_eq!(parsed("a in (,b)"), vec![is_in("a", &["", "b"])]);
        assert_eq!(parsed("a in (b,)"), vec![is_in("a", &["", "b"])]);
        assert_eq!(parsed("a in (b,,c)"), vec![is_in("a", &["", "b", "c"])]);
        assert_eq!(parsed("a in (,)"), vec![is_in("a", &[""])]);
        assert_eq!(parsed("a in (b,b)"), vec![is_in("a", &["b"])]);
    }

    #[test]
    fn accepts_keys_and_values_at_the_length_limits() {
        let name = format!("a{}z", "-".repeat(61));
        let prefix = format!("{}.{}", "a".repeat(126), "b".repeat(126));
        assert_eq!((name.len(), prefix.len()), (63, 253));
        let text = format!("{prefix}/{name}={name}");
        assert_eq!(parsed(&text), vec![eq(&format!("{prefix}/{name}"), &name)]);
    }

    #[test]
    fn display_prints_the_canonical_form() {
        let selector = Selector::parse(" tier notin ( b , a ,), app==web , !canary, env ").unwrap();
        assert_eq!(
            selector.to_string(),
            "app=web,!canary,env,tier notin (,a,b)"
        );
        assert_eq!(Selector::parse("a in ()").unwrap().to_string(), "a in ()");
        assert_eq!(Selector::parse("a!=").unwrap().to_string(), "a!=");
    }

    #[test]
    fn display_round_trips_through_parse() {
        for text in [
            "app",
            "!app",
            "app=web,tier in (a,b,c),!canary,env notin (dev),x!=y",
            "a=,b!=,c in (),d notin (,e)",
            "in in (in),notin notin (notin)",
            "example.com/a.b=c",
        ] {
            let selector = Selector::parse(text).unwrap();
            assert_eq!(
                Selector::parse(&selector.to_string()).unwrap(),
                selector,
                "{text:?}"
            );
        }
    }

    // --- Errors -------------------------------------------------------------------

    #[test]
    fn reports_the_byte_and_what_was_expected_for_malformed_selectors() {
        let cases = [
            ("=web", 0, "expected a label key or `!`, found `=`"),
            (",app", 0, "expected a label key or `!`, found `,`"),
            ("app=web,", 8, "after `,`, found the end of the selector"),
            ("a,,b", 2, "after `,`, found `,`"),
            ("app in", 6, "expected `(` after `in`, found the end"),
            ("app in (", 8, "expected a value, `,` or `)` in `in (...)`"),
            ("app in (a,", 10, "expected a value, `,` or `)`"),
            (
                "app in (=)",
                8,
                "expected a value, `,` or `)` in `in (...)`, found `=`",
            ),
            (
                "tier notin a",
                11,
                "expected `(` after `notin`, found \"a\"",
            ),
            (
                "a in (b c)",
                8,
                "expected `,` or `)` after value \"b\", found \"c\"",
            ),
            (
                "a in (b)c",
                8,
                "expected `,` or the end of the selector, found \"c\"",
            ),
            ("!", 1, "expected a label key after `!`, found the end"),
            ("!=a", 0, "expected a label key or `!`, found `!=`"),
            ("!!a", 1, "expected a label key after `!`, found `!`"),
            (
                "!app=web",
                4,
                "after `!app` (`!key` takes no operator or value)",
            ),
            ("!app in (a)", 5, "`!key` takes no operator or value"),
            (
                "a b",
                2,
                "expected `=`, `==`, `!=`, `in`, `notin`, `,` or the end",
            ),
            ("a (b)", 2, "after label key \"a\", found `(`"),
            (
                "app===web",
                5,
                "expected a label value (possibly empty) after `==`",
            ),
            ("app=!web", 4, "after `=`, found `!`"),
            ("app=(web)", 4, "after `=`, found `(`"),
            (
                "a=b=c",
                3,
                "expected `,` or the end of the selector, found `=`",
            ),
            (
                "a=b c",
                4,
                "expected `,` or the end of the selector, found \"c\"",
            ),
            ("a>1", 1, "`>` (Kubernetes' `Gt` and `Lt`"),
            ("a < 1", 2, "`<` (Kubernetes' `Gt` and `Lt`"),
        ];
        for (text, position, reason) in cases {
            let (at, got, message) = parse_error(text);
            assert_eq!(at, position, "{text:?}: {message}");
            assert!(got.contains(reason), "{text:?}: {message}");
        }
    }

    #[test]
    fn refuses_invalid_label_keys_at_the_offending_byte() {
        let long_name = "a".repeat(64);
        let long_prefix = format!("{}/a", "a".repeat(254));
        let cases = [
            ("app$=web", 3, "not '$'"),
            ("-app", 0, "must start and end with a letter or digit"),
            ("app_", 3, "must start and end with a letter or digit"),
            (&long_name, 0, "is 64 bytes long, more than 63"),
            (&long_prefix, 0, "is 254 bytes long, more than 253"),
            (
                "Example.com/app",
                0,
                "lowercase letters, digits, `-` and `.`, not 'E'",
            ),
            ("a_b/app", 1, "not '_'"),
            ("a..b/app", 2, "dot-separated parts"),
            ("a-.b/app", 1, "dot-separated parts"),
            ("a./app", 2, "dot-separated parts"),
            ("/app", 0, "has an empty prefix"),
            ("a/b/c", 3, "more than one `/`"),
            ("example.com/", 12, "has an empty name"),
            ("example.com/-a", 12, "must start and end"),
            ("café=x", 3, "not 'é'"),
            ("ключ=значение", 0, "not 'к'"),
            ("app\0=web", 3, "not '\\0'"),
            ("a\0b", 1, "not '\\0'"),
            ("\u{b}app", 0, "not '\\u{b}'"),
            ("a\u{a0}b", 1, "not '\\u{a0}'"),
            ("x,!app😀", 6, "not '😀'"),
        ];
        for (text, position, reason) in cases {
            let (at, got, message) = parse_error(text);
            assert_eq!(at, position, "{text:?}: {message}");
            assert!(got.contains(reason), "{text:?}: {message}");
        }
    }

    #[test]
    fn refuses_invalid_label_values_at_the_offending_byte() {
        let long = format!("a={}", "b".repeat(64));
        let cases = [
            ("a=b$", 3, "not '$'"),
            (
                "a=-b",
                2,
                "must be empty or start and end with a letter or digit",
            ),
            ("a!=b.", 4, "must be empty or start and end"),
            ("a in (x,-y)", 8, "must be empty or start and end"),
            ("a notin (x/y)", 10, "not '/'"),
            (&long, 2, "is 64 bytes long, more than 63"),
            ("a=é", 2, "not 'é'"),
            ("a=b\0", 3, "not '\\0'"),
        ];
        for (text, position, reason) in cases {
            let (at, got, message) = parse_error(text);
            assert_eq!(at, position, "{text:?}: {message}");
            assert!(got.contains(reason), "{text:?}: {message}");
        }
    }

    #[test]
    fn error_message_names_the_selector_the_byte_and_what_was_expected() {
        let (_, _, message) = parse_error("tier in a,b");
        assert_eq!(
            message,
            r#"select []: invalid label selector "tier in a,b" at byte 8: expected `(` after `in`, found "a""#
        );
        // Control characters are escaped, so the message stays on one line.
        let (_, _, message) = parse_error("a\nb\0");
        assert!(message.contains(r#""a\nb\0""#), "{message}");
    }

    // --- Matching -------------------------------------------------------------------

    fn matches(selector: &str, pairs: &[(&str, &str)]) -> bool {
        Selector::parse(selector).unwrap().matches(&labels(pairs))
    }

    #[test]
    fn equals_matches_only_its_value_and_not_an_absent_key() {
        assert!(matches("app=web", &[("app", "web")]));
        assert!(matches("app==web", &[("app", "web"), ("x", "y")]));
        assert!(!matches("app=web", &[("app", "db")]));
        assert!(!matches("app=web", &[]));
        assert!(!matches("app=web", &[("App", "web")]));
    }

    #[test]
    fn not_equals_matches_other_values_and_an_absent_key() {
        assert!(!matches("app!=web", &[("app", "web")]));
        assert!(matches("app!=web", &[("app", "db")]));
        assert!(matches("app!=web", &[]));
    }

    #[test]
    fn in_matches_listed_values_and_not_an_absent_key() {
        assert!(matches("t in (a,b)", &[("t", "a")]));
        assert!(matches("t in (a,b)", &[("t", "b")]));
        assert!(!matches("t in (a,b)", &[("t", "c")]));
        assert!(!matches("t in (a,b)", &[]));
    }

    #[test]
    fn notin_matches_unlisted_values_and_an_absent_key() {
        assert!(!matches("t notin (a,b)", &[("t", "a")]));
        assert!(matches("t notin (a,b)", &[("t", "c")]));
        assert!(matches("t notin (a,b)", &[]));
        assert!(matches("t notin (a,b)", &[("u", "a")]));
    }

    #[test]
    fn exists_and_does_not_exist_look_only_at_the_key() {
        assert!(matches("app", &[("app", "")]));
        assert!(matches("app", &[("app", "web")]));
        assert!(!matches("app", &[("other", "app")]));
        assert!(matches("!app", &[("other", "app")]));
        assert!(!matches("!app", &[("app", "")]));
    }

    #[test]
    fn an_empty_value_is_a_value_not_an_absence() {
        assert!(matches("a=", &[("a", "")]));
        assert!(!matches("a=", &[]));
        assert!(matches("a!=", &[("a", "x")]));
        assert!(!matches("a!=", &[("a", "")]));
        assert!(matches("a!=", &[]));
        assert!(matches("a in ()", &[("a", "")]));
        assert!(!matches("a in ()", &[("a", "x")]));
        assert!(!matches("a in ()", &[]));
    }

    #[test]
    fn the_empty_selector_matches_everything() {
        assert!(matches("", &[]));
        assert!(matches("", &[("a", "b")]));
    }

    #[test]
    fn every_requirement_must_hold() {
        let s = "app=web,tier in (a,b),!canary";
        assert!(matches(s, &[("app", "web"), ("tier", "a")]));
        assert!(!matches(
            s,
            &[("app", "web"), ("tier", "a"), ("canary", "1")]
        ));
        assert!(!matches(s, &[("app", "web"), ("tier", "c")]));
        assert!(!matches(s, &[("tier", "a")]));
        // Two requirements on one key, both must hold.
        assert!(!matches("a=1,a=2", &[("a", "1")]));
    }

    // --- Conversions ----------------------------------------------------------------

    fn expression(key: &str, operator: &str, values: Option<&[&str]>) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.map(|vs| vs.iter().map(|v| (*v).to_owned()).collect()),
        }
    }

    #[test]
    fn label_selector_labels_become_equals_and_expressions_their_operators() {
        let ls = LabelSelector {
            match_labels: Some(
                [
                    ("z".to_owned(), "1".to_owned()),
                    ("app".to_owned(), "web".to_owned()),
                ]
                .into(),
            ),
            match_expressions: Some(vec![
                expression("tier", "In", Some(&["b", "a", "b"])),
                expression("env", "NotIn", Some(&["dev"])),
                expression("app", "Exists", None),
                expression("canary", "DoesNotExist", Some(&[])),
            ]),
        };
        let selector = Selector::try_from(&ls).unwrap();
        assert_eq!(
            selector.requirements(),
            [
                eq("app", "web"),
                exists("app"),
                absent("canary"),
                not_in("env", &["dev"]),
                is_in("tier", &["a", "b"]),
                eq("z", "1"),
            ]
        );
        assert_eq!(
            selector.to_string(),
            "app=web,app,!canary,env notin (dev),tier in (a,b),z=1"
        );
    }

    #[test]
    fn empty_label_selector_selects_everything() {
        let selector = Selector::try_from(&LabelSelector::default()).unwrap();
        assert!(selector.is_empty());
        let empty = LabelSelector {
            match_labels: Some(BTreeMap::new()),
            match_expressions: Some(Vec::new()),
        };
        assert!(Selector::try_from(&empty).unwrap().is_empty());
    }

    #[test]
    fn label_selector_refuses_unknown_operators_naming_them() {
        for operator in ["Gt", "in", "Equals", ""] {
            let ls = LabelSelector {
                match_expressions: Some(vec![
                    expression("a", "Exists", None),
                    expression("b", operator, Some(&["1"])),
                ]),
                ..Default::default()
            };
            let err = Selector::try_from(&ls).unwrap_err();
            let message = err.to_string();
            let (at, reason) = structured_reason(err);
            assert_eq!(at, "matchExpressions[1]");
            assert!(
                reason.contains(&format!("unknown operator {operator:?}")),
                "{message}"
            );
            assert!(message.contains("matchExpressions[1]"), "{message}");
        }
    }

    #[test]
    fn label_selector_refuses_in_without_values_and_exists_with_values() {
        let cases = [
            (expression("a", "In", None), "needs at least one value"),
            (
                expression("a", "NotIn", Some(&[])),
                "needs at least one value",
            ),
            (
                expression("a", "Exists", Some(&["x"])),
                "takes no values, got 1",
            ),
            (
                expression("a", "DoesNotExist", Some(&["x", "y"])),
                "takes no values, got 2",
            ),
        ];
        for (expr, expected) in cases {
            let ls = LabelSelector {
                match_expressions: Some(vec![expr]),
                ..Default::default()
            };
            let (at, reason) = structured_reason(Selector::try_from(&ls).unwrap_err());
            assert_eq!(at, "matchExpressions[0]");
            assert!(reason.contains(expected), "{reason}");
        }
    }

    #[test]
    fn label_selector_refuses_invalid_keys_and_values() {
        let ls = LabelSelector {
            match_labels: Some([("bad key".to_owned(), "v".to_owned())].into()),
            ..Default::default()
        };
        let (at, reason) = structured_reason(Selector::try_from(&ls).unwrap_err());
        assert_eq!(at, r#"matchLabels["bad key"]"#);
        assert!(reason.contains("not ' '"), "{reason}");

        let ls = LabelSelector {
            match_expressions: Some(vec![expression("a", "In", Some(&["ok", "not ok"]))]),
            ..Default::default()
        };
        let (at, reason) = structured_reason(Selector::try_from(&ls).unwrap_err());
        assert_eq!(at, "matchExpressions[0]");
        assert!(reason.contains(r#"label value "not ok""#), "{reason}");
    }

    #[test]
    fn kube_selector_converts_expression_by_expression() {
        use kube::core::Expression;
        let kube_selector: kube::core::Selector = [
            Expression::Equal("b".into(), "1".into()),
            Expression::NotEqual("a".into(), "".into()),
            Expression::In("c".into(), set(&["x", "y"])),
            Expression::NotIn("d".into(), set(&["z"])),
            Expression::Exists("e".into()),
            Expression::DoesNotExist("f".into()),
        ]
        .into_iter()
        .collect();
        let selector = Selector::try_from(&kube_selector).unwrap();
        assert_eq!(
            selector.requirements(),
            [
                ne("a", ""),
                eq("b", "1"),
                is_in("c", &["x", "y"]),
                not_in("d", &["z"]),
                exists("e"),
                absent("f"),
            ]
        );
        // Both print the same canonical string here (kube keeps the order given, which
        // was not sorted, so compare as parsed).
        assert_eq!(
            Selector::parse(&kube_selector.to_string()).unwrap(),
            selector
        );
    }

    #[test]
    fn kube_selector_with_an_empty_set_or_invalid_key_is_refused() {
        use kube::core::Expression;
        let empty: kube::core::Selector = Expression::In("a".into(), BTreeSet::new()).into();
        let (at, reason) = structured_reason(Selector::try_from(&empty).unwrap_err());
        assert_eq!(at, "expressions[0]");
        assert!(reason.contains("needs at least one value"), "{reason}");

        let bad: kube::core::Selector = [("a", "1"), ("b c", "2")].into_iter().collect();
        let (at, _) = structured_reason(Selector::try_from(&bad).unwrap_err());
        assert_eq!(at, "expressions[1]");
    }

    #[test]
    fn service_selector_map_becomes_equalities() {
        let map = labels(&[("app", "web"), ("tier", "")]);
        let selector = Selector::from(&map);
        assert_eq!(selector.requirements(), [eq("app", "web"), eq("tier", "")]);
        assert_eq!(selector.to_string(), "app=web,tier=");
        assert!(selector.matches(&labels(&[("app", "web"), ("tier", ""), ("x", "y")])));
        assert!(!selector.matches(&labels(&[("app", "web")])));
        assert!(Selector::from(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn from_requirements_sorts_by_key_and_validates() {
        let selector =
            Selector::from_requirements([eq("b", "1"), absent("a"), exists("b")]).unwrap();
        assert_eq!(
            selector.requirements(),
            [absent("a"), eq("b", "1"), exists("b")]
        );
        let (at, reason) = structured_reason(
            Selector::from_requirements([exists("a"), not_in("b", &[])]).unwrap_err(),
        );
        assert_eq!(at, "requirements[1]");
        assert!(
            reason.contains("`notin` on label key \"b\" needs at least one value"),
            "{reason}"
        );
        let (at, _) = structured_reason(Selector::from_requirements([eq("a", "b c")]).unwrap_err());
        assert_eq!(at, "requirements[0]");
    }

    // --- Properties -----------------------------------------------------------------

    fn name() -> impl Strategy<Value = String> + Clone {
        prop_oneof![
            Just("in".to_owned()),
            Just("notin".to_owned()),
            "[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?",
        ]
    }

    fn key() -> impl Strategy<Value = String> + Clone {
        prop_oneof![
            3 => name(),
            1 => (
                "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}",
                name(),
            )
                .prop_map(|(prefix, name)| format!("{prefix}/{name}")),
        ]
    }

    fn value() -> impl Strategy<Value = String> + Clone {
        prop_oneof![Just(String::new()), name()]
    }

    fn requirement(
        key: impl Strategy<Value = String> + Clone,
        value: impl Strategy<Value = String> + Clone,
    ) -> impl Strategy<Value = Requirement> {
        let values = proptest::collection::btree_set(value.clone(), 1..4);
        prop_oneof![
            (key.clone(), value.clone())
                .prop_map(|(key, value)| Requirement::Equals { key, value }),
            (key.clone(), value).prop_map(|(key, value)| Requirement::NotEquals { key, value }),
            (key.clone(), values.clone()).prop_map(|(key, values)| Requirement::In { key, values }),
            (key.clone(), values).prop_map(|(key, values)| Requirement::NotIn { key, values }),
            key.clone().prop_map(|key| Requirement::Exists { key }),
            key.prop_map(|key| Requirement::DoesNotExist { key }),
        ]
    }

    /// The requirements as a string, with `spaces` (cycled) around every token; words
    /// that would otherwise touch get a space of their own.
    fn spaced(requirements: &[Requirement], spaces: &[String]) -> String {
        let mut tokens: Vec<String> = Vec::new();
        for (i, r) in requirements.iter().enumerate() {
            if i > 0 {
                tokens.push(",".into());
            }
            match r {
                Requirement::Equals { key, value } => {
                    tokens.extend([key.clone(), "==".into(), value.clone()]);
                }
                Requirement::NotEquals { key, value } => {
                    tokens.extend([key.clone(), "!=".into(), value.clone()]);
                }
                Requirement::In { key, values } | Requirement::NotIn { key, values } => {
                    let op = if matches!(r, Requirement::In { .. }) {
                        "in"
                    } else {
                        "notin"
                    };
                    tokens.extend([key.clone(), " ".into(), op.into(), "(".into()]);
                    for (j, v) in values.iter().enumerate() {
                        if j > 0 {
                            tokens.push(",".into());
                        }
                        tokens.push(v.clone());
                    }
                    tokens.push(")".into());
                }
                Requirement::Exists { key } => tokens.push(key.clone()),
                Requirement::DoesNotExist { key } => tokens.extend(["!".into(), key.clone()]),
            }
        }
        let mut out = String::new();
        for (i, token) in tokens.iter().enumerate() {
            out.push_str(&spaces[i % spaces.len()]);
            out.push_str(token);
        }
        out.push_str(&spaces[tokens.len() % spaces.len()]);
        out
    }

    /// Kubernetes' semantics, written independently of [`Requirement::matches`]: the
    /// values the key has (none or one), scanned rather than looked up.
    fn reference(requirements: &[Requirement], labels: &BTreeMap<String, String>) -> bool {
        requirements.iter().all(|r| {
            let found: Vec<&String> = labels
                .iter()
                .filter(|(k, _)| k.as_str() == r.key())
                .map(|(_, v)| v)
                .collect();
            match r {
                Requirement::Equals { value, .. } => found.contains(&value),
                Requirement::NotEquals { value, .. } => found.iter().all(|v| *v != value),
                Requirement::In { values, .. } => found.iter().any(|v| values.contains(*v)),
                Requirement::NotIn { values, .. } => found.iter().all(|v| !values.contains(*v)),
                Requirement::Exists { .. } => !found.is_empty(),
                Requirement::DoesNotExist { .. } => found.is_empty(),
            }
        })
    }

    /// kube-core's matcher, a second oracle.
    fn kube_matches(requirements: &[Requirement], labels: &BTreeMap<String, String>) -> bool {
        use kube::core::{Expression, SelectorExt};
        let kube_selector: kube::core::Selector = requirements
            .iter()
            .map(|r| match r.clone() {
                Requirement::Equals { key, value } => Expression::Equal(key, value),
                Requirement::NotEquals { key, value } => Expression::NotEqual(key, value),
                Requirement::In { key, values } => Expression::In(key, values),
                Requirement::NotIn { key, values } => Expression::NotIn(key, values),
                Requirement::Exists { key } => Expression::Exists(key),
                Requirement::DoesNotExist { key } => Expression::DoesNotExist(key),
            })
            .collect();
        kube_selector.matches(labels)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn display_then_parse_gives_back_the_selector(
            requirements in proptest::collection::vec(requirement(key(), value()), 0..6),
        ) {
            let selector = Selector::from_requirements(requirements).unwrap();
            let text = selector.to_string();
            prop_assert_eq!(Selector::parse(&text).unwrap(), selector, "{:?}", text);
        }

        #[test]
        fn whitespace_between_tokens_does_not_change_the_selector(
            requirements in proptest::collection::vec(requirement(key(), value()), 1..5),
            spaces in proptest::collection::vec("[ \t\r\n]{0,3}", 1..8),
        ) {
            let text = spaced(&requirements, &spaces);
            let parsed = Selector::parse(&text);
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", text, parsed);
            prop_assert_eq!(parsed.unwrap(), Selector::from_requirements(requirements).unwrap());
        }

        #[test]
        fn matches_agrees_with_a_reference_evaluation(
            requirements in proptest::collection::vec(
                requirement(
                    prop::sample::select(vec!["a", "b", "x.io/c", "in"]).prop_map(String::from),
                    prop::sample::select(vec!["", "1", "2", "in"]).prop_map(String::from),
                ),
                0..5,
            ),
            labels in proptest::collection::btree_map(
                prop::sample::select(vec!["a", "b", "x.io/c", "in", "d"]).prop_map(String::from),
                prop::sample::select(vec!["", "1", "2", "in"]).prop_map(String::from),
                0..5,
            ),
        ) {
            let selector = Selector::from_requirements(requirements.clone()).unwrap();
            let expected = reference(&requirements, &labels);
            prop_assert_eq!(selector.matches(&labels), expected);
            prop_assert_eq!(kube_matches(&requirements, &labels), expected);
            // And through the string form.
            let reparsed = Selector::parse(&selector.to_string()).unwrap();
            prop_assert_eq!(reparsed.matches(&labels), expected);
        }

        #[test]
        fn parse_never_panics_and_points_inside_the_input(
            text in prop_oneof![
                ".{0,40}",
                "[a-c/.\\-_=!(),<> \t\n\r\u{0}\u{b}é😀]{0,30}",
                "(in|notin|a|b|=|==|!=|!|,|\\(|\\)| |\u{0}){0,16}",
            ],
        ) {
            match Selector::parse(&text) {
                Ok(selector) => {
                    prop_assert_eq!(Selector::parse(&selector.to_string()).unwrap(), selector);
                }
                Err(err) => {
                    prop_assert_eq!(err.operation, Operation::Select);
                    match err.kind {
                        ErrorKind::InvalidSelector { selector, position: Some(position), .. } => {
                            prop_assert_eq!(&selector, &text);
                            prop_assert!(position as usize <= text.len());
                            prop_assert!(text.is_char_boundary(position as usize));
                        }
                        other => prop_assert!(false, "unexpected kind {:?}", other),
                    }
                }
            }
        }
    }
}
