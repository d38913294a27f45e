//! Encoders brought from elsewhere, loaded once and shared by every graph built from
//! them: ONNX exports ([`OnnxImageEncoder`], [`OnnxTextEncoder`]: one output's part of
//! the graph, its inputs fed ours) and Hugging Face folders ([`HfEncoder`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use memeguard_onnx::{Attr, DataType, Dim};
use memeguard_package::ImageSpec;

use super::blocks::BlockStructure;
use crate::models::ModelError;
use crate::models::hf::HfModel;
use crate::models::import::{ImportError, ImportedEncoder, describe_dims};
use crate::models::input::{ATTENTION_MASK, INPUT_IDS};
use crate::models::net::Net;
use crate::models::source::{EncoderSource, Trainable};

/// A Hugging Face folder, opened once (configuration and weight index; weights are read
/// when a graph is built), and how much of the tower trains.
#[derive(Debug, Clone)]
pub struct HfEncoder {
    /// `hf:DIR`, as the recipe named it.
    pub source: String,
    pub model: Arc<HfModel>,
    pub trainable: Trainable,
    /// Width of the features.
    pub dim: usize,
}

impl PartialEq for HfEncoder {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.trainable == other.trainable
    }
}

impl HfEncoder {
    pub(super) fn open(
        dir: &Path,
        source: &EncoderSource,
        trainable: Trainable,
        vision: bool,
    ) -> Result<Self, ModelError> {
        let model = HfModel::open(dir)?;
        let (dim, tower) =
            if vision { (model.vision_feature_dim(), "vision") } else { (model.text_feature_dim(), "text") };
        let dim = dim.ok_or_else(|| {
            ModelError::Config(format!("{source}: this {} folder has no {tower} tower", model.model_type()))
        })?;
        Ok(HfEncoder { source: source.to_string(), model: Arc::new(model), trainable, dim })
    }
}

/// An `hf:` folder's vision tower and its preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct HfImageEncoder {
    pub hf: HfEncoder,
    pub spec: ImageSpec,
}

pub(super) fn read_preprocessor(path: &Path, source: &EncoderSource) -> Result<ImageSpec, ModelError> {
    ImageSpec::from_hf_preprocessor_config(path)
        .map_err(|e| ModelError::Config(format!("{source}: {}: {e}", path.display())))
}

/// An ONNX encoder, loaded once (weights and all) and shared by every graph built
/// from it, cut down to the output that carries its features.
#[derive(Debug, Clone)]
pub struct OnnxEncoder {
    /// `onnx:FILE#OUTPUT`, as the recipe named it.
    pub source: String,
    pub encoder: Arc<ImportedEncoder>,
    /// The output the features come from.
    pub output: String,
    /// Width of the features (the output's declared `[N, D]`).
    pub dim: usize,
    /// Whether any of its weights train.
    pub trainable: bool,
    /// With `trainable = "last:N"`: the initializers that train (the last N blocks and
    /// what follows them); `None` when all or none do.
    pub trained: Option<Arc<BTreeSet<String>>>,
}

impl PartialEq for OnnxEncoder {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.trainable == other.trainable && self.trained == other.trained
    }
}

impl OnnxEncoder {
    /// Loads `file` (external data included), keeps what computes `output`, and reads
    /// the features' width.
    pub fn load(source: &EncoderSource, trainable: Trainable) -> Result<Self, ModelError> {
        let EncoderSource::Onnx { file, output } = source else {
            return Err(ModelError::Config(format!("`{source}` is not an ONNX encoder")));
        };
        let encoder =
            ImportedEncoder::load(file).and_then(|e| e.into_output(output.as_deref())).map_err(import_error)?;
        let trained = match trainable {
            Trainable::LastBlocks(n) if n > 0 => {
                let names: Vec<String> = encoder.parameters().into_iter().map(|p| p.name).collect();
                let blocks = BlockStructure::find(encoder.graph_proto(), &names).ok_or_else(|| {
                    ModelError::Config(format!(
                        "{source}: trainable = \"last:{n}\" needs the encoder's repeated blocks, and none were \
                         found in its parameter or node names (looked for layers.N, layer.N, blocks.N, \
                         resblocks.N, h.N, or layers_N as dynamo writes it); use false (frozen) or true (all \
                         of it), or bring the encoder as an hf: folder"
                    ))
                })?;
                if n > blocks.count {
                    return Err(ModelError::Config(format!(
                        "{source}: trainable = \"last:{n}\", but the encoder has {} blocks",
                        blocks.count
                    )));
                }
                Some(Arc::new(blocks.last_blocks(n)))
            }
            _ => None,
        };
        let trainable = trainable.any();
        let dim = encoder.feature_dim().map_err(import_error)?;
        if trainable {
            let missing = encoder.ops_without_gradient_rule();
            if !missing.is_empty() {
                return Err(import_error(ImportError::MissingGradientRules {
                    source_name: encoder.source_name.clone(),
                    missing,
                }));
            }
        }
        let output = encoder.outputs()[0].name.clone();
        Ok(OnnxEncoder { source: source.to_string(), encoder: Arc::new(encoder), output, dim, trainable, trained })
    }

    fn fail(&self, problem: String) -> ModelError {
        ModelError::Config(format!("{}: {problem}", self.source))
    }

    fn attach(&self, net: &mut Net, prefix: &str, inputs: &[(&str, &str)]) -> Result<String, ModelError> {
        let trains = |name: &str| self.trainable && self.trained.as_ref().is_none_or(|t| t.contains(name));
        let outputs = self.encoder.attach_training(net, prefix, inputs, &trains).map_err(import_error)?;
        outputs
            .get(&self.output)
            .cloned()
            .ok_or_else(|| self.fail(format!("output `{}` was not attached", self.output)))
    }
}

