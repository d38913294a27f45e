//! Hugging Face folders built natively (`models::hf`) against what `transformers`
//! computes for them: the tiny random-weight fixtures in `fixtures/hf/` and their
//! `reference.safetensors` (`scripts/fixtures/make_hf_fixtures.py`). Also the folder
//! checks (missing / unexpected / misshapen tensors, unknown architectures), how much
//! trains, and that a Train graph differentiates.

mod models_support;

use std::path::{Path, PathBuf};

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Attr, DataType, Dim, GraphBuilder, dims};
use memeguard_training::autodiff::differentiate;
use memeguard_training::graph_spec::{Mode, ModelGraph};
use memeguard_training::models::hf::{HfModel, TowerOutputs};
use memeguard_training::models::input::{ATTENTION_MASK, BATCH, INPUT_IDS, SEQUENCE};
use memeguard_training::models::layers::l2_normalize;
use memeguard_training::models::{GraphOutput, Net, Trainable, text_inputs};
use models_support::{Outputs, init_ort, run};
use ort::value::DynValue;
use safetensors::SafeTensors;

/// Largest |ONNX Runtime − transformers| allowed (float32 on both sides).
const TOLERANCE: f32 = 1e-4;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf").join(name)
}

/// `reference.safetensors` of a fixture.
struct Reference(Vec<u8>);

impl Reference {
    fn open(name: &str) -> Self {
        Reference(std::fs::read(fixture(name).join("reference.safetensors")).expect("reference.safetensors"))
    }
    fn tensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.0).expect("a safetensors file")
    }
    fn has(&self, name: &str) -> bool {
        self.tensors().names().contains(&name)
    }
    fn f32(&self, name: &str) -> (Vec<i64>, Vec<f32>) {
        let t = self.tensors().tensor(name).unwrap_or_else(|e| panic!("reference `{name}`: {e}"));
        assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name}");
        let values = t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        (t.shape().iter().map(|&d| d as i64).collect(), values)
    }
    fn i64_value(&self, name: &str) -> DynValue {
        init_ort();
        let t = self.tensors().tensor(name).unwrap_or_else(|e| panic!("reference `{name}`: {e}"));
        assert_eq!(t.dtype(), safetensors::Dtype::I64, "{name}");
        let values: Vec<i64> = t.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
        let shape: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
        ort::value::Tensor::from_array((shape, values)).unwrap().into_dyn()
    }
    fn f32_value(&self, name: &str) -> DynValue {
        init_ort();
        let (shape, values) = self.f32(name);
        ort::value::Tensor::from_array((shape, values)).unwrap().into_dyn()
    }
    fn text_inputs(&self) -> Vec<(&'static str, DynValue)> {
        vec![(INPUT_IDS, self.i64_value("input_ids")), (ATTENTION_MASK, self.i64_value("attention_mask"))]
    }
}

/// Asserts `got[output]` matches `want` within [`TOLERANCE`]; returns the largest
/// difference.
fn compare(case: &str, got: &Outputs, output: &str, want: &(Vec<i64>, Vec<f32>)) -> f32 {
    let (shape, values) = got.get(output).unwrap_or_else(|| panic!("{case}: no output `{output}`"));
    assert_eq!(shape, &want.0, "{case}/{output}: shape");
    let worst = values.iter().zip(&want.1).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
    eprintln!("{case}/{output}: max |ONNX Runtime − transformers| = {worst:.2e}");
    assert!(worst <= TOLERANCE, "{case}/{output}: max abs difference {worst:e} > {TOLERANCE:e}");
    worst
}

