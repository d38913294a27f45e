//! What the timing examples share.

use std::time::Instant;

/// Mean milliseconds of `f` over `n` runs after one warm-up run.
pub fn time_ms(n: u32, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed().as_secs_f64() * 1000.0 / f64::from(n)
}
