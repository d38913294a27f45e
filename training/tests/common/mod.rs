//! Helpers for the gradient-rule tests: single-op graphs, seeded inputs, and a check
//! that runs in float64 where ONNX Runtime's CPU kernels allow it, else float32.
#![allow(dead_code)]

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::testing::Lcg;
use memeguard_onnx::{Attr, DataType, Dim, GraphBuilder, Tensor};
use memeguard_training::autodiff::gradcheck::{GradCheck, check};

/// Seeded values in ±[lo, hi] (both signs, away from zero when lo > 0).
pub fn values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = Lcg(seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(12345));
    (0..n)
        .map(|_| {
            let u = rng.unit_f64();
            let sign = if (rng.next_u64() >> 63) == 1 { -1.0 } else { 1.0 };
            sign * (lo + (hi - lo) * u)
        })
        .collect()
}

/// Positive seeded values in [lo, hi].
pub fn positive(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    values(n, seed, lo, hi).into_iter().map(f64::abs).collect()
}

/// A test input: name, dims, values, and whether it is differentiated.
#[derive(Clone)]
pub struct In {
    pub name: &'static str,
    pub dims: Vec<i64>,
    pub data: Vec<f64>,
    pub wrt: bool,
    /// Integer inputs (indices, shapes) are fed as int64 and never perturbed.
    pub int: bool,
}

/// A float input that is differentiated.
pub fn x(name: &'static str, dims: &[i64], data: Vec<f64>) -> In {
    In { name, dims: dims.to_vec(), data, wrt: true, int: false }
}
/// A float input that is held constant.
pub fn fixed(name: &'static str, dims: &[i64], data: Vec<f64>) -> In {
    In { name, dims: dims.to_vec(), data, wrt: false, int: false }
}
/// An int64 input.
pub fn int(name: &'static str, dims: &[i64], data: Vec<i64>) -> In {
    In { name, dims: dims.to_vec(), data: data.into_iter().map(|v| v as f64).collect(), wrt: false, int: true }
}

fn tensor(i: &In, dtype: DataType) -> Tensor {
    if i.int {
        return Tensor::i64(i.dims.clone(), i.data.iter().map(|&v| v as i64).collect());
    }
    match dtype {
        DataType::Double => Tensor::f64(i.dims.clone(), i.data.clone()),
        _ => Tensor::f32(i.dims.clone(), i.data.iter().map(|&v| v as f32).collect()),
    }
}

/// Builds a graph with the given inputs; `body` appends nodes and returns the value to check.
pub fn graph(
    dtype: DataType,
    ins: &[In],
    body: &dyn Fn(&mut GraphBuilder, &[String]) -> String,
) -> (ModelProto, String) {
    let mut b = GraphBuilder::new("gradcheck");
    let names: Vec<String> = ins
        .iter()
        .map(|i| {
            let t = if i.int { DataType::Int64 } else { dtype };
            let dims: Vec<Dim> = i.dims.iter().map(|&d| Dim::Known(d)).collect();
            b.input(i.name, t, &dims)
        })
        .collect();
    let y = body(&mut b, &names);
    b.output_unshaped(&y, dtype);
    (b.build(), y)
}

/// Which precision a check ran in.
#[derive(Debug, PartialEq)]
pub enum Precision {
    F64,
    F32,
}

/// Checks the gradient of `body`'s output with respect to every `wrt` input: in f64
/// when ONNX Runtime has f64 kernels for the ops, else in f32 with looser tolerances.
pub fn check_grad(ins: &[In], body: &dyn Fn(&mut GraphBuilder, &[String]) -> String) -> Precision {
    let wrt: Vec<&str> = ins.iter().filter(|i| i.wrt).map(|i| i.name).collect();
    let (m64, y64) = graph(DataType::Double, ins, body);
    let feeds64: Vec<(String, Tensor)> =
        ins.iter().map(|i| (i.name.to_string(), tensor(i, DataType::Double))).collect();
    match check(&GradCheck::f64(m64, &y64, feeds64, &wrt)) {
        Ok(r) => {
            eprintln!("f64 check: {} values, max abs error {:.3e}", r.checked, r.max_abs_err);
            Precision::F64
        }
        Err(e) if e.contains("NOT_IMPLEMENTED") || e.contains("Could not find an implementation") => {
            let (m32, y32) = graph(DataType::Float, ins, body);
            let feeds32: Vec<(String, Tensor)> =
                ins.iter().map(|i| (i.name.to_string(), tensor(i, DataType::Float))).collect();
            match check(&GradCheck::f32(m32, &y32, feeds32, &wrt)) {
                Ok(r) => eprintln!("f32 check: {} values, max abs error {:.3e}", r.checked, r.max_abs_err),
                Err(e) => panic!("float32 gradient check failed: {e}"),
            }
            Precision::F32
        }
        Err(e) => panic!("float64 gradient check failed: {e}"),
    }
}

/// One node of `op` over all inputs, with attributes.
pub fn one(op: &'static str, attrs: Vec<(&'static str, Attr)>) -> impl Fn(&mut GraphBuilder, &[String]) -> String {
    move |b, names| {
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        b.op(op, &refs, &attrs)
    }
}
