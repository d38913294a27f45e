//! `manifest.json`: what a model package is, how to feed it, and how well it scored.
//!
//! Parsing reads `format_version` first, so a manifest written by a newer build is
//! refused as "unknown version" rather than as a confusing schema error.
//!
//! Version 2 added `image.filter`, `image.mean` and `image.std` and the
//! [`ResizeRule::ScaleShorterSideThenCenterCrop`] rule. A version 1 manifest is still
//! read: it meant bilinear resampling and ImageNet statistics, and is held in memory as
//! the equivalent version 2 manifest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format this build reads and writes.
pub const MANIFEST_FORMAT_VERSION: u32 = 2;
/// Older manifest formats this build still reads (and upgrades in memory).
pub const READABLE_FORMAT_VERSIONS: [u32; 2] = [1, 2];
/// The manifest's file name inside a package directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The forward graph's file name inside a package directory.
pub const MODEL_FILE: &str = "model.onnx";
/// The tokenizer's file name inside a package directory.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// Files every package must list in [`Manifest::files`].
pub const REQUIRED_FILES: [&str; 2] = [MODEL_FILE, TOKENIZER_FILE];
/// The values [`Manifest::pretraining`] may take.
pub const PRETRAINING_METHODS: [&str; 6] = ["none", "clip", "dino", "cass", "cass-mm", "imported"];

/// Everything a package declares about itself.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT_VERSION`] when written by this build.
    pub format_version: u32,
    /// Model name, for example `meme-resnet50`.
    pub name: String,
    /// Model version, for example `2025-06-01.1` or `0.3.0`.
    pub version: String,
    /// When the package was made, RFC 3339.
    pub created_at: String,
    /// One or two sentences for people (shown on the model page).
    pub description: String,
    /// True for an untrained placeholder: every place that shows the model must say so.
    pub placeholder: bool,
    pub architecture: Architecture,
    /// One of [`PRETRAINING_METHODS`].
    pub pretraining: String,
    pub image: ImageSpec,
    pub text: TextSpec,
    /// Decision threshold on the `probability` output (picked on the dev split).
    pub threshold: f32,
    /// Per split: AUROC, accuracy, mean/std over seeds. Free-form: the training report decides.
    pub metrics: serde_json::Value,
    /// Summary of the training data. Free-form.
    pub data: serde_json::Value,
    /// Default-domain opset of `model.onnx`.
    pub opset: i64,
    /// IR version of `model.onnx`.
    pub ir_version: i64,
    /// File name -> lowercase sha256 hex, for every file besides the manifest.
    pub files: BTreeMap<String, String>,
}

/// What the model is made of (for people and reports; the graph is the truth).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Architecture {
    pub image_encoder: String,
    pub text_encoder: String,
    pub fusion: String,
    /// Number of trained parameters.
    pub parameters: u64,
}

/// How images are brought to the model's input size, and the normalisation the model's
/// graph applies to them (the graph does it; the trainer reads `mean` / `std` to build it).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct ImageSpec {
    /// Side of the square `pixel_values` input, in pixels.
    pub size: u32,
    pub resize: ResizeRule,
    /// Resampling filter (format version 2; version 1 always meant bilinear).
    #[serde(default)]
    pub filter: ResizeFilter,
    /// Per-channel (RGB) mean of `x / 255` the graph subtracts (version 1: ImageNet's).
    #[serde(default = "imagenet_mean")]
    pub mean: [f32; 3],
    /// Per-channel (RGB) standard deviation the graph divides by (version 1: ImageNet's).
    #[serde(default = "imagenet_std")]
    pub std: [f32; 3],
}

/// ImageNet channel means (RGB), as torchvision normalises: the version 1 default.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations (RGB): the version 1 default.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];
/// OpenAI CLIP's channel means (RGB), as in its `preprocessor_config.json`.
pub const CLIP_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's channel standard deviations (RGB).
#[allow(clippy::excessive_precision)] // the digits CLIP's preprocessor_config.json writes
pub const CLIP_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];

fn imagenet_mean() -> [f32; 3] {
    IMAGENET_MEAN
}

fn imagenet_std() -> [f32; 3] {
    IMAGENET_STD
}

