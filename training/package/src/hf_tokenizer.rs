//! A Hugging Face model folder's tokenizer, made self-contained for a package.
//!
//! `save_pretrained` spreads a tokenizer over several files: `tokenizer.json` (the
//! pipeline, often without padding settings), `tokenizer_config.json` (`pad_token`,
//! `model_max_length`) and sometimes `special_tokens_map.json`; the model's own
//! `config.json` bounds the length by its position embeddings. [`HfTokenizer::load`]
//! reads them all; [`write_hf_tokenizer`] writes one `tokenizer.json` with the padding id
//! inside, which is all a package needs.

use std::path::Path;

use serde_json::Value;

use crate::tokenizer::{TextTokenizer, TokenizerError};

/// Values of `model_max_length` at or above this mean "not set" (transformers writes
/// `int(1e30)` then).
const UNSET_MAX_LENGTH: u64 = 1_000_000;

/// Model types whose position table reserves `padding_idx + 1 = 2` rows, so their text
/// length is `max_position_embeddings − 2`.
const OFFSET_POSITION_MODELS: [&str; 4] = ["roberta", "xlm-roberta", "camembert", "longformer"];

/// A Hugging Face folder's tokenizer with the padding token the folder names and the
/// longest text (special tokens included) its encoder takes.
#[derive(Debug, Clone)]
pub struct HfTokenizer {
    pub tokenizer: TextTokenizer,
    /// `model_max_length` from `tokenizer_config.json`, bounded by `config.json`'s
    /// position embeddings (`text_config` for CLIP-style dual encoders).
    pub max_length: usize,
}

impl HfTokenizer {
    /// Reads `dir/tokenizer.json` with its own normaliser, pre-tokeniser and
    /// post-processor; the padding token from `tokenizer.json`'s `padding`, else
    /// `tokenizer_config.json`'s `pad_token`, else `special_tokens_map.json`'s, else the
    /// usual names (`[PAD]`, `<pad>`, `<|endoftext|>`); the maximum length as described
    /// on [`HfTokenizer::max_length`].
    pub fn load(dir: &Path) -> Result<HfTokenizer, TokenizerError> {
        let folder_err = |problem: String| TokenizerError::HfFolder { dir: dir.display().to_string(), problem };
        let tokenizer_path = dir.join("tokenizer.json");
        if !tokenizer_path.is_file() {
            return Err(folder_err(
                "has no tokenizer.json (a slow tokenizer only?); save it with a fast tokenizer: \
                 AutoTokenizer.from_pretrained(dir, use_fast=True).save_pretrained(dir)"
                    .into(),
            ));
        }
        let json = std::fs::read_to_string(&tokenizer_path)
            .map_err(|source| TokenizerError::Read { path: tokenizer_path.display().to_string(), source })?;
        let has_padding = serde_json::from_str::<Value>(&json).is_ok_and(|v| v["padding"].is_object());
        let mut tokenizer = TextTokenizer::from_json(&json).map_err(|e| folder_err(format!("tokenizer.json {e}")))?;

        let tokenizer_config = read_json(dir, "tokenizer_config.json")?;
        let special_tokens = read_json(dir, "special_tokens_map.json")?;
        if !has_padding {
            let named =
                [&tokenizer_config, &special_tokens].into_iter().flatten().find_map(|c| token_name(&c["pad_token"]));
            if let Some(pad) = named {
                tokenizer = tokenizer.with_pad_token(&pad).map_err(|e| folder_err(format!("pad_token: {e}")))?;
            }
        }

        let model_max = tokenizer_config
            .as_ref()
            .and_then(|c| c["model_max_length"].as_u64())
            .filter(|&n| n > 0 && n < UNSET_MAX_LENGTH);
        let positions = read_json(dir, "config.json")?.as_ref().and_then(position_limit);
        let max_length = match (model_max, positions) {
            (Some(m), Some(p)) => m.min(p),
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => {
                return Err(folder_err(
                    "says nothing about the longest text: neither tokenizer_config.json's model_max_length \
                     nor config.json's max_position_embeddings is there"
                        .into(),
                ));
            }
        };
        Ok(HfTokenizer { tokenizer, max_length: max_length as usize })
    }
}

/// Loads the tokenizer of the Hugging Face folder `dir` ([`HfTokenizer::load`]) and writes
/// it to `out` as one self-contained `tokenizer.json` (padding id inside) for a package.
pub fn write_hf_tokenizer(dir: &Path, out: &Path) -> Result<HfTokenizer, TokenizerError> {
    let loaded = HfTokenizer::load(dir)?;
    std::fs::write(out, loaded.tokenizer.to_json())
        .map_err(|source| TokenizerError::Write { path: out.display().to_string(), source })?;
    Ok(loaded)
}

/// `dir/name` as JSON, `None` when the file is absent.
fn read_json(dir: &Path, name: &str) -> Result<Option<Value>, TokenizerError> {
    let path = dir.join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(TokenizerError::Read { path: path.display().to_string(), source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| TokenizerError::HfFolder { dir: dir.display().to_string(), problem: format!("{name}: {e}") })
}

/// A special token as `tokenizer_config.json` writes it: a string, or an `AddedToken`
/// object with `content`.
fn token_name(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// The longest input the model's position table takes (the text tower's, for CLIP).
fn position_limit(config: &Value) -> Option<u64> {
    let text = if config["text_config"].is_object() { &config["text_config"] } else { config };
    let positions = text["max_position_embeddings"].as_u64()?;
    let model_type = config["model_type"].as_str().unwrap_or("");
    let reserved = if OFFSET_POSITION_MODELS.contains(&model_type) { 2 } else { 0 };
    positions.checked_sub(reserved).filter(|&n| n > 0)
}
