//! Schedules against DINO's `cosine_scheduler` (facebookresearch/dino, utils.py) run in
//! numpy: the same formula, written independently, evaluated step by step.

use memeguard_training::optim::schedule::{CosineSchedule, dino_teacher_momentum, dino_weight_decay};

/// DINO's function verbatim (with `epochs * niter_per_ep` as `total`).
const DINO: &str = r#"
import sys, numpy as np
def cosine_scheduler(base_value, final_value, total, warmup_iters=0, start_warmup_value=0):
    warmup_schedule = np.array([])
    if warmup_iters > 0:
        warmup_schedule = np.linspace(start_warmup_value, base_value, warmup_iters)
    iters = np.arange(total - warmup_iters)
    schedule = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
    schedule = np.concatenate((warmup_schedule, schedule))
    assert len(schedule) == total
    return schedule
base, final, total, warmup, start = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
print(" ".join(repr(float(v)) for v in cosine_scheduler(base, final, total, warmup, start)))
"#;

fn numpy(s: &CosineSchedule) -> Vec<f64> {
    let args = [
        s.base.to_string(),
        s.final_value.to_string(),
        s.total_steps.to_string(),
        s.warmup_steps.to_string(),
        s.warmup_start.to_string(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = memeguard_onnx::pycheck::run_python(DINO, &args).unwrap();
    out.split_whitespace().map(|v| v.parse().unwrap()).collect()
}

#[test]
fn cosine_schedules_match_dinos_numpy_implementation() {
    let cases = [
        CosineSchedule::new(5e-4, 1e-6, 50).with_warmup(10, 0.0),
        CosineSchedule::new(1.0, 0.1, 37).with_warmup(1, 0.5),
        CosineSchedule::new(0.3, 0.0, 20),
        dino_weight_decay(40),
        dino_teacher_momentum(40),
    ];
    for s in cases {
        let want = numpy(&s);
        assert_eq!(want.len() as u64, s.total_steps);
        for (step, w) in want.iter().enumerate() {
            let got = s.at(step as u64);
            assert!((got - w).abs() <= 1e-12 * (1.0 + w.abs()), "{s:?} step {step}: {got} vs numpy {w}");
        }
    }
}
