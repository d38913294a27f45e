//! Reader of the Hateful Memes layout: `train.jsonl`, `dev_seen.jsonl`, `dev_unseen.jsonl`,
//! `test_seen.jsonl`, `test_unseen.jsonl` and `img/`. Each line is a JSON object with
//! `id`, `img`, `text` and, except in some test files, `label` (0 or 1).
//!
//! Problems never stop a load and are never silent: a line that is not JSON, lacks a
//! field or has a bad value, and a meme whose image is missing or cannot be read, each
//! become a [`DataWarning`] naming the file and line (logged with `tracing::warn!` and
//! kept in the [`LoadSummary`]); the meme is left out and the rest loads.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use memeguard_package::{ImageLimits, decode_image};
use serde_json::Value;

use super::stats::TextStats;

/// The split files of the layout, in the order they are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Split {
    Train,
    DevSeen,
    DevUnseen,
    TestSeen,
    TestUnseen,
}

impl Split {
    /// Every split, in file order.
    pub const ALL: [Split; 5] = [Split::Train, Split::DevSeen, Split::DevUnseen, Split::TestSeen, Split::TestUnseen];

    /// The file name of the split, e.g. `dev_seen.jsonl`.
    pub fn file_name(self) -> &'static str {
        match self {
            Split::Train => "train.jsonl",
            Split::DevSeen => "dev_seen.jsonl",
            Split::DevUnseen => "dev_unseen.jsonl",
            Split::TestSeen => "test_seen.jsonl",
            Split::TestUnseen => "test_unseen.jsonl",
        }
    }

    /// The name without `.jsonl`, e.g. `dev_seen`.
    pub fn name(self) -> &'static str {
        self.file_name().trim_end_matches(".jsonl")
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a meme (or a problem) comes from: file and 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLine {
    pub file: PathBuf,
    pub line: usize,
}

impl fmt::Display for SourceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// One meme.
#[derive(Debug, Clone, PartialEq)]
pub struct Meme {
    /// The id as written, leading zeros kept (a numeric id is matched to the image name,
    /// so `{"id": 1235, "img": "img/01235.png"}` gives `01235`).
    pub id: String,
    /// The image path as resolved against the data directory.
    pub image: PathBuf,
    /// 1 = hateful, 0 = not hateful, `None` when the file has no labels.
    pub label: Option<u8>,
    pub text: String,
    pub source: SourceLine,
}

/// What went wrong with one line or its image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The line is not a JSON object (includes a line cut short by a truncated file).
    BadJson(String),
    MissingField(&'static str),
    /// A field has the wrong type or value.
    BadField {
        field: &'static str,
        reason: String,
    },
    /// The same id appeared earlier in this split.
    DuplicateId(String),
    /// The image file does not exist.
    MissingImage(PathBuf),
    /// The image file exists but cannot be read as an image.
    UnreadableImage {
        path: PathBuf,
        reason: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::BadJson(e) => write!(f, "not a JSON object ({e}); line skipped"),
            Problem::MissingField(name) => write!(f, "field `{name}` is missing; line skipped"),
            Problem::BadField { field, reason } => write!(f, "field `{field}` {reason}; line skipped"),
            Problem::DuplicateId(id) => write!(f, "id {id} appeared earlier in this file; line skipped"),
            Problem::MissingImage(path) => write!(f, "image {} does not exist; meme skipped", path.display()),
            Problem::UnreadableImage { path, reason } => {
                write!(f, "image {} cannot be read ({reason}); meme skipped", path.display())
            }
        }
    }
}

/// A problem with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataWarning {
    pub at: SourceLine,
    pub problem: Problem,
}

impl fmt::Display for DataWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.problem)
    }
}

/// How thoroughly images are checked while loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageCheck {
    /// Only that the file exists.
    Exists,
    /// The file exists and its header names a supported format and a size (fast).
    #[default]
    Header,
    /// The whole image decodes with the shared decoder (slow on big sets; the loader
    /// reports images that fail later anyway).
    Decode,
}

