//! Every model builds, passes `check_model`, has the published parameter count where
//! one exists, and runs forward in ONNX Runtime with the expected output shapes.

mod models_support;

use memeguard_onnx::{check_model, dims};
use memeguard_training::graph_spec::{Mode, ModelGraph};
use memeguard_training::models::catalog::graph_stats;
use memeguard_training::models::fusion::{feature_norm, single_modality_head};
use memeguard_training::models::input::{ATTENTION_MASK, BATCH, INPUT_IDS, PIXEL_VALUES};
use memeguard_training::models::layers::linear;
use memeguard_training::models::net::is_hollow;
use memeguard_training::models::resnet::Block;
use memeguard_training::models::*;
use models_support::{pixels, repeated_pixels, run, tokens};

/// An image encoder with a 1000-class linear head, as the published counts include.
fn with_imagenet_head(cfg: &ImageEncoderConfig) -> ModelGraph {
    let mut net = Net::hollow("imagenet", Mode::Infer);
    let x = image_input(&mut net, cfg.image_size());
    let f = cfg.build(&mut net, "image", &x);
    let logits = linear(&mut net, "fc", &f, cfg.feature_dim(), 1000, true);
    net.finish(&[GraphOutput::f32(&logits, "logits", dims![BATCH, 1000])])
}

#[test]
fn standard_models_have_the_published_parameter_counts() {
    for (spec, want) in [("resnet50", 25_557_032u64), ("resnet18", 11_689_512), ("vit-b16@224", 86_567_656)] {
        let graph = with_imagenet_head(&ImageEncoderConfig::parse(spec).unwrap());
        assert!(is_hollow(&graph.model));
        assert_eq!(graph.parameter_count(), want, "{spec}");
        assert_eq!(graph_stats(&graph).parameters, want, "{spec}");
    }
    // Position embeddings grow with the input: 577 instead of 197 tokens at 384.
    let at_384 = with_imagenet_head(&ImageEncoderConfig::parse("vit-b16@384").unwrap());
    assert_eq!(at_384.parameter_count(), 86_567_656 + (577 - 197) * 768);
}

#[test]
fn standard_configurations_build_in_both_modes_and_pass_check_model() {
    for spec in ["resnet18@224", "resnet50@224", "resnet50@384", "resnet101@224", "vit-b16@224", "vit-b16@384"] {
        let cfg = ImageEncoderConfig::parse(spec).unwrap();
        for mode in [Mode::Train, Mode::Infer] {
            let mut net = Net::hollow("encoder", mode);
            let x = image_input(&mut net, cfg.image_size());
            let f = cfg.build(&mut net, "image", &x);
            let graph = net.finish(&[GraphOutput::f32(&f, "features", dims![BATCH, cfg.feature_dim() as i64])]);
            check_model(&graph.model, true).unwrap_or_else(|e| panic!("{spec} {mode:?}: {e}"));
            let outputs = graph.model.graph.as_ref().unwrap().output.len();
            match mode {
                // One output per running statistic in training graphs.
                Mode::Train => assert_eq!(outputs, 1 + graph.buffers.len(), "{spec}"),
                Mode::Infer => assert_eq!(outputs, 1, "{spec}"),
            }
        }
    }
    let text = parse_text_encoder("text-base", 30522, 128).unwrap();
    let graph = build_classifier(
        &ClassifierConfig {
            image: Some(ImageEncoderConfig::parse("vit-b16@384").unwrap().into()),
            text: Some(text.into()),
            head: HeadConfig::default(),
        },
        Mode::Train,
        Weights::Hollow,
    )
    .unwrap();
    check_model(&graph.model, true).unwrap();
}

fn encoder_graph(cfg: &ImageEncoderConfig, mode: Mode, seed: u64) -> ModelGraph {
    let mut net = Net::new("encoder", mode, seed);
    let x = image_input(&mut net, cfg.image_size());
    let f = cfg.build(&mut net, "image", &x);
    net.finish(&[GraphOutput::f32(&f, "features", dims![BATCH, cfg.feature_dim() as i64])])
}

