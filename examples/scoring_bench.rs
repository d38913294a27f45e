//! Load generator for the scoring service: throughput and p50/p99 latency at several
//! concurrencies, in one run, against
//!
//! 1. the model alone: one session scoring pre-collated full batches (the ceiling);
//! 2. the in-process scorer: decode + preprocessing + queue + dynamic batching + model;
//! 3. the HTTP server: JSON with a base64 PNG → auth → decode → scorer → decision
//!    committed to SQLite (WAL, synchronous=FULL) → JSON response, over loopback.
//!
//! Same model package (the untrained placeholder: 224×224 image, 32 tokens), same PNG and
//! text everywhere. Results go to stdout as a Markdown table.
//!
//! The scorer and the HTTP server are measured in alternating slices (`--rounds`), so a
//! change in the machine's load hits both alike; `--seconds` is each one's total.
//!
//!   cargo run --release -p memeguard --example scoring_bench -- [--seconds 5] [--concurrency 1,8,32] [--threads 1]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use memeguard::auth::Role;
use memeguard::config::ServeConfig;
use memeguard::db::keys;
use memeguard::scoring::ScoreInput;
use memeguard::state::AppState;
use memeguard_package::{ModelPackage, PackageSession, Preprocessor, decode_image};
use serde_json::json;

struct Options {
    seconds: f64,
    concurrency: Vec<usize>,
    max_batch_size: u32,
    /// ONNX Runtime intra-op threads (0: its default, one per core).
    threads: usize,
    /// Alternating slices per measurement.
    rounds: usize,
}

fn options() -> Options {
    let mut o = Options { seconds: 5.0, concurrency: vec![1, 8, 32], max_batch_size: 32, threads: 0, rounds: 4 };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        match (pair[0].as_str(), pair.get(1)) {
            ("--seconds", Some(v)) => o.seconds = v.parse().expect("--seconds N"),
            ("--concurrency", Some(v)) => {
                o.concurrency = v.split(',').map(|c| c.parse().expect("--concurrency 1,8,32")).collect()
            }
            ("--max-batch-size", Some(v)) => o.max_batch_size = v.parse().expect("--max-batch-size N"),
            ("--threads", Some(v)) => o.threads = v.parse().expect("--threads N"),
            ("--rounds", Some(v)) => o.rounds = v.parse().expect("--rounds N"),
            _ => panic!(
                "usage: scoring_bench [--seconds S] [--concurrency 1,8,32] [--max-batch-size N] [--threads N] [--rounds N]"
            ),
        }
    }
    o
}

