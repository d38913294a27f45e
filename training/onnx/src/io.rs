//! Serialising models to bytes and files, and loading existing `.onnx` files, with
//! their external data (the `.onnx.data` files exporters write for large models) read
//! in, so a loaded model is self-contained.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use prost::Message;

use crate::proto::tensor_proto::DataLocation;
use crate::proto::{GraphProto, ModelProto, TensorProto};

/// Errors reading or writing models.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{what} is not a valid ONNX model: {source}")]
    Decode { what: String, source: prost::DecodeError },
    /// An external data file is missing, unreadable or shorter than the tensors it
    /// should hold; one error for the whole file.
    #[error("{model}: the external data file {file} {problem}")]
    ExternalData { model: String, file: String, problem: String },
}

/// Encodes a model to protobuf bytes.
pub fn encode_model(model: &ModelProto) -> Vec<u8> {
    model.encode_to_vec()
}

/// Decodes protobuf bytes; `what` names the source in errors.
pub fn decode_model(bytes: &[u8], what: &str) -> Result<ModelProto, IoError> {
    ModelProto::decode(bytes).map_err(|source| IoError::Decode { what: what.to_string(), source })
}

/// Writes a model to `path`.
pub fn save_model(model: &ModelProto, path: &Path) -> Result<(), IoError> {
    std::fs::write(path, encode_model(model))
        .map_err(|source| IoError::Write { path: path.display().to_string(), source })
}

/// Loads a model from `path`. Tensors stored as external data (`data_location =
/// EXTERNAL`, `external_data` naming a `location` relative to the model's folder, an
/// optional `offset` and `length`) are read into `raw_data`, so the returned model
/// needs no other file. Offsets and lengths are 64-bit: weights beyond 2 GB load.
pub fn load_model(path: &Path) -> Result<ModelProto, IoError> {
    let bytes = std::fs::read(path).map_err(|source| IoError::Read { path: path.display().to_string(), source })?;
    let mut model = decode_model(&bytes, &path.display().to_string())?;
    drop(bytes);
    let folder = path.parent().map(Path::to_path_buf).unwrap_or_default();
    load_external_data(&mut model, &folder, &path.display().to_string())?;
    Ok(model)
}

/// Whether `tensor` keeps its data in an external file.
pub fn is_external(tensor: &TensorProto) -> bool {
    tensor.data_location == Some(DataLocation::External as i32)
}

/// Reads every external tensor of `model` (initializers and constant attributes, in
/// subgraphs too) from files under `folder`; `model_name` names the model in errors.
pub fn load_external_data(model: &mut ModelProto, folder: &Path, model_name: &str) -> Result<(), IoError> {
    let mut tensors = Vec::new();
    if let Some(graph) = model.graph.as_mut() {
        external_tensors(graph, &mut tensors);
    }
    if tensors.is_empty() {
        return Ok(());
    }
    let fail = |file: &str, problem: String| IoError::ExternalData {
        model: model_name.to_string(),
        file: file.to_string(),
        problem,
    };
    // Group by file, so each is opened once and a missing file is one message.
    let mut by_file: BTreeMap<String, Vec<ExternalSlice>> = BTreeMap::new();
    for tensor in tensors {
        let entry = |key: &str| {
            tensor.external_data.iter().find(|e| e.key.as_deref() == Some(key)).and_then(|e| e.value.clone())
        };
        let name = tensor.name.clone().unwrap_or_default();
        let location = entry("location")
            .ok_or_else(|| fail("(none)", format!("is not named: tensor `{name}` has no `location` entry")))?;
        let number = |key: &str| -> Result<Option<u64>, IoError> {
            entry(key)
                .map(|v| v.trim().parse::<u64>())
                .transpose()
                .map_err(|_| fail(&location, format!("has an invalid `{key}` for tensor `{name}`")))
        };
        let offset = number("offset")?.unwrap_or(0);
        let length = number("length")?;
        by_file.entry(location).or_default().push((tensor, offset, length));
    }
    for (location, tensors) in by_file {
        let path = external_path(folder, &location).map_err(|problem| fail(&location, problem))?;
        let shown = path.display().to_string();
        let mut file = File::open(&path)
            .map_err(|e| fail(&shown, format!("cannot be opened ({e}); it must lie next to the model")))?;
        let size = file.metadata().map_err(|e| fail(&shown, format!("cannot be read ({e})")))?.len();
        let needed = tensors.iter().map(|(_, offset, length)| offset + length.unwrap_or(0)).max().unwrap_or(0);
        if needed > size {
            return Err(fail(
                &shown,
                format!(
                    "is {size} bytes, but {} tensor(s) need {needed}: it is truncated or belongs to another export",
                    tensors.len()
                ),
            ));
        }
        for (tensor, offset, length) in tensors {
            let length = length.unwrap_or(size - offset.min(size));
            let mut data = vec![0u8; length as usize];
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut data))
                .map_err(|e| fail(&shown, format!("cannot be read ({e})")))?;
            tensor.raw_data = Some(data);
            tensor.external_data.clear();
            tensor.data_location = None;
        }
    }
    Ok(())
}

/// A tensor to be read from an external file: where it starts and how long it is
/// (`None`: to the end of the file).
type ExternalSlice<'a> = (&'a mut TensorProto, u64, Option<u64>);

/// `location` under `folder`; absolute paths and `..` are refused, as ONNX does, so a
/// model cannot make us read files outside its folder.
fn external_path(folder: &Path, location: &str) -> Result<PathBuf, String> {
    let relative = Path::new(location);
    if relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err("must be a path inside the model's folder (no absolute path, no `..`)".into());
    }
    Ok(folder.join(relative))
}

fn external_tensors<'a>(graph: &'a mut GraphProto, out: &mut Vec<&'a mut TensorProto>) {
    out.extend(graph.initializer.iter_mut().filter(|t| is_external(t)));
    for node in &mut graph.node {
        for attr in &mut node.attribute {
            if let Some(t) = attr.t.as_mut().filter(|t| is_external(t)) {
                out.push(t);
            }
            out.extend(attr.tensors.iter_mut().filter(|t| is_external(t)));
            if let Some(g) = attr.g.as_mut() {
                external_tensors(g, out);
            }
            for g in &mut attr.graphs {
                external_tensors(g, out);
            }
        }
    }
}
