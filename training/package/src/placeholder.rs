//! The **untrained placeholder** model: a small graph with fixed pseudo-random weights
//! that obeys the package contract, so the server runs end to end before training has
//! produced a real model. Its scores mean nothing; its manifest says so
//! (`placeholder: true`). The server serves it only where no trained package exists and
//! `--allow-placeholder` permits it; `make run` serves the trained demo in `models/demo/`.
//!
//! Graph: image = Cast → /255 → (x − mean)/std → NCHW → grid average pool → flatten;
//! text = Gather(embedding, clipped ids) → mean over the tokens the mask keeps;
//! fusion = Concat → Tanh(linear) → linear → `logits`, Sigmoid → `probability`.

use std::path::Path;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Attr, DataType, Dim, GraphBuilder, Tensor};

use crate::contract::{ATTENTION_MASK, INPUT_IDS, LOGITS, PIXEL_VALUES, PROBABILITY};
use crate::manifest::{Architecture, ImageSpec, MANIFEST_FORMAT_VERSION, Manifest, ResizeRule, TextSpec, now_rfc3339};
use crate::package::{ModelPackage, PackageError, write_package};
use crate::tokenizer::TextTokenizer;

/// Image side of the placeholder package.
pub const PLACEHOLDER_IMAGE_SIZE: u32 = 224;
/// Text length of the placeholder package.
pub const PLACEHOLDER_MAX_LENGTH: usize = 32;
/// Name in the placeholder manifest.
pub const PLACEHOLDER_NAME: &str = "placeholder";
/// Version in the placeholder manifest.
pub const PLACEHOLDER_VERSION: &str = "0.0.0";

/// ImageNet channel statistics, the usual normalisation for pretrained encoders.
const MEAN: [f32; 3] = [0.485, 0.456, 0.406];
const STD: [f32; 3] = [0.229, 0.224, 0.225];
/// Width of the text embedding and of the fused hidden layer.
const TEXT_DIM: usize = 8;
const HIDDEN: usize = 16;

/// Deterministic weights (SplitMix64), uniform in `[-scale, scale]`.
struct Weights(u64);

impl Weights {
    fn take(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = self.0;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^= z >> 31;
                ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }
}

/// The untrained placeholder graph for `size`×`size` images, `max_length` tokens and a
/// vocabulary of `vocab_size` ids (ids outside it are clipped, not an error).
/// Probabilities lie strictly inside (0, 1): |logit| ≤ 4 by construction.
pub fn placeholder_model(size: u32, max_length: usize, vocab_size: usize) -> ModelProto {
    let size = size.max(1) as i64;
    let vocab = vocab_size.max(1);
    let mut w = Weights(0x6d656d65_67756172); // "memeguar"
    let mut g = GraphBuilder::new("untrained_placeholder");
    g.metadata("memeguard.placeholder", "untrained placeholder: scores are meaningless");

    // Image: normalise inside the graph, average over a grid of cells.
    let pixels = g.input(PIXEL_VALUES, DataType::Uint8, &[Dim::from("batch"), size.into(), size.into(), 3.into()]);
    let x = g.op("Cast", &[&pixels], &[("to", Attr::Int(DataType::Float as i64))]);
    let scale: Vec<f32> = STD.iter().map(|s| 1.0 / (255.0 * s)).collect();
    let shift: Vec<f32> = MEAN.iter().zip(STD).map(|(m, s)| -m / s).collect();
    let scale = g.constant("pixel_scale", Tensor::f32(vec![3], scale));
    let shift = g.constant("pixel_shift", Tensor::f32(vec![3], shift));
    let x = g.op("Mul", &[&x, &scale], &[]);
    let x = g.op("Add", &[&x, &shift], &[]);
    let x = g.op("Transpose", &[&x], &[("perm", Attr::Ints(vec![0, 3, 1, 2]))]);
    let grid = size.min(4);
    let cell = size / grid;
    let cells = (size - cell) / cell + 1;
    let x = g.op(
        "AveragePool",
        &[&x],
        &[("kernel_shape", Attr::Ints(vec![cell, cell])), ("strides", Attr::Ints(vec![cell, cell]))],
    );
    let image_features = g.op("Flatten", &[&x], &[("axis", Attr::Int(1))]);
    let image_dim = (3 * cells * cells) as usize;

    // Text: embedding rows of the kept tokens, averaged.
    let ids = g.input(INPUT_IDS, DataType::Int64, &[Dim::from("batch"), (max_length as i64).into()]);
    let mask = g.input(ATTENTION_MASK, DataType::Int64, &[Dim::from("batch"), (max_length as i64).into()]);
    let lo = g.constant("id_min", Tensor::scalar_i64(0));
    let hi = g.constant("id_max", Tensor::scalar_i64(vocab as i64 - 1));
    let ids = g.op("Clip", &[&ids, &lo, &hi], &[]);
    let table = g.initializer(
        "token_embedding",
        &Tensor::f32(vec![vocab as i64, TEXT_DIM as i64], w.take(vocab * TEXT_DIM, 2.0)),
    );
    let emb = g.op("Gather", &[&table, &ids], &[("axis", Attr::Int(0))]);
    let m = g.op("Cast", &[&mask], &[("to", Attr::Int(DataType::Float as i64))]);
    let last = g.const_i64s("last_axis", &[-1]);
    let m3 = g.op("Unsqueeze", &[&m, &last], &[]);
    let kept = g.op("Mul", &[&emb, &m3], &[]);
    let tokens_axis = g.const_i64s("tokens_axis", &[1]);
    let sum = g.op("ReduceSum", &[&kept, &tokens_axis], &[("keepdims", Attr::Int(0))]);
    let count = g.op("ReduceSum", &[&m3, &tokens_axis], &[("keepdims", Attr::Int(0))]);
    let one = g.constant("one", Tensor::scalar_f32(1.0));
    let count = g.op("Max", &[&count, &one], &[]);
    let text_features = g.op("Div", &[&sum, &count], &[]);

    // Fusion head.
    let joint = g.op("Concat", &[&image_features, &text_features], &[("axis", Attr::Int(1))]);
    let in_dim = image_dim + TEXT_DIM;
    let w1 = g.initializer(
        "fusion_weight",
        &Tensor::f32(vec![in_dim as i64, HIDDEN as i64], w.take(in_dim * HIDDEN, (1.0 / in_dim as f32).sqrt() * 1.5)),
    );
    let b1 = g.initializer("fusion_bias", &Tensor::f32(vec![HIDDEN as i64], w.take(HIDDEN, 0.1)));
    let h = g.op("MatMul", &[&joint, &w1], &[]);
    let h = g.op("Add", &[&h, &b1], &[]);
    let h = g.op("Tanh", &[&h], &[]);
    // |w2| ≤ 0.2 and |b2| ≤ 0.2 with 16 hidden units in [-1, 1]: |logit| ≤ 3.4.
    let w2 = g.initializer("classifier_weight", &Tensor::f32(vec![HIDDEN as i64, 1], w.take(HIDDEN, 0.2)));
    let b2 = g.initializer("classifier_bias", &Tensor::f32(vec![1], w.take(1, 0.2)));
    let logit = g.op("MatMul", &[&h, &w2], &[]);
    let logit = g.op("Add", &[&logit, &b2], &[]);
    let logit = g.op("Squeeze", &[&logit, &last], &[]);
    let probability = g.op("Sigmoid", &[&logit], &[]);
    g.named_output(&logit, LOGITS, DataType::Float, &[Dim::from("batch")]);
    g.named_output(&probability, PROBABILITY, DataType::Float, &[Dim::from("batch")]);
    g.build()
}

