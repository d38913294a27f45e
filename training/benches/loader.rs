//! Loader throughput: images per second read, decoded, augmented and batched at 224,
//! per core, against the Pillow + numpy pipeline in `scripts/bench_loader_pillow.py`
//! doing the same work on the same files in the same run.
//!
//!     cargo bench -p memeguard-training --bench loader -- [--images 256] [--source 500] [--rounds 3]
//!
//! The work per image (both sides): read the file, decode, RandomResizedCrop to 224
//! (scale 0.08–1, bilinear, antialiased), horizontal flip p=0.5, colour jitter
//! (0.4, 0.4, 0.4, 0.1) with p=0.8, grayscale p=0.2, stack 64 images into one
//! contiguous uint8 NHWC array. The images are synthetic memes of `--source` pixels,
//! once as PNG (as the generator writes them) and once re-encoded as JPEG quality 90
//! (as most memes in the wild). Rounds alternate Rust and Python; medians are printed
//! as a Markdown table for docs/benchmarks.md. Without the Python venv with Pillow
//! (`make setup-test`) only the Rust rows are printed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use image::codecs::jpeg::JpegEncoder;
use memeguard_training::data::augment::{ColorJitter, Interpolation, MultiCrop, Op, ViewPipeline, Views};
use memeguard_training::data::synth::{Difficulty, SynthConfig, generate};
use memeguard_training::data::{HatefulMemes, ImageCheck, Loader, LoaderConfig, Meme, Sampling, Split};

struct Options {
    images: usize,
    source: u32,
    rounds: usize,
    batch: usize,
}

