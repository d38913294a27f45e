//! BERT, RoBERTa and DistilBERT text encoders as `transformers` computes them
//! (`BertModel`, `RobertaModel`, `DistilBertModel`), under their tensor names.
//!
//! Embeddings: word + position (+ token type 0 for BERT and RoBERTa), LayerNorm.
//! RoBERTa numbers positions from `padding_idx + 1` and gives padding `padding_idx`
//! (`create_position_ids_from_input_ids`). Post-norm layers with a padding mask.
//! Pooled output: BERT and RoBERTa's pooler (dense + tanh on the first token) when the
//! folder has it, else the first token; DistilBERT the first token.

use memeguard_onnx::Tensor;

use crate::models::ModelError;
use crate::models::hf::config::{BertConfig, BertFlavour};
use crate::models::hf::layers::{
    AttentionNames, Loader, activation, attention, embed, first_token, layer_norm, linear, padding_mask, positions,
    zeros_like_ids,
};
use crate::models::hf::{EncoderFeatures, TowerOutputs};
use crate::models::layers::dropout;
use crate::models::net::Net;
use crate::models::source::Trainable;

/// The pooler's weight: its presence decides the pooled output.
const POOLER_WEIGHT: &str = "pooler.dense.weight";

/// The encoder on `input_ids` and `attention_mask` (int64 `[N, L]`).
pub(crate) fn text(
    net: &mut Net,
    l: &mut Loader,
    cfg: &BertConfig,
    input_ids: &str,
    attention_mask: &str,
    trainable: Trainable,
) -> Result<TowerOutputs, ModelError> {
    let d = cfg.hidden_size;
    let embeddings = trainable == Trainable::All;
    let table = l.param(net, "embeddings.word_embeddings.weight", &[cfg.vocab_size, d], embeddings)?;
    let mut x = embed(net, &table, input_ids);
    let pos_table =
        l.param(net, "embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, d], embeddings)?;
    let position = match cfg.flavour {
        BertFlavour::Roberta => roberta_positions(net, input_ids, cfg.pad_token_id),
        BertFlavour::Bert | BertFlavour::DistilBert => positions(net, input_ids),
    };
    let pos = embed(net, &pos_table, &position);
    x = net.b.op("Add", &[&x, &pos], &[]);
    if cfg.flavour != BertFlavour::DistilBert {
        let types = l.param(net, "embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, d], embeddings)?;
        let zeros = zeros_like_ids(net, input_ids);
        let token_type = embed(net, &types, &zeros);
        x = net.b.op("Add", &[&x, &token_type], &[]);
    }
    let x = layer_norm(net, l, "embeddings.LayerNorm", &x, d, cfg.eps, embeddings)?;
    let mut x = dropout(net, &x, cfg.hidden_dropout);

    let mask = padding_mask(net, attention_mask);
    for i in 0..cfg.layers {
        let train = trainable.block_trains(i, cfg.layers);
        x = layer(net, l, cfg, i, &x, &mask, train)?;
    }
    let last_hidden_state = x;
    let first = first_token(net, &last_hidden_state);
    let pooled = if cfg.flavour != BertFlavour::DistilBert && l.has(POOLER_WEIGHT) {
        let tail = trainable.tail_trains();
        let h = linear(net, l, "pooler.dense", &first, d, d, true, tail)?;
        net.b.op("Tanh", &[&h], &[])
    } else {
        first
    };
    Ok(TowerOutputs { last_hidden_state, pooled: EncoderFeatures { value: pooled, dim: d }, projected: None })
}

/// RoBERTa: `cumsum(ids ≠ pad) · (ids ≠ pad) + pad`.
fn roberta_positions(net: &mut Net, ids: &str, pad: i64) -> String {
    let pad = net.b.constant("padding_idx", Tensor::scalar_i64(pad));
    let is_pad = net.b.op("Equal", &[ids, &pad], &[]);
    let real = net.b.op("Not", &[&is_pad], &[]);
    let real = net.b.op("Cast", &[&real], &[("to", memeguard_onnx::Attr::Int(memeguard_onnx::DataType::Int64 as i64))]);
    let axis1 = net.b.constant("axis1_i64", Tensor::scalar_i64(1));
    let counts = net.b.op("CumSum", &[&real, &axis1], &[]);
    let counts = net.b.op("Mul", &[&counts, &real], &[]);
    net.b.op("Add", &[&counts, &pad], &[])
}

/// Where one post-norm layer's tensors live.
struct LayerNames {
    attention: AttentionNames,
    attention_norm: String,
    ffn_in: String,
    ffn_out: String,
    output_norm: String,
}

impl LayerNames {
    /// `BertLayer` (BERT, RoBERTa) or DistilBERT's `TransformerBlock`.
    fn of(flavour: BertFlavour, i: usize) -> Self {
        match flavour {
            BertFlavour::Bert | BertFlavour::Roberta => {
                let name = format!("encoder.layer.{i}");
                LayerNames {
                    attention: AttentionNames {
                        q: format!("{name}.attention.self.query"),
                        k: format!("{name}.attention.self.key"),
                        v: format!("{name}.attention.self.value"),
                        out: format!("{name}.attention.output.dense"),
                    },
                    attention_norm: format!("{name}.attention.output.LayerNorm"),
                    ffn_in: format!("{name}.intermediate.dense"),
                    ffn_out: format!("{name}.output.dense"),
                    output_norm: format!("{name}.output.LayerNorm"),
                }
            }
            BertFlavour::DistilBert => {
                let name = format!("transformer.layer.{i}");
                LayerNames {
                    attention: AttentionNames {
                        q: format!("{name}.attention.q_lin"),
                        k: format!("{name}.attention.k_lin"),
                        v: format!("{name}.attention.v_lin"),
                        out: format!("{name}.attention.out_lin"),
                    },
                    attention_norm: format!("{name}.sa_layer_norm"),
                    ffn_in: format!("{name}.ffn.lin1"),
                    ffn_out: format!("{name}.ffn.lin2"),
                    output_norm: format!("{name}.output_layer_norm"),
                }
            }
        }
    }
}

/// One post-norm layer: `h = LN(x + attn(x))`, then `LN(h + ffn_out(act(ffn_in(h))))`.
/// BERT and RoBERTa drop out the attention output too; DistilBERT only the FFN's.
fn layer(
    net: &mut Net,
    l: &mut Loader,
    cfg: &BertConfig,
    i: usize,
    x: &str,
    mask: &str,
    train: bool,
) -> Result<String, ModelError> {
    let (d, eps) = (cfg.hidden_size, cfg.eps);
    let names = LayerNames::of(cfg.flavour, i);
    let a = attention(net, l, &names.attention, x, d, cfg.heads, Some(mask), cfg.attention_dropout, train)?;
    let a = if cfg.flavour == BertFlavour::DistilBert { a } else { dropout(net, &a, cfg.hidden_dropout) };
    let a = net.b.op("Add", &[&a, x], &[]);
    let h = layer_norm(net, l, &names.attention_norm, &a, d, eps, train)?;
    let f = linear(net, l, &names.ffn_in, &h, d, cfg.intermediate_size, true, train)?;
    let f = activation(net, cfg.act, &f);
    let f = linear(net, l, &names.ffn_out, &f, cfg.intermediate_size, d, true, train)?;
    let f = dropout(net, &f, cfg.hidden_dropout);
    let f = net.b.op("Add", &[&f, &h], &[]);
    layer_norm(net, l, &names.output_norm, &f, d, eps, train)
}
