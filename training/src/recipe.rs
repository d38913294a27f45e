//! Recipes: a whole training setup in one TOML file (method, model, schedule, data
//! options), so a run is reproducible from its run directory's `config.toml`.
//! `training/recipes/` holds the study's setups and tiny CPU recipes.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::models::ModelError;
use crate::models::classifier::ClassifierConfig;
use crate::models::encoders::{ImageEncoder, ImageEncoderConfig, TextEncoder, parse_text_encoder};
use crate::models::fusion::{ConcatHead, HateClipperHead, HeadConfig, Interaction};
use crate::models::heads::DinoHeadConfig;
use crate::models::source::{EncoderSource, Trainable};
use crate::objectives::cass::CassConfig;
use crate::objectives::cass_mm::CassMmConfig;
use crate::objectives::clip::ClipConfig;
use crate::objectives::dino::DinoConfig;
use crate::objectives::{self, Objective};
use crate::run::TrainConfig;

/// The training method of a recipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Clip,
    Dino,
    Cass,
    CassMm,
    /// Supervised finetuning of a classifier.
    Finetune,
}

impl Method {
    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Method::Clip => "clip",
            Method::Dino => "dino",
            Method::Cass => "cass",
            Method::CassMm => "cass-mm",
            Method::Finetune => "finetune",
        }
    }
}

/// Which inputs a classifier uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Modality {
    Image,
    Text,
    #[default]
    Multimodal,
}

/// The model part of a recipe. Encoders are named as `memeguard-train models` lists
/// them (`resnet50`, `vit-b16@384`, `resnet-tiny@64`, `text-tiny`...); a finetune's
/// `image` and `text` may also be a Hugging Face folder, `hf:DIR`, or an ONNX export,
/// `onnx:FILE[#OUTPUT]` (`#OUTPUT` picks the features of a joint two-tower export, e.g.
/// `#image_embeds`). Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSpec {
    /// Image encoder (CLIP, DINO, finetune).
    pub image: String,
    /// How much of the finetune's image encoder trains: `true` (all), `false` (frozen;
    /// only the head trains) or `"last:N"` (its last N blocks; hf: encoders only).
    pub image_trainable: Trainable,
    /// A Hugging Face `preprocessor_config.json` saying how images are resized and
    /// normalised for an imported image encoder (empty: an `hf:` folder's own file, else
    /// letterbox with ImageNet statistics).
    pub image_preprocessor: String,
    /// CNN and ViT (CASS, CASS-MM).
    pub cnn: String,
    pub vit: String,
    /// Text encoder.
    pub text: String,
    /// How much of the finetune's text encoder trains (as `image_trainable`).
    pub text_trainable: Trainable,
    /// Tokenizer vocabulary size (when a tokenizer is trained) and maximum text length.
    pub vocab_size: usize,
    pub max_length: usize,
    /// Projection / fusion width of the pretraining heads.
    pub projection_dim: usize,
    pub dropout: f32,
    /// Finetune: which inputs and which head (`concat`, `cross`, `align`).
    pub modality: Modality,
    pub head: String,
    /// `cross` / `align` heads: the projection width (Hate-CLIPper's `map_dim`; 32 when
    /// absent) and the pre-output layers (1 when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_map_dim: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_pre_output_layers: Option<usize>,
    /// DINO: prototypes, local crops and their size.
    pub dino_out_dim: usize,
    pub local_crops: usize,
    pub local_size: usize,
}

impl Default for ModelSpec {
    fn default() -> Self {
        ModelSpec {
            image: "resnet-tiny@64".into(),
            image_trainable: Trainable::All,
            image_preprocessor: String::new(),
            cnn: "resnet-tiny@64".into(),
            vit: "vit-tiny@64".into(),
            text: "text-tiny".into(),
            text_trainable: Trainable::All,
            vocab_size: 2000,
            max_length: 24,
            projection_dim: 64,
            dropout: 0.1,
            modality: Modality::Multimodal,
            head: "concat".into(),
            head_map_dim: None,
            head_pre_output_layers: None,
            dino_out_dim: 256,
            local_crops: 2,
            local_size: 32,
        }
    }
}

/// Data options of a recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSpec {
    /// Augment training images (method-specific pipelines); off for evaluation always.
    pub augment: bool,
    /// Sample classes equally often (finetuning).
    pub class_balanced: bool,
    /// Early stopping: epochs without a dev AUROC improvement (finetuning; 0 = off).
    pub patience: u64,
}

impl Default for DataSpec {
    fn default() -> Self {
        DataSpec { augment: true, class_balanced: false, patience: 0 }
    }
}

/// A whole training setup. Unknown keys are refused (a typo such as `train.epoch`
/// would otherwise be silently ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub method: Method,
    #[serde(default)]
    pub model: ModelSpec,
    #[serde(default)]
    pub train: TrainConfig,
    #[serde(default)]
    pub data: DataSpec,
    /// A finetune with RGCL's retrieval-guided contrastive loss added to the
    /// cross-entropy (frozen imported encoders only: it trains on cached features).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rgcl: Option<crate::objectives::rgcl::RgclConfig>,
}

