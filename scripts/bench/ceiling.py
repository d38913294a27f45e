#!/usr/bin/env python3
"""The ceiling of the server benchmark: one bare ONNX Runtime session scoring pre-collated
batches of the package's model (no decoding, no HTTP, no database). Prints pairs/s.

    python scripts/bench/ceiling.py --package models/demo/<version> [--batch 32] [--seconds 5]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--package", type=Path, required=True)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    manifest = json.loads((args.package / "manifest.json").read_text())
    size, length = manifest["image"]["size"], manifest["text"]["max_length"]
    opts = ort.SessionOptions()
    if args.threads:
        opts.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(args.package / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {
        "pixel_values": rng.integers(0, 256, (args.batch, size, size, 3), dtype=np.uint8),
        "input_ids": rng.integers(5, 100, (args.batch, length), dtype=np.int64),
        "attention_mask": np.ones((args.batch, length), dtype=np.int64),
    }
    session.run(["probability"], feed)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < args.seconds:
        session.run(["probability"], feed)
        n += args.batch
    print(f"{n / (time.perf_counter() - start):.0f}")


if __name__ == "__main__":
    main()
