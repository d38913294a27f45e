//! Real ONNX exports of the tiny CLIP (tests/fixtures/exports/, made by
//! scripts/fixtures/make_onnx_exports.py with torch): each loads as a recipe names it
//! (`onnx:FILE#OUTPUT`), attaches into our graph, and computes in ONNX Runtime what torch
//! computed; external data is read in (and a missing or short data file is one clear
//! error); a joint two-tower export is cut to the tower asked for.

mod models_support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use memeguard_onnx::{DataType, check_model, dims};
use memeguard_training::graph_spec::Mode;
use memeguard_training::models::encoders::{ImageEncoder, OnnxImageEncoder, OnnxTextEncoder, TextEncoder};
use memeguard_training::models::import::ImportedEncoder;
use memeguard_training::models::input::{ATTENTION_MASK, BATCH, INPUT_IDS, SEQUENCE};
use memeguard_training::models::source::{EncoderSource, Trainable};
use memeguard_training::models::*;
use models_support::run;
use ort::value::Tensor as OrtTensor;

fn exports() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exports")
}

fn source(file: &str, output: Option<&str>) -> EncoderSource {
    EncoderSource::Onnx { file: exports().join(file), output: output.map(str::to_string) }
}

/// What torch computed (reference.safetensors): inputs as raw tensors, outputs as f32.
struct Reference {
    f32s: HashMap<String, (Vec<i64>, Vec<f32>)>,
    i64s: HashMap<String, (Vec<i64>, Vec<i64>)>,
}

fn reference() -> Reference {
    models_support::init_ort();
    let bytes = std::fs::read(exports().join("reference.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut r = Reference { f32s: HashMap::new(), i64s: HashMap::new() };
    for (name, view) in st.tensors() {
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        match view.dtype() {
            safetensors::Dtype::F32 => {
                let v = view.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                r.f32s.insert(name.to_string(), (shape, v));
            }
            safetensors::Dtype::I64 => {
                let v = view.data().chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect();
                r.i64s.insert(name.to_string(), (shape, v));
            }
            other => panic!("{name}: unexpected {other:?}"),
        }
    }
    r
}

fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}");
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= 1e-4, "{what}: largest difference from torch {worst}");
}

/// The image tower `file#output` attached to a float NCHW input, run on the reference
/// pixels, against torch's `image_embeds`.
fn check_image_export(file: &str, output: Option<&str>) {
    let r = reference();
    let encoder = OnnxImageEncoder::load(&source(file, output), Trainable::Frozen).unwrap();
    assert_eq!((encoder.image_size, encoder.onnx.dim), (32, 16), "{file}");
    let mut net = Net::new("imported", Mode::Infer, 0);
    let pixels = net.b.input("pixels", DataType::Float, &dims![BATCH, 3, 32, 32]);
    let features = ImageEncoder::Onnx(encoder).build(&mut net, "image", &pixels).unwrap();
    let graph = net.finish(&[GraphOutput::f32(&features, "features", dims![BATCH, 16])]);
    check_model(&graph.model, true).unwrap();
    assert!(graph.params.iter().all(|p| !p.trainable && p.name.starts_with("image.")), "{file}");
    let (shape, values) = r.f32s["pixel_values"].clone();
    let out = run(&graph.model, vec![("pixels", OrtTensor::from_array((shape, values)).unwrap().into_dyn())]);
    assert_eq!(out["features"].0, vec![4, 16]);
    assert_close(file, &out["features"].1, &r.f32s["image_embeds"].1);
}

