//! `config.json` of a Hugging Face model folder, read into the shapes our towers need.
//! Fields a file leaves out take `transformers`' defaults for that config class
//! (`CLIPTextConfig`, `CLIPVisionConfig`, `BertConfig`, `RobertaConfig`,
//! `DistilBertConfig`), as `from_pretrained` would.

use serde_json::{Map, Value};

/// The `model_type`s this module builds.
pub const SUPPORTED_MODEL_TYPES: &[&str] =
    &["clip", "clip_vision_model", "clip_text_model", "bert", "distilbert", "roberta"];

/// A `hidden_act` / `activation` of the MLPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `x · sigmoid(1.702 x)` (OpenAI's CLIP).
    QuickGelu,
    /// Exact GELU (erf).
    Gelu,
    /// GELU's tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    Relu,
    /// `x · sigmoid(x)` (`silu`, `swish`).
    Silu,
}

impl Activation {
    fn parse(name: &str) -> Result<Self, String> {
        Ok(match name {
            "quick_gelu" => Activation::QuickGelu,
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            other => {
                return Err(format!(
                    "activation `{other}` is not supported (quick_gelu, gelu, gelu_new, gelu_pytorch_tanh, \
                     gelu_fast, relu, silu)"
                ));
            }
        })
    }
}

/// The pre-norm encoder both CLIP towers share.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipEncoderConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub act: Activation,
    pub eps: f32,
    /// Dropout on the attention probabilities (Train graphs only). CLIP's layers have
    /// no other dropout (its config's `dropout` is unused by `transformers`).
    pub attention_dropout: f32,
}

/// `CLIPVisionConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipVisionConfig {
    pub encoder: ClipEncoderConfig,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
}

impl ClipVisionConfig {
    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
    /// Tokens including the class token.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

/// `CLIPTextConfig`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipTextConfig {
    pub encoder: ClipEncoderConfig,
    pub vocab_size: usize,
    pub max_position_embeddings: usize,
    /// Pooling position: argmax of the ids when 2 (the legacy configs), else the first
    /// position holding this id.
    pub eos_token_id: i64,
}

/// Which member of the BERT family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BertFlavour {
    Bert,
    Roberta,
    DistilBert,
}

impl BertFlavour {
    /// The prefix task models (`BertForMaskedLM`, …) put before the encoder's names.
    pub fn base_prefix(self) -> &'static str {
        match self {
            BertFlavour::Bert => "bert.",
            BertFlavour::Roberta => "roberta.",
            BertFlavour::DistilBert => "distilbert.",
        }
    }
}

/// `BertConfig`, `RobertaConfig` and `DistilBertConfig` in one shape.
#[derive(Debug, Clone, PartialEq)]
pub struct BertConfig {
    pub flavour: BertFlavour,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub layers: usize,
    pub heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    /// 0 for DistilBERT (no token type embeddings).
    pub type_vocab_size: usize,
    pub eps: f32,
    pub act: Activation,
    pub pad_token_id: i64,
    pub hidden_dropout: f32,
    pub attention_dropout: f32,
}

/// What a folder holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    /// A CLIP model, either tower, or both. `projection_dim` sizes the projections
    /// when their weights exist.
    Clip {
        vision: Option<ClipVisionConfig>,
        text: Option<ClipTextConfig>,
        projection_dim: usize,
    },
    Bert(BertConfig),
}

/// A parsed `config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct HfConfig {
    pub model_type: String,
    pub arch: Architecture,
}