/// Errors reading recipes.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read recipe {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("recipe {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl Recipe {
    /// Reads a recipe file.
    pub fn load(path: &Path) -> Result<Self, RecipeError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| RecipeError::Read { path: path.display().to_string(), source })?;
        toml::from_str(&text)
            .map_err(|e| RecipeError::Parse { path: path.display().to_string(), message: e.to_string() })
    }

    /// The recipe as TOML (what a run directory's `config.toml` holds).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// The objective's training graph for a tokenizer of `vocab_size` tokens.
    pub fn objective(&self, vocab_size: usize, seed: u64) -> Result<Objective, RecipeError> {
        let m = &self.model;
        let text = || parse_text_encoder(builtin(&m.text, "model.text")?, vocab_size, m.max_length);
        let image = |spec: &str, key: &str| ImageEncoderConfig::parse(builtin(spec, key)?);
        Ok(match self.method {
            Method::Clip => objectives::clip::build(
                &ClipConfig {
                    image: image(&m.image, "model.image")?,
                    text: text()?,
                    projection_dim: m.projection_dim,
                    dropout: m.dropout,
                },
                seed,
            )?,
            Method::Cass => objectives::cass::build(
                &CassConfig {
                    cnn: image(&m.cnn, "model.cnn")?,
                    vit: image(&m.vit, "model.vit")?,
                    projection_dim: m.projection_dim,
                    dropout: m.dropout,
                },
                seed,
            )?,
            Method::CassMm => objectives::cass_mm::build(
                &CassMmConfig {
                    cnn: image(&m.cnn, "model.cnn")?,
                    vit: image(&m.vit, "model.vit")?,
                    text: text()?,
                    fusion_dim: m.projection_dim,
                },
                seed,
            )?,
            Method::Dino => {
                let mut head = if m.dino_out_dim >= 4096 {
                    DinoHeadConfig::reference(m.dino_out_dim)
                } else {
                    DinoHeadConfig::tiny()
                };
                head.out_dim = m.dino_out_dim;
                let mut cfg = DinoConfig::reference(image(&m.image, "model.image")?, head);
                cfg.local_crops = m.local_crops;
                cfg.local_size = m.local_size;
                objectives::dino::build(&cfg, seed)?
            }
            Method::Finetune => objectives::classify::build(&self.classifier(vocab_size)?, seed)?,
        })
    }

    /// The classifier this recipe finetunes (and exports). Imported encoders are
    /// loaded here, once: build every graph from the one configuration.
    pub fn classifier(&self, vocab_size: usize) -> Result<ClassifierConfig, RecipeError> {
        let m = &self.model;
        let image = match m.modality {
            Modality::Text => None,
            _ => Some(ImageEncoder::from_spec(
                &m.image,
                m.image_trainable,
                (!m.image_preprocessor.is_empty()).then(|| Path::new(&m.image_preprocessor)),
            )?),
        };
        let text = match m.modality {
            Modality::Image => None,
            _ => Some(TextEncoder::from_spec(&m.text, m.text_trainable, vocab_size, m.max_length)?),
        };
        let hate_clipper = |interaction| {
            let mut head = HateClipperHead::new(interaction);
            head.map_dim = m.head_map_dim.unwrap_or(head.map_dim);
            head.pre_output_layers = m.head_pre_output_layers.unwrap_or(head.pre_output_layers);
            HeadConfig::HateClipper(head)
        };
        let head = match m.head.as_str() {
            "concat" => HeadConfig::Concat(ConcatHead::default()),
            "cross" => hate_clipper(Interaction::Cross),
            "align" => hate_clipper(Interaction::Align),
            other => {
                return Err(ModelError::Config(format!("unknown head `{other}`: use concat, cross or align")).into());
            }
        };
        Ok(ClassifierConfig { image, text, head })
    }

    /// The image side the recipe's built-in models take (an imported encoder's comes
    /// from its file: [`ClassifierConfig`]'s image encoder says).
    pub fn image_size(&self) -> Result<usize, RecipeError> {
        let (spec, key) = match self.method {
            Method::Cass | Method::CassMm => (&self.model.cnn, "model.cnn"),
            _ => (&self.model.image, "model.image"),
        };
        Ok(ImageEncoderConfig::parse(builtin(spec, key)?)?.image_size())
    }

    /// Whether the finetune's text encoder is imported (it brings its own vocabulary, so
    /// the tokenizer must be the encoder's, not one trained on the data).
    pub fn imports_text_encoder(&self) -> Result<bool, RecipeError> {
        Ok(self.model.modality != Modality::Image && EncoderSource::parse(&self.model.text)?.is_imported())
    }

    /// Rewrites the paths of imported encoders (`onnx:`, `hf:`) and of
    /// `model.image_preprocessor` as absolute paths (relative to the current folder).
    pub fn absolute_encoder_paths(&mut self) -> Result<(), RecipeError> {
        let absolute =
            |p: &Path| std::path::absolute(p).map_err(|e| ModelError::Config(format!("{}: {e}", p.display())));
        for spec in [&mut self.model.image, &mut self.model.text] {
            let rewritten = match EncoderSource::parse(spec)? {
                EncoderSource::Builtin(_) => continue,
                EncoderSource::HuggingFace(dir) => EncoderSource::HuggingFace(absolute(&dir)?),
                EncoderSource::Onnx { file, output } => EncoderSource::Onnx { file: absolute(&file)?, output },
            };
            *spec = rewritten.to_string();
        }
        if !self.model.image_preprocessor.is_empty() {
            self.model.image_preprocessor = absolute(Path::new(&self.model.image_preprocessor))?.display().to_string();
        }
        Ok(())
    }
}

/// `spec` if it names a built-in encoder: pretraining builds our own architectures.
fn builtin<'a>(spec: &'a str, key: &str) -> Result<&'a str, ModelError> {
    match EncoderSource::parse(spec)? {
        EncoderSource::Builtin(_) => Ok(spec.trim()),
        _ => Err(ModelError::Config(format!(
            "{key} = `{spec}`: encoders from elsewhere (hf:, onnx:) are for finetune recipes; pretraining \
             builds a built-in architecture (see `memeguard-train models`)"
        ))),
    }
}
