//! The multi-tensor update: small parameters of the same group and weight-decay mask are
//! updated together, flattened and concatenated into one vector, so that the optimizer's
//! element-wise chain runs once per bucket instead of once per tensor. ONNX Runtime's
//! cost per node (dispatch, allocation) dominates on small tensors; on large ones the
//! Concat and Split copies would cost more than they save, so those stay per parameter.
//! State stays per parameter (`<param>.exp_avg`, ...): checkpoints do not change.

use memeguard_onnx::{Attr, GraphBuilder};

use super::OptimError;
use super::update::{ParamUpdate, RuleScalars, declare_state, update_values};

/// How the step graph lays out the optimizer update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateLayout {
    /// One element-wise chain per parameter tensor.
    PerParameter,
    /// Parameters of at most `max_elements` elements sharing a group and a weight-decay
    /// mask are updated as one flat vector; larger ones per parameter.
    MultiTensor { max_elements: usize },
}

impl Default for UpdateLayout {
    /// Multi-tensor for tensors up to 4096 elements: measured (docs/benchmarks.md,
    /// "Training step vs PyTorch") about 6 % faster on the small text encoder, neutral on
    /// the others, where a 64 Ki bound made the ViT step slower (Concat/Split copies).
    fn default() -> Self {
        UpdateLayout::MultiTensor { max_elements: 1 << 12 }
    }
}

/// One update: a single parameter, or several updated as one flat vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// Indices into the trainable-parameter list, in list order.
    pub members: Vec<usize>,
}

/// A trainable parameter as the planner sees it.
pub(crate) struct Member<'a> {
    pub group: &'a str,
    pub decays: bool,
    pub dims: &'a [i64],
}

/// Splits the trainable parameters into update units under `layout`; units are ordered
/// by their first member.
pub(crate) fn plan_units(members: &[Member<'_>], layout: UpdateLayout) -> Vec<Unit> {
    let max = match layout {
        UpdateLayout::PerParameter => 0,
        UpdateLayout::MultiTensor { max_elements } => max_elements,
    };
    let mut units: Vec<Unit> = Vec::new();
    // (group, decays) → index of its bucket in `units`
    let mut buckets: Vec<((&str, bool), usize)> = Vec::new();
    for (i, m) in members.iter().enumerate() {
        let numel: i64 = m.dims.iter().product();
        if numel as usize > max {
            units.push(Unit { members: vec![i] });
            continue;
        }
        let key = (m.group, m.decays);
        match buckets.iter().find(|(k, _)| *k == key) {
            Some(&(_, unit)) => units[unit].members.push(i),
            None => {
                buckets.push((key, units.len()));
                units.push(Unit { members: vec![i] });
            }
        }
    }
    units
}

/// `values` (of shapes `dims`) flattened and concatenated; a single rank-1 value as is.
pub(crate) fn flatten_concat(b: &mut GraphBuilder, values: &[&str], dims: &[&[i64]]) -> String {
    if values.len() == 1 && dims[0].len() == 1 {
        return values[0].to_string();
    }
    let flat_shape = b.const_i64s("multi_tensor.flat", &[-1]);
    let flat: Vec<String> = values
        .iter()
        .zip(dims)
        .map(|(v, d)| if d.len() == 1 { v.to_string() } else { b.op("Reshape", &[v, &flat_shape], &[]) })
        .collect();
    let refs: Vec<&str> = flat.iter().map(String::as_str).collect();
    b.op("Concat", &refs, &[("axis", Attr::Int(0))])
}

/// The flat `value` cut back into pieces of shapes `dims`.
fn split_back(b: &mut GraphBuilder, value: &str, dims: &[&[i64]]) -> Vec<String> {
    let sizes: Vec<i64> = dims.iter().map(|d| d.iter().product()).collect();
    let sizes = b.const_i64s("multi_tensor.sizes", &sizes);
    let pieces = b.node("Split", &[value, &sizes], dims.len(), &[("axis", Attr::Int(0))]);
    pieces
        .into_iter()
        .zip(dims)
        .map(|(piece, d)| {
            if d.len() == 1 {
                piece
            } else {
                let shape = b.const_i64s("multi_tensor.shape", d);
                b.op("Reshape", &[&piece, &shape], &[])
            }
        })
        .collect()
}

/// The update of a bucket of parameters (names `params`, shapes `dims`) whose gradients
/// were concatenated into `flat_grad`: their state inputs are declared per parameter,
/// concatenated, updated as one vector, and the results split back per parameter.
pub(crate) fn emit_bucket_update(
    b: &mut GraphBuilder,
    rule: &RuleScalars,
    params: &[&str],
    dims: &[&[i64]],
    flat_grad: &str,
    decays: bool,
) -> Result<Vec<ParamUpdate>, OptimError> {
    let mut states: Vec<Vec<String>> = Vec::new();
    for (p, d) in params.iter().zip(dims) {
        states.push(declare_state(b, rule, p, d)?);
    }
    let flat_param = flatten_concat(b, params, dims);
    let slots = states.first().map_or(0, Vec::len);
    let flat_state: Vec<String> = (0..slots)
        .map(|k| {
            let values: Vec<&str> = states.iter().map(|s| s[k].as_str()).collect();
            flatten_concat(b, &values, dims)
        })
        .collect();
    let (param_next, state_next) = update_values(b, rule, &flat_param, flat_grad, &flat_state, decays);
    let param_pieces = split_back(b, &param_next, dims);
    let state_pieces: Vec<Vec<String>> = state_next.iter().map(|v| split_back(b, v, dims)).collect();
    Ok(params
        .iter()
        .enumerate()
        .map(|(i, _)| ParamUpdate {
            param_next: param_pieces[i].clone(),
            state: (0..slots).map(|k| (states[i][k].clone(), state_pieces[k][i].clone())).collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_small_tensors_by_group_and_decay() {
        let m = |group, decays, dims| Member { group, decays, dims };
        let members = [
            m("a", true, &[4, 4][..]),
            m("a", false, &[4][..]),
            m("a", true, &[1000, 1000][..]),
            m("b", true, &[4, 4][..]),
            m("a", true, &[8][..]),
            m("a", false, &[4][..]),
        ];
        let units: Vec<Vec<usize>> = plan_units(&members, UpdateLayout::MultiTensor { max_elements: 1024 })
            .into_iter()
            .map(|u| u.members)
            .collect();
        assert_eq!(units, vec![vec![0, 4], vec![1, 5], vec![2], vec![3]]);
        let per: Vec<Vec<usize>> =
            plan_units(&members, UpdateLayout::PerParameter).into_iter().map(|u| u.members).collect();
        assert_eq!(per, (0..6).map(|i| vec![i]).collect::<Vec<_>>());
    }
}
