//! memeguard's training backend: models built as ONNX graphs, differentiated by our
//! own reverse-mode autodiff into training-step graphs of standard ONNX ops, trained
//! with ONNX Runtime on CPU or CUDA, evaluated and exported as model packages.
//!
//! Dependencies point one way: `data` and `models` use the graph layer
//! (`memeguard_onnx`); `autodiff` knows nothing of models; `optim` appends update
//! nodes to a differentiated graph; `runtime` runs step graphs; `objectives` and
//! `cli` put them together.
//!
//! No unsafe code, except where a function says why it needs it
//! (`pipeline::feature_cache`: a memory map and glibc's `malloc_trim`).
#![deny(unsafe_code)]

pub mod autodiff;
pub mod data;
pub mod eval;
pub mod graph_spec;
pub mod losses;
pub mod models;
pub mod objectives;
pub mod optim;
pub mod pipeline;
pub mod recipe;
pub mod run;
pub mod runtime;
