//! Learning-rate, weight-decay and EMA-momentum schedules as pure functions of the step.
//!
//! The step graph takes the learning rate and weight decay as scalar inputs each step, so
//! schedules live here, in plain Rust, and are tested against their published formulas.
//! [`CosineSchedule`] is DINO's `cosine_scheduler` (facebookresearch/dino, `utils.py`):
//! a linear warm-up (`np.linspace(start, base, warmup)`, endpoints included) followed by a
//! half cosine from `base` towards `final_value` over the remaining steps.

use serde::{Deserialize, Serialize};

/// Linear ramp from `start` to `end` over `warmup_steps` steps: `start` at step 0, `end` at
/// step `warmup_steps - 1` (as `np.linspace`, so a one-step warm-up is just `start`), `end`
/// after that.
pub fn linear_warmup(step: u64, warmup_steps: u64, start: f64, end: f64) -> f64 {
    if step >= warmup_steps {
        return end;
    }
    if warmup_steps == 1 {
        return start;
    }
    start + (end - start) * step as f64 / (warmup_steps - 1) as f64
}

/// Half-cosine decay from `base` (step 0) towards `final_value` over `decay_steps` steps;
/// `final_value` from step `decay_steps` on. As DINO, the last scheduled step is just above
/// `final_value` (`cos(π·i/n)` for `i < n`).
pub fn cosine_decay(step: u64, decay_steps: u64, base: f64, final_value: f64) -> f64 {
    if step >= decay_steps {
        return final_value;
    }
    let progress = step as f64 / decay_steps as f64;
    final_value + 0.5 * (base - final_value) * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Linear warm-up then cosine decay over `total_steps` steps, DINO's `cosine_scheduler`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineSchedule {
    /// Value at the end of the warm-up (and at step 0 when there is none).
    pub base: f64,
    /// Value the cosine decays towards; held after `total_steps`.
    pub final_value: f64,
    /// Length of the whole schedule, warm-up included.
    pub total_steps: u64,
    /// Steps of linear warm-up (0 for none).
    pub warmup_steps: u64,
    /// Value at step 0 of the warm-up.
    pub warmup_start: f64,
}

impl CosineSchedule {
    /// A cosine from `base` to `final_value` over `total_steps`, without warm-up.
    pub fn new(base: f64, final_value: f64, total_steps: u64) -> Self {
        CosineSchedule { base, final_value, total_steps, warmup_steps: 0, warmup_start: 0.0 }
    }

    /// The same schedule with `warmup_steps` of linear warm-up from `warmup_start`.
    pub fn with_warmup(mut self, warmup_steps: u64, warmup_start: f64) -> Self {
        self.warmup_steps = warmup_steps;
        self.warmup_start = warmup_start;
        self
    }

    /// The value at `step` (0-based).
    pub fn at(&self, step: u64) -> f64 {
        let warmup = self.warmup_steps.min(self.total_steps);
        if step < warmup {
            return linear_warmup(step, warmup, self.warmup_start, self.base);
        }
        let decay_steps = self.total_steps - warmup;
        if decay_steps == 0 {
            return self.base;
        }
        cosine_decay(step - warmup, decay_steps, self.base, self.final_value)
    }
}

/// DINO's learning rate: `base_lr · batch_size / 256`, warmed up linearly from 0, then
/// cosine-decayed to `min_lr`.
pub fn dino_learning_rate(
    base_lr: f64,
    batch_size: usize,
    min_lr: f64,
    total_steps: u64,
    warmup_steps: u64,
) -> CosineSchedule {
    CosineSchedule::new(base_lr * batch_size as f64 / 256.0, min_lr, total_steps).with_warmup(warmup_steps, 0.0)
}

/// DINO's weight-decay schedule: cosine from 0.04 up to 0.4, no warm-up.
pub fn dino_weight_decay(total_steps: u64) -> CosineSchedule {
    CosineSchedule::new(0.04, 0.4, total_steps)
}

