//! Loss functions written from standard ONNX ops (cross-entropy, BCE with logits, 2 − 2·cosine).
//! PLACEHOLDER signatures for the integration branch; the real module comes from h/rules-shape.
