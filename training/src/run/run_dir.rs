//! A run directory: the resolved config (TOML), the step log (JSON and CSV), metrics,
//! plots (SVG) and the checkpoint.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{RunError, StepLog};
use crate::eval::plot::line_plot;

/// A run's folder and the files in it.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io { path: path.display().to_string(), source }
}

impl RunDir {
    /// Creates (or reuses) the folder.
    pub fn create(path: &Path) -> Result<Self, RunError> {
        std::fs::create_dir_all(path).map_err(io(path))?;
        Ok(RunDir { path: path.to_path_buf() })
    }

    /// `checkpoint.safetensors` in the run.
    pub fn checkpoint_path(&self) -> PathBuf {
        self.path.join("checkpoint.safetensors")
    }

    /// Writes `config.toml` from any serialisable config.
    pub fn write_config<T: Serialize>(&self, config: &T) -> Result<(), RunError> {
        let text = toml::to_string_pretty(config).map_err(|e| RunError::Invalid(format!("config to TOML: {e}")))?;
        let p = self.path.join("config.toml");
        std::fs::write(&p, text).map_err(io(&p))
    }

    /// Writes a JSON file in the run.
    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<(), RunError> {
        let p = self.path.join(name);
        let text = serde_json::to_string_pretty(value).map_err(|e| RunError::Invalid(e.to_string()))?;
        std::fs::write(&p, text).map_err(io(&p))
    }

    /// Writes the step log as `log.csv` and the loss curve as `loss.svg`.
    pub fn write_log(&self, log: &[StepLog]) -> Result<(), RunError> {
        let mut csv = String::from("step,epoch,loss,lr,grad_norm,embedding_spread\n");
        for s in log {
            csv.push_str(&format!(
                "{},{},{},{},{},{}\n",
                s.step,
                s.epoch,
                s.loss,
                s.lr,
                s.grad_norm.map(|g| g.to_string()).unwrap_or_default(),
                s.embedding_spread.map(|g| g.to_string()).unwrap_or_default()
            ));
        }
        let p = self.path.join("log.csv");
        std::fs::write(&p, csv).map_err(io(&p))?;
        let points: Vec<(f64, f64)> = log.iter().map(|s| (s.step as f64, s.loss as f64)).collect();
        // A moving average makes the trend readable at tiny batch sizes.
        let window = (log.len() / 20).max(1);
        let smooth: Vec<(f64, f64)> = (0..log.len())
            .map(|i| {
                let lo = i.saturating_sub(window - 1);
                let avg = log[lo..=i].iter().map(|s| s.loss as f64).sum::<f64>() / (i - lo + 1) as f64;
                (log[i].step as f64, avg)
            })
            .collect();
        line_plot(
            &self.path.join("loss.svg"),
            "training loss",
            "step",
            "loss",
            &[("loss", points), ("moving average", smooth)],
        )
        .map_err(RunError::Invalid)
    }
}
