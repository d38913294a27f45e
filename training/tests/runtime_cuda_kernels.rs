//! Every op of the built-in training graphs has a CUDA kernel in ONNX Runtime 1.31.1
//! (training/data/ort-1.31.1-cuda-kernels.tsv, read from the onnxruntime-gpu wheel by
//! scripts/cuda-kernel-table.sh). The op's version under opset 20 comes from the `onnx`
//! package's schemas, an independent source.

mod optim_fixtures;

use std::collections::BTreeMap;

use memeguard_onnx::proto::ModelProto;
use memeguard_training::autodiff::Options;
use memeguard_training::optim::{
    EmaPair, OptimizerConfig, OptimizerKind, build_ema_graph, build_step_graph, differentiate_step, ops_used,
};
use memeguard_training::runtime::CudaKernelTable;

/// The training graphs whose ops must run on CUDA. Models and objectives add their step
/// graphs here as they land.
fn training_graphs() -> Vec<(String, ModelProto)> {
    let configs = [
        OptimizerConfig::new(OptimizerKind::sgd()),
        OptimizerConfig::new(OptimizerKind::Sgd { momentum: 0.9, nesterov: true }),
        OptimizerConfig::new(OptimizerKind::adamw()).with_clipping(1.0).with_accumulation(2),
    ];
    let mut graphs = Vec::new();
    for config in configs {
        for (name, fixture) in [
            ("linreg", optim_fixtures::linear_regression(&[0.1, 0.2], 0.0, true)),
            ("mlp", optim_fixtures::mlp(2, 3, 0)),
        ] {
            let step = build_step_graph(&fixture.training(), &config).unwrap();
            graphs.push((format!("{name} {config:?}"), step.graph.model));
        }
    }
    let (classifier, loss) = optim_fixtures::mlp_classifier(4, 8, 3);
    let step = differentiate_step(&classifier, &loss, &OptimizerConfig::default(), &Options::default()).unwrap();
    graphs.push(("mlp classifier (autodiff)".into(), step.graph.model));
    let ema = build_ema_graph(&[EmaPair { teacher: "t".into(), student: "s".into(), dims: vec![2, 2] }]).unwrap();
    graphs.push(("ema".into(), ema.model));
    graphs
}

/// The since-version of each op's schema at opset 20, from `onnx.defs`.
fn schema_versions(ops: &[String]) -> BTreeMap<String, i64> {
    let script =
        "import sys, onnx.defs\nfor op in sys.argv[1:]:\n    print(op, onnx.defs.get_schema(op, 20, '').since_version)";
    let args: Vec<&str> = ops.iter().map(String::as_str).collect();
    let out = memeguard_onnx::pycheck::run_python(script, &args).unwrap();
    out.lines()
        .map(|l| {
            let (op, v) = l.split_once(' ').unwrap();
            (op.to_string(), v.parse().unwrap())
        })
        .collect()
}

#[test]
fn every_op_of_the_training_graphs_has_a_cuda_kernel() {
    let table = CudaKernelTable::builtin();
    let graphs = training_graphs();
    let mut all: Vec<String> = graphs.iter().flat_map(|(_, m)| ops_used(m)).collect();
    all.sort();
    all.dedup();
    let versions = schema_versions(&all);
    let mut problems = Vec::new();
    for (name, model) in &graphs {
        let ops = ops_used(model);
        let missing = table.missing(ops.iter().map(|op| (op.as_str(), versions[op])));
        if !missing.is_empty() {
            problems.push(format!("{name}: no CUDA kernel for {}", missing.join(", ")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(all.len() >= 10, "the check covers the ops used: {all:?}");
}

#[test]
fn an_op_without_a_cuda_kernel_is_named() {
    // Unique (opset 11) and Col2Im (opset 18) have CPU kernels only in ONNX Runtime 1.31.
    let table = CudaKernelTable::builtin();
    let versions = schema_versions(&["Unique".to_string(), "Col2Im".to_string(), "Relu".to_string()]);
    let missing = table.missing(versions.iter().map(|(op, v)| (op.as_str(), *v)));
    assert_eq!(missing, vec!["Col2Im (version 18)".to_string(), "Unique (version 11)".to_string()]);
}
