//! Every model's training graph builds with the autodiff, loads in ONNX Runtime and
//! gives finite gradients of the right shapes for every trainable parameter; the
//! transformer encoders' and the DINO head's gradients match finite differences.

mod models_support;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Attr, DataType, Dim, GraphBuilder, Tensor, check_model, dims};
use memeguard_training::autodiff::differentiate;
use memeguard_training::autodiff::gradcheck::{GradCheck, check};
use memeguard_training::graph_spec::{Mode, ModelGraph};
use memeguard_training::models::input::{ATTENTION_MASK, BATCH, INPUT_IDS, PIXEL_VALUES};
use memeguard_training::models::*;
use models_support::{Lcg, pixels, run, tokens};
use ort::value::DynValue;

/// A model in Train mode with a scalar loss `mean(output²)` appended.
struct Case {
    name: &'static str,
    graph: ModelGraph,
    output: String,
    inputs: fn() -> Vec<(&'static str, DynValue)>,
}

fn with_loss(mut net: Net, output: &str) -> (ModelGraph, String) {
    let squared = net.b.op("Mul", &[output, output], &[]);
    let loss = net.b.op("ReduceMean", &[&squared], &[("keepdims", Attr::Int(0))]);
    (net.finish(&[GraphOutput::f32(&loss, "loss", vec![])]), output.to_string())
}

fn image_case(name: &'static str, cfg: ImageEncoderConfig) -> Case {
    let mut net = Net::new(name, Mode::Train, 1);
    let x = image_input(&mut net, cfg.image_size());
    let f = cfg.build(&mut net, "image", &x);
    let (graph, output) = with_loss(net, &f);
    Case { name, graph, output, inputs: || vec![(PIXEL_VALUES, pixels(2, 32, 3))] }
}

fn text_inputs_value() -> Vec<(&'static str, DynValue)> {
    let (ids, mask) = tokens(&[3, 6], 6, 40, 2);
    vec![(INPUT_IDS, ids), (ATTENTION_MASK, mask)]
}

fn all_inputs() -> Vec<(&'static str, DynValue)> {
    let mut v = vec![(PIXEL_VALUES, pixels(2, 32, 3))];
    v.extend(text_inputs_value());
    v
}

fn heads_case() -> Case {
    let mut net = Net::new("heads", Mode::Train, 2);
    let x = net.b.input("features", DataType::Float, &dims![BATCH, 12]);
    let d = dino_head(&mut net, "dino", &x, 12, &DinoHeadConfig::tiny());
    let (graph, output) = with_loss(net, &d);
    Case { name: "dino head", graph, output, inputs: feature_inputs }
}

fn feature_inputs() -> Vec<(&'static str, DynValue)> {
    models_support::init_ort();
    let mut rng = Lcg(4);
    let v: Vec<f32> = (0..36).map(|_| rng.uniform()).collect();
    vec![("features", ort::value::Tensor::from_array((vec![3i64, 12], v)).unwrap().into_dyn())]
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        image_case("resnet-tiny", ImageEncoderConfig::parse("resnet-tiny").unwrap()),
        image_case("vit-tiny", ImageEncoderConfig::parse("vit-tiny").unwrap()),
        heads_case(),
    ];
    let mut net = Net::new("projection", Mode::Train, 3);
    let x = net.b.input("features", DataType::Float, &dims![BATCH, 12]);
    let p = projection_head(&mut net, "proj", &x, 12, 8, 0.1);
    let (graph, output) = with_loss(net, &p);
    cases.push(Case { name: "projection head", graph, output, inputs: feature_inputs });
    let text = TextConfig { dropout: 0.1, ..TextConfig::tiny(40, 8) };
    for (name, image, text, head) in [
        ("text classifier", None, Some(text.clone()), HeadConfig::default()),
        ("concat classifier", Some("resnet-tiny"), Some(text.clone()), HeadConfig::default()),
        (
            "cross classifier",
            Some("vit-tiny"),
            Some(text.clone()),
            HeadConfig::HateClipper(HateClipperHead::new(Interaction::Cross)),
        ),
        (
            "align classifier",
            Some("resnet-tiny"),
            Some(text),
            HeadConfig::HateClipper(HateClipperHead::new(Interaction::Align)),
        ),
    ] {
        let cfg = ClassifierConfig {
            image: image.map(|s| ImageEncoderConfig::parse(s).unwrap().into()),
            text: text.map(Into::into),
            head,
        };
        let mut graph = build_classifier(&cfg, Mode::Train, Weights::Random { seed: 4 }).unwrap();
        // loss = mean(logits²) on the classifier's `logits` output.
        let mut b = GraphBuilder::from_model(&graph.model);
        let squared = b.op("Mul", &["logits", "logits"], &[]);
        let loss = b.op("ReduceMean", &[&squared], &[("keepdims", Attr::Int(0))]);
        b.named_output(&loss, "loss", DataType::Float, &[]);
        graph.model = b.build();
        cases.push(Case { name, graph, output: "logits".into(), inputs: all_inputs });
    }
    cases
}

/// Appends each gradient as a graph output so a run returns it.
fn with_gradient_outputs(
    model: &ModelProto,
    graph: &ModelGraph,
    grads: &std::collections::BTreeMap<String, String>,
) -> ModelProto {
    let mut b = GraphBuilder::from_model(model);
    let inits = &graph.model.graph.as_ref().unwrap().initializer;
    for (param, grad) in grads {
        let dims: Vec<Dim> =
            inits.iter().find(|t| t.name() == param).unwrap().dims.iter().map(|&d| Dim::Known(d)).collect();
        b.output(grad, DataType::Float, &dims);
    }
    b.build()
}

