//! Turning the data loader's batches into the tensors an objective's graph takes.

use memeguard_onnx::Tensor;
use ndarray::{Array2, Array4};

use super::{Batch, BatchSource};
use crate::data::loader::{Batch as DataBatch, Loader};
use crate::objectives::Feeds;
use crate::objectives::classify::LABELS;
use crate::objectives::dino::{GLOBAL_VIEWS, LOCAL_VIEWS};

fn pixels(a: &Array4<u8>) -> Tensor {
    let dims: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    Tensor::u8(dims, a.as_standard_layout().iter().copied().collect())
}

fn ints(a: &Array2<i64>) -> Tensor {
    let dims: Vec<i64> = a.shape().iter().map(|&d| d as i64).collect();
    Tensor::i64(dims, a.as_standard_layout().iter().copied().collect())
}

/// Stacks views along the batch axis, view-major (all samples of view 0, then view 1...).
fn stack(views: &[Array4<u8>]) -> Tensor {
    let first = views[0].shape();
    let dims = vec![(first[0] * views.len()) as i64, first[1] as i64, first[2] as i64, first[3] as i64];
    let data: Vec<u8> = views.iter().flat_map(|v| v.as_standard_layout().iter().copied().collect::<Vec<_>>()).collect();
    Tensor::u8(dims, data)
}

/// The graph inputs of `feeds` from one loader batch.
pub fn to_feeds(batch: &DataBatch, feeds: Feeds) -> Result<Batch, String> {
    let mut out: Batch = Vec::new();
    let text = |out: &mut Batch| -> Result<(), String> {
        let ids = batch.input_ids.as_ref().ok_or("the loader has no tokenizer, but the model reads text")?;
        let mask = batch.attention_mask.as_ref().ok_or("the loader has no tokenizer, but the model reads text")?;
        out.push(("input_ids".into(), ints(ids)));
        out.push(("attention_mask".into(), ints(mask)));
        Ok(())
    };
    match feeds {
        Feeds::Image => out.push(("pixel_values".into(), pixels(&batch.views[0]))),
        Feeds::ImageText => {
            out.push(("pixel_values".into(), pixels(&batch.views[0])));
            text(&mut out)?;
        }
        Feeds::Labelled => {
            out.push(("pixel_values".into(), pixels(&batch.views[0])));
            text(&mut out)?;
            let labels = batch.label_tensor().ok_or_else(|| {
                format!("batch {} has memes without a label; finetuning needs labelled data", batch.index)
            })?;
            out.push((LABELS.into(), Tensor::f32(vec![labels.len() as i64], labels.to_vec())));
        }
        Feeds::MultiCrop { local_crops } => {
            if batch.views.len() != 2 + local_crops {
                return Err(format!(
                    "DINO needs 2 global and {local_crops} local views, the loader made {}",
                    batch.views.len()
                ));
            }
            out.push((GLOBAL_VIEWS.into(), stack(&batch.views[..2])));
            if local_crops > 0 {
                out.push((LOCAL_VIEWS.into(), stack(&batch.views[2..])));
            }
        }
    }
    Ok(out)
}

/// A [`BatchSource`] over the data loader.
pub struct LoaderSource {
    pub loader: Loader,
    pub feeds: Feeds,
}

impl BatchSource for LoaderSource {
    fn epoch(&mut self, epoch: u64) -> Box<dyn Iterator<Item = Result<Batch, String>> + '_> {
        let feeds = self.feeds;
        Box::new(self.loader.epoch(epoch).filter(|b| !b.is_empty()).map(move |b| to_feeds(&b, feeds)))
    }

    fn batches_per_epoch(&self) -> usize {
        self.loader.batches_per_epoch()
    }
}