fn import_error(e: ImportError) -> ModelError {
    ModelError::Config(e.to_string())
}

/// An ONNX image encoder: one float input `[N, 3, S, S]` fed our normalised pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxImageEncoder {
    pub onnx: OnnxEncoder,
    /// Its image input's name.
    pub input: String,
    /// Square input side `S`, from the input's declared shape.
    pub image_size: usize,
    /// Its preprocessing, when a `preprocessor_config.json` was given.
    pub spec: Option<ImageSpec>,
}

impl OnnxImageEncoder {
    /// Loads `source` and checks it takes one float NCHW image of a known square size.
    pub fn load(source: &EncoderSource, trainable: Trainable) -> Result<Self, ModelError> {
        Self::load_sized(source, trainable, None)
    }

    /// [`OnnxImageEncoder::load`] for exports whose image side is symbolic: `size` (from
    /// the preprocessing) fixes it.
    pub fn load_sized(source: &EncoderSource, trainable: Trainable, size: Option<usize>) -> Result<Self, ModelError> {
        let onnx = OnnxEncoder::load(source, trainable)?;
        let inputs = onnx.encoder.inputs();
        let [input] = inputs.as_slice() else {
            let names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
            return Err(onnx.fail(format!(
                "an image encoder takes one input (the pixels), this one needs {}: {} (a joint export: pick the \
                 image output with #OUTPUT)",
                names.len(),
                names.join(", ")
            )));
        };
        if !matches!(input.dtype, Some(DataType::Float)) {
            return Err(onnx.fail(format!(
                "image input `{}` is {:?}; it must be float32 pixels [N, 3, H, W]",
                input.name, input.dtype
            )));
        }
        let image_size = match input.dims.as_deref() {
            Some([_, Dim::Known(3), Dim::Known(h), Dim::Known(w)]) if h == w && *h > 0 => *h as usize,
            Some([_, Dim::Known(3), Dim::Sym(_), Dim::Sym(_)]) if size.is_some() => size.unwrap_or_default(),
            Some(dims) => {
                return Err(onnx.fail(format!(
                    "image input `{}` is declared {}; it must be [N, 3, S, S] with S known (export it with a \
                     fixed image size, or give model.image_preprocessor, whose size is then used)",
                    input.name,
                    describe_dims(dims)
                )));
            }
            None => return Err(onnx.fail(format!("image input `{}` declares no shape", input.name))),
        };
        Ok(OnnxImageEncoder { input: input.name.clone(), image_size, onnx, spec: None })
    }

    /// Attaches the encoder to normalised float NCHW `pixels`; returns `[N, dim]`.
    pub fn build(&self, net: &mut Net, prefix: &str, pixels: &str) -> Result<String, ModelError> {
        self.onnx.attach(net, prefix, &[(&self.input, pixels)])
    }
}

/// Text inputs an ONNX text encoder may declare, matched by name.
const TOKEN_TYPE_IDS: &str = "token_type_ids";

/// An ONNX text encoder: inputs `input_ids`, optionally `attention_mask` and
/// `token_type_ids` (all zeros), int64 or int32.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxTextEncoder {
    pub onnx: OnnxEncoder,
    /// Each input's name and element type.
    pub inputs: Vec<(String, DataType)>,
}

impl OnnxTextEncoder {
    /// Loads `source` and checks its inputs are ones we can feed.
    pub fn load(source: &EncoderSource, trainable: Trainable) -> Result<Self, ModelError> {
        let onnx = OnnxEncoder::load(source, trainable)?;
        let mut inputs = Vec::new();
        let mut problems = Vec::new();
        for input in onnx.encoder.inputs() {
            match (input.name.as_str(), input.dtype) {
                (INPUT_IDS | ATTENTION_MASK | TOKEN_TYPE_IDS, Some(t @ (DataType::Int64 | DataType::Int32))) => {
                    inputs.push((input.name, t));
                }
                (INPUT_IDS | ATTENTION_MASK | TOKEN_TYPE_IDS, t) => {
                    problems.push(format!("input `{}` is {t:?}; it must be int64 or int32", input.name));
                }
                (other, _) => problems.push(format!(
                    "input `{other}` is not one we can feed (a text encoder takes {INPUT_IDS}, {ATTENTION_MASK} \
                     and {TOKEN_TYPE_IDS}; a joint export: pick the text output with #OUTPUT)"
                )),
            }
        }
        if !inputs.iter().any(|(n, _)| n == INPUT_IDS) {
            problems.push(format!("it has no `{INPUT_IDS}` input"));
        }
        if !problems.is_empty() {
            return Err(onnx.fail(problems.join("; ")));
        }
        Ok(OnnxTextEncoder { onnx, inputs })
    }

    /// Attaches the encoder to our int64 `ids` / `mask`; returns `[N, dim]`.
    pub fn build(&self, net: &mut Net, prefix: &str, ids: &str, mask: &str) -> Result<String, ModelError> {
        let mut fed = Vec::new();
        for (name, dtype) in &self.inputs {
            let ours = match name.as_str() {
                INPUT_IDS => ids.to_string(),
                ATTENTION_MASK => mask.to_string(),
                _ => net.b.op("Sub", &[ids, ids], &[]),
            };
            let ours = if *dtype == DataType::Int64 {
                ours
            } else {
                net.b.op("Cast", &[&ours], &[("to", Attr::Int(*dtype as i64))])
            };
            fed.push((name.clone(), ours));
        }
        let fed: Vec<(&str, &str)> = fed.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        self.onnx.attach(net, prefix, &fed)
    }
}
