//! Independent checks through Python's `onnx` package (the official checker and
//! reference evaluator), used by tests. `make setup-test` installs it into
//! `.cache/venv`; `MEMEGUARD_PYTHON` can point at another interpreter that has it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter with `onnx` and `numpy`, or a message saying how to get one.
pub fn python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("MEMEGUARD_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.cache/venv/bin/python");
    if venv.exists() {
        Ok(venv)
    } else {
        Err(format!("{} is missing: run `make setup-test` (or set MEMEGUARD_PYTHON)", venv.display()))
    }
}

/// Runs a Python snippet with `argv[1..]` = `args`; returns stdout or stdout+stderr as the error.
pub fn run_python(script: &str, args: &[&str]) -> Result<String, String> {
    let py = python()?;
    let out = Command::new(py).arg("-c").arg(script).args(args).output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() { Ok(stdout) } else { Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr))) }
}

/// `onnx.checker.check_model(path, full_check=True)` (full check includes shape inference).
pub fn onnx_checker(path: &Path) -> Result<(), String> {
    run_python(
        "import sys, onnx\nonnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)\nprint('ok')",
        &[&path.display().to_string()],
    )
    .map(|_| ())
}
