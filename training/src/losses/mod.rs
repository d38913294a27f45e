//! Loss functions written from standard ONNX ops (cross-entropy, BCE with logits, 2 − 2·cosine).
