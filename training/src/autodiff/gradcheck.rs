//! Checking analytic gradients against central finite differences, both computed by
//! ONNX Runtime. Used by the tests of every rule and available to check an imported
//! encoder's graph.

use std::collections::HashMap;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::shape::infer_shapes;
use memeguard_onnx::{DataType, GraphBuilder, Tensor, TensorData, encode_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_package::tensor_value::{from_value, to_value};

use super::differentiate;

/// What to check: the gradient of `sum(output * R)` (R fixed, random) with respect to
/// each value in `wrt`, at the given input values.
#[derive(Debug, Clone)]
pub struct GradCheck {
    /// The forward graph. Its declared outputs are ignored.
    pub model: ModelProto,
    /// The value whose gradient is checked (any float shape).
    pub output: String,
    /// Values for every graph input; `wrt` names among them are perturbed. Initializers
    /// named in `wrt` are perturbed too.
    pub inputs: Vec<(String, Tensor)>,
    pub wrt: Vec<String>,
    /// Finite-difference step.
    pub eps: f64,
    /// Allowed error: |analytic − numeric| ≤ atol + rtol·|numeric|.
    pub rtol: f64,
    pub atol: f64,
    /// Seed of the random weights R.
    pub seed: u64,
}

impl GradCheck {
    /// Defaults for float64 graphs (tight) — use [`GradCheck::f32`] for float32 graphs.
    pub fn f64(model: ModelProto, output: &str, inputs: Vec<(String, Tensor)>, wrt: &[&str]) -> Self {
        GradCheck {
            model,
            output: output.to_string(),
            inputs,
            wrt: wrt.iter().map(|s| s.to_string()).collect(),
            eps: 1e-6,
            rtol: 1e-5,
            atol: 1e-7,
            seed: 1,
        }
    }
    /// Defaults for float32 graphs, where ONNX Runtime has no float64 kernel: looser,
    /// because central differences in f32 carry ~1e-3 relative noise.
    pub fn f32(model: ModelProto, output: &str, inputs: Vec<(String, Tensor)>, wrt: &[&str]) -> Self {
        GradCheck { eps: 1e-2, rtol: 2e-2, atol: 2e-3, ..Self::f64(model, output, inputs, wrt) }
    }
}

/// Result of a passing check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub checked: usize,
    pub max_abs_err: f64,
}

fn run(bytes: &[u8], feeds: &[(String, Tensor)], outputs: &[String]) -> Result<Vec<Tensor>, String> {
    let mut session = session_from_bytes(bytes, &SessionOptions { deterministic: true, ..Default::default() })
        .map_err(|e| e.to_string())?;
    run_session(&mut session, feeds, outputs)
}

fn run_session(
    session: &mut ort::session::Session,
    feeds: &[(String, Tensor)],
    outputs: &[String],
) -> Result<Vec<Tensor>, String> {
    let mut inputs = Vec::new();
    for (name, t) in feeds {
        inputs.push((name.clone(), to_value(t).map_err(|e| e.to_string())?));
    }
    let out = session.run(inputs).map_err(|e| e.to_string())?;
    outputs.iter().map(|o| from_value(&out[o.as_str()], o).map_err(|e| e.to_string())).collect()
}

fn perturbed(t: &Tensor, i: usize, delta: f64) -> Tensor {
    let mut t = t.clone();
    match &mut t.data {
        TensorData::F32(v) => v[i] += delta as f32,
        TensorData::F64(v) => v[i] += delta,
        _ => {}
    }
    t
}

/// `built` with the opset imports (and IR version) of `model`: the builder writes opset
/// 20, and a graph at a newer opset (GroupNormalization-21) must keep its own.
fn at_opset_of(mut built: ModelProto, model: &ModelProto) -> ModelProto {
    built.opset_import = model.opset_import.clone();
    built.ir_version = built.ir_version.max(model.ir_version);
    built
}