fn open(name: &str) -> HfModel {
    HfModel::open(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn known(dims: &[usize]) -> Vec<Dim> {
    dims.iter().map(|&d| Dim::Known(d as i64)).collect()
}

/// `[N, 3, 32, 32]`: the fixtures' normalised pixels.
fn image_dims() -> Vec<Dim> {
    dims![BATCH, 3, 32, 32]
}

fn batch_by(dim: usize) -> Vec<Dim> {
    dims![BATCH, dim as i64]
}

/// Declares a tower's outputs under `{name}_…`: last hidden state, pooled, and the
/// L2-normalised projection (what CLIPModel reports as `*_embeds`).
fn tower_outputs(net: &mut Net, name: &str, out: &TowerOutputs, tokens: Dim, width: usize) -> Vec<GraphOutput> {
    let mut outputs = vec![
        GraphOutput::f32(
            &out.last_hidden_state,
            &format!("{name}_last_hidden_state"),
            vec![Dim::Sym(BATCH.into()), tokens, Dim::Known(width as i64)],
        ),
        GraphOutput::f32(&out.pooled.value, &format!("{name}_pooler_output"), batch_by(out.pooled.dim)),
    ];
    if let Some(p) = &out.projected {
        outputs.push(GraphOutput::f32(&p.value, &format!("{name}_projected"), batch_by(p.dim)));
        let embeds = l2_normalize(net, &p.value);
        outputs.push(GraphOutput::f32(&embeds, &format!("{name}_embeds"), batch_by(p.dim)));
    }
    outputs
}

/// Both CLIP towers on the graph inputs `pixel_values`, `input_ids` and `attention_mask`.
fn clip_net(model: &HfModel, mode: Mode, trainable: Trainable) -> (Net, TowerOutputs, TowerOutputs) {
    let mut net = Net::new("clip", mode, 0);
    let pixels = net.b.input("pixel_values", DataType::Float, &image_dims());
    let (ids, mask) = text_inputs(&mut net);
    let vision = model.attach_vision_outputs(&mut net, "image", &pixels, trainable).unwrap();
    let text = model.attach_text_outputs(&mut net, "text", &ids, &mask, trainable).unwrap();
    (net, vision, text)
}

#[test]
fn clip_towers_match_transformers() {
    let model = open("clip-tiny");
    assert!(model.has_vision() && model.has_text());
    assert_eq!((model.model_type(), model.image_size(), model.max_text_length()), ("clip", Some(32), Some(77)));
    let reference = Reference::open("clip-tiny");

    let (mut net, vision, text) = clip_net(&model, Mode::Infer, Trainable::Frozen);
    assert_eq!(vision.projected.as_ref().map(|p| p.dim), Some(16));
    assert_eq!(model.vision_feature_dim(), Some(16));
    let mut outputs = tower_outputs(&mut net, "vision", &vision, Dim::Known(17), 32);
    outputs.extend(tower_outputs(&mut net, "text", &text, Dim::Sym(SEQUENCE.into()), 32));
    let graph = net.finish(&outputs);
    assert!(graph.trainable().is_empty(), "frozen towers train nothing");

    let mut inputs = reference.text_inputs();
    inputs.push(("pixel_values", reference.f32_value("pixel_values")));
    let got = run(&graph.model, inputs);
    // transformers 5 reports `CLIPModel`'s `*_model_output.pooler_output` after the
    // projection (`get_*_features` overwrite it), so the fixture's `*_pooler_output` are
    // the projected features before L2 normalisation ([N, 16]), not the [N, 32] pooled
    // states. Ours are checked through them: the projection is a bias-free linear map of
    // the pooled state.
    for (ours, theirs) in [
        ("vision_embeds", "image_embeds"),
        ("vision_projected", "vision_pooler_output"),
        ("vision_last_hidden_state", "vision_last_hidden_state"),
        ("text_embeds", "text_embeds"),
        ("text_projected", "text_pooler_output"),
        ("text_last_hidden_state", "text_last_hidden_state"),
    ] {
        compare("clip-tiny", &got, ours, &reference.f32(theirs));
    }
}

#[test]
fn bert_family_encoders_match_transformers() {
    for (name, model_type, pooler, max_length) in [
        ("bert-tiny", "bert", true, 64),
        ("roberta-tiny", "roberta", true, 33),
        ("distilbert-tiny", "distilbert", false, 64),
    ] {
        let model = open(name);
        assert!(model.has_text() && !model.has_vision(), "{name}");
        assert_eq!(
            (model.model_type(), model.max_text_length(), model.image_size()),
            (model_type, Some(max_length), None)
        );
        let reference = Reference::open(name);
        assert_eq!(reference.has("pooler_output"), pooler, "{name}: fixture");

        let mut net = Net::new(name, Mode::Infer, 0);
        let (ids, mask) = text_inputs(&mut net);
        let text = model.attach_text_outputs(&mut net, "text", &ids, &mask, Trainable::All).unwrap();
        let features = text.features();
        assert_eq!(features, text.pooled, "{name}: BERT-family features are the pooled output");
        let outputs = tower_outputs(&mut net, "text", &text, Dim::Sym(SEQUENCE.into()), 32);
        let graph = net.finish(&outputs);
        let got = run(&graph.model, reference.text_inputs());
        let want_hidden = reference.f32("last_hidden_state");
        compare(name, &got, "text_last_hidden_state", &want_hidden);
        if pooler {
            compare(name, &got, "text_pooler_output", &reference.f32("pooler_output"));
        } else {
            // DistilBERT pools the first token's hidden state.
            let (dims, values) = &want_hidden;
            let (n, l, d) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
            let first: Vec<f32> = (0..n).flat_map(|i| values[i * l * d..i * l * d + d].to_vec()).collect();
            compare(name, &got, "text_pooler_output", &(vec![n as i64, d as i64], first));
        }
    }
}

/// One stored tensor: name, element type, shape, little-endian bytes.
type Stored = (String, safetensors::Dtype, Vec<usize>, Vec<u8>);

/// The tensors of fixture `name`'s `model.safetensors`.
fn read_tensors(name: &str) -> Vec<Stored> {
    let bytes = std::fs::read(fixture(name).join("model.safetensors")).unwrap();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    file.tensors().into_iter().map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec())).collect()
}

