//! Image and text encoders: the architectures recipes and the command line refer to by
//! name (`resnet50`, `vit-b16@384`, `text-small`...), and encoders brought from
//! elsewhere (`onnx:FILE[#OUTPUT]`, `hf:DIR`), behind one [`ImageEncoder`] /
//! [`TextEncoder`] a classifier is built with. Each image encoder says how its pixels
//! are prepared ([`ImageEncoder::image_spec`]): what the package's manifest records and
//! the graph's normalisation uses.

use std::path::Path;
use std::sync::Arc;

use memeguard_package::{ImageSpec, ResizeRule};

use memeguard_onnx::{Attr, DataType, Dim};
use serde::{Deserialize, Serialize};

use crate::models::ModelError;
use crate::models::hf::HfModel;
use crate::models::import::{ImportError, ImportedEncoder, describe_dims};
use crate::models::input::{ATTENTION_MASK, INPUT_IDS};
use crate::models::net::Net;
use crate::models::resnet::{ResNetConfig, resnet};
use crate::models::source::{EncoderSource, Trainable};
use crate::models::text::{TextConfig, text_encoder};
use crate::models::vit::{VitConfig, vit_at_input_size};

/// An image encoder: a CNN or a ViT.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ImageEncoderConfig {
    Resnet(ResNetConfig),
    Vit(VitConfig),
}

/// Image encoder names accepted by [`ImageEncoderConfig::parse`], with what they are.
pub const IMAGE_ENCODERS: &[(&str, &str)] = &[
    ("resnet18", "ResNet-18, basic blocks, 512 features"),
    ("resnet34", "ResNet-34, basic blocks, 512 features"),
    ("resnet50", "ResNet-50, bottleneck blocks, 2048 features"),
    ("resnet101", "ResNet-101, bottleneck blocks, 2048 features"),
    ("resnet-tiny", "tiny ResNet for tests and CPU recipes (width 8, one basic block per stage), 64 features"),
    ("vit-b16", "ViT-B/16: width 768, 12 blocks, 12 heads"),
    ("vit-s16", "ViT-S/16: width 384, 12 blocks, 6 heads"),
    ("vit-ti16", "ViT-Ti/16: width 192, 12 blocks, 3 heads"),
    ("vit-tiny", "tiny ViT for tests and CPU recipes (8×8 patches, width 32, 2 blocks)"),
];

