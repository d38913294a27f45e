//! Dropout masks that continue exactly across a checkpoint.
//!
//! ONNX Runtime's `Dropout` kernel draws its mask from a generator owned by the node: on CPU
//! it starts at the node's `seed` attribute and takes the next seed on every run (run `k`
//! uses `seed + k`, checked in `tests/runtime_trainer.rs`). A new session would replay the
//! masks of run 0, 1, ... so a session created for a run that has already done `runs`
//! steps gets `seed + runs` instead: its masks are those the uninterrupted run would draw.
//! (CUDA's generator advances by the element count instead; exact resume is a CPU promise.)
//! Dropout nodes without a seed would draw from a process-random generator: they get one
//! derived from the run's seed, so runs are reproducible.

use memeguard_onnx::Attr;
use memeguard_onnx::builder::attribute;
use memeguard_onnx::proto::ModelProto;

/// Random ops whose generators advance in ways this module cannot reproduce after a resume.
const OTHER_RANDOM_OPS: &[&str] =
    &["RandomUniform", "RandomNormal", "RandomUniformLike", "RandomNormalLike", "Bernoulli", "Multinomial"];

/// Sets every Dropout node's seed to where it stands after `runs` runs (see the module
/// docs); unseeded nodes first get a seed derived from `run_seed` and their position.
/// Returns the op types of other random nodes, whose sequences are not continued.
pub fn advance_dropout_seeds(model: &mut ModelProto, run_seed: u64, runs: u64) -> Vec<String> {
    let mut others = Vec::new();
    let Some(graph) = model.graph.as_mut() else { return others };
    for (index, node) in graph.node.iter_mut().enumerate() {
        let op = node.op_type.as_deref().unwrap_or("");
        if OTHER_RANDOM_OPS.contains(&op) {
            others.push(op.to_string());
            continue;
        }
        if op != "Dropout" {
            continue;
        }
        let base = match attribute(node, "seed").and_then(|a| a.i) {
            Some(seed) => seed,
            // splitmix64-style mixing of the run seed and the node's position.
            None => {
                (run_seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9)
                    as i64
                    >> 1
            }
        };
        node.attribute.retain(|a| a.name.as_deref() != Some("seed"));
        node.attribute.push(Attr::Int(base.wrapping_add(runs as i64)).to_proto("seed"));
    }
    others.sort();
    others.dedup();
    others
}

#[cfg(test)]
mod tests {
    use super::*;
    use memeguard_onnx::builder::attr_int;
    use memeguard_onnx::{DataType, GraphBuilder, dims};

    #[test]
    fn seeds_advance_by_the_runs_done_and_unseeded_nodes_get_one() {
        let mut g = GraphBuilder::new("d");
        let x = g.input("x", DataType::Float, &dims![4]);
        let a = g.node("Dropout", &[&x], 1, &[("seed", Attr::Int(7))]);
        let b = g.node("Dropout", &[&a[0]], 1, &[]);
        let c = g.op("RandomUniformLike", &[&b[0]], &[]);
        g.output(&c, DataType::Float, &dims![4]);
        let model = g.build();

        let mut m = model.clone();
        let others = advance_dropout_seeds(&mut m, 3, 5);
        let nodes = &m.graph.as_ref().unwrap().node;
        assert_eq!(attr_int(&nodes[0], "seed", -1), 12);
        let derived = attr_int(&nodes[1], "seed", -1);
        assert_eq!(others, vec!["RandomUniformLike".to_string()]);

        let mut again = model.clone();
        advance_dropout_seeds(&mut again, 3, 0);
        assert_eq!(
            attr_int(&again.graph.as_ref().unwrap().node[1], "seed", -1) + 5,
            derived,
            "same run seed, same base"
        );
        let mut other_run = model;
        advance_dropout_seeds(&mut other_run, 4, 5);
        assert_ne!(attr_int(&other_run.graph.as_ref().unwrap().node[1], "seed", -1), derived);
    }
}