#[test]
fn image_encoders_run_forward_at_small_sizes() {
    let tiny_bottleneck = ResNetConfig { block: Block::Bottleneck, layers: [1, 1, 1, 1], width: 4, image_size: 32 };
    let configs = [
        ImageEncoderConfig::parse("resnet-tiny").unwrap(),
        ImageEncoderConfig::parse("resnet-tiny@48").unwrap(),
        ImageEncoderConfig::Resnet(tiny_bottleneck),
        ImageEncoderConfig::parse("vit-tiny").unwrap(),
        ImageEncoderConfig::parse("vit-tiny@48").unwrap(),
    ];
    for cfg in &configs {
        for mode in [Mode::Infer, Mode::Train] {
            let graph = encoder_graph(cfg, mode, 1);
            check_model(&graph.model, true).unwrap();
            let out = run(&graph.model, vec![(PIXEL_VALUES, pixels(3, cfg.image_size(), 5))]);
            assert_eq!(out["features"].0, vec![3, cfg.feature_dim() as i64], "{cfg:?}");
            for buffer in &graph.buffers {
                match mode {
                    Mode::Train => assert_eq!(out[&buffer.updated].0.len(), 1, "{}", buffer.name),
                    Mode::Infer => assert!(buffer.updated.is_empty()),
                }
            }
        }
    }
}

fn text_graph(cfg: &TextConfig) -> ModelGraph {
    let mut net = Net::new("text", Mode::Infer, 3);
    let (ids, mask) = text_inputs(&mut net);
    let f = text_encoder(&mut net, cfg, "text", &ids, &mask);
    net.finish(&[GraphOutput::f32(&f, "features", dims![BATCH, cfg.dim as i64])])
}

#[test]
fn text_encoder_ignores_padding_with_either_pooling() {
    for pooling in [Pooling::Cls, Pooling::Mean] {
        let cfg = TextConfig { pooling, ..TextConfig::tiny(50, 12) };
        let graph = text_graph(&cfg);
        let (ids, mask) = tokens(&[3, 5], 8, 50, 9);
        let a = run(&graph.model, vec![(INPUT_IDS, ids), (ATTENTION_MASK, mask)]);
        assert_eq!(a["features"].0, vec![2, 32]);
        // Other ids at the padding positions, and less padding: same features.
        let (ids, _) = tokens(&[3, 5], 8, 50, 9);
        let ids = ids.try_extract_tensor::<i64>().unwrap().1.to_vec();
        let other: Vec<i64> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| if (i < 8 && i % 8 >= 3) || (i >= 8 && i % 8 >= 5) { 7 } else { id })
            .collect();
        let shorter: Vec<i64> = ids.chunks(8).flat_map(|row| row[..6].to_vec()).collect();
        let shorter_mask: Vec<i64> = [3usize, 5].iter().flat_map(|&l| (0..6).map(move |t| (t < l) as i64)).collect();
        let mask: Vec<i64> = [3usize, 5].iter().flat_map(|&l| (0..8).map(move |t| (t < l) as i64)).collect();
        let value = |shape: Vec<i64>, v: Vec<i64>| ort::value::Tensor::from_array((shape, v)).unwrap().into_dyn();
        let b =
            run(&graph.model, vec![(INPUT_IDS, value(vec![2, 8], other)), (ATTENTION_MASK, value(vec![2, 8], mask))]);
        let c = run(
            &graph.model,
            vec![(INPUT_IDS, value(vec![2, 6], shorter)), (ATTENTION_MASK, value(vec![2, 6], shorter_mask))],
        );
        for other in [&b, &c] {
            for (x, y) in a["features"].1.iter().zip(&other["features"].1) {
                assert!((x - y).abs() < 1e-4, "{pooling:?}: {x} vs {y}");
            }
        }
        // And the features do depend on the real tokens.
        let (ids, mask) = tokens(&[3, 5], 8, 50, 10);
        let d = run(&graph.model, vec![(INPUT_IDS, ids), (ATTENTION_MASK, mask)]);
        assert!(a["features"].1.iter().zip(&d["features"].1).any(|(x, y)| (x - y).abs() > 1e-3));
    }
}

