//! The one tokenisation: text -> `input_ids` + `attention_mask` of a fixed length.
//! Training and serving both call [`TextTokenizer::encode`], so a text is tokenised
//! the same way in both.
//!
//! The stored format is Hugging Face `tokenizers` JSON (`tokenizer.json`), used as the
//! encoder defines it: its own normaliser, pre-tokeniser, model and post-processor (the
//! framing: BERT's `[CLS] … [SEP]`, CLIP's `<|startoftext|> … <|endoftext|>`, RoBERTa's
//! `<s> … </s>`). This module only truncates (keeping the framing) and pads to the
//! manifest's length. The padding id is stored inside the JSON (`padding.pad_id`), so a
//! package's `tokenizer.json` alone says how to pad; [`crate::hf_tokenizer`] brings a
//! Hugging Face folder's tokenizer (whose pad token may sit in `tokenizer_config.json`)
//! into that form.

use std::path::Path;

use std::collections::BTreeMap;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, Normalizer, OffsetReferential, OffsetType, PaddingParams, PaddingStrategy, PostProcessor,
    PreTokenizedString, PreTokenizer, Tokenizer, TruncationDirection,
};

use crate::wordpiece::{CONTINUATION, train_vocab};

/// Special tokens of a trained WordPiece vocabulary, with ids 0..4 in this order.
pub const SPECIAL_TOKENS: [&str; 4] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"];

/// Framing pairs that a vocabulary's encoder always puts around a text: a tokenizer.json
/// with both tokens of a pair but no post-processor would silently drop them.
const FRAMING_PAIRS: [(&str, &str); 2] = [("[CLS]", "[SEP]"), ("<|startoftext|>", "<|endoftext|>")];

/// Tokens tried, in order, as the padding token when the JSON names none.
const PAD_FALLBACKS: [&str; 3] = ["[PAD]", "<pad>", "<|endoftext|>"];

/// A merge must occur at least this often in the training words: rarer pairs would
/// only memorise single words.
pub const MIN_MERGE_FREQUENCY: u64 = 2;

/// Errors loading, training or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("is not a valid Hugging Face tokenizers file: {0}")]
    Parse(String),
    #[error("loads but cannot encode text: {0}")]
    Unusable(String),
    #[error("vocab_size {0} is too small: it must exceed the {n} special tokens", n = SPECIAL_TOKENS.len())]
    VocabTooSmall(usize),
    #[error("training the WordPiece vocabulary failed: {0}")]
    Train(String),
    #[error("encoding failed: {0}")]
    Encode(String),
    #[error(
        "has the framing tokens {open} and {close} in its vocabulary but no post_processor, so encoding \
         would leave them out; export the tokenizer with its post-processor (transformers' \
         PreTrainedTokenizerFast.save_pretrained writes it)"
    )]
    MissingFraming { open: String, close: String },
    #[error("the padding token `{0}` is not in the vocabulary")]
    UnknownPadToken(String),
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("Hugging Face tokenizer folder {dir}: {problem}")]
    HfFolder { dir: String, problem: String },
}

/// Token ids and mask of one text, both exactly `max_length` long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub ids: Vec<i64>,
    /// 1 for real tokens (special tokens included), 0 for padding.
    pub mask: Vec<i64>,
}

