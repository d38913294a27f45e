//! Early stopping on dev AUROC: the record of every epoch, the best epoch's values, and
//! their files in the run directory (`metrics.csv`, `best.safetensors`), from which an
//! interrupted finetune resumes with the same choice of best epoch as an uninterrupted one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use memeguard_onnx::Tensor;
use serde::{Deserialize, Serialize};

use super::PipelineError;
use crate::run::RunError;
use crate::runtime::{Checkpoint, RngState};

/// One row per finished epoch.
pub const METRICS_CSV: &str = "metrics.csv";
/// The best epoch's model values so far.
pub const BEST_FILE: &str = "best.safetensors";
const HEADER: &str = "epoch,dev_auroc,dev_accuracy_at_0.5,best_epoch";

/// Dev metrics after one epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: u64,
    pub dev_auroc: f64,
    pub dev_accuracy: f64,
}

/// The best epoch: its dev AUROC, its 0-based index and the model values after it.
pub type Best = (f64, u64, BTreeMap<String, Tensor>);

/// Early-stopping state of one finetune.
pub struct EarlyStopping {
    /// Epochs without improvement before stopping (0: never stop early).
    patience: u64,
    history: Vec<EpochRecord>,
    best: Option<Best>,
    /// The run directory the files go to (none: nothing is written).
    dir: Option<PathBuf>,
}

impl EarlyStopping {
    /// A fresh record, written into `dir` when given.
    pub fn new(patience: u64, dir: Option<&Path>) -> Self {
        EarlyStopping { patience, history: Vec::new(), best: None, dir: dir.map(Path::to_path_buf) }
    }

    /// The record an interrupted run left in `dir` (empty when it stopped during its first epoch).
    pub fn resume(patience: u64, dir: &Path) -> Result<Self, PipelineError> {
        let mut state = Self::new(patience, Some(dir));
        let csv = dir.join(METRICS_CSV);
        if !csv.exists() {
            return Ok(state);
        }
        let bad =
            |why: String| PipelineError::Invalid(format!("cannot resume the finetune in {}: {why}", dir.display()));
        let text = std::fs::read_to_string(&csv).map_err(|e| bad(format!("{METRICS_CSV}: {e}")))?;
        for (i, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
            let fields: Vec<&str> = line.split(',').collect();
            let parsed = match fields.as_slice() {
                [epoch, auroc, accuracy, _] => (epoch.parse(), auroc.parse(), accuracy.parse()),
                _ => return Err(bad(format!("{METRICS_CSV} line {} has {} fields, expected 4", i + 1, fields.len()))),
            };
            let (Ok(epoch), Ok(dev_auroc), Ok(dev_accuracy)) = parsed else {
                return Err(bad(format!("{METRICS_CSV} line {} is not `{HEADER}`", i + 1)));
            };
            state.history.push(EpochRecord { epoch, dev_auroc, dev_accuracy });
        }
        let Some(best) = state.best_record().cloned() else { return Ok(state) };
        let best_path = dir.join(BEST_FILE);
        let saved = Checkpoint::load(&best_path).map_err(|e| bad(e.to_string()))?;
        if saved.extra.get("epoch").and_then(|e| e.parse::<u64>().ok()) != Some(best.epoch) {
            return Err(bad(format!(
                "{BEST_FILE} is not the values of epoch {}, the best in {METRICS_CSV}",
                best.epoch
            )));
        }
        state.best = Some((best.dev_auroc, best.epoch - 1, saved.tensors));
        Ok(state)
    }

    /// The first epoch with the highest dev AUROC.
    fn best_record(&self) -> Option<&EpochRecord> {
        self.history.iter().fold(None, |best: Option<&EpochRecord>, r| match best {
            Some(b) if b.dev_auroc >= r.dev_auroc => Some(b),
            _ => Some(r),
        })
    }

