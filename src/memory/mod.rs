//! Review memory: a moderator's verdict takes effect on the next request, not after a
//! retrain. Every reviewed decision (its latest review that was not retracted) is held
//! here by its [`Signals`]; a new pair is looked up before its verdict is final:
//!
//! 1. **exact** — same image sha256 (or both text-only) and same normalised text: the
//!    reviewed label decides (score 1 for hateful, 0 for not hateful);
//! 2. **pdq** — both pictures' PDQ hashes of quality ≥ [`PDQ_MIN_QUALITY`] within
//!    `--review-memory-pdq-distance` bits (default 31 of 256, as HMA uses) and the same
//!    normalised text: the reviewed label decides; the closest wins;
//! 3. **embedding** — the k nearest reviewed neighbours (`--review-memory-k`) by cosine
//!    similarity of the joint embedding (see [`signals::joint_embedding`]), of those at or
//!    above `--review-memory-similarity`, and only from the same package id (embedding
//!    spaces of different packages are never compared; after a reload, decisions scored
//!    by an older package are ignored here until reviewed ones from the new package
//!    exist). Their similarity-weighted vote `v = Σ sᵢ·yᵢ / Σ sᵢ` (yᵢ = 1 hateful, 0 not)
//!    is blended with the model's score `m` by the best similarity `s₁`:
//!    `final = s₁·v + (1 − s₁)·m`. The match names the nearest neighbour.
//!
//! Ties go to the latest review. Search is brute force over every entry (see
//! docs/benchmarks.md for where that stops being fast). The index is built at start from
//! the database and updated by [`crate::review`] as reviews and retractions arrive.

pub mod pdq;
pub mod poll;
pub mod signals;

use std::collections::HashMap;
use std::sync::RwLock;

use serde::Serialize;

use self::pdq::PdqHash;
pub use self::signals::Signals;
use crate::db::reviews::Label;
use crate::db::{Db, DbError, DbTime};

/// PDQ hashes of lower quality (flat or tiny pictures) say too little to match on.
pub const PDQ_MIN_QUALITY: u32 = 50;

/// Which matches the memory makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MemoryMode {
    /// No matching: the model alone decides.
    Off,
    /// Only exact matches.
    Exact,
    /// Only PDQ matches.
    Pdq,
    /// Only embedding neighbours.
    Embedding,
    /// Exact, then PDQ, then embedding neighbours.
    All,
}

/// `--review-memory` and its thresholds.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryConfig {
    /// Which reviewed decisions override the model: off, exact, pdq, embedding or all.
    #[arg(long = "review-memory", env = "MEMEGUARD_REVIEW_MEMORY", value_enum, default_value = "all")]
    pub mode: MemoryMode,
    /// Largest PDQ Hamming distance (bits of 256) that counts as the same picture.
    #[arg(long = "review-memory-pdq-distance", env = "MEMEGUARD_REVIEW_MEMORY_PDQ_DISTANCE", default_value_t = 31, value_parser = clap::value_parser!(u32).range(0..=256))]
    pub pdq_distance: u32,
    /// Smallest cosine similarity of a joint embedding that counts as a neighbour.
    #[arg(long = "review-memory-similarity", env = "MEMEGUARD_REVIEW_MEMORY_SIMILARITY", default_value_t = 0.9)]
    pub similarity: f32,
    /// Neighbours that vote in an embedding match.
    #[arg(long = "review-memory-k", env = "MEMEGUARD_REVIEW_MEMORY_K", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub k: u32,
    /// With PostgreSQL, how often (ms) to pick up reviews made through other replicas;
    /// 0: never. SQLite has one server and never polls.
    #[arg(long = "review-memory-poll-ms", env = "MEMEGUARD_REVIEW_MEMORY_POLL_MS", default_value_t = 1000)]
    pub poll_ms: u64,
}

impl MemoryMode {
    fn exact(self) -> bool {
        matches!(self, MemoryMode::Exact | MemoryMode::All)
    }
    fn pdq(self) -> bool {
        matches!(self, MemoryMode::Pdq | MemoryMode::All)
    }
    fn embedding(self) -> bool {
        matches!(self, MemoryMode::Embedding | MemoryMode::All)
    }
}

/// How a new pair matched a reviewed decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MatchKind {
    Exact,
    Pdq,
    Embedding,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Exact => "exact",
            MatchKind::Pdq => "pdq",
            MatchKind::Embedding => "embedding",
        }
    }

    pub fn parse(s: &str) -> Option<MatchKind> {
        [MatchKind::Exact, MatchKind::Pdq, MatchKind::Embedding].into_iter().find(|k| k.as_str() == s)
    }
}

