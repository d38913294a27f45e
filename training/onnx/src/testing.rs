//! Deterministic helpers shared by the tests and checks of every crate.

/// A tiny deterministic generator (Knuth's MMIX LCG): seeded test inputs and weights,
/// the same on every machine. Tests need no statistical quality; training randomness
/// does not come from here.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// Advances the state and returns it.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0
    }
    /// The state's top 31 bits (the low bits of an LCG are poor).
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 33) as u32
    }
    /// Uniform in [0, 1), 53 bits.
    pub fn unit_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u32() as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::Lcg;

    #[test]
    fn draws_cover_their_ranges() {
        let mut rng = Lcg(3);
        let u: Vec<f32> = (0..1000).map(|_| rng.uniform()).collect();
        assert!(u.iter().all(|v| (-1.0..1.0).contains(v)));
        assert!(u.iter().any(|&v| v < -0.5) && u.iter().any(|&v| v > 0.5));
        let f: Vec<f64> = (0..1000).map(|_| rng.unit_f64()).collect();
        assert!(f.iter().all(|v| (0.0..1.0).contains(v)) && f.iter().any(|&v| v > 0.9));
    }
}
