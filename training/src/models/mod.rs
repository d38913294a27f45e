//! Models as ONNX graphs: ResNet, ViT, the text transformer, heads and fusion classifiers.
