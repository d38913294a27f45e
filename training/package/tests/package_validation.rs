//! A package that is damaged in any way is refused by `ModelPackage::open` with an
//! error that names the file and the problem; a valid one opens.

mod common;

use std::path::Path;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{DataType, Dim, GraphBuilder, encode_model};
use memeguard_package::manifest::{
    IMAGENET_MEAN, ImageSpec, MANIFEST_FILE, MODEL_FILE, ManifestError, ResizeFilter, ResizeRule, TOKENIZER_FILE,
};
use memeguard_package::package::sha256_hex;
use memeguard_package::{Manifest, ModelPackage, PackageError, placeholder_model, write_package};

fn valid(root: &Path) -> std::path::PathBuf {
    let dir = root.join("tiny/1.0.0");
    common::tiny_package(&dir, ResizeRule::Letterbox);
    dir
}

fn read_manifest(dir: &Path) -> Manifest {
    Manifest::parse(&std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap()).unwrap()
}

/// Replaces `file` and records its new sha256, as a careless hand edit would.
fn replace_file(dir: &Path, file: &str, bytes: &[u8]) {
    let mut manifest = read_manifest(dir);
    manifest.files.insert(file.into(), sha256_hex(bytes));
    std::fs::write(dir.join(file), bytes).unwrap();
    std::fs::write(dir.join(MANIFEST_FILE), manifest.to_json()).unwrap();
}

fn replace_model(dir: &Path, model: &ModelProto) {
    replace_file(dir, MODEL_FILE, &encode_model(model));
}

fn open_err(dir: &Path) -> (PackageError, String) {
    let err = ModelPackage::open(dir).unwrap_err();
    let text = err.to_string();
    (err, text)
}

/// The tiny package's graph with its inputs renamed or retyped.
fn model_with(rename: Option<(&str, &str)>, retype: Option<(&str, DataType)>) -> ModelProto {
    let tokenizer = common::tokenizer();
    let mut model = placeholder_model(common::SIZE, common::MAX_LENGTH, tokenizer.vocab_size());
    let graph = model.graph.as_mut().unwrap();
    if let Some((from, to)) = rename {
        for v in graph.input.iter_mut().filter(|v| v.name.as_deref() == Some(from)) {
            v.name = Some(to.into());
        }
        for n in graph.node.iter_mut() {
            for i in n.input.iter_mut().filter(|i| i.as_str() == from) {
                *i = to.into();
            }
        }
    }
    if let Some((name, dtype)) = retype {
        let input = graph.input.iter_mut().find(|v| v.name.as_deref() == Some(name)).unwrap();
        let Some(memeguard_onnx::proto::type_proto::Value::TensorType(t)) =
            input.r#type.as_mut().and_then(|t| t.value.as_mut())
        else {
            panic!("tensor input")
        };
        t.elem_type = Some(dtype as i32);
    }
    model
}

#[test]
fn a_valid_package_opens_with_its_manifest() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    let pkg = ModelPackage::open(&dir).unwrap();
    assert_eq!(pkg.id(), "tiny@1.0.0");
    assert_eq!(
        (pkg.manifest.opset, pkg.manifest.ir_version),
        (memeguard_onnx::OPSET_VERSION, memeguard_onnx::IR_VERSION)
    );
    assert_eq!(pkg.manifest.files.len(), 2);
    assert_eq!(pkg.manifest.files[MODEL_FILE], sha256_hex(&std::fs::read(dir.join(MODEL_FILE)).unwrap()));
    assert_eq!(pkg.tokenizer.to_json(), common::tokenizer().to_json());
    // Nothing but the three files: the staging directory was renamed, not copied.
    let mut names: Vec<_> =
        std::fs::read_dir(root.path().join("tiny")).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, ["1.0.0"]);
}