impl HfConfig {
    /// Parses the text of a `config.json`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("config.json is not valid JSON: {e}"))?;
        let root = value.as_object().ok_or("config.json is not a JSON object")?;
        let model_type =
            root.get("model_type").and_then(Value::as_str).ok_or("config.json has no `model_type`")?.to_string();
        let fields = Fields(root);
        let arch = match model_type.as_str() {
            "clip" => Architecture::Clip {
                vision: Some(clip_vision(&Fields(&sub_config(root, "vision_config")?))?),
                text: Some(clip_text(&Fields(&sub_config(root, "text_config")?))?),
                projection_dim: fields.usize("projection_dim", 512)?,
            },
            "clip_vision_model" => Architecture::Clip {
                vision: Some(clip_vision(&fields)?),
                text: None,
                projection_dim: fields.usize("projection_dim", 512)?,
            },
            "clip_text_model" => Architecture::Clip {
                vision: None,
                text: Some(clip_text(&fields)?),
                projection_dim: fields.usize("projection_dim", 512)?,
            },
            "bert" => Architecture::Bert(bert(&fields, BertFlavour::Bert)?),
            "roberta" => Architecture::Bert(bert(&fields, BertFlavour::Roberta)?),
            "distilbert" => Architecture::Bert(distilbert(&fields)?),
            other => {
                return Err(format!(
                    "model_type `{other}` is not supported; supported: {}",
                    SUPPORTED_MODEL_TYPES.join(", ")
                ));
            }
        };
        Ok(HfConfig { model_type, arch })
    }
}

/// `text_config` / `vision_config`, with the legacy `*_config_dict` laid over it as
/// `CLIPConfig` does.
fn sub_config(root: &Map<String, Value>, key: &str) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for k in [key.to_string(), format!("{key}_dict")] {
        match root.get(&k) {
            None | Some(Value::Null) => {}
            Some(Value::Object(m)) => out.extend(m.clone()),
            Some(_) => return Err(format!("config.json: `{k}` is not an object")),
        }
    }
    Ok(out)
}

fn clip_encoder(f: &Fields, d: [usize; 4]) -> Result<ClipEncoderConfig, String> {
    Ok(ClipEncoderConfig {
        hidden_size: f.usize("hidden_size", d[0])?,
        intermediate_size: f.usize("intermediate_size", d[1])?,
        layers: f.usize("num_hidden_layers", d[2])?,
        heads: f.usize("num_attention_heads", d[3])?,
        act: Activation::parse(&f.str("hidden_act", "quick_gelu")?)?,
        eps: f.f32("layer_norm_eps", 1e-5)?,
        attention_dropout: f.f32("attention_dropout", 0.0)?,
    })
}

fn clip_vision(f: &Fields) -> Result<ClipVisionConfig, String> {
    let cfg = ClipVisionConfig {
        encoder: clip_encoder(f, [768, 3072, 12, 12])?,
        image_size: f.usize("image_size", 224)?,
        patch_size: f.usize("patch_size", 32)?,
        num_channels: f.usize("num_channels", 3)?,
    };
    if cfg.patch_size == 0 || !cfg.image_size.is_multiple_of(cfg.patch_size) {
        return Err(format!("vision image_size {} is not a multiple of patch_size {}", cfg.image_size, cfg.patch_size));
    }
    check_heads("vision", &cfg.encoder)?;
    Ok(cfg)
}

fn clip_text(f: &Fields) -> Result<ClipTextConfig, String> {
    let cfg = ClipTextConfig {
        encoder: clip_encoder(f, [512, 2048, 12, 8])?,
        vocab_size: f.usize("vocab_size", 49408)?,
        max_position_embeddings: f.usize("max_position_embeddings", 77)?,
        eos_token_id: f.i64("eos_token_id", 49407)?,
    };
    check_heads("text", &cfg.encoder)?;
    Ok(cfg)
}

fn check_heads(tower: &str, e: &ClipEncoderConfig) -> Result<(), String> {
    if e.heads == 0 || !e.hidden_size.is_multiple_of(e.heads) {
        return Err(format!("{tower} hidden_size {} is not a multiple of {} heads", e.hidden_size, e.heads));
    }
    Ok(())
}

fn bert(f: &Fields, flavour: BertFlavour) -> Result<BertConfig, String> {
    let kind = f.str("position_embedding_type", "absolute")?;
    if kind != "absolute" {
        return Err(format!("position_embedding_type `{kind}` is not supported (only `absolute`)"));
    }
    let default_pad = if flavour == BertFlavour::Roberta { 1 } else { 0 };
    let cfg = BertConfig {
        flavour,
        vocab_size: f.usize("vocab_size", 30522)?,
        hidden_size: f.usize("hidden_size", 768)?,
        layers: f.usize("num_hidden_layers", 12)?,
        heads: f.usize("num_attention_heads", 12)?,
        intermediate_size: f.usize("intermediate_size", 3072)?,
        max_position_embeddings: f.usize("max_position_embeddings", 512)?,
        type_vocab_size: f.usize("type_vocab_size", 2)?,
        eps: f.f32("layer_norm_eps", 1e-12)?,
        act: Activation::parse(&f.str("hidden_act", "gelu")?)?,
        pad_token_id: f.i64("pad_token_id", default_pad)?,
        hidden_dropout: f.f32("hidden_dropout_prob", 0.1)?,
        attention_dropout: f.f32("attention_probs_dropout_prob", 0.1)?,
    };
    check_bert(&cfg)
}

