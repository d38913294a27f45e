//! CLIP's towers as `transformers` computes them (`CLIPVisionTransformer`,
//! `CLIPTextTransformer`), under their tensor names.
//!
//! Vision: patch embedding (convolution without bias), class embedding, position
//! embeddings, `pre_layrnorm`, pre-norm encoder layers, `post_layernorm` on the class
//! token, `visual_projection`. Text: token and position embeddings, the same layers
//! under a causal mask that also hides padding, `final_layer_norm`, the features at the
//! end-of-text token, `text_projection`.

use memeguard_onnx::{Attr, DataType, Tensor};

use crate::models::ModelError;
use crate::models::hf::config::{ClipEncoderConfig, ClipTextConfig, ClipVisionConfig};
use crate::models::hf::layers::{
    AttentionNames, Loader, activation, attention, causal_padding_mask, embed, first_token, layer_norm, linear,
    pick_rows, positions,
};
use crate::models::hf::{EncoderFeatures, TowerOutputs};
use crate::models::net::Net;
use crate::models::source::Trainable;

/// The vision tower on normalised `pixels` `[N, C, S, S]`. `projection_dim` is
/// `Some` when the folder has `visual_projection.weight`.
pub(crate) fn vision(
    net: &mut Net,
    l: &mut Loader,
    cfg: &ClipVisionConfig,
    projection_dim: Option<usize>,
    pixels: &str,
    trainable: Trainable,
) -> Result<TowerOutputs, ModelError> {
    let e = &cfg.encoder;
    let d = e.hidden_size;
    let p = cfg.patch_size;
    let t = cfg.tokens();
    let embeddings = trainable == Trainable::All;
    let w = l.param(net, "vision_model.embeddings.patch_embedding.weight", &[d, cfg.num_channels, p, p], embeddings)?;
    let (p64, d64) = (p as i64, d as i64);
    let x = net.b.op(
        "Conv",
        &[pixels, &w],
        &[("kernel_shape", Attr::Ints(vec![p64, p64])), ("strides", Attr::Ints(vec![p64, p64]))],
    );
    // [N, D, g, g] → [N, D, g²] → [N, g², D], then a zero row in front for the class
    // token: [N, T, D].
    let flat = net.const_i64s("patch_flat", &[0, d64, -1]);
    let x = net.b.op("Reshape", &[&x, &flat], &[]);
    let x = net.b.op("Transpose", &[&x], &[("perm", Attr::Ints(vec![0, 2, 1]))]);
    let front = net.const_i64s("pad_front", &[0, 1, 0, 0, 0, 0]);
    let tokens = net.b.op("Pad", &[&x, &front], &[]);
    // [class; 0; …; 0] + position embeddings: one static [T, D] addend, the same as
    // concatenating an expanded class embedding, with no batch-sized Expand.
    let class = l.param(net, "vision_model.embeddings.class_embedding", &[d], embeddings)?;
    let row = net.const_i64s("class_row", &[1, d64]);
    let class = net.b.op("Reshape", &[&class, &row], &[]);
    let back = net.const_i64s("pad_back", &[0, 0, t as i64 - 1, 0]);
    let class = net.b.op("Pad", &[&class, &back], &[]);
    let pos = l.param(net, "vision_model.embeddings.position_embedding.weight", &[t, d], embeddings)?;
    let start = net.b.op("Add", &[&class, &pos], &[]);
    let x = net.b.op("Add", &[&tokens, &start], &[]);
    let mut x = layer_norm(net, l, "vision_model.pre_layrnorm", &x, d, e.eps, embeddings)?;

    for i in 0..e.layers {
        let train = trainable.block_trains(i, e.layers);
        x = encoder_layer(net, l, &format!("vision_model.encoder.layers.{i}"), &x, e, None, train)?;
    }
    let last_hidden_state = x;
    let tail = trainable.tail_trains();
    let cls = first_token(net, &last_hidden_state);
    let pooled = layer_norm(net, l, "vision_model.post_layernorm", &cls, d, e.eps, tail)?;
    let projected = match projection_dim {
        Some(k) => {
            Some(EncoderFeatures { value: linear(net, l, "visual_projection", &pooled, d, k, false, tail)?, dim: k })
        }
        None => None,
    };
    Ok(TowerOutputs { last_hidden_state, pooled: EncoderFeatures { value: pooled, dim: d }, projected })
}