#[test]
fn heads_have_the_expected_shapes_and_ranges() {
    for mode in [Mode::Infer, Mode::Train] {
        let mut net = Net::new("heads", mode, 4);
        let x = image_input(&mut net, 32);
        let f = resnet(&mut net, &ResNetConfig::tiny(), "image", &x);
        let p = projection_head(&mut net, "proj", &f, 64, 24, 0.1);
        let d = dino_head(&mut net, "dino", &f, 64, &DinoHeadConfig::tiny());
        let s = single_modality_head(
            &mut net,
            "cls",
            &f,
            64,
            &ConcatHead { proj_dim: 12, hidden_dim: 8, dropout: 0.5, feature_norm: false },
        );
        let graph = net.finish(&[
            GraphOutput::f32(&p, "projection", dims![BATCH, 24]),
            GraphOutput::f32(&d, "dino", dims![BATCH, 64]),
            GraphOutput::f32(&s, "logit", dims![BATCH]),
        ]);
        check_model(&graph.model, true).unwrap();
        let out = run(&graph.model, vec![(PIXEL_VALUES, pixels(4, 32, 2))]);
        assert_eq!(out["projection"].0, vec![4, 24]);
        assert_eq!(out["dino"].0, vec![4, 64]);
        assert_eq!(out["logit"].0, vec![4]);
        // DINO logits are cosines: unit-norm features times unit-norm columns (g = 1).
        assert!(out["dino"].1.iter().all(|v| v.abs() <= 1.0 + 1e-5));
        // The projection head ends in a LayerNorm (γ = 1, β = 0): rows have mean 0.
        for row in out["projection"].1.chunks(24) {
            assert!((row.iter().sum::<f32>() / 24.0).abs() < 1e-4);
        }
        let frozen: Vec<_> = graph.params.iter().filter(|p| !p.trainable).map(|p| p.name.as_str()).collect();
        assert_eq!(frozen, vec!["dino.last_layer.weight_g"]);
    }
}

/// The fusion head's feature normalisation standardises every feature over the batch
/// in training mode (checked against the mean and variance computed here) and keeps
/// running statistics for inference.
#[test]
fn feature_norm_standardises_each_feature_over_the_batch() {
    let mut net = Net::new("norm", Mode::Train, 4);
    let x = image_input(&mut net, 32);
    let f = resnet(&mut net, &ResNetConfig::tiny(), "image", &x);
    let y = feature_norm(&mut net, "head.image_norm", &f, 64);
    let graph = net.finish(&[
        GraphOutput::f32(&f, "features", dims![BATCH, 64]),
        GraphOutput::f32(&y, "normed", dims![BATCH, 64]),
    ]);
    check_model(&graph.model, true).unwrap();
    let out = run(&graph.model, vec![(PIXEL_VALUES, pixels(6, 32, 9))]);
    let (feats, normed) = (&out["features"].1, &out["normed"].1);
    let mut spread = 0.0f32;
    for c in 0..64 {
        let col: Vec<f32> = (0..6).map(|n| feats[n * 64 + c]).collect();
        let mean = col.iter().sum::<f32>() / 6.0;
        let var = col.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 6.0;
        spread = spread.max(var);
        for n in 0..6 {
            let expected = (col[n] - mean) / (var + 1e-5).sqrt();
            assert!(
                (normed[n * 64 + c] - expected).abs() < 2e-3,
                "feature {c} item {n}: {} vs {expected}",
                normed[n * 64 + c]
            );
        }
    }
    assert!(spread > 0.0, "the features vary over the batch");
    let buffers: Vec<_> = graph.buffers.iter().map(|b| b.name.as_str()).filter(|n| n.starts_with("head.")).collect();
    assert_eq!(buffers, vec!["head.image_norm.running_mean", "head.image_norm.running_var"]);
}

