//! The loader: batch and multi-crop shapes, determinism whatever the thread count,
//! class-balanced sampling, and images that fail during an epoch.

use std::fs;
use std::path::Path;

use memeguard_package::{ResizeFilter, ResizeRule, TextTokenizer};
use memeguard_training::data::augment::{MultiCrop, Views};
use memeguard_training::data::synth::{Difficulty, SynthConfig, generate};
use memeguard_training::data::{
    Batch, HatefulMemes, ImageCheck, Loader, LoaderConfig, LoaderError, Meme, Sampling, Split,
};

const MAX_LEN: usize = 12;

fn synthetic(dir: &Path, train: usize) -> Vec<Meme> {
    let config = SynthConfig {
        train,
        dev: 0,
        test: 0,
        size: 40,
        seed: 5,
        difficulty: Difficulty::Medium,
        concepts: 4,
        families: 12,
        ..SynthConfig::default()
    };
    generate(dir, &config, false, 2, &|| {}).unwrap();
    HatefulMemes::load(dir, ImageCheck::Header).unwrap().split(Split::Train).to_vec()
}

fn tokenizer(memes: &[Meme]) -> TextTokenizer {
    TextTokenizer::train_wordpiece(&memes.iter().map(|m| m.text.clone()).collect::<Vec<_>>(), 200).unwrap()
}

fn config(workers: usize, prefetch: usize) -> LoaderConfig {
    LoaderConfig { batch_size: 4, workers, prefetch, seed: 9, max_text_len: MAX_LEN, ..LoaderConfig::default() }
}

fn small_multicrop() -> Views {
    Views::dino(MultiCrop {
        global_size: 32,
        global_scale: [0.4, 1.0],
        local_size: 16,
        local_scale: [0.05, 0.4],
        local_crops: 3,
    })
}

#[test]
fn batches_have_the_contract_layout_and_multicrop_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let memes = synthetic(dir.path(), 10);
    let tok = tokenizer(&memes);
    let loader = Loader::new(memes.clone(), Some(&tok), small_multicrop(), config(2, 2)).unwrap();
    assert_eq!(loader.batches_per_epoch(), 3);
    let batches: Vec<Batch> = loader.epoch(0).collect();
    assert_eq!(batches.iter().map(Batch::len).collect::<Vec<_>>(), vec![4, 4, 2]);
    let b = &batches[0];
    let shapes: Vec<&[usize]> = b.views.iter().map(|v| v.shape()).collect();
    assert_eq!(shapes, vec![&[4, 32, 32, 3][..], &[4, 32, 32, 3], &[4, 16, 16, 3], &[4, 16, 16, 3], &[4, 16, 16, 3]]);
    assert!(b.views.iter().all(|v| v.is_standard_layout()), "contiguous NHWC");
    assert_eq!(b.input_ids.as_ref().unwrap().shape(), &[4, MAX_LEN]);
    assert_eq!(b.attention_mask.as_ref().unwrap().shape(), &[4, MAX_LEN]);
    // Ids and mask are the tokenizer's, row by row.
    for (row, &i) in b.indices.iter().enumerate() {
        let encoded = tok.encode(&memes[i].text, MAX_LEN);
        assert_eq!(b.input_ids.as_ref().unwrap().row(row).to_vec(), encoded.ids);
        assert_eq!(b.attention_mask.as_ref().unwrap().row(row).to_vec(), encoded.mask);
        assert_eq!(b.ids[row], memes[i].id);
    }
    assert_eq!(b.label_tensor().unwrap().len(), 4);
    // One epoch visits every meme once.
    let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());
    // The two global crops of a sample differ (independent augmentations).
    assert_ne!(b.views[0], b.views[1]);
}

#[test]
fn evaluation_view_is_the_package_resize_and_sequential() {
    let dir = tempfile::tempdir().unwrap();
    let memes = synthetic(dir.path(), 5);
    let cfg = LoaderConfig { sampling: Sampling::Sequential, ..config(1, 1) };
    let loader = Loader::new(memes.clone(), None, Views::eval(24, ResizeRule::Stretch), cfg).unwrap();
    let batch = loader.epoch(3).next().unwrap();
    assert_eq!(batch.indices, vec![0, 1, 2, 3]);
    assert!(batch.input_ids.is_none());
    let bytes = fs::read(&memes[1].image).unwrap();
    let decoded = memeguard_package::decode_image(&bytes, &Default::default()).unwrap();
    let expected = memeguard_package::resize_for_model(&decoded.image, 24, ResizeRule::Stretch, ResizeFilter::Bilinear);
    assert_eq!(batch.views[0].index_axis(ndarray::Axis(0), 1).as_slice().unwrap(), expected.as_raw().as_slice());
}

