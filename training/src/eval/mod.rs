//! Evaluation: AUROC from probabilities over a whole split, accuracy at a threshold,
//! choosing the threshold on dev, mean ± std over seeds, and ROC / loss-curve plots.

pub mod metrics;
pub mod plot;
pub mod summary;

pub use metrics::{RocPoint, Threshold, accuracy, auroc, choose_threshold, roc_curve};
pub use summary::{MeanStd, mean_std};
