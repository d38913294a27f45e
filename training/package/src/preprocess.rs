//! The one preprocessing: a decoded image and its text -> one item of model input,
//! and items -> a batch of input tensors. Training and serving both call this, so a
//! model sees the same pixels and ids for the same meme in both.

use ndarray::{Array2, Array4};

use crate::image::{DecodedImage, ImageError, ImageLimits, decode_image, resize_for_model};
use crate::manifest::{ImageSpec, TextSpec};
use crate::package::ModelPackage;
use crate::tokenizer::TextTokenizer;

/// Turns (image, text) pairs into model inputs for one package's specs.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    image: ImageSpec,
    text: TextSpec,
    tokenizer: TextTokenizer,
}

/// One meme ready for batching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedItem {
    /// `size * size * 3` bytes, row-major HWC RGB.
    pub pixels: Vec<u8>,
    /// `max_length` token ids.
    pub ids: Vec<i64>,
    /// `max_length` mask values (1 token, 0 padding).
    pub mask: Vec<i64>,
}

/// A batch in the contract's layout (see [`crate::contract`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInputs {
    /// uint8 `[N, size, size, 3]`.
    pub pixel_values: Array4<u8>,
    /// int64 `[N, max_length]`.
    pub input_ids: Array2<i64>,
    /// int64 `[N, max_length]`.
    pub attention_mask: Array2<i64>,
}

impl ModelInputs {
    /// Number of items in the batch.
    pub fn len(&self) -> usize {
        self.pixel_values.shape()[0]
    }

    /// True for a batch of no items.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Preprocessor {
    pub fn new(image: ImageSpec, text: TextSpec, tokenizer: TextTokenizer) -> Self {
        Preprocessor { image, text, tokenizer }
    }

    /// The preprocessing a package's manifest asks for, with its tokenizer.
    pub fn for_package(pkg: &ModelPackage) -> Self {
        Self::new(pkg.manifest.image, pkg.manifest.text, pkg.tokenizer.clone())
    }

    pub fn image_spec(&self) -> ImageSpec {
        self.image
    }

    pub fn text_spec(&self) -> TextSpec {
        self.text
    }

    /// Resizes by the manifest's rule and filter and tokenises to the manifest's length.
    pub fn prepare(&self, image: &DecodedImage, text: &str) -> PreparedItem {
        let resized = resize_for_model(&image.image, self.image.size, self.image.resize, self.image.filter);
        let encoded = self.tokenizer.encode(text, self.text.max_length);
        PreparedItem { pixels: resized.into_raw(), ids: encoded.ids, mask: encoded.mask }
    }

    /// Decodes untrusted bytes within `limits`, then [`prepare`](Self::prepare)s them.
    pub fn prepare_bytes(&self, bytes: &[u8], text: &str, limits: &ImageLimits) -> Result<PreparedItem, ImageError> {
        Ok(self.prepare(&decode_image(bytes, limits)?, text))
    }

    /// [`collate`] with this preprocessor's sizes.
    pub fn collate(&self, items: &[PreparedItem]) -> ModelInputs {
        collate(items, self.image.size, self.text.max_length)
    }
}

/// Stacks items into the model's input tensors.
///
/// # Panics
/// If an item was not prepared for `size` and `max_length` (a caller mixed packages:
/// a bug, not bad input).
pub fn collate(items: &[PreparedItem], size: u32, max_length: usize) -> ModelInputs {
    let side = size as usize;
    let n = items.len();
    let mut pixels = Vec::with_capacity(n * side * side * 3);
    let mut ids = Vec::with_capacity(n * max_length);
    let mut mask = Vec::with_capacity(n * max_length);
    for (i, item) in items.iter().enumerate() {
        assert!(
            item.pixels.len() == side * side * 3 && item.ids.len() == max_length && item.mask.len() == max_length,
            "item {i} was prepared for another size ({} pixel bytes, {} ids); expected {size}×{size}×3 and {max_length}",
            item.pixels.len(),
            item.ids.len()
        );
        pixels.extend_from_slice(&item.pixels);
        ids.extend_from_slice(&item.ids);
        mask.extend_from_slice(&item.mask);
    }
    ModelInputs {
        pixel_values: Array4::from_shape_vec((n, side, side, 3), pixels).expect("length checked above"),
        input_ids: Array2::from_shape_vec((n, max_length), ids).expect("length checked above"),
        attention_mask: Array2::from_shape_vec((n, max_length), mask).expect("length checked above"),
    }
}
