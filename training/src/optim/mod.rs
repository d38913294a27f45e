//! Optimizers as graph nodes (SGD, AdamW, clipping, accumulation) and schedules as pure functions.
