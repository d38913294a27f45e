//! The models' forward passes in ONNX Runtime against independent numpy
//! implementations (`models_support/reference.py`, float64), with every parameter,
//! bias, norm weight and running statistic set to non-trivial values first.

mod models_support;

use memeguard_onnx::{DataType, Tensor, TensorData, dims};
use memeguard_training::graph_spec::{Mode, ModelGraph};
use memeguard_training::models::fusion::{concat_head, hate_clipper_head};
use memeguard_training::models::input::BATCH;
use memeguard_training::models::resnet::Block;
use memeguard_training::models::*;
use models_support::{Lcg, init_ort, run};
use ort::value::DynValue;
use serde_json::{Value, json};

const REFERENCE: &str = include_str!("models_support/reference.py");

/// Sets every norm weight, bias, running statistic and weight-norm magnitude to
/// random values (the initial 0/1 values would hide a swapped or missing term).
fn randomize(graph: &mut ModelGraph, seed: u64) {
    let mut rng = Lcg(seed);
    let names: Vec<String> =
        graph.params.iter().map(|p| p.name.clone()).chain(graph.buffers.iter().map(|b| b.name.clone())).collect();
    for t in &mut graph.model.graph.as_mut().unwrap().initializer {
        let name = t.name().to_string();
        if !names.contains(&name) || (t.dims.len() >= 2 && !name.ends_with("cls_token") && !name.ends_with("weight_g"))
        {
            continue;
        }
        let positive = name.ends_with("running_var") || name.ends_with("weight_g") || name.ends_with(".weight");
        let n = t.dims.iter().product::<i64>() as usize;
        let values: Vec<f32> =
            (0..n).map(|_| if positive { 1.0 + 0.4 * rng.uniform() } else { 0.3 * rng.uniform() }).collect();
        *t = Tensor::f32(t.dims.clone(), values).to_proto(&name);
    }
}

fn tensor_json(t: &Tensor) -> Value {
    json!({ "dims": t.dims, "data": t.to_f64_vec() })
}

fn to_ort(t: &Tensor) -> DynValue {
    init_ort();
    let shape = t.dims.clone();
    match &t.data {
        TensorData::F32(v) => ort::value::Tensor::from_array((shape, v.clone())).unwrap().into_dyn(),
        TensorData::I64(v) => ort::value::Tensor::from_array((shape, v.clone())).unwrap().into_dyn(),
        TensorData::U8(v) => ort::value::Tensor::from_array((shape, v.clone())).unwrap().into_dyn(),
        other => panic!("unsupported input type {:?}", other.data_type()),
    }
}

/// Runs `graph` in ONNX Runtime and the numpy reference `case` on the same values,
/// and compares the outputs named in `outputs` (all of the reference's by default).
fn check_against_numpy(case: &str, config: Value, graph: &ModelGraph, inputs: &[(&str, Tensor)]) {
    let initializers = &graph.model.graph.as_ref().unwrap().initializer;
    let mut tensors = serde_json::Map::new();
    for name in graph.params.iter().map(|p| &p.name).chain(graph.buffers.iter().map(|b| &b.name)) {
        let proto = initializers.iter().find(|t| t.name() == name).unwrap();
        tensors.insert(name.clone(), tensor_json(&Tensor::from_proto(proto).unwrap()));
    }
    let input_json: serde_json::Map<String, Value> =
        inputs.iter().map(|(k, t)| (k.to_string(), tensor_json(t))).collect();
    let case_json = json!({ "case": case, "config": config, "tensors": tensors, "inputs": input_json });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.json");
    std::fs::write(&path, case_json.to_string()).unwrap();
    let stdout =
        memeguard_onnx::pycheck::run_python(REFERENCE, &[path.to_str().unwrap()]).unwrap_or_else(|e| panic!("{e}"));
    let want: serde_json::Map<String, Value> = serde_json::from_str(&stdout).unwrap();

    let got = run(&graph.model, inputs.iter().map(|(k, t)| (*k, to_ort(t))).collect());
    assert!(!want.is_empty());
    for (name, values) in &want {
        let want: Vec<f64> = values.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let (_, got) = got.get(name).unwrap_or_else(|| panic!("{case}: ONNX Runtime has no output `{name}`"));
        assert_eq!(got.len(), want.len(), "{case}/{name}");
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (*g as f64 - w).abs() <= 1e-4 * scale + 1e-5,
                "{case}/{name}[{i}]: ONNX Runtime {g}, numpy {w} (scale {scale})"
            );
        }
    }
}

fn pixels(n: usize, size: usize, seed: u64) -> Tensor {
    let mut rng = Lcg(seed);
    Tensor::u8(
        vec![n as i64, size as i64, size as i64, 3],
        (0..n * size * size * 3).map(|_| rng.next_u32() as u8).collect(),
    )
}

fn floats(dims: &[i64], seed: u64) -> Tensor {
    let mut rng = Lcg(seed);
    Tensor::f32(dims.to_vec(), (0..dims.iter().product::<i64>()).map(|_| rng.uniform()).collect())
}

fn resnet_graph(cfg: &ResNetConfig, mode: Mode, batch_norm: TrainBatchNorm) -> ModelGraph {
    let mut net = Net::new("resnet", mode, 21);
    net.train_batch_norm = batch_norm;
    let x = image_input(&mut net, cfg.image_size);
    let f = resnet(&mut net, cfg, "image", &x);
    let mut graph = net.finish(&[GraphOutput::f32(&f, "features", dims![BATCH, cfg.feature_dim() as i64])]);
    randomize(&mut graph, 5);
    graph
}