/// The text tower on the reference tokens, against torch's `text_embeds`.
fn check_text_export(file: &str, output: Option<&str>) {
    let r = reference();
    let encoder = OnnxTextEncoder::load(&source(file, output), Trainable::Frozen).unwrap();
    assert_eq!(encoder.onnx.dim, 16, "{file}");
    let mut net = Net::new("imported", Mode::Infer, 0);
    let ids = net.b.input(INPUT_IDS, DataType::Int64, &dims![BATCH, SEQUENCE]);
    let mask = net.b.input(ATTENTION_MASK, DataType::Int64, &dims![BATCH, SEQUENCE]);
    let features = TextEncoder::Onnx(encoder).build(&mut net, "text", &ids, &mask).unwrap();
    let graph = net.finish(&[GraphOutput::f32(&features, "features", dims![BATCH, 16])]);
    check_model(&graph.model, true).unwrap();
    let tensor = |name: &str| {
        let (shape, values) = r.i64s[name].clone();
        OrtTensor::from_array((shape, values)).unwrap().into_dyn()
    };
    let out = run(&graph.model, vec![(INPUT_IDS, tensor("input_ids")), (ATTENTION_MASK, tensor("attention_mask"))]);
    assert_eq!(out["features"].0, vec![7, 16]);
    assert_close(file, &out["features"].1, &r.f32s["text_embeds"].1);
}

#[test]
fn legacy_exports_at_opsets_17_and_20_compute_what_torch_computed() {
    for opset in [17, 20] {
        check_image_export(&format!("clip-vision-opset{opset}.onnx"), Some("image_embeds"));
        check_text_export(&format!("clip-text-opset{opset}.onnx"), None);
    }
}

#[test]
fn dynamo_exports_compute_what_torch_computed() {
    check_image_export("clip-vision-dynamo.onnx", Some("image_embeds"));
    check_text_export("clip-text-dynamo.onnx", Some("text_embeds"));
}

#[test]
fn external_data_is_read_in() {
    check_image_export("clip-vision-external.onnx", None);
    // The loaded model is self-contained: no tensor still points at a file.
    let model = memeguard_onnx::load_model(&exports().join("clip-vision-external.onnx")).unwrap();
    let graph = model.graph.unwrap();
    assert!(graph.initializer.iter().all(|t| !memeguard_onnx::io::is_external(t) && t.external_data.is_empty()));
    assert!(graph.initializer.iter().any(|t| t.raw_data.as_ref().is_some_and(|d| d.len() > 1000)));
}

#[test]
fn a_missing_or_short_data_file_is_one_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("clip-vision-external.onnx");
    std::fs::copy(exports().join("clip-vision-external.onnx"), &model).unwrap();
    let text = ImportedEncoder::load(&model).unwrap_err().to_string();
    assert!(text.contains("clip-vision-external.onnx.data") && text.contains("cannot be opened"), "{text}");
    assert_eq!(text.matches("clip-vision-external.onnx.data").count(), 1, "one message for the file: {text}");

    let data = std::fs::read(exports().join("clip-vision-external.onnx.data")).unwrap();
    std::fs::write(dir.path().join("clip-vision-external.onnx.data"), &data[..data.len() / 2]).unwrap();
    let text = ImportedEncoder::load(&model).unwrap_err().to_string();
    assert!(text.contains("clip-vision-external.onnx.data") && text.contains("truncated"), "{text}");

    // A location outside the model's folder is refused, as ONNX does.
    let mut escaping = memeguard_onnx::load_model(&exports().join("clip-vision-opset17.onnx")).unwrap();
    let init = &mut escaping.graph.as_mut().unwrap().initializer[0];
    init.raw_data = None;
    init.data_location = Some(memeguard_onnx::proto::tensor_proto::DataLocation::External as i32);
    init.external_data = vec![memeguard_onnx::proto::StringStringEntryProto {
        key: Some("location".into()),
        value: Some("../../etc/passwd".into()),
    }];
    let path = dir.path().join("escaping.onnx");
    memeguard_onnx::save_model(&escaping, &path).unwrap();
    let text = ImportedEncoder::load(&path).unwrap_err().to_string();
    assert!(text.contains("../../etc/passwd") && text.contains("inside the model's folder"), "{text}");
}