/// The collapse watch of CASS and CASS-MM: mean over dimensions of the batch standard
/// deviation of the L2-normalised embeddings, times √d — checked against the same sum
/// computed here, and 0 for a batch of identical embeddings.
#[test]
fn embedding_spread_matches_its_definition_and_is_zero_when_collapsed() {
    use memeguard_training::objectives::embedding_spread;
    for identical in [false, true] {
        let mut net = Net::new("spread", Mode::Train, 4);
        let x = image_input(&mut net, 32);
        let f = resnet(&mut net, &ResNetConfig::tiny(), "image", &x);
        let spread = embedding_spread(&mut net, &f, 64);
        let graph = net.finish(&[
            GraphOutput::f32(&f, "features", dims![BATCH, 64]),
            GraphOutput::f32(&spread, "spread", dims![]),
        ]);
        let images = if identical { repeated_pixels(5, 32, 3) } else { pixels(5, 32, 3) };
        let out = run(&graph.model, vec![(PIXEL_VALUES, images)]);
        let feats = &out["features"].1;
        let unit: Vec<Vec<f32>> = feats
            .chunks(64)
            .map(|row| {
                let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                row.iter().map(|v| v / norm).collect()
            })
            .collect();
        let mut expected = 0.0f32;
        for c in 0..64 {
            let mean = unit.iter().map(|r| r[c]).sum::<f32>() / 5.0;
            expected += (unit.iter().map(|r| (r[c] - mean).powi(2)).sum::<f32>() / 5.0).sqrt();
        }
        expected = expected / 64.0 * 8.0;
        let got = out["spread"].1[0];
        assert!((got - expected).abs() < 1e-3, "identical={identical}: {got} vs {expected}");
        if identical {
            assert!(got < 1e-3, "a collapsed batch has spread {got}");
        } else {
            assert!(got > 0.01, "distinct images give spread {got}");
        }
    }
}

fn classifier_configs() -> Vec<(&'static str, ClassifierConfig)> {
    let image = Some(ImageEncoderConfig::parse("resnet-tiny").unwrap().into());
    let vit = Some(ImageEncoderConfig::parse("vit-tiny").unwrap().into());
    let text = Some(TextConfig { dropout: 0.1, ..TextConfig::tiny(40, 16) }.into());
    let small = HeadConfig::Concat(ConcatHead { proj_dim: 16, hidden_dim: 8, dropout: 0.2, feature_norm: false });
    vec![
        ("image-only", ClassifierConfig { image: image.clone(), text: None, head: small.clone() }),
        ("text-only", ClassifierConfig { image: None, text: text.clone(), head: small.clone() }),
        ("concat", ClassifierConfig { image: vit.clone(), text: text.clone(), head: small.clone() }),
        (
            "concat-feature-norm",
            ClassifierConfig {
                image: image.clone(),
                text: text.clone(),
                head: HeadConfig::Concat(ConcatHead {
                    feature_norm: true,
                    ..ConcatHead { proj_dim: 16, hidden_dim: 8, dropout: 0.2, feature_norm: false }
                }),
            },
        ),
        (
            "cross",
            ClassifierConfig {
                image: image.clone(),
                text: text.clone(),
                head: HeadConfig::HateClipper(HateClipperHead::new(Interaction::Cross)),
            },
        ),
        (
            "align",
            ClassifierConfig {
                image: vit,
                text,
                head: HeadConfig::HateClipper(HateClipperHead::new(Interaction::Align)),
            },
        ),
    ]
}