#[test]
fn resnet_inference_matches_numpy() {
    let basic = ResNetConfig { block: Block::Basic, layers: [1, 1, 1, 1], width: 4, image_size: 32 };
    let bottleneck = ResNetConfig { block: Block::Bottleneck, layers: [2, 1, 1, 1], width: 4, image_size: 40 };
    for cfg in [basic, bottleneck] {
        let graph = resnet_graph(&cfg, Mode::Infer, TrainBatchNorm::default());
        check_against_numpy("resnet", json!(cfg), &graph, &[("pixel_values", pixels(2, cfg.image_size, 1))]);
    }
}

#[test]
fn resnet_training_mode_matches_numpy_batch_statistics_and_updates() {
    let cfg = ResNetConfig { block: Block::Basic, layers: [1, 1, 1, 1], width: 4, image_size: 32 };
    // Decomposed (PyTorch's unbiased running variance) and fused (ONNX's population one).
    for (case, kind) in [("resnet_train", TrainBatchNorm::Decomposed), ("resnet_train_fused", TrainBatchNorm::Fused)] {
        let graph = resnet_graph(&cfg, Mode::Train, kind);
        check_against_numpy(case, json!(cfg), &graph, &[("pixel_values", pixels(3, 32, 2))]);
    }
}

#[test]
fn vit_matches_numpy() {
    let cfg =
        VitConfig { image_size: 24, patch_size: 8, dim: 16, depth: 2, heads: 2, mlp_ratio: 2, eps: 1e-6, dropout: 0.0 };
    let mut net = Net::new("vit", Mode::Infer, 8);
    let x = image_input(&mut net, cfg.image_size);
    let f = vit(&mut net, &cfg, "image", &x);
    let mut graph = net.finish(&[GraphOutput::f32(&f, "features", dims![BATCH, 16])]);
    randomize(&mut graph, 6);
    check_against_numpy("vit", json!(cfg), &graph, &[("pixel_values", pixels(2, 24, 3))]);
}

#[test]
fn text_encoders_match_numpy_with_padding() {
    // Two encoders in one graph, sharing the inputs: composition under prefixes.
    let cfg = TextConfig { dim: 16, depth: 2, heads: 4, ..TextConfig::tiny(30, 10) };
    let mut net = Net::new("text", Mode::Infer, 9);
    let (ids, mask) = text_inputs(&mut net);
    let cls = text_encoder(&mut net, &TextConfig { pooling: Pooling::Cls, ..cfg.clone() }, "cls_text", &ids, &mask);
    let mean = text_encoder(&mut net, &TextConfig { pooling: Pooling::Mean, ..cfg.clone() }, "mean_text", &ids, &mask);
    let mut graph = net
        .finish(&[GraphOutput::f32(&cls, "cls", dims![BATCH, 16]), GraphOutput::f32(&mean, "mean", dims![BATCH, 16])]);
    randomize(&mut graph, 7);
    let lengths = [2usize, 7, 9];
    let mut rng = Lcg(4);
    let ids: Vec<i64> = lengths
        .iter()
        .flat_map(|&l| (0..9).map(move |t| (t, l)).collect::<Vec<_>>())
        .map(|(t, l)| if t < l { 1 + (rng.next_u32() % 29) as i64 } else { 0 })
        .collect();
    let mask: Vec<i64> = lengths.iter().flat_map(|&l| (0..9).map(move |t| (t < l) as i64)).collect();
    check_against_numpy(
        "text",
        json!(cfg),
        &graph,
        &[("input_ids", Tensor::i64(vec![3, 9], ids)), ("attention_mask", Tensor::i64(vec![3, 9], mask))],
    );
}

#[test]
fn heads_match_numpy() {
    let mut net = Net::new("heads", Mode::Infer, 10);
    let image = net.b.input("image_features", DataType::Float, &dims![BATCH, 12]);
    let text = net.b.input("text_features", DataType::Float, &dims![BATCH, 10]);
    let dino_cfg = DinoHeadConfig { out_dim: 20, hidden_dim: 16, bottleneck_dim: 8, layers: 3 };
    let cross_cfg = HateClipperHead { map_dim: 4, pre_output_layers: 1, ..HateClipperHead::new(Interaction::Cross) };
    let align_cfg = HateClipperHead { map_dim: 4, pre_output_layers: 2, ..HateClipperHead::new(Interaction::Align) };
    let projection = projection_head(&mut net, "proj", &image, 12, 8, 0.1);
    let dino = dino_head(&mut net, "dino", &image, 12, &dino_cfg);
    let concat = concat_head(
        &mut net,
        "concat",
        (&image, 12),
        (&text, 10),
        &ConcatHead { proj_dim: 6, hidden_dim: 5, dropout: 0.1, feature_norm: false },
    );
    let cross = hate_clipper_head(&mut net, "cross", (&image, 12), (&text, 10), &cross_cfg);
    let align = hate_clipper_head(&mut net, "align", (&image, 12), (&text, 10), &align_cfg);
    let mut graph = net.finish(&[
        GraphOutput::f32(&projection, "projection", dims![BATCH, 8]),
        GraphOutput::f32(&dino, "dino", dims![BATCH, 20]),
        GraphOutput::f32(&concat, "concat_logit", dims![BATCH]),
        GraphOutput::f32(&cross, "cross_logit", dims![BATCH]),
        GraphOutput::f32(&align, "align_logit", dims![BATCH]),
    ]);
    randomize(&mut graph, 8);
    check_against_numpy(
        "heads",
        json!({ "dino_layers": 3, "cross_layers": 1, "align_layers": 2 }),
        &graph,
        &[("image_features", floats(&[3, 12], 1)), ("text_features", floats(&[3, 10], 2))],
    );
}
