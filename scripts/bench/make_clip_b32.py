#!/usr/bin/env python3
"""A ViT-B/32-sized random-weight Hugging Face CLIP folder for the memory benchmark of
docs/benchmarks.md (not committed: 482 MB). Needs the fixture venv of
scripts/fixtures/make_hf_fixtures.py (torch, transformers):

    /tmp/fxvenv/bin/python scripts/bench/make_clip_b32.py [OUT_DIR]     # default /tmp/bench-models/clip-b32

CLIPConfig's defaults are ViT-B/32 (vision) and a 12-layer, 512-wide text tower; the
vocabulary is the fixtures' small trained BPE (no download), so the text embedding table
is smaller than the real one's (126 M parameters instead of 151 M).
"""

import shutil
import sys
from pathlib import Path

import torch
import transformers
from transformers import CLIPConfig, CLIPModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures"))
import make_hf_fixtures as fx  # noqa: E402

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/bench-models/clip-b32")
if out.exists():
    shutil.rmtree(out)
tok = fx.clip_tokenizer()
cfg = CLIPConfig()
cfg.text_config.vocab_size = len(tok)
cfg.text_config.bos_token_id = tok.bos_token_id
cfg.text_config.eos_token_id = tok.eos_token_id
cfg.text_config.pad_token_id = tok.pad_token_id
torch.manual_seed(0)
model = CLIPModel(cfg).eval()
print(f"{sum(p.numel() for p in model.parameters())} parameters")
model.save_pretrained(out)
tok.save_pretrained(out)
getattr(transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor)(
    size={"shortest_edge": 224},
    crop_size={"height": 224, "width": 224},
    resample=3,
    image_mean=[0.48145466, 0.4578275, 0.40821073],
    image_std=[0.26862954, 0.26130258, 0.27577711],
).save_pretrained(out)
