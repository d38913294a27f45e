//! Parameter initialisation as the reference implementations do it, seeded and
//! reproducible.
//!
//! Every parameter draws from its own random stream, seeded from the model seed and
//! the parameter's name. A parameter's initial value therefore depends only on
//! (seed, name, shape, rule): adding a layer elsewhere, or building in another
//! order, does not change it, and the `Train` and `Infer` builds of one model agree.

/// How a parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros (biases, norm β).
    Zeros,
    /// All ones (norm γ, frozen weight-norm magnitudes).
    Ones,
    /// Normal(0, std).
    Normal { std: f32 },
    /// Normal(0, std) truncated to `[-bound, bound]` by redrawing, like PyTorch's
    /// `trunc_normal_(std=std, a=-bound, b=bound)`. timm and DINO call it with the
    /// default absolute bounds ±2, which for σ = 0.02 cuts nothing in practice; we keep
    /// the reference's bounds rather than inventing ±2σ.
    TruncNormal { std: f32, bound: f32 },
    /// Kaiming (He) normal with `mode="fan_out"`, `nonlinearity="relu"`, as torchvision
    /// initialises ResNet convolutions: std = sqrt(2 / fan_out), where fan_out =
    /// out_channels × kernel area (the shape's first dimension times the rest after
    /// the second).
    KaimingNormalFanOut,
}

impl Init {
    /// Truncated normal with σ = 0.02 and the reference's absolute bounds ±2 (ViT,
    /// linear layers, embeddings).
    pub const TRUNC_002: Init = Init::TruncNormal { std: 0.02, bound: 2.0 };
}

/// Fills a tensor of `shape` for the parameter `name` of a model seeded with `seed`.
pub fn generate(init: Init, shape: &[i64], seed: u64, name: &str) -> Vec<f32> {
    let n = shape.iter().product::<i64>().max(0) as usize;
    match init {
        Init::Zeros => vec![0.0; n],
        Init::Ones => vec![1.0; n],
        Init::Normal { std } => {
            let mut normals = Normals::new(seed, name);
            (0..n).map(|_| std * normals.next()).collect()
        }
        Init::TruncNormal { std, bound } => {
            let mut normals = Normals::new(seed, name);
            (0..n)
                .map(|_| {
                    loop {
                        let v = std * normals.next();
                        if v.abs() <= bound {
                            break v;
                        }
                    }
                })
                .collect()
        }
        Init::KaimingNormalFanOut => {
            let std = (2.0 / fan_out(shape) as f64).sqrt() as f32;
            let mut normals = Normals::new(seed, name);
            (0..n).map(|_| std * normals.next()).collect()
        }
    }
}

/// fan_out of a weight laid out like PyTorch's conv weights `[out, in, k...]`:
/// out × product of the kernel dims (1 for rank < 3).
fn fan_out(shape: &[i64]) -> i64 {
    let out = shape.first().copied().unwrap_or(1);
    let receptive: i64 = shape.iter().skip(2).product();
    (out * receptive).max(1)
}

/// The seed of one parameter's stream: the model seed mixed with an FNV-1a hash of
/// the name through SplitMix64, so nearby seeds and similar names give unrelated
/// streams.
pub fn stream_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        h ^= byte as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    splitmix64(seed ^ splitmix64(h))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Standard normal samples by the Box–Muller transform (two per pair of uniforms)
/// from a SplitMix64 stream. SplitMix64 passes BigCrush, which is more than weight
/// initialisation needs, and unlike ChaCha it stays fast in unoptimised (test)
/// builds: drawing ViT-B/16's 86 M weights must not take minutes there.
struct Normals {
    state: u64,
    spare: Option<f32>,
}

impl Normals {
    fn new(seed: u64, name: &str) -> Self {
        Normals { state: stream_seed(seed, name), spare: None }
    }

    /// A uniform double in [0, 1) from the top 53 bits of the next output.
    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn next(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        // u1 in (0, 1] so that ln(u1) is finite.
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (sin, cos) = (std::f64::consts::TAU * u2).sin_cos();
        self.spare = Some((r * sin) as f32);
        (r * cos) as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_std(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    #[test]
    fn kaiming_fan_out_has_the_torchvision_std() {
        // A 3×3 conv with 64 outputs: std = sqrt(2 / (64·9)).
        let v = generate(Init::KaimingNormalFanOut, &[64, 32, 3, 3], 1, "conv.weight");
        let (mean, std) = mean_std(&v);
        let want = (2.0f64 / (64.0 * 9.0)).sqrt();
        assert!(mean.abs() < 0.01 * want * 10.0, "mean {mean}");
        assert!((std / want - 1.0).abs() < 0.03, "std {std}, want {want}");
    }

    #[test]
    fn truncated_normal_respects_its_bounds_and_std() {
        let v = generate(Init::TruncNormal { std: 1.0, bound: 1.0 }, &[20000], 3, "w");
        assert!(v.iter().all(|x| x.abs() <= 1.0));
        // Std of a standard normal truncated to [-1, 1] is 0.5396.
        let (_, std) = mean_std(&v);
        assert!((std - 0.5396).abs() < 0.01, "std {std}");
        let v = generate(Init::TRUNC_002, &[20000], 3, "w");
        let (_, std) = mean_std(&v);
        assert!((std - 0.02).abs() < 0.0006, "std {std}");
    }

    #[test]
    fn streams_depend_on_seed_and_name_only() {
        let a = generate(Init::Normal { std: 1.0 }, &[8], 7, "a.weight");
        assert_eq!(a, generate(Init::Normal { std: 1.0 }, &[8], 7, "a.weight"));
        assert_ne!(a, generate(Init::Normal { std: 1.0 }, &[8], 8, "a.weight"));
        assert_ne!(a, generate(Init::Normal { std: 1.0 }, &[8], 7, "b.weight"));
        assert_eq!(generate(Init::Zeros, &[2, 3], 0, "b"), vec![0.0; 6]);
        assert_eq!(generate(Init::Ones, &[4], 0, "g"), vec![1.0; 4]);
    }
}
