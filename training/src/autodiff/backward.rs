//! The reverse pass: which nodes need gradients, seeding, accumulation, and calling
//! each node's rule in reverse topological order.

use std::collections::{BTreeMap, HashMap, HashSet};

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::shape::infer_shapes;
use memeguard_onnx::{Attr, DataType, Dim, GraphBuilder, Tensor};

use super::registry::rule;
use super::{AutodiffError, RuleCtx};

/// Options of [`differentiate_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Values through which no gradient flows (treated as constants), e.g. a teacher's
    /// output or a centre that is updated by EMA, not by gradient.
    pub stop_gradient: HashSet<String>,
}

/// A forward graph with its gradient nodes appended.
#[derive(Debug, Clone)]
pub struct Differentiated {
    /// Forward nodes, then gradient nodes. Graph outputs are unchanged.
    pub model: ModelProto,
    /// For each value differentiated with respect to, the value holding its gradient
    /// (named `<value>_grad`, or a unique variant of it).
    pub grads: BTreeMap<String, String>,
}

/// Differentiates the scalar `loss` with respect to each value in `wrt`.
pub fn differentiate(model: &ModelProto, loss: &str, wrt: &[String]) -> Result<Differentiated, AutodiffError> {
    differentiate_with(model, loss, wrt, &Options::default())
}

fn is_float(t: DataType) -> bool {
    matches!(t, DataType::Float | DataType::Double | DataType::Float16 | DataType::Bfloat16)
}

