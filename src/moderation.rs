//! Moderating pairs: validate, decode, score, record, answer. The REST route and the
//! moderators' upload page both call [`moderate`], so the rules and the decision log
//! entry are the same whichever way a meme arrives.

use std::time::Instant;

use memeguard_package::decode_image;
use memeguard_package::package::sha256_hex;

use crate::auth::Caller;
use crate::db::DbTime;
use crate::db::decisions::{DecisionImage, NewDecision, TextSource};
use crate::error::AppError;
use crate::memory::ReviewMatch;
use crate::memory::signals::{Signals, embedding_to_bytes, joint_embedding, picture_pdq, text_norm_sha256};
use crate::pixel_budget::header_pixels;
use crate::scoring::{ScoreInput, Scores};
use crate::state::AppState;

/// One image+text pair as received.
#[derive(Debug, Clone, Default)]
pub struct ModerationItem {
    /// Encoded image bytes (format judged by their magic bytes).
    pub image: Option<Vec<u8>>,
    pub text: Option<String>,
}

/// The verdict on one pair.
#[derive(Debug, Clone)]
pub struct ItemOutcome {
    pub decision_id: i64,
    /// The final score: the model's, or what a reviewed decision made of it.
    pub score: f32,
    /// The model's own score.
    pub model_score: f32,
    /// The reviewed decision that decided (or, by embedding, adjusted) the score.
    pub review_match: Option<ReviewMatch>,
    pub threshold: f32,
    pub flagged: bool,
    pub text_source: TextSource,
    /// What was scored: `text` and/or `image`.
    pub applied_input_types: Vec<&'static str>,
}

/// The verdicts of one request, in input order, all from one model.
#[derive(Debug, Clone)]
pub struct ModerationOutcome {
    pub request_id: String,
    pub model: String,
    pub placeholder: bool,
    pub results: Vec<ItemOutcome>,
}

/// A new response id (`modr-` + 24 hex digits), as OpenAI's moderation ids look.
pub fn new_request_id() -> String {
    let bytes: [u8; 12] = rand::random();
    format!("modr-{}", hex::encode(bytes))
}

/// Checks the request-level rules (count, emptiness, text length) before any work.
pub fn validate(state: &AppState, items: &[ModerationItem]) -> Result<(), AppError> {
    if items.is_empty() {
        return Err(AppError::BadRequest("`input` is empty: send a text, an image, or both".into()));
    }
    let max_items = state.config.max_items as usize;
    if items.len() > max_items {
        return Err(AppError::BadRequest(format!(
            "{} pairs in one request; the limit is {max_items} (see --max-items)",
            items.len()
        )));
    }
    let max_chars = state.config.max_text_chars;
    for (i, item) in items.iter().enumerate() {
        let text = item.text.as_deref().unwrap_or("");
        if item.image.is_none() && text.trim().is_empty() {
            return Err(AppError::BadRequest(format!("input[{i}] is empty: send a text, an image, or both")));
        }
        let chars = text.chars().count();
        if chars > max_chars {
            return Err(AppError::BadRequest(format!(
                "input[{i}]: the text has {chars} characters; the limit is {max_chars} (see --max-text-chars)"
            )));
        }
    }
    Ok(())
}

