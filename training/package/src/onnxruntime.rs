//! Finding and loading ONNX Runtime 1.31 (`ort` with `load-dynamic`), and creating
//! sessions on CPU or CUDA. Both binaries and every test go through here, so the
//! "library missing" message is the same everywhere.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

/// The ONNX Runtime version this build is made and tested for.
pub const ORT_VERSION: &str = "1.31.1";
/// The library file name inside the PyPI wheel.
pub const ORT_LIB_NAME: &str = "libonnxruntime.so.1.31.1";

/// Where a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// A CUDA device by ordinal.
    Cuda(i32),
}

impl std::str::FromStr for Device {
    type Err = String;
    /// Parses `cpu`, `cuda` or `cuda:N`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Device::Cpu),
            "cuda" | "gpu" => Ok(Device::Cuda(0)),
            other => match other.strip_prefix("cuda:").map(str::parse::<i32>) {
                Some(Ok(n)) if n >= 0 => Ok(Device::Cuda(n)),
                _ => Err(format!("unknown device `{s}`: use `cpu`, `cuda` or `cuda:N`")),
            },
        }
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// Errors setting up ONNX Runtime or creating a session.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "ONNX Runtime {ORT_VERSION} was not found (looked for {}).\n\
         Run `make onnxruntime` (it takes {ORT_LIB_NAME} from the PyPI wheel onnxruntime=={ORT_VERSION} \
         into .cache/onnxruntime/), or set ORT_DYLIB_PATH to an existing {ORT_LIB_NAME}.",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    LibraryNotFound { searched: Vec<PathBuf> },
    #[error(
        "ONNX Runtime at {path} could not be loaded: {message}.\n\
         memeguard needs ONNX Runtime {ORT_VERSION}: run `make onnxruntime`, or point ORT_DYLIB_PATH at {ORT_LIB_NAME}."
    )]
    Load { path: PathBuf, message: String },
    #[error(
        "CUDA was requested ({device}) but ONNX Runtime could not use it: {message}.\n\
         Install the GPU build with `make onnxruntime-gpu` (onnxruntime-gpu=={ORT_VERSION}, CUDA 13, cuDNN 9) \
         and make sure an NVIDIA driver is present, or use --device cpu."
    )]
    CudaUnavailable { device: Device, message: String },
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
}

static ENVIRONMENT: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The places searched for the library, in order, when `ORT_DYLIB_PATH` is unset.
pub fn candidate_paths() -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        paths.push(dir.join(ORT_LIB_NAME));
        paths.push(dir.join("../lib").join(ORT_LIB_NAME));
    }
    // The repository's cache folder, filled by scripts/onnxruntime.sh (GPU build first:
    // it also runs on CPU).
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for variant in ["gpu", "cpu"] {
        paths.push(repo.join(".cache/onnxruntime").join(variant).join(ORT_LIB_NAME));
    }
    paths.push(PathBuf::from("/usr/local/lib").join(ORT_LIB_NAME));
    paths.push(PathBuf::from("/usr/lib").join(ORT_LIB_NAME));
    paths
}

/// Resolves the library path: `ORT_DYLIB_PATH` wins, then [`candidate_paths`].
pub fn library_path() -> Result<PathBuf, RuntimeError> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.exists() { Ok(p) } else { Err(RuntimeError::LibraryNotFound { searched: vec![p] }) };
    }
    let candidates = candidate_paths();
    candidates
        .iter()
        .find(|p| p.exists())
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .ok_or(RuntimeError::LibraryNotFound { searched: candidates })
}

/// Loads ONNX Runtime once per process and returns the shared environment.
pub fn environment() -> Result<&'static Environment, RuntimeError> {
    let result = ENVIRONMENT.get_or_init(|| {
        let path = library_path().map_err(|e| e.to_string())?;
        let builder = ort::init_from(&path)
            .map_err(|e| RuntimeError::Load { path: path.clone(), message: e.to_string() }.to_string())?;
        builder
            .with_name("memeguard")
            .build()
            .map_err(|e| RuntimeError::Load { path, message: e.to_string() }.to_string())
    });
    match result {
        Ok(env) => Ok(env),
        // The first failure is kept as text (errors are not Clone); re-resolve to give
        // the caller a typed error with the same message.
        Err(message) => Err(match library_path() {
            Err(e) => e,
            Ok(path) => RuntimeError::Load { path, message: message.clone() },
        }),
    }
}

