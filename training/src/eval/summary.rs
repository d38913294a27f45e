//! Mean ± standard deviation over seeds, and the study's results table.

use serde::{Deserialize, Serialize};

/// Mean and sample standard deviation (n − 1) of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
}

impl std::fmt::Display for MeanStd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.n > 1 { write!(f, "{:.4} ± {:.4}", self.mean, self.std) } else { write!(f, "{:.4}", self.mean) }
    }
}

/// Mean ± sample std; std is 0 for a single run.
pub fn mean_std(values: &[f64]) -> MeanStd {
    let n = values.len();
    if n == 0 {
        return MeanStd { mean: f64::NAN, std: f64::NAN, n };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let std =
        if n > 1 { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
    MeanStd { mean, std, n }
}

/// One row of the results table: a model (or run group) and its metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultRow {
    pub model: String,
    pub auroc: MeanStd,
    pub accuracy: MeanStd,
}

/// The study's layout: `| Model | AUROC | Accuracy |` in Markdown.
pub fn results_table(rows: &[ResultRow]) -> String {
    let mut out = String::from("| Model | AUROC | Accuracy |\n|---|---|---|\n");
    for r in rows {
        out.push_str(&format!("| {} | {} | {} |\n", r.model, r.auroc, r.accuracy));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_std() {
        let m = mean_std(&[0.9, 0.92, 0.94]);
        assert!((m.mean - 0.92).abs() < 1e-12);
        assert!((m.std - 0.02).abs() < 1e-12);
        assert_eq!(mean_std(&[0.5]).std, 0.0);
        assert_eq!(format!("{}", mean_std(&[0.5, 0.7])), "0.6000 ± 0.1414");
    }

    #[test]
    fn table_layout() {
        let t =
            results_table(&[ResultRow { model: "tiny".into(), auroc: mean_std(&[0.9]), accuracy: mean_std(&[0.8]) }]);
        assert!(t.contains("| tiny | 0.9000 | 0.8000 |"), "{t}");
    }
}