/// A meme-like JPEG (500×500, quality 85: smooth areas, edges and a caption band), the
/// size of a typical meme upload (tens of kB).
fn sample_image() -> Vec<u8> {
    use image::ImageEncoder as _;
    let img = image::RgbImage::from_fn(500, 500, |x, y| {
        let (fx, fy) = (x as f32 / 500.0, y as f32 / 500.0);
        let blob = ((fx - 0.5).powi(2) + (fy - 0.45).powi(2)).sqrt() < 0.25;
        let caption = !(60..440).contains(&y) && (x / 14 + y / 20) % 3 == 0;
        match (caption, blob) {
            (true, _) => image::Rgb([250, 250, 250]),
            (false, true) => image::Rgb([(200.0 * fx) as u8 + 30, 120, (180.0 * fy) as u8]),
            (false, false) => image::Rgb([(90.0 + 60.0 * fy) as u8, (140.0 * fx) as u8 + 40, 170]),
        }
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .write_image(img.as_raw(), 500, 500, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

const TEXT: &str = "when the meme text is long enough to fill a few tokens of the caption";

/// Requests per second and latency percentiles of one measurement.
struct Measurement {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: usize,
}

fn summarise(mut latencies: Vec<Duration>, elapsed: Duration) -> Measurement {
    latencies.sort();
    let pick = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1000.0;
    Measurement {
        throughput: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
        requests: latencies.len(),
    }
}

/// Runs `concurrency` workers calling `one` back to back for `seconds` after a short
/// warm-up; returns the latencies of the calls started in the window, and its length.
async fn run<F, Fut>(concurrency: usize, seconds: f64, one: Arc<F>) -> (Vec<Duration>, Duration)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now() + Duration::from_millis(300);
    let end = start + Duration::from_secs_f64(seconds);
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let t = Instant::now();
                    if t >= end {
                        break;
                    }
                    one().await;
                    if t >= start {
                        latencies.push(t.elapsed());
                    }
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    (all, end - start)
}

/// Measures `a` and `b` in alternating slices (`rounds` each), so that a change in the
/// machine's load during the run affects both alike.
async fn measure_pair<A, FA, B, FB>(
    concurrency: usize,
    seconds: f64,
    rounds: usize,
    a: A,
    b: B,
) -> (Measurement, Measurement)
where
    A: Fn() -> FA + Send + Sync + 'static,
    FA: std::future::Future<Output = ()> + Send,
    B: Fn() -> FB + Send + Sync + 'static,
    FB: std::future::Future<Output = ()> + Send,
{
    let (a, b) = (Arc::new(a), Arc::new(b));
    let slice = seconds / rounds as f64;
    let (mut la, mut ta, mut lb, mut tb) = (Vec::new(), Duration::ZERO, Vec::new(), Duration::ZERO);
    for _ in 0..rounds {
        let (l, t) = run(concurrency, slice, a.clone()).await;
        la.extend(l);
        ta += t;
        let (l, t) = run(concurrency, slice, b.clone()).await;
        lb.extend(l);
        tb += t;
    }
    (summarise(la, ta), summarise(lb, tb))
}

#[tokio::main]
async fn main() {
    let opts = options();
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let database_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let config = ServeConfig::from_flags([
        "--database-url",
        &database_url,
        "--models-dir",
        &models.display().to_string(),
        "--max-batch-size",
        &opts.max_batch_size.to_string(),
        "--queue-capacity",
        "4096",
        // The models directory is a fresh temporary path: serve the placeholder from it.
        "--allow-placeholder",
        "--threads",
        &opts.threads.to_string(),
    ])
    .unwrap();
    let state = AppState::start(config).await.expect("start");
    let model = state.scorer.registry().current().expect("a model");
    println!(
        "model: {} | max batch {} | max wait {} ms | ORT threads {} | cores: {}",
        model.id(),
        opts.max_batch_size,
        state.config.max_wait_ms,
        opts.threads,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    drop(model);

    let png = Arc::new(sample_image());
    println!("input: {} byte JPEG 500×500 + a {}-character text", png.len(), TEXT.len());
    let limits = state.image_limits();

    // 1. The model alone: full pre-collated batches, one session, no queue.
    let package = ModelPackage::open(&models.join("placeholder/0.0.0")).unwrap();
    let pre = Preprocessor::for_package(&package);
    let decoded = decode_image(&png, &limits).unwrap();
    let batch = pre.collate(&vec![pre.prepare(&decoded, TEXT); opts.max_batch_size as usize]);
    let mut session = PackageSession::new(&package, &state.config.session_options()).unwrap();
    session.score(&batch).unwrap();
    let started = Instant::now();
    let mut pairs = 0;
    while started.elapsed().as_secs_f64() < opts.seconds {
        pairs += session.score(&batch).unwrap().len();
    }
    let model_only = pairs as f64 / started.elapsed().as_secs_f64();
    drop(session);
    println!("\nmodel alone (batches of {}): {model_only:.0} pairs/s\n", opts.max_batch_size);

    // 2 and 3, per concurrency.
    let key = keys::create(&state.db, "bench", Role::Scorer).await.unwrap().secret;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(axum::serve(listener, memeguard::app(state.clone())).into_future());
    let body = Bytes::from(
        serde_json::to_vec(&json!({"input": [{"type": "text", "text": TEXT}, {"type": "image_url", "image_url": {"url": format!("data:image/jpeg;base64,{}", base64_encode(&png))}}]}))
            .unwrap(),
    );
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build_http();

    println!(
        "| concurrency | scorer pairs/s | scorer p50 ms | scorer p99 ms | HTTP req/s | HTTP p50 ms | HTTP p99 ms | HTTP / scorer | HTTP p99 / p50 |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &c in &opts.concurrency {
        let scorer = state.scorer.clone();
        let png2 = png.clone();
        let first_id = last_decision_id(&state).await;
        let (client2, body2, key2) = (client.clone(), body.clone(), key.clone());
        let url = format!("http://{address}/v1/moderations");
        let scorer_call = move || {
            let (scorer, png) = (scorer.clone(), png2.clone());
            async move {
                let image = tokio::task::spawn_blocking(move || decode_image(&png, &limits).unwrap()).await.unwrap();
                scorer.score(vec![ScoreInput { image: Some(image), text: TEXT.into() }]).await.unwrap();
            }
        };
        let http_call = move || {
            let (client, body, key, url) = (client2.clone(), body2.clone(), key2.clone(), url.clone());
            async move {
                let request = hyper::Request::post(url)
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {key}"))
                    .body(Full::new(body))
                    .unwrap();
                let response = client.request(request).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
            }
        };
        let (in_process, http) = measure_pair(c, opts.seconds, opts.rounds, scorer_call, http_call).await;
        println!(
            "| {c} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.2} | {:.2} |",
            in_process.throughput,
            in_process.p50_ms,
            in_process.p99_ms,
            http.throughput,
            http.p50_ms,
            http.p99_ms,
            http.throughput / in_process.throughput,
            http.p99_ms / http.p50_ms
        );
        let scored_ms = server_latencies(&state, first_id).await;
        eprintln!(
            "(concurrency {c}: {} scorer calls, {} HTTP requests measured; server-side arrival→scored p50 {:.1} ms, p99 {:.1} ms)",
            in_process.requests, http.requests, scored_ms.0, scored_ms.1
        );
    }
    state.shutdown().await;
}

async fn last_decision_id(state: &AppState) -> i64 {
    memeguard::with_pool!(&state.db, pool => {
        sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(id), 0) FROM decisions").fetch_one(pool).await.unwrap()
    })
}

/// p50 and p99 of the recorded latency (handler start → scores back) after `after_id`.
async fn server_latencies(state: &AppState, after_id: i64) -> (f64, f64) {
    let mut ms: Vec<f64> = memeguard::with_pool!(&state.db, pool => {
        sqlx::query_scalar::<_, f64>("SELECT latency_ms FROM decisions WHERE id > $1").bind(after_id).fetch_all(pool).await.unwrap()
    });
    ms.sort_by(f64::total_cmp);
    let pick = |q: f64| ms.get(((ms.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    (pick(0.5), pick(0.99))
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
