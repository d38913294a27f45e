//! Retrieval-guided contrastive loss (RGCL; Mei et al., ACL 2024, "Improving Hateful
//! Meme Detection through Retrieval-Guided Contrastive Learning"). For each anchor
//! embedding `g_i`: its pseudo-gold positive `g_i⁺` (a same-label training example
//! retrieved by similarity), its hard negatives (opposite-label training examples
//! retrieved by similarity) and its in-batch negatives (the opposite-label anchors of the
//! batch):
//!
//! `L_i = −log( e^{cos(g_i, g_i⁺)/τ} / (e^{cos(g_i, g_i⁺)/τ} + Σ_{g⁻} e^{cos(g_i, g⁻)/τ}) )`
//!
//! The retrieval happens outside the graph (`pipeline::retrieval`); the graph gets the
//! embeddings of one batch laid out in `groups = 2 + K` blocks of N rows: the anchors,
//! then their positives, then each anchor's k-th hard negative for k = 1..K.

use memeguard_onnx::{Attr, GraphBuilder};

use super::{LossError, float_type, mean_all, scalar};

/// The mean RGCL loss of `embeddings` `[groups·N, D]` laid out as above; `labels` `[groups·N]`
/// (float, 0 or 1) mark which anchors are in-batch negatives of each other.
pub fn retrieval_contrastive(
    b: &mut GraphBuilder,
    embeddings: &str,
    labels: &str,
    groups: usize,
    dim: usize,
    temperature: f32,
) -> Result<String, LossError> {
    let dtype = float_type(b, embeddings)?;
    let axes = b.const_i64s("rgcl_last_axis", &[-1]);
    // √(Σx² + ε) rather than max(‖x‖, ε): an embedding of zeros (all units of a ReLU
    // off) then has a zero gradient, not 0/0.
    let squares = b.op("Mul", &[embeddings, embeddings], &[]);
    let sum = b.op("ReduceSum", &[&squares, &axes], &[("keepdims", Attr::Int(1))]);
    let eps = scalar(b, "rgcl_eps", dtype, 1e-12);
    let sum = b.op("Add", &[&sum, &eps], &[]);
    let norm = b.op("Sqrt", &[&sum], &[]);
    let z = b.op("Div", &[embeddings, &norm], &[]);
    let shape = b.const_i64s("rgcl_groups_shape", &[groups as i64, -1, dim as i64]);
    let z = b.op("Reshape", &[&z, &shape], &[]);
    let slice = |b: &mut GraphBuilder, x: &str, from: i64, to: i64| {
        let starts = b.const_i64s("rgcl_start", &[from]);
        let ends = b.const_i64s("rgcl_end", &[to]);
        let axis = b.const_i64s("rgcl_axis0", &[0]);
        b.op("Slice", &[x, &starts, &ends, &axis], &[])
    };
    let anchors = slice(b, &z, 0, 1); // [1, N, D]
    let positives = slice(b, &z, 1, 2); // [1, N, D]
    let negatives = slice(b, &z, 2, groups as i64); // [K, N, D]
    let pos = b.op("Mul", &[&anchors, &positives], &[]);
    let pos = b.op("ReduceSum", &[&pos, &axes], &[("keepdims", Attr::Int(0))]); // [1, N]
    let hard = b.op("Mul", &[&anchors, &negatives], &[]);
    let hard = b.op("ReduceSum", &[&hard, &axes], &[("keepdims", Attr::Int(0))]); // [K, N]
    let retrieved = b.op("Concat", &[&pos, &hard], &[("axis", Attr::Int(0))]); // [1+K, N]
    let retrieved = b.op("Transpose", &[&retrieved], &[("perm", Attr::Ints(vec![1, 0]))]); // [N, 1+K]

    // In-batch negatives: every anchor of the other label (same-label anchors, the
    // anchor itself included, are pushed to −10⁴ before the softmax).
    let flat = b.const_i64s("rgcl_anchor_shape", &[-1, dim as i64]);
    let a = b.op("Reshape", &[&anchors, &flat], &[]); // [N, D]
    let at = b.op("Transpose", &[&a], &[("perm", Attr::Ints(vec![1, 0]))]);
    let batch = b.op("MatMul", &[&a, &at], &[]); // [N, N]
    let label_shape = b.const_i64s("rgcl_label_shape", &[groups as i64, -1]);
    let y = b.op("Reshape", &[labels, &label_shape], &[]);
    let y = slice(b, &y, 0, 1); // [1, N]
    let yt = b.op("Transpose", &[&y], &[("perm", Attr::Ints(vec![1, 0]))]); // [N, 1]
    let differ = b.op("Sub", &[&yt, &y], &[]);
    let differ = b.op("Abs", &[&differ], &[]); // 1 where the labels differ
    let one = scalar(b, "rgcl_one", dtype, 1.0);
    let big = scalar(b, "rgcl_big", dtype, 1e4);
    let mask = b.op("Sub", &[&differ, &one], &[]);
    let mask = b.op("Mul", &[&mask, &big], &[]);

    let tau = scalar(b, "rgcl_temperature", dtype, f64::from(temperature));
    let retrieved = b.op("Div", &[&retrieved, &tau], &[]);
    let batch = b.op("Div", &[&batch, &tau], &[]);
    let batch = b.op("Add", &[&batch, &mask], &[]);
    let logits = b.op("Concat", &[&retrieved, &batch], &[("axis", Attr::Int(1))]); // [N, 1+K+N]
    let log_p = b.op("LogSoftmax", &[&logits], &[("axis", Attr::Int(-1))]);
    let starts = b.const_i64s("rgcl_col_start", &[0]);
    let ends = b.const_i64s("rgcl_col_end", &[1]);
    let axis1 = b.const_i64s("rgcl_axis1", &[1]);
    let positive = b.op("Slice", &[&log_p, &starts, &ends, &axis1], &[]);
    let mean = mean_all(b, &positive);
    Ok(b.op("Neg", &[&mean], &[]))
}