#[test]
fn classifiers_follow_the_package_contract_and_run() {
    for (name, cfg) in classifier_configs() {
        for mode in [Mode::Infer, Mode::Train] {
            let graph = build_classifier(&cfg, mode, Weights::Random { seed: 11 }).unwrap();
            check_model(&graph.model, true).unwrap();
            let inputs: Vec<_> =
                graph.model.graph.as_ref().unwrap().input.iter().map(|v| v.name().to_string()).collect();
            assert_eq!(inputs, [PIXEL_VALUES, INPUT_IDS, ATTENTION_MASK], "{name}");
            let (ids, mask) = tokens(&[4, 9, 16], 16, 40, 1);
            let out =
                run(&graph.model, vec![(PIXEL_VALUES, pixels(3, 32, 7)), (INPUT_IDS, ids), (ATTENTION_MASK, mask)]);
            assert_eq!(out["probability"].0, vec![3], "{name}");
            for (logit, p) in out["logits"].1.iter().zip(&out["probability"].1) {
                assert!((p - 1.0 / (1.0 + (-logit).exp())).abs() < 1e-6 && *p > 0.0 && *p < 1.0, "{name}");
            }
            assert_eq!(out.contains_key("image_embedding"), cfg.image.is_some(), "{name}");
            assert_eq!(out.contains_key("text_embedding"), cfg.text.is_some(), "{name}");
            let ops = graph_stats(&graph).ops;
            assert_eq!(ops.contains_key("Dropout"), mode == Mode::Train, "{name} {mode:?}");
        }
    }
    let broken = ClassifierConfig { image: None, text: None, head: HeadConfig::default() };
    assert!(build_classifier(&broken, Mode::Infer, Weights::Hollow).is_err());
    let one_sided = ClassifierConfig {
        image: Some(ImageEncoderConfig::parse("resnet-tiny").unwrap().into()),
        text: None,
        head: HeadConfig::HateClipper(HateClipperHead::new(Interaction::Cross)),
    };
    let err = build_classifier(&one_sided, Mode::Infer, Weights::Hollow).unwrap_err().to_string();
    assert!(err.contains("needs both"), "{err}");
}

#[test]
fn train_and_infer_builds_share_names_and_initial_values() {
    let (_, cfg) = classifier_configs().remove(3);
    let train = build_classifier(&cfg, Mode::Train, Weights::Random { seed: 5 }).unwrap();
    let infer = build_classifier(&cfg, Mode::Infer, Weights::Random { seed: 5 }).unwrap();
    let hollow = build_classifier(&cfg, Mode::Infer, Weights::Hollow).unwrap();
    let again = build_classifier(&cfg, Mode::Train, Weights::Random { seed: 5 }).unwrap();
    let other = build_classifier(&cfg, Mode::Train, Weights::Random { seed: 6 }).unwrap();
    assert_eq!(train.params, infer.params);
    assert_eq!(train.params, hollow.params);
    let init = |g: &ModelGraph, name: &str| {
        g.model.graph.as_ref().unwrap().initializer.iter().find(|t| t.name() == name).unwrap().clone()
    };
    for p in &train.params {
        assert_eq!(init(&train, &p.name), init(&infer, &p.name), "{}", p.name);
        assert_eq!(init(&train, &p.name), init(&again, &p.name), "{}", p.name);
        assert_eq!(init(&hollow, &p.name).dims, init(&train, &p.name).dims);
    }
    assert_ne!(init(&train, "image.conv1.weight"), init(&other, "image.conv1.weight"));
    // Decomposed training batch norm: no BatchNormalization op; buffers are updated.
    assert!(!graph_stats(&train).ops.contains_key("BatchNormalization"));
    assert!(train.buffers.iter().all(|b| b.updated == format!("{}.updated", b.name)));
    assert!(graph_stats(&infer).ops.contains_key("BatchNormalization"));
}

/// One forward pass of big configurations (hollow graphs with cheap values filled in:
/// this checks the graphs run at their real sizes, not the initialisation).
#[test]
fn big_configurations_run_forward() {
    for spec in ["resnet50@224", "vit-b16@384"] {
        let cfg = ImageEncoderConfig::parse(spec).unwrap();
        let mut net = Net::hollow("encoder", Mode::Infer);
        let x = image_input(&mut net, cfg.image_size());
        let f = cfg.build(&mut net, "image", &x);
        let mut graph = net.finish(&[GraphOutput::f32(&f, "features", dims![BATCH, cfg.feature_dim() as i64])]);
        models_support::fill_hollow(&mut graph.model);
        let out = run(&graph.model, vec![(PIXEL_VALUES, pixels(1, cfg.image_size(), 5))]);
        assert_eq!(out["features"].0, vec![1, cfg.feature_dim() as i64], "{spec}");
    }
}