fn options() -> anyhow::Result<Options> {
    let mut o = Options { images: 256, source: 500, rounds: 3, batch: 64 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().context("missing value").and_then(|v| Ok(v.parse::<usize>()?));
        match arg.as_str() {
            "--images" => o.images = value()?,
            "--source" => o.source = value()? as u32,
            "--rounds" => o.rounds = value()?,
            "--batch" => o.batch = value()?,
            "--bench" => {} // added by `cargo bench`
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(o)
}

/// The benchmark's view: the SimCLR/MoCo-style single view the Python script mirrors.
fn bench_views(size: u32) -> Views {
    let ops = vec![
        Op::RandomResizedCrop {
            size,
            scale: [0.08, 1.0],
            ratio: [0.75, 4.0 / 3.0],
            interpolation: Interpolation::Bilinear,
        },
        Op::HorizontalFlip { p: 0.5 },
        Op::RandomApply {
            p: 0.8,
            ops: vec![Op::ColorJitter(ColorJitter { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 })],
        },
        Op::Grayscale { p: 0.2 },
    ];
    Views { views: vec![ViewPipeline { name: "bench".into(), size, ops }] }
}

/// Images per second of one epoch over `memes` with `workers` threads.
fn rust_round(memes: &[Meme], views: &Views, workers: usize, batch: usize, epoch: u64) -> anyhow::Result<f64> {
    let config = LoaderConfig {
        batch_size: batch,
        workers,
        prefetch: 2 * workers,
        sampling: Sampling::Sequential,
        ..LoaderConfig::default()
    };
    let loader = Loader::new(memes.to_vec(), None, views.clone(), config)?;
    let start = Instant::now();
    let mut images = 0;
    for b in loader.epoch(epoch) {
        assert!(b.views.iter().all(|v| v.is_standard_layout()));
        images += b.len();
    }
    let seconds = start.elapsed().as_secs_f64();
    if images != memes.len() {
        bail!("{} of {} images failed", memes.len() - images, memes.len());
    }
    Ok(images as f64 / seconds)
}

fn python_round(python: &Path, list: &Path, batch: usize, seed: u64) -> anyhow::Result<f64> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/bench_loader_pillow.py");
    let out = Command::new(python)
        .arg(&script)
        .arg(list)
        .args(["--size", "224", "--batch", &batch.to_string(), "--seed", &seed.to_string()])
        .output()
        .context("running the Python benchmark")?;
    if !out.status.success() {
        bail!("{}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    v["images_per_second"].as_f64().context("no images_per_second in the Python output")
}

/// Images per second of reading and decoding alone, and of augmenting pre-decoded images
/// alone (one thread): where the time of a loader round goes.
fn breakdown(memes: &[Meme], views: &Views) -> anyhow::Result<(f64, f64)> {
    let limits = memeguard_package::ImageLimits::default();
    let start = Instant::now();
    let decoded = memes
        .iter()
        .map(|m| Ok(memeguard_package::decode_image(&std::fs::read(&m.image)?, &limits)?.image))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let decode = memes.len() as f64 / start.elapsed().as_secs_f64();
    let start = Instant::now();
    let mut checksum = 0u64;
    for (i, image) in decoded.iter().enumerate() {
        let mut rng =
            memeguard_training::data::seed::rng_for(1, memeguard_training::data::seed::Stream::Augment, &[i as u64]);
        for view in &views.views {
            checksum += view.apply(image, &mut rng).as_raw()[0] as u64;
        }
    }
    std::hint::black_box(checksum);
    Ok((decode, memes.len() as f64 / start.elapsed().as_secs_f64()))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Re-encodes every image of `memes` as JPEG quality 90 under `dir`.
fn jpeg_copy(memes: &[Meme], dir: &Path) -> anyhow::Result<Vec<Meme>> {
    std::fs::create_dir_all(dir)?;
    memes
        .iter()
        .map(|m| {
            let image = image::open(&m.image)?.to_rgb8();
            let path = dir.join(format!("{}.jpg", m.id));
            let mut file = std::io::BufWriter::new(std::fs::File::create(&path)?);
            image.write_with_encoder(JpegEncoder::new_with_quality(&mut file, 90))?;
            Ok(Meme { image: path, ..m.clone() })
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    let o = options()?;
    let work = tempfile::tempdir()?;
    let config = SynthConfig {
        train: o.images,
        dev: 0,
        test: 0,
        size: o.source,
        seed: 2024,
        difficulty: Difficulty::Medium,
        concepts: 4,
        ..SynthConfig::default()
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    generate(work.path(), &config, false, threads, &|| {})?;
    let png = HatefulMemes::load(work.path(), ImageCheck::Exists)?.split(Split::Train).to_vec();
    let jpeg = jpeg_copy(&png, &work.path().join("jpeg"))?;
    let python = memeguard_onnx::pycheck::python()
        .ok()
        .filter(|p| Command::new(p).args(["-c", "import PIL, numpy"]).output().is_ok_and(|o| o.status.success()));
    let views = bench_views(224);
    let dino = Views::dino(MultiCrop::default());

    println!(
        "{} images of {}x{} px, batch {}, {} rounds, {} cores visible",
        o.images, o.source, o.source, o.batch, o.rounds, threads
    );
    println!();
    println!(
        "| images | pipeline | Rust 1 worker (img/s) | Rust 2 workers (img/s) | Pillow+numpy 1 process (img/s) | Rust/Pillow per core |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, memes) in [("PNG", &png), ("JPEG q90", &jpeg)] {
        let list: PathBuf = work.path().join(format!("{}.txt", name.replace(' ', "_")));
        std::fs::write(&list, memes.iter().map(|m| m.image.display().to_string() + "\n").collect::<String>())?;
        rust_round(&memes[..o.batch.min(memes.len())], &views, 1, o.batch, 99)?; // warm-up
        let (mut one, mut two, mut py) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..o.rounds {
            one.push(rust_round(memes, &views, 1, o.batch, round as u64)?);
            two.push(rust_round(memes, &views, 2, o.batch, round as u64)?);
            if let Some(p) = &python {
                py.push(python_round(p, &list, o.batch, round as u64)?);
            }
        }
        let (one, two) = (median(one), median(two));
        let (py_cell, ratio) = if py.is_empty() {
            ("n/a".to_string(), "n/a".to_string())
        } else {
            let py = median(py);
            (format!("{py:.0}"), format!("{:.2}x", one / py))
        };
        println!("| {name} | decode + crop 224 + flip + jitter + gray | {one:.0} | {two:.0} | {py_cell} | {ratio} |");
        let (d1, d2): (Vec<f64>, Vec<f64>) = (0..o.rounds)
            .map(|r| {
                Ok((rust_round(memes, &dino, 1, o.batch, r as u64)?, rust_round(memes, &dino, 2, o.batch, r as u64)?))
            })
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        println!(
            "| {name} | DINO multi-crop (2x224 + 8x96, blur, solarise) | {:.0} | {:.0} | – | – |",
            median(d1),
            median(d2)
        );
        let (decode, augment) = breakdown(memes, &views)?;
        println!("| {name} | of which: read + decode only | {decode:.0} | – | – | – |");
        println!("| {name} | of which: crop + flip + jitter + gray only | {augment:.0} | – | – | – |");
    }
    Ok(())
}