/// Weights past 2 GB in the data file: offsets are read as 64-bit (a sparse file, so
/// nothing is written to disk but the last bytes).
#[test]
fn external_data_beyond_2_gb_loads() {
    use memeguard_onnx::proto::StringStringEntryProto;
    use memeguard_onnx::proto::tensor_proto::DataLocation;

    let dir = tempfile::tempdir().unwrap();
    let offset: u64 = 3 << 30;
    let values: Vec<f32> = vec![0.25, -1.5, 2.0, 4.0];
    let file = std::fs::File::create(dir.path().join("big.onnx.data")).unwrap();
    file.set_len(offset).unwrap();
    drop(file);
    let mut f = std::fs::OpenOptions::new().append(true).open(dir.path().join("big.onnx.data")).unwrap();
    use std::io::Write;
    f.write_all(&values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    drop(f);

    let mut b = memeguard_onnx::GraphBuilder::new("big");
    let x = b.input("x", DataType::Float, &dims!["n", 4]);
    let w = b.initializer("w", &memeguard_onnx::Tensor::f32(vec![4], vec![0.0; 4]));
    let y = b.op("Mul", &[&x, &w], &[]);
    b.named_output(&y, "y", DataType::Float, &dims!["n", 4]);
    let mut model = b.build();
    let init = &mut model.graph.as_mut().unwrap().initializer[0];
    init.raw_data = None;
    init.float_data.clear();
    init.data_location = Some(DataLocation::External as i32);
    let entry = |k: &str, v: String| StringStringEntryProto { key: Some(k.into()), value: Some(v) };
    init.external_data = vec![
        entry("location", "big.onnx.data".into()),
        entry("offset", offset.to_string()),
        entry("length", "16".into()),
    ];
    memeguard_onnx::save_model(&model, &dir.path().join("big.onnx")).unwrap();

    let loaded = memeguard_onnx::load_model(&dir.path().join("big.onnx")).unwrap();
    let w = memeguard_onnx::Tensor::from_proto(&loaded.graph.unwrap().initializer[0]).unwrap();
    assert_eq!(w.as_f32().unwrap(), values.as_slice());
}

#[test]
fn a_joint_export_is_cut_to_the_tower_asked_for() {
    check_image_export("clip-joint-opset17.onnx", Some("image_embeds"));
    check_text_export("clip-joint-opset17.onnx", Some("text_embeds"));

    let joint = ImportedEncoder::load(&exports().join("clip-joint-opset17.onnx")).unwrap();
    let image = joint.clone().into_output(Some("image_embeds")).unwrap();
    let inputs: Vec<String> = image.inputs().into_iter().map(|v| v.name).collect();
    assert_eq!(inputs, ["pixel_values"], "the text tower's inputs are not needed");
    assert!(image.parameters().iter().all(|p| !p.name.starts_with("text")), "no text weights kept");

    let text = joint.clone().into_output(None).unwrap_err().to_string();
    assert!(text.contains("2 outputs") && text.contains("image_embeds") && text.contains("text_embeds"), "{text}");
    let text = joint.into_output(Some("pooled")).unwrap_err().to_string();
    assert!(text.contains("no output `pooled`"), "{text}");
    // A whole joint graph is no image encoder: it says to pick the tower.
    let text = OnnxImageEncoder::load(&source("clip-joint-opset17.onnx", Some("text_embeds")), Trainable::Frozen)
        .unwrap_err()
        .to_string();
    assert!(text.contains("input_ids") && text.contains("#OUTPUT"), "{text}");
}

#[test]
fn what_an_onnx_encoder_cannot_do_is_refused_with_the_reason() {
    // last:N past the export's blocks (models_import_blocks.rs tests what it trains).
    let text = OnnxImageEncoder::load(&source("clip-vision-opset17.onnx", None), Trainable::LastBlocks(3))
        .unwrap_err()
        .to_string();
    assert!(text.contains("last:3") && text.contains("has 2 blocks"), "{text}");
    let text =
        OnnxTextEncoder::load(&source("clip-vision-opset17.onnx", None), Trainable::Frozen).unwrap_err().to_string();
    assert!(text.contains("pixel_values") && text.contains("input_ids"), "{text}");
    // From the recipe's string: the same parser as the command line.
    let text = ImageEncoder::from_spec("onnx:/no/such/encoder.onnx#image_embeds", Trainable::Frozen, None)
        .unwrap_err()
        .to_string();
    assert!(text.contains("/no/such/encoder.onnx"), "{text}");
}

/// An export that wants int32 token inputs (and `token_type_ids`) gets ours cast, and
/// zeros for the token types.
#[test]
fn int32_text_inputs_are_cast_and_token_types_are_zeros() {
    use memeguard_onnx::{Attr, GraphBuilder, Tensor};

    let mut b = GraphBuilder::new("int32-text");
    let ids = b.input(INPUT_IDS, DataType::Int32, &dims!["n", "l"]);
    let mask = b.input(ATTENTION_MASK, DataType::Int32, &dims!["n", "l"]);
    let types = b.input("token_type_ids", DataType::Int32, &dims!["n", "l"]);
    let axes = b.initializer("axes", &Tensor::vec_i64(&[1]));
    let float = [("to", Attr::Int(DataType::Float as i64))];
    let masked = b.op("Mul", &[&ids, &mask], &[]);
    let masked = b.op("Cast", &[&masked], &float);
    let sum = b.op("ReduceSum", &[&masked, &axes], &[("keepdims", Attr::Int(1))]);
    let types = b.op("Cast", &[&types], &float);
    let type_sum = b.op("ReduceSum", &[&types, &axes], &[("keepdims", Attr::Int(1))]);
    let features = b.op("Concat", &[&sum, &type_sum], &[("axis", Attr::Int(1))]);
    b.named_output(&features, "pooled", DataType::Float, &dims!["n", 2]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("int32.onnx");
    memeguard_onnx::save_model(&b.build(), &file).unwrap();

    let encoder = OnnxTextEncoder::load(&EncoderSource::Onnx { file, output: None }, Trainable::Frozen).unwrap();
    assert_eq!(encoder.onnx.dim, 2);
    let mut net = Net::new("imported", Mode::Infer, 0);
    let ids = net.b.input(INPUT_IDS, DataType::Int64, &dims![BATCH, SEQUENCE]);
    let mask = net.b.input(ATTENTION_MASK, DataType::Int64, &dims![BATCH, SEQUENCE]);
    let features = TextEncoder::Onnx(encoder).build(&mut net, "text", &ids, &mask).unwrap();
    let graph = net.finish(&[GraphOutput::f32(&features, "features", dims![BATCH, 2])]);
    check_model(&graph.model, true).unwrap();
    models_support::init_ort();
    let tensor = |v: Vec<i64>| OrtTensor::from_array((vec![2i64, 3], v)).unwrap().into_dyn();
    let out = run(
        &graph.model,
        vec![(INPUT_IDS, tensor(vec![1, 2, 3, 4, 5, 6])), (ATTENTION_MASK, tensor(vec![1, 1, 0, 1, 0, 0]))],
    );
    assert_eq!(out["features"].1, vec![3.0, 0.0, 4.0, 0.0]);
}

/// An export with a symbolic image side takes its size from the preprocessor config, and
/// the encoder's preprocessing is that file's (CLIP: shorter side, centre crop).
#[test]
fn a_symbolic_image_size_comes_from_the_preprocessor_config() {
    use memeguard_onnx::proto::{tensor_shape_proto::dimension::Value, type_proto};

    let mut model = memeguard_onnx::load_model(&exports().join("clip-vision-opset17.onnx")).unwrap();
    let input = &mut model.graph.as_mut().unwrap().input[0];
    let Some(type_proto::Value::TensorType(t)) = input.r#type.as_mut().unwrap().value.as_mut() else { panic!() };
    for (d, name) in t.shape.as_mut().unwrap().dim[2..].iter_mut().zip(["height", "width"]) {
        d.value = Some(Value::DimParam(name.into()));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("any-size.onnx");
    memeguard_onnx::save_model(&model, &file).unwrap();
    let spec = format!("onnx:{}", file.display());

    let text = ImageEncoder::from_spec(&spec, Trainable::Frozen, None).unwrap_err().to_string();
    assert!(text.contains("[batch, 3, height, width]") && text.contains("model.image_preprocessor"), "{text}");
    let preprocessor =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf/clip-tiny/preprocessor_config.json");
    let encoder = ImageEncoder::from_spec(&spec, Trainable::Frozen, Some(&preprocessor)).unwrap();
    assert_eq!(encoder.image_size(), 32);
    assert_eq!(encoder.image_spec().resize, memeguard_package::ResizeRule::ScaleShorterSideThenCenterCrop);
    assert_eq!(encoder.image_spec().mean, memeguard_package::manifest::CLIP_MEAN);
}