#[test]
fn training_graphs_build_run_and_give_finite_gradients() {
    for case in cases() {
        let trainable = case.graph.trainable();
        let diff =
            differentiate(&case.graph.model, "loss", &trainable).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(diff.grads.len(), trainable.len(), "{}", case.name);
        let model = with_gradient_outputs(&diff.model, &case.graph, &diff.grads);
        check_model(&model, true).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let out = run(&model, (case.inputs)());
        let inits = &case.graph.model.graph.as_ref().unwrap().initializer;
        let mut total = 0.0f64;
        for (param, grad) in &diff.grads {
            let (shape, values) = &out[grad];
            assert_eq!(shape, &inits.iter().find(|t| t.name() == param).unwrap().dims, "{}: {param}", case.name);
            total += values.iter().map(|v| v.abs() as f64).sum::<f64>();
        }
        assert!(total > 0.0, "{}: every gradient is zero", case.name);
    }
}

/// The DINO head's gradients (through L2 normalisation and the weight-normalised last
/// layer) against central finite differences.
#[test]
fn dino_head_gradients_match_finite_differences() {
    let mut case = heads_case();
    // Weights of order 1, as after training: at the initial σ = 0.02 the bottleneck
    // features are so small that a float32 finite-difference step of 1e-2 is far
    // outside the linear regime of the normalisation.
    spread(&mut case.graph);
    let mut rng = Lcg(11);
    let features = Tensor::f32(vec![3, 12], (0..36).map(|_| rng.uniform()).collect());
    let wrt: Vec<String> = case.graph.trainable();
    let wrt: Vec<&str> = wrt.iter().map(String::as_str).collect();
    let spec = GradCheck::f32(case.graph.model.clone(), &case.output, vec![("features".into(), features)], &wrt);
    let report = check(&spec).unwrap_or_else(|e| panic!("{e}"));
    assert!(report.checked > 0);
}

/// Sets every trainable parameter to uniform(−1, 1) values.
fn spread(graph: &mut ModelGraph) {
    let mut rng = Lcg(5);
    let names = graph.trainable();
    for t in &mut graph.model.graph.as_mut().unwrap().initializer {
        let name = t.name().to_string();
        if names.contains(&name) {
            let n = t.dims.iter().product::<i64>() as usize;
            *t = Tensor::f32(t.dims.clone(), (0..n).map(|_| rng.uniform()).collect()).to_proto(&name);
        }
    }
}

/// Gradient rules read ranks from shape inference: every value of every model graph
/// must have a known shape (symbolic batch and length dimensions are fine).
#[test]
fn every_value_has_a_shape_known_to_inference() {
    for case in cases() {
        let shapes = memeguard_onnx::shape::infer_shapes(&case.graph.model);
        let graph = case.graph.model.graph.as_ref().unwrap();
        let unknown: Vec<String> = graph
            .node
            .iter()
            .flat_map(|n| n.output.iter().map(move |o| format!("{o} ({})", n.op_type())))
            .filter(|o| shapes.get(o.split(' ').next().unwrap()).and_then(|t| t.dims.clone()).is_none())
            .collect();
        assert!(unknown.is_empty(), "{}: no shape for {unknown:?}", case.name);
    }
}

/// Gradients of small transformer encoders against central finite differences, for
/// the parameters whose gradients pass through the less common ops: the class token
/// (Pad, Gather), position embeddings (Gather by position ids; the bicubic resize
/// MatMul, Slice and Concat when the input size differs), token embeddings (Gather),
/// and the attention's fused qkv bias (Split, Softmax).
#[test]
fn transformer_encoder_gradients_match_finite_differences() {
    let vit_cfg =
        VitConfig { image_size: 16, patch_size: 8, dim: 8, depth: 1, heads: 2, mlp_ratio: 2, eps: 1e-6, dropout: 0.0 };
    let text_cfg =
        TextConfig { dim: 8, depth: 1, heads: 2, mlp_ratio: 2, pooling: Pooling::Mean, ..TextConfig::tiny(10, 6) };
    let mut net = Net::new("encoders", Mode::Train, 6);
    let pixels = net.b.input("pixels", DataType::Float, &dims![BATCH, 3, 24, 24]);
    let (ids, mask) = text_inputs(&mut net);
    let image = vit_at_input_size(&mut net, &vit_cfg, "image", &pixels, 24);
    let text = text_encoder(&mut net, &text_cfg, "text", &ids, &mask);
    let both = net.b.op("Concat", &[&image, &text], &[("axis", Attr::Int(-1))]);
    let mut graph = net.finish(&[GraphOutput::f32(&both, "features", dims![BATCH, 16])]);
    spread(&mut graph);
    let mut rng = Lcg(3);
    let pixels = Tensor::f32(vec![2, 3, 24, 24], (0..2 * 3 * 576).map(|_| rng.uniform()).collect());
    let ids = Tensor::i64(vec![2, 6], vec![2, 5, 9, 1, 0, 0, 3, 3, 7, 8, 4, 6]);
    let mask = Tensor::i64(vec![2, 6], vec![1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
    let wrt = [
        "image.cls_token",
        "image.pos_embed",
        "image.blocks.0.attn.qkv.bias",
        "image.norm.weight",
        "text.token_embed",
        "text.pos_embed",
        "text.blocks.0.attn.qkv.bias",
        "text.blocks.0.mlp.fc2.bias",
    ];
    let inputs =
        vec![("pixels".to_string(), pixels), ("input_ids".to_string(), ids), ("attention_mask".to_string(), mask)];
    let spec = GradCheck::f32(graph.model.clone(), &both, inputs, &wrt);
    let report = check(&spec).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.checked, 8 + 5 * 8 + 24 + 8 + 10 * 8 + 6 * 8 + 24 + 8, "{report:?}");
}
