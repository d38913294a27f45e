//! Image and text encoders: the architectures recipes and the command line refer to by
//! name (`resnet50`, `vit-b16@384`, `text-small`...), and encoders brought from
//! elsewhere (`onnx:FILE[#OUTPUT]`, `hf:DIR`), behind one [`ImageEncoder`] /
//! [`TextEncoder`] a classifier is built with. Each image encoder says how its pixels
//! are prepared ([`ImageEncoder::image_spec`]): what the package's manifest records and
//! the graph's normalisation uses.

pub mod blocks;
mod imported;

use std::path::Path;

use memeguard_package::{ImageSpec, ResizeRule};
use serde::{Deserialize, Serialize};

use self::imported::read_preprocessor;
pub use self::imported::{HfEncoder, HfImageEncoder, OnnxEncoder, OnnxImageEncoder, OnnxTextEncoder};
use crate::models::ModelError;
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
            EncoderSource::Onnx { .. } => {
                // An export with a symbolic image side takes the preprocessing's.
                let size = match preprocessor {
                    Some(path) => Some(read_preprocessor(path, &source)?.size as usize),
                    None => None,
                };
                ImageEncoder::Onnx(OnnxImageEncoder::load_sized(&source, trainable, size)?)
            }
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
            "`{name}`: trainable = \"last:{n}\" is for hf: and onnx: encoders; a built-in encoder trains (true) or not (false)"
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
