//! Generates the ONNX protobuf types from the vendored `proto/onnx.proto`
//! with `protox` (a pure-Rust protobuf compiler), so no system `protoc` is needed.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let fds = protox::compile(["proto/onnx.proto"], ["proto"]).expect("compile onnx.proto");
    prost_build::Config::new().compile_fds(fds).expect("generate Rust types from onnx.proto");
}