#[test]
fn a_missing_file_is_named() {
    let root = tempfile::tempdir().unwrap();
    for file in [MODEL_FILE, TOKENIZER_FILE, MANIFEST_FILE] {
        let dir = root.path().join(file.replace('.', "_"));
        common::tiny_package(&dir, ResizeRule::Stretch);
        std::fs::remove_file(dir.join(file)).unwrap();
        let (err, text) = open_err(&dir);
        assert!(matches!(&err, PackageError::MissingFile { file: f, .. } if f == file), "{text}");
        assert!(text.contains(file) && text.contains("is missing"), "{text}");
    }
    let (err, _) = open_err(&root.path().join("nowhere"));
    assert!(matches!(err, PackageError::NotADirectory { .. }));
}

#[test]
fn a_changed_byte_is_caught_by_its_checksum() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    for file in [MODEL_FILE, TOKENIZER_FILE] {
        let path = dir.join(file);
        let original = std::fs::read(&path).unwrap();
        let mut bytes = original.clone();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (err, text) = open_err(&dir);
        assert!(matches!(err, PackageError::ChecksumMismatch { .. }), "{text}");
        assert!(text.contains(file) && text.contains("sha256") && text.contains(&sha256_hex(&original)), "{text}");
        std::fs::write(&path, &original).unwrap();
    }
    ModelPackage::open(&dir).unwrap();
}

#[test]
fn a_wrong_input_name_is_named() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    replace_model(&dir, &model_with(Some(("input_ids", "token_ids")), None));
    let (err, text) = open_err(&dir);
    assert!(matches!(err, PackageError::ModelContract { .. }), "{text}");
    assert!(text.contains("model.onnx") && text.contains("input `input_ids` is missing"), "{text}");
    assert!(text.contains("`token_ids` is not part of the contract"), "{text}");
}

#[test]
fn a_wrong_input_type_is_named() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    replace_model(&dir, &model_with(None, Some(("pixel_values", DataType::Float))));
    let (err, text) = open_err(&dir);
    assert!(matches!(err, PackageError::ModelContract { .. }), "{text}");
    assert!(text.contains("input `pixel_values` has element type float32, expected uint8"), "{text}");
}

#[test]
fn a_model_for_another_image_size_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    let tokenizer = common::tokenizer();
    replace_model(&dir, &placeholder_model(common::SIZE * 2, common::MAX_LENGTH, tokenizer.vocab_size()));
    let (_, text) = open_err(&dir);
    assert!(text.contains("`pixel_values` has size 16 on axis 1, the manifest needs 8"), "{text}");
}

#[test]
fn a_missing_probability_output_and_a_broken_graph_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    let mut model = model_with(None, None);
    model.graph.as_mut().unwrap().output.retain(|o| o.name.as_deref() != Some("probability"));
    replace_model(&dir, &model);
    let (_, text) = open_err(&dir);
    assert!(text.contains("output `probability` is missing (outputs are `logits`)"), "{text}");

    let mut model = model_with(None, None);
    model.graph.as_mut().unwrap().node[0].input[0] = "nowhere".into();
    replace_model(&dir, &model);
    let (err, text) = open_err(&dir);
    assert!(matches!(err, PackageError::ModelInvalid { .. }), "{text}");
    assert!(text.contains("`nowhere`"), "{text}");

    replace_file(&dir, MODEL_FILE, b"not protobuf at all \xff\xff\xff");
    let (err, text) = open_err(&dir);
    assert!(matches!(err, PackageError::ModelDecode { .. }), "{text}");
}

#[test]
fn an_unknown_manifest_version_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["format_version"] = serde_json::json!(3);
    std::fs::write(dir.join(MANIFEST_FILE), value.to_string()).unwrap();
    let (err, text) = open_err(&dir);
    assert!(
        matches!(&err, PackageError::Manifest { source: ManifestError::UnsupportedVersion { found }, .. } if found == "3"),
        "{text}"
    );
    assert!(
        text.contains("manifest.json")
            && text.contains("format_version 3")
            && text.contains("reads format_version 1 and 2"),
        "{text}"
    );
}

