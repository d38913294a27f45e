//! The model catalog behind `memeguard-train models`: every named encoder with its
//! parameter count, output width and the ops its graph uses. Graphs are built
//! [`Weights::Hollow`], so listing even ViT-B/16 at 384 takes milliseconds.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use memeguard_onnx::dims;

use crate::graph_spec::{Mode, ModelGraph};
use crate::models::ModelError;
use crate::models::encoders::{IMAGE_ENCODERS, ImageEncoderConfig, TEXT_ENCODERS, parse_text_encoder};
use crate::models::input::{BATCH, image_input, text_inputs};
use crate::models::net::{GraphOutput, Net};
use crate::models::text::text_encoder;

/// Parameter and op statistics of a graph.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GraphStats {
    /// Elements of all parameters (buffers excluded).
    pub parameters: u64,
    /// Elements of the trainable parameters.
    pub trainable: u64,
    /// Elements of the buffers (batch-norm running statistics).
    pub buffer_elements: u64,
    /// Number of nodes.
    pub nodes: usize,
    /// Nodes per op type.
    pub ops: BTreeMap<String, usize>,
}

/// Counts parameters, buffers and ops of `graph`.
pub fn graph_stats(graph: &ModelGraph) -> GraphStats {
    let Some(g) = graph.model.graph.as_ref() else { return GraphStats::default() };
    let sizes: HashMap<&str, u64> = g
        .initializer
        .iter()
        .map(|t| (t.name.as_deref().unwrap_or(""), t.dims.iter().product::<i64>().max(0) as u64))
        .collect();
    let size = |name: &str| sizes.get(name).copied().unwrap_or(0);
    let mut ops = BTreeMap::new();
    for node in &g.node {
        *ops.entry(node.op_type.clone().unwrap_or_default()).or_insert(0) += 1;
    }
    GraphStats {
        parameters: graph.params.iter().map(|p| size(&p.name)).sum(),
        trainable: graph.params.iter().filter(|p| p.trainable).map(|p| size(&p.name)).sum(),
        buffer_elements: graph.buffers.iter().map(|b| size(&b.name)).sum(),
        nodes: g.node.len(),
        ops,
    }
}

/// One catalog entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// The name to use in recipes and on the command line.
    pub name: String,
    pub description: String,
    /// `image` or `text`.
    pub modality: &'static str,
    /// Width of the encoder's output features.
    pub feature_dim: usize,
    /// Square image side, or the maximum text length.
    pub input_size: usize,
    /// Statistics of the encoder's inference graph.
    pub stats: GraphStats,
}

/// Builds the image encoder `spec` (`name` or `name@size`) alone and summarises it.
pub fn describe_image_encoder(spec: &str) -> Result<ModelSummary, ModelError> {
    let cfg = ImageEncoderConfig::parse(spec)?;
    let mut net = Net::hollow("image_encoder", Mode::Infer);
    let pixels = image_input(&mut net, cfg.image_size());
    let features = cfg.build(&mut net, "image", &pixels);
    let graph = net.finish(&[GraphOutput::f32(&features, "image_embedding", dims![BATCH, cfg.feature_dim() as i64])]);
    let name = spec.split('@').next().unwrap_or(spec);
    let description = IMAGE_ENCODERS.iter().find(|(n, _)| *n == name).map_or("", |(_, d)| d).to_string();
    Ok(ModelSummary {
        name: format!("{name}@{}", cfg.image_size()),
        description,
        modality: "image",
        feature_dim: cfg.feature_dim(),
        input_size: cfg.image_size(),
        stats: graph_stats(&graph),
    })
}

/// Builds the text encoder `name` for a `vocab_size`-token vocabulary and inputs of
/// up to `max_length` tokens, and summarises it.
pub fn describe_text_encoder(name: &str, vocab_size: usize, max_length: usize) -> Result<ModelSummary, ModelError> {
    let cfg = parse_text_encoder(name, vocab_size, max_length)?;
    let mut net = Net::hollow("text_encoder", Mode::Infer);
    let (ids, mask) = text_inputs(&mut net);
    let features = text_encoder(&mut net, &cfg, "text", &ids, &mask);
    let graph = net.finish(&[GraphOutput::f32(&features, "text_embedding", dims![BATCH, cfg.dim as i64])]);
    let description = TEXT_ENCODERS.iter().find(|(n, _)| *n == name).map_or("", |(_, d)| d).to_string();
    Ok(ModelSummary {
        name: name.to_string(),
        description: format!("{description}; vocabulary {vocab_size}, up to {max_length} tokens"),
        modality: "text",
        feature_dim: cfg.dim,
        input_size: max_length,
        stats: graph_stats(&graph),
    })
}

