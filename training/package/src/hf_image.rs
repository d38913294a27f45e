//! [`ImageSpec`] from a Hugging Face `preprocessor_config.json`, so an imported encoder is
//! fed the pixels it was pretrained on.
//!
//! Read: `do_resize`, `size` (`{"shortest_edge": n}`, `{"height": n, "width": n}` or a
//! number), `do_center_crop` + `crop_size`, `resample`, `do_rescale` + `rescale_factor`,
//! `do_normalize` + `image_mean` / `image_std`. What cannot be expressed as a square
//! `size` with one of our rules (for example CLIP-style resize to 256 then crop 224) is
//! refused with the reason, never approximated.

use std::path::Path;

use serde_json::{Map, Value};

use crate::manifest::{ImageSpec, ResizeFilter, ResizeRule};

/// Why a `preprocessor_config.json` could not become an [`ImageSpec`].
#[derive(Debug, thiserror::Error)]
pub enum PreprocessorConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("preprocessor config is not a JSON object: {0}")]
    Malformed(String),
    #[error("preprocessor config: `{field}` {problem}")]
    Field { field: &'static str, problem: String },
    #[error("preprocessor config: {0}")]
    Unsupported(String),
}

impl ImageSpec {
    /// The spec a Hugging Face `preprocessor_config.json` file describes (see the module docs).
    pub fn from_hf_preprocessor_config(path: &Path) -> Result<ImageSpec, PreprocessorConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| PreprocessorConfigError::Read { path: path.display().to_string(), source })?;
        Self::from_hf_preprocessor_json(&text).map_err(|e| match e {
            PreprocessorConfigError::Malformed(m) => {
                PreprocessorConfigError::Malformed(format!("{}: {m}", path.display()))
            }
            other => other,
        })
    }

    /// [`from_hf_preprocessor_config`](Self::from_hf_preprocessor_config) from the file's text.
    pub fn from_hf_preprocessor_json(text: &str) -> Result<ImageSpec, PreprocessorConfigError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PreprocessorConfigError::Malformed(e.to_string()))?;
        let Value::Object(config) = value else {
            return Err(PreprocessorConfigError::Malformed("the top level is not an object".into()));
        };
        let (size, resize) = geometry(&config)?;
        let filter = match config.get("resample") {
            None => ResizeFilter::Bicubic, // CLIPImageProcessor's default
            Some(v) => match v.as_u64() {
                Some(2) => ResizeFilter::Bilinear,
                Some(3) => ResizeFilter::Bicubic,
                _ => {
                    return Err(field(
                        "resample",
                        format!(
                            "is {v}; memeguard resamples with 2 (bilinear) or 3 (bicubic) only \
                             (Pillow: 0 nearest, 1 lanczos, 4 box, 5 hamming)"
                        ),
                    ));
                }
            },
        };
        if flag(&config, "do_rescale", true)? {
            let factor = config.get("rescale_factor").map_or(Some(1.0 / 255.0), Value::as_f64);
            if factor.is_none_or(|f| (f - 1.0 / 255.0).abs() > 1e-9) {
                return Err(field("rescale_factor", "must be 1/255 (pixels are bytes)".into()));
            }
        } else {
            return Err(PreprocessorConfigError::Unsupported(
                "do_rescale is false: the model expects 0–255 floats, but memeguard's graphs divide by 255".into(),
            ));
        }
        let (mean, std) = if flag(&config, "do_normalize", true)? {
            (triple(&config, "image_mean")?, triple(&config, "image_std")?)
        } else {
            ([0.0; 3], [1.0; 3])
        };
        if let Some(i) = std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(field("image_std", format!("has {} at channel {i}; it must be positive", std[i])));
        }
        Ok(ImageSpec { size, resize, filter, mean, std })
    }
}

/// The square side and the rule: shortest edge + centre crop of the same side is CLIP's
/// rule; a fixed height = width without a crop is a stretch.
fn geometry(config: &Map<String, Value>) -> Result<(u32, ResizeRule), PreprocessorConfigError> {
    if !flag(config, "do_resize", true)? {
        return Err(PreprocessorConfigError::Unsupported(
            "do_resize is false: the model takes images at any size, but a package needs one square size".into(),
        ));
    }
    let size = config.get("size").ok_or_else(|| field("size", "is missing".into()))?;
    // Processors without a crop (ViT) leave `do_center_crop` out; CLIP's writes it.
    let crop = if flag(config, "do_center_crop", config.contains_key("crop_size"))? {
        Some(dims(config.get("crop_size").ok_or_else(|| field("crop_size", "is missing".into()))?, "crop_size")?)
    } else {
        None
    };
    match (size.get("shortest_edge"), crop) {
        (Some(edge), Some((crop_h, crop_w))) => {
            let edge = positive(edge, "size")?;
            if crop_h != crop_w || crop_h != edge {
                return Err(PreprocessorConfigError::Unsupported(format!(
                    "size.shortest_edge {edge} with crop_size {crop_h}×{crop_w}: memeguard's \
                     scale_shorter_side_then_center_crop rule needs a square crop of the shortest edge"
                )));
            }
            Ok((edge, ResizeRule::ScaleShorterSideThenCenterCrop))
        }
        (Some(_), None) => Err(PreprocessorConfigError::Unsupported(
            "size.shortest_edge without a centre crop gives non-square images; a package needs a square".into(),
        )),
        (None, crop) => {
            let (h, w) = dims(size, "size")?;
            if h != w {
                return Err(PreprocessorConfigError::Unsupported(format!("size {h}×{w} is not square")));
            }
            match crop {
                Some((ch, cw)) if (ch, cw) != (h, w) => Err(PreprocessorConfigError::Unsupported(format!(
                    "resize to {h}×{w} then crop {ch}×{cw} has no memeguard rule"
                ))),
                _ => Ok((h, ResizeRule::Stretch)),
            }
        }
    }
}

