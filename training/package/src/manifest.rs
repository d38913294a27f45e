//! `manifest.json`: what a model package is, how to feed it, and how well it scored.
//!
//! Parsing reads `format_version` first, so a manifest written by a newer build is
//! refused as "unknown version" rather than as a confusing schema error.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The manifest format this build reads and writes.
pub const MANIFEST_FORMAT_VERSION: u32 = 1;
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

/// How images are brought to the model's input size.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpec {
    /// Side of the square `pixel_values` input, in pixels.
    pub size: u32,
    pub resize: ResizeRule,
}

/// How text is brought to the model's input length.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextSpec {
    /// Length `L` of `input_ids` / `attention_mask`, special tokens included.
    pub max_length: usize,
}

/// How a picture of any shape becomes a `size`×`size` square. All rules resample with
/// an antialiased triangle (bilinear) filter, the same in training and serving.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ResizeRule {
    /// Scale each axis independently to `size`: keeps everything, distorts the aspect ratio.
    Stretch,
    /// Take the centred square whose side is the shorter side, then scale it to `size`:
    /// keeps the aspect ratio, loses the ends of the longer side (CLIP-style).
    ShorterSideCenterCrop,
    /// Scale the longer side to `size` keeping the aspect ratio, and centre the result on
    /// a white square: keeps everything undistorted, wastes the padding.
    Letterbox,
}

impl std::fmt::Display for ResizeRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ResizeRule::Stretch => "stretch",
            ResizeRule::ShorterSideCenterCrop => "shorter_side_center_crop",
            ResizeRule::Letterbox => "letterbox",
        })
    }
}

/// Why a manifest's text was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ManifestError {
    #[error("is not valid manifest JSON: {0}")]
    Malformed(String),
    #[error(
        "has format_version {found}; this build of memeguard reads format_version {MANIFEST_FORMAT_VERSION} \
         (a newer memeguard wrote it, or the file is damaged)"
    )]
    UnsupportedVersion { found: String },
    #[error("is inconsistent: {}", .0.join("; "))]
    Invalid(Vec<String>),
}

impl Manifest {
    /// Parses and validates a manifest: version first, then the schema, then the values.
    pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let Some(object) = value.as_object() else {
            return Err(ManifestError::Malformed("the top level is not a JSON object".into()));
        };
        match object.get("format_version") {
            None => return Err(ManifestError::Malformed("`format_version` is missing".into())),
            Some(v) if v.as_u64() == Some(u64::from(MANIFEST_FORMAT_VERSION)) => {}
            Some(v) => return Err(ManifestError::UnsupportedVersion { found: v.to_string() }),
        }
        let manifest: Manifest = serde_json::from_value(value).map_err(|e| ManifestError::Malformed(e.to_string()))?;
        let problems = manifest.problems();
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
            image: ImageSpec { size: 8, resize: ResizeRule::Letterbox },
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