/// A temporary folder with fixture `name`'s config.json and `tensors`, in one
/// `model.safetensors` or, with `shards > 1`, in that many shards and their index.
fn write_folder(name: &str, tensors: &[Stored], shards: usize) -> tempfile::TempDir {
    let config = std::fs::read_to_string(fixture(name).join("config.json")).unwrap();
    write_folder_with_config(&config, tensors, shards)
}

/// [`write_folder`] with the text of `config.json`.
fn write_folder_with_config(config: &str, tensors: &[Stored], shards: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), config).unwrap();
    let mut weight_map = serde_json::Map::new();
    for shard in 0..shards {
        let file = if shards == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{shards:05}.safetensors", shard + 1)
        };
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .skip(shard)
            .step_by(shards)
            .map(|(n, dt, shape, data)| {
                weight_map.insert(n.clone(), file.clone().into());
                (n.clone(), safetensors::tensor::TensorView::new(*dt, shape.clone(), data).unwrap())
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.path().join(&file)).unwrap();
    }
    if shards > 1 {
        let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
        std::fs::write(dir.path().join("model.safetensors.index.json"), index.to_string()).unwrap();
    }
    dir
}

/// A copy of fixture `name` in a temporary folder whose weights `edit` rewrites.
fn edited_copy(name: &str, edit: impl FnOnce(&mut Vec<Stored>)) -> tempfile::TempDir {
    let mut tensors = read_tensors(name);
    edit(&mut tensors);
    write_folder(name, &tensors, 1)
}

/// A CLIP folder stored in bfloat16 over three shards reads as the same model stored
/// in float32 with those values; and stays close to the float32 original.
#[test]
fn sharded_bfloat16_folders_read_as_their_float32_values() {
    let tensors = read_tensors("clip-tiny");
    assert!(tensors.iter().all(|t| t.1 == safetensors::Dtype::F32));
    // bfloat16 is the high half of a float32: keep it, or zero the low half.
    let halves = |keep_low: bool| -> Vec<Stored> {
        tensors
            .iter()
            .map(|(n, _, shape, data)| {
                let (dtype, bytes) = if keep_low {
                    (safetensors::Dtype::F32, data.chunks_exact(4).flat_map(|c| [0, 0, c[2], c[3]]).collect())
                } else {
                    (safetensors::Dtype::BF16, data.chunks_exact(4).flat_map(|c| [c[2], c[3]]).collect())
                };
                (n.clone(), dtype, shape.clone(), bytes)
            })
            .collect()
    };
    let sharded = write_folder("clip-tiny", &halves(false), 3);
    assert!(sharded.path().join("model-00003-of-00003.safetensors").is_file());
    let truncated = write_folder("clip-tiny", &halves(true), 1);
    let reference = Reference::open("clip-tiny");
    let embeds = |dir: &Path| {
        let model = HfModel::open(dir).unwrap_or_else(|e| panic!("{e}"));
        let (mut net, vision, text) = clip_net(&model, Mode::Infer, Trainable::Frozen);
        let outputs = [&vision, &text].map(|t| t.projected.clone().unwrap());
        let normalised: Vec<String> = outputs.iter().map(|p| l2_normalize(&mut net, &p.value)).collect();
        let graph = net.finish(&[
            GraphOutput::f32(&normalised[0], "image_embeds", batch_by(16)),
            GraphOutput::f32(&normalised[1], "text_embeds", batch_by(16)),
        ]);
        let mut inputs = reference.text_inputs();
        inputs.push(("pixel_values", reference.f32_value("pixel_values")));
        run(&graph.model, inputs)
    };
    let (from_bf16, from_f32) = (embeds(sharded.path()), embeds(truncated.path()));
    for output in ["image_embeds", "text_embeds"] {
        assert_eq!(from_bf16[output], from_f32[output], "{output}");
        let want = reference.f32(output);
        let worst = from_bf16[output].1.iter().zip(&want.1).map(|(g, w)| (g - w).abs()).fold(0.0f32, f32::max);
        assert!(worst < 2e-2, "{output}: bfloat16 weights moved the embeddings by {worst}");
    }
}