/// Every named encoder: the image encoders at their default size and at 384 for the
/// standard ones, and the text encoders for the given tokenizer sizes.
pub fn catalog(vocab_size: usize, max_length: usize) -> Result<Vec<ModelSummary>, ModelError> {
    let mut entries = Vec::new();
    for (name, _) in IMAGE_ENCODERS {
        entries.push(describe_image_encoder(name)?);
        if !name.ends_with("tiny") {
            entries.push(describe_image_encoder(&format!("{name}@384"))?);
        }
    }
    for (name, _) in TEXT_ENCODERS {
        entries.push(describe_text_encoder(name, vocab_size, max_length)?);
    }
    Ok(entries)
}

/// A table of entries: name, modality, input size, output width, parameters, nodes.
pub fn render_table(entries: &[ModelSummary]) -> String {
    let mut out = format!(
        "{:<16} {:<6} {:>6} {:>8} {:>14} {:>6}  description\n",
        "name", "kind", "input", "features", "parameters", "nodes"
    );
    for e in entries {
        let _ = writeln!(
            out,
            "{:<16} {:<6} {:>6} {:>8} {:>14} {:>6}  {}",
            e.name,
            e.modality,
            e.input_size,
            e.feature_dim,
            group_thousands(e.stats.parameters),
            e.stats.nodes,
            e.description
        );
    }
    out
}

/// One entry in detail, with its op histogram (ops the autodiff cannot differentiate
/// are marked).
pub fn render_details(e: &ModelSummary) -> String {
    let mut out = format!("{} ({} encoder): {}\n", e.name, e.modality, e.description);
    let _ = writeln!(out, "  input size       {}", e.input_size);
    let _ = writeln!(out, "  output features  {}", e.feature_dim);
    let _ = writeln!(out, "  parameters       {}", group_thousands(e.stats.parameters));
    let _ = writeln!(out, "  buffer elements  {}", group_thousands(e.stats.buffer_elements));
    let _ = writeln!(out, "  nodes            {}", e.stats.nodes);
    let _ = writeln!(out, "  ops:");
    let mut ops: Vec<_> = e.stats.ops.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (op, n) in ops {
        let rule = if crate::autodiff::has_rule(op) { "" } else { "  (no gradient rule)" };
        let _ = writeln!(out, "    {op:<20} {n:>5}{rule}");
    }
    out
}

/// What `memeguard-train models [NAME]` prints: the whole catalog, or one encoder
/// (an image encoder name with optional `@size`, or a text encoder name) in detail.
pub fn models_report(name: Option<&str>, vocab_size: usize, max_length: usize) -> Result<String, ModelError> {
    match name {
        None => Ok(render_table(&catalog(vocab_size, max_length)?)),
        Some(name) if TEXT_ENCODERS.iter().any(|(n, _)| *n == name) => {
            Ok(render_details(&describe_text_encoder(name, vocab_size, max_length)?))
        }
        Some(spec) => Ok(render_details(&describe_image_encoder(spec)?)),
    }
}

