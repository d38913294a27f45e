//! Models as ONNX graphs: ResNet, ViT, the text transformer, heads and fusion classifiers,
//! and imported ONNX encoders.
//!
//! Everything is written into one shared [`Net`] (a graph builder plus the parameters
//! and buffers registered so far) under name prefixes, so objectives can put several
//! encoders and heads into one graph (CLIP: image + text encoders with projection
//! heads; CASS: a ResNet and a ViT; CASS-MM: two multimodal branches). The same
//! builder with the same names serves [`Mode::Train`](crate::graph_spec::Mode) and
//! `Mode::Infer`, so exporting a trained model is rebuilding it in `Infer` mode (with
//! [`Weights::Hollow`]) and filling in the trained values.
//!
//! ```text
//! net.rs        the building context (parameters, buffers, mode, weights)
//! init.rs       reference initialisation, seeded per parameter name
//! layers.rs     linear, conv, batch/layer norm, activations, dropout, pooling
//! input.rs      package inputs (uint8 pixels normalised in-graph, token ids, mask)
//! resnet.rs  vit.rs  text.rs  transformer.rs   encoders
//! heads.rs      projection head (seed study), DINO head
//! fusion.rs     classifier heads (single modality, concat, Hate-CLIPper)
//! classifier.rs whole classifier graphs in the package contract
//! encoders.rs   encoders by name (`resnet50`, `vit-b16@384`, `text-small`)
//! source.rs     where an encoder comes from (`name`, `hf:DIR`, `onnx:FILE#OUT`), how much trains
//! import.rs     a user's ONNX encoder as part of a Net
//! hf/           Hugging Face CLIP and BERT-family folders (config.json + safetensors) as native towers
//! catalog.rs    architectures, parameter counts and op histograms for the CLI
//! ```

pub mod catalog;
pub mod classifier;
pub mod encoders;
pub mod fusion;
pub mod heads;
pub mod hf;
pub mod import;
pub mod init;
pub mod input;
pub mod layers;
pub mod net;
pub mod resnet;
pub mod source;
pub mod text;
pub mod transformer;
pub mod vit;

pub use classifier::{ClassifierConfig, build_classifier};
pub use encoders::{ImageEncoderConfig, parse_text_encoder};
pub use fusion::{ConcatHead, HateClipperHead, HeadConfig, Interaction};
pub use heads::{DinoHeadConfig, dino_head, projection_head};
pub use import::{ImportError, ImportedEncoder};
pub use init::Init;
pub use input::{image_input, image_input_named, text_inputs};
pub use net::{GraphOutput, Net, TrainBatchNorm, Weights};
pub use resnet::{ResNetConfig, resnet};
pub use source::{EncoderSource, Trainable};
pub use text::{Pooling, TextConfig, text_encoder};
pub use vit::{VitConfig, vit, vit_at_input_size};

/// A model that cannot be built as asked.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The configuration is inconsistent or names something unknown.
    #[error("model configuration: {0}")]
    Config(String),
}
