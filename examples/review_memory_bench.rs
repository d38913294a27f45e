//! Cost of a review-memory lookup per scored pair, with N reviewed decisions in memory
//! (synthetic signals: random PDQ hashes of quality 100, random normalised-text hashes
//! shared by groups of 10, random unit joint embeddings of width `--dim`), and the memory
//! each remembered decision takes.
//!
//!     cargo run --release -p memeguard --example review_memory_bench -- --sizes 10000,100000 --dim 1024
//!
//! Each lookup misses (an unrelated pair), so every stage runs in full: the exact hash
//! probe, the PDQ scan over the decisions with the same normalised text, the embedding
//! scan. `--texts 1`: every reviewed decision shares the query's text (image-only memes),
//! the PDQ stage's worst case.

use std::time::Instant;

use memeguard::db::DbTime;
use memeguard::db::reviews::Label;
use memeguard::memory::pdq::PdqHash;
use memeguard::memory::{Entry, MemoryConfig, MemoryMode, ReviewMemory, Signals};
use rand::{Rng, SeedableRng};

fn unit(rng: &mut impl Rng, dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim).map(|_| rng.random::<f32>() - 0.5).collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

fn signals(rng: &mut impl Rng, dim: usize, text_group: u64) -> Signals {
    Signals {
        image_sha256: Some(format!("{:064x}", rng.random::<u128>())),
        pdq: Some(PdqHash { words: std::array::from_fn(|_| rng.random()) }),
        pdq_quality: Some(100),
        text_norm_sha256: format!("{text_group:064x}"),
        embedding: (dim > 0).then(|| unit(rng, dim)),
    }
}

fn resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str, default: &str| {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| default.into())
    };
    let sizes: Vec<usize> = flag("--sizes", "10000,100000").split(',').map(|s| s.parse().unwrap()).collect();
    let dim: usize = flag("--dim", "1024").parse().unwrap();
    let lookups: usize = flag("--lookups", "200").parse().unwrap();
    // Distinct normalised texts among the reviewed decisions (0: one per 10 decisions).
    // 1 is the worst case for PDQ: every picture shares the query's text (image-only memes).
    let texts: u64 = flag("--texts", "0").parse().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    println!(
        "joint embedding width {dim}; texts {texts} (0: one per 10 decisions); {lookups} lookups per size, all misses"
    );
    for n in sizes {
        let before = resident_kib().unwrap_or(0);
        let memory = ReviewMemory::new(MemoryConfig {
            mode: MemoryMode::All,
            pdq_distance: 31,
            similarity: 0.9,
            k: 5,
            poll_ms: 0,
        });
        let built = Instant::now();
        for id in 0..n as i64 {
            let groups = if texts == 0 { (n as u64 / 10).max(1) } else { texts };
            let signals = signals(&mut rng, dim, id as u64 % groups);
            let entry = Entry {
                decision_id: id,
                review_id: id,
                label: if id % 3 == 0 { Label::Hateful } else { Label::NotHateful },
                reviewed_at: DbTime::now(),
                model: "bench@1".into(),
                signals,
            };
            memory.put(id, Some(entry));
        }
        let build_s = built.elapsed().as_secs_f64();
        let after = resident_kib().unwrap_or(0);
        // Queries share a text group with stored entries, so the PDQ stage compares hashes.
        let queries: Vec<Signals> = (0..lookups).map(|i| signals(&mut rng, dim, i as u64 % 10)).collect();
        let mut hits = 0;
        let started = Instant::now();
        for q in &queries {
            hits += usize::from(memory.lookup(q, "bench@1", 0.5).is_some());
        }
        let per = started.elapsed().as_secs_f64() / lookups as f64;
        let no_embedding: Vec<Signals> = queries.iter().cloned().map(|q| Signals { embedding: None, ..q }).collect();
        let started = Instant::now();
        for q in &no_embedding {
            hits += usize::from(memory.lookup(q, "bench@1", 0.5).is_some());
        }
        let per_hashes = started.elapsed().as_secs_f64() / lookups as f64;
        println!(
            "{n:>8} reviewed: lookup {:>9.3} ms (exact+pdq only {:>7.3} ms); built in {build_s:.2} s; \
             ~{:.0} bytes per decision resident; {hits} hits",
            per * 1e3,
            per_hashes * 1e3,
            (after.saturating_sub(before) * 1024) as f64 / n as f64
        );
        drop(memory);
    }
}
