//! Serialising models to bytes and files, and loading existing `.onnx` files.

use std::path::Path;

use prost::Message;

use crate::proto::ModelProto;

/// Errors reading or writing models.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("{what} is not a valid ONNX model: {source}")]
    Decode { what: String, source: prost::DecodeError },
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
    std::fs::write(path, encode_model(model)).map_err(|source| IoError::Write { path: path.display().to_string(), source })
}

/// Loads a model from `path`.
pub fn load_model(path: &Path) -> Result<ModelProto, IoError> {
    let bytes = std::fs::read(path).map_err(|source| IoError::Read { path: path.display().to_string(), source })?;
    decode_model(&bytes, &path.display().to_string())
}