#[test]
fn missing_unexpected_and_misshapen_tensors_are_listed_in_one_error() {
    let dir = edited_copy("clip-tiny", |tensors| {
        tensors.retain(|(n, ..)| n != "text_model.final_layer_norm.bias");
        let misshapen = tensors.iter_mut().find(|(n, ..)| n == "visual_projection.weight").unwrap();
        misshapen.2 = vec![32, 16];
        tensors.push(("text_model.surprise".into(), safetensors::Dtype::F32, vec![1], vec![0; 4]));
    });
    let err = HfModel::open(dir.path()).unwrap_err().to_string();
    for part in [
        "model_type `clip`",
        "missing (1): text_model.final_layer_norm.bias [32]",
        "wrong shape (1): visual_projection.weight: expected [16, 32], found [32, 16]",
        "unexpected (1): text_model.surprise [1]",
    ] {
        assert!(err.contains(part), "`{part}` not in:\n{err}");
    }

    // Task-head tensors, stored buffers and a `bert.` prefix are fine.
    let dir = edited_copy("bert-tiny", |tensors| {
        for (name, ..) in tensors.iter_mut() {
            *name = format!("bert.{name}");
        }
        tensors.push(("bert.embeddings.position_ids".into(), safetensors::Dtype::I64, vec![1, 2], vec![0; 16]));
        tensors.push(("cls.predictions.bias".into(), safetensors::Dtype::F32, vec![2], vec![0; 8]));
    });
    let model = HfModel::open(dir.path()).unwrap();
    let mut net = Net::hollow("bert", Mode::Infer);
    let (ids, mask) = text_inputs(&mut net);
    model.attach_text(&mut net, "text", &ids, &mask, Trainable::All).unwrap();
    assert!(net.params().iter().any(|p| p.name == "text.embeddings.word_embeddings.weight"));
}

#[test]
fn unknown_architectures_and_non_folders_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "llama", "hidden_size": 8}"#).unwrap();
    let err = HfModel::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model_type `llama` is not supported"), "{err}");
    assert!(err.contains("clip, clip_vision_model, clip_text_model, bert, distilbert, roberta"), "{err}");

    let err = HfModel::open(&dir.path().join("nowhere")).unwrap_err().to_string();
    assert!(err.contains("config.json"), "{err}");

    std::fs::copy(fixture("bert-tiny/config.json"), dir.path().join("config.json")).unwrap();
    let err = HfModel::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");

    let bert = open("bert-tiny");
    let mut net = Net::hollow("g", Mode::Infer);
    let pixels = net.b.input("pixels", DataType::Float, &image_dims());
    let err = bert.attach_vision(&mut net, "image", &pixels, Trainable::All).unwrap_err().to_string();
    assert!(err.contains("no vision tower"), "{err}");

    let clip = open("clip-tiny");
    let pixels = net.b.input("pixels_64", DataType::Float, &dims![BATCH, 3, 64, 64]);
    let err = clip.attach_vision(&mut net, "image", &pixels, Trainable::All).unwrap_err().to_string();
    assert!(err.contains("takes [N, 3, 32, 32]"), "{err}");
}

#[test]
fn last_blocks_train_only_the_last_block_and_the_tail() {
    let model = open("bert-tiny");
    let mut net = Net::hollow("bert", Mode::Train);
    let (ids, mask) = text_inputs(&mut net);
    model.attach_text(&mut net, "text", &ids, &mask, Trainable::LastBlocks(1)).unwrap();
    let trainable: Vec<&str> = net.params().iter().filter(|p| p.trainable).map(|p| p.name.as_str()).collect();
    let expected: Vec<String> = [
        "attention.self.query.weight",
        "attention.self.query.bias",
        "attention.self.key.weight",
        "attention.self.key.bias",
        "attention.self.value.weight",
        "attention.self.value.bias",
        "attention.output.dense.weight",
        "attention.output.dense.bias",
        "attention.output.LayerNorm.weight",
        "attention.output.LayerNorm.bias",
        "intermediate.dense.weight",
        "intermediate.dense.bias",
        "output.dense.weight",
        "output.dense.bias",
        "output.LayerNorm.weight",
        "output.LayerNorm.bias",
    ]
    .iter()
    .map(|n| format!("text.encoder.layer.1.{n}"))
    .chain(["text.pooler.dense.weight".to_string(), "text.pooler.dense.bias".to_string()])
    .collect();
    let mut sorted = trainable.clone();
    sorted.sort_unstable();
    let mut want: Vec<&str> = expected.iter().map(String::as_str).collect();
    want.sort_unstable();
    assert_eq!(sorted, want);

    let model = open("clip-tiny");
    let mut net = Net::hollow("clip", Mode::Train);
    let pixels = net.b.input("pixels", DataType::Float, &image_dims());
    model.attach_vision(&mut net, "image", &pixels, Trainable::LastBlocks(1)).unwrap();
    let trainable: Vec<&str> = net.params().iter().filter(|p| p.trainable).map(|p| p.name.as_str()).collect();
    assert!(trainable.iter().all(|n| n.starts_with("image.vision_model.encoder.layers.1.")
        || n.starts_with("image.vision_model.post_layernorm.")
        || *n == "image.visual_projection.weight"));
    assert!(trainable.contains(&"image.visual_projection.weight"));
    assert!(trainable.contains(&"image.vision_model.encoder.layers.1.mlp.fc2.bias"));
}

