//! The one map from an ONNX `op_type` to its shape rule. An op missing here gets the
//! element type of its first input and an unknown shape (see [`super::infer_node`]).

use super::{Ctx, Outputs, ShapeMap, conv_pool, elementwise, expand, indexing, losses, matmul, norm, reduce, reshape};
use super::{first_input_values, shape_ops};
use crate::builder::Dim;
use crate::proto::NodeProto;

/// Works out the types of a node's outputs.
pub(super) type OutputsFn = fn(&Ctx) -> Outputs;

/// Works out the contents of a node's first output when it computes with shapes
/// (`Shape`, then `Gather`, `Concat`…): what keeps `batch` through a run-time `Reshape`.
pub(super) type ValuesFn = fn(&NodeProto, &ShapeMap) -> Option<Vec<Dim>>;

/// The shape rule of one op.
pub(super) struct Rule {
    pub outputs: OutputsFn,
    pub values: Option<ValuesFn>,
}

/// The rule for `op`, if there is one.
pub(super) fn rule(op: &str) -> Option<Rule> {
    let (outputs, values): (OutputsFn, Option<ValuesFn>) = match op {
        // elementwise.rs
        "Identity" => (elementwise::same_shape, Some(first_input_values as ValuesFn)),
        "Cast" => (elementwise::cast, Some(first_input_values as ValuesFn)),
        "Neg" | "Abs" | "Exp" | "Log" | "Sqrt" | "Reciprocal" | "Tanh" | "Sigmoid" | "Erf" | "Relu" | "LeakyRelu"
        | "Gelu" | "Softmax" | "LogSoftmax" | "Clip" | "Sign" | "Floor" | "Ceil" | "Round" | "Sin" | "Cos" | "Elu"
        | "Softplus" | "HardSigmoid" | "HardSwish" | "LpNormalization" | "CumSum" | "Trilu" | "ScatterElements"
        | "ScatterND" | "Not" => (elementwise::same_shape, None),
        "Mish" | "Selu" | "InstanceNormalization" | "GroupNormalization" => (elementwise::same_shape, None),
        "IsNaN" => (elementwise::is_nan, None),
        "Add" | "Sub" | "Mul" | "Div" | "Pow" | "Min" | "Max" | "Sum" | "Mean" | "Mod" | "PRelu" => {
            (elementwise::broadcast, None)
        }
        "Equal" | "Less" | "Greater" | "LessOrEqual" | "GreaterOrEqual" | "And" | "Or" | "Xor" => {
            (elementwise::compare, None)
        }
        "Where" => (elementwise::where_, None),
        "CastLike" => (elementwise::cast_like, None),
        "Dropout" => (elementwise::dropout, None),
        // shape_ops.rs
        "Shape" => (shape_ops::shape, Some(shape_ops::shape_values as ValuesFn)),
        "Size" => (shape_ops::size, None),
        "NonZero" => (shape_ops::non_zero, None),
        "Constant" => (shape_ops::constant, None),
        "ConstantOfShape" => (shape_ops::constant_of_shape, None),
        "Range" => (shape_ops::range, None),
        // reshape.rs
        "Reshape" => (reshape::reshape, None),
        "Flatten" => (reshape::flatten, None),
        "Squeeze" => (reshape::squeeze, Some(first_input_values as ValuesFn)),
        "Unsqueeze" => (reshape::unsqueeze, Some(first_input_values as ValuesFn)),
        "Transpose" => (reshape::transpose, None),
        // expand.rs
        "Expand" => (expand::expand, None),
        "Tile" => (expand::tile, None),
        "Pad" => (expand::pad, None),
        // indexing.rs
        "Concat" => (indexing::concat, Some(indexing::concat_values as ValuesFn)),
        "Split" => (indexing::split, None),
        "Slice" => (indexing::slice, Some(indexing::slice_values as ValuesFn)),
        "Gather" => (indexing::gather, Some(indexing::gather_values as ValuesFn)),
        "GatherElements" => (indexing::gather_elements, None),
        "GatherND" => (indexing::gather_nd, None),
        // reduce.rs
        "ReduceSum" | "ReduceMean" | "ReduceMax" | "ReduceMin" | "ReduceL2" | "ReduceProd" | "ReduceLogSumExp"
        | "ReduceSumSquare" | "ReduceL1" => (reduce::reduce, None),
        "ArgMax" | "ArgMin" => (reduce::arg_reduce, None),
        // conv_pool.rs
        "Conv" | "MaxPool" | "AveragePool" => (conv_pool::window, None),
        "ConvTranspose" => (conv_pool::conv_transpose, None),
        "GlobalAveragePool" | "GlobalMaxPool" => (conv_pool::global_pool, None),
        "Resize" => (conv_pool::resize, None),
        // matmul.rs
        "MatMul" => (matmul::matmul, None),
        "Gemm" => (matmul::gemm, None),
        // norm.rs
        "BatchNormalization" => (norm::batch_norm, None),
        "LayerNormalization" => (norm::layer_norm, None),
        // losses.rs
        "SoftmaxCrossEntropyLoss" | "NegativeLogLikelihoodLoss" => (losses::cross_entropy, None),
        _ => return None,
    };
    Some(Rule { outputs, values })
}
