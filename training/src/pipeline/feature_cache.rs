//! The frozen-feature cache. When every encoder of a finetune is imported (`hf:`,
//! `onnx:`) and frozen, and images are not augmented, each meme's features never change:
//! they are computed once per split by an inference session of the encoders alone
//! ([`build_encoders`]), kept in `<run>/features/<key>.f32` (float32 rows, little
//! endian, memory-mapped when read) with `<key>.json` beside it, and the head trains on
//! them ([`crate::objectives::classify::build_head`]). The key is the sha256 of the
//! encoders' weight files, their preprocessing (image spec, tokenizer, maximum length)
//! and the split's memes, so a changed encoder or preprocessing never reads stale
//! features; `--seeds N` and `--resume` find the features the first run wrote.
//!
//! The encoders run in inference mode here (no dropout), as frozen encoders should.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Tensor, encode_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_package::tensor_value::{from_value, to_value};
use memeguard_package::{ImageSpec, TextTokenizer};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::PipelineError;
use super::score::{Scores, package_loader};
use crate::data::{Loader, Meme};
use crate::graph_spec::Mode;
use crate::models::classifier::{ClassifierConfig, IMAGE_EMBEDDING, TEXT_EMBEDDING, build_encoders};
use crate::models::encoders::{ImageEncoder, TextEncoder};
use crate::models::net::Weights;
use crate::objectives::classify::LABELS;
use crate::run::{Batch, BatchSource};

/// Bumped when the file layout or what the features mean changes.
const FORMAT: &str = "memeguard-feature-cache 1";

/// Why a finetune cannot use the cache, or `None` when it can.
pub fn ineligible(cfg: &ClassifierConfig, augment: bool) -> Option<String> {
    if augment {
        return Some("data.augment is on: each epoch sees new pixels".into());
    }
    match &cfg.image {
        None => {}
        Some(ImageEncoder::Builtin(_)) => return Some("the image encoder is a built-in one".into()),
        Some(ImageEncoder::Onnx(e)) if e.onnx.trainable => return Some("the image encoder trains".into()),
        Some(ImageEncoder::Hf(e)) if e.hf.trainable.any() => return Some("the image encoder trains".into()),
        Some(_) => {}
    }
    match &cfg.text {
        None => {}
        Some(TextEncoder::Builtin(_)) => return Some("the text encoder is a built-in one".into()),
        Some(TextEncoder::Onnx(e)) if e.onnx.trainable => return Some("the text encoder trains".into()),
        Some(TextEncoder::Hf(e)) if e.trainable.any() => return Some("the text encoder trains".into()),
        Some(_) => {}
    }
    None
}

/// What the encoders' features depend on, hashed once per finetune (the weight files are
/// read through once); [`Preprocessing::key`] adds a split's memes.
pub struct Preprocessing {
    digest: Sha256,
}

impl Preprocessing {
    /// Hashes the encoders' weight files and preprocessing.
    pub fn new(
        cfg: &ClassifierConfig,
        image: &ImageSpec,
        tokenizer: &TextTokenizer,
        max_length: usize,
    ) -> Result<Self, PipelineError> {
        let mut h = Sha256::new();
        h.update(FORMAT);
        h.update(env!("CARGO_PKG_VERSION"));
        if let Some(encoder) = &cfg.image {
            let source = match encoder {
                ImageEncoder::Onnx(e) => &e.onnx.source,
                ImageEncoder::Hf(e) => &e.hf.source,
                ImageEncoder::Builtin(_) => {
                    return Err(PipelineError::Invalid("a built-in encoder is not cached".into()));
                }
            };
            hash_source(&mut h, "image", source)?;
            h.update(serde_json::to_string(image).unwrap_or_default());
        }
        if let Some(encoder) = &cfg.text {
            let source = match encoder {
                TextEncoder::Onnx(e) => &e.onnx.source,
                TextEncoder::Hf(e) => &e.source,
                TextEncoder::Builtin(_) => {
                    return Err(PipelineError::Invalid("a built-in encoder is not cached".into()));
                }
            };
            hash_source(&mut h, "text", source)?;
            h.update(tokenizer.to_json());
            h.update(max_length.to_le_bytes());
        }
        Ok(Preprocessing { digest: h })
    }