impl ImageEncoderConfig {
    /// Parses `name` or `name@size` (e.g. `resnet50`, `vit-b16@384`). Without a size,
    /// the standard models take 224 and the tiny ones 32.
    pub fn parse(spec: &str) -> Result<Self, ModelError> {
        let (name, size) = match spec.split_once('@') {
            Some((name, size)) => {
                let size = size.parse::<usize>().map_err(|_| {
                    ModelError::Config(format!(
                        "`{spec}`: the image size after `@` must be a number, e.g. `vit-b16@384`"
                    ))
                })?;
                (name, Some(size))
            }
            None => (spec, None),
        };
        let cfg = match name {
            "resnet18" => ImageEncoderConfig::Resnet(ResNetConfig::resnet18()),
            "resnet34" => ImageEncoderConfig::Resnet(ResNetConfig::resnet34()),
            "resnet50" => ImageEncoderConfig::Resnet(ResNetConfig::resnet50()),
            "resnet101" => ImageEncoderConfig::Resnet(ResNetConfig::resnet101()),
            "resnet-tiny" => ImageEncoderConfig::Resnet(ResNetConfig::tiny()),
            "vit-b16" => ImageEncoderConfig::Vit(VitConfig::vit_b16(224)),
            "vit-s16" => ImageEncoderConfig::Vit(VitConfig::vit_s16(224)),
            "vit-ti16" => ImageEncoderConfig::Vit(VitConfig::vit_ti16(224)),
            "vit-tiny" => ImageEncoderConfig::Vit(VitConfig::tiny()),
            _ => {
                let known: Vec<&str> = IMAGE_ENCODERS.iter().map(|(n, _)| *n).collect();
                return Err(ModelError::Config(format!(
                    "unknown image encoder `{name}`; known: {} (optionally with @size)",
                    known.join(", ")
                )));
            }
        };
        let cfg = match size {
            Some(size) => cfg.at_size(size),
            None => cfg,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// The same encoder at another square input size.
    pub fn at_size(self, size: usize) -> Self {
        match self {
            ImageEncoderConfig::Resnet(c) => ImageEncoderConfig::Resnet(c.at_size(size)),
            ImageEncoderConfig::Vit(c) => ImageEncoderConfig::Vit(c.at_size(size)),
        }
    }

    /// Checks that the configuration can be built.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            ImageEncoderConfig::Resnet(c) => {
                // Five stride-2 steps: smaller inputs collapse to nothing.
                if c.image_size < 32 {
                    return Err(ModelError::Config(format!(
                        "a ResNet needs inputs of at least 32 pixels, not {}",
                        c.image_size
                    )));
                }
                if c.width == 0 || c.layers.contains(&0) {
                    return Err(ModelError::Config("a ResNet needs a width and at least one block per stage".into()));
                }
            }
            ImageEncoderConfig::Vit(c) => {
                if c.patch_size == 0 || c.image_size % c.patch_size != 0 || c.image_size == 0 {
                    return Err(ModelError::Config(format!(
                        "a ViT's image size ({}) must be a positive multiple of its patch size ({})",
                        c.image_size, c.patch_size
                    )));
                }
                if c.heads == 0 || c.dim % c.heads != 0 {
                    return Err(ModelError::Config(format!(
                        "ViT width {} is not a multiple of {} heads",
                        c.dim, c.heads
                    )));
                }
            }
        }
        Ok(())
    }

    /// Width of the features the encoder returns.
    pub fn feature_dim(&self) -> usize {
        match self {
            ImageEncoderConfig::Resnet(c) => c.feature_dim(),
            ImageEncoderConfig::Vit(c) => c.feature_dim(),
        }
    }

    /// Square input side.
    pub fn image_size(&self) -> usize {
        match self {
            ImageEncoderConfig::Resnet(c) => c.image_size,
            ImageEncoderConfig::Vit(c) => c.image_size,
        }
    }

    /// Builds the encoder on NCHW float `pixels` under `prefix`; returns `[N, feature_dim]`.
    pub fn build(&self, net: &mut Net, prefix: &str, pixels: &str) -> String {
        self.build_at_size(net, prefix, pixels, self.image_size())
    }

    /// [`ImageEncoderConfig::build`] for inputs of side `input_size` (e.g. DINO's local
    /// crops): a ResNet takes any size; a ViT resizes its position embeddings
    /// ([`vit_at_input_size`]).
    pub fn build_at_size(&self, net: &mut Net, prefix: &str, pixels: &str, input_size: usize) -> String {
        match self {
            ImageEncoderConfig::Resnet(c) => resnet(net, c, prefix, pixels),
            ImageEncoderConfig::Vit(c) => vit_at_input_size(net, c, prefix, pixels, input_size),
        }
    }
}

/// Text encoder names accepted by [`parse_text_encoder`], with what they are.
pub const TEXT_ENCODERS: &[(&str, &str)] = &[
    ("text-base", "BERT-base sizes: width 768, 12 blocks, 12 heads"),
    ("text-small", "width 256, 4 blocks, 4 heads"),
    ("text-tiny", "width 32, 2 blocks, 2 heads (tests, CPU recipes)"),
];

/// The text encoder `name` for a tokenizer with `vocab_size` tokens and inputs of at
/// most `max_length` tokens.
pub fn parse_text_encoder(name: &str, vocab_size: usize, max_length: usize) -> Result<TextConfig, ModelError> {
    if vocab_size == 0 || max_length == 0 {
        return Err(ModelError::Config("a text encoder needs a vocabulary and a maximum length".into()));
    }
    match name {
        "text-base" => Ok(TextConfig::base(vocab_size, max_length)),
        "text-small" => Ok(TextConfig::small(vocab_size, max_length)),
        "text-tiny" => Ok(TextConfig::tiny(vocab_size, max_length)),
        _ => {
            let known: Vec<&str> = TEXT_ENCODERS.iter().map(|(n, _)| *n).collect();
            Err(ModelError::Config(format!("unknown text encoder `{name}`; known: {}", known.join(", "))))
        }
    }
}

