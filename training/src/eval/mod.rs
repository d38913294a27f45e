//! Evaluation: AUROC from probabilities over a whole split, accuracy at a threshold,
//! choosing the threshold on dev, mean ± std over seeds, and ROC / loss-curve plots.

pub mod metrics;
pub mod plot;
pub mod summary;

pub use metrics::{accuracy, auroc, roc_curve, Threshold, choose_threshold, RocPoint};
pub use summary::{mean_std, MeanStd};
