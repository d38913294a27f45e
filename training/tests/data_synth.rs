//! The synthetic generator: counts read back exactly, the same seed gives the same bytes,
//! and the labels follow the benign-confounder design.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use memeguard_training::data::synth::design::{Design, SUBJECTS, TEMPLATES, TOPICS, WORD_FAMILIES, topic_word};
use memeguard_training::data::synth::{Difficulty, SynthConfig, generate};
use memeguard_training::data::{HatefulMemes, ImageCheck, Split};

fn tiny(seed: u64, difficulty: Difficulty) -> SynthConfig {
    SynthConfig {
        train: 20,
        dev: 6,
        test: 5,
        size: 32,
        seed,
        difficulty,
        concepts: 4,
        families: 12,
        ..SynthConfig::default()
    }
}

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for sub in ["", "img"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_file() {
                out.insert(
                    format!("{sub}/{}", entry.file_name().to_string_lossy()),
                    std::fs::read(entry.path()).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn generated_set_reads_back_with_the_counts_asked() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny(1, Difficulty::Medium);
    let summary = generate(dir.path(), &config, false, 2, &|| {}).unwrap();
    assert_eq!(summary.splits.iter().map(|s| s.1).collect::<Vec<_>>(), vec![20, 6, 5]);

    let data = HatefulMemes::load(dir.path(), ImageCheck::Decode).unwrap();
    assert!(data.summary.warnings.is_empty(), "{:?}", data.summary.warnings);
    assert_eq!(data.split(Split::Train).len(), 20);
    assert_eq!(data.split(Split::DevSeen).len(), 6);
    assert_eq!(data.split(Split::TestSeen).len(), 5);
    assert_eq!(data.splits().collect::<Vec<_>>(), vec![Split::Train, Split::DevSeen, Split::TestSeen]);
    let first = &data.split(Split::Train)[0];
    assert_eq!(first.id, "00001", "ids keep their leading zeros");
    assert!(first.label.is_some());
    let image = image::open(&first.image).unwrap();
    assert_eq!((image.width(), image.height()), (32, 32));
    // Every text is a template with a family word in its slot, and every id is unique.
    let all: Vec<_> = Split::ALL.iter().flat_map(|&s| data.split(s)).collect();
    let is_caption =
        |text: &str| TEMPLATES.iter().any(|t| WORD_FAMILIES.iter().flatten().any(|w| t.replace("{}", w) == text));
    assert!(all.iter().all(|m| is_caption(&m.text)), "{:?}", all.iter().map(|m| &m.text).collect::<Vec<_>>());
    let mut ids: Vec<_> = all.iter().map(|m| m.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 31);

    // A second run into the same directory is refused unless forced.
    assert!(generate(dir.path(), &config, false, 1, &|| {}).is_err());
    generate(dir.path(), &config, true, 1, &|| {}).unwrap();
}

#[test]
fn same_seed_gives_the_same_bytes_whatever_the_thread_count() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate(a.path(), &tiny(7, Difficulty::Hard), false, 1, &|| {}).unwrap();
    generate(b.path(), &tiny(7, Difficulty::Hard), false, 3, &|| {}).unwrap();
    generate(c.path(), &tiny(8, Difficulty::Hard), false, 2, &|| {}).unwrap();
    let (fa, fb, fc) = (files(a.path()), files(b.path()), files(c.path()));
    assert_eq!(fa.len(), 31 + 5, "31 images, 3 split files, synth.json, concepts.jsonl");
    assert!(fa == fb, "same seed, different bytes");
    let differing = fa.iter().filter(|(name, bytes)| fc.get(*name) != Some(bytes)).count();
    assert!(differing > 30, "another seed changed only {differing} files");
}

#[test]
fn written_labels_follow_the_pairing_rule() {
    let dir = tempfile::tempdir().unwrap();
    generate(dir.path(), &tiny(3, Difficulty::Easy), false, 2, &|| {}).unwrap();
    let design = Design::new(4).unwrap();
    let data = HatefulMemes::load(dir.path(), ImageCheck::Exists).unwrap();
    let labels: HashMap<String, u8> =
        Split::ALL.iter().flat_map(|&s| data.split(s)).map(|m| (m.id.clone(), m.label.unwrap())).collect();
    let concepts = std::fs::read_to_string(dir.path().join("concepts.jsonl")).unwrap();
    let mut lines = 0;
    for line in concepts.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let s = SUBJECTS.iter().position(|x| *x == v["image_concept"]).unwrap();
        let t = TOPICS.iter().position(|x| *x == v["text_concept"]).unwrap();
        assert_eq!(labels[v["id"].as_str().unwrap()], design.label(s, t), "{line}");
        lines += 1;
    }
    assert_eq!(lines, 31);
}