#[test]
fn batches_are_the_same_whatever_the_workers_and_prefetch() {
    let dir = tempfile::tempdir().unwrap();
    let memes = synthetic(dir.path(), 14);
    let tok = tokenizer(&memes);
    let epochs = |workers, prefetch| -> Vec<Vec<Batch>> {
        let loader = Loader::new(memes.clone(), Some(&tok), small_multicrop(), config(workers, prefetch)).unwrap();
        (0..2).map(|e| loader.epoch(e).collect()).collect()
    };
    let one = epochs(1, 1);
    assert_eq!(one, epochs(3, 2));
    assert_eq!(one, epochs(4, 8));
    assert_ne!(one[0], one[1], "epochs differ in order and augmentation");
    assert_ne!(one[0][0].indices, one[1][0].indices);
}

#[test]
fn dropping_an_epoch_early_stops_its_workers() {
    let dir = tempfile::tempdir().unwrap();
    let memes = synthetic(dir.path(), 12);
    let loader = Loader::new(memes, None, Views::finetune(16), config(2, 1)).unwrap();
    let mut epoch = loader.epoch(0);
    assert_eq!(epoch.len(), 3);
    let first = epoch.next().unwrap();
    assert_eq!(epoch.len(), 2);
    drop(epoch); // must return (joins the workers), not hang
    assert_eq!(loader.epoch(0).next().unwrap(), first);
}

#[test]
fn class_balanced_sampling_balances_a_skewed_set() {
    let dir = tempfile::tempdir().unwrap();
    let mut memes = synthetic(dir.path(), 16);
    // Keep 2 hateful memes and all the others.
    let mut hateful = 0;
    memes.retain(|m| {
        m.label == Some(0) || {
            hateful += 1;
            hateful <= 2
        }
    });
    let cfg = LoaderConfig { sampling: Sampling::ClassBalanced, samples_per_epoch: Some(20), ..config(2, 2) };
    let loader = Loader::new(memes.clone(), None, Views::eval(8, ResizeRule::Stretch), cfg).unwrap();
    let labels: Vec<u8> = loader.epoch(0).flat_map(|b| b.labels).map(Option::unwrap).collect();
    assert_eq!(labels.len(), 20);
    assert_eq!(labels.iter().filter(|&&l| l == 1).count(), 10);

    let mut unlabelled = memes.clone();
    unlabelled[0].label = None;
    let cfg = LoaderConfig { sampling: Sampling::ClassBalanced, ..config(1, 1) };
    assert!(matches!(
        Loader::new(unlabelled, None, Views::eval(8, ResizeRule::Stretch), cfg.clone()),
        Err(LoaderError::Unlabelled { .. })
    ));
    let only_benign: Vec<Meme> = memes.into_iter().filter(|m| m.label == Some(0)).collect();
    assert!(matches!(
        Loader::new(only_benign, None, Views::eval(8, ResizeRule::Stretch), cfg),
        Err(LoaderError::MissingClass(1))
    ));
}

#[test]
fn an_image_that_fails_during_the_epoch_is_skipped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let memes = synthetic(dir.path(), 8);
    // After loading, one image is truncated and another deleted.
    let whole = fs::read(&memes[2].image).unwrap();
    fs::write(&memes[2].image, &whole[..whole.len() / 3]).unwrap();
    fs::remove_file(&memes[5].image).unwrap();
    let cfg = LoaderConfig { sampling: Sampling::Sequential, ..config(2, 2) };
    let loader = Loader::new(memes.clone(), None, Views::finetune(16), cfg).unwrap();
    let batches: Vec<Batch> = loader.epoch(0).collect();
    assert_eq!(batches[0].indices, vec![0, 1, 3]);
    assert_eq!(batches[0].views[0].shape(), &[3, 16, 16, 3]);
    assert_eq!(batches[1].indices, vec![4, 6, 7]);
    let warnings: Vec<String> = batches.iter().flat_map(|b| &b.skipped).map(|w| w.to_string()).collect();
    assert_eq!(warnings.len(), 2);
    assert!(warnings[0].contains("train.jsonl:3") && warnings[0].contains("cannot be read"), "{}", warnings[0]);
    assert!(warnings[1].contains("train.jsonl:6") && warnings[1].contains("does not exist"), "{}", warnings[1]);
    assert_eq!(loader.skipped(), 2);
}

#[test]
fn text_only_loader_never_reads_images_and_bad_configs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let memes = synthetic(dir.path(), 6);
    let tok = tokenizer(&memes);
    fs::remove_dir_all(dir.path().join("img")).unwrap();
    let loader = Loader::new(memes.clone(), Some(&tok), Views { views: vec![] }, config(1, 1)).unwrap();
    let batch = loader.epoch(0).next().unwrap();
    assert_eq!((batch.len(), batch.views.len()), (4, 0));
    assert!(batch.skipped.is_empty());

    let zero = LoaderConfig { batch_size: 0, ..config(1, 1) };
    assert!(matches!(Loader::new(memes.clone(), None, Views::finetune(8), zero), Err(LoaderError::Zero("batch_size"))));
    assert!(matches!(Loader::new(vec![], None, Views::finetune(8), config(1, 1)), Err(LoaderError::Empty)));
    let drop_last = LoaderConfig { drop_last: true, ..config(1, 1) };
    assert_eq!(Loader::new(memes, None, Views::finetune(8), drop_last).unwrap().batches_per_epoch(), 1);
}
