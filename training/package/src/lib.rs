//! What the training crate and the server share: ONNX Runtime setup, the model
//! package format, and the one preprocessing implementation.

pub mod onnxruntime;

pub use onnxruntime::{Device, RuntimeError, SessionOptions};
pub mod tensor_value;