/// DINO's teacher EMA momentum: cosine from 0.996 up to 1, no warm-up.
pub fn dino_teacher_momentum(total_steps: u64) -> CosineSchedule {
    CosineSchedule::new(0.996, 1.0, total_steps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * (1.0 + b.abs())
    }

    #[test]
    fn warmup_is_linspace_with_endpoints() {
        // np.linspace(0, 1, 5) = [0, .25, .5, .75, 1]
        let got: Vec<f64> = (0..6).map(|s| linear_warmup(s, 5, 0.0, 1.0)).collect();
        assert_eq!(got, vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.0]);
        // np.linspace(a, b, 1) = [a]; after the ramp (or without one) the end value holds.
        assert_eq!(linear_warmup(0, 1, 0.3, 1.0), 0.3);
        assert_eq!(linear_warmup(1, 1, 0.3, 1.0), 1.0);
        assert_eq!(linear_warmup(0, 0, 0.3, 1.0), 1.0);
    }

    #[test]
    fn cosine_starts_at_base_passes_the_midpoint_and_ends_at_final() {
        assert!(close(cosine_decay(0, 100, 1.0, 0.0), 1.0));
        assert!(close(cosine_decay(50, 100, 1.0, 0.0), 0.5));
        assert!(close(cosine_decay(25, 100, 2.0, 0.0), 1.0 + std::f64::consts::FRAC_1_SQRT_2));
        assert_eq!(cosine_decay(100, 100, 1.0, 0.1), 0.1);
        assert_eq!(cosine_decay(1000, 100, 1.0, 0.1), 0.1);
        // Strictly decreasing in between.
        let v: Vec<f64> = (0..100).map(|s| cosine_decay(s, 100, 1.0, 0.1)).collect();
        assert!(v.windows(2).all(|w| w[1] < w[0]));
        assert!(v[99] > 0.1);
    }

    #[test]
    fn warmup_then_cosine_joins_at_base() {
        let s = CosineSchedule::new(1.0, 0.0, 20).with_warmup(5, 0.0);
        assert_eq!(s.at(0), 0.0);
        assert!(close(s.at(2), 0.5));
        assert_eq!(s.at(4), 1.0);
        assert_eq!(s.at(5), 1.0); // first cosine step is base
        assert!(close(s.at(5 + 15 / 2), 0.5 + 0.5 * (std::f64::consts::PI * 7.0 / 15.0).cos()));
        assert_eq!(s.at(20), 0.0);
        assert_eq!(s.at(10_000), 0.0);
    }

    #[test]
    fn warmup_longer_than_schedule_never_decays() {
        let s = CosineSchedule::new(1.0, 0.0, 3).with_warmup(10, 0.0);
        assert!(close(s.at(1), 0.5));
        assert_eq!(s.at(2), 1.0);
        assert_eq!(s.at(7), 1.0);
    }

    #[test]
    fn dino_schedules_have_the_published_end_points() {
        let wd = dino_weight_decay(1000);
        assert!(close(wd.at(0), 0.04));
        assert!(close(wd.at(500), 0.22));
        assert!(wd.at(999) < 0.4 && wd.at(999) > 0.3999);
        assert_eq!(wd.at(1000), 0.4);
        let m = dino_teacher_momentum(1000);
        assert!(close(m.at(0), 0.996));
        assert!(close(m.at(500), 0.998));
        assert_eq!(m.at(1000), 1.0);
        let m: Vec<f64> = (0..1000).map(|s| m.at(s)).collect();
        assert!(m.windows(2).all(|w| w[1] > w[0]), "EMA momentum rises monotonically to 1");
        let lr = dino_learning_rate(0.0005, 512, 1e-6, 100, 10);
        assert_eq!(lr.at(0), 0.0);
        assert!(close(lr.at(9), 0.001));
        assert!(close(lr.at(10), 0.001));
    }
}
