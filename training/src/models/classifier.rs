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
    let mut net = Net::with_weights("classifier", mode, weights);
    let (image, text) = encoders(&mut net, cfg, true)?;
    let (logits, probability) = head(&mut net, cfg, image.as_ref(), text.as_ref())?;
    let mut outputs = vec![
        GraphOutput::f32(&logits, "logits", dims![BATCH]),
        GraphOutput::f32(&probability, "probability", dims![BATCH]),
    ];
    outputs.extend(embedding_outputs(image.as_ref(), text.as_ref()));
    Ok(net.finish(&outputs))
}

/// The classifier's encoders alone: the package inputs they read (only those) to
/// [`IMAGE_EMBEDDING`] / [`TEXT_EMBEDDING`] `[N, D]`. What the frozen-feature cache runs.
pub fn build_encoders(cfg: &ClassifierConfig, mode: Mode, weights: Weights) -> Result<ModelGraph, ModelError> {
    let mut net = Net::with_weights("encoders", mode, weights);
    let (image, text) = encoders(&mut net, cfg, false)?;
    if image.is_none() && text.is_none() {
        return Err(ModelError::Config("a classifier needs an image encoder, a text encoder or both".into()));
    }
    let outputs = embedding_outputs(image.as_ref(), text.as_ref());
    Ok(net.finish(&outputs))
}

/// The classifier's head alone, on feature inputs [`IMAGE_EMBEDDING`] / [`TEXT_EMBEDDING`]
/// `[N, D]` (those of the encoders the configuration has) to `logits` and `probability`.
/// Its parameters are named, initialised and seeded as [`build_classifier`]'s `head.*`,
/// so its values drop into the full graph.
pub fn build_head_classifier(cfg: &ClassifierConfig, mode: Mode, weights: Weights) -> Result<ModelGraph, ModelError> {
    let mut net = Net::with_weights("classifier_head", mode, weights);
    let feature = |net: &mut Net, name: &str, dim: usize| {
        let x = net.b.input(name, DataType::Float, &[Dim::from(BATCH), Dim::Known(dim as i64)]);
        (x, dim)
    };
    let image = cfg.image.as_ref().map(|c| feature(&mut net, IMAGE_EMBEDDING, c.feature_dim()));
    let text = cfg.text.as_ref().map(|c| feature(&mut net, TEXT_EMBEDDING, c.feature_dim()));
    let (logits, probability) = head(&mut net, cfg, image.as_ref(), text.as_ref())?;
    Ok(net.finish(&[
        GraphOutput::f32(&logits, "logits", dims![BATCH]),
        GraphOutput::f32(&probability, "probability", dims![BATCH]),
    ]))
}

/// Name of the image features (an output of classifiers, an input of head graphs).
pub const IMAGE_EMBEDDING: &str = "image_embedding";
/// Name of the text features (an output of classifiers, an input of head graphs).
pub const TEXT_EMBEDDING: &str = "text_embedding";

type Features = (String, usize);

/// Builds the encoders the configuration has; `all_inputs` declares the three package
/// inputs even when a modality is unused (the package contract).
fn encoders(
    net: &mut Net,
    cfg: &ClassifierConfig,
    all_inputs: bool,
) -> Result<(Option<Features>, Option<Features>), ModelError> {
    if let Some(image) = &cfg.image {
        image.validate()?;
    }
    let image = match &cfg.image {
        Some(c) => {
            let pixels = image_input_for(net, &c.image_spec());
            Some((c.build(net, IMAGE_PREFIX, &pixels)?, c.feature_dim()))
        }
        None => {
            if all_inputs {
                // Declared for the package contract only: any size, never read.
                net.b.input(
                    PIXEL_VALUES,
                    DataType::Uint8,
                    &[Dim::from(BATCH), "height".into(), "width".into(), 3.into()],
                );
            }
            None
        }
    };
    let text = match &cfg.text {
        Some(c) => {
            let (ids, mask) = text_inputs(net);
            Some((c.build(net, TEXT_PREFIX, &ids, &mask)?, c.feature_dim()))
        }
        None => {
            if all_inputs {
                text_inputs(net);
            }
            None
        }
    };
    Ok((image, text))
}

/// The head on the features: `(logits, probability)`.
fn head(
    net: &mut Net,
    cfg: &ClassifierConfig,
    image: Option<&Features>,
    text: Option<&Features>,
) -> Result<(String, String), ModelError> {
    let logits = match (image, text, &cfg.head) {
        (None, None, _) => {
            return Err(ModelError::Config("a classifier needs an image encoder, a text encoder or both".into()));
        }
        (Some((features, dim)), None, HeadConfig::Concat(head))
        | (None, Some((features, dim)), HeadConfig::Concat(head)) => {
            single_modality_head(net, HEAD_PREFIX, features, *dim, head)
        }
        (Some(i), Some(t), HeadConfig::Concat(head)) => concat_head(net, HEAD_PREFIX, (&i.0, i.1), (&t.0, t.1), head),
        (Some(i), Some(t), HeadConfig::HateClipper(head)) => {
            hate_clipper_head(net, HEAD_PREFIX, (&i.0, i.1), (&t.0, t.1), head)
        }
        (_, _, HeadConfig::HateClipper(_)) => {
            return Err(ModelError::Config("Hate-CLIPper fusion needs both an image and a text encoder".into()));
        }
    };
    let probability = net.b.op("Sigmoid", &[&logits], &[]);
    Ok((logits, probability))
}

fn embedding_outputs(image: Option<&Features>, text: Option<&Features>) -> Vec<GraphOutput> {
    let mut outputs = Vec::new();
    if let Some((features, dim)) = image {
        outputs.push(GraphOutput::f32(features, IMAGE_EMBEDDING, vec![Dim::from(BATCH), Dim::Known(*dim as i64)]));
    }
    if let Some((features, dim)) = text {
        outputs.push(GraphOutput::f32(features, TEXT_EMBEDDING, vec![Dim::from(BATCH), Dim::Known(*dim as i64)]));
    }
    outputs
}