impl ImageSpec {
    /// `size` and `resize` with what every version 1 manifest meant: bilinear
    /// resampling and ImageNet statistics.
    pub fn new(size: u32, resize: ResizeRule) -> Self {
        ImageSpec { size, resize, filter: ResizeFilter::Bilinear, mean: IMAGENET_MEAN, std: IMAGENET_STD }
    }

    /// OpenAI CLIP's preprocessing at `size`: shorter side scaled to `size`, centred
    /// square crop, bicubic, CLIP's statistics.
    pub fn clip(size: u32) -> Self {
        ImageSpec {
            size,
            resize: ResizeRule::ScaleShorterSideThenCenterCrop,
            filter: ResizeFilter::Bicubic,
            mean: CLIP_MEAN,
            std: CLIP_STD,
        }
    }

    /// The same spec with another resampling filter.
    pub fn with_filter(self, filter: ResizeFilter) -> Self {
        ImageSpec { filter, ..self }
    }

    /// The same spec with other normalisation statistics.
    pub fn with_normalisation(self, mean: [f32; 3], std: [f32; 3]) -> Self {
        ImageSpec { mean, std, ..self }
    }
}

/// How text is brought to the model's input length.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextSpec {
    /// Length `L` of `input_ids` / `attention_mask`, special tokens included.
    pub max_length: usize,
}

/// How a picture of any shape becomes a `size`×`size` square. Every rule resamples with
/// the manifest's [`ResizeFilter`], the same in training and serving.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ResizeRule {
    /// Scale each axis independently to `size`: keeps everything, distorts the aspect ratio.
    Stretch,
    /// Take the centred square whose side is the shorter side, then scale it to `size`:
    /// keeps the aspect ratio, loses the ends of the longer side. The filter sees only
    /// the square, so edge pixels differ slightly from CLIP's order (see the next rule).
    ShorterSideCenterCrop,
    /// Scale the longer side to `size` keeping the aspect ratio, and centre the result on
    /// a white square: keeps everything undistorted, wastes the padding.
    Letterbox,
    /// Exactly Hugging Face's `CLIPImageProcessor` (format version 2): scale the shorter
    /// side to `size` (the longer to `floor(size · long / short)`), then take the centred
    /// `size`×`size` crop, its offset `floor((scaled − size) / 2)`.
    ScaleShorterSideThenCenterCrop,
}

/// The resampling filter, antialiased when shrinking (the kernel widens by the scale
/// factor, as in Pillow).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum ResizeFilter {
    /// Triangle kernel, Pillow's `BILINEAR` (Hugging Face `resample` 2). The version 1 filter.
    #[default]
    Bilinear,
    /// Cubic kernel with a = −0.5 (Catmull–Rom), Pillow's `BICUBIC` (`resample` 3), CLIP's.
    Bicubic,
}

impl std::fmt::Display for ResizeRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResizeRule::Stretch => "stretch",
            ResizeRule::ShorterSideCenterCrop => "shorter_side_center_crop",
            ResizeRule::Letterbox => "letterbox",
            ResizeRule::ScaleShorterSideThenCenterCrop => "scale_shorter_side_then_center_crop",
        })
    }
}

impl std::fmt::Display for ResizeFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResizeFilter::Bilinear => "bilinear",
            ResizeFilter::Bicubic => "bicubic",
        })
    }
}

