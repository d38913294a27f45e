#!/usr/bin/env bash
# Tesseract OCR for reading the text of memes sent without text: the engine, its English
# data, and the headers and libclang that the Rust binding (tesseract-sys/leptonica-sys,
# generated with bindgen) needs to build. Idempotent; installs with apt-get as root.
# A user who already has Tesseract 4/5 with English data needs nothing from here.
set -euo pipefail
log() { echo "setup-ocr: $*" >&2; }

packages=(tesseract-ocr tesseract-ocr-eng libtesseract-dev libleptonica-dev libclang-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  log "missing ${missing[*]}; run as root or: sudo apt-get install ${missing[*]}"
  exit 1
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
