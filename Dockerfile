# memeguard server image: the server binary, ONNX Runtime 1.31.1 and the default model package.
#
#   docker build -t memeguard .                        # CPU
#   docker build -t memeguard:gpu --build-arg VARIANT=gpu .   # CUDA 13 / cuDNN 9 (needs the
#                                                      # NVIDIA driver on the host and `docker run --gpus all`)
#   docker run -p 8080:8080 -v memeguard-data:/var/lib/memeguard memeguard
#
# The image serves the demo package committed in models/demo (a tiny model trained on
# synthetic memes: it shows the workflow, it is not a moderation model; see README). Keep
# /var/lib/memeguard on a volume: it holds the decision log and the models directory that
# `memeguard-train refresh` writes new versions into (the server reloads the newest).

ARG RUST_VERSION=1.95
ARG DEBIAN=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN} AS builder
ARG VARIANT=cpu
# libtesseract-dev, libleptonica-dev and libclang-dev: the OCR binding (tesseract crate) builds against them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \
      libtesseract-dev libleptonica-dev libclang-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# ONNX Runtime from the PyPI wheel (and, for gpu, the CUDA/cuDNN wheels) into .cache/onnxruntime/$VARIANT.
RUN scripts/onnxruntime.sh "$VARIANT" \
 && mkdir -p /out/onnxruntime \
 && cp -P .cache/onnxruntime/"$VARIANT"/*.so* /out/onnxruntime/
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p memeguard -p memeguard-package --bins \
 && mkdir -p /out/bin \
 && cp target/release/memeguard target/release/memeguard-package /out/bin/
# The committed model packages (models/demo/<version>), checked before they are shipped.
RUN mkdir -p /out/models \
 && cp -r models/. /out/models/ \
 && for pkg in /out/models/*/*/; do ORT_DYLIB_PATH=/out/onnxruntime/libonnxruntime.so.1.31.1 /out/bin/memeguard-package check "$pkg"; done

FROM debian:${DEBIAN}-slim AS runtime
# Tesseract and its English data: OCR for memes sent without text.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 tesseract-ocr-eng libtesseract5 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/memeguard memeguard
COPY --from=builder /out/bin/ /usr/local/bin/
COPY --from=builder /out/onnxruntime/ /opt/onnxruntime/
COPY --from=builder --chown=memeguard:memeguard /out/models/ /var/lib/memeguard/models/
# ort loads the library from ORT_DYLIB_PATH; the CUDA provider finds its libraries next to it.
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so.1.31.1 \
    LD_LIBRARY_PATH=/opt/onnxruntime \
    MEMEGUARD_MODELS_DIR=/var/lib/memeguard/models \
    MEMEGUARD_DATABASE_URL=sqlite:///var/lib/memeguard/memeguard.db \
    MEMEGUARD_BIND=0.0.0.0:8080 \
    RUST_LOG=info \
    GLIBC_TUNABLES=glibc.malloc.mmap_threshold=1048576
USER memeguard
WORKDIR /var/lib/memeguard
VOLUME /var/lib/memeguard
EXPOSE 8080
# Check the package at start-up is the server's job; `memeguard-package check DIR` does it by hand.
ENTRYPOINT ["memeguard"]
CMD ["serve"]