/// The bicubic position-embedding resize equals ONNX Runtime's `Resize` (cubic,
/// a = −0.75, half-pixel coordinates, PyTorch's convention) on a random grid.
#[test]
fn position_embedding_resize_matches_onnx_runtime_resize() {
    use memeguard_onnx::{Attr, DataType, GraphBuilder, Tensor};
    use memeguard_training::models::vit::bicubic_matrix;
    for (from, to) in [(4usize, 6usize), (14, 6), (5, 3), (4, 4)] {
        let mut rng = models_support::Lcg(from as u64);
        let grid: Vec<f32> = (0..from * from).map(|_| rng.uniform()).collect();
        let mut b = GraphBuilder::new("resize");
        let x = b.input("x", DataType::Float, &dims![1, 1, from as i64, from as i64]);
        let sizes = b.constant("sizes", Tensor::vec_i64(&[1, 1, to as i64, to as i64]));
        let y = b.op(
            "Resize",
            &[&x, "", "", &sizes],
            &[
                ("mode", Attr::Str("cubic".into())),
                ("cubic_coeff_a", Attr::Float(-0.75)),
                ("coordinate_transformation_mode", Attr::Str("half_pixel".into())),
            ],
        );
        b.named_output(&y, "y", DataType::Float, &dims![1, 1, to as i64, to as i64]);
        models_support::init_ort();
        let input = ort::value::Tensor::from_array((vec![1i64, 1, from as i64, from as i64], grid.clone())).unwrap();
        let want = &run(&b.build(), vec![("x", input.into_dyn())])["y"].1;
        let m = bicubic_matrix(from, to);
        for oy in 0..to {
            for ox in 0..to {
                let got: f32 = (0..from)
                    .flat_map(|iy| (0..from).map(move |ix| (iy, ix)))
                    .map(|(iy, ix)| m[oy * from + iy] * m[ox * from + ix] * grid[iy * from + ix])
                    .sum();
                let w = want[oy * to + ox];
                assert!((got - w).abs() < 1e-5, "{from}→{to} at ({oy},{ox}): {got} vs {w}");
            }
        }
    }
}

/// One ViT (shared weights) on global and local crops in one graph, as DINO's student.
#[test]
fn a_shared_vit_runs_on_several_input_sizes_in_one_graph() {
    let cfg = VitConfig::tiny();
    let mut net = Net::new("student", Mode::Train, 3);
    net.set_weight_sharing(true);
    let global = image_input_named(&mut net, "global", 32);
    let local = image_input_named(&mut net, "local", 16);
    let g = vit(&mut net, &cfg, "student", &global);
    let l = vit_at_input_size(&mut net, &cfg, "student", &local, 16);
    let graph = net.finish(&[
        GraphOutput::f32(&g, "global_features", dims![BATCH, 32]),
        GraphOutput::f32(&l, "local_features", dims![BATCH, 32]),
    ]);
    check_model(&graph.model, true).unwrap();
    let mut net = Net::new("plain", Mode::Train, 3);
    let x = image_input(&mut net, 32);
    let f = vit(&mut net, &cfg, "student", &x);
    let alone = net.finish(&[GraphOutput::f32(&f, "features", dims![BATCH, 32])]);
    assert_eq!(graph.parameter_count(), alone.parameter_count());
    let out = run(&graph.model, vec![("global", pixels(2, 32, 1)), ("local", pixels(5, 16, 2))]);
    assert_eq!(out["global_features"].0, vec![2, 32]);
    assert_eq!(out["local_features"].0, vec![5, 32]);
    // At its own size the shared build computes what the plain one does.
    let plain = run(&alone.model, vec![(PIXEL_VALUES, pixels(2, 32, 1))]);
    for (a, b) in plain["features"].1.iter().zip(&out["global_features"].1) {
        assert!((a - b).abs() < 1e-5);
    }
}
