//! Export of the inference model: the `Mode::Infer` build of the model with the trained
//! parameter and buffer values substituted for its initializers.

use std::collections::BTreeMap;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{Tensor, check_model};

use super::RuntimeError;
use crate::graph_spec::ModelGraph;

/// The inference model of `infer` (built in `Mode::Infer`) with every parameter and buffer
/// initializer replaced by its trained value from `values`. Every one of them must find a
/// value of the same type and shape, or the export fails naming all that did not.
pub fn export_inference(infer: &ModelGraph, values: &BTreeMap<String, Tensor>) -> Result<ModelProto, RuntimeError> {
    let mut model = infer.model.clone();
    let graph = model.graph.as_mut().ok_or_else(|| RuntimeError::Export("the inference model has no graph".into()))?;
    let mut problems = Vec::new();
    let names = infer.params.iter().map(|p| p.name.as_str()).chain(infer.buffers.iter().map(|b| b.name.as_str()));
    for name in names {
        let Some(init) = graph.initializer.iter_mut().find(|t| t.name.as_deref() == Some(name)) else {
            problems.push(format!(
                "`{name}` is listed as a parameter or buffer but is not an initializer of the inference graph"
            ));
            continue;
        };
        let Some(value) = values.get(name) else {
            problems.push(format!("`{name}` has no trained value"));
            continue;
        };
        if init.dims != value.dims || init.data_type != Some(value.data_type() as i32) {
            problems.push(format!(
                "`{name}`: the inference graph has {:?} {:?}, the trained value is {:?} {:?}",
                init.data_type.and_then(|t| memeguard_onnx::DataType::try_from(t).ok()),
                init.dims,
                value.data_type(),
                value.dims
            ));
            continue;
        }
        *init = value.to_proto(name);
    }
    if !problems.is_empty() {
        return Err(RuntimeError::Export(problems.join("; ")));
    }
    check_model(&model, true).map_err(|e| RuntimeError::Export(e.to_string()))?;
    Ok(model)
}
