//! Running training-step graphs in ONNX Runtime: parameter store, devices, checkpoints, export.