#[test]
fn a_version_1_package_opens_with_the_old_preprocessing() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
    let mut value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["format_version"] = serde_json::json!(1);
    for key in ["filter", "mean", "std"] {
        value["image"].as_object_mut().unwrap().remove(key);
    }
    std::fs::write(dir.join(MANIFEST_FILE), value.to_string()).unwrap();
    let pkg = ModelPackage::open(&dir).unwrap();
    assert_eq!(pkg.manifest.image, ImageSpec::new(common::SIZE, ResizeRule::Letterbox));

    // The committed demo package was written as format 1.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/demo");
    let versions: Vec<_> = std::fs::read_dir(&demo).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(!versions.is_empty(), "no package under {}", demo.display());
    for version in versions {
        let pkg = ModelPackage::open(&version).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((pkg.manifest.image.filter, pkg.manifest.image.mean), (ResizeFilter::Bilinear, IMAGENET_MEAN));
    }
}

#[test]
fn a_malformed_manifest_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    let good = std::fs::read_to_string(dir.join(MANIFEST_FILE)).unwrap();
    let cases: [(&str, String); 4] = [
        ("truncated", good[..good.len() / 2].to_string()),
        ("threshold", good.replace("\"threshold\": 0.5", "\"threshold\": \"high\"")),
        ("missing field", good.replace("\"name\": \"tiny\",", "")),
        ("binary", "\u{0}\u{1}".to_string()),
    ];
    for (case, text) in cases {
        std::fs::write(dir.join(MANIFEST_FILE), text).unwrap();
        let (err, message) = open_err(&dir);
        assert!(
            matches!(&err, PackageError::Manifest { source: ManifestError::Malformed(_), .. }),
            "{case}: {message}"
        );
        assert!(message.contains("manifest.json is not valid manifest JSON"), "{case}: {message}");
    }
    let out_of_range = good.replace("\"threshold\": 0.5", "\"threshold\": 2.0");
    std::fs::write(dir.join(MANIFEST_FILE), out_of_range).unwrap();
    let (_, message) = open_err(&dir);
    assert!(message.contains("threshold 2 is not a probability"), "{message}");
}

#[test]
fn a_bad_tokenizer_is_named() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    replace_file(&dir, TOKENIZER_FILE, b"{\"version\": \"1.0\"}");
    let (err, text) = open_err(&dir);
    assert!(matches!(err, PackageError::Tokenizer { .. }), "{text}");
    assert!(text.contains("tokenizer.json is not a valid Hugging Face tokenizers file"), "{text}");
}

#[test]
fn writing_never_overwrites_and_never_leaves_a_broken_package() {
    let root = tempfile::tempdir().unwrap();
    let dir = valid(root.path());
    let tokenizer = common::tokenizer();
    let model = placeholder_model(common::SIZE, common::MAX_LENGTH, tokenizer.vocab_size());
    let err = write_package(&dir, common::manifest(ResizeRule::Stretch), &model, &tokenizer).unwrap_err();
    assert!(matches!(err, PackageError::AlreadyExists { .. }), "{err}");

    // A model that breaks the contract is refused before anything appears at `dir`.
    let mut g = GraphBuilder::new("wrong");
    let x = g.input("x", DataType::Float, &[Dim::from("n")]);
    g.named_output(&x, "probability", DataType::Float, &[Dim::from("n")]);
    let target = root.path().join("wrong/1");
    let err = write_package(&target, common::manifest(ResizeRule::Stretch), &g.build(), &tokenizer).unwrap_err();
    assert!(matches!(err, PackageError::ModelContract { .. }), "{err}");
    assert!(!target.exists());
    assert_eq!(std::fs::read_dir(root.path().join("wrong")).unwrap().count(), 0, "staging directory left behind");
}

#[test]
fn the_placeholder_package_says_what_it_is_and_passes_onnx_checker() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("placeholder/0.0.0");
    let pkg = memeguard_package::write_placeholder_package(&dir).unwrap();
    assert!(pkg.manifest.placeholder);
    assert!(pkg.manifest.description.to_lowercase().contains("untrained placeholder"));
    assert!(pkg.manifest.label().contains("untrained placeholder"));
    assert!(pkg.manifest.architecture.parameters > 0);
    memeguard_onnx::pycheck::onnx_checker(&dir.join(MODEL_FILE)).unwrap();
}
