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
# pip matches --platform exactly, so list every manylinux tag a wheel may carry: the
# ONNX Runtime wheels are manylinux_2_28, NVIDIA's CUDA wheels older tags down to manylinux1.
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_17 manylinux2014 manylinux_2_12 manylinux2010 manylinux_2_5 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
pip_target=(--only-binary=:all: "${platforms[@]}" --python-version 3.11 --implementation cp)
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "onnxruntime: need Python 3 with pip to fetch $package==$VERSION from PyPI (apt-get install python3-pip)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "onnxruntime: fetching $package==$VERSION from PyPI"
"$python" -m pip download --quiet --disable-pip-version-check --no-deps "${pip_target[@]}" \
  "$package==$VERSION" -d "$tmp"
wheel=$(ls "$tmp"/*.whl)
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
( cd "$tmp" && "$python" -m zipfile -e "$wheel" unpacked )
cp "$tmp"/unpacked/onnxruntime/capi/libonnxruntime.so.* "$dest.partial/"

if [ "$variant" = gpu ]; then
  # The CUDA execution provider and the shim it loads through (the TensorRT provider is left out).
  cp "$tmp"/unpacked/onnxruntime/capi/libonnxruntime_providers_{shared,cuda}.so "$dest.partial/"
  # The CUDA 13 / cuDNN 9 runtime libraries the CUDA provider links against, from
  # NVIDIA's PyPI wheels: the wheel's own extras (its METADATA: [cuda] = nvidia-cuda-nvrtc,
  # nvidia-cuda-runtime, nvidia-cufft, nvidia-curand; [cudnn] = nvidia-cudnn-cu13, which
  # brings nvidia-cublas and nvidia-nvjitlink).
  echo "onnxruntime: fetching the CUDA 13 and cuDNN 9 libraries (several GB)"
  "$python" -m pip install --quiet --disable-pip-version-check --target "$tmp/cuda" "${pip_target[@]}" \
    "$package[cuda,cudnn]==$VERSION"
  find "$tmp/cuda/nvidia" -name 'lib*.so*' -exec cp -P {} "$dest.partial/" \;
fi

rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "onnxruntime: ready at $dest/$lib"
if [ "$variant" = gpu ]; then
  echo "onnxruntime: the CUDA libraries sit next to it; if the CUDA provider cannot find them, run with"
  echo "  LD_LIBRARY_PATH=$dest"
fi
