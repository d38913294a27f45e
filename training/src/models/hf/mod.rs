//! Hugging Face CLIP and BERT-family encoders built natively into a [`Net`] from a
//! model folder, with no conversion step: `config.json` says the architecture, the
//! safetensors (one `model.safetensors`, or shards with `model.safetensors.index.json`)
//! give the weights, in float32, float16 or bfloat16.
//!
//! ```text
//! config.rs   config.json → tower shapes (transformers' defaults for what a file omits)
//! weights.rs  safetensors headers; tensors read on attach, converted to float32
//! layers.rs   parameters under HF names; linear, LayerNorm, attention, masks
//! clip.rs     CLIP vision and text towers
//! bert.rs     BERT, RoBERTa, DistilBERT
//! ```
//!
//! Parameters are named `{prefix}.{HF tensor name}`: BERT-family names without the
//! task model's `bert.` / `roberta.` / `distilbert.` prefix (folders saved with or
//! without it read the same), and LayerNorm `gamma`/`beta` read as `weight`/`bias`.
//! Linear weights keep the `[out, in]` layout of the files. Under
//! [`Weights::Hollow`](crate::models::Weights::Hollow) the same parameters are
//! registered with shapes only and nothing is read; in nets with
//! [`Weights::Random`](crate::models::Weights::Random) the folder's values are read
//! (the seed does not apply to them).
//!
//! Opening a folder checks every tensor the towers will ask for against the files,
//! and reports every missing, unexpected or wrongly shaped tensor in one error.
//! Tensors of task heads (`cls.*`, `lm_head.*`, `vocab_*`, classifiers), the
//! `position_ids` / `token_type_ids` buffers older checkpoints store and CLIP's
//! `logit_scale` are not part of the encoders and are ignored.

mod bert;
mod clip;
pub mod config;
mod layers;
pub mod weights;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memeguard_onnx::builder::value_dims;
use memeguard_onnx::{DataType, Dim};

use crate::graph_spec::Mode;
use crate::models::ModelError;
use crate::models::hf::config::{Architecture, BertFlavour, HfConfig};
use crate::models::hf::layers::Loader;
use crate::models::hf::weights::WeightIndex;
use crate::models::net::Net;
use crate::models::source::Trainable;

/// Features an attached tower produced: a float `[N, dim]` value in the Net.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncoderFeatures {
    pub value: String,
    pub dim: usize,
}

/// Everything a tower computes, for callers that want more than the features.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TowerOutputs {
    /// `[N, T, hidden]`: CLIP vision, the encoder's output (before `post_layernorm`);
    /// CLIP text, after `final_layer_norm`; BERT family, the last layer's output. The
    /// same as `transformers`' `last_hidden_state`.
    pub last_hidden_state: String,
    /// `[N, hidden]`: `transformers`' `pooler_output` (BERT/RoBERTa without a pooler
    /// and DistilBERT: the first token's hidden state).
    pub pooled: EncoderFeatures,
    /// `[N, projection_dim]`: CLIP's projection of `pooled` (not L2-normalised), when
    /// the folder has one.
    pub projected: Option<EncoderFeatures>,
}

impl TowerOutputs {
    /// The features a head attaches to: the projection when there is one, else the
    /// pooled output.
    pub fn features(&self) -> EncoderFeatures {
        self.projected.clone().unwrap_or_else(|| self.pooled.clone())
    }
}

/// A Hugging Face model folder: its configuration and an index of its weights.
#[derive(Debug, Clone)]
pub struct HfModel {
    dir: PathBuf,
    config: HfConfig,
    weights: WeightIndex,
    /// Every tensor the towers use, with its shape.
    used: BTreeMap<String, Vec<usize>>,
}

/// Tensor names (after prefix stripping) that are not part of the encoders.
fn ignored(name: &str) -> bool {
    const HEADS: &[&str] = &[
        "cls.",
        "lm_head.",
        "vocab_transform.",
        "vocab_layer_norm.",
        "vocab_projector.",
        "classifier.",
        "pre_classifier.",
        "qa_outputs.",
    ];
    HEADS.iter().any(|h| name.starts_with(h))
        || name.ends_with("position_ids")
        || name.ends_with("token_type_ids")
        || name == "logit_scale"
}