/// Why a manifest's text was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("is not valid manifest JSON: {0}")]
    Malformed(String),
    #[error(
        "has format_version {found}; this build of memeguard reads format_version 1 and {MANIFEST_FORMAT_VERSION} \
         (a newer memeguard wrote it, or the file is damaged)"
    )]
    UnsupportedVersion { found: String },
    #[error("is inconsistent: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Manifest {
    /// Parses and validates a manifest: version first, then the schema, then the values.
    /// A version 1 manifest comes back as the equivalent version 2 one (bilinear,
    /// ImageNet statistics); one that already uses a version 2 field is refused.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(ManifestError::Malformed("the top level is not a JSON object".into()));
        };
        let version = match object.get("format_version") {
            None => return Err(ManifestError::Malformed("`format_version` is missing".into())),
            Some(v) => match v.as_u64().and_then(|v| u32::try_from(v).ok()) {
                Some(version) if READABLE_FORMAT_VERSIONS.contains(&version) => version,
                _ => return Err(ManifestError::UnsupportedVersion { found: v.to_string() }),
            },
        };
        let mut problems = Vec::new();
        if version == 1 {
            problems.extend(version_2_fields_in_v1(object));
        }
        let mut manifest: Manifest =
            serde_json::from_value(value).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        manifest.format_version = MANIFEST_FORMAT_VERSION;
        problems.extend(manifest.problems());
        if problems.is_empty() { Ok(manifest) } else { Err(ManifestError::Invalid(problems)) }
    }

    /// The manifest as pretty JSON (what `manifest.json` holds).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a manifest always serialises") + "\n"
    }

    /// `name@version`, the id the server reports with every verdict.
    pub fn id(&self) -> String {
        format!("{}@{}", self.name, self.version)
    }

    /// The id for people: `name@version`, plus "(untrained placeholder)" when it is one.
    pub fn label(&self) -> String {
        if self.placeholder { format!("{} (untrained placeholder)", self.id()) } else { self.id() }
    }

    /// Every value that is out of range, one message each (empty when valid).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.format_version != MANIFEST_FORMAT_VERSION {
            problems.push(format!("format_version is {}, expected {MANIFEST_FORMAT_VERSION}", self.format_version));
        }
        for (field, value) in [("name", &self.name), ("version", &self.version)] {
            if value.is_empty()
                || value.chars().any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | '/' | '\\'))
            {
                problems.push(format!("{field} `{value}` must be non-empty, without spaces, `@`, `/` or `\\`"));
            }
        }
        if time::OffsetDateTime::parse(&self.created_at, &time::format_description::well_known::Rfc3339).is_err() {
            problems.push(format!("created_at `{}` is not an RFC 3339 time", self.created_at));
        }
        if !PRETRAINING_METHODS.contains(&self.pretraining.as_str()) {
            problems.push(format!(
                "pretraining `{}` is not one of {}",
                self.pretraining,
                PRETRAINING_METHODS.join(", ")
            ));
        }
        if self.image.size == 0 {
            problems.push("image.size is 0".into());
        }
        for (channel, (mean, std)) in ["red", "green", "blue"].iter().zip(self.image.mean.iter().zip(self.image.std)) {
            if !mean.is_finite() {
                problems.push(format!("image.mean for {channel} is {mean}, not a number"));
            }
            if !(std.is_finite() && std > 0.0) {
                problems.push(format!("image.std for {channel} is {std}; it must be a positive number"));
            }
        }
        if self.text.max_length == 0 {
            problems.push("text.max_length is 0".into());
        }
        if !(0.0..=1.0).contains(&self.threshold) {
            problems.push(format!("threshold {} is not a probability in [0, 1]", self.threshold));
        }
        if self.opset <= 0 || self.ir_version <= 0 {
            problems.push(format!("opset {} / ir_version {} must be positive", self.opset, self.ir_version));
        }
        for required in REQUIRED_FILES {
            if !self.files.contains_key(required) {
                problems.push(format!("files does not list {required}"));
            }
        }
        for (name, digest) in &self.files {
            if !is_plain_file_name(name) || name == MANIFEST_FILE {
                problems.push(format!("files lists `{name}`, which is not a plain file name of the package"));
            }
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
                problems.push(format!("files[{name}] `{digest}` is not a lowercase sha256 hex digest"));
            }
        }
        problems
    }
}

/// Version 2 fields found in a version 1 manifest's JSON (a hand edit that forgot the
/// version): each one named, since silently dropping it would change the pixels.
fn version_2_fields_in_v1(object: &serde_json::Map<String, serde_json::Value>) -> Vec<String> {
    let Some(image) = object.get("image").and_then(|i| i.as_object()) else { return Vec::new() };
    let mut problems: Vec<String> = ["filter", "mean", "std"]
        .iter()
        .filter(|key| image.contains_key(**key))
        .map(|key| format!("image.{key} needs format_version 2 (this manifest says 1)"))
        .collect();
    let new_rule = ResizeRule::ScaleShorterSideThenCenterCrop.to_string();
    if image.get("resize").and_then(|r| r.as_str()) == Some(new_rule.as_str()) {
        problems.push(format!("image.resize `{new_rule}` needs format_version 2 (this manifest says 1)"));
    }
    problems
}

/// The current time as RFC 3339 (UTC), for [`Manifest::created_at`].
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 ns is valid")
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a UTC time always formats")
}

