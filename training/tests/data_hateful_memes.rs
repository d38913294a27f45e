//! The Hateful Memes reader: bad lines and bad images become warnings with file and
//! line, counted in the summary, while the rest loads.

use std::fs;
use std::path::Path;

use memeguard_training::data::{HatefulMemes, ImageCheck, Problem, Split};

fn png(path: &Path, size: u32) {
    image::RgbImage::from_fn(size, size, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90])).save(path).unwrap();
}

/// A data directory with one good meme per line 1..=3 of train.jsonl and one problem on
/// each later line.
fn broken_set(dir: &Path) {
    fs::create_dir_all(dir.join("img")).unwrap();
    for id in ["01235", "00042", "10001", "77777", "00300"] {
        png(&dir.join(format!("img/{id}.png")), 24);
    }
    // A corrupt image: random bytes under a .png name.
    fs::write(dir.join("img/66666.png"), b"\x89PNG\r\n\x1a\nthis is not a png at all").unwrap();
    // A truncated image: the first half of a valid PNG.
    let whole = fs::read(dir.join("img/77777.png")).unwrap();
    fs::write(dir.join("img/55555.png"), &whole[..whole.len() / 2]).unwrap();
    let train = [
        r#"{"id": 1235, "img": "img/01235.png", "label": 1, "text": "numeric id, zeros kept from the image name"}"#,
        r#"{"id": "00042", "img": "img/00042.png", "label": 0, "text": "string id"}"#,
        r#"{"id": "10001", "img": "img/10001.png", "label": "1", "text": "label given as a string"}"#,
        r#"{"id": "66666", "img": "img/66666.png", "label": 0, "text": "corrupt image"}"#,
        r#"{"id": "44444", "img": "img/44444.png", "label": 1, "text": "missing image"}"#,
        r#"{"id": "55555", "img": "img/55555.png", "label": 0, "text": "truncated image"}"#,
        r#"{"id": "33333", "img": "img/33333.png", "label": 0, "text": "broken json"#,
        r#"{"id": "22222", "label": 0, "text": "no img field"}"#,
        r#"{"id": "00300", "img": "img/00300.png", "label": 7, "text": "bad label"}"#,
        r#"{"id": "00042", "img": "img/00042.png", "label": 0, "text": "duplicate id"}"#,
    ];
    fs::write(dir.join("train.jsonl"), train.join("\n") + "\n").unwrap();
    // A test split without labels, and a dev split cut off in the middle of its last line.
    fs::write(dir.join("test_unseen.jsonl"), r#"{"id": "77777", "img": "img/77777.png", "text": "no label here"}"#)
        .unwrap();
    let dev = "{\"id\": \"00300\", \"img\": \"img/00300.png\", \"label\": 1, \"text\": \"fine\"}\n\
               {\"id\": \"77777\", \"img\": \"img/77777.png\", \"lab";
    fs::write(dir.join("dev_seen.jsonl"), dev).unwrap();
}

#[test]
fn every_problem_is_reported_with_file_and_line_and_the_rest_loads() {
    let dir = tempfile::tempdir().unwrap();
    broken_set(dir.path());
    let data = HatefulMemes::load(dir.path(), ImageCheck::Decode).unwrap();

    let train = data.split(Split::Train);
    let ids: Vec<&str> = train.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["01235", "00042", "10001"]);
    assert_eq!(train[0].label, Some(1));
    assert_eq!(train[2].label, Some(1));
    assert_eq!(train[1].source.line, 2);

    let train_file = dir.path().join("train.jsonl");
    let at = |line: usize| {
        data.summary
            .warnings
            .iter()
            .find(|w| w.at.file == train_file && w.at.line == line)
            .unwrap_or_else(|| panic!("no warning for train.jsonl:{line}: {:#?}", data.summary.warnings))
    };
    assert!(matches!(at(4).problem, Problem::UnreadableImage { .. }), "corrupt image");
    assert!(matches!(at(5).problem, Problem::MissingImage(_)), "missing image");
    assert!(matches!(at(6).problem, Problem::UnreadableImage { .. }), "truncated image");
    assert!(matches!(at(7).problem, Problem::BadJson(_)), "broken json");
    assert_eq!(at(8).problem, Problem::MissingField("img"));
    assert!(matches!(at(9).problem, Problem::BadField { field: "label", .. }));
    assert_eq!(at(10).problem, Problem::DuplicateId("00042".into()));
    // The message names file and line.
    let text = at(5).to_string();
    assert!(text.contains("train.jsonl:5") && text.contains("44444.png") && text.contains("does not exist"), "{text}");

    let summary = &data.summary.splits[0];
    assert_eq!(summary.split, Some(Split::Train));
    assert_eq!((summary.lines, summary.loaded), (10, 3));
    assert_eq!((summary.bad_lines, summary.missing_images, summary.unreadable_images), (4, 1, 2));
    assert_eq!((summary.hateful, summary.not_hateful, summary.unlabelled), (2, 1, 0));
    assert_eq!(summary.text.count, 3);

    // The truncated jsonl file: the whole line loads, the cut one is reported.
    assert_eq!(data.split(Split::DevSeen).len(), 1);
    let dev_file = dir.path().join("dev_seen.jsonl");
    assert!(data.summary.warnings.iter().any(|w| w.at.file == dev_file && w.at.line == 2));
    // Unlabelled test memes load with no label.
    assert_eq!(data.split(Split::TestUnseen)[0].label, None);
    assert_eq!(data.summary.splits.iter().map(|s| s.unlabelled).sum::<usize>(), 1);
    assert_eq!(data.summary.warnings.len(), 8);
}

#[test]
fn header_check_lets_a_truncated_image_through_for_the_loader_to_report() {
    let dir = tempfile::tempdir().unwrap();
    broken_set(dir.path());
    let data = HatefulMemes::load(dir.path(), ImageCheck::Header).unwrap();
    let ids: Vec<&str> = data.split(Split::Train).iter().map(|m| m.id.as_str()).collect();
    // The truncated PNG's header is intact; the corrupt one's is not.
    assert_eq!(ids, ["01235", "00042", "10001", "55555"]);
}

#[test]
fn unusable_directories_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    assert!(HatefulMemes::load(&dir.path().join("nope"), ImageCheck::Exists).is_err());
    let err = HatefulMemes::load(dir.path(), ImageCheck::Exists).unwrap_err();
    assert!(err.to_string().contains("train.jsonl"), "{err}");
}
