#!/usr/bin/env bash
# Reproduces the results table in docs/training.md: baselines and pretraining + finetune
# on the synthetic benign-confounder set, 3 seeds each, tiny recipes (release build).
#   scripts/synthetic-results.sh [OUT]      (default OUT: runs/synthetic-results)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p memeguard-training --bin memeguard-train
MT=target/release/memeguard-train; R=training/recipes
O=${1:-runs/synthetic-results}; D=$O/data
mkdir -p "$O"
t() { local s; s=$(date +%s); "$@"; echo "TIME $(( $(date +%s) - s ))s: $*"; }
t $MT synth --out "$D" --train 2048 --dev 256 --test 256 --size 96 --difficulty easy --seed 0 \
    --captions phrases --caption-scale 0.35 --force
t $MT finetune --recipe $R/tiny-finetune-image.toml --data "$D" --out "$O/image" --seeds 3 --quiet
t $MT finetune --recipe $R/tiny-finetune-text.toml --data "$D" --out "$O/text" --seeds 3 --quiet
t $MT pretrain --recipe $R/tiny-cass-mm.toml --data "$D" --out "$O/cass-mm" --quiet
t $MT finetune --recipe $R/tiny-finetune-multimodal.toml --data "$D" --out "$O/ft-cass-mm" --seeds 3 --quiet \
    --init-from "$O/cass-mm/checkpoint.safetensors" --rename cnn.image.=image. --rename cnn.text.=text. \
    --tokenizer "$O/cass-mm/tokenizer.json"
t $MT pretrain --recipe $R/tiny-clip.toml --data "$D" --out "$O/clip" --quiet
t $MT finetune --recipe $R/tiny-finetune-multimodal.toml --data "$D" --out "$O/ft-clip" --seeds 3 --quiet \
    --init-from "$O/clip/checkpoint.safetensors" --tokenizer "$O/clip/tokenizer.json"
t $MT finetune --recipe $R/tiny-finetune-multimodal.toml --data "$D" --out "$O/scratch" --seeds 3 --quiet