/// Counts for one split file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SplitSummary {
    pub split: Option<Split>,
    /// Non-empty lines read.
    pub lines: usize,
    pub loaded: usize,
    pub bad_lines: usize,
    pub missing_images: usize,
    pub unreadable_images: usize,
    pub hateful: usize,
    pub not_hateful: usize,
    pub unlabelled: usize,
    pub text: TextStats,
}

/// Everything a load found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LoadSummary {
    pub splits: Vec<SplitSummary>,
    pub warnings: Vec<DataWarning>,
}

/// A loaded data set: the memes of each split file present.
#[derive(Debug, Clone, Default)]
pub struct HatefulMemes {
    pub root: PathBuf,
    splits: Vec<(Split, Vec<Meme>)>,
    pub summary: LoadSummary,
}

/// Errors that stop a load (the directory itself is unusable).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error("{0} holds none of train.jsonl, dev_seen.jsonl, dev_unseen.jsonl, test_seen.jsonl, test_unseen.jsonl")]
    NoSplits(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

impl HatefulMemes {
    /// Reads every split file present under `root`, checking images as `check` says.
    pub fn load(root: &Path, check: ImageCheck) -> Result<Self, LoadError> {
        if !root.is_dir() {
            return Err(LoadError::NotADirectory(root.to_path_buf()));
        }
        let mut data = HatefulMemes { root: root.to_path_buf(), ..Default::default() };
        for split in Split::ALL {
            let path = root.join(split.file_name());
            if !path.exists() {
                continue;
            }
            let bytes = fs::read(&path).map_err(|source| LoadError::Io { path: path.clone(), source })?;
            let (memes, mut summary, warnings) = parse_split(root, &path, &bytes, check);
            summary.split = Some(split);
            summary.log();
            for w in &warnings {
                tracing::warn!("{w}");
            }
            data.summary.splits.push(summary);
            data.summary.warnings.extend(warnings);
            data.splits.push((split, memes));
        }
        if data.splits.is_empty() {
            return Err(LoadError::NoSplits(root.to_path_buf()));
        }
        Ok(data)
    }

    /// The memes of `split` (empty when its file is absent).
    pub fn split(&self, split: Split) -> &[Meme] {
        self.splits.iter().find(|(s, _)| *s == split).map_or(&[], |(_, m)| m)
    }

    /// The splits whose file was present, in file order.
    pub fn splits(&self) -> impl Iterator<Item = Split> + '_ {
        self.splits.iter().map(|(s, _)| *s)
    }
}

/// Parses one jsonl file (its bytes); returns memes, counts and warnings.
pub fn parse_split(
    root: &Path,
    file: &Path,
    bytes: &[u8],
    check: ImageCheck,
) -> (Vec<Meme>, SplitSummary, Vec<DataWarning>) {
    let mut summary = SplitSummary::default();
    let mut seen = HashSet::new();
    // Lines first (cheap, in order), then the images of the lines that parsed (in parallel).
    let mut parsed: Vec<Result<Meme, DataWarning>> = Vec::new();
    let text = String::from_utf8_lossy(bytes);
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        summary.lines += 1;
        let at = SourceLine { file: file.to_path_buf(), line: index + 1 };
        parsed.push(match parse_line(root, line, &at) {
            Ok(meme) if !seen.insert(meme.id.clone()) => {
                Err(DataWarning { at, problem: Problem::DuplicateId(meme.id) })
            }
            Ok(meme) => Ok(meme),
            Err(problem) => Err(DataWarning { at, problem }),
        });
    }
    let images: Vec<&Path> = parsed.iter().filter_map(|p| p.as_ref().ok()).map(|m| m.image.as_path()).collect();
    let mut checked = check_images(&images, check).into_iter();
    let (mut memes, mut warnings) = (Vec::new(), Vec::new());
    for item in parsed {
        let result = item.and_then(|meme| match checked.next().expect("one check per parsed meme") {
            Ok(()) => Ok(meme),
            Err(problem) => Err(DataWarning { at: meme.source, problem }),
        });
        match result {
            Ok(meme) => {
                match meme.label {
                    Some(1) => summary.hateful += 1,
                    Some(_) => summary.not_hateful += 1,
                    None => summary.unlabelled += 1,
                }
                memes.push(meme);
            }
            Err(warning) => {
                match warning.problem {
                    Problem::MissingImage(_) => summary.missing_images += 1,
                    Problem::UnreadableImage { .. } => summary.unreadable_images += 1,
                    _ => summary.bad_lines += 1,
                }
                warnings.push(warning);
            }
        }
    }
    summary.loaded = memes.len();
    summary.text = TextStats::of(memes.iter().map(|m| m.text.as_str()));
    (memes, summary, warnings)
}

