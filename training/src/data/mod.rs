//! Training data: the Hateful Memes reader, the synthetic meme generator, augmentations
//! and the loader.

pub mod augment;
pub mod hateful_memes;
pub mod loader;
pub mod seed;
pub mod stats;
pub mod synth;

pub use hateful_memes::{DataWarning, HatefulMemes, ImageCheck, LoadError, LoadSummary, Meme, Problem, Split};
pub use loader::{Batch, EpochBatches, Loader, LoaderConfig, LoaderError, Sampling};
