//! HTTP routes, one module per group, each with its own `router()`.

pub mod decisions;
pub mod moderations;
pub mod openapi;
pub mod ops;