/// The reviewed decision a pair matched, and the score it leads to.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewMatch {
    pub decision_id: i64,
    pub kind: MatchKind,
    /// PDQ distance in bits (pdq), cosine similarity (embedding), 0 (exact).
    pub value: f64,
    pub label: Label,
    pub reviewed_at: DbTime,
    /// The final score.
    pub score: f32,
}

/// One reviewed decision as remembered.
#[derive(Debug, Clone)]
pub struct Entry {
    pub decision_id: i64,
    pub review_id: i64,
    pub label: Label,
    pub reviewed_at: DbTime,
    /// `name@version` that scored it (its embedding's space).
    pub model: String,
    pub signals: Signals,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<i64, Entry>,
    /// (image sha256 or "", normalised text sha256) → decision ids.
    exact: HashMap<(String, String), Vec<i64>>,
    /// Normalised text sha256 → decision ids with a PDQ hash good enough to match on (a
    /// PDQ match needs the same text, so only these are compared).
    pdq_by_text: HashMap<String, Vec<i64>>,
    /// Package id → its decisions' joint embeddings, one contiguous table each (a scan
    /// runs over memory in order; the entries' own copies are dropped).
    embeddings: HashMap<String, EmbeddingTable>,
}

/// Rows of equal width, packed; removal swaps the last row in.
#[derive(Debug, Default)]
struct EmbeddingTable {
    dim: usize,
    ids: Vec<i64>,
    rows: Vec<f32>,
    /// decision id → row.
    position: HashMap<i64, usize>,
}

impl EmbeddingTable {
    fn insert(&mut self, id: i64, v: &[f32]) {
        if self.ids.is_empty() {
            self.dim = v.len();
        }
        if v.len() != self.dim || v.is_empty() {
            return;
        }
        self.position.insert(id, self.ids.len());
        self.ids.push(id);
        self.rows.extend_from_slice(v);
    }

    fn remove(&mut self, id: i64) {
        let Some(row) = self.position.remove(&id) else { return };
        let last = self.ids.len() - 1;
        if row != last {
            let moved = self.ids[last];
            self.ids[row] = moved;
            self.rows.copy_within(last * self.dim..(last + 1) * self.dim, row * self.dim);
            self.position.insert(moved, row);
        }
        self.ids.pop();
        self.rows.truncate(last * self.dim);
    }

    /// (similarity, decision id) of every row at or above `min`.
    fn above(&self, query: &[f32], min: f32) -> Vec<(f32, i64)> {
        if query.len() != self.dim || self.dim == 0 {
            return Vec::new();
        }
        self.rows
            .chunks_exact(self.dim)
            .zip(&self.ids)
            .filter_map(|(row, &id)| {
                let s = dot(row, query);
                (s >= min).then_some((s, id))
            })
            .collect()
    }
}

/// A dot product in 8 independent lanes (so the compiler vectorises it).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

impl Index {
    fn exact_key(s: &Signals) -> (String, String) {
        (s.image_sha256.clone().unwrap_or_default(), s.text_norm_sha256.clone())
    }

    fn remove(&mut self, decision_id: i64) {
        if let Some(old) = self.entries.remove(&decision_id) {
            if let Some(table) = self.embeddings.get_mut(&old.model) {
                table.remove(decision_id);
            }
            if let Some(ids) = self.pdq_by_text.get_mut(&old.signals.text_norm_sha256) {
                ids.retain(|id| *id != decision_id);
                if ids.is_empty() {
                    self.pdq_by_text.remove(&old.signals.text_norm_sha256);
                }
            }
            let key = Index::exact_key(&old.signals);
            if let Some(ids) = self.exact.get_mut(&key) {
                ids.retain(|id| *id != decision_id);
                if ids.is_empty() {
                    self.exact.remove(&key);
                }
            }
        }
    }

    fn insert(&mut self, mut entry: Entry) {
        self.remove(entry.decision_id);
        self.exact.entry(Index::exact_key(&entry.signals)).or_default().push(entry.decision_id);
        if entry.signals.pdq.is_some() && entry.signals.pdq_quality.is_some_and(|q| q >= PDQ_MIN_QUALITY) {
            self.pdq_by_text.entry(entry.signals.text_norm_sha256.clone()).or_default().push(entry.decision_id);
        }
        // Kept once, in the table.
        if let Some(v) = entry.signals.embedding.take() {
            self.embeddings.entry(entry.model.clone()).or_default().insert(entry.decision_id, &v);
        }
        self.entries.insert(entry.decision_id, entry);
    }
}

/// The reviewed decisions, indexed by their signals.
#[derive(Debug)]
pub struct ReviewMemory {
    config: MemoryConfig,
    index: RwLock<Index>,
}