/// The graph the trainer rebuilds for export ([`Weights::Hollow`]) has the parameters
/// of the graph it trained: same names, shapes, order, and flags.
#[test]
fn hollow_graphs_have_the_loaded_graphs_parameters() {
    for name in ["clip-tiny", "bert-tiny", "roberta-tiny", "distilbert-tiny"] {
        let model = open(name);
        let build = |mut net: Net| -> ModelGraph {
            let (ids, mask) = text_inputs(&mut net);
            let mut outputs = Vec::new();
            let t = model.attach_text(&mut net, "text", &ids, &mask, Trainable::LastBlocks(1)).unwrap();
            outputs.push(GraphOutput::f32(&t.value, "text", batch_by(t.dim)));
            if model.has_vision() {
                let pixels = net.b.input("pixels", DataType::Float, &image_dims());
                let v = model.attach_vision(&mut net, "image", &pixels, Trainable::All).unwrap();
                outputs.push(GraphOutput::f32(&v.value, "image", batch_by(v.dim)));
            }
            net.finish(&outputs)
        };
        let loaded = build(Net::new(name, Mode::Infer, 0));
        let elements: i64 = loaded
            .model
            .graph
            .as_ref()
            .unwrap()
            .initializer
            .iter()
            .filter(|t| loaded.params.iter().any(|p| Some(&p.name) == t.name.as_ref()))
            .map(|t| t.dims.iter().product::<i64>())
            .sum();
        assert_eq!(elements as usize, model.parameter_count(), "{name}");
        let hollow = build(Net::hollow(name, Mode::Infer));
        assert_eq!(loaded.params, hollow.params, "{name}");
        let shapes = |g: &ModelGraph| -> Vec<(String, Vec<i64>)> {
            g.model.graph.as_ref().unwrap().initializer.iter().map(|t| (t.name().to_string(), t.dims.clone())).collect()
        };
        assert_eq!(shapes(&loaded), shapes(&hollow), "{name}");
        let loaded_bytes: usize = loaded
            .model
            .graph
            .as_ref()
            .unwrap()
            .initializer
            .iter()
            .map(|t| t.raw_data.as_ref().map_or(0, Vec::len))
            .sum();
        assert!(loaded_bytes > 100_000, "{name}: the loaded graph carries the weights");
        assert!(memeguard_training::models::net::is_hollow(&hollow.model));
    }
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
        let dims = &inits.iter().find(|t| t.name() == param).unwrap().dims;
        b.output(grad, DataType::Float, &known(&dims.iter().map(|&d| d as usize).collect::<Vec<_>>()));
    }
    b.build()
}

/// Both CLIP towers in a Train graph with everything trainable: the autodiff finds a
/// rule for every op, ONNX Runtime runs forward and backward, and every parameter gets
/// a finite gradient of its own shape, none of them all zero.
#[test]
fn clip_train_graph_differentiates() {
    let model = open("clip-tiny");
    let reference = Reference::open("clip-tiny");
    let (mut net, image, text) = clip_net(&model, Mode::Train, Trainable::All);
    let (image, text) = (image.features(), text.features());
    // loss = mean((image · textᵀ)²): both towers feed it.
    let text_t = net.b.op("Transpose", &[&text.value], &[("perm", Attr::Ints(vec![1, 0]))]);
    let sims = net.b.op("MatMul", &[&image.value, &text_t], &[]);
    let squared = net.b.op("Mul", &[&sims, &sims], &[]);
    let loss = net.b.op("ReduceMean", &[&squared], &[("keepdims", Attr::Int(0))]);
    let graph = net.finish(&[GraphOutput::f32(&loss, "loss", vec![])]);

    let shapes = memeguard_onnx::shape::infer_shapes(&graph.model);
    let unknown: Vec<String> = graph
        .model
        .graph
        .as_ref()
        .unwrap()
        .node
        .iter()
        .flat_map(|n| n.output.iter().map(move |o| (o.clone(), n.op_type().to_string())))
        .filter(|(o, _)| shapes.get(o).and_then(|t| t.dims.clone()).is_none())
        .map(|(o, op)| format!("{o} ({op})"))
        .collect();
    assert!(unknown.is_empty(), "values without a shape: {unknown:?}");

    let trainable = graph.trainable();
    assert_eq!(trainable.len(), graph.params.len());
    let diff = differentiate(&graph.model, "loss", &trainable).unwrap_or_else(|e| panic!("{e}"));
    let with_grads = with_gradient_outputs(&diff.model, &graph, &diff.grads);
    memeguard_onnx::check_model(&with_grads, true).unwrap_or_else(|e| panic!("{e}"));
    let mut inputs = reference.text_inputs();
    inputs.push(("pixel_values", reference.f32_value("pixel_values")));
    let out = run(&with_grads, inputs);
    let inits = &graph.model.graph.as_ref().unwrap().initializer;
    let mut zero = Vec::new();
    for (param, grad) in &diff.grads {
        let (shape, values) = &out[grad];
        assert_eq!(shape, &inits.iter().find(|t| t.name() == param).unwrap().dims, "{param}");
        if values.iter().all(|v| *v == 0.0) {
            zero.push(param.as_str());
        }
    }
    assert!(zero.is_empty(), "all-zero gradients: {zero:?}");
}

