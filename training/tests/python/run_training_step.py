#!/usr/bin/env python3
"""Runs `memeguard-train differentiate`'s training step in plain ONNX Runtime with numpy.

    python run_training_step.py ARTIFACTS BATCHES.safetensors STEPS

ARTIFACTS is the `--out` folder (training_step.onnx, training_step.json,
initial_state.safetensors); BATCHES.safetensors holds `batch.K.<data input>` for
K = 0, 1, ...; step i uses batch i % (number of batches). Prints the loss of each step,
one per line. Needs onnxruntime and numpy only (safetensors is read with numpy).
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8, "BOOL": np.bool_}


def load_safetensors(path):
    """{name: array} from a safetensors file: an 8-byte header length, a JSON header, the bytes."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(body[start:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"]).copy()
    return out


def main():
    artifacts, batches_path, steps = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    spec = json.loads((artifacts / "training_step.json").read_text())
    session = ort.InferenceSession(str(artifacts / spec["model"]), providers=["CPUExecutionProvider"])
    state = load_safetensors(artifacts / spec["initial_state"])
    hyper = {h["name"]: np.array(h["value"], dtype=np.float32) for h in spec["hyperparameters"]}
    data_names = [d["name"] for d in spec["data_inputs"]]
    batches = load_safetensors(batches_path)
    count = len({k.split(".")[1] for k in batches if k.startswith("batch.")})
    # Fetch the loss and every next state; feed each next state back as its input.
    pairs = [(s["input"], s["output"]) for s in spec["state"] if s["output"]]
    fetch = [spec["loss"]] + [out for _, out in pairs]
    for i in range(steps):
        feeds = {name: batches[f"batch.{i % count}.{name}"] for name in data_names}
        feeds.update(hyper)
        feeds.update(state)
        loss, *nexts = session.run(fetch, feeds)
        for (name, _), value in zip(pairs, nexts):
            state[name] = value
        print(f"{float(loss):.9g}")


if __name__ == "__main__":
    main()