/// [`differentiate`] with options.
pub fn differentiate_with(
    model: &ModelProto,
    loss: &str,
    wrt: &[String],
    opts: &Options,
) -> Result<Differentiated, AutodiffError> {
    // The rules write opset-20 nodes (reductions with axes as an input): bring the
    // forward graph to that opset first, so the result is one consistent model.
    let mut upgraded = model.clone();
    memeguard_onnx::upgrade::upgrade_opset(&mut upgraded)?;
    let model = &upgraded;
    let mut shapes = infer_shapes(model);
    let graph = model.graph.clone().unwrap_or_default();
    let nodes = graph.node.clone();

    // The loss must exist and be a float scalar (rank 0, or every dim 1).
    let loss_type = shapes.get(loss).cloned().ok_or_else(|| AutodiffError::LossNotFound(loss.to_string()))?;
    if !is_float(loss_type.dtype) {
        return Err(AutodiffError::LossNotScalar {
            name: loss.into(),
            what: format!("element type {:?}", loss_type.dtype),
        });
    }
    if let Some(d) = &loss_type.dims
        && d.iter().any(|x| *x != Dim::Known(1))
    {
        return Err(AutodiffError::LossNotScalar { name: loss.into(), what: format!("shape {d:?}") });
    }
    for w in wrt {
        match shapes.dtype(w) {
            None => return Err(AutodiffError::WrtNotFound(w.clone())),
            Some(t) if !is_float(t) => return Err(AutodiffError::WrtNotFloat { name: w.clone(), dtype: t }),
            _ => {}
        }
    }

    // Forward: values that depend on a `wrt` value through float data.
    let float_value = |shapes: &memeguard_onnx::shape::ShapeMap, v: &str| shapes.dtype(v).map(is_float).unwrap_or(true);
    let mut requires: HashSet<String> = wrt.iter().cloned().collect();
    for node in &nodes {
        if node.input.iter().any(|i| requires.contains(i) && !opts.stop_gradient.contains(i)) {
            for o in &node.output {
                if !o.is_empty() && float_value(&shapes, o) && !opts.stop_gradient.contains(o) {
                    requires.insert(o.clone());
                }
            }
        }
    }
    // Backward: values the loss depends on.
    let mut leads: HashSet<String> = HashSet::from([loss.to_string()]);
    for node in nodes.iter().rev() {
        if node.output.iter().any(|o| leads.contains(o)) {
            leads.extend(node.input.iter().filter(|i| !i.is_empty()).cloned());
        }
    }

    let mut b = GraphBuilder::from_model(model);
    let mut contributions: HashMap<String, Vec<String>> = HashMap::new();

    // Seed: d loss / d loss = 1, shaped like the loss.
    let before = b.graph().node.len();
    let loss_shape = b.node_named(&format!("{loss}_grad_shape"), "Shape", &[loss], 1, &[]).pop().expect("one");
    let seed = filled_of_shape(&mut b, &format!("{loss}_grad_seed"), &loss_shape, loss_type.dtype, 1.0);
    for n in &b.graph().node[before..].to_vec() {
        shapes.add_node(n);
    }
    contributions.entry(loss.to_string()).or_default().push(seed);

    for node in nodes.iter().rev() {
        let active = node.output.iter().any(|o| requires.contains(o) && leads.contains(o));
        if !active {
            continue;
        }
        let grad_outputs: Vec<Option<String>> =
            node.output.iter().map(|o| accumulate(&mut b, &mut shapes, o, contributions.remove(o))).collect();
        if grad_outputs.iter().all(Option::is_none) {
            continue;
        }
        let op = node.op_type.clone().unwrap_or_default();
        let rule = rule(&op)
            .ok_or_else(|| AutodiffError::NoRule { op: op.clone(), node: node.name.clone().unwrap_or_default() })?;
        let needs: Vec<bool> = node
            .input
            .iter()
            .map(|i| !i.is_empty() && requires.contains(i) && !opts.stop_gradient.contains(i))
            .collect();
        let mut ctx = RuleCtx::new(node, &mut b, &mut shapes, grad_outputs, needs.clone());
        rule(&mut ctx)?;
        for (i, g) in ctx.into_grads().into_iter().enumerate() {
            if let Some(g) = g
                && needs[i]
            {
                contributions.entry(node.input[i].clone()).or_default().push(g);
            }
        }
    }

    let mut grads = BTreeMap::new();
    for w in wrt {
        let name = b.unique(&format!("{w}_grad"));
        match accumulate(&mut b, &mut shapes, w, contributions.remove(w)) {
            Some(g) => b.node_into("Identity", &[&g], &[&name], &[]),
            None => {
                // Not connected to the loss: its gradient is zero.
                let s = b.op("Shape", &[w], &[]);
                let dtype = shapes.dtype(w).unwrap_or(DataType::Float);
                let fill = Attr::Tensor(Tensor::full(dtype, &[1], 0.0));
                if matches!(dtype, DataType::Float16 | DataType::Bfloat16) {
                    let zero = b.op("ConstantOfShape", &[&s], &[("value", fill)]);
                    b.node_into("Cast", &[&zero], &[&name], &[("to", Attr::Int(dtype as i64))]);
                } else {
                    b.node_into("ConstantOfShape", &[&s], &[&name], &[("value", fill)]);
                }
            }
        }
        grads.insert(w.clone(), name);
    }
    let mut model = model.clone();
    let built = b.build();
    model.graph = built.graph;
    Ok(Differentiated { model, grads })
}

/// `ConstantOfShape(shape)` filled with `value` in the float type `dtype`: float16 and
/// bfloat16 are filled as float32 and cast (the tensor type holds float32/float64 only).
fn filled_of_shape(b: &mut GraphBuilder, name: &str, shape: &str, dtype: DataType, value: f64) -> String {
    let fill = Tensor::full(dtype, &[1], value);
    let v = b.node_named(name, "ConstantOfShape", &[shape], 1, &[("value", Attr::Tensor(fill))]).pop().expect("one");
    match dtype {
        DataType::Float16 | DataType::Bfloat16 => {
            b.node_named(name, "Cast", &[&v], 1, &[("to", Attr::Int(dtype as i64))]).pop().expect("one")
        }
        _ => v,
    }
}

/// Sums the gradient contributions of one value (one contribution needs no node).
fn accumulate(
    b: &mut GraphBuilder,
    shapes: &mut memeguard_onnx::shape::ShapeMap,
    value: &str,
    parts: Option<Vec<String>>,
) -> Option<String> {
    let parts = parts?;
    match parts.len() {
        0 => None,
        1 => Some(parts[0].clone()),
        _ => {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            let out = b.node_named(&format!("{value}_grad_sum"), "Sum", &refs, 1, &[]).pop().expect("one");
            let node = b.graph().node.last().expect("pushed").clone();
            shapes.add_node(&node);
            Some(out)
        }
    }
}
