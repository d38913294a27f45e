//! The model catalog behind `memeguard-train models`.
