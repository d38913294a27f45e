//! RGCL's retrieval: the training set's head embeddings, and for each training meme its
//! pseudo-gold positive (the most similar meme of the same label, itself excluded) and its
//! hard negatives (the most similar memes of the other label), by cosine similarity.
//! The embeddings are those of the head as it is: computed before the first epoch and
//! again after every epoch (the paper refreshes its Faiss index the same way); the
//! search is exhaustive (no index), which is fine for the Hateful Memes training set
//! (8,500 memes × the head's width of 32 to a few hundred dims).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use memeguard_onnx::proto::ModelProto;
use memeguard_onnx::{DataType, Dim, Tensor, encode_model};
use memeguard_package::onnxruntime::{SessionOptions, session_from_bytes};
use memeguard_package::tensor_value::{from_value, to_value};

use super::PipelineError;
use super::feature_cache::{FeatureSource, FeatureTable};
use crate::graph_spec::{Mode, ModelGraph};
use crate::models::classifier::{ClassifierConfig, build_head_classifier};
use crate::models::net::Weights;
use crate::objectives::rgcl::{RgclConfig, head_embedding};
use crate::run::{Batch, BatchSource};
use crate::runtime::export_inference;

/// Name of the embedding output of the retrieval graph.
const EMBEDDING: &str = "head_embedding";

/// Each training meme's retrieved examples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Neighbours {
    pub positive: Vec<usize>,
    /// `hard_negatives` per meme, most similar first.
    pub negatives: Vec<Vec<usize>>,
}

/// Retrieves by cosine similarity among the rows of `embeddings` (`[n, d]`, row-major)
/// whose `valid` flag is set.
pub fn retrieve(
    embeddings: &[f32],
    d: usize,
    labels: &[Option<u8>],
    valid: &[bool],
    hard_negatives: usize,
) -> Neighbours {
    let n = labels.len();
    let unit: Vec<Vec<f32>> = (0..n)
        .map(|i| {
            let row = &embeddings[i * d..(i + 1) * d];
            let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
            row.iter().map(|x| x / norm).collect()
        })
        .collect();
    let mut out = Neighbours::default();
    for i in 0..n {
        let mut same: Option<(f32, usize)> = None;
        let mut other: Vec<(f32, usize)> = Vec::new();
        for j in (0..n).filter(|&j| j != i && valid[j]) {
            let sim: f32 = unit[i].iter().zip(&unit[j]).map(|(a, b)| a * b).sum();
            if labels[j] == labels[i] {
                if same.is_none_or(|(s, _)| sim > s) {
                    same = Some((sim, j));
                }
            } else {
                other.push((sim, j));
            }
        }
        other.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        // A class without another member pairs a meme with itself; too few negatives
        // repeat the hardest (the loss then counts it more than once).
        out.positive.push(same.map_or(i, |(_, j)| j));
        let mut negatives: Vec<usize> = other.iter().take(hard_negatives).map(|(_, j)| *j).collect();
        while negatives.len() < hard_negatives {
            negatives.push(negatives.first().copied().unwrap_or(i));
        }
        out.negatives.push(negatives);
    }
    out
}

/// The retrieval of one run: the graph that embeds the training memes, and the current
/// neighbours shared with the [`RetrievalSource`].
pub struct Retrieval {
    embed: ModelGraph,
    table: Rc<FeatureTable>,
    labels: Vec<Option<u8>>,
    hard_negatives: usize,
    session: SessionOptions,
    pub neighbours: Rc<RefCell<Neighbours>>,
}

impl Retrieval {
    /// Builds the embedding graph of `cfg`'s head and retrieves with the `values` the
    /// head starts from.
    pub fn new(
        cfg: &ClassifierConfig,
        rgcl: &RgclConfig,
        table: Rc<FeatureTable>,
        labels: Vec<Option<u8>>,
        values: &BTreeMap<String, Tensor>,
        session: &SessionOptions,
    ) -> Result<Self, PipelineError> {
        let mut embed = build_head_classifier(cfg, Mode::Infer, Weights::Hollow)?;
        let (value, width) = head_embedding(&embed.model)?;
        let mut b = memeguard_onnx::GraphBuilder::from_model(&embed.model);
        b.named_output(&value, EMBEDDING, DataType::Float, &[Dim::from("batch"), Dim::Known(width as i64)]);
        embed.model = b.build();
        let mut retrieval = Retrieval {
            embed,
            table,
            labels,
            hard_negatives: rgcl.hard_negatives,
            session: session.clone(),
            neighbours: Rc::new(RefCell::new(Neighbours::default())),
        };
        retrieval.refresh(values)?;
        Ok(retrieval)
    }

