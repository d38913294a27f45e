//! Gradient rules, one file per op family. Each file has `register(map)`.

use std::collections::HashMap;

use super::Rule;

pub mod activation;
pub mod conv;
pub mod dropout;
pub mod einsum;
pub mod elementwise;
pub mod indexing;
pub mod loss;
pub mod matmul;
pub mod nondiff;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod resize;
pub mod scan;
pub mod shape_ops;
pub mod slice_pad;
mod window;

/// Registers every rule.
pub(crate) fn register_all(map: &mut HashMap<&'static str, Rule>) {
    elementwise::register(map);
    activation::register(map);
    matmul::register(map);
    einsum::register(map);
    nondiff::register(map);
    reduce::register(map);
    shape_ops::register(map);
    slice_pad::register(map);
    indexing::register(map);
    dropout::register(map);
    conv::register(map);
    pool::register(map);
    resize::register(map);
    norm::register(map);
    loss::register(map);
    scan::register(map);
}