/// Checks `paths` on all cores; results in the order of `paths`.
fn check_images(paths: &[&Path], check: ImageCheck) -> Vec<Result<(), Problem>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|p| check_image(p, check)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("image check thread panicked")).collect()
    })
}

fn parse_line(root: &Path, line: &str, at: &SourceLine) -> Result<Meme, Problem> {
    let value: Value = serde_json::from_str(line).map_err(|e| Problem::BadJson(e.to_string()))?;
    let Value::Object(fields) = value else { return Err(Problem::BadJson("a JSON value but not an object".into())) };
    let img = match fields.get("img") {
        None | Some(Value::Null) => return Err(Problem::MissingField("img")),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        Some(_) => return Err(Problem::BadField { field: "img", reason: "is not a non-empty string".into() }),
    };
    let stem = Path::new(&img).file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
    let id = match fields.get("id") {
        None | Some(Value::Null) => return Err(Problem::MissingField("id")),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        // Hateful Memes writes ids as numbers, which cannot keep leading zeros: take the
        // image name when it is the same number with its zeros.
        Some(Value::Number(n)) if n.is_u64() => match stem.parse::<u64>() {
            Ok(v) if Some(v) == n.as_u64() => stem,
            _ => n.to_string(),
        },
        Some(_) => return Err(Problem::BadField { field: "id", reason: "is not a string or a whole number".into() }),
    };
    let text = match fields.get("text") {
        None | Some(Value::Null) => return Err(Problem::MissingField("text")),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Problem::BadField { field: "text", reason: "is not a string".into() }),
    };
    let label = match fields.get("label") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok())) {
            Some(l @ (0 | 1)) => Some(l as u8),
            _ => return Err(Problem::BadField { field: "label", reason: format!("is {v}, not 0 or 1") }),
        },
    };
    Ok(Meme { id, image: root.join(img), label, text, source: at.clone() })
}

fn check_image(path: &Path, check: ImageCheck) -> Result<(), Problem> {
    if !path.is_file() {
        return Err(Problem::MissingImage(path.to_path_buf()));
    }
    let unreadable = |reason: String| Problem::UnreadableImage { path: path.to_path_buf(), reason };
    match check {
        ImageCheck::Exists => Ok(()),
        ImageCheck::Header => image::ImageReader::open(path)
            .and_then(|r| r.with_guessed_format())
            .map_err(|e| unreadable(e.to_string()))?
            .into_dimensions()
            .map(|_| ())
            .map_err(|e| unreadable(e.to_string())),
        ImageCheck::Decode => {
            let bytes = fs::read(path).map_err(|e| unreadable(e.to_string()))?;
            decode_image(&bytes, &ImageLimits::default()).map(|_| ()).map_err(|e| unreadable(e.to_string()))
        }
    }
}

impl SplitSummary {
    /// Logs counts, label balance and text lengths at `info` (problems at `warn`).
    fn log(&self) {
        let split = self.split.map_or("?", Split::name);
        let labelled = self.hateful + self.not_hateful;
        let balance = if labelled > 0 { self.hateful as f64 / labelled as f64 } else { f64::NAN };
        tracing::info!(
            "{split}: {} memes loaded of {} lines; labels: {} hateful, {} not, {} unlabelled ({:.1}% hateful); \
             text: {}",
            self.loaded,
            self.lines,
            self.hateful,
            self.not_hateful,
            self.unlabelled,
            balance * 100.0,
            self.text,
        );
        let skipped = self.bad_lines + self.missing_images + self.unreadable_images;
        if skipped > 0 {
            tracing::warn!(
                "{split}: {skipped} skipped: {} bad lines, {} missing images, {} unreadable images",
                self.bad_lines,
                self.missing_images,
                self.unreadable_images
            );
        }
    }
}
