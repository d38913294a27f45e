#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, idempotently:
# a Python virtualenv in .cache/venv with onnx (checker, reference evaluator), onnxruntime
# (plain-Python runs of generated training steps), numpy, and
# Pillow (the Python side of the loader benchmark, scripts/bench_loader_pillow.py).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/.cache/venv
stamp=$venv/.memeguard-test-deps-3
if [ ! -f "$stamp" ]; then
  python3 -m venv "$venv" 2>/dev/null || { rm -rf "$venv"; python3 -m virtualenv "$venv"; }
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'onnx==1.23.2' 'onnxruntime==1.31.1' 'numpy<3' 'pillow>=10'
  touch "$stamp"
fi