/// Runs the check; `Err` describes the first mismatches (or why it could not run).
pub fn check(spec: &GradCheck) -> Result<CheckReport, String> {
    // Move `wrt` initializers into graph inputs so they can be fed perturbed.
    // Probes below are built at opset 20: bring an older graph there first.
    let mut model = spec.model.clone();
    memeguard_onnx::upgrade::upgrade_opset(&mut model).map_err(|e| e.to_string())?;
    let mut feeds: Vec<(String, Tensor)> = spec.inputs.clone();
    {
        let graph = model.graph.as_mut().ok_or("model has no graph")?;
        graph.output.clear();
        let mut kept = Vec::new();
        for init in graph.initializer.drain(..) {
            let name = init.name.clone().unwrap_or_default();
            if spec.wrt.contains(&name) {
                let t = Tensor::from_proto(&init).map_err(|e| e.to_string())?;
                let dims: Vec<memeguard_onnx::Dim> = t.dims.iter().map(|&d| d.into()).collect();
                graph.input.push(memeguard_onnx::builder::value_info(&name, t.data_type(), &dims));
                feeds.push((name, t));
            } else {
                kept.push(init);
            }
        }
        graph.initializer = kept;
    }
    let shapes = infer_shapes(&model);
    let dtype = shapes.dtype(&spec.output).ok_or_else(|| format!("`{}` is not a value of the graph", spec.output))?;

    // Probe the output's shape.
    let mut probe = GraphBuilder::from_model(&model);
    probe.output_unshaped(&spec.output, dtype);
    let y =
        run(&encode_model(&at_opset_of(probe.build(), &model)), &feeds, std::slice::from_ref(&spec.output))?.remove(0);

    // loss = sum(y * R)
    let mut rng = memeguard_onnx::testing::Lcg(spec.seed.wrapping_add(0x9e37_79b9));
    let r: Vec<f64> = (0..y.numel())
        .map(|_| {
            let v = 0.5 + rng.unit_f64();
            if rng.unit_f64() < 0.5 { -v } else { v }
        })
        .collect();
    let r = match dtype {
        DataType::Double => Tensor::f64(y.dims.clone(), r),
        _ => Tensor::f32(y.dims.clone(), r.iter().map(|&v| v as f32).collect()),
    };
    let mut b = GraphBuilder::from_model(&model);
    let r_name = b.constant("gradcheck_weights", r);
    let weighted = b.op("Mul", &[&spec.output, &r_name], &[]);
    let loss = b.op("ReduceSum", &[&weighted], &[("keepdims", memeguard_onnx::Attr::Int(0))]);
    b.output_unshaped(&loss, dtype);
    let loss_model = at_opset_of(b.build(), &model);

    let diff = differentiate(&loss_model, &loss, &spec.wrt).map_err(|e| e.to_string())?;
    let mut gb = GraphBuilder::from_model(&diff.model);
    let grad_names: Vec<String> = spec.wrt.iter().map(|w| diff.grads[w].clone()).collect();
    let grad_shapes = infer_shapes(&diff.model);
    for g in &grad_names {
        gb.output_unshaped(g, grad_shapes.dtype(g).unwrap_or(dtype));
    }
    let grad_model = at_opset_of(gb.build(), &model);
    let foreign = memeguard_onnx::check::foreign_ops(&grad_model);
    if !foreign.is_empty() {
        return Err(format!("gradient graph uses non-standard ops: {foreign:?}"));
    }
    let analytic = run(&encode_model(&grad_model), &feeds, &grad_names)?;

    let mut loss_session =
        session_from_bytes(&encode_model(&loss_model), &SessionOptions { deterministic: true, ..Default::default() })
            .map_err(|e| e.to_string())?;
    let index: HashMap<&str, usize> = feeds.iter().enumerate().map(|(i, (n, _))| (n.as_str(), i)).collect();
    let mut checked = 0;
    let mut max_abs_err: f64 = 0.0;
    let mut failures = Vec::new();
    for (w, grad) in spec.wrt.iter().zip(&analytic) {
        let k = *index.get(w.as_str()).ok_or_else(|| format!("no value fed for `{w}`"))?;
        let base = feeds[k].1.clone();
        if grad.dims != base.dims {
            return Err(format!("gradient of `{w}` has shape {:?}, but `{w}` has {:?}", grad.dims, base.dims));
        }
        let g = grad.to_f64_vec();
        for (i, &analytic_i) in g.iter().enumerate().take(base.numel()) {
            let mut f = feeds.clone();
            f[k].1 = perturbed(&base, i, spec.eps);
            let lp = run_session(&mut loss_session, &f, std::slice::from_ref(&loss))?[0].to_f64_vec()[0];
            f[k].1 = perturbed(&base, i, -spec.eps);
            let lm = run_session(&mut loss_session, &f, std::slice::from_ref(&loss))?[0].to_f64_vec()[0];
            let numeric = (lp - lm) / (2.0 * spec.eps);
            let err = (analytic_i - numeric).abs();
            max_abs_err = max_abs_err.max(err);
            checked += 1;
            if err > spec.atol + spec.rtol * numeric.abs() && failures.len() < 8 {
                failures.push(format!("d/d {w}[{i}]: analytic {:.8e}, numeric {:.8e}", analytic_i, numeric));
            }
        }
    }
    if failures.is_empty() {
        Ok(CheckReport { checked, max_abs_err })
    } else {
        Err(format!("gradient mismatch (max abs err {max_abs_err:.3e}):\n  {}", failures.join("\n  ")))
    }
}