/// Every op of the towers' inference and training graphs (forward and gradients) has a
/// CUDA kernel in ONNX Runtime 1.31.1 at the version it resolves to under opset 20
/// (schema versions from Python's `onnx`, as `models_cuda_kernels.rs` reads them), and
/// the inference graphs pass `onnx.checker` with its full check. Fails when the
/// interpreter with `onnx` is missing (`make setup-test`).
#[test]
fn tower_ops_have_cuda_kernels_and_graphs_pass_the_onnx_checker() {
    use std::collections::BTreeSet;
    let mut ops = BTreeSet::new();
    let dir = tempfile::tempdir().unwrap();
    for name in ["clip-tiny", "bert-tiny", "roberta-tiny", "distilbert-tiny"] {
        let model = open(name);
        for mode in [Mode::Infer, Mode::Train] {
            let mut net = Net::new(name, mode, 0);
            let (ids, mask) = text_inputs(&mut net);
            let mut feature = model.attach_text(&mut net, "text", &ids, &mask, Trainable::All).unwrap().value;
            if model.has_vision() {
                let pixels = net.b.input("pixel_values", DataType::Float, &image_dims());
                let image = model.attach_vision(&mut net, "image", &pixels, Trainable::All).unwrap();
                feature = net.b.op("Concat", &[&feature, &image.value], &[("axis", Attr::Int(-1))]);
            }
            let squared = net.b.op("Mul", &[&feature, &feature], &[]);
            let loss = net.b.op("ReduceMean", &[&squared], &[("keepdims", Attr::Int(0))]);
            let graph = net.finish(&[GraphOutput::f32(&loss, "loss", vec![])]);
            let model_proto = if mode == Mode::Train {
                differentiate(&graph.model, "loss", &graph.trainable()).unwrap_or_else(|e| panic!("{name}: {e}")).model
            } else {
                let path = dir.path().join(format!("{name}.onnx"));
                std::fs::write(&path, memeguard_onnx::encode_model(&graph.model)).unwrap();
                memeguard_onnx::pycheck::onnx_checker(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
                graph.model
            };
            ops.extend(model_proto.graph.unwrap().node.into_iter().filter_map(|n| n.op_type));
        }
    }
    let script = "import sys, json, onnx.defs\n\
                  print(json.dumps({op: onnx.defs.get_schema(op, 20, '').since_version for op in sys.argv[1:]}))";
    let args: Vec<&str> = ops.iter().map(String::as_str).collect();
    let versions: std::collections::BTreeMap<String, i64> =
        serde_json::from_str(&memeguard_onnx::pycheck::run_python(script, &args).unwrap_or_else(|e| panic!("{e}")))
            .unwrap();
    let table = memeguard_training::runtime::CudaKernelTable::builtin();
    let missing = table.missing(versions.iter().map(|(op, v)| (op.as_str(), *v)));
    assert!(missing.is_empty(), "no CUDA kernel for: {}", missing.join(", "));
    assert!(ops.contains("ArgMax") && ops.contains("CumSum") && ops.contains("Conv"), "{ops:?}");
}

/// Reads fixture inputs as graph feeds for [`GradCheck`]: the first `rows` rows.
fn reference_tensor(reference: &Reference, name: &str, rows: usize) -> memeguard_onnx::Tensor {
    let t = reference.tensors().tensor(name).unwrap();
    let mut dims: Vec<i64> = t.shape().iter().map(|&d| d as i64).collect();
    let per_row = t.data().len() / dims[0] as usize;
    let data = &t.data()[..rows * per_row];
    dims[0] = rows as i64;
    match t.dtype() {
        safetensors::Dtype::F32 => memeguard_onnx::Tensor::f32(
            dims,
            data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect(),
        ),
        safetensors::Dtype::I64 => memeguard_onnx::Tensor::i64(
            dims,
            data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect(),
        ),
        other => panic!("{name}: {other:?}"),
    }
}

/// `model`'s text tower alone in an Infer graph, everything trainable; and its features.
fn text_tower_graph(model: &HfModel) -> (ModelGraph, String) {
    let mut net = Net::new("text", Mode::Infer, 0);
    let (ids, mask) = text_inputs(&mut net);
    let text = model.attach_text(&mut net, "text", &ids, &mask, Trainable::All).unwrap();
    (net.finish(&[GraphOutput::f32(&text.value, "text", batch_by(text.dim))]), text.value)
}

/// The first `rows` captions' ids and mask as feeds.
fn text_feeds(reference: &Reference, rows: usize) -> Vec<(String, memeguard_onnx::Tensor)> {
    vec![
        (INPUT_IDS.to_string(), reference_tensor(reference, "input_ids", rows)),
        (ATTENTION_MASK.to_string(), reference_tensor(reference, "attention_mask", rows)),
    ]
}

/// Gradients through the towers against central finite differences, with the
/// fixtures' weights and inputs, for parameters on the less common paths: the class
/// embedding (Reshape, Pad), position embeddings (Gather by computed positions;
/// RoBERTa's skip padding), attention biases, norms, the pooler, and the projections
/// (Transpose of `[out, in]` weights; the end-of-text pick's one-hot MatMul).
#[test]
fn tower_gradients_match_finite_differences() {
    use memeguard_training::autodiff::gradcheck::{GradCheck, check};
    let clip = open("clip-tiny");
    let clip_ref = Reference::open("clip-tiny");

    let mut net = Net::new("clip_vision", Mode::Infer, 0);
    let pixels = net.b.input("pixel_values", DataType::Float, &image_dims());
    let image = clip.attach_vision(&mut net, "image", &pixels, Trainable::All).unwrap();
    let graph = net.finish(&[GraphOutput::f32(&image.value, "image", batch_by(image.dim))]);
    let wrt = [
        "image.vision_model.embeddings.class_embedding",
        "image.vision_model.pre_layrnorm.weight",
        "image.vision_model.encoder.layers.0.self_attn.q_proj.bias",
        "image.vision_model.encoder.layers.1.mlp.fc1.bias",
        "image.vision_model.post_layernorm.bias",
        "image.visual_projection.weight",
    ];
    let inputs = vec![("pixel_values".to_string(), reference_tensor(&clip_ref, "pixel_values", 2))];
    let report = check(&GradCheck::f32(graph.model, &image.value, inputs, &wrt)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.checked, 32 * 4 + 64 + 16 * 32, "{report:?}");

    let (graph, text) = text_tower_graph(&clip);
    let wrt = [
        "text.text_model.embeddings.position_embedding.weight",
        "text.text_model.encoder.layers.0.self_attn.v_proj.bias",
        "text.text_model.encoder.layers.1.layer_norm2.weight",
        "text.text_model.final_layer_norm.bias",
        "text.text_projection.weight",
    ];
    // The text embeddings are tiny (σ ≈ 0.01–0.02) and the first LayerNorm rescales them
    // by ~50: a step of 1e-2 would leave the linear regime, so this check steps 1e-3.
    let spec =
        GradCheck { eps: 1e-3, atol: 5e-3, ..GradCheck::f32(graph.model, &text, text_feeds(&clip_ref, 3), &wrt) };
    let report = check(&spec).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.checked, 77 * 32 + 32 * 3 + 16 * 32, "{report:?}");

    let (graph, text) = text_tower_graph(&open("roberta-tiny"));
    let wrt = [
        "text.embeddings.position_embeddings.weight",
        "text.embeddings.token_type_embeddings.weight",
        "text.embeddings.LayerNorm.weight",
        "text.encoder.layer.0.attention.self.query.bias",
        "text.encoder.layer.1.output.LayerNorm.bias",
        "text.pooler.dense.bias",
    ];
    let feeds = text_feeds(&Reference::open("roberta-tiny"), 3);
    let report = check(&GradCheck::f32(graph.model, &text, feeds, &wrt)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.checked, 35 * 32 + 2 * 32 + 32 * 4, "{report:?}");
}