impl ReviewMemory {
    pub fn new(config: MemoryConfig) -> ReviewMemory {
        ReviewMemory { config, index: RwLock::new(Index::default()) }
    }

    pub fn config(&self) -> &MemoryConfig {
        &self.config
    }

    /// Reads every reviewed decision from the database (at start).
    pub async fn load(&self, db: &Db) -> Result<usize, DbError> {
        if self.config.mode == MemoryMode::Off {
            return Ok(0);
        }
        let entries = crate::db::memory::reviewed(db, None).await?;
        let n = entries.len();
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        *index = Index::default();
        for e in entries {
            index.insert(e);
        }
        Ok(n)
    }

    /// Re-reads one decision after a review or a retraction: it is remembered with its
    /// latest review that was not retracted, or forgotten when none is left.
    pub async fn refresh(&self, db: &Db, decision_id: i64) -> Result<(), DbError> {
        if self.config.mode == MemoryMode::Off {
            return Ok(());
        }
        let entry = crate::db::memory::reviewed(db, Some(decision_id)).await?.into_iter().next();
        self.put(decision_id, entry);
        Ok(())
    }

    /// Sets (or, with `None`, forgets) what is remembered of `decision_id`.
    pub fn put(&self, decision_id: i64, entry: Option<Entry>) {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        match entry {
            Some(e) => index.insert(e),
            None => index.remove(decision_id),
        }
    }

    /// Decisions remembered.
    pub fn len(&self) -> usize {
        self.index.read().unwrap_or_else(|p| p.into_inner()).entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The match for a new pair scored `model_score` by package `model`, if any.
    pub fn lookup(&self, signals: &Signals, model: &str, model_score: f32) -> Option<ReviewMatch> {
        let mode = self.config.mode;
        if mode == MemoryMode::Off {
            return None;
        }
        let index = self.index.read().unwrap_or_else(|p| p.into_inner());
        let decided = |e: &Entry, kind, value| ReviewMatch {
            decision_id: e.decision_id,
            kind,
            value,
            label: e.label,
            reviewed_at: e.reviewed_at,
            score: if e.label == Label::Hateful { 1.0 } else { 0.0 },
        };
        if mode.exact()
            && let Some(ids) = index.exact.get(&Index::exact_key(signals))
            && let Some(e) = ids.iter().filter_map(|id| index.entries.get(id)).max_by_key(|e| e.review_id)
        {
            return Some(decided(e, MatchKind::Exact, 0.0));
        }
        if mode.pdq()
            && let (Some(pdq), Some(q)) = (signals.pdq, signals.pdq_quality)
            && q >= PDQ_MIN_QUALITY
            && let Some((d, e)) = nearest_pdq(&index, &pdq, &signals.text_norm_sha256, self.config.pdq_distance)
        {
            return Some(decided(e, MatchKind::Pdq, f64::from(d)));
        }
        if mode.embedding()
            && let Some(query) = &signals.embedding
        {
            return self.embedding_match(&index, query, model, model_score);
        }
        None
    }

    fn embedding_match(&self, index: &Index, query: &[f32], model: &str, model_score: f32) -> Option<ReviewMatch> {
        let table = index.embeddings.get(model)?;
        let mut near: Vec<(f32, &Entry)> = table
            .above(query, self.config.similarity)
            .into_iter()
            .filter_map(|(s, id)| Some((s, index.entries.get(&id)?)))
            .collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.review_id.cmp(&a.1.review_id)));
        near.truncate(self.config.k as usize);
        let (best, nearest) = *near.first()?;
        let weight: f32 = near.iter().map(|(s, _)| s).sum();
        let vote: f32 =
            near.iter().map(|(s, e)| if e.label == Label::Hateful { *s } else { 0.0 }).sum::<f32>() / weight;
        let alpha = best.clamp(0.0, 1.0);
        Some(ReviewMatch {
            decision_id: nearest.decision_id,
            kind: MatchKind::Embedding,
            value: f64::from(best),
            label: nearest.label,
            reviewed_at: nearest.reviewed_at,
            score: (alpha * vote + (1.0 - alpha) * model_score).clamp(0.0, 1.0),
        })
    }
}