    /// The cache key of `memes` (ids, texts, image paths, in order).
    pub fn key(&self, memes: &[Meme]) -> String {
        let mut h = self.digest.clone();
        for m in memes {
            for part in [m.id.as_bytes(), m.text.as_bytes(), m.image.to_string_lossy().as_bytes()] {
                h.update((part.len() as u64).to_le_bytes());
                h.update(part);
            }
        }
        hex::encode(h.finalize())
    }
}

/// Hashes the files an `hf:DIR` / `onnx:FILE[#OUTPUT]` encoder is read from.
fn hash_source(h: &mut Sha256, role: &str, source: &str) -> Result<(), PipelineError> {
    h.update(role);
    let files: Vec<PathBuf> = match crate::models::source::EncoderSource::parse(source)? {
        crate::models::source::EncoderSource::HuggingFace(dir) => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| PipelineError::Invalid(format!("{}: {e}", dir.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file() && p.extension().is_some_and(|x| x == "safetensors" || x == "bin" || x == "json")
                })
                .collect();
            files.sort();
            files
        }
        crate::models::source::EncoderSource::Onnx { file, output } => {
            h.update(output.unwrap_or_default());
            let data = PathBuf::from(format!("{}.data", file.display()));
            if data.is_file() { vec![file, data] } else { vec![file] }
        }
        crate::models::source::EncoderSource::Builtin(name) => {
            return Err(PipelineError::Invalid(format!("`{name}` is built in: nothing to hash")));
        }
    };
    for path in files {
        h.update(path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default());
        let mut f = File::open(&path).map_err(|e| PipelineError::Invalid(format!("{}: {e}", path.display())))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).map_err(|e| PipelineError::Invalid(format!("{}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(())
}

/// What `<key>.json` records beside the rows.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TableMeta {
    format: String,
    rows: usize,
    image_dim: usize,
    text_dim: usize,
    /// False where the meme's image could not be read (its row is zeros; it is skipped,
    /// as the loader skips it).
    valid: Vec<bool>,
    ids: Vec<String>,
}

/// One split's features, memory-mapped: row `i` is meme `i`'s image features followed by
/// its text features.
pub struct FeatureTable {
    rows: memmap2::Mmap,
    meta: TableMeta,
}

impl FeatureTable {
    fn width(&self) -> usize {
        self.meta.image_dim + self.meta.text_dim
    }

    /// Whether meme `i` has features (its image could be read).
    pub fn valid(&self, i: usize) -> bool {
        self.meta.valid[i]
    }

    /// Memes in the table.
    pub fn rows(&self) -> usize {
        self.meta.rows
    }

    /// The feeds of the head graph for memes `rows` (all valid).
    pub fn feeds(&self, rows: &[usize]) -> Vec<(String, Tensor)> {
        let (di, dt) = (self.meta.image_dim, self.meta.text_dim);
        let mut image = Vec::with_capacity(rows.len() * di);
        let mut text = Vec::with_capacity(rows.len() * dt);
        let bytes = 4 * self.width();
        for &r in rows {
            let row = &self.rows[r * bytes..(r + 1) * bytes];
            let mut values = row.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            image.extend(values.by_ref().take(di));
            text.extend(values);
        }
        let n = rows.len() as i64;
        let mut out = Vec::new();
        if di > 0 {
            out.push((IMAGE_EMBEDDING.to_string(), Tensor::f32(vec![n, di as i64], image)));
        }
        if dt > 0 {
            out.push((TEXT_EMBEDDING.to_string(), Tensor::f32(vec![n, dt as i64], text)));
        }
        out
    }
}

/// Whether a split's features were read from the cache or computed now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CacheUse {
    Computed,
    Reused,
}