/// Options for a new session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub device: Device,
    /// Intra-op threads; 0 lets ONNX Runtime choose.
    pub threads: usize,
    /// Full graph optimisation (inference). Training graphs keep it on too; set false
    /// to debug a graph node by node.
    pub optimize: bool,
    /// Deterministic kernels (CPU runs give identical results for a seed).
    pub deterministic: bool,
    /// Whether idle intra-op threads spin waiting for work (ONNX Runtime's default). A
    /// server that runs a batch now and then turns it off: spinning threads burn the
    /// cores that decoding and preprocessing need between batches.
    pub intra_op_spinning: bool,
    /// How far ONNX Runtime rewrites the graph when `optimize` is on (`All`, the
    /// default, adds layout transforms such as NCHWc convolutions to `Extended`).
    pub optimization_level: OptimizationLevel,
    /// ONNX Runtime's memory-pattern planning (on by default): allocations of a run are
    /// planned from the previous run's when input shapes repeat.
    pub memory_pattern: bool,
    /// Flush denormal floats to zero in kernels (`session.set_denormal_as_zero`; off by
    /// default). Values below ~1.2e-38 become 0.
    pub denormal_as_zero: bool,
}

/// Graph optimisation levels of ONNX Runtime (used when [`SessionOptions::optimize`] is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OptimizationLevel {
    /// Constant folding and redundant-node elimination.
    Basic,
    /// `Basic` plus node fusions (GELU, LayerNorm, attention, ...).
    Extended,
    /// `Extended` plus layout optimisations.
    #[default]
    All,
}

impl std::str::FromStr for OptimizationLevel {
    type Err = String;
    /// Parses `basic`, `extended` or `all`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "basic" => Ok(OptimizationLevel::Basic),
            "extended" => Ok(OptimizationLevel::Extended),
            "all" => Ok(OptimizationLevel::All),
            _ => Err(format!("unknown optimisation level `{s}`: use basic, extended or all")),
        }
    }
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            device: Device::Cpu,
            threads: 0,
            optimize: true,
            deterministic: false,
            intra_op_spinning: true,
            optimization_level: OptimizationLevel::All,
            memory_pattern: true,
            denormal_as_zero: false,
        }
    }
}

/// A session builder configured for `opts` (device, threads, optimisation).
pub fn session_builder(opts: &SessionOptions) -> Result<SessionBuilder, RuntimeError> {
    let env = environment()?;
    let mut builder = Session::builder(env)?;
    builder = builder
        .with_optimization_level(match (opts.optimize, opts.optimization_level) {
            (false, _) => GraphOptimizationLevel::Disable,
            (true, OptimizationLevel::Basic) => GraphOptimizationLevel::Level1,
            (true, OptimizationLevel::Extended) => GraphOptimizationLevel::Level2,
            (true, OptimizationLevel::All) => GraphOptimizationLevel::All,
        })
        .map_err(ort::Error::from)?;
    if opts.threads > 0 {
        builder = builder.with_intra_threads(opts.threads).map_err(ort::Error::from)?;
    }
    if opts.deterministic {
        builder = builder.with_deterministic_compute(true).map_err(ort::Error::from)?;
    }
    if !opts.intra_op_spinning {
        // The `session.intra_op.allow_spinning` config entry.
        builder = builder.with_intra_op_spinning(false).map_err(ort::Error::from)?;
    }
    if !opts.memory_pattern {
        builder = builder.with_memory_pattern(false).map_err(ort::Error::from)?;
    }
    if opts.denormal_as_zero {
        builder = builder.with_flush_to_zero().map_err(ort::Error::from)?;
    }
    if let Device::Cuda(id) = opts.device {
        let ep = ort::ep::CUDA::default().with_device_id(id).build().error_on_failure();
        builder = builder.with_execution_providers([ep]).map_err(|e| RuntimeError::CudaUnavailable {
            device: opts.device,
            message: ort::Error::<()>::from(e).to_string(),
        })?;
    }
    Ok(builder)
}

/// Creates a session from a model file (ONNX Runtime reads it; nothing is kept here).
pub fn session_from_file(path: &std::path::Path, opts: &SessionOptions) -> Result<Session, RuntimeError> {
    let mut builder = session_builder(opts)?;
    Ok(builder.commit_from_file(path)?)
}

/// Creates a session from model bytes.
pub fn session_from_bytes(bytes: &[u8], opts: &SessionOptions) -> Result<Session, RuntimeError> {
    let mut builder = session_builder(opts)?;
    Ok(builder.commit_from_memory(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("cuda".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:3".parse::<Device>().unwrap(), Device::Cuda(3));
        assert!("tpu".parse::<Device>().unwrap_err().contains("cuda:N"));
        assert!("cuda:-1".parse::<Device>().is_err());
    }

    #[test]
    fn missing_library_message_says_what_to_run() {
        let e = RuntimeError::LibraryNotFound { searched: vec![PathBuf::from("/x")] };
        let text = e.to_string();
        assert!(text.contains("make onnxruntime") && text.contains("ORT_DYLIB_PATH") && text.contains("/x"), "{text}");
    }
}