/// The closest remembered picture with the same normalised text within `max` bits.
fn nearest_pdq<'a>(index: &'a Index, pdq: &PdqHash, text: &str, max: u32) -> Option<(u32, &'a Entry)> {
    index
        .pdq_by_text
        .get(text)?
        .iter()
        .filter_map(|id| index.entries.get(id))
        .filter_map(|e| Some((e.signals.pdq?.distance(pdq), e)))
        .filter(|(d, _)| *d <= max)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.review_id.cmp(&a.1.review_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(mode: MemoryMode) -> MemoryConfig {
        MemoryConfig { mode, pdq_distance: 31, similarity: 0.9, k: 5, poll_ms: 0 }
    }

    fn entry(id: i64, label: Label, signals: Signals) -> Entry {
        Entry { decision_id: id, review_id: id, label, reviewed_at: DbTime::now(), model: "m@1".into(), signals }
    }

    fn signals(image: &str, text: &str, pdq_bits: u16, embedding: Option<Vec<f32>>) -> Signals {
        let mut words = [0x5a5au16; 16];
        words[0] = pdq_bits;
        Signals {
            image_sha256: Some(image.into()),
            pdq: Some(PdqHash { words }),
            pdq_quality: Some(100),
            text_norm_sha256: signals::text_norm_sha256(text),
            embedding,
        }
    }

    #[test]
    fn exact_then_pdq_then_embedding_and_a_removed_entry_is_forgotten() {
        let memory = ReviewMemory::new(config(MemoryMode::All));
        memory.put(1, Some(entry(1, Label::Hateful, signals("a", "Some text", 0, Some(vec![1.0, 0.0])))));
        let exact = memory.lookup(&signals("a", "some text!", 0xffff, None), "m@1", 0.1).unwrap();
        assert_eq!((exact.decision_id, exact.kind, exact.score), (1, MatchKind::Exact, 1.0));
        let pdq = memory.lookup(&signals("b", "some text", 0x00ff, None), "m@1", 0.1).unwrap();
        assert_eq!((pdq.kind, pdq.value), (MatchKind::Pdq, 8.0));
        assert!(memory.lookup(&signals("b", "other text", 0x00ff, None), "m@1", 0.1).is_none(), "pdq needs the text");
        let near = vec![0.96, 0.28];
        let emb = memory.lookup(&signals("c", "other", 0, Some(near.clone())), "m@1", 0.0).unwrap();
        assert_eq!(emb.kind, MatchKind::Embedding);
        assert!((emb.score - 0.96).abs() < 1e-5, "s·1 + (1−s)·0: {}", emb.score);
        assert!(memory.lookup(&signals("c", "other", 0, Some(near)), "m@2", 0.0).is_none(), "another package");
        assert!(memory.lookup(&signals("c", "other", 0, Some(vec![0.0, 1.0])), "m@1", 0.0).is_none());
        memory.put(1, None);
        assert!(memory.lookup(&signals("a", "some text", 0, None), "m@1", 0.1).is_none());
        assert!(memory.lookup(&signals("c", "other", 0, Some(vec![0.96, 0.28])), "m@1", 0.0).is_none());
        assert!(memory.is_empty());
    }

    #[test]
    fn the_embedding_table_keeps_rows_and_ids_together_through_removals() {
        let mut table = EmbeddingTable::default();
        for id in 0..5 {
            table.insert(id, &[id as f32, 1.0]);
        }
        table.remove(1);
        table.remove(4);
        table.insert(7, &[7.0, 1.0]);
        table.insert(8, &[1.0, 2.0, 3.0]); // another width: ignored
        let mut rows: Vec<(i64, Vec<f32>)> =
            table.ids.iter().zip(table.rows.chunks_exact(2)).map(|(&id, r)| (id, r.to_vec())).collect();
        rows.sort_by_key(|r| r.0);
        let want: Vec<(i64, Vec<f32>)> = [0, 2, 3, 7].iter().map(|&id| (id, vec![id as f32, 1.0])).collect();
        assert_eq!(rows, want);
        assert!(table.position.iter().all(|(id, &row)| table.ids[row] == *id));
        let hits = table.above(&[0.0, 1.0], 1.0);
        assert_eq!(hits.len(), 4);
        assert!((dot(&[1.0; 19], &[2.0; 19]) - 38.0).abs() < 1e-5);
    }

    #[test]
    fn a_mode_limits_the_kinds_of_match() {
        let memory = ReviewMemory::new(config(MemoryMode::Pdq));
        memory.put(1, Some(entry(1, Label::NotHateful, signals("a", "t", 0, None))));
        let m = memory.lookup(&signals("a", "t", 0, None), "m@1", 0.9).unwrap();
        assert_eq!((m.kind, m.score), (MatchKind::Pdq, 0.0));
        let off = ReviewMemory::new(config(MemoryMode::Off));
        off.put(1, Some(entry(1, Label::NotHateful, signals("a", "t", 0, None))));
        assert!(off.lookup(&signals("a", "t", 0, None), "m@1", 0.9).is_none());
    }
}