/// An image encoder a classifier is built with.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageEncoder {
    /// One of our architectures, trained from scratch or from a checkpoint.
    Builtin(ImageEncoderConfig),
    /// An ONNX export (`onnx:FILE[#OUTPUT]`).
    Onnx(OnnxImageEncoder),
    /// A Hugging Face folder's vision tower (`hf:DIR`).
    Hf(HfImageEncoder),
}

/// A text encoder a classifier is built with.
#[derive(Debug, Clone, PartialEq)]
pub enum TextEncoder {
    Builtin(TextConfig),
    Onnx(OnnxTextEncoder),
    /// A Hugging Face folder's text tower (`hf:DIR`).
    Hf(HfEncoder),
}

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
    fn open(dir: &Path, source: &EncoderSource, trainable: Trainable, vision: bool) -> Result<Self, ModelError> {
        let model = HfModel::open(dir)?;
        let (dim, tower) =
            if vision { (model.vision_feature_dim(), "vision") } else { (model.text_feature_dim(), "text") };
        let dim = dim.ok_or_else(|| {
            ModelError::Config(format!("{source}: this {} folder has no {tower} tower", model.model_type()))
        })?;
        Ok(HfEncoder { source: source.to_string(), model: Arc::new(model), trainable, dim })
    }
}

impl From<ImageEncoderConfig> for ImageEncoder {
    fn from(cfg: ImageEncoderConfig) -> Self {
        ImageEncoder::Builtin(cfg)
    }
}

impl From<TextConfig> for TextEncoder {
    fn from(cfg: TextConfig) -> Self {
        TextEncoder::Builtin(cfg)
    }
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
    /// Whether its weights train (ONNX encoders train all or nothing).
    pub trainable: bool,
}

impl PartialEq for OnnxEncoder {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.trainable == other.trainable
    }
}

impl OnnxEncoder {
    /// Loads `file` (external data included), keeps what computes `output`, and reads
    /// the features' width.
    pub fn load(source: &EncoderSource, trainable: Trainable) -> Result<Self, ModelError> {
        let EncoderSource::Onnx { file, output } = source else {
            return Err(ModelError::Config(format!("`{source}` is not an ONNX encoder")));
        };
        let trainable = match trainable {
            Trainable::LastBlocks(n) if n > 0 => {
                return Err(ModelError::Config(format!(
                    "{source}: trainable = \"last:{n}\" needs the encoder's block structure, which an ONNX \
                     graph does not state; use false (frozen) or true (all of it), or bring the encoder as \
                     an hf: folder"
                )));
            }
            t => t.any(),
        };
        let encoder =
            ImportedEncoder::load(file).and_then(|e| e.into_output(output.as_deref())).map_err(import_error)?;
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
        Ok(OnnxEncoder { source: source.to_string(), encoder: Arc::new(encoder), output, dim, trainable })
    }

    fn fail(&self, problem: String) -> ModelError {
        ModelError::Config(format!("{}: {problem}", self.source))
    }

