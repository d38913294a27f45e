//! Where an encoder comes from, as recipes and the command line name it, and how much
//! of it trains. One parser for `model.image`, `model.text` and every flag that takes
//! an encoder:
//!
//! - a built-in architecture name (`resnet50`, `vit-b16@384`, `text-small`, …);
//! - `hf:DIR`: a Hugging Face model folder (`config.json`, `model.safetensors` or
//!   sharded safetensors with their index, `tokenizer.json`, `preprocessor_config.json`);
//! - `onnx:FILE[#OUTPUT]`: any ONNX encoder (inline or external-data weights); `#OUTPUT`
//!   picks the output that carries the features (a joint two-tower export has several).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::models::ModelError;

/// An encoder as a recipe names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncoderSource {
    /// One of our own architectures, by name (with an optional `@size`).
    Builtin(String),
    /// A Hugging Face model folder.
    HuggingFace(PathBuf),
    /// An ONNX file and, optionally, the output that carries the features.
    Onnx { file: PathBuf, output: Option<String> },
}

impl EncoderSource {
    /// Parses `name`, `hf:DIR` or `onnx:FILE[#OUTPUT]`.
    pub fn parse(spec: &str) -> Result<Self, ModelError> {
        let spec = spec.trim();
        if let Some(dir) = spec.strip_prefix("hf:") {
            if dir.is_empty() {
                return Err(ModelError::Config("`hf:` needs a folder, e.g. `hf:models/clip-vit-base-patch32`".into()));
            }
            return Ok(EncoderSource::HuggingFace(PathBuf::from(dir)));
        }
        if let Some(rest) = spec.strip_prefix("onnx:") {
            let (file, output) = match rest.rsplit_once('#') {
                Some((file, output)) if !output.is_empty() => (file, Some(output.to_string())),
                Some((file, _)) => (file, None),
                None => (rest, None),
            };
            if file.is_empty() {
                return Err(ModelError::Config(
                    "`onnx:` needs a file, e.g. `onnx:exports/clip-vision.onnx#image_embeds`".into(),
                ));
            }
            return Ok(EncoderSource::Onnx { file: PathBuf::from(file), output });
        }
        if spec.is_empty() {
            return Err(ModelError::Config("an encoder needs a name, `hf:DIR` or `onnx:FILE[#OUTPUT]`".into()));
        }
        Ok(EncoderSource::Builtin(spec.to_string()))
    }

    /// True for encoders brought from elsewhere (`hf:` or `onnx:`).
    pub fn is_imported(&self) -> bool {
        !matches!(self, EncoderSource::Builtin(_))
    }
}

impl fmt::Display for EncoderSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncoderSource::Builtin(name) => f.write_str(name),
            EncoderSource::HuggingFace(dir) => write!(f, "hf:{}", dir.display()),
            EncoderSource::Onnx { file, output: Some(output) } => write!(f, "onnx:{}#{output}", file.display()),
            EncoderSource::Onnx { file, output: None } => write!(f, "onnx:{}", file.display()),
        }
    }
}

/// How much of an encoder trains: `false` (frozen), `true` (all of it) or `"last:N"`
/// (frozen but for its last N blocks, plus what comes after them: final norm,
/// pooling, projection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Trainable {
    Frozen,
    #[default]
    All,
    LastBlocks(usize),
}

impl Trainable {
    /// Parses `false`, `true` or `last:N`.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        match text.trim() {
            "false" | "frozen" => Ok(Trainable::Frozen),
            "true" | "all" => Ok(Trainable::All),
            other => match other.strip_prefix("last:").map(str::parse::<usize>) {
                Some(Ok(n)) => Ok(Trainable::LastBlocks(n)),
                _ => Err(ModelError::Config(format!(
                    "trainable = `{other}`: use false (frozen), true (all) or \"last:N\" (the last N blocks)"
                ))),
            },
        }
    }

    /// Whether anything of the encoder trains.
    pub fn any(self) -> bool {
        !matches!(self, Trainable::Frozen | Trainable::LastBlocks(0))
    }

    /// Whether block `index` of `count` blocks (0-based, input side first) trains.
    pub fn block_trains(self, index: usize, count: usize) -> bool {
        match self {
            Trainable::Frozen => false,
            Trainable::All => true,
            Trainable::LastBlocks(n) => index + n >= count,
        }
    }

    /// Whether the parts after the last block (final norm, pooling, projection) train.
    pub fn tail_trains(self) -> bool {
        self.any()
    }
}

impl fmt::Display for Trainable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trainable::Frozen => f.write_str("false"),
            Trainable::All => f.write_str("true"),
            Trainable::LastBlocks(n) => write!(f, "last:{n}"),
        }
    }
}

impl Serialize for Trainable {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Trainable::Frozen => s.serialize_bool(false),
            Trainable::All => s.serialize_bool(true),
            Trainable::LastBlocks(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Trainable {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(false) => Ok(Trainable::Frozen),
            Raw::Bool(true) => Ok(Trainable::All),
            Raw::Text(text) => Trainable::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(EncoderSource::parse("resnet50@224").unwrap(), EncoderSource::Builtin("resnet50@224".into()));
        assert_eq!(EncoderSource::parse("hf:models/clip").unwrap(), EncoderSource::HuggingFace("models/clip".into()));
        assert_eq!(
            EncoderSource::parse("onnx:a/b.onnx#image_embeds").unwrap(),
            EncoderSource::Onnx { file: "a/b.onnx".into(), output: Some("image_embeds".into()) }
        );
        assert_eq!(
            EncoderSource::parse("onnx:b.onnx").unwrap(),
            EncoderSource::Onnx { file: "b.onnx".into(), output: None }
        );
        for bad in ["", "hf:", "onnx:", "onnx:#out"] {
            assert!(EncoderSource::parse(bad).is_err(), "{bad:?}");
        }
        for spec in ["text-tiny", "hf:x/y", "onnx:m.onnx#o", "onnx:m.onnx"] {
            assert_eq!(EncoderSource::parse(spec).unwrap().to_string(), spec);
        }
    }

    #[test]
    fn trainable_reads_bools_and_last_n() {
        #[derive(Deserialize, Serialize)]
        struct T {
            t: Trainable,
        }
        let read = |s: &str| toml::from_str::<T>(s).map(|t| t.t);
        assert_eq!(read("t = false").unwrap(), Trainable::Frozen);
        assert_eq!(read("t = true").unwrap(), Trainable::All);
        assert_eq!(read("t = \"last:2\"").unwrap(), Trainable::LastBlocks(2));
        assert!(read("t = \"last:x\"").is_err());
        assert!(read("t = 3").is_err());
        assert_eq!(toml::to_string(&T { t: Trainable::LastBlocks(1) }).unwrap().trim(), "t = \"last:1\"");
        let last1 = Trainable::LastBlocks(1);
        assert!(!last1.block_trains(0, 2) && last1.block_trains(1, 2) && last1.tail_trains());
        assert!(!Trainable::Frozen.any() && !Trainable::LastBlocks(0).any());
    }
}