/// `{"height": h, "width": w}` or a number (older configs) as (height, width).
fn dims(value: &Value, name: &'static str) -> Result<(u32, u32), PreprocessorConfigError> {
    if value.is_number() {
        let side = positive(value, name)?;
        return Ok((side, side));
    }
    match (value.get("height"), value.get("width")) {
        (Some(h), Some(w)) => Ok((positive(h, name)?, positive(w, name)?)),
        _ => Err(field(name, format!("is {value}; expected {{\"height\": n, \"width\": n}} or a number"))),
    }
}

fn positive(value: &Value, name: &'static str) -> Result<u32, PreprocessorConfigError> {
    value
        .as_u64()
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .ok_or_else(|| field(name, format!("has {value}; expected a positive whole number of pixels")))
}

fn flag(config: &Map<String, Value>, name: &'static str, default: bool) -> Result<bool, PreprocessorConfigError> {
    match config.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(field(name, format!("is {other}; expected true or false"))),
    }
}

fn triple(config: &Map<String, Value>, name: &'static str) -> Result<[f32; 3], PreprocessorConfigError> {
    let value = config.get(name).ok_or_else(|| field(name, "is missing".into()))?;
    let numbers: Option<Vec<f32>> =
        value.as_array().map(|a| a.iter().map(|v| v.as_f64().map(|f| f as f32)).collect()).unwrap_or(None);
    match numbers.as_deref() {
        Some(&[r, g, b]) => Ok([r, g, b]),
        Some(&[v]) => Ok([v; 3]),
        _ => Err(field(name, format!("is {value}; expected three numbers (RGB)"))),
    }
}

fn field(field: &'static str, problem: String) -> PreprocessorConfigError {
    PreprocessorConfigError::Field { field, problem }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{CLIP_MEAN, CLIP_STD};

    const CLIP: &str = r#"{"crop_size": {"height": 224, "width": 224}, "do_center_crop": true,
        "do_normalize": true, "do_resize": true, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3,
        "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 224}}"#;

    #[test]
    fn clip_config_is_clips_spec() {
        let spec = ImageSpec::from_hf_preprocessor_json(CLIP).unwrap();
        assert_eq!(spec, ImageSpec::clip(224));
        assert_eq!((spec.mean, spec.std), (CLIP_MEAN, CLIP_STD));
    }

    #[test]
    fn vit_style_fixed_size_is_a_bilinear_stretch() {
        let vit = r#"{"do_resize": true, "size": {"height": 224, "width": 224}, "resample": 2,
            "do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}"#;
        let spec = ImageSpec::from_hf_preprocessor_json(vit).unwrap();
        assert_eq!((spec.size, spec.resize, spec.filter), (224, ResizeRule::Stretch, ResizeFilter::Bilinear));
        assert_eq!((spec.mean, spec.std), ([0.5; 3], [0.5; 3]));
    }

    #[test]
    fn what_cannot_be_matched_is_refused_with_the_reason() {
        let cases = [
            (
                CLIP.replace(r#""shortest_edge": 224"#, r#""shortest_edge": 256"#),
                "shortest_edge 256 with crop_size 224×224",
            ),
            (CLIP.replace(r#""resample": 3"#, r#""resample": 1"#), "`resample` is 1"),
            (CLIP.replace(r#""do_center_crop": true"#, r#""do_center_crop": false"#), "without a centre crop"),
            (CLIP.replace("[0.48145466, 0.4578275, 0.40821073]", "[0.5, 0.5]"), "`image_mean`"),
            (CLIP.replace(r#""rescale_factor": 0.00392156862745098"#, r#""rescale_factor": 1.0"#), "1/255"),
            (CLIP.replace(r#"{"shortest_edge": 224}"#, r#""big""#), "`size`"),
            ("[]".to_string(), "not an object"),
        ];
        for (json, needle) in cases {
            let err = ImageSpec::from_hf_preprocessor_json(&json).unwrap_err().to_string();
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
        let err = ImageSpec::from_hf_preprocessor_config(Path::new("/nonexistent/preprocessor_config.json"));
        assert!(err.unwrap_err().to_string().contains("/nonexistent/preprocessor_config.json"));
    }
}