    /// Embeds every training meme with the head's `values` and retrieves again.
    pub fn refresh(&mut self, values: &BTreeMap<String, Tensor>) -> Result<(), PipelineError> {
        let fail = |e: &dyn std::fmt::Display| PipelineError::Score(format!("retrieval: {e}"));
        let model: ModelProto = export_inference(&self.embed, values)?;
        let mut sess = session_from_bytes(&encode_model(&model), &self.session).map_err(|e| fail(&e))?;
        let n = self.table.rows();
        let valid: Vec<bool> = (0..n).map(|i| self.table.valid(i)).collect();
        let rows: Vec<usize> = (0..n).filter(|&i| valid[i]).collect();
        let mut embeddings: Vec<f32> = Vec::new();
        let mut width = 0;
        let mut placed = vec![Vec::new(); n];
        for chunk in rows.chunks(256) {
            let feeds = self
                .table
                .feeds(chunk)
                .into_iter()
                .map(|(name, t)| Ok((name, to_value(&t).map_err(|e| fail(&e))?)))
                .collect::<Result<Vec<_>, PipelineError>>()?;
            let out = sess.run(feeds).map_err(|e| fail(&e))?;
            let t = from_value(&out[EMBEDDING], EMBEDDING).map_err(|e| fail(&e))?;
            let values = t.as_f32().ok_or_else(|| fail(&"the embedding is not float32"))?;
            width = values.len() / chunk.len();
            for (k, &i) in chunk.iter().enumerate() {
                placed[i] = values[k * width..(k + 1) * width].to_vec();
            }
        }
        for row in placed {
            if row.is_empty() {
                embeddings.extend(std::iter::repeat_n(0.0, width));
            } else {
                embeddings.extend(row);
            }
        }
        *self.neighbours.borrow_mut() = retrieve(&embeddings, width, &self.labels, &valid, self.hard_negatives);
        Ok(())
    }
}

/// The training batches of an RGCL run: each of the feature source's batches (the
/// anchors), then their positives, then their hard negatives, block by block.
pub struct RetrievalSource {
    pub inner: FeatureSource,
    pub neighbours: Rc<RefCell<Neighbours>>,
}

impl BatchSource for RetrievalSource {
    fn epoch(&mut self, epoch: u64) -> Box<dyn Iterator<Item = Result<Batch, String>> + '_> {
        let batches = self.inner.epoch_rows(epoch);
        Box::new(batches.into_iter().map(move |anchors| {
            let rows = {
                let nb = self.neighbours.borrow();
                let mut rows = anchors.clone();
                rows.extend(anchors.iter().map(|&i| nb.positive[i]));
                let k = nb.negatives.first().map_or(0, Vec::len);
                for slot in 0..k {
                    rows.extend(anchors.iter().map(|&i| nb.negatives[i][slot]));
                }
                rows
            };
            self.inner.batch(&rows)
        }))
    }

    fn batches_per_epoch(&self) -> usize {
        self.inner.batches_per_epoch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positives_share_the_label_and_negatives_do_not() {
        // Two clusters along x and y; labels cut across them.
        let rows = [[1.0, 0.1], [0.9, 0.0], [1.0, -0.1], [0.0, 1.0], [0.1, 0.9]];
        let embeddings: Vec<f32> = rows.iter().flatten().copied().collect();
        let labels = [Some(1), Some(0), Some(1), Some(0), Some(1)];
        let nb = retrieve(&embeddings, 2, &labels, &[true; 5], 2);
        assert_eq!(nb.positive[0], 2, "the nearest hateful meme");
        assert_eq!(nb.negatives[0], vec![1, 3], "the nearest benign memes, nearest first");
        assert_eq!(nb.positive[3], 1);
        assert_eq!(nb.negatives[3][0], 4);
        // An unreadable meme is never retrieved.
        let nb = retrieve(&embeddings, 2, &labels, &[true, true, false, true, true], 1);
        assert_eq!(nb.positive[0], 4);
    }
}
