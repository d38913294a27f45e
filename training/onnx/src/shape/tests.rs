use super::*;
use crate::{Attr, GraphBuilder, dims};

#[test]
fn infers_a_small_cnn_and_mlp() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DataType::Float, &dims!["batch", 3, 32, 32]);
    let w = b.initializer("w", &Tensor::f32(vec![8, 3, 3, 3], vec![0.0; 216]));
    let c = b.op("Conv", &[&x, &w], &[("strides", Attr::Ints(vec![2, 2])), ("pads", Attr::Ints(vec![1, 1, 1, 1]))]);
    let p = b.op("MaxPool", &[&c], &[("kernel_shape", Attr::Ints(vec![2, 2])), ("strides", Attr::Ints(vec![2, 2]))]);
    let g = b.op("GlobalAveragePool", &[&p], &[]);
    let f = b.op("Flatten", &[&g], &[]);
    let shape = b.const_i64s("shape", &[0, 2, -1]);
    let r = b.op("Reshape", &[&f, &shape], &[]);
    let m = b.initializer("m", &Tensor::f32(vec![4, 5], vec![0.0; 20]));
    let y = b.op("MatMul", &[&r, &m], &[]);
    let axes = b.const_i64s("axes", &[1]);
    let s = b.op("ReduceSum", &[&y, &axes], &[("keepdims", Attr::Int(0))]);
    let cast = b.op("Cast", &[&s], &[("to", Attr::Int(DataType::Double as i64))]);
    let model = b.build();
    let map = infer_shapes(&model);
    assert_eq!(map.dims(&c).unwrap(), &dims!["batch", 8, 16, 16][..]);
    assert_eq!(map.dims(&p).unwrap(), &dims!["batch", 8, 8, 8][..]);
    assert_eq!(map.dims(&f).unwrap(), &dims!["batch", 8][..]);
    assert_eq!(map.dims(&r).unwrap(), &dims!["batch", 2, 4][..]);
    assert_eq!(map.dims(&y).unwrap(), &dims!["batch", 2, 5][..]);
    assert_eq!(map.dims(&s).unwrap(), &dims!["batch", 5][..]);
    assert_eq!(map.dtype(&cast), Some(DataType::Double));
}

#[test]
fn run_time_shapes_keep_ranks() {
    // Shape's start/end set its length; shapes fed at run time (not traced from
    // other shapes) still give Expand, Reshape and Slice their ranks.
    let mut b = GraphBuilder::new("g");
    let tokens = b.input("tokens", DataType::Float, &dims!["batch", 4, 8]);
    let target = b.input("target", DataType::Int64, &dims![3]);
    let cls = b.initializer("cls", &Tensor::f32(vec![1, 1, 8], vec![0.0; 8]));
    let n = b.op("Shape", &[&tokens], &[("start", Attr::Int(0)), ("end", Attr::Int(1))]);
    let tail = b.op("Shape", &[&tokens], &[("start", Attr::Int(-2))]);
    let e = b.op("Expand", &[&cls, &target], &[]);
    let r = b.op("Reshape", &[&tokens, &target], &[]);
    let s = b.op("Slice", &[&tokens, &n, &n], &[]);
    let map = infer_shapes(&b.build());
    assert_eq!(map.dims(&n).unwrap(), &dims![1][..]);
    assert_eq!(map.dims(&tail).unwrap(), &dims![2][..]);
    let e = map.dims(&e).unwrap();
    assert!(is_unknown(&e[0]) && is_unknown(&e[1]) && e[0] != e[1], "{e:?}");
    // Unknown sizes of one value are not claimed equal.
    let sd = map.dims(&s).unwrap();
    assert!(sd.iter().all(is_unknown) && sd[0] != sd[1] && sd[1] != sd[2], "{sd:?}");
    assert_eq!(e[2], Dim::Known(8));
    assert_eq!(map.get(&r).unwrap().rank(), Some(3));
    assert_eq!(map.get(&s).unwrap().rank(), Some(3));
}