/// A few lines of text to train the placeholder's small WordPiece vocabulary on.
const PLACEHOLDER_CORPUS: &str = include_str!("placeholder_corpus.txt");

/// Writes the untrained placeholder package (model, a small tokenizer, a manifest that
/// says "untrained placeholder" and `placeholder: true`) into `dir`.
pub fn write_placeholder_package(dir: &Path) -> Result<ModelPackage, PackageError> {
    let texts: Vec<String> = PLACEHOLDER_CORPUS.lines().filter(|l| !l.trim().is_empty()).map(str::to_string).collect();
    let tokenizer = TextTokenizer::train_wordpiece(&texts, 400)
        .map_err(|source| PackageError::Tokenizer { path: dir.join(crate::manifest::TOKENIZER_FILE), source })?;
    let model = placeholder_model(PLACEHOLDER_IMAGE_SIZE, PLACEHOLDER_MAX_LENGTH, tokenizer.vocab_size());
    let parameters = model
        .graph
        .as_ref()
        .map(|g| {
            g.initializer
                .iter()
                .filter(|t| t.data_type == Some(DataType::Float as i32))
                .map(|t| t.dims.iter().product::<i64>())
                .sum::<i64>()
        })
        .unwrap_or(0) as u64;
    let manifest = Manifest {
        format_version: MANIFEST_FORMAT_VERSION,
        name: PLACEHOLDER_NAME.into(),
        version: PLACEHOLDER_VERSION.into(),
        created_at: now_rfc3339(),
        description: "Untrained placeholder: fixed pseudo-random weights, its scores mean nothing. \
                      It lets the server run end to end until training produces the demo model."
            .into(),
        placeholder: true,
        architecture: Architecture {
            image_encoder: "untrained placeholder: 4x4 grid average of normalised pixels".into(),
            text_encoder: "untrained placeholder: masked mean of token embeddings".into(),
            fusion: "untrained placeholder: concat, tanh layer, linear, sigmoid".into(),
            parameters,
        },
        pretraining: "none".into(),
        image: ImageSpec::new(PLACEHOLDER_IMAGE_SIZE, ResizeRule::Letterbox),
        text: TextSpec { max_length: PLACEHOLDER_MAX_LENGTH },
        threshold: 0.5,
        metrics: serde_json::json!({ "note": "untrained placeholder: never evaluated" }),
        data: serde_json::json!({ "note": "untrained placeholder: no training data" }),
        opset: 0,
        ir_version: 0,
        files: Default::default(),
    };
    write_package(dir, manifest, &model, &tokenizer)
}
