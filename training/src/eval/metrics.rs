//! Classification metrics computed over a whole split (never one batch, never on hard
//! labels): AUROC is the probability that a random positive scores above a random
//! negative, ties counting one half (the Mann–Whitney statistic).

use serde::{Deserialize, Serialize};

/// AUROC of `scores` against binary `labels`; `None` when one class is absent.
pub fn auroc(scores: &[f32], labels: &[bool]) -> Option<f64> {
    assert_eq!(scores.len(), labels.len(), "one label per score");
    let pos = labels.iter().filter(|&&l| l).count();
    let neg = labels.len() - pos;
    if pos == 0 || neg == 0 {
        return None;
    }
    // Rank-sum with average ranks for ties.
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut rank_sum_pos = 0.0f64;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if labels[k] {
                rank_sum_pos += avg_rank;
            }
        }
        i = j + 1;
    }
    let (p, n) = (pos as f64, neg as f64);
    Some((rank_sum_pos - p * (p + 1.0) / 2.0) / (p * n))
}

/// Fraction of items where `score >= threshold` equals the label.
pub fn accuracy(scores: &[f32], labels: &[bool], threshold: f32) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    let right = scores.iter().zip(labels).filter(|(s, l)| (**s >= threshold) == **l).count();
    right as f64 / scores.len() as f64
}

/// One point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RocPoint {
    pub threshold: f32,
    pub fpr: f64,
    pub tpr: f64,
}

/// The ROC curve: one point per distinct score (descending), from (0,0) to (1,1).
pub fn roc_curve(scores: &[f32], labels: &[bool]) -> Vec<RocPoint> {
    let pos = labels.iter().filter(|&&l| l).count().max(1) as f64;
    let neg = (labels.len() - labels.iter().filter(|&&l| l).count()).max(1) as f64;
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut points = vec![RocPoint { threshold: f32::INFINITY, fpr: 0.0, tpr: 0.0 }];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push(RocPoint { threshold: s, fpr: fp / neg, tpr: tp / pos });
    }
    points
}

/// How to choose the decision threshold on the dev split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule", content = "target")]
pub enum Threshold {
    /// The threshold with the best accuracy (ties: the one closest to 0.5).
    BestAccuracy,
    /// The lowest threshold whose precision reaches the target (flag less, but surely).
    Precision(f64),
    /// The highest threshold whose recall reaches the target (miss little).
    Recall(f64),
}

/// Chooses a threshold by `rule` from dev scores; 0.5 when the split is degenerate.
pub fn choose_threshold(scores: &[f32], labels: &[bool], rule: Threshold) -> f32 {
    let mut candidates: Vec<f32> = scores.to_vec();
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    if candidates.is_empty() {
        return 0.5;
    }
    let stats = |t: f32| {
        let (mut tp, mut fp, mut fnn) = (0usize, 0usize, 0usize);
        for (s, l) in scores.iter().zip(labels) {
            match (*s >= t, *l) {
                (true, true) => tp += 1,
                (true, false) => fp += 1,
                (false, true) => fnn += 1,
                _ => {}
            }
        }
        let precision = if tp + fp == 0 { 1.0 } else { tp as f64 / (tp + fp) as f64 };
        let recall = if tp + fnn == 0 { 0.0 } else { tp as f64 / (tp + fnn) as f64 };
        (precision, recall)
    };
    match rule {
        Threshold::BestAccuracy => {
            let mut best = (f64::MIN, 0.5f32);
            for &t in &candidates {
                let acc = accuracy(scores, labels, t);
                let better =
                    acc > best.0 + 1e-12 || ((acc - best.0).abs() <= 1e-12 && (t - 0.5).abs() < (best.1 - 0.5).abs());
                if better {
                    best = (acc, t);
                }
            }
            best.1
        }
        Threshold::Precision(target) => {
            candidates.iter().copied().find(|&t| stats(t).0 >= target).unwrap_or(*candidates.last().expect("non-empty"))
        }
        Threshold::Recall(target) => {
            candidates.iter().rev().copied().find(|&t| stats(t).1 >= target).unwrap_or(candidates[0])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AUROC by counting every (positive, negative) pair: the definition.
    fn naive_auroc(s: &[f32], l: &[bool]) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for i in 0..s.len() {
            for j in 0..s.len() {
                if l[i] && !l[j] {
                    den += 1.0;
                    num += if s[i] > s[j] {
                        1.0
                    } else if s[i] == s[j] {
                        0.5
                    } else {
                        0.0
                    };
                }
            }
        }
        num / den
    }

    #[test]
    fn auroc_matches_pair_counting_with_ties() {
        let s = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.05];
        let l = [false, false, true, true, true, false, true, false];
        assert!((auroc(&s, &l).unwrap() - naive_auroc(&s, &l)).abs() < 1e-12);
        assert_eq!(auroc(&[0.1, 0.9], &[false, true]), Some(1.0));
        assert_eq!(auroc(&[0.9, 0.1], &[false, true]), Some(0.0));
        assert_eq!(auroc(&[0.3, 0.3], &[false, true]), Some(0.5));
        assert_eq!(auroc(&[0.3, 0.4], &[true, true]), None);
    }

    #[test]
    fn roc_curve_runs_from_origin_to_one_one() {
        let s = [0.1, 0.4, 0.35, 0.8];
        let l = [false, false, true, true];
        let c = roc_curve(&s, &l);
        assert_eq!((c[0].fpr, c[0].tpr), (0.0, 0.0));
        let last = c.last().unwrap();
        assert_eq!((last.fpr, last.tpr), (1.0, 1.0));
        // Trapezoid area equals AUROC.
        let area: f64 = c.windows(2).map(|w| (w[1].fpr - w[0].fpr) * (w[1].tpr + w[0].tpr) / 2.0).sum();
        assert!((area - auroc(&s, &l).unwrap()).abs() < 1e-12);
    }

    #[test]
    fn thresholds_follow_their_rules() {
        let s = [0.1, 0.2, 0.3, 0.6, 0.7, 0.9];
        let l = [false, false, true, false, true, true];
        let t = choose_threshold(&s, &l, Threshold::BestAccuracy);
        assert!((accuracy(&s, &l, t) - 5.0 / 6.0).abs() < 1e-12, "t={t}");
        let t = choose_threshold(&s, &l, Threshold::Precision(1.0));
        assert_eq!(t, 0.7);
        let t = choose_threshold(&s, &l, Threshold::Recall(1.0));
        assert_eq!(t, 0.3);
        assert_eq!(accuracy(&s, &l, 0.5), 4.0 / 6.0);
    }
}
