//! Whole classifier graphs in the model-package contract: image encoder and/or text
//! encoder, a classifier head, outputs `logits` and `probability` `[N]` plus the
//! encoder features (`image_embedding`, `text_embedding`). All three package inputs
//! are declared even when a modality is unused, so every classifier is a valid
//! package model. Encoders are built-in architectures or imported ones
//! ([`ImageEncoder`], [`TextEncoder`]); an imported encoder's weights are copied into
//! every graph built, [`Weights::Hollow`] included, so a package exported from the
//! inference graph carries them.

use memeguard_onnx::{DataType, Dim, dims};

use crate::graph_spec::{Mode, ModelGraph};
use crate::models::ModelError;
use crate::models::encoders::{ImageEncoder, TextEncoder};
use crate::models::fusion::{HeadConfig, concat_head, hate_clipper_head, single_modality_head};
use crate::models::input::{BATCH, PIXEL_VALUES, image_input_for, text_inputs};
use crate::models::net::{GraphOutput, Net, Weights};

/// Parameter-name prefix of the image encoder in classifiers.
pub const IMAGE_PREFIX: &str = "image";
/// Parameter-name prefix of the text encoder in classifiers.
pub const TEXT_PREFIX: &str = "text";
/// Parameter-name prefix of the classifier head.
pub const HEAD_PREFIX: &str = "head";

/// What a classifier is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierConfig {
    /// The image encoder, or none for a text-only model.
    pub image: Option<ImageEncoder>,
    /// The text encoder, or none for an image-only model.
    pub text: Option<TextEncoder>,
    pub head: HeadConfig,
}

/// Builds the classifier. Parameters are named `image.*`, `text.*`, `head.*` (also
/// their groups).
pub fn build_classifier(cfg: &ClassifierConfig, mode: Mode, weights: Weights) -> Result<ModelGraph, ModelError> {
    if let Some(image) = &cfg.image {
        image.validate()?;
    }
    let mut net = Net::with_weights("classifier", mode, weights);
    let image = match &cfg.image {
        Some(c) => {
            let pixels = image_input_for(&mut net, &c.image_spec());
            Some((c.build(&mut net, IMAGE_PREFIX, &pixels)?, c.feature_dim()))
        }
        None => {
            // Declared for the package contract only: any size, never read.
            net.b.input(PIXEL_VALUES, DataType::Uint8, &[Dim::from(BATCH), "height".into(), "width".into(), 3.into()]);
            None
        }
    };
    let (ids, mask) = text_inputs(&mut net);
    let text = match &cfg.text {
        Some(c) => Some((c.build(&mut net, TEXT_PREFIX, &ids, &mask)?, c.feature_dim())),
        None => None,
    };

    let logits = match (&image, &text, &cfg.head) {
        (None, None, _) => {
            return Err(ModelError::Config("a classifier needs an image encoder, a text encoder or both".into()));
        }
        (Some((features, dim)), None, HeadConfig::Concat(head))
        | (None, Some((features, dim)), HeadConfig::Concat(head)) => {
            single_modality_head(&mut net, HEAD_PREFIX, features, *dim, head)
        }
        (Some(i), Some(t), HeadConfig::Concat(head)) => {
            concat_head(&mut net, HEAD_PREFIX, (&i.0, i.1), (&t.0, t.1), head)
        }
        (Some(i), Some(t), HeadConfig::HateClipper(head)) => {
            hate_clipper_head(&mut net, HEAD_PREFIX, (&i.0, i.1), (&t.0, t.1), head)
        }
        (_, _, HeadConfig::HateClipper(_)) => {
            return Err(ModelError::Config("Hate-CLIPper fusion needs both an image and a text encoder".into()));
        }
    };
    let probability = net.b.op("Sigmoid", &[&logits], &[]);

    let mut outputs = vec![
        GraphOutput::f32(&logits, "logits", dims![BATCH]),
        GraphOutput::f32(&probability, "probability", dims![BATCH]),
    ];
    if let Some((features, dim)) = &image {
        outputs.push(GraphOutput::f32(features, "image_embedding", vec![Dim::from(BATCH), Dim::Known(*dim as i64)]));
    }
    if let Some((features, dim)) = &text {
        outputs.push(GraphOutput::f32(features, "text_embedding", vec![Dim::from(BATCH), Dim::Known(*dim as i64)]));
    }
    Ok(net.finish(&outputs))
}