/// Scores `items` and records one decision each (in one transaction) before returning.
/// `store: false` keeps only hashes and scores. `started` is when the request arrived.
pub async fn moderate(
    state: &AppState,
    caller: &Caller,
    items: Vec<ModerationItem>,
    store: bool,
    started: Instant,
) -> Result<ModerationOutcome, AppError> {
    validate(state, &items)?;

    // Decoding is CPU work on untrusted bytes: the blocking pool, never the async runtime.
    let limits = state.image_limits();
    let ocr = state.ocr.clone();
    let budget = state.pixels.clone();
    let (items, inputs, ocr_texts, pdqs, pixels) = tokio::task::spawn_blocking(move || {
        // The pixels to be decoded are admitted from the headers first; the permit is
        // held until the scores are back (the decoded images live until then).
        // An image over the per-image limit is refused by the decoder before it allocates.
        let wanted = items
            .iter()
            .filter_map(|i| i.image.as_deref())
            .map(header_pixels)
            .filter(|p| *p <= limits.max_pixels)
            .fold(0u64, u64::saturating_add);
        let pixels = budget.admit(wanted)?;
        let mut inputs = Vec::with_capacity(items.len());
        let mut ocr_texts = Vec::with_capacity(items.len());
        let mut pdqs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let image = match &item.image {
                Some(bytes) => {
                    Some(decode_image(bytes, &limits).map_err(|e| AppError::from(e).at(&format!("input[{i}]")))?)
                }
                None => None,
            };
            // An image without text gets its text read by OCR (when OCR is available).
            let no_text = item.text.as_deref().is_none_or(|t| t.trim().is_empty());
            let ocr_text = image.as_ref().filter(|_| no_text).and_then(|d| ocr.text_for_scoring(&d.image));
            inputs.push(ScoreInput { image, text: ocr_text.clone().or_else(|| item.text.clone()).unwrap_or_default() });
            ocr_texts.push(ocr_text);
            pdqs.push(inputs.last().and_then(|i| i.image.as_ref()).map(|d| picture_pdq(&d.image)));
        }
        Ok::<_, AppError>((items, inputs, ocr_texts, pdqs, pixels))
    })
    .await
    .map_err(|e| AppError::Internal(format!("decoding task failed: {e}")))??;

    let dims: Vec<Option<(u32, u32, &'static str)>> =
        inputs.iter().map(|i| i.image.as_ref().map(|d| (d.width, d.height, d.format.mime_type()))).collect();
    let scores = state.scorer.score(inputs).await?;
    drop(pixels);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;

    // The signals of each pair, then the review memory's verdicts on them.
    let texts: Vec<String> = items
        .iter()
        .zip(&ocr_texts)
        .map(|(item, ocr)| ocr.clone().or_else(|| item.text.clone()).unwrap_or_default())
        .collect();
    let signals: Vec<Signals> = items
        .iter()
        .zip(&texts)
        .zip(&pdqs)
        .zip(&scores.embeddings)
        .map(|(((item, text), pdq), (image_embedding, text_embedding))| Signals {
            image_sha256: item.image.as_deref().map(sha256_hex),
            pdq: pdq.map(|p| p.0),
            pdq_quality: pdq.map(|p| p.1),
            text_norm_sha256: text_norm_sha256(text),
            embedding: joint_embedding(image_embedding.as_deref(), text_embedding.as_deref()),
        })
        .collect();
    let (signals, matches) = review_matches(state, signals, &scores).await?;

    let request_id = new_request_id();
    let created_at = DbTime::now();
    let mut new_decisions = Vec::with_capacity(items.len());
    let mut results = Vec::with_capacity(items.len());
    for (
        ((((((item, model_score), dims), ocr_text), text), signals), review_match),
        (image_embedding, text_embedding),
    ) in items
        .into_iter()
        .zip(&scores.scores)
        .zip(dims)
        .zip(ocr_texts)
        .zip(texts)
        .zip(signals)
        .zip(matches)
        .zip(scores.embeddings.clone())
    {
        let from_ocr = ocr_text.is_some();
        let has_text = !text.trim().is_empty();
        let image_sha256 = signals.image_sha256.clone();
        let score = review_match.as_ref().map_or(*model_score, |m| m.score);
        let flagged = score >= scores.threshold;
        let text_source = match (from_ocr, has_text) {
            (true, _) => TextSource::Ocr,
            (false, true) => TextSource::Given,
            (false, false) => TextSource::None,
        };
        let image = match (item.image, dims) {
            (Some(bytes), Some((width, height, mime))) => Some(DecisionImage {
                sha256: image_sha256.clone().unwrap_or_default(),
                mime: mime.to_string(),
                width,
                height,
                bytes: store.then_some(bytes),
            }),
            _ => None,
        };
        let mut applied = Vec::with_capacity(2);
        if has_text {
            applied.push("text");
        }
        if image.is_some() {
            applied.push("image");
        }
        new_decisions.push(NewDecision {
            created_at,
            request_id: request_id.clone(),
            model: scores.model.clone(),
            score: f64::from(score),
            threshold: f64::from(scores.threshold),
            flagged,
            text_sha256: sha256_hex(text.as_bytes()),
            text: store.then_some(text),
            text_source,
            image,
            stored: store,
            latency_ms,
            caller: caller.id.clone(),
            model_score: f64::from(*model_score),
            // A hash of a flat or tiny picture is kept but not matched on (see memory).
            pdq: signals.pdq.zip(signals.pdq_quality).map(|(h, q)| (h.to_hex(), q)),
            text_norm_sha256: signals.text_norm_sha256.clone(),
            image_embedding: image_embedding.as_deref().map(embedding_to_bytes),
            text_embedding: text_embedding.as_deref().map(embedding_to_bytes),
            review_match: review_match.as_ref().map(|m| (m.decision_id, m.kind.as_str(), m.value, m.label.as_str())),
        });
        results.push(ItemOutcome {
            decision_id: 0,
            score,
            model_score: *model_score,
            review_match,
            threshold: scores.threshold,
            flagged,
            text_source,
            applied_input_types: applied,
        });
    }

    let ids = state.decisions.insert(new_decisions).await?;
    for (result, id) in results.iter_mut().zip(ids) {
        result.decision_id = id;
        state.metrics.record_decision(result.flagged);
    }
    Ok(ModerationOutcome { request_id, model: scores.model, placeholder: scores.placeholder, results })
}

/// The review memory's match for each pair (none while it remembers nothing). A search
/// over many remembered embeddings is CPU work: the blocking pool, not the async runtime.
async fn review_matches(
    state: &AppState,
    signals: Vec<Signals>,
    scores: &Scores,
) -> Result<(Vec<Signals>, Vec<Option<ReviewMatch>>), AppError> {
    if state.memory.is_empty() {
        let none = vec![None; signals.len()];
        return Ok((signals, none));
    }
    let memory = state.memory.clone();
    let model = scores.model.clone();
    let model_scores = scores.scores.clone();
    tokio::task::spawn_blocking(move || {
        let matches = signals.iter().zip(&model_scores).map(|(s, &m)| memory.lookup(s, &model, m)).collect();
        (signals, matches)
    })
    .await
    .map_err(|e| AppError::Internal(format!("review memory task failed: {e}")))
}