#[test]
fn shapes_computed_at_run_time_keep_symbolic_dims() {
    // cls token [1,1,D] expanded to [batch,1,D] with a shape made from Shape(x).
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DataType::Float, &dims!["batch", 4, 8]);
    let cls = b.initializer("cls", &Tensor::f32(vec![1, 1, 8], vec![0.0; 8]));
    let s = b.op("Shape", &[&x], &[]);
    let i0 = b.const_i64s("i0", &[0]);
    let n = b.op("Gather", &[&s, &i0], &[("axis", Attr::Int(0))]);
    let rest = b.const_i64s("rest", &[1, 8]);
    let target = b.op("Concat", &[&n, &rest], &[("axis", Attr::Int(0))]);
    let e = b.op("Expand", &[&cls, &target], &[]);
    let flat = b.const_i64s("flat", &[0, -1]);
    let t2 = b.op("Concat", &[&n, &flat], &[("axis", Attr::Int(0))]);
    let r = b.op("Reshape", &[&x, &t2], &[]);
    let map = infer_shapes(&b.build());
    assert_eq!(map.dims(&e).unwrap(), &dims!["batch", 1, 8][..]);
    // 0 copies `4`, and -1 is what is left of batch·4·8 once batch cancels out.
    assert_eq!(map.dims(&r).unwrap(), &dims!["batch", 4, 8][..]);
}

#[test]
fn a_minus_one_that_is_the_one_named_size_left_keeps_its_name() {
    // `input_ids.view(-1, L)` as exporters write it: [-1] ++ Shape(ids)[-1:].
    let mut b = GraphBuilder::new("g");
    let ids = b.input("ids", DataType::Int64, &dims!["batch", "sequence"]);
    let last = b.op("Shape", &[&ids], &[("start", Attr::Int(-1))]);
    let minus_one = b.const_i64s("minus_one", &[-1]);
    let target = b.op("Concat", &[&minus_one, &last], &[("axis", Attr::Int(0))]);
    let r = b.op("Reshape", &[&ids, &target], &[]);
    // And a constant target: [-1, 6] of [batch, 2, 3].
    let x = b.input("x", DataType::Float, &dims!["batch", 2, 3]);
    let six = b.const_i64s("six", &[-1, 6]);
    let flat = b.op("Reshape", &[&x, &six], &[]);
    let map = infer_shapes(&b.build());
    assert_eq!(map.dims(&r).unwrap(), &dims!["batch", "sequence"][..]);
    assert_eq!(map.dims(&flat).unwrap(), &dims!["batch", 6][..]);
}

#[test]
fn a_slice_to_a_run_time_length_keeps_the_axes_it_does_not_slice() {
    // position_ids[:, :L] with L read from the input: [1, ?].
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DataType::Float, &dims!["batch", "len", 4]);
    let ids = b.initializer("ids", &Tensor::i64(vec![1, 77], (0..77).collect()));
    let len = b.op("Shape", &[&x], &[("start", Attr::Int(1)), ("end", Attr::Int(2))]);
    let (zero, one) = (b.const_i64s("zero", &[0]), b.const_i64s("one", &[1]));
    let s = b.op("Slice", &[&ids, &zero, &len, &one], &[]);
    let map = infer_shapes(&b.build());
    let d = map.dims(&s).unwrap();
    assert_eq!(d[0], Dim::Known(1));
    assert!(is_unknown(&d[1]), "{d:?}");
}

#[test]
fn conv_transpose_inverts_the_conv_size() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DataType::Double, &dims!["batch", 6, 3, 4]);
    let w = b.initializer("w", &Tensor::f32(vec![6, 2, 3, 3], vec![0.0; 108]));
    let attrs = [
        ("strides", Attr::Ints(vec![2, 2])),
        ("pads", Attr::Ints(vec![1, 0, 1, 1])),
        ("output_padding", Attr::Ints(vec![1, 0])),
        ("group", Attr::Int(3)),
    ];
    let y = b.op("ConvTranspose", &[&x, &w], &attrs);
    let map = infer_shapes(&b.build());
    assert_eq!(map.dims(&y).unwrap(), &dims!["batch", 6, 6, 8][..]);
    assert_eq!(map.dtype(&y), Some(DataType::Double));
}

