//! Every objective's training graph differentiates, builds a step graph, and trains on
//! synthetic memes: its loss falls on a fixed batch, and every trainable parameter
//! (CASS-MM's fusion layers included) changes.

use std::path::Path;

use memeguard_package::TextTokenizer;
use memeguard_training::data::augment::{MultiCrop, Views};
use memeguard_training::data::synth::{Difficulty, SynthConfig, generate};
use memeguard_training::data::{HatefulMemes, ImageCheck, Loader, LoaderConfig, Meme, Sampling, Split};
use memeguard_training::objectives::Feeds;
use memeguard_training::recipe::{Method, ModelSpec, Recipe};
use memeguard_training::run::feed::to_feeds;
use memeguard_training::run::{RunOptions, TrainConfig, prepare};
use memeguard_training::runtime::StepHyper;

const SIZE: u32 = 32;
const MAX_LEN: usize = 12;

fn memes(dir: &Path) -> Vec<Meme> {
    let config = SynthConfig {
        train: 8,
        dev: 0,
        test: 0,
        size: 48,
        seed: 3,
        difficulty: Difficulty::Easy,
        concepts: 4,
        families: 12,
        ..SynthConfig::default()
    };
    generate(dir, &config, false, 2, &|| {}).unwrap();
    HatefulMemes::load(dir, ImageCheck::Header).unwrap().split(Split::Train).to_vec()
}

fn recipe(method: Method) -> Recipe {
    Recipe {
        name: "test".into(),
        description: String::new(),
        method,
        model: ModelSpec {
            image: format!("resnet-tiny@{SIZE}"),
            cnn: format!("resnet-tiny@{SIZE}"),
            vit: format!("vit-tiny@{SIZE}"),
            text: "text-tiny".into(),
            max_length: MAX_LEN,
            projection_dim: 16,
            dropout: 0.0,
            dino_out_dim: 32,
            local_crops: 2,
            local_size: 16,
            ..ModelSpec::default()
        },
        train: TrainConfig { max_grad_norm: None, weight_decay: 0.0, ..TrainConfig::default() },
        data: Default::default(),
        rgcl: None,
    }
}

fn views(feeds: Feeds) -> Views {
    match feeds {
        Feeds::MultiCrop { local_crops } => Views::dino(MultiCrop {
            global_size: SIZE,
            global_scale: [0.4, 1.0],
            local_size: 16,
            local_scale: [0.05, 0.4],
            local_crops,
        }),
        _ => Views::eval(SIZE, memeguard_package::ResizeRule::Stretch),
    }
}

/// Trains `method` for `steps` on one fixed batch; returns (first loss, last loss).
fn overfit(method: Method, steps: usize, lr: f32) -> (f32, f32) {
    overfit_recipe(recipe(method), steps, lr)
}

/// [`overfit`] with a given recipe.
fn overfit_recipe(recipe: Recipe, steps: usize, lr: f32) -> (f32, f32) {
    let method = recipe.method;
    let dir = tempfile::tempdir().unwrap();
    let memes = memes(dir.path());
    let texts: Vec<String> = memes.iter().map(|m| m.text.clone()).collect();
    let tok = TextTokenizer::train_wordpiece(&texts, 120).unwrap();
    let objective = recipe.objective(tok.vocab_size(), 1).unwrap();
    let cfg = LoaderConfig {
        batch_size: 8,
        workers: 1,
        prefetch: 1,
        sampling: Sampling::Sequential,
        max_text_len: MAX_LEN,
        ..Default::default()
    };
    let loader = Loader::new(memes, Some(&tok), views(objective.feeds), cfg).unwrap();
    let batch = loader.epoch(0).next().unwrap();
    let mut feeds = to_feeds(&batch, objective.feeds).unwrap();
    if matches!(objective.feeds, Feeds::MultiCrop { .. }) {
        feeds.push(("teacher_temperature".into(), memeguard_onnx::Tensor::scalar_f32(0.04)));
    }
    let mut trainer = prepare(&objective, &recipe.train, &RunOptions::default()).unwrap();
    let trainable = objective.graph.trainable();
    let before: Vec<_> = trainable.iter().map(|p| trainer.value(p).unwrap()).collect();
    let hyper = StepHyper::new(lr, 0.0);
    let mut losses = Vec::new();
    let spread = memeguard_training::objectives::EMBEDDING_SPREAD;
    let watches = matches!(method, Method::Cass | Method::CassMm);
    let fetch: &[&str] = if watches { &[spread] } else { &[] };
    for _ in 0..steps {
        let report = trainer.step_fetch(feeds.clone(), &hyper, fetch).unwrap();
        assert!(report.loss.is_finite(), "{method:?}: loss {}", report.loss);
        if watches {
            // The collapse watch runs in every step: a finite spread, ≥ 0.
            let s = report.outputs[spread].as_f32().unwrap()[0];
            assert!(s.is_finite() && s >= 0.0, "{method:?}: embedding spread {s}");
        }
        losses.push(report.loss);
        if !objective.ema.is_empty() {
            trainer.ema_update(0.9).unwrap();
        }
    }
    let unchanged: Vec<&String> =
        trainable.iter().zip(&before).filter(|(p, b)| trainer.value(p).unwrap() == **b).map(|(p, _)| p).collect();
    assert!(unchanged.is_empty(), "{method:?}: parameters never updated: {unchanged:?}");
    (losses[0], *losses.last().unwrap())
}

#[test]
fn finetune_overfits_a_batch() {
    let (first, last) = overfit(Method::Finetune, 30, 3e-3);
    assert!(last < 0.5 * first, "finetune loss {first} -> {last}");
}

#[test]
fn clip_loss_falls() {
    let (first, last) = overfit(Method::Clip, 25, 3e-3);
    assert!(last < 0.7 * first, "clip loss {first} -> {last}");
}

#[test]
fn cass_loss_falls() {
    let (first, last) = overfit(Method::Cass, 15, 1e-3);
    assert!(last < 0.7 * first, "cass loss {first} -> {last}");
}

#[test]
fn cass_mm_loss_falls_and_trains_its_fusion_layers() {
    let (first, last) = overfit(Method::CassMm, 15, 1e-3);
    assert!(last < 0.7 * first, "cass-mm loss {first} -> {last}");
}

/// DINO with a ViT student: the local crops (16 px) are smaller than the global ones
/// (32 px), as in the reference; the student's weights serve both sizes (position
/// embeddings resized), and no `student_local.*` copy exists.
#[test]
fn dino_with_a_vit_takes_small_local_crops() {
    let mut r = recipe(Method::Dino);
    r.model.image = format!("vit-tiny@{SIZE}");
    let objective = r.objective(120, 1).unwrap();
    let names: Vec<&str> = objective.graph.params.iter().map(|p| p.name.as_str()).collect();
    assert!(names.iter().all(|n| n.starts_with("student.") || n.starts_with("teacher.")), "{names:?}");
    let (first, last) = overfit_recipe(r, 15, 1e-3);
    assert!(last < first, "dino (vit) loss {first} -> {last}");
}

#[test]
fn dino_loss_falls() {
    let (first, last) = overfit(Method::Dino, 15, 1e-3);
    assert!(last < first, "dino loss {first} -> {last}");
}
