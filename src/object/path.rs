//! Field paths as [`Object::for_each_value_at`](crate::Object::for_each_value_at) walks
//! them: the steps, and the walk over an object's JSON form.

use serde_json::Value;

/// One step of a field path: what an [`Indexer`](crate::Indexer) path such as
/// `spec.tls[*].hosts[0]` or `metadata.labels['app.kubernetes.io/name']` is parsed into,
/// and what [`Object::for_each_value_at`](crate::Object::for_each_value_at) walks.
///
/// A step that does not apply reaches nothing: a field of something that is not a
/// mapping, an element of something that is not a list, an index past the end.
///
/// # Examples
/// ```
/// use k8s_store::PathStep;
///
/// // `spec.tls[*].hosts[0]`
/// let path = [
///     PathStep::Field("spec".into()),
///     PathStep::Field("tls".into()),
///     PathStep::Each,
///     PathStep::Field("hosts".into()),
///     PathStep::Index(0),
/// ];
/// assert_eq!(path.len(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PathStep {
    /// A field of a mapping, by its JSON name (`.name`, or `['a.b/c']` for a key with
    /// dots): a struct's serialised field name (`nodeName`, not `node_name`) or a map's
    /// key.
    Field(String),
    /// One element of a list (`[0]`).
    Index(usize),
    /// Every element of a list (`[*]`), in order.
    Each,
}

/// Calls `f` with every value `steps` reach from `v`, `[*]` expanded, in document
/// order. Recursion is as deep as the path has steps.
pub(crate) fn each_value<'v>(v: &'v Value, steps: &[PathStep], f: &mut dyn FnMut(&'v Value)) {
    let Some((step, rest)) = steps.split_first() else {
        return f(v);
    };
    match step {
        PathStep::Field(name) => {
            if let Some(v) = v.get(name.as_str()) {
                each_value(v, rest, f);
            }
        }
        PathStep::Index(i) => {
            if let Some(v) = v.get(*i) {
                each_value(v, rest, f);
            }
        }
        PathStep::Each => {
            if let Value::Array(items) = v {
                for v in items {
                    each_value(v, rest, f);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(v: &Value, steps: &[PathStep]) -> Vec<Value> {
        let mut out = Vec::new();
        each_value(v, steps, &mut |v| out.push(v.clone()));
        out
    }

    #[test]
    fn steps_that_do_not_apply_reach_nothing() {
        let f = |s: &str| PathStep::Field(s.into());
        let v = json!({"a": [{"b": 1}, {"b": null}, {"c": 2}, 3], "s": "x", "m": {"0": 4}});
        assert_eq!(
            values(&v, &[f("a"), PathStep::Each, f("b")]),
            [json!(1), json!(null)]
        );
        assert_eq!(values(&v, &[f("a"), PathStep::Index(3)]), [json!(3)]);
        assert!(values(&v, &[f("a"), PathStep::Index(4)]).is_empty());
        assert!(values(&v, &[f("s"), f("x")]).is_empty());
        assert!(values(&v, &[f("s"), PathStep::Each]).is_empty());
        assert!(values(&v, &[f("m"), PathStep::Index(0)]).is_empty());
        assert!(values(&v, &[f("m"), PathStep::Each]).is_empty());
        assert!(values(&v, &[f("a"), f("0")]).is_empty());
        assert_eq!(values(&v, &[f("m"), f("0")]), [json!(4)]);
        assert_eq!(values(&v, &[]), std::slice::from_ref(&v));
    }
}
