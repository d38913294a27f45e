//! Gradient rules, one file per op family. Each file has `register(map)`.

use std::collections::HashMap;

use super::Rule;

pub mod activation;
pub mod elementwise;
pub mod matmul;
pub mod nondiff;
pub mod reduce;

/// Registers every rule.
pub(crate) fn register_all(map: &mut HashMap<&'static str, Rule>) {
    elementwise::register(map);
    activation::register(map);
    matmul::register(map);
    nondiff::register(map);
    reduce::register(map);
}
