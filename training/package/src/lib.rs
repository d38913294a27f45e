//! What the training crate and the server share: ONNX Runtime setup, the model
//! package format, and the one preprocessing implementation.
//!
//! - [`manifest`] — `manifest.json`: what a package is and how to feed it
//! - [`contract`] — the inputs and outputs every `model.onnx` declares
//! - [`package`] — opening (validating) and writing package directories
//! - [`tokenizer`], [`image`], [`resize`], [`preprocess`] — text and pixels to model inputs
//! - [`hf_image`], [`hf_tokenizer`] — the preprocessing a Hugging Face model folder declares
//! - [`session`] — scoring a batch with a package in ONNX Runtime
//! - [`placeholder`] — the untrained placeholder model used until a trained one exists
#![forbid(unsafe_code)]

pub mod contract;
pub mod hf_image;
pub mod hf_tokenizer;
pub mod image;
pub mod manifest;
pub mod onnxruntime;
pub mod package;
pub mod placeholder;
pub mod preprocess;
pub mod resize;
pub mod session;
pub mod tensor_value;
pub mod tokenizer;
pub mod wordpiece;

pub use crate::image::{DecodedImage, ImageError, ImageFormat, ImageLimits, decode_image, sniff_format};
pub use crate::resize::resize_for_model;
pub use hf_image::PreprocessorConfigError;
pub use hf_tokenizer::{HfTokenizer, write_hf_tokenizer};
pub use manifest::{
    Architecture, ImageSpec, MANIFEST_FORMAT_VERSION, Manifest, ManifestError, ResizeFilter, ResizeRule, TextSpec,
};
pub use onnxruntime::{Device, RuntimeError, SessionOptions};
pub use package::{ModelPackage, PackageError, write_package};
pub use placeholder::{placeholder_model, write_placeholder_package};
pub use preprocess::{ModelInputs, PreparedItem, Preprocessor, collate};
pub use session::{ItemScore, PackageSession, ScoreError};
pub use tokenizer::{Encoded, TextTokenizer, TokenizerError};
