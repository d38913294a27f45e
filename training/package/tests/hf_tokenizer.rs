//! Tokenizers of Hugging Face model folders give exactly transformers' ids and masks
//! (`input_ids` / `attention_mask` in each fixture's `reference.safetensors`, for the
//! captions in `reference.json`: truncation, empty text, emoji, accents, upper case),
//! and the self-contained `tokenizer.json` written for a package keeps them.

use std::path::PathBuf;

use memeguard_package::{HfTokenizer, TextTokenizer, TokenizerError, write_hf_tokenizer};
use safetensors::{Dtype, SafeTensors};

const MODELS: [&str; 4] = ["clip-tiny", "bert-tiny", "distilbert-tiny", "roberta-tiny"];

fn fixture(model: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hf").join(model);
    // Committed fixtures: their absence is a broken checkout, never a reason to skip.
    assert!(dir.is_dir(), "fixture folder {} is missing", dir.display());
    dir
}

struct Reference {
    captions: Vec<String>,
    max_length: usize,
    ids: Vec<Vec<i64>>,
    mask: Vec<Vec<i64>>,
}

fn reference(model: &str) -> Reference {
    let dir = fixture(model);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let captions: Vec<String> =
        meta["captions"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect();
    let max_length = meta["max_length"].as_u64().unwrap() as usize;
    let bytes = std::fs::read(dir.join("reference.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let rows = |name: &str| -> Vec<Vec<i64>> {
        let view = tensors.tensor(name).unwrap();
        assert_eq!((view.dtype(), view.shape()), (Dtype::I64, &[captions.len(), max_length][..]), "{model} {name}");
        let flat: Vec<i64> =
            view.data().chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes"))).collect();
        flat.chunks(max_length).map(<[i64]>::to_vec).collect()
    };
    Reference { ids: rows("input_ids"), mask: rows("attention_mask"), captions, max_length }
}

fn assert_encodes_like_transformers(model: &str, tokenizer: &TextTokenizer, want: &Reference) {
    for (i, caption) in want.captions.iter().enumerate() {
        let got = tokenizer.encode(caption, want.max_length);
        assert_eq!(got.ids, want.ids[i], "{model}: ids of {caption:?}");
        assert_eq!(got.mask, want.mask[i], "{model}: attention mask of {caption:?}");
    }
}

#[test]
fn hf_folders_encode_exactly_like_transformers() {
    for model in MODELS {
        let want = reference(model);
        let hf = HfTokenizer::load(&fixture(model)).unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(hf.max_length, want.max_length, "{model}: max length from the encoder");
        assert_encodes_like_transformers(model, &hf.tokenizer, &want);
    }
}

#[test]
fn the_written_tokenizer_json_alone_encodes_the_same() {
    let out = tempfile::tempdir().unwrap();
    for model in MODELS {
        let path = out.path().join(format!("{model}.json"));
        let written = write_hf_tokenizer(&fixture(model), &path).unwrap();
        let alone = TextTokenizer::from_file(&path).unwrap();
        assert_eq!(alone.pad_id(), written.tokenizer.pad_id(), "{model}");
        assert_encodes_like_transformers(model, &alone, &reference(model));
    }
    // CLIP pads with end-of-text (id 1), which only tokenizer_config.json names.
    let clip = TextTokenizer::from_file(&out.path().join("clip-tiny.json")).unwrap();
    assert_eq!(clip.pad_id(), clip.token_id("<|endoftext|>").unwrap());
}

#[test]
fn a_bert_tokenizer_without_its_post_processor_is_refused() {
    let text = std::fs::read_to_string(fixture("bert-tiny").join("tokenizer.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["post_processor"] = serde_json::Value::Null;
    let err = TextTokenizer::from_json(&json.to_string()).unwrap_err();
    assert!(matches!(err, TokenizerError::MissingFraming { .. }), "{err}");
    assert!(err.to_string().contains("no post_processor"), "{err}");

    // The same through a folder: the message names the folder and the file.
    let folder = tempfile::tempdir().unwrap();
    std::fs::write(folder.path().join("tokenizer.json"), json.to_string()).unwrap();
    let err = HfTokenizer::load(folder.path()).unwrap_err().to_string();
    let named = folder.path().display().to_string();
    assert!(err.contains(&named) && err.contains("tokenizer.json has the framing tokens [CLS] and [SEP]"), "{err}");
}

#[test]
fn a_folder_without_tokenizer_json_says_what_to_do() {
    let empty = tempfile::tempdir().unwrap();
    let err = HfTokenizer::load(empty.path()).unwrap_err().to_string();
    assert!(err.contains("has no tokenizer.json") && err.contains("use_fast=True"), "{err}");
}