fn distilbert(f: &Fields) -> Result<BertConfig, String> {
    let cfg = BertConfig {
        flavour: BertFlavour::DistilBert,
        vocab_size: f.usize("vocab_size", 30522)?,
        hidden_size: f.usize("dim", 768)?,
        layers: f.usize("n_layers", 6)?,
        heads: f.usize("n_heads", 12)?,
        intermediate_size: f.usize("hidden_dim", 3072)?,
        max_position_embeddings: f.usize("max_position_embeddings", 512)?,
        type_vocab_size: 0,
        // DistilBERT's LayerNorms have a fixed epsilon.
        eps: 1e-12,
        act: Activation::parse(&f.str("activation", "gelu")?)?,
        pad_token_id: f.i64("pad_token_id", 0)?,
        hidden_dropout: f.f32("dropout", 0.1)?,
        attention_dropout: f.f32("attention_dropout", 0.1)?,
    };
    check_bert(&cfg)
}

fn check_bert(cfg: &BertConfig) -> Result<BertConfig, String> {
    if cfg.heads == 0 || !cfg.hidden_size.is_multiple_of(cfg.heads) {
        return Err(format!("hidden_size {} is not a multiple of {} heads", cfg.hidden_size, cfg.heads));
    }
    if cfg.flavour == BertFlavour::Roberta && cfg.max_position_embeddings <= (cfg.pad_token_id + 1).max(0) as usize {
        return Err(format!(
            "max_position_embeddings {} leaves no positions after padding_idx {}",
            cfg.max_position_embeddings, cfg.pad_token_id
        ));
    }
    Ok(cfg.clone())
}

/// Typed reads of optional fields, with defaults.
struct Fields<'a>(&'a Map<String, Value>);

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }
    fn usize(&self, key: &str, default: usize) -> Result<usize, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => {
                v.as_u64().map(|n| n as usize).ok_or_else(|| format!("config.json: `{key}` = {v} is not a count"))
            }
        }
    }
    fn i64(&self, key: &str, default: i64) -> Result<i64, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v.as_i64().ok_or_else(|| format!("config.json: `{key}` = {v} is not an integer")),
        }
    }
    fn f32(&self, key: &str, default: f32) -> Result<f32, String> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => {
                v.as_f64().map(|x| x as f32).ok_or_else(|| format!("config.json: `{key}` = {v} is not a number"))
            }
        }
    }
    fn str(&self, key: &str, default: &str) -> Result<String, String> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(v) => {
                v.as_str().map(str::to_string).ok_or_else(|| format!("config.json: `{key}` = {v} is not a string"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_what_a_file_leaves_out() {
        let cfg = HfConfig::parse(r#"{"model_type": "clip", "text_config": {"eos_token_id": 2}}"#).unwrap();
        let Architecture::Clip { vision: Some(v), text: Some(t), projection_dim } = cfg.arch else { panic!() };
        assert_eq!((v.image_size, v.patch_size, v.tokens(), projection_dim), (224, 32, 50, 512));
        assert_eq!((t.encoder.hidden_size, t.encoder.heads, t.eos_token_id), (512, 8, 2));
        assert_eq!(t.encoder.act, Activation::QuickGelu);
    }

    #[test]
    fn unknown_model_types_and_activations_are_named() {
        let err = HfConfig::parse(r#"{"model_type": "llama"}"#).unwrap_err();
        assert!(err.contains("`llama`") && err.contains("clip, clip_vision_model"), "{err}");
        let err = HfConfig::parse(r#"{"model_type": "bert", "hidden_act": "mish"}"#).unwrap_err();
        assert!(err.contains("`mish`"), "{err}");
        assert!(HfConfig::parse(r#"{"model_type": "bert", "position_embedding_type": "relative_key"}"#).is_err());
    }
}
