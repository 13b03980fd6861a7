//! Kubernetes' label-selector semantics, written here rather than read from the crate:
//! shared by the fuzz targets' models (`common` and `cached`, which does not include
//! `common`).

use k8s_store::Requirement;

/// Whether a requirement holds for a label `value` (`None`: absent), as Kubernetes
/// defines label selectors (apimachinery's `Requirement.Matches`): `=`, `in` and
/// `exists` need the label, `!=`, `notin` and `!` hold without it.
pub fn requirement_holds(r: &Requirement, value: Option<&str>) -> bool {
    match (r, value) {
        (Requirement::Equals { value: want, .. }, Some(v)) => v == want,
        (Requirement::In { values, .. }, Some(v)) => values.contains(v),
        (Requirement::Equals { .. } | Requirement::In { .. }, None) => false,
        (
            Requirement::NotEquals {
                value: unwanted, ..
            },
            Some(v),
        ) => v != unwanted,
        (Requirement::NotIn { values, .. }, Some(v)) => !values.contains(v),
        (Requirement::NotEquals { .. } | Requirement::NotIn { .. }, None) => true,
        (Requirement::Exists { .. }, v) => v.is_some(),
        (Requirement::DoesNotExist { .. }, v) => v.is_none(),
        (r, _) => panic!("a requirement the model does not know: {r:?}"),
    }
}