    fn attach(&self, net: &mut Net, prefix: &str, inputs: &[(&str, &str)]) -> Result<String, ModelError> {
        let outputs = self.encoder.attach(net, prefix, inputs, self.trainable).map_err(import_error)?;
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
            Some(dims) => {
                return Err(onnx.fail(format!(
                    "image input `{}` is declared {}; it must be [N, 3, S, S] with S known (export it with a \
                     fixed image size)",
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

impl ImageEncoder {
    /// The encoder `spec` names (a built-in name, `onnx:FILE[#OUTPUT]` or `hf:DIR`),
    /// trained as `trainable` says. `preprocessor`, a Hugging Face
    /// `preprocessor_config.json`, sets an imported encoder's resize and normalisation
    /// (an `hf:` folder's own file is read when none is given).
    pub fn from_spec(spec: &str, trainable: Trainable, preprocessor: Option<&Path>) -> Result<Self, ModelError> {
        let source = EncoderSource::parse(spec)?;
        let mut encoder = match &source {
            EncoderSource::Builtin(name) => {
                builtin_trainable(name, trainable)?;
                if preprocessor.is_some() {
                    return Err(ModelError::Config(format!(
                        "`{name}`: model.image_preprocessor is for imported encoders; a built-in one letterboxes \
                         with ImageNet statistics"
                    )));
                }
                return Ok(ImageEncoder::Builtin(ImageEncoderConfig::parse(name)?));
            }
            EncoderSource::Onnx { .. } => ImageEncoder::Onnx(OnnxImageEncoder::load(&source, trainable)?),
            EncoderSource::HuggingFace(dir) => {
                let hf = HfEncoder::open(dir, &source, trainable, true)?;
                let own = dir.join("preprocessor_config.json");
                let size = hf.model.image_size().unwrap_or(0) as u32;
                let spec = match preprocessor {
                    None if own.is_file() => read_preprocessor(&own, &source)?,
                    _ => ImageSpec::clip(size),
                };
                ImageEncoder::Hf(HfImageEncoder { hf, spec })
            }
        };
        if let Some(path) = preprocessor {
            let spec = read_preprocessor(path, &source)?;
            match &mut encoder {
                ImageEncoder::Onnx(e) => e.spec = Some(spec),
                ImageEncoder::Hf(e) => e.spec = spec,
                ImageEncoder::Builtin(_) => {}
            }
        }
        let spec = encoder.image_spec();
        if spec.size as usize != encoder.image_size() {
            return Err(ModelError::Config(format!(
                "{source}: the preprocessing makes {0}×{0} images, the encoder takes {1}×{1}",
                spec.size,
                encoder.image_size()
            )));
        }
        Ok(encoder)
    }

    /// Square input side.
    pub fn image_size(&self) -> usize {
        match self {
            ImageEncoder::Builtin(c) => c.image_size(),
            ImageEncoder::Onnx(e) => e.image_size,
            ImageEncoder::Hf(e) => e.hf.model.image_size().unwrap_or(0),
        }
    }

    /// How images are prepared for it: a built-in encoder, or an ONNX export without a
    /// preprocessor config, letterboxes (bilinear, ImageNet statistics); an `hf:` folder
    /// follows its `preprocessor_config.json` (CLIP's preprocessing when it has none).
    pub fn image_spec(&self) -> ImageSpec {
        let letterbox = || ImageSpec::new(self.image_size() as u32, ResizeRule::Letterbox);
        match self {
            ImageEncoder::Builtin(_) => letterbox(),
            ImageEncoder::Onnx(e) => e.spec.unwrap_or_else(letterbox),
            ImageEncoder::Hf(e) => e.spec,
        }
    }

    /// Width of the features.
    pub fn feature_dim(&self) -> usize {
        match self {
            ImageEncoder::Builtin(c) => c.feature_dim(),
            ImageEncoder::Onnx(e) => e.onnx.dim,
            ImageEncoder::Hf(e) => e.hf.dim,
        }
    }

    /// Checks that the encoder can be built.
    pub fn validate(&self) -> Result<(), ModelError> {
        match self {
            ImageEncoder::Builtin(c) => c.validate(),
            ImageEncoder::Onnx(_) | ImageEncoder::Hf(_) => Ok(()),
        }
    }

    /// Builds the encoder on normalised float NCHW `pixels`; returns `[N, feature_dim]`.
    pub fn build(&self, net: &mut Net, prefix: &str, pixels: &str) -> Result<String, ModelError> {
        match self {
            ImageEncoder::Builtin(c) => Ok(c.build(net, prefix, pixels)),
            ImageEncoder::Onnx(e) => e.build(net, prefix, pixels),
            ImageEncoder::Hf(e) => Ok(e.hf.model.attach_vision(net, prefix, pixels, e.hf.trainable)?.value),
        }
    }
}

/// An `hf:` folder's vision tower and its preprocessing.
#[derive(Debug, Clone, PartialEq)]
pub struct HfImageEncoder {
    pub hf: HfEncoder,
    pub spec: ImageSpec,
}

fn read_preprocessor(path: &Path, source: &EncoderSource) -> Result<ImageSpec, ModelError> {
    ImageSpec::from_hf_preprocessor_config(path)
        .map_err(|e| ModelError::Config(format!("{source}: {}: {e}", path.display())))
}

impl TextEncoder {
    /// The encoder `spec` names for a tokenizer of `vocab_size` tokens and texts of at
    /// most `max_length` tokens (a built-in name, `onnx:FILE[#OUTPUT]` or `hf:DIR`; the
    /// imported ones bring their own vocabulary: the tokenizer must be the encoder's).
    pub fn from_spec(
        spec: &str,
        trainable: Trainable,
        vocab_size: usize,
        max_length: usize,
    ) -> Result<Self, ModelError> {
        match EncoderSource::parse(spec)? {
            EncoderSource::Builtin(name) => {
                builtin_trainable(&name, trainable)?;
                Ok(TextEncoder::Builtin(parse_text_encoder(&name, vocab_size, max_length)?))
            }
            source @ EncoderSource::Onnx { .. } => Ok(TextEncoder::Onnx(OnnxTextEncoder::load(&source, trainable)?)),
            EncoderSource::HuggingFace(dir) => {
                let source = EncoderSource::HuggingFace(dir.clone());
                let hf = HfEncoder::open(&dir, &source, trainable, false)?;
                if let Some(limit) = hf.model.max_text_length()
                    && max_length > limit
                {
                    return Err(ModelError::Config(format!(
                        "{source}: model.max_length = {max_length}, but the encoder's positions cover {limit} tokens"
                    )));
                }
                Ok(TextEncoder::Hf(hf))
            }
        }
    }

    /// Width of the features.
    pub fn feature_dim(&self) -> usize {
        match self {
            TextEncoder::Builtin(c) => c.feature_dim(),
            TextEncoder::Onnx(e) => e.onnx.dim,
            TextEncoder::Hf(e) => e.dim,
        }
    }

    /// Builds the encoder on int64 `ids` / `mask` `[N, L]`; returns `[N, feature_dim]`.
    pub fn build(&self, net: &mut Net, prefix: &str, ids: &str, mask: &str) -> Result<String, ModelError> {
        match self {
            TextEncoder::Builtin(c) => Ok(text_encoder(net, c, prefix, ids, mask)),
            TextEncoder::Onnx(e) => e.build(net, prefix, ids, mask),
            TextEncoder::Hf(e) => Ok(e.model.attach_text(net, prefix, ids, mask, e.trainable)?.value),
        }
    }
}

/// Built-in encoders train all or nothing (`--freeze-encoders` or `trainable = false`).
fn builtin_trainable(name: &str, trainable: Trainable) -> Result<(), ModelError> {
    match trainable {
        Trainable::LastBlocks(n) if n > 0 => Err(ModelError::Config(format!(
            "`{name}`: trainable = \"last:{n}\" is for hf: encoders; a built-in encoder trains (true) or not (false)"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sizes_parse() {
        let cfg = ImageEncoderConfig::parse("vit-b16@384").unwrap();
        assert_eq!(cfg.image_size(), 384);
        assert_eq!(cfg.feature_dim(), 768);
        assert_eq!(ImageEncoderConfig::parse("resnet50").unwrap().feature_dim(), 2048);
        assert_eq!(ImageEncoderConfig::parse("resnet-tiny").unwrap().feature_dim(), 64);
        for (name, _) in IMAGE_ENCODERS {
            ImageEncoderConfig::parse(name).unwrap();
        }
        let err = ImageEncoderConfig::parse("vit-b16@300").unwrap_err().to_string();
        assert!(err.contains("multiple of its patch size"), "{err}");
        let err = ImageEncoderConfig::parse("resnet51").unwrap_err().to_string();
        assert!(err.contains("unknown image encoder `resnet51`") && err.contains("resnet50"), "{err}");
        assert!(ImageEncoderConfig::parse("resnet50@big").is_err());
        assert!(parse_text_encoder("text-huge", 100, 16).is_err());
        assert_eq!(parse_text_encoder("text-small", 100, 16).unwrap().dim, 256);
    }
}
