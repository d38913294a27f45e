//! The repeated blocks of an ONNX export, for `trainable = "last:N"`. An ONNX graph does
//! not state its block structure, but exporters keep the framework's names: initializers
//! such as `vision_model.encoder.layers.3.self_attn.q_proj.weight`, `encoder.layer.3.…`,
//! `blocks.3.…`, dynamo's `…layers_3…`, and, where the legacy exporter renamed a weight
//! (`onnx::MatMul_123`), the scope in the names of the nodes that read it
//! (`/vision_model/encoder/layers.3/self_attn/q_proj/MatMul`). A parameter belongs to
//! block `i` when its name, or else every node reading it, says so; the parameters read
//! only after the last block starts (final norm, pooling, projection) come "after".

use std::collections::{BTreeMap, BTreeSet};

use memeguard_onnx::proto::GraphProto;

/// Words that introduce a block index in exporters' names, longest first.
const BLOCK_WORDS: [&str; 5] = ["resblocks", "layers", "blocks", "layer", "h"];

fn separator(b: u8) -> bool {
    matches!(b, b'.' | b'_' | b'/' | b':' | b' ')
}

/// The block index a parameter or node name carries (`…layers.3.…`, `…layers_3_…`,
/// `/layers.3/…`), if any.
pub fn block_index(name: &str) -> Option<usize> {
    let bytes = name.as_bytes();
    for word in BLOCK_WORDS {
        let mut from = 0;
        while let Some(found) = name[from..].find(word) {
            let start = from + found;
            let end = start + word.len();
            from = end;
            if (start > 0 && !separator(bytes[start - 1])) || end >= bytes.len() || !separator(bytes[end]) {
                continue;
            }
            let digits = bytes[end + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            let after = end + 1 + digits;
            if digits > 0 && (after == bytes.len() || separator(bytes[after])) {
                return name[end + 1..after].parse().ok();
            }
        }
    }
    None
}

/// Which block each parameter belongs to, and which come after the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockStructure {
    /// Blocks found (indices `0..count`, all present).
    pub count: usize,
    /// The block of each parameter that belongs to one.
    pub block: BTreeMap<String, usize>,
    /// Parameters outside the blocks read only after the last block starts.
    pub after: BTreeSet<String>,
}

impl BlockStructure {
    /// Finds the blocks among `parameters` (initializer names) of `graph`; `None` when
    /// fewer than two numbered blocks, or a gap in their numbers, are found.
    pub fn find(graph: &GraphProto, parameters: &[String]) -> Option<Self> {
        let readers = readers(graph);
        // A node's scope: its name (legacy: `/…/layers.3/…`) or dynamo's `namespace`.
        let node_block = |i: usize| {
            let node = &graph.node[i];
            node.name.as_deref().and_then(block_index).or_else(|| {
                node.metadata_props
                    .iter()
                    .find(|e| e.key.as_deref() == Some("namespace"))
                    .and_then(|e| e.value.as_deref())
                    .and_then(block_index)
            })
        };
        let mut block = BTreeMap::new();
        for name in parameters {
            let index = block_index(name).or_else(|| {
                let nodes = readers.get(name.as_str())?;
                let blocks: BTreeSet<Option<usize>> = nodes.iter().map(|&i| node_block(i)).collect();
                match blocks.into_iter().collect::<Vec<_>>().as_slice() {
                    [Some(b)] => Some(*b),
                    _ => None,
                }
            });
            if let Some(index) = index {
                block.insert(name.clone(), index);
            }
        }
        let indices: BTreeSet<usize> = block.values().copied().collect();
        let count = indices.iter().max().map_or(0, |m| m + 1);
        if count < 2 || indices.len() != count {
            return None;
        }
        let last_start = block
            .iter()
            .filter(|(_, b)| **b == count - 1)
            .filter_map(|(name, _)| readers.get(name.as_str()).and_then(|r| r.iter().min()))
            .min()
            .copied()?;
        let after = parameters
            .iter()
            .filter(|name| !block.contains_key(*name))
            .filter(|name| {
                readers.get(name.as_str()).and_then(|r| r.iter().min()).is_some_and(|&first| first > last_start)
            })
            .cloned()
            .collect();
        Some(BlockStructure { count, block, after })
    }

    /// The parameters `last:n` trains: blocks `count − n` and up, and those after them.
    pub fn last_blocks(&self, n: usize) -> BTreeSet<String> {
        let first = self.count.saturating_sub(n);
        self.block
            .iter()
            .filter(|(_, b)| **b >= first)
            .map(|(name, _)| name.clone())
            .chain(self.after.iter().cloned())
            .collect()
    }
}

/// The nodes that read each value, in node (topological) order, looking through
/// `Identity` nodes (the legacy exporter reads a shared weight through one per use).
fn readers(graph: &GraphProto) -> BTreeMap<&str, Vec<usize>> {
    let mut direct: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            direct.entry(input.as_str()).or_default().push(i);
        }
    }
    fn resolve(
        graph: &GraphProto,
        direct: &BTreeMap<&str, Vec<usize>>,
        value: &str,
        depth: usize,
        out: &mut Vec<usize>,
    ) {
        for &i in direct.get(value).map(Vec::as_slice).unwrap_or_default() {
            let node = &graph.node[i];
            match (node.op_type.as_deref(), node.output.first()) {
                (Some("Identity"), Some(output)) if depth < 8 => resolve(graph, direct, output, depth + 1, out),
                _ => out.push(i),
            }
        }
    }
    let mut all = BTreeMap::new();
    for value in direct.keys() {
        let mut out = Vec::new();
        resolve(graph, &direct, value, 0, &mut out);
        out.sort_unstable();
        all.insert(*value, out);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_indices_are_read_from_exporters_names() {
        let cases = [
            ("vision_model.encoder.layers.3.self_attn.q_proj.weight", Some(3)),
            ("encoder.layer.11.attention.self.query.weight", Some(11)),
            ("blocks.0.attn.qkv.weight", Some(0)),
            ("p_text_model_encoder_layers_1_mlp_fc1_weight", Some(1)),
            ("/vision_model/encoder/layers.2/self_attn/q_proj/MatMul", Some(2)),
            (": __main__.Vision/vision_model.encoder.layers.1: CLIPEncoderLayer/…", Some(1)),
            ("transformer.resblocks.7.ln_1.weight", Some(7)),
            ("h.4.mlp.c_fc.weight", Some(4)),
            ("vision_model.post_layernorm.weight", None),
            ("text_model.final_layer_norm.bias", None),
            ("onnx::MatMul_123", None),
            ("layers", None),
            ("mlayers.3.x", None),
        ];
        for (name, want) in cases {
            assert_eq!(block_index(name), want, "{name}");
        }
    }
}
