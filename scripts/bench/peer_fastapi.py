#!/usr/bin/env python3
"""The FastAPI peer of the server benchmark: what a team would write in an afternoon
with the usual Python stack, doing the same work per request as `memeguard serve`:

    POST /v1/moderations  (OpenAI content parts: a base64 data-URL picture + text)
    → decode (Pillow) → letterbox to the package's size (bilinear, white) → tokenise
    (the package's tokenizer.json with `tokenizers`) → ONNX Runtime (one session,
    batch of one) → the decision committed to SQLite (WAL, synchronous=FULL, one
    transaction per request) → JSON.

It runs one uvicorn worker process per core (each with its own session and SQLite
connection), as such a service would be deployed. Run by scripts/bench-server.sh from the
optional venv `.cache/bench-venv`:

    python scripts/bench/peer_fastapi.py --package models/demo/<version> --port 8091 [--workers 2]
"""

import argparse
import base64
import hashlib
import io
import json
import os
import sqlite3
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from PIL import Image
from tokenizers import Tokenizer


def build(package: Path, db_path: Path, threads: int) -> FastAPI:
    manifest = json.loads((package / "manifest.json").read_text())
    size = manifest["image"]["size"]
    max_len = manifest["text"]["max_length"]
    threshold = manifest["threshold"]
    tokenizer = Tokenizer.from_file(str(package / "tokenizer.json"))
    tokenizer.enable_truncation(max_len)
    tokenizer.enable_padding(length=max_len, pad_id=tokenizer.token_to_id("[PAD]") or 0)
    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(package / "model.onnx"), opts, providers=["CPUExecutionProvider"])
    db = sqlite3.connect(str(db_path), check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS decisions (id INTEGER PRIMARY KEY, created REAL, sha256 TEXT, text TEXT, "
        "score REAL, flagged INTEGER, image BLOB)"
    )
    lock = threading.Lock()
    app = FastAPI()

    def letterbox(img: Image.Image) -> np.ndarray:
        img = img.convert("RGB")
        w, h = img.size
        scale = size / max(w, h)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = Image.new("RGB", (size, size), (255, 255, 255))
        canvas.paste(img.resize((nw, nh), Image.BILINEAR), ((size - nw) // 2, (size - nh) // 2))
        return np.asarray(canvas, dtype=np.uint8)

    @app.post("/v1/moderations")
    async def moderate(request: Request):
        body = await request.json()
        image_bytes, text = None, ""
        for part in body.get("input", []):
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                image_bytes = base64.b64decode(url.split(",", 1)[1])
            elif part.get("type") == "text":
                text = part["text"]
        if image_bytes is None:
            raise HTTPException(400, "an image is required")
        pixels = letterbox(Image.open(io.BytesIO(image_bytes)))[None]
        enc = tokenizer.encode(text)
        ids = np.asarray([enc.ids], dtype=np.int64)
        mask = np.asarray([enc.attention_mask], dtype=np.int64)
        with lock:
            score = float(session.run(["probability"], {"pixel_values": pixels, "input_ids": ids, "attention_mask": mask})[0][0])
            flagged = score >= threshold
            cur = db.execute(
                "INSERT INTO decisions (created, sha256, text, score, flagged, image) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), hashlib.sha256(image_bytes).hexdigest(), text, score, int(flagged), image_bytes),
            )
            decision_id = cur.lastrowid
        return {
            "id": f"modr-{decision_id}",
            "model": manifest["name"],
            "results": [
                {"flagged": flagged, "categories": {"hate": flagged}, "category_scores": {"hate": score},
                 "decision_id": decision_id}
            ],
        }

    return app


def app_from_env() -> FastAPI:
    """The app of one worker process, configured by main() through the environment."""
    return build(Path(os.environ["PEER_PACKAGE"]), Path(os.environ["PEER_DB"]), int(os.environ["PEER_THREADS"]))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--package", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per worker")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    os.environ["PEER_PACKAGE"] = str(args.package.resolve())
    os.environ["PEER_DB"] = str(Path(tempfile.mkdtemp()) / "peer.db")
    os.environ["PEER_THREADS"] = str(args.threads)
    os.chdir(Path(__file__).resolve().parent)
    uvicorn.run(
        "peer_fastapi:app_from_env",
        factory=True,
        workers=args.workers,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