/// The features of each split (`(name, memes)`) under `dir`: read where the cache has
/// them, else computed by one session of the encoders (built once, only when needed)
/// and written.
#[allow(clippy::too_many_arguments)]
pub fn tables(
    dir: &Path,
    cfg: &ClassifierConfig,
    splits: &[(&str, &[Meme])],
    tokenizer: &TextTokenizer,
    image: &ImageSpec,
    max_length: usize,
    session: &SessionOptions,
) -> Result<Vec<(FeatureTable, CacheUse)>, PipelineError> {
    let pre = Preprocessing::new(cfg, image, tokenizer, max_length)?;
    // One session for every split that needs computing, built only then; the graph and
    // its bytes are dropped once ONNX Runtime holds its copy.
    let mut encoders: Option<Encoders> = None;
    let mut out = Vec::new();
    for (name, memes) in splits {
        let key = format!("{name}-{}", pre.key(memes));
        let rows_path = dir.join(format!("{key}.f32"));
        let meta_path = dir.join(format!("{key}.json"));
        if let Some(table) = open(&rows_path, &meta_path, memes.len())? {
            tracing::info!(split = name, file = %rows_path.display(), "frozen features read from the cache");
            out.push((table, CacheUse::Reused));
            continue;
        }
        std::fs::create_dir_all(dir).map_err(|e| PipelineError::Invalid(format!("{}: {e}", dir.display())))?;
        if encoders.is_none() {
            encoders = Some(Encoders::new(cfg, session)?);
        }
        let encoders = encoders.as_mut().expect("built just above");
        let started = std::time::Instant::now();
        compute(encoders, memes, tokenizer, image, max_length, &rows_path, &meta_path)?;
        tracing::info!(
            split = name,
            memes = memes.len(),
            seconds = started.elapsed().as_secs_f64(),
            "frozen features computed"
        );
        let table = open(&rows_path, &meta_path, memes.len())?
            .ok_or_else(|| PipelineError::Invalid(format!("{}: written but not readable", rows_path.display())))?;
        out.push((table, CacheUse::Computed));
    }
    if encoders.take().is_some() {
        release_freed_memory();
    }
    Ok(out)
}

/// Hands the memory the encoder pass freed back to the system. glibc keeps freed chunks
/// of multi-megabyte tensors in its heap (their size is under its mmap threshold once
/// that has grown), so without this the graph, its bytes and the session's weights stay
/// in the process's resident set and add to the peak of the export at the end.
#[allow(unsafe_code)]
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim takes no pointer and only returns free memory to the system.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[allow(unsafe_code)]
fn open(rows_path: &Path, meta_path: &Path, rows: usize) -> Result<Option<FeatureTable>, PipelineError> {
    let (Ok(text), Ok(file)) = (std::fs::read_to_string(meta_path), File::open(rows_path)) else {
        return Ok(None);
    };
    let Ok(meta) = serde_json::from_str::<TableMeta>(&text) else { return Ok(None) };
    // SAFETY: the cache files are written once (to a temporary name, then renamed) and
    // never modified in place; a file changed under the map by someone else is outside
    // what this program guards against, as with any memory-mapped data.
    let map = unsafe { memmap2::Mmap::map(&file) }
        .map_err(|e| PipelineError::Invalid(format!("{}: {e}", rows_path.display())))?;
    let width = meta.image_dim + meta.text_dim;
    if meta.format != FORMAT || meta.rows != rows || meta.valid.len() != rows || map.len() != rows * width * 4 {
        return Ok(None);
    }
    Ok(Some(FeatureTable { rows: map, meta }))
}

