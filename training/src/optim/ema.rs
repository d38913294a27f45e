//! The teacher update of self-distillation (DINO): `t ← m·t + (1 − m)·s` for each
//! (teacher, student) parameter pair, as a small graph run after each optimizer step on
//! the same state the step graph keeps.

use memeguard_onnx::{DataType, Dim, GraphBuilder, check_model};

use super::OptimError;
use super::state_graph::{ScalarInput, StateGraph, StateIo};
use super::step_graph::NEXT_SUFFIX;
use super::update::scalar;

/// One teacher parameter following one student parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmaPair {
    pub teacher: String,
    pub student: String,
    /// Shape of both.
    pub dims: Vec<i64>,
}

/// Builds the EMA graph for `pairs`. Inputs: each teacher and student under its own name
/// (float32) and the scalar `ema.momentum`; outputs: `<teacher>.next`.
pub fn build_ema_graph(pairs: &[EmaPair]) -> Result<StateGraph, OptimError> {
    if pairs.is_empty() {
        return Err(OptimError::InvalidConfig("the EMA graph needs at least one (teacher, student) pair".into()));
    }
    let mut b = GraphBuilder::new("ema_update");
    let momentum = ScalarInput::EmaMomentum;
    let m = b.input(&momentum.name(), momentum.dtype(), &[]);
    let one = scalar(&mut b, "ema.one", 1.0);
    let one_minus_m = b.op("Sub", &[&one, &m], &[]);
    let mut state = Vec::new();
    for pair in pairs {
        let dims: Vec<Dim> = pair.dims.iter().map(|&d| Dim::Known(d)).collect();
        for name in [&pair.teacher, &pair.student] {
            if b.is_used(name) {
                return Err(OptimError::InvalidConfig(format!("`{name}` appears twice among the EMA pairs")));
            }
            b.input(name, DataType::Float, &dims);
        }
        let kept = b.op("Mul", &[&pair.teacher, &m], &[]);
        let taken = b.op("Mul", &[&pair.student, &one_minus_m], &[]);
        let next = format!("{}{NEXT_SUFFIX}", pair.teacher);
        if b.is_used(&next) {
            return Err(OptimError::NameClash { name: next });
        }
        b.node_with_outputs("Add", &[&kept, &taken], &[&next], &[]);
        b.output(&next, DataType::Float, &dims);
        state.push(StateIo { name: pair.teacher.clone(), next: Some(next) });
        state.push(StateIo { name: pair.student.clone(), next: None });
    }
    let model = b.build();
    check_model(&model, true).map_err(|e| OptimError::InvalidGraph(e.to_string()))?;
    Ok(StateGraph { model, state, scalars: vec![momentum], data_inputs: Vec::new(), reports: Vec::new() })
}
