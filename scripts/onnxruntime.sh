#!/usr/bin/env bash
# Provides ONNX Runtime 1.31.1 for memeguard's `ort` (load-dynamic) from PyPI wheels.
#
#   scripts/onnxruntime.sh          # CPU: .cache/onnxruntime/cpu/libonnxruntime.so.1.31.1
#   scripts/onnxruntime.sh gpu      # CUDA 13 build + CUDA/cuDNN libraries: .cache/onnxruntime/gpu/
#
# Nothing happens when ORT_DYLIB_PATH is set (the user brings ONNX Runtime 1.31) or the
# library is already in the cache. Only PyPI is contacted, through pip.
set -euo pipefail

VERSION=1.31.1
variant=${1:-cpu}
root=$(cd "$(dirname "$0")/.." && pwd)
lib=libonnxruntime.so.$VERSION

if [ -n "${ORT_DYLIB_PATH:-}" ]; then
  if [ -f "$ORT_DYLIB_PATH" ]; then
    echo "onnxruntime: using ORT_DYLIB_PATH=$ORT_DYLIB_PATH"
    exit 0
  fi
  echo "onnxruntime: ORT_DYLIB_PATH=$ORT_DYLIB_PATH does not exist; unset it or fix the path" >&2
  exit 1
fi

case "$variant" in
  cpu) package=onnxruntime ;;
  gpu) package=onnxruntime-gpu ;;
  *) echo "usage: $0 [cpu|gpu]" >&2; exit 2 ;;
esac

dest=$root/.cache/onnxruntime/$variant
if [ -f "$dest/$lib" ]; then
  exit 0
fi

python=${PYTHON:-python3}
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "onnxruntime: need Python 3 with pip to fetch $package==$VERSION from PyPI (apt-get install python3-pip)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "onnxruntime: fetching $package==$VERSION from PyPI"
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
  "$package==$VERSION" -d "$tmp"
wheel=$(ls "$tmp"/*.whl)
mkdir -p "$dest.partial"
( cd "$tmp" && "$python" -m zipfile -e "$wheel" unpacked )
cp "$tmp"/unpacked/onnxruntime/capi/libonnxruntime.so.* "$dest.partial/"
cp "$tmp"/unpacked/onnxruntime/capi/libonnxruntime_providers_*.so "$dest.partial/" 2>/dev/null || true

if [ "$variant" = gpu ]; then
  # The CUDA 13 / cuDNN 9 runtime libraries the CUDA provider links against, from
  # NVIDIA's PyPI wheels (the wheel's own [cuda,cudnn] extras).
  echo "onnxruntime: fetching the CUDA 13 and cuDNN 9 libraries (several GB)"
  "$python" -m pip install --quiet --target "$tmp/cuda" --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp \
    "$package[cuda,cudnn]==$VERSION"
  find "$tmp/cuda/nvidia" -name 'lib*.so*' -exec cp -P {} "$dest.partial/" \;
fi

rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "onnxruntime: ready at $dest/$lib"
