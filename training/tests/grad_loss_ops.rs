//! Finite-difference checks of the ONNX loss ops exporters write for `F.cross_entropy`
//! and `F.nll_loss`: SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss, with every
//! reduction, class weights (fixed and trained), `ignore_index` and spatial (`[N, C, d]`)
//! scores.

mod common;
use common::*;
use memeguard_onnx::{Attr, DataType, GraphBuilder};

fn reduction(r: &str) -> (&'static str, Attr) {
    ("reduction", Attr::Str(r.into()))
}

/// The loss op over inputs `[scores, labels, (weights)]` with the given attributes.
fn loss(op: &'static str, attrs: Vec<(&'static str, Attr)>) -> impl Fn(&mut GraphBuilder, &[String]) -> String {
    move |b, n| {
        let refs: Vec<&str> = n.iter().map(String::as_str).collect();
        b.op(op, &refs, &attrs)
    }
}

/// A check: the inputs, and the loss op's attributes.
type Case = (Vec<In>, Vec<(&'static str, Attr)>);

fn cases() -> Vec<Case> {
    let scores = || x("scores", &[3, 4], values(12, 41, 0.1, 2.0));
    let labels = || int("labels", &[3], vec![2, 0, 1]);
    let weights = || fixed("weights", &[4], vec![0.5, 2.0, 1.5, 1.0]);
    let mut out = Vec::new();
    for r in ["none", "sum", "mean"] {
        out.push((vec![scores(), labels()], vec![reduction(r)]));
        out.push((vec![scores(), labels(), weights()], vec![reduction(r)]));
        out.push((vec![scores(), labels(), weights()], vec![reduction(r), ("ignore_index", Attr::Int(1))]));
        // Spatial scores [N, C, d] and labels [N, d], with an ignored position.
        let spatial =
            vec![x("scores", &[2, 4, 3], values(24, 42, 0.1, 2.0)), int("labels", &[2, 3], vec![3, -100, 0, 1, 1, 2])];
        out.push((spatial, vec![reduction(r), ("ignore_index", Attr::Int(-100))]));
    }
    out
}

#[test]
fn softmax_cross_entropy_every_reduction_weights_and_ignore_index() {
    for (ins, attrs) in cases() {
        assert_eq!(check_grad(&ins, &loss("SoftmaxCrossEntropyLoss", attrs)), Precision::F64);
    }
    // Labels as int32, as some exporters write them.
    let ins = [x("scores", &[3, 4], values(12, 43, 0.1, 2.0)), int("labels", &[3], vec![3, 3, 0])];
    check_grad(&ins, &|b, n| {
        let l32 = b.op("Cast", &[&n[1]], &[("to", Attr::Int(DataType::Int32 as i64))]);
        b.op("SoftmaxCrossEntropyLoss", &[&n[0], &l32], &[])
    });
}

#[test]
fn softmax_cross_entropy_with_its_log_prob_output_used_too() {
    let ins = [x("scores", &[3, 4], values(12, 44, 0.1, 2.0)), int("labels", &[3], vec![1, 0, 3])];
    check_grad(&ins, &|b, n| {
        let outs = b.node("SoftmaxCrossEntropyLoss", &[&n[0], &n[1]], 2, &[reduction("sum")]);
        let k = b.constant("k", memeguard_onnx::Tensor::scalar_f64(0.3));
        let lp = b.op("Mul", &[&outs[1], &k], &[]);
        let s = b.op("ReduceSum", &[&lp], &[("keepdims", Attr::Int(0))]);
        b.op("Add", &[&outs[0], &s], &[])
    });
    // With trained weights and the mean: the weights' gradient reads the log_prob output.
    let ins = [
        x("scores", &[3, 4], values(12, 49, 0.1, 2.0)),
        int("labels", &[3], vec![1, 0, 3]),
        x("weights", &[4], vec![0.5, 2.0, 1.5, 1.0]),
    ];
    check_grad(&ins, &|b, n| {
        let outs = b.node("SoftmaxCrossEntropyLoss", &[&n[0], &n[1], &n[2]], 2, &[]);
        let s = b.op("ReduceMean", &[&outs[1]], &[("keepdims", Attr::Int(0))]);
        b.op("Add", &[&outs[0], &s], &[])
    });
    // Only the log-probabilities used: the loss output has no gradient.
    let ins = [x("scores", &[2, 3], values(6, 45, 0.1, 2.0)), int("labels", &[2], vec![1, 2])];
    check_grad(&ins, &|b, n| b.node("SoftmaxCrossEntropyLoss", &[&n[0], &n[1]], 2, &[]).remove(1));
}

#[test]
fn negative_log_likelihood_every_reduction_weights_and_ignore_index() {
    for (ins, attrs) in cases() {
        assert_eq!(check_grad(&ins, &loss("NegativeLogLikelihoodLoss", attrs.clone())), Precision::F64);
        // As F.cross_entropy is often exported: LogSoftmax then NLL.
        check_grad(&ins, &move |b, n| {
            let lp = b.op("LogSoftmax", &[&n[0]], &[("axis", Attr::Int(1))]);
            let mut refs: Vec<&str> = n.iter().map(String::as_str).collect();
            refs[0] = &lp;
            b.op("NegativeLogLikelihoodLoss", &refs, &attrs)
        });
    }
}

#[test]
fn trained_class_weights_get_their_gradient() {
    // The cases above with the weights differentiated too (every case that has them).
    for op in ["SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"] {
        for (mut ins, attrs) in cases() {
            if ins.len() < 3 {
                continue;
            }
            ins[2].wrt = true;
            assert_eq!(check_grad(&ins, &loss(op, attrs)), Precision::F64, "{op}");
        }
        // Spatial scores with weights, mean over the kept positions.
        let ins = vec![
            x("scores", &[2, 4, 3], values(24, 48, 0.1, 2.0)),
            int("labels", &[2, 3], vec![3, -1, 0, 1, 1, 2]),
            x("weights", &[4], vec![0.5, 2.0, 1.5, 1.0]),
        ];
        check_grad(&ins, &loss(op, vec![("ignore_index", Attr::Int(-1))]));
    }
}

#[test]
fn scores_of_unknown_rank() {
    use memeguard_onnx::{Tensor, dims};
    use memeguard_training::autodiff::gradcheck::{GradCheck, check};
    for op in ["SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"] {
        let mut b = GraphBuilder::new("g");
        let x = b.input("scores", DataType::Double, &dims![2, 4, 3]);
        let target = b.input("target", DataType::Int64, &dims!["n"]);
        let labels = b.input("labels", DataType::Int64, &dims![2, 3]);
        let r = b.op("Reshape", &[&x, &target], &[]);
        let y = b.op(op, &[&r, &labels], &[reduction("none")]);
        let feeds = vec![
            ("scores".to_string(), Tensor::f64(vec![2, 4, 3], values(24, 47, 0.1, 2.0))),
            ("target".to_string(), Tensor::i64(vec![3], vec![2, 4, 3])),
            ("labels".to_string(), Tensor::i64(vec![2, 3], vec![3, 1, 0, 2, 2, 1])),
        ];
        check(&GradCheck::f64(b.build(), &y, feeds, &["scores"])).unwrap_or_else(|e| panic!("{op}: {e}"));
    }
}