/// Every op type the built-in model graphs use, in `Train` and `Infer` mode: every
/// encoder (ResNet with both block types, ViT at its own and at another input size,
/// the text encoder with both poolings), the projection and DINO heads, and every
/// classifier head. Checks such as "does ONNX Runtime's CUDA provider have a kernel
/// for each op" start from this list (gradient and optimizer ops come on top).
pub fn builtin_model_ops() -> BTreeSet<String> {
    use crate::graph_spec::ModelGraph;
    use crate::models::classifier::{ClassifierConfig, build_classifier};
    use crate::models::fusion::{HateClipperHead, HeadConfig, Interaction};
    use crate::models::heads::{DinoHeadConfig, dino_head, projection_head};
    use crate::models::net::Weights;
    use crate::models::resnet::{Block, ResNetConfig};
    use crate::models::text::{Pooling, TextConfig};
    use crate::models::vit::{VitConfig, vit_at_input_size};

    let text = |pooling| TextConfig { pooling, dropout: 0.1, ..TextConfig::tiny(16, 8) };
    let heads = [
        HeadConfig::default(),
        HeadConfig::HateClipper(HateClipperHead::new(Interaction::Cross)),
        HeadConfig::HateClipper(HateClipperHead::new(Interaction::Align)),
    ];
    let images = [
        ImageEncoderConfig::Resnet(ResNetConfig::tiny()),
        ImageEncoderConfig::Resnet(ResNetConfig { block: Block::Bottleneck, ..ResNetConfig::tiny() }),
        ImageEncoderConfig::Vit(VitConfig { dropout: 0.1, ..VitConfig::tiny() }),
    ];
    let mut ops = BTreeSet::new();
    let mut add = |graph: &ModelGraph| ops.extend(graph_stats(graph).ops.into_keys());
    for mode in [Mode::Train, Mode::Infer] {
        for image in &images {
            for (head, pooling) in heads.iter().zip([Pooling::Cls, Pooling::Mean, Pooling::Cls]) {
                let cfg = ClassifierConfig {
                    image: Some(image.clone().into()),
                    text: Some(text(pooling).into()),
                    head: head.clone(),
                };
                add(&build_classifier(&cfg, mode, Weights::Hollow).expect("built-in classifier builds"));
            }
            let cfg = ClassifierConfig { image: Some(image.clone().into()), text: None, head: HeadConfig::default() };
            add(&build_classifier(&cfg, mode, Weights::Hollow).expect("built-in classifier builds"));
        }
        let mut net = Net::hollow("heads", mode);
        let pixels = image_input(&mut net, 32);
        let f = vit_at_input_size(&mut net, &VitConfig::tiny(), "image", &pixels, 16);
        let p = projection_head(&mut net, "proj", &f, 32, 16, 0.1);
        let d = dino_head(&mut net, "dino", &f, 32, &DinoHeadConfig::tiny());
        add(&net.finish(&[
            GraphOutput::f32(&p, "projection", dims![BATCH, 16]),
            GraphOutput::f32(&d, "dino", dims![BATCH, 64]),
        ]));
    }
    ops
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_lists_every_encoder_with_counts_and_ops() {
        let entries = catalog(1000, 32).unwrap();
        assert_eq!(entries.len(), IMAGE_ENCODERS.len() * 2 - 2 + TEXT_ENCODERS.len());
        let table = render_table(&entries);
        assert!(
            table.contains("vit-b16@384") && table.contains("resnet50@224") && table.contains("text-tiny"),
            "{table}"
        );
        // ResNet-50 without its 1000-class head: 25,557,032 − 2048·1000 − 1000.
        let r50 = entries.iter().find(|e| e.name == "resnet50@224").unwrap();
        assert_eq!(r50.stats.parameters, 23_508_032);
        assert_eq!(r50.stats.ops["Conv"], 53);
        let details = models_report(Some("vit-tiny"), 1000, 32).unwrap();
        assert!(details.contains("LayerNormalization") && details.contains("Softmax"), "{details}");
        assert!(models_report(Some("vit-b16@100"), 1000, 32).is_err());
        assert_eq!(group_thousands(86_567_656), "86,567,656");
        assert_eq!(group_thousands(999), "999");
    }

    #[test]
    fn builtin_ops_cover_every_model_family() {
        let ops = builtin_model_ops();
        for op in [
            "Conv",
            "MaxPool",
            "LayerNormalization",
            "Gelu",
            "Softmax",
            "Gather",
            "CumSum",
            "Dropout",
            "Pad",
            "ReduceL2",
            "Sigmoid",
        ] {
            assert!(ops.contains(op), "{op} missing from {ops:?}");
        }
        // Training graphs write batch norm with elementwise ops; inference ones fuse it.
        assert!(ops.contains("BatchNormalization") && ops.contains("Sqrt"));
    }
}