impl HfModel {
    /// Reads `dir/config.json` and the safetensors headers, and checks that the
    /// weights are exactly what the configured towers need.
    pub fn open(dir: &Path) -> Result<HfModel, ModelError> {
        let fail = |what: String| ModelError::Config(format!("hf:{}: {what}", dir.display()));
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| fail(format!("cannot read config.json ({e}); is this a Hugging Face model folder?")))?;
        let config = HfConfig::parse(&text).map_err(fail)?;
        let mut weights = WeightIndex::open(dir).map_err(fail)?;
        let prefix = match &config.arch {
            Architecture::Bert(b) => Some(b.flavour.base_prefix()),
            Architecture::Clip { .. } => None,
        };
        weights.canonicalise(prefix);
        let mut model = HfModel { dir: dir.to_path_buf(), config, weights, used: BTreeMap::new() };
        model.used = model.check_weights().map_err(fail)?;
        Ok(model)
    }

    /// Builds every tower once with a recording loader and compares what it asked for
    /// with the files; returns what the towers use.
    fn check_weights(&self) -> Result<BTreeMap<String, Vec<usize>>, String> {
        let mut net = Net::hollow("hf_check", Mode::Infer);
        let mut loader = Loader::recording(&self.weights);
        let build_error = |e: ModelError| e.to_string();
        if let Some(size) = self.image_size() {
            let channels = self.vision_channels().unwrap_or(3) as i64;
            let pixels = net.b.input(
                "pixels",
                DataType::Float,
                &[Dim::from("batch"), channels.into(), (size as i64).into(), (size as i64).into()],
            );
            self.vision_tower(&mut net, &mut loader, &pixels, Trainable::Frozen).map_err(build_error)?;
        }
        if self.has_text() {
            let ids = net.b.input("input_ids", DataType::Int64, &[Dim::from("batch"), "sequence".into()]);
            let mask = net.b.input("attention_mask", DataType::Int64, &[Dim::from("batch"), "sequence".into()]);
            self.text_tower(&mut net, &mut loader, &ids, &mask, Trainable::Frozen).map_err(build_error)?;
        }
        let wanted: BTreeMap<String, Vec<usize>> = loader.into_recorded().into_iter().collect();
        let mut missing = Vec::new();
        let mut wrong_shape = Vec::new();
        for (name, shape) in &wanted {
            match self.weights.shape(name) {
                None => missing.push(format!("{name} {shape:?}")),
                Some(found) if found != shape.as_slice() => {
                    wrong_shape.push(format!("{name}: expected {shape:?}, found {found:?}"))
                }
                Some(_) => {}
            }
        }
        let unexpected: Vec<String> = self
            .weights
            .names()
            .filter(|n| !wanted.contains_key(*n) && !ignored(n))
            .map(|n| format!("{n} {:?}", self.weights.shape(n).unwrap_or_default()))
            .collect();
        if missing.is_empty() && wrong_shape.is_empty() && unexpected.is_empty() {
            return Ok(wanted);
        }
        let mut message = format!("the weights do not match config.json (model_type `{}`):", self.model_type());
        for (what, list) in [("missing", &missing), ("wrong shape", &wrong_shape), ("unexpected", &unexpected)] {
            if !list.is_empty() {
                message.push_str(&format!("\n  {what} ({}): {}", list.len(), abbreviate(list)));
            }
        }
        Err(message)
    }

    /// Number of parameters (elements) of all towers together.
    pub fn parameter_count(&self) -> usize {
        self.used.values().map(|shape| shape.iter().product::<usize>()).sum()
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed configuration.
    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// `config.json`'s `model_type`.
    pub fn model_type(&self) -> &str {
        &self.config.model_type
    }

    /// Whether the folder has an image tower.
    pub fn has_vision(&self) -> bool {
        matches!(&self.config.arch, Architecture::Clip { vision: Some(_), .. })
    }

    /// Whether the folder has a text tower.
    pub fn has_text(&self) -> bool {
        match &self.config.arch {
            Architecture::Clip { text, .. } => text.is_some(),
            Architecture::Bert(_) => true,
        }
    }

    /// The vision tower's input side (`image_size`).
    pub fn image_size(&self) -> Option<usize> {
        match &self.config.arch {
            Architecture::Clip { vision: Some(v), .. } => Some(v.image_size),
            _ => None,
        }
    }

    fn vision_channels(&self) -> Option<usize> {
        match &self.config.arch {
            Architecture::Clip { vision: Some(v), .. } => Some(v.num_channels),
            _ => None,
        }
    }

    /// The longest token sequence the position embeddings cover (RoBERTa: less the
    /// `padding_idx + 1` positions it skips).
    pub fn max_text_length(&self) -> Option<usize> {
        match &self.config.arch {
            Architecture::Clip { text: Some(t), .. } => Some(t.max_position_embeddings),
            Architecture::Clip { text: None, .. } => None,
            Architecture::Bert(b) if b.flavour == BertFlavour::Roberta => {
                Some(b.max_position_embeddings - (b.pad_token_id + 1) as usize)
            }
            Architecture::Bert(b) => Some(b.max_position_embeddings),
        }
    }

    /// Width of what [`attach_vision`](Self::attach_vision) returns.
    pub fn vision_feature_dim(&self) -> Option<usize> {
        match &self.config.arch {
            Architecture::Clip { vision: Some(v), projection_dim, .. } => {
                Some(if self.weights.contains("visual_projection.weight") {
                    *projection_dim
                } else {
                    v.encoder.hidden_size
                })
            }
            _ => None,
        }
    }

    /// Width of what [`attach_text`](Self::attach_text) returns.
    pub fn text_feature_dim(&self) -> Option<usize> {
        match &self.config.arch {
            Architecture::Clip { text: Some(t), projection_dim, .. } => {
                Some(if self.weights.contains("text_projection.weight") {
                    *projection_dim
                } else {
                    t.encoder.hidden_size
                })
            }
            Architecture::Clip { text: None, .. } => None,
            Architecture::Bert(b) => Some(b.hidden_size),
        }
    }

    /// Vision tower on `pixels` (`[N, 3, S, S]` float, already normalised with the encoder's
    /// mean/std); returns the projected features (before any L2 normalisation) when the
    /// model has a projection, else the pooled output.
    pub fn attach_vision(
        &self,
        net: &mut Net,
        prefix: &str,
        pixels: &str,
        trainable: Trainable,
    ) -> Result<EncoderFeatures, ModelError> {
        Ok(self.attach_vision_outputs(net, prefix, pixels, trainable)?.features())
    }

    /// Text tower on `input_ids` / `attention_mask` (`[N, L]` int64); projected (CLIP) or
    /// pooled (BERT family).
    pub fn attach_text(
        &self,
        net: &mut Net,
        prefix: &str,
        input_ids: &str,
        attention_mask: &str,
        trainable: Trainable,
    ) -> Result<EncoderFeatures, ModelError> {
        Ok(self.attach_text_outputs(net, prefix, input_ids, attention_mask, trainable)?.features())
    }

    /// [`attach_vision`](Self::attach_vision) with every output of the tower.
    pub fn attach_vision_outputs(
        &self,
        net: &mut Net,
        prefix: &str,
        pixels: &str,
        trainable: Trainable,
    ) -> Result<TowerOutputs, ModelError> {
        let mut loader = Loader::new(&self.weights, prefix);
        self.vision_tower(net, &mut loader, pixels, trainable)
    }

    /// [`attach_text`](Self::attach_text) with every output of the tower.
    pub fn attach_text_outputs(
        &self,
        net: &mut Net,
        prefix: &str,
        input_ids: &str,
        attention_mask: &str,
        trainable: Trainable,
    ) -> Result<TowerOutputs, ModelError> {
        let mut loader = Loader::new(&self.weights, prefix);
        self.text_tower(net, &mut loader, input_ids, attention_mask, trainable)
    }

    fn vision_tower(
        &self,
        net: &mut Net,
        loader: &mut Loader,
        pixels: &str,
        trainable: Trainable,
    ) -> Result<TowerOutputs, ModelError> {
        match &self.config.arch {
            Architecture::Clip { vision: Some(v), projection_dim, .. } => {
                // When `pixels` is a graph input, its declared size must be the one the
                // position embeddings were trained for (no interpolation here).
                let declared = net.b.graph().input.iter().find(|i| i.name() == pixels).and_then(value_dims);
                let want = [v.num_channels, v.image_size, v.image_size].map(|d| Dim::Known(d as i64));
                if let Some(dims) = declared.filter(|d| d.len() == 4 && d[1..] != want[..]) {
                    return Err(ModelError::Config(format!(
                        "hf:{}: pixels `{pixels}` are declared {dims:?}; this vision tower takes [N, {}, {}, {}]",
                        self.dir.display(),
                        v.num_channels,
                        v.image_size,
                        v.image_size
                    )));
                }
                let projection = loader.has("visual_projection.weight").then_some(*projection_dim);
                clip::vision(net, loader, v, projection, pixels, trainable)
            }
            _ => Err(self.no_tower("vision")),
        }
    }

    fn text_tower(
        &self,
        net: &mut Net,
        loader: &mut Loader,
        input_ids: &str,
        attention_mask: &str,
        trainable: Trainable,
    ) -> Result<TowerOutputs, ModelError> {
        match &self.config.arch {
            Architecture::Clip { text: Some(t), projection_dim, .. } => {
                let projection = loader.has("text_projection.weight").then_some(*projection_dim);
                clip::text(net, loader, t, projection, input_ids, attention_mask, trainable)
            }
            Architecture::Bert(b) => bert::text(net, loader, b, input_ids, attention_mask, trainable),
            Architecture::Clip { text: None, .. } => Err(self.no_tower("text")),
        }
    }

    fn no_tower(&self, which: &str) -> ModelError {
        ModelError::Config(format!(
            "hf:{} (model_type `{}`) has no {which} tower",
            self.dir.display(),
            self.model_type()
        ))
    }
}

/// The first entries of a long list, and how many more there are.
fn abbreviate(list: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut text = list.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ");
    if list.len() > SHOWN {
        text.push_str(&format!(", … and {} more", list.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_and_buffers_are_not_encoder_tensors() {
        for name in ["cls.predictions.bias", "lm_head.dense.weight", "embeddings.position_ids", "logit_scale"] {
            assert!(ignored(name), "{name}");
        }
        assert!(!ignored("encoder.layer.0.output.dense.weight"));
    }
}
