//! The ONNX graph layer: protobuf types generated from `onnx.proto`, a host tensor
//! type, a graph builder, loading/saving, structural validation and shape inference.
//!
//! This crate knows nothing of models, autodiff or serving; everything above it
//! speaks ONNX through these types.
#![forbid(unsafe_code)]

pub mod builder;
pub mod check;
pub mod io;
pub mod pycheck;
pub mod shape;
pub mod tensor;
pub mod testing;
pub mod upgrade;

/// Types generated from the vendored `proto/onnx.proto` (ONNX 1.23.2).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use builder::{Attr, Dim, GraphBuilder};
pub use check::{CheckError, check_model};
pub use io::{IoError, decode_model, encode_model, load_model, save_model};
pub use proto::tensor_proto::DataType;
pub use tensor::{Tensor, TensorData, TensorError};

/// The default-domain opset every graph we build declares. ONNX Runtime 1.31 accepts
/// opsets up to 26; 20 is the newest opset whose ops all have long-standing CPU and
/// CUDA kernels in ONNX Runtime, and it has `Gelu`, `LayerNormalization` and
/// axes-as-input reductions.
pub const OPSET_VERSION: i64 = 20;

/// The IR version matching [`OPSET_VERSION`] (IR 9 introduced opset 19/20 support).
/// ONNX Runtime 1.31 accepts IR ≤ 13; the Python `onnx` default (14) is refused.
pub const IR_VERSION: i64 = 9;

/// Producer name written into every model we build.
pub const PRODUCER_NAME: &str = "memeguard";