/// The encoders' inference session and the names of its inputs and outputs.
struct Encoders {
    session: ort::session::Session,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl Encoders {
    fn new(cfg: &ClassifierConfig, options: &SessionOptions) -> Result<Self, PipelineError> {
        let model = encoder_model(cfg)?;
        let graph = model.graph.as_ref().ok_or_else(|| PipelineError::Invalid("the encoder graph is empty".into()))?;
        let inputs = graph.input.iter().filter_map(|v| v.name.clone()).collect();
        let outputs = graph.output.iter().filter_map(|v| v.name.clone()).collect();
        let bytes = encode_model(&model);
        drop(model);
        let session =
            session_from_bytes(&bytes, options).map_err(|e| PipelineError::Score(format!("feature cache: {e}")))?;
        Ok(Encoders { session, inputs, outputs })
    }
}

/// Runs the encoders over `memes` in stored order and writes their rows.
fn compute(
    encoders: &mut Encoders,
    memes: &[Meme],
    tokenizer: &TextTokenizer,
    image: &ImageSpec,
    max_length: usize,
    rows_path: &Path,
    meta_path: &Path,
) -> Result<(), PipelineError> {
    let score = |e: &dyn std::fmt::Display| PipelineError::Score(format!("feature cache: {e}"));
    let inputs = &encoders.inputs;
    let outputs = &encoders.outputs;
    let has = |name: &str| outputs.iter().any(|o| o == name);
    let loader = package_loader(memes.to_vec(), tokenizer, image, max_length)?;
    let sess = &mut encoders.session;
    let mut meta = TableMeta {
        format: FORMAT.into(),
        rows: memes.len(),
        image_dim: 0,
        text_dim: 0,
        valid: vec![false; memes.len()],
        ids: memes.iter().map(|m| m.id.clone()).collect(),
    };
    let mut rows: Vec<Vec<f32>> = vec![Vec::new(); memes.len()];
    for batch in loader.epoch(0) {
        if batch.is_empty() {
            continue;
        }
        let mut feeds = Vec::new();
        if inputs.iter().any(|i| i == crate::models::input::PIXEL_VALUES) {
            let v = &batch.views[0];
            let dims: Vec<i64> = v.shape().iter().map(|&d| d as i64).collect();
            let pixels = Tensor::u8(dims, v.as_standard_layout().iter().copied().collect());
            feeds.push((crate::models::input::PIXEL_VALUES.to_string(), to_value(&pixels).map_err(|e| score(&e))?));
        }
        if inputs.iter().any(|i| i == crate::models::input::INPUT_IDS) {
            let ids = batch.input_ids.as_ref().expect("tokenizer given");
            let mask = batch.attention_mask.as_ref().expect("tokenizer given");
            let dims: Vec<i64> = ids.shape().iter().map(|&d| d as i64).collect();
            for (name, a) in [(crate::models::input::INPUT_IDS, ids), (crate::models::input::ATTENTION_MASK, mask)] {
                let t = Tensor::i64(dims.clone(), a.iter().copied().collect());
                feeds.push((name.to_string(), to_value(&t).map_err(|e| score(&e))?));
            }
        }
        let out = sess.run(feeds).map_err(|e| score(&e))?;
        let n = batch.indices.len();
        let mut parts: Vec<(Vec<f32>, usize)> = Vec::new();
        for (name, dim) in [(IMAGE_EMBEDDING, &mut meta.image_dim), (TEXT_EMBEDDING, &mut meta.text_dim)] {
            if !has(name) {
                continue;
            }
            let t = from_value(&out[name], name).map_err(|e| score(&e))?;
            let values = t.as_f32().ok_or_else(|| score(&format!("{name} is not float32")))?.to_vec();
            *dim = values.len() / n.max(1);
            parts.push((values, *dim));
        }
        for (k, &i) in batch.indices.iter().enumerate() {
            let mut row = Vec::new();
            for (values, dim) in &parts {
                row.extend_from_slice(&values[k * dim..(k + 1) * dim]);
            }
            rows[i] = row;
            meta.valid[i] = true;
        }
    }
    let width = meta.image_dim + meta.text_dim;
    let tmp = rows_path.with_extension("f32.partial");
    let io = |e: std::io::Error| PipelineError::Invalid(format!("{}: {e}", tmp.display()));
    let mut w = BufWriter::new(File::create(&tmp).map_err(io)?);
    for row in &rows {
        let row: &[f32] = if row.len() == width { row } else { &[] };
        for k in 0..width {
            w.write_all(&row.get(k).copied().unwrap_or(0.0).to_le_bytes()).map_err(io)?;
        }
    }
    w.flush().map_err(io)?;
    drop(w);
    std::fs::rename(&tmp, rows_path).map_err(io)?;
    let text = serde_json::to_string(&meta).map_err(|e| PipelineError::Invalid(e.to_string()))?;
    std::fs::write(meta_path, text).map_err(|e| PipelineError::Invalid(format!("{}: {e}", meta_path.display())))?;
    Ok(())
}

/// A [`BatchSource`] over cached features in the order the image loader would visit the
/// memes (same sampling, seed and batch size), so a cached run sees the batches an
/// uncached one does.
pub struct FeatureSource {
    /// The training loader, used for its epoch order only.
    pub loader: Loader,
    pub table: std::rc::Rc<FeatureTable>,
    /// The memes' labels (1 = hateful), in stored order.
    pub labels: Vec<Option<u8>>,
}

impl FeatureSource {
    /// The feeds of memes `rows` with their labels.
    pub fn batch(&self, rows: &[usize]) -> Result<Batch, String> {
        let labels: Vec<f32> = rows
            .iter()
            .map(|&r| {
                self.labels[r].map(f32::from).ok_or("finetuning needs labelled data; a training meme has no label")
            })
            .collect::<Result<_, _>>()?;
        let mut feeds = self.table.feeds(rows);
        feeds.push((LABELS.into(), Tensor::f32(vec![rows.len() as i64], labels)));
        Ok(feeds)
    }
}

impl FeatureSource {
    /// The memes of each batch of `epoch`, in the loader's order (unreadable ones left out).
    pub fn epoch_rows(&self, epoch: u64) -> Vec<Vec<usize>> {
        let order = self.loader.epoch_order(epoch);
        let size = self.loader.config().batch_size;
        order
            .chunks(size)
            .map(|chunk| chunk.iter().copied().filter(|&i| self.table.valid(i)).collect::<Vec<_>>())
            .filter(|rows| !rows.is_empty())
            .collect()
    }
}

impl BatchSource for FeatureSource {
    fn epoch(&mut self, epoch: u64) -> Box<dyn Iterator<Item = Result<Batch, String>> + '_> {
        let batches = self.epoch_rows(epoch);
        Box::new(batches.into_iter().map(move |rows| self.batch(&rows)))
    }