/// A `tokenizers::Tokenizer` plus the padding id, with truncation and padding done here
/// (the manifest's `max_length` decides the length, not settings inside the JSON).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pad_id: u32,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer").field("vocab_size", &self.vocab_size()).field("pad_id", &self.pad_id).finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json` text. Refuses a tokenizer that cannot encode a sample text,
    /// so [`TextTokenizer::encode`] does not fail later on a served request, and one whose
    /// vocabulary has framing tokens (`[CLS]`/`[SEP]`, `<|startoftext|>`/`<|endoftext|>`)
    /// but no post-processor to add them.
    pub fn from_json(json: &str) -> Result<Self, TokenizerError> {
        let inner: Tokenizer = json.parse().map_err(|e: tokenizers::Error| TokenizerError::Parse(e.to_string()))?;
        if inner.get_post_processor().is_none() {
            let framing = FRAMING_PAIRS
                .iter()
                .find(|(open, close)| inner.token_to_id(open).is_some() && inner.token_to_id(close).is_some());
            if let Some((open, close)) = framing {
                return Err(TokenizerError::MissingFraming { open: open.to_string(), close: close.to_string() });
            }
        }
        let tokenizer = Self::wrap(inner);
        tokenizer.try_encode("a Sample, text: 123 ÉÀ 😀", 8).map_err(|e| TokenizerError::Unusable(e.to_string()))?;
        Ok(tokenizer)
    }

    /// Loads a `tokenizer.json` file.
    pub fn from_file(path: &Path) -> Result<Self, TokenizerError> {
        let json = std::fs::read_to_string(path)
            .map_err(|source| TokenizerError::Read { path: path.display().to_string(), source })?;
        Self::from_json(&json)
    }

    /// The tokenizer as `tokenizer.json` text, its padding id inside (`padding.pad_id`).
    pub fn to_json(&self) -> String {
        self.inner.to_string(true).expect("a loaded tokenizer always serialises")
    }

    /// Trains a BERT-style WordPiece vocabulary of at most `vocab_size` tokens on `texts`:
    /// lower-cased, NFD with accents stripped, BERT pre-tokeniser (whitespace and
    /// punctuation), `##` continuation prefix, `[PAD]`=0 `[UNK]`=1 `[CLS]`=2 `[SEP]`=3,
    /// and `[CLS] text [SEP]` framing. Every character seen is in the vocabulary both as
    /// a word start and as a continuation. The same texts give the same vocabulary
    /// (see [`crate::wordpiece`] for why this does not use the library's trainer).
    pub fn train_wordpiece(texts: &[String], vocab_size: usize) -> Result<Self, TokenizerError> {
        if vocab_size <= SPECIAL_TOKENS.len() {
            return Err(TokenizerError::VocabTooSmall(vocab_size));
        }
        let train_err = |e: tokenizers::Error| TokenizerError::Train(e.to_string());
        let normalizer = BertNormalizer::new(true, true, Some(true), true);
        let mut words: BTreeMap<String, u64> = BTreeMap::new();
        for text in texts {
            let mut split = PreTokenizedString::from(text.as_str());
            split.normalize(|s| normalizer.normalize(s)).map_err(train_err)?;
            BertPreTokenizer.pre_tokenize(&mut split).map_err(train_err)?;
            for (word, _, _) in split.get_splits(OffsetReferential::Original, OffsetType::Byte) {
                *words.entry(word.to_string()).or_default() += 1;
            }
        }
        let vocab = train_vocab(&words, &SPECIAL_TOKENS, vocab_size, MIN_MERGE_FREQUENCY);
        let vocab: ahash::AHashMap<String, u32> =
            vocab.into_iter().enumerate().map(|(id, token)| (token, id as u32)).collect();
        let model = WordPiece::builder()
            .vocab(vocab)
            .unk_token(SPECIAL_TOKENS[1].to_string())
            .continuing_subword_prefix(CONTINUATION.to_string())
            .build()
            .map_err(train_err)?;
        let mut inner = Tokenizer::new(model);
        inner
            .with_normalizer(Some(normalizer))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_decoder(Some(WordPieceDecoder::default()));
        inner.add_special_tokens(&SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect::<Vec<_>>());
        let id = |token: &str| {
            inner
                .token_to_id(token)
                .ok_or_else(|| TokenizerError::Train(format!("{token} is not in the trained vocabulary")))
        };
        for (expected, token) in SPECIAL_TOKENS.iter().enumerate() {
            if id(token)? != expected as u32 {
                return Err(TokenizerError::Train(format!("{token} got id {}, expected {expected}", id(token)?)));
            }
        }
        let framing = BertProcessing::new(
            (SPECIAL_TOKENS[3].into(), id(SPECIAL_TOKENS[3])?),
            (SPECIAL_TOKENS[2].into(), id(SPECIAL_TOKENS[2])?),
        );
        inner.with_post_processor(Some(framing));
        Ok(Self::wrap(inner))
    }

    /// Encodes `text` to exactly `max_length` ids: the tokenizer's framing (`[CLS] .. [SEP]`
    /// for ours) around the text's tokens, the text truncated at the end so the framing
    /// fits, then padding. If `max_length` is smaller than the framing itself, the
    /// framed sequence is cut to `max_length`.
    ///
    /// Never fails for a tokenizer that [`from_json`](Self::from_json) accepted; if the
    /// underlying library still errors, the text is treated as empty and a warning logged.
    pub fn encode(&self, text: &str, max_length: usize) -> Encoded {
        self.try_encode(text, max_length).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "tokenizer failed on a text; encoding it as empty text");
            self.try_encode("", max_length).expect("a validated tokenizer encodes the empty text")
        })
    }

    /// [`encode`](Self::encode), with the library's error returned instead of the fallback.
    pub fn try_encode(&self, text: &str, max_length: usize) -> Result<Encoded, TokenizerError> {
        let encode_err = |e: tokenizers::Error| TokenizerError::Encode(e.to_string());
        let mut encoding = self.inner.encode(text, false).map_err(encode_err)?;
        let framing = self.inner.get_post_processor().map_or(0, |p| p.added_tokens(false));
        encoding.truncate(max_length.saturating_sub(framing), 0, TruncationDirection::Right);
        let encoding = self.inner.post_process(encoding, None, true).map_err(encode_err)?;
        let mut ids: Vec<i64> = encoding.get_ids().iter().map(|&id| i64::from(id)).collect();
        let mut mask: Vec<i64> = encoding.get_attention_mask().iter().map(|&m| i64::from(m)).collect();
        ids.resize(max_length, i64::from(self.pad_id));
        mask.resize(max_length, 0);
        Ok(Encoded { ids, mask })
    }

    /// Number of token ids (added tokens included): embeddings need this many rows.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id used for padding.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// The id of `token`, if it is in the vocabulary.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The same tokenizer padding with `token` (which must be in the vocabulary).
    pub fn with_pad_token(self, token: &str) -> Result<Self, TokenizerError> {
        let pad_id = self.inner.token_to_id(token).ok_or_else(|| TokenizerError::UnknownPadToken(token.to_string()))?;
        Ok(Self::with_pad_id(self.inner, pad_id))
    }

    /// Takes over a loaded tokenizer: its padding id is its own padding settings', else
    /// the first of [`PAD_FALLBACKS`] in the vocabulary, else 0 (the mask makes the value
    /// irrelevant to a model that respects it).
    fn wrap(inner: Tokenizer) -> Self {
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| PAD_FALLBACKS.iter().find_map(|t| inner.token_to_id(t)))
            .unwrap_or(0);
        Self::with_pad_id(inner, pad_id)
    }

    /// Records `pad_id` in the tokenizer's own padding settings (so `to_json` carries it),
    /// as "pad to the longest in the batch", which leaves the single texts `encode` hands
    /// it unpadded; removes its truncation. Both are done by `encode` to the manifest's length.
    fn with_pad_id(mut inner: Tokenizer, pad_id: u32) -> Self {
        let pad_token = inner.id_to_token(pad_id).unwrap_or_default();
        inner.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token,
            ..PaddingParams::default()
        }));
        inner.with_truncation(None).expect("removing truncation cannot fail");
        TextTokenizer { inner, pad_id }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus() -> Vec<String> {
        [
            "when you realise it's monday again",
            "Look at this café, naïve résumé!",
            "nobody: absolutely nobody: me at 3am",
            "this is fine. everything is fine.",
            "when the code compiles on the first try",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn training_is_deterministic_and_special_tokens_come_first() {
        let a = TextTokenizer::train_wordpiece(&corpus(), 120).unwrap();
        let b = TextTokenizer::train_wordpiece(&corpus(), 120).unwrap();
        assert_eq!(a.to_json(), b.to_json());
        for (i, t) in SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(a.token_id(t), Some(i as u32));
        }
        assert!(a.vocab_size() <= 120 && a.vocab_size() > 30, "{}", a.vocab_size());
    }

    #[test]
    fn encodes_with_framing_truncation_and_padding() {
        let t = TextTokenizer::train_wordpiece(&corpus(), 200).unwrap();
        let (cls, sep, pad) = (2, 3, 0);
        let short = t.encode("this is fine", 10);
        assert_eq!(short.ids.len(), 10);
        assert_eq!(short.mask.len(), 10);
        let real = short.mask.iter().filter(|&&m| m == 1).count();
        assert_eq!(&short.mask[..real], vec![1; real].as_slice());
        assert_eq!(short.ids[0], cls);
        assert_eq!(short.ids[real - 1], sep);
        assert!(short.ids[real..].iter().all(|&i| i == pad));
        assert_eq!(real, 2 + 3, "[CLS] this is fine [SEP]");

        let long = t.encode(&corpus().join(" "), 6);
        assert_eq!(long.mask, vec![1; 6]);
        assert_eq!((long.ids[0], long.ids[5]), (cls, sep), "framing survives truncation");
        assert_eq!(&long.ids[1..5], &t.encode(&corpus().join(" "), 40).ids[1..5], "truncation keeps the start");

        assert_eq!(t.encode("anything", 1).ids, vec![cls]);
        assert_eq!(t.encode("", 3).ids, vec![cls, sep, pad]);
    }

    #[test]
    fn normalises_case_and_accents() {
        let t = TextTokenizer::train_wordpiece(&corpus(), 200).unwrap();
        assert_eq!(t.encode("CAFÉ Naïve", 8), t.encode("cafe naive", 8));
        let unknown = t.encode("ζζζ", 4);
        assert_eq!(unknown.ids[1], 1, "unseen script is [UNK]");
    }

    #[test]
    fn json_round_trip_keeps_behaviour() {
        let t = TextTokenizer::train_wordpiece(&corpus(), 150).unwrap();
        let back = TextTokenizer::from_json(&t.to_json()).unwrap();
        assert_eq!(back.to_json(), t.to_json());
        for text in corpus() {
            assert_eq!(back.encode(&text, 12), t.encode(&text, 12));
        }
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(TextTokenizer::from_json("{}"), Err(TokenizerError::Parse(_))));
        assert!(matches!(TextTokenizer::train_wordpiece(&corpus(), 4), Err(TokenizerError::VocabTooSmall(4))));
        let err = TextTokenizer::from_file(Path::new("/nonexistent/tokenizer.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/tokenizer.json"), "{err}");
        let t = TextTokenizer::train_wordpiece(&corpus(), 150).unwrap();
        let mut json: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        json["post_processor"] = serde_json::Value::Null;
        let err = TextTokenizer::from_json(&json.to_string()).unwrap_err();
        assert!(matches!(err, TokenizerError::MissingFraming { .. }), "{err}");
        assert!(err.to_string().contains("[CLS] and [SEP]"), "{err}");
        assert!(matches!(t.with_pad_token("<nope>"), Err(TokenizerError::UnknownPadToken(_))));
    }

    #[test]
    fn the_padding_id_travels_inside_the_json() {
        let t = TextTokenizer::train_wordpiece(&corpus(), 150).unwrap().with_pad_token("[SEP]").unwrap();
        assert_eq!(t.pad_id(), 3);
        let json: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
        assert_eq!(json["padding"]["pad_id"], 3);
        let back = TextTokenizer::from_json(&t.to_json()).unwrap();
        assert_eq!(back.pad_id(), 3);
        let encoded = back.encode("fine", 8);
        assert_eq!((encoded.ids[7], encoded.mask[7]), (3, 0), "padded with [SEP]'s id");
    }
}