/// The benign-confounder property, checked statistically on a large plan: the label rate
/// given the text alone (its topic word, or the whole caption), or the image concept
/// alone, is 0.5, so the best single-modality predictor is at chance, while the pair
/// predicts the label exactly.
#[test]
fn single_modalities_are_at_chance_and_the_pair_decides() {
    for k in [2, 4, 6] {
        let design = Design::new(k).unwrap();
        let plan = design.plan(11, 0, 21_600);
        let mut by_word: HashMap<String, (usize, usize)> = HashMap::new();
        let mut by_text: HashMap<String, (usize, usize)> = HashMap::new();
        let mut by_subject: HashMap<usize, (usize, usize)> = HashMap::new();
        for m in &plan {
            assert_eq!(m.label, design.label(m.subject, m.topic));
            let word = topic_word(m.family, m.topic).to_string();
            assert!(m.text().split_whitespace().any(|w| w == word), "{}", m.text());
            for counts in [
                by_word.entry(word).or_default(),
                by_text.entry(m.text()).or_default(),
                by_subject.entry(m.subject).or_default(),
            ] {
                counts.0 += m.label as usize;
                counts.1 += 1;
            }
        }
        assert_eq!(by_word.len(), WORD_FAMILIES.len() * k, "every family gives each topic its own word");
        assert_eq!(by_text.len(), TEMPLATES.len() * WORD_FAMILIES.len() * k, "every caption is used");
        assert_eq!(by_subject.len(), k);
        for (word, (hateful, n)) in &by_word {
            let rate = *hateful as f64 / *n as f64;
            // n ≥ 21600/72 = 300 (a whole number of k² blocks): 3.5 standard deviations of a fair coin are ±0.1.
            assert!((rate - 0.5).abs() < 0.1, "k={k} {word:?}: {hateful}/{n}");
        }
        for (subject, (hateful, n)) in &by_subject {
            assert_eq!(*hateful * 2, *n, "k={k} subject {subject}: cells are dealt in whole blocks");
        }
        // Accuracy of the best predictor that sees only the topic word (majority label per word).
        let text_only: usize = by_word.values().map(|(h, n)| (*h).max(n - h)).sum();
        let accuracy = text_only as f64 / plan.len() as f64;
        assert!(accuracy < 0.53, "k={k}: text-only accuracy {accuracy}");
        let positives = plan.iter().filter(|m| m.label == 1).count();
        assert_eq!(positives * 2, plan.len());
    }
}

/// The phrase caption set draws every text from the topic's five sentences, and the
/// caption scale is checked before anything is written.
#[test]
fn phrase_captions_and_caption_scale() {
    use memeguard_training::data::synth::design::{CaptionKind, PHRASES};
    let dir = tempfile::tempdir().unwrap();
    let config = SynthConfig { captions: CaptionKind::Phrases, caption_scale: 0.35, ..tiny(4, Difficulty::Easy) };
    generate(dir.path(), &config, false, 2, &|| {}).unwrap();
    let concepts = std::fs::read_to_string(dir.path().join("concepts.jsonl")).unwrap();
    let data = HatefulMemes::load(dir.path(), ImageCheck::Decode).unwrap();
    let texts: HashMap<String, String> =
        Split::ALL.iter().flat_map(|&s| data.split(s)).map(|m| (m.id.clone(), m.text.clone())).collect();
    for line in concepts.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = TOPICS.iter().position(|x| *x == v["text_concept"]).unwrap();
        let text = &texts[v["id"].as_str().unwrap()];
        assert!(PHRASES[t].contains(&text.as_str()), "{text:?} is not a sentence of topic {t}");
    }
    for bad in [0.0, -1.0, 5.0, f32::NAN] {
        let other = tempfile::tempdir().unwrap();
        let err = generate(other.path(), &SynthConfig { caption_scale: bad, ..config.clone() }, false, 1, &|| {})
            .unwrap_err();
        assert!(err.to_string().contains("caption scale"), "{err}");
        assert!(!other.path().join("train.jsonl").exists());
    }
}