/// A file name without directories (so a manifest cannot point outside its package).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Manifest {
        Manifest {
            format_version: MANIFEST_FORMAT_VERSION,
            name: "m".into(),
            version: "1".into(),
            created_at: now_rfc3339(),
            description: "test".into(),
            placeholder: false,
            architecture: Architecture {
                image_encoder: "a".into(),
                text_encoder: "b".into(),
                fusion: "c".into(),
                parameters: 1,
            },
            pretraining: "none".into(),
            image: ImageSpec::new(8, ResizeRule::Letterbox),
            text: TextSpec { max_length: 4 },
            threshold: 0.5,
            metrics: serde_json::json!({}),
            data: serde_json::json!({}),
            opset: 20,
            ir_version: 9,
            files: REQUIRED_FILES.iter().map(|f| (f.to_string(), "0".repeat(64))).collect(),
        }
    }

    #[test]
    fn round_trips_through_json() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
        assert!(m.to_json().contains("\"resize\": \"letterbox\""));
    }

    #[test]
    fn version_2_fields_round_trip() {
        let mut m = sample();
        m.image = ImageSpec::clip(32);
        let json = m.to_json();
        assert!(json.contains("\"format_version\": 2"), "{json}");
        assert!(json.contains("\"filter\": \"bicubic\""), "{json}");
        assert!(json.contains("\"resize\": \"scale_shorter_side_then_center_crop\""), "{json}");
        assert_eq!(Manifest::parse(&json).unwrap(), m);
    }

    #[test]
    fn version_1_is_read_with_the_old_defaults() {
        let mut v1: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        v1["format_version"] = 1.into();
        for key in ["filter", "mean", "std"] {
            v1["image"].as_object_mut().unwrap().remove(key);
        }
        let read = Manifest::parse(&v1.to_string()).unwrap();
        assert_eq!(read.format_version, MANIFEST_FORMAT_VERSION, "upgraded in memory");
        assert_eq!(read.image, ImageSpec::new(8, ResizeRule::Letterbox));
        assert_eq!(
            (read.image.filter, read.image.mean, read.image.std),
            (ResizeFilter::Bilinear, IMAGENET_MEAN, IMAGENET_STD)
        );

        v1["image"]["filter"] = "bicubic".into();
        v1["image"]["resize"] = "scale_shorter_side_then_center_crop".into();
        let Err(ManifestError::Invalid(problems)) = Manifest::parse(&v1.to_string()) else { panic!("accepted") };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().all(|p| p.contains("needs format_version 2")), "{problems:?}");
    }

    #[test]
    fn bad_normalisation_is_refused() {
        let mut m = sample();
        m.image.std = [0.2, 0.0, f32::NAN];
        m.image.mean = [f32::INFINITY, 0.0, 0.0];
        let text = m.problems().join("\n");
        for needle in ["image.mean for red is inf", "image.std for green is 0;", "image.std for blue is NaN"] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn unknown_version_is_named_before_schema_errors() {
        let err = Manifest::parse(r#"{"format_version": 7, "something": "else"}"#).unwrap_err();
        assert_eq!(err, ManifestError::UnsupportedVersion { found: "7".into() });
        assert!(err.to_string().contains("format_version 7"), "{err}");
    }

    #[test]
    fn malformed_and_inconsistent_manifests_are_refused() {
        assert!(matches!(Manifest::parse("{"), Err(ManifestError::Malformed(_))));
        assert!(matches!(Manifest::parse("[1]"), Err(ManifestError::Malformed(_))));
        assert!(
            matches!(Manifest::parse(r#"{"format_version": 1}"#), Err(ManifestError::Malformed(m)) if m.contains("name"))
        );
        let mut m = sample();
        m.threshold = 1.5;
        m.files.insert("../etc/passwd".into(), "0".repeat(64));
        m.files.remove(MODEL_FILE);
        m.created_at = "yesterday".into();
        let Err(ManifestError::Invalid(problems)) = Manifest::parse(&m.to_json()) else { panic!("accepted") };
        let text = problems.join("\n");
        for needle in ["threshold 1.5", "../etc/passwd", "does not list model.onnx", "created_at `yesterday`"] {
            assert!(text.contains(needle), "{needle} missing from {text}");
        }
    }

    #[test]
    fn placeholder_label_says_so() {
        let mut m = sample();
        assert_eq!(m.label(), "m@1");
        m.placeholder = true;
        assert_eq!(m.label(), "m@1 (untrained placeholder)");
    }
}
