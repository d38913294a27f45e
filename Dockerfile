# memeguard server image: the server binary, ONNX Runtime 1.31.1 and the default model package.
#
#   docker build -t memeguard .                        # CPU
#   docker build -t memeguard:gpu --build-arg VARIANT=gpu .   # CUDA 13 / cuDNN 9 (needs the
#                                                      # NVIDIA driver on the host and `docker run --gpus all`)
#   docker run -p 8080:8080 -v memeguard-data:/var/lib/memeguard memeguard
#
# The default model package is the UNTRAINED placeholder until the training issue lands a
# trained demo model: its scores mean nothing.

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
RUN /out/bin/memeguard-package placeholder /out/models/placeholder/0.0.0

FROM debian:${DEBIAN}-slim AS runtime
# Tesseract and its English data: OCR for memes sent without text.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libstdc++6 tesseract-ocr-eng libtesseract5 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/memeguard memeguard
COPY --from=builder /out/bin/ /usr/local/bin/
COPY --from=builder /out/onnxruntime/ /opt/onnxruntime/
COPY --from=builder /out/models/ /opt/memeguard/models/
# ort loads the library from ORT_DYLIB_PATH; the CUDA provider finds its libraries next to it.
ENV ORT_DYLIB_PATH=/opt/onnxruntime/libonnxruntime.so.1.31.1 \
    LD_LIBRARY_PATH=/opt/onnxruntime \
    MEMEGUARD_MODEL=/opt/memeguard/models/placeholder/0.0.0 \
    MEMEGUARD_DATA_DIR=/var/lib/memeguard \
    MEMEGUARD_BIND=0.0.0.0:8080 \
    RUST_LOG=info
USER memeguard
WORKDIR /var/lib/memeguard
VOLUME /var/lib/memeguard
EXPOSE 8080
# Check the package at start-up is the server's job; `memeguard-package check DIR` does it by hand.
ENTRYPOINT ["memeguard"]
CMD ["serve"]
