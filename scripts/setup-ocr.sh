#!/usr/bin/env bash
# Tesseract OCR for reading the text of memes sent without text: the engine, its English
# data, and the headers and libclang that the Rust binding (tesseract-sys/leptonica-sys,
# generated with bindgen) builds against. Idempotent; installs with apt-get as root.
# A system that already has Tesseract 4/5 with English data needs nothing from here.
exec "$(dirname "$0")/apt-install.sh" setup-ocr \
  tesseract-ocr tesseract-ocr-eng libtesseract-dev libleptonica-dev libclang-dev pkg-config