    fn batches_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }
}

/// Scores `memes` (the table's, all labelled) with a head-only inference model.
pub fn score_features(
    head: &ModelProto,
    table: &FeatureTable,
    memes: &[Meme],
    session: &SessionOptions,
) -> Result<Scores, PipelineError> {
    let score = |e: &dyn std::fmt::Display| PipelineError::Score(e.to_string());
    let mut sess = session_from_bytes(&encode_model(head), session).map_err(|e| score(&e))?;
    let valid: Vec<usize> = (0..memes.len()).filter(|&i| table.valid(i)).collect();
    let mut out = Scores::default();
    for rows in valid.chunks(256) {
        let feeds = table
            .feeds(rows)
            .into_iter()
            .map(|(name, t)| Ok((name, to_value(&t).map_err(|e| score(&e))?)))
            .collect::<Result<Vec<_>, PipelineError>>()?;
        let outputs = sess.run(feeds).map_err(|e| score(&e))?;
        let p = from_value(&outputs["probability"], "probability").map_err(|e| score(&e))?;
        out.probabilities.extend(p.as_f32().ok_or_else(|| score(&"probability is not float32"))?);
        out.labels.extend(rows.iter().map(|&r| memes[r].label == Some(1)));
        out.ids.extend(rows.iter().map(|&r| memes[r].id.clone()));
    }
    Ok(out)
}

/// The encoder graph the cache runs, with the imported weights read from their files (the
/// seed is unused: no built-in encoder is cached).
pub fn encoder_model(cfg: &ClassifierConfig) -> Result<ModelProto, PipelineError> {
    Ok(build_encoders(cfg, Mode::Infer, Weights::Random { seed: 0 })?.model)
}
