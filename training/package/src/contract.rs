//! The model's side of the package contract: the graph inputs and outputs every
//! package's `model.onnx` declares (docs/architecture.md, "The model package").

use memeguard_onnx::builder::{value_dims, value_dtype};
use memeguard_onnx::proto::ModelProto;
/// The default-domain opset a model imports, if any (the ONNX layer's, re-exported where
/// the package checks its manifest against the graph).
pub use memeguard_onnx::upgrade::default_opset;
use memeguard_onnx::{DataType, Dim};

/// Input: RGB pixels already resized to the manifest size, uint8 `[N, H, W, 3]`.
pub const PIXEL_VALUES: &str = "pixel_values";
/// Input: token ids, int64 `[N, L]`.
pub const INPUT_IDS: &str = "input_ids";
/// Input: 1 for real tokens, 0 for padding, int64 `[N, L]`.
pub const ATTENTION_MASK: &str = "attention_mask";
/// Output: probability that the meme is hateful, float32 `[N]`.
pub const PROBABILITY: &str = "probability";
/// Optional output: the logit behind `probability`, float32 `[N]`.
pub const LOGITS: &str = "logits";
/// Optional output: float32 `[N, D]`.
pub const IMAGE_EMBEDDING: &str = "image_embedding";
/// Optional output: float32 `[N, D]`.
pub const TEXT_EMBEDDING: &str = "text_embedding";

/// Declared inputs: name, element type, dims (`None` = any size, usually the batch).
fn expected_inputs(size: u32, max_length: usize) -> [(&'static str, DataType, Vec<Option<i64>>); 3] {
    let (s, l) = (i64::from(size), max_length as i64);
    [
        (PIXEL_VALUES, DataType::Uint8, vec![None, Some(s), Some(s), Some(3)]),
        (INPUT_IDS, DataType::Int64, vec![None, Some(l)]),
        (ATTENTION_MASK, DataType::Int64, vec![None, Some(l)]),
    ]
}

/// Declared outputs: name, element type, rank, required.
const EXPECTED_OUTPUTS: [(&str, DataType, usize, bool); 4] = [
    (PROBABILITY, DataType::Float, 1, true),
    (LOGITS, DataType::Float, 1, false),
    (IMAGE_EMBEDDING, DataType::Float, 2, false),
    (TEXT_EMBEDDING, DataType::Float, 2, false),
];

/// Everything in `model`'s declared interface that breaks the contract for a package
/// with square images of `size` and texts of `max_length` tokens (empty when it obeys).
/// A fixed dimension must match the manifest; a symbolic one is accepted.
pub fn contract_problems(model: &ModelProto, size: u32, max_length: usize) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(graph) = model.graph.as_ref() else {
        return vec!["the model has no graph".into()];
    };
    let initialized = |name: &str| graph.initializer.iter().any(|t| t.name.as_deref() == Some(name));
    for (name, dtype, dims) in expected_inputs(size, max_length) {
        let Some(input) = graph.input.iter().find(|v| v.name.as_deref() == Some(name)) else {
            problems.push(format!(
                "input `{name}` is missing (inputs are {})",
                names(graph.input.iter().filter_map(|v| v.name.as_deref()))
            ));
            continue;
        };
        check_value("input", name, value_dtype(input), value_dims(input), dtype, &dims, &mut problems);
    }
    let known: Vec<&str> = expected_inputs(size, max_length).iter().map(|(n, _, _)| *n).collect();
    for input in &graph.input {
        let name = input.name.as_deref().unwrap_or("");
        if !known.contains(&name) && !initialized(name) {
            problems.push(format!("input `{name}` is not part of the contract and has no default value"));
        }
    }
    for (name, dtype, rank, required) in EXPECTED_OUTPUTS {
        match graph.output.iter().find(|v| v.name.as_deref() == Some(name)) {
            None if required => problems.push(format!(
                "output `{name}` is missing (outputs are {})",
                names(graph.output.iter().filter_map(|v| v.name.as_deref()))
            )),
            None => {}
            Some(output) => check_value(
                "output",
                name,
                value_dtype(output),
                value_dims(output),
                dtype,
                &vec![None; rank],
                &mut problems,
            ),
        }
    }
    problems
}

fn check_value(
    kind: &str,
    name: &str,
    got_type: Option<DataType>,
    got_dims: Option<Vec<Dim>>,
    want_type: DataType,
    want_dims: &[Option<i64>],
    problems: &mut Vec<String>,
) {
    if got_type != Some(want_type) {
        let got = got_type.map_or("no tensor type".to_string(), |t| type_name(t).to_string());
        problems.push(format!("{kind} `{name}` has element type {got}, expected {}", type_name(want_type)));
    }
    let Some(dims) = got_dims else {
        problems.push(format!("{kind} `{name}` declares no shape, expected rank {}", want_dims.len()));
        return;
    };
    if dims.len() != want_dims.len() {
        problems.push(format!("{kind} `{name}` has rank {}, expected rank {}", dims.len(), want_dims.len()));
        return;
    }
    for (axis, (got, want)) in dims.iter().zip(want_dims).enumerate() {
        if let (Dim::Known(got), Some(want)) = (got, want)
            && got != want
        {
            problems.push(format!("{kind} `{name}` has size {got} on axis {axis}, the manifest needs {want}"));
        }
    }
}

fn type_name(t: DataType) -> &'static str {
    match t {
        DataType::Uint8 => "uint8",
        DataType::Int64 => "int64",
        DataType::Int32 => "int32",
        DataType::Float => "float32",
        DataType::Double => "float64",
        DataType::Float16 => "float16",
        DataType::Bool => "bool",
        _ => "another type",
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let list: Vec<String> = it.map(|n| format!("`{n}`")).collect();
    if list.is_empty() { "none".into() } else { list.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use memeguard_onnx::GraphBuilder;

    fn model(pixel_type: DataType, ids_name: &str, l: i64) -> ModelProto {
        let mut g = GraphBuilder::new("t");
        let p = g.input(PIXEL_VALUES, pixel_type, &[Dim::from("n"), 4.into(), 4.into(), 3.into()]);
        g.input(ids_name, DataType::Int64, &[Dim::from("n"), l.into()]);
        g.input(ATTENTION_MASK, DataType::Int64, &[Dim::from("n"), "l".into()]);
        let y = g.op("ReduceMean", &[&p], &[]);
        g.named_output(&y, PROBABILITY, DataType::Float, &[Dim::from("n")]);
        g.build()
    }

    #[test]
    fn a_conforming_interface_passes() {
        assert_eq!(contract_problems(&model(DataType::Uint8, INPUT_IDS, 6), 4, 6), Vec::<String>::new());
    }

    #[test]
    fn each_breach_is_named() {
        let text = contract_problems(&model(DataType::Float, "token_ids", 6), 5, 6).join("\n");
        for needle in [
            "input `pixel_values` has element type float32, expected uint8",
            "size 4 on axis 1, the manifest needs 5",
            "input `input_ids` is missing",
            "input `token_ids` is not part of the contract",
        ] {
            assert!(text.contains(needle), "`{needle}` not in:\n{text}");
        }
        let text = contract_problems(&model(DataType::Uint8, INPUT_IDS, 6), 4, 7).join("\n");
        assert!(text.contains("input `input_ids` has size 6 on axis 1, the manifest needs 7"), "{text}");
    }
}