/// `clip_vision_model` (CLIPVisionModelWithProjection) and `clip_text_model`
/// (CLIPTextModel, no projection) folders cut from the CLIP fixture: the vision one
/// gives CLIPModel's image embeddings, and pools `post_layernorm` of the class token of
/// transformers' last hidden state; the text one pools, unprojected, the hidden state
/// transformers computed at each caption's first end-of-text token (at its largest id
/// under the legacy `eos_token_id = 2`).
#[test]
fn single_tower_clip_folders() {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("clip-tiny/config.json")).unwrap()).unwrap();
    let tensors = read_tensors("clip-tiny");
    let reference = Reference::open("clip-tiny");
    let tower = |key: &str, model_type: &str, keep: &dyn Fn(&str) -> bool| {
        let mut cfg = config[key].clone();
        cfg["model_type"] = model_type.into();
        cfg["projection_dim"] = 16.into();
        let kept: Vec<Stored> = tensors.iter().filter(|t| keep(&t.0)).cloned().collect();
        write_folder_with_config(&cfg.to_string(), &kept, 1)
    };

    let dir = tower("vision_config", "clip_vision_model", &|n| {
        n.starts_with("vision_model.") || n == "visual_projection.weight"
    });
    let model = HfModel::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(model.has_vision() && !model.has_text());
    assert_eq!((model.image_size(), model.max_text_length(), model.vision_feature_dim()), (Some(32), None, Some(16)));
    let mut net = Net::new("vision", Mode::Infer, 0);
    let pixels = net.b.input("pixel_values", DataType::Float, &image_dims());
    let image = model.attach_vision_outputs(&mut net, "image", &pixels, Trainable::Frozen).unwrap();
    let embeds = l2_normalize(&mut net, &image.features().value);
    let graph = net.finish(&[
        GraphOutput::f32(&embeds, "image_embeds", batch_by(16)),
        GraphOutput::f32(&image.pooled.value, "pooled", batch_by(32)),
    ]);
    let got = run(&graph.model, vec![("pixel_values", reference.f32_value("pixel_values"))]);
    compare("clip_vision_model", &got, "image_embeds", &reference.f32("image_embeds"));
    // pooled = post_layernorm(class token of transformers' last hidden state).
    let weight = |name: &str| -> Vec<f32> {
        let t = tensors.iter().find(|t| t.0 == name).unwrap();
        t.3.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    };
    let (gamma, beta) = (weight("vision_model.post_layernorm.weight"), weight("vision_model.post_layernorm.bias"));
    let (dims, hidden) = reference.f32("vision_last_hidden_state");
    let (n, t, d) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
    let mut pooled = Vec::new();
    for row in 0..n {
        let cls: Vec<f64> = hidden[row * t * d..row * t * d + d].iter().map(|&v| v as f64).collect();
        let mean = cls.iter().sum::<f64>() / d as f64;
        let var = cls.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / d as f64;
        let eps = config["vision_config"]["layer_norm_eps"].as_f64().unwrap();
        pooled.extend((0..d).map(|j| ((cls[j] - mean) / (var + eps).sqrt() * gamma[j] as f64 + beta[j] as f64) as f32));
    }
    compare("clip_vision_model", &got, "pooled", &(vec![n as i64, d as i64], pooled));

    // eos_token_id 2 is the legacy rule: pool at the largest id (the first of equals).
    let eos = config["text_config"]["eos_token_id"].as_i64().unwrap();
    let ids = reference_tensor(&reference, "input_ids", 7);
    let ids = ids.as_i64().unwrap();
    let (dims, hidden) = reference.f32("text_last_hidden_state");
    let (n, l, d) = (dims[0] as usize, dims[1] as usize, dims[2] as usize);
    for legacy in [false, true] {
        let mut cfg = config["text_config"].clone();
        cfg["model_type"] = "clip_text_model".into();
        if legacy {
            cfg["eos_token_id"] = 2.into();
        }
        let kept: Vec<Stored> = tensors.iter().filter(|t| t.0.starts_with("text_model.")).cloned().collect();
        let dir = write_folder_with_config(&cfg.to_string(), &kept, 1);
        let model = HfModel::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(model.has_text() && !model.has_vision());
        assert_eq!((model.text_feature_dim(), model.max_text_length()), (Some(32), Some(77)));
        let mut net = Net::new("text", Mode::Infer, 0);
        let (ids_in, mask_in) = text_inputs(&mut net);
        let text = model.attach_text(&mut net, "text", &ids_in, &mask_in, Trainable::Frozen).unwrap();
        assert_eq!(text.dim, 32);
        let graph = net.finish(&[GraphOutput::f32(&text.value, "pooled", batch_by(32))]);
        let got = run(&graph.model, reference.text_inputs());
        let mut pooled = Vec::new();
        for row in 0..n {
            let row_ids = &ids[row * l..(row + 1) * l];
            let at = if legacy {
                let max = *row_ids.iter().max().unwrap();
                row_ids.iter().position(|&id| id == max).unwrap()
            } else {
                row_ids.iter().position(|&id| id == eos).expect("every caption has an end-of-text token")
            };
            pooled.extend_from_slice(&hidden[(row * l + at) * d..(row * l + at + 1) * d]);
        }
        let case = if legacy { "clip_text_model (eos_token_id 2)" } else { "clip_text_model" };
        compare(case, &got, "pooled", &(vec![n as i64, d as i64], pooled));
    }
}