    /// Records 0-based `epoch` with its dev metrics and the values after it; writes the
    /// files; returns whether training goes on.
    pub fn record(
        &mut self,
        epoch: u64,
        dev_auroc: f64,
        dev_accuracy: f64,
        values: BTreeMap<String, Tensor>,
    ) -> Result<bool, RunError> {
        self.history.push(EpochRecord { epoch: epoch + 1, dev_auroc, dev_accuracy });
        if self.best.as_ref().is_none_or(|(b, _, _)| dev_auroc > *b) {
            if let Some(dir) = &self.dir {
                let mut extra = BTreeMap::new();
                extra.insert("epoch".to_string(), (epoch + 1).to_string());
                extra.insert("dev_auroc".to_string(), dev_auroc.to_string());
                // Model values only: no optimizer state, counters or generator.
                let snapshot = Checkpoint {
                    tensors: values,
                    optimizer_step: 0,
                    micro_step: 0,
                    run_seed: 0,
                    rng: RngState { seed: [0; 32], stream: 0, word_pos: 0 },
                    extra,
                };
                snapshot.save(&dir.join(BEST_FILE))?;
                self.best = Some((dev_auroc, epoch, snapshot.tensors));
            } else {
                self.best = Some((dev_auroc, epoch, values));
            }
        }
        self.write_csv()?;
        let best_epoch = self.best.as_ref().map_or(0, |(_, e, _)| *e + 1);
        let since_best = self.history.iter().filter(|r| r.epoch > best_epoch).count() as u64;
        Ok(self.patience == 0 || since_best < self.patience)
    }

    fn write_csv(&self) -> Result<(), RunError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let mut csv = format!("{HEADER}\n");
        let mut best: Option<&EpochRecord> = None;
        for r in &self.history {
            if best.is_none_or(|b| r.dev_auroc > b.dev_auroc) {
                best = Some(r);
            }
            // `{}` writes the shortest text that reads back as the same f64.
            csv.push_str(&format!("{},{},{},{}\n", r.epoch, r.dev_auroc, r.dev_accuracy, best.map_or(0, |b| b.epoch)));
        }
        let path = dir.join(METRICS_CSV);
        std::fs::write(&path, csv).map_err(|source| RunError::Io { path: path.display().to_string(), source })
    }

    /// Every recorded epoch.
    pub fn history(&self) -> &[EpochRecord] {
        &self.history
    }

    /// The best epoch, once one finished.
    pub fn into_best(self) -> Option<Best> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: f32) -> BTreeMap<String, Tensor> {
        BTreeMap::from([("w".to_string(), Tensor::f32(vec![2], vec![v, -v]))])
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement_and_keeps_the_first_best() {
        let mut s = EarlyStopping::new(2, None);
        assert!(s.record(0, 0.6, 0.5, values(0.0)).unwrap());
        assert!(s.record(1, 0.8, 0.5, values(1.0)).unwrap());
        assert!(s.record(2, 0.8, 0.5, values(2.0)).unwrap(), "a tie is no improvement, but patience is 2");
        assert!(!s.record(3, 0.7, 0.5, values(3.0)).unwrap());
        let (auc, epoch, v) = s.into_best().unwrap();
        assert_eq!((auc, epoch), (0.8, 1));
        assert_eq!(v["w"], values(1.0)["w"]);
    }

    #[test]
    fn a_resumed_record_continues_as_if_never_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let mut whole = EarlyStopping::new(3, None);
        let mut first = EarlyStopping::new(3, Some(dir.path()));
        for (e, auc) in [0.55, 0.9, 0.7].into_iter().enumerate() {
            whole.record(e as u64, auc, 0.5, values(e as f32)).unwrap();
            first.record(e as u64, auc, 0.5, values(e as f32)).unwrap();
        }
        let mut resumed = EarlyStopping::resume(3, dir.path()).unwrap();
        assert_eq!(resumed.history(), whole.history());
        // Two more epochs without improvement: both stop at the same epoch.
        for e in 3..5 {
            let a = whole.record(e, 0.6, 0.5, values(e as f32)).unwrap();
            let b = resumed.record(e, 0.6, 0.5, values(e as f32)).unwrap();
            assert_eq!(a, b, "epoch {e}");
        }
        let (a, b) = (whole.into_best().unwrap(), resumed.into_best().unwrap());
        assert_eq!((a.0, a.1), (b.0, b.1));
        assert_eq!(a.2["w"], b.2["w"]);
        let csv = std::fs::read_to_string(dir.path().join(METRICS_CSV)).unwrap();
        assert_eq!(csv.lines().nth(2), Some("2,0.9,0.5,2"));
        assert_eq!(csv.lines().count(), 6);
    }

    #[test]
    fn resuming_without_the_best_values_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = EarlyStopping::new(0, Some(dir.path()));
        s.record(0, 0.7, 0.5, values(1.0)).unwrap();
        std::fs::remove_file(dir.path().join(BEST_FILE)).unwrap();
        let err = EarlyStopping::resume(0, dir.path()).err().unwrap().to_string();
        assert!(err.contains("cannot resume") && err.contains(BEST_FILE), "{err}");
    }
}
