//! Driving the real `memeguard-train` binary from tests: runs that must succeed or fail,
//! tiny synthetic data sets, the tiny recipes shrunk with `--set`, and the files a run
//! directory holds (step log, JSON).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use memeguard_package::{ImageLimits, PackageSession, Preprocessor, SessionOptions};

/// The binary under test, with the environment that would change its device cleared
/// (every run here is on CPU).
pub fn train() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_memeguard-train"));
    cmd.env_remove("MEMEGUARD_DEVICE").env_remove("MEMEGUARD_DATABASE_URL");
    cmd
}

/// A finished run: exit status and both streams as text.
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(out: Output) -> Self {
        Run {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    /// Both streams, for assertion messages.
    pub fn both(&self) -> String {
        format!("--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr)
    }
}

/// Runs `memeguard-train ARGS` and asserts it succeeded.
pub fn ok<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let run = Run::from(train().args(args).output().expect("memeguard-train starts"));
    assert!(run.success, "memeguard-train {:?} failed:\n{}", os_args(args), run.both());
    run
}

/// Runs `memeguard-train ARGS` and asserts it failed.
pub fn fails<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let run = Run::from(train().args(args).output().expect("memeguard-train starts"));
    assert!(!run.success, "memeguard-train {:?} should have failed:\n{}", os_args(args), run.both());
    run
}

fn os_args<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Vec<String> {
    args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect()
}

/// A path as a command-line argument.
pub fn arg(p: &Path) -> String {
    p.to_str().expect("temp paths are UTF-8").to_string()
}

/// A recipe of training/recipes/.
pub fn recipe(name: &str) -> String {
    format!("{}/recipes/{name}.toml", env!("CARGO_MANIFEST_DIR"))
}

/// Image side of the synthetic sets and of the shrunk recipes.
pub const SIZE: u32 = 32;

/// Shrinks any tiny recipe so a run takes seconds in a debug build: 32 px encoders,
/// batches of 16, 16 px DINO local crops, one ONNX Runtime thread (bit-reproducible runs)
/// and one loader worker (the machine is shared).
/// `<command> --recipe training/recipes/<recipe>.toml --data <data>`: how every run starts.
pub fn command_args(command: &str, recipe_name: &str, data: &Path) -> Vec<String> {
    vec![command.to_string(), "--recipe".into(), recipe(recipe_name), "--data".into(), arg(data)]
}

pub fn small() -> Vec<String> {
    let sets = [
        "train.batch_size=16",
        "model.image=resnet-tiny@32",
        "model.cnn=resnet-tiny@32",
        "model.vit=vit-tiny@32",
        "model.local_size=16",
    ];
    let mut args: Vec<String> = sets.iter().flat_map(|s| ["--set".to_string(), s.to_string()]).collect();
    args.extend(["--threads", "1", "--workers", "1", "--quiet"].map(String::from));
    args
}

/// Writes a synthetic set of 32 px memes with `train`, `dev` and `test` memes into `dir`.
pub fn synth(dir: &Path, train: usize, dev: usize, test: usize) -> PathBuf {
    ok(&[
        "synth".to_string(),
        "--out".into(),
        arg(dir),
        "--train".into(),
        train.to_string(),
        "--dev".into(),
        dev.to_string(),
        "--test".into(),
        test.to_string(),
        "--size".into(),
        SIZE.to_string(),
        "--threads".into(),
        "1".into(),
    ]);
    dir.to_path_buf()
}

/// One line of a Hateful Memes split file.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct MemeLine {
    pub id: String,
    pub img: String,
    pub label: u8,
    pub text: String,
}

/// The memes of `<data>/<split>.jsonl`.
pub fn memes(data: &Path, split: &str) -> Vec<MemeLine> {
    std::fs::read_to_string(data.join(format!("{split}.jsonl")))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// One row of a run's `log.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRow {
    pub step: u64,
    pub epoch: u64,
    /// The loss as written (compared as text: a resumed run must write the same digits).
    pub loss_text: String,
    pub loss: f64,
    /// The embedding spread (CASS, CASS-MM), empty for other objectives.
    pub spread: Option<f64>,
}

/// The step log of a run directory, header checked.
pub fn step_log(run: &Path) -> Vec<LogRow> {
    let text =
        std::fs::read_to_string(run.join("log.csv")).unwrap_or_else(|e| panic!("{}/log.csv: {e}", run.display()));
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("step,epoch,loss,lr,grad_norm,embedding_spread"), "{}/log.csv header", run.display());
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 6, "log.csv row `{l}`");
            LogRow {
                step: f[0].parse().unwrap(),
                epoch: f[1].parse().unwrap(),
                loss_text: f[2].to_string(),
                loss: f[2].parse().unwrap(),
                spread: (!f[5].is_empty()).then(|| f[5].parse().unwrap()),
            }
        })
        .collect()
}

/// Mean loss of one epoch of a step log.
pub fn epoch_mean(log: &[LogRow], epoch: u64) -> f64 {
    let losses: Vec<f64> = log.iter().filter(|r| r.epoch == epoch).map(|r| r.loss).collect();
    assert!(!losses.is_empty(), "no step of epoch {epoch} in the log");
    losses.iter().sum::<f64>() / losses.len() as f64
}

/// A JSON file of a run directory or package.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Asserts `path` is an SVG image with some content.
pub fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.contains("<svg") && text.contains("</svg>") && text.len() > 1000, "{} is not a plot", path.display());
}

/// Probabilities of `pkg` for memes of `data`, through the server's own path
/// (decode, resize, tokenise, ONNX Runtime session of the package).
pub fn package_scores(pkg: &memeguard_package::ModelPackage, data: &Path, memes: &[MemeLine]) -> Vec<f32> {
    let pre = Preprocessor::for_package(pkg);
    let items: Vec<_> = memes
        .iter()
        .map(|m| {
            pre.prepare_bytes(&std::fs::read(data.join(&m.img)).unwrap(), &m.text, &ImageLimits::default()).unwrap()
        })
        .collect();
    let mut session = PackageSession::new(pkg, &SessionOptions::default()).unwrap();
    session.score(&pre.collate(&items)).unwrap()
}
