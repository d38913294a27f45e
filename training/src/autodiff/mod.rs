//! Reverse-mode automatic differentiation of ONNX graphs into standard ONNX ops.