#[test]
fn expand_to_a_run_time_shape_keeps_the_rank() {
    // A shape whose values are unknown until run time (here fed as an input): its
    // length still gives the rank.
    let mut b = GraphBuilder::new("g");
    let target = b.input("target", DataType::Int64, &dims![3]);
    let cls = b.initializer("cls", &Tensor::f32(vec![1, 1, 8], vec![0.0; 8]));
    let y = b.op("Expand", &[&cls, &target], &[]);
    let map = infer_shapes(&b.build());
    assert_eq!(map.dims(&y).map(|d| d.len()), Some(3));
    assert_eq!(map.dims(&y).unwrap()[2], Dim::Known(8));
}

#[test]
fn declared_shapes_survive_where_inference_knows_less() {
    // Reshape to a shape fed at run time whose length is not known either: inference
    // alone loses even the rank; the declared value_info and graph output keep theirs.
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DataType::Float, &dims!["batch", 12]);
    let target = b.input("target", DataType::Int64, &dims!["n"]);
    let r = b.op("Reshape", &[&x, &target], &[]);
    let c = b.op("Cast", &[&r], &[("to", Attr::Int(DataType::Double as i64))]);
    let u = b.op("Mystery", &[&x], &[]);
    b.output(&c, DataType::Double, &dims!["batch", 3, "?"]);
    let mut m = b.build();
    let g = m.graph.as_mut().unwrap();
    g.value_info.push(crate::builder::value_info(&r, DataType::Float, &dims!["b", 3, 4]));
    g.value_info.push(crate::builder::value_info(&u, DataType::Int32, &dims!["batch", 5]));
    assert_eq!(infer_shapes(&b_free(&m)).get(&r).unwrap().dims, None, "inference alone knows nothing");
    let map = infer_shapes(&m);
    assert_eq!(map.dims(&r).unwrap(), &dims!["b", 3, 4][..]);
    // Cast passes the (declared) dims on, and its own declaration adds nothing new.
    assert_eq!(map.dims(&c).unwrap(), &dims!["b", 3, 4][..]);
    assert_eq!(map.dtype(&c), Some(DataType::Double));
    // An op inference has no rule for: the declared type and shape stand.
    assert_eq!(map.get(&u).unwrap(), &ValueType { dtype: DataType::Int32, dims: Some(dims!["batch", 5]) });
}

/// `m` without its declared value_info and graph outputs.
fn b_free(m: &ModelProto) -> ModelProto {
    let mut m = m.clone();
    let g = m.graph.as_mut().unwrap();
    g.value_info.clear();
    g.output.clear();
    m
}

#[test]
fn inferred_sizes_refine_declared_ones() {
    let d = ValueType { dtype: DataType::Float, dims: Some(dims!["batch", "?", 4]) };
    let i = ValueType { dtype: DataType::Float, dims: Some(vec![unknown(), Dim::Known(7), unknown()]) };
    assert_eq!(merge_declared(d, i).dims.unwrap(), dims!["batch", 7, 4]);
}

#[test]
fn loss_ops_and_gather_nd() {
    let mut b = GraphBuilder::new("g");
    let x = b.input("x", DataType::Double, &dims!["n", 5, 7]);
    let labels = b.input("labels", DataType::Int64, &dims!["n", 7]);
    let none = b.node("SoftmaxCrossEntropyLoss", &[&x, &labels], 2, &[("reduction", Attr::Str("none".into()))]);
    let mean = b.op("NegativeLogLikelihoodLoss", &[&x, &labels], &[]);
    let idx = b.input("idx", DataType::Int64, &dims!["n", 3, 1]);
    let g = b.op("GatherND", &[&x, &idx], &[("batch_dims", Attr::Int(1))]);
    let map = infer_shapes(&b.build());
    assert_eq!(map.get(&none[0]).unwrap(), &ValueType { dtype: DataType::Double, dims: Some(dims!["n", 7]) });
    assert_eq!(map.dims(&none[1]).unwrap(), &dims!["n", 5, 7][..]);
    assert_eq!(map.get(&mean).unwrap(), &ValueType { dtype: DataType::Double, dims: Some(vec![]) });
    assert_eq!(map.dims(&g).unwrap(), &dims!["n", 3, 7][..]);
}

#[test]
fn broadcasting_follows_numpy() {
    let a = dims!["n", 1, 4];
    let b = dims![3, 1];
    assert_eq!(broadcast_shapes(&[&a, &b]), dims!["n", 3, 4]);
}
