//! CPU augmentations on decoded 8-bit RGB images, all seeded: resize and crops
//! (`fast_image_resize`), flips, colour jitter, grayscale, blur, solarisation, affine and
//! perspective warps (`imageproc`), and the view recipes of DINO, CASS, CLIP and
//! finetuning built from them.

pub mod color;
pub mod geometry;
pub mod pipeline;
pub mod views;

pub use color::ColorJitter;
pub use geometry::{AffineParams, CropBox, Interpolation, resize, resize_crop, sample_resized_crop};
pub use pipeline::{Op, ViewError, ViewPipeline};
pub use views::{MultiCrop, Views};