/// The text tower on `input_ids` and `attention_mask` (int64 `[N, L]`, L ≤
/// `max_position_embeddings`). `projection_dim` is `Some` when the folder has
/// `text_projection.weight`.
pub(crate) fn text(
    net: &mut Net,
    l: &mut Loader,
    cfg: &ClipTextConfig,
    projection_dim: Option<usize>,
    input_ids: &str,
    attention_mask: &str,
    trainable: Trainable,
) -> Result<TowerOutputs, ModelError> {
    let e = &cfg.encoder;
    let d = e.hidden_size;
    let embeddings = trainable == Trainable::All;
    let table = l.param(net, "text_model.embeddings.token_embedding.weight", &[cfg.vocab_size, d], embeddings)?;
    let tokens = embed(net, &table, input_ids);
    let pos_table =
        l.param(net, "text_model.embeddings.position_embedding.weight", &[cfg.max_position_embeddings, d], embeddings)?;
    let position = positions(net, input_ids);
    let pos = embed(net, &pos_table, &position);
    let mut x = net.b.op("Add", &[&tokens, &pos], &[]);

    let mask = causal_padding_mask(net, &position, attention_mask);
    for i in 0..e.layers {
        let train = trainable.block_trains(i, e.layers);
        x = encoder_layer(net, l, &format!("text_model.encoder.layers.{i}"), &x, e, Some(&mask), train)?;
    }
    let tail = trainable.tail_trains();
    let last_hidden_state = layer_norm(net, l, "text_model.final_layer_norm", &x, d, e.eps, tail)?;

    // transformers: the legacy configs (eos_token_id 2) pool at the largest id (the
    // end-of-text id was the vocabulary's last); others at the first end-of-text id.
    let as_float = ("to", Attr::Int(DataType::Float as i64));
    let score = if cfg.eos_token_id == 2 {
        net.b.op("Cast", &[input_ids], &[as_float])
    } else {
        let eos = net.b.constant("eos_id", Tensor::scalar_i64(cfg.eos_token_id));
        let is_eos = net.b.op("Equal", &[input_ids, &eos], &[]);
        net.b.op("Cast", &[&is_eos], &[as_float])
    };
    // ArgMax picks the first of equal maxima, as torch.argmax does.
    let index = net.b.op("ArgMax", &[&score], &[("axis", Attr::Int(1)), ("keepdims", Attr::Int(1))]);
    let pooled = pick_rows(net, &last_hidden_state, &position, &index, d);
    let projected = match projection_dim {
        Some(k) => {
            Some(EncoderFeatures { value: linear(net, l, "text_projection", &pooled, d, k, false, tail)?, dim: k })
        }
        None => None,
    };
    Ok(TowerOutputs { last_hidden_state, pooled: EncoderFeatures { value: pooled, dim: d }, projected })
}

/// `CLIPEncoderLayer`: `x + attn(ln1(x))`, then `h + fc2(act(fc1(ln2(h))))`.
fn encoder_layer(
    net: &mut Net,
    l: &mut Loader,
    name: &str,
    x: &str,
    e: &ClipEncoderConfig,
    mask: Option<&str>,
    train: bool,
) -> Result<String, ModelError> {
    let d = e.hidden_size;
    let h = layer_norm(net, l, &format!("{name}.layer_norm1"), x, d, e.eps, train)?;
    let names = AttentionNames {
        q: format!("{name}.self_attn.q_proj"),
        k: format!("{name}.self_attn.k_proj"),
        v: format!("{name}.self_attn.v_proj"),
        out: format!("{name}.self_attn.out_proj"),
    };
    let h = attention(net, l, &names, &h, d, e.heads, mask, e.attention_dropout, train)?;
    let x = net.b.op("Add", &[x, &h], &[]);
    let h = layer_norm(net, l, &format!("{name}.layer_norm2"), &x, d, e.eps, train)?;
    let h = linear(net, l, &format!("{name}.mlp.fc1"), &h, d, e.intermediate_size, true, train)?;
    let h = activation(net, e.act, &h);
    let h = linear(net, l, &format!("{name}.mlp.fc2"), &h, e.intermediate_size, d, true, train)?;
    Ok(net.b.op("Add", &[&x, &h], &[]))
}
