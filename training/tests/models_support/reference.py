# Independent numpy implementations of memeguard's models, in float64, for the
# models_reference tests. Reads a JSON case (architecture config, every parameter and
# buffer by name, the inputs) from argv[1] and prints the reference outputs as JSON.
# The architecture is re-derived here from the published descriptions (torchvision
# ResNet, timm ViT, DINO head, Hate-CLIPper), reading weights by name as a PyTorch
# state dict would; only the weight layout convention is shared: linear weights are
# [in, out], convolution weights [out, in, kh, kw].
import json
import math
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def relu(x):
    return np.maximum(x, 0.0)


def normalise_pixels(pixels):
    x = pixels.astype(np.float64).transpose(0, 3, 1, 2) / 255.0
    mean = np.array([0.485, 0.456, 0.406]).reshape(1, 3, 1, 1)
    std = np.array([0.229, 0.224, 0.225]).reshape(1, 3, 1, 1)
    return (x - mean) / std


def conv2d(x, w, b, stride, pad):
    k = w.shape[2]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    windows = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    y = np.einsum("nchwij,ocij->nohw", windows, w)
    return y if b is None else y + b.reshape(1, -1, 1, 1)


def max_pool(x, k=3, stride=2, pad=1):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
    return sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride].max(axis=(4, 5))


def linear(P, name, x, bias=True):
    y = x @ P[name + ".weight"]
    return y + P[name + ".bias"] if bias else y


def layer_norm(P, name, x, eps):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * P[name + ".weight"] + P[name + ".bias"]


def l2_normalise(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class BatchNorm:
    """Batch norm; in training mode records running-statistic updates like PyTorch
    (unbiased variance) or like ONNX's fused op (population variance)."""

    def __init__(self, P, train, unbiased):
        self.P, self.train, self.unbiased, self.updates = P, train, unbiased, {}

    def __call__(self, name, x):
        P = self.P
        c = lambda v: v.reshape(1, -1, 1, 1)
        if self.train:
            mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
            n = x.size / x.shape[1]
            running = var * n / (n - 1) if self.unbiased else var
            self.updates[name + ".running_mean.updated"] = 0.9 * P[name + ".running_mean"] + 0.1 * mean
            self.updates[name + ".running_var.updated"] = 0.9 * P[name + ".running_var"] + 0.1 * running
        else:
            mean, var = P[name + ".running_mean"], P[name + ".running_var"]
        return (x - c(mean)) / np.sqrt(c(var) + 1e-5) * c(P[name + ".weight"]) + c(P[name + ".bias"])


def resnet(P, cfg, prefix, x, bn):
    width, bottleneck = cfg["width"], cfg["block"] == "bottleneck"
    expansion = 4 if bottleneck else 1
    x = relu(bn(prefix + ".bn1", conv2d(x, P[prefix + ".conv1.weight"], None, 2, 3)))
    x = max_pool(x)
    in_channels = width
    for stage, blocks in enumerate(cfg["layers"]):
        planes = width * 2**stage
        for i in range(blocks):
            stride = 2 if stage > 0 and i == 0 else 1
            n = f"{prefix}.layer{stage + 1}.{i}"
            if bottleneck:
                y = relu(bn(n + ".bn1", conv2d(x, P[n + ".conv1.weight"], None, 1, 0)))
                y = relu(bn(n + ".bn2", conv2d(y, P[n + ".conv2.weight"], None, stride, 1)))
                y = bn(n + ".bn3", conv2d(y, P[n + ".conv3.weight"], None, 1, 0))
            else:
                y = relu(bn(n + ".bn1", conv2d(x, P[n + ".conv1.weight"], None, stride, 1)))
                y = bn(n + ".bn2", conv2d(y, P[n + ".conv2.weight"], None, 1, 1))
            out_channels = planes * expansion
            needs_projection = stride != 1 or in_channels != out_channels
            assert needs_projection == (n + ".downsample.0.weight" in P), n
            if needs_projection:
                shortcut = bn(n + ".downsample.1", conv2d(x, P[n + ".downsample.0.weight"], None, stride, 0))
            else:
                shortcut = x
            x = relu(y + shortcut)
            in_channels = out_channels
    return x.mean(axis=(2, 3))


def attention(P, name, x, heads, mask):
    n, t, d = x.shape
    qkv = linear(P, name + ".qkv", x)
    split = lambda v: v.reshape(n, t, heads, d // heads).transpose(0, 2, 1, 3)
    q, k, v = split(qkv[..., :d]), split(qkv[..., d : 2 * d]), split(qkv[..., 2 * d :])
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d // heads)
    if mask is not None:
        scores = np.where(mask[:, None, None, :] > 0, scores, -np.inf)
    scores = scores - scores.max(-1, keepdims=True)
    weights = np.exp(scores)
    weights /= weights.sum(-1, keepdims=True)
    context = (weights @ v).transpose(0, 2, 1, 3).reshape(n, t, d)
    return linear(P, name + ".proj", context)


def block(P, name, x, heads, eps, mask=None):
    x = x + attention(P, name + ".attn", layer_norm(P, name + ".norm1", x, eps), heads, mask)
    h = gelu(linear(P, name + ".mlp.fc1", layer_norm(P, name + ".norm2", x, eps)))
    return x + linear(P, name + ".mlp.fc2", h)


def vit(P, cfg, prefix, x):
    p = cfg["patch_size"]
    patches = conv2d(x, P[prefix + ".patch_embed.proj.weight"], P[prefix + ".patch_embed.proj.bias"], p, 0)
    n, d = patches.shape[:2]
    tokens = patches.reshape(n, d, -1).transpose(0, 2, 1)
    cls = np.broadcast_to(P[prefix + ".cls_token"], (n, 1, d))
    x = np.concatenate([cls, tokens], axis=1) + P[prefix + ".pos_embed"]
    for i in range(cfg["depth"]):
        x = block(P, f"{prefix}.blocks.{i}", x, cfg["heads"], cfg["eps"])
    return layer_norm(P, prefix + ".norm", x, cfg["eps"])[:, 0]


def text_encoder(P, cfg, prefix, ids, mask):
    length = ids.shape[1]
    x = P[prefix + ".token_embed"][ids] + P[prefix + ".pos_embed"][:length]
    for i in range(cfg["depth"]):
        x = block(P, f"{prefix}.blocks.{i}", x, cfg["heads"], cfg["eps"], mask)
    x = layer_norm(P, prefix + ".norm", x, cfg["eps"])
    if cfg["pooling"] == "cls":
        return x[:, 0]
    m = mask[:, :, None].astype(np.float64)
    return (x * m).sum(1) / np.maximum(m.sum(1), 1.0)


def projection_head(P, name, x):
    projected = linear(P, name + ".projection", x)
    h = linear(P, name + ".fc", gelu(projected))
    return layer_norm(P, name + ".layer_norm", h + projected, 1e-5)


def dino_head(P, name, x, layers):
    for i in range(layers):
        x = linear(P, f"{name}.mlp.{2 * i}", x)
        if i + 1 < layers:
            x = gelu(x)
    x = l2_normalise(x)
    v = P[name + ".last_layer.weight_v"]
    w = v / np.linalg.norm(v, axis=0, keepdims=True) * P[name + ".last_layer.weight_g"]
    return x @ w


def concat_head(P, name, image, text):
    i = relu(linear(P, name + ".image_proj", image))
    t = relu(linear(P, name + ".text_proj", text))
    h = relu(linear(P, name + ".hidden", np.concatenate([i, t], axis=-1)))
    return linear(P, name + ".out", h)[:, 0]


def hate_clipper_head(P, name, image, text, interaction, layers):
    i = l2_normalise(linear(P, name + ".image_map", image))
    t = l2_normalise(linear(P, name + ".text_map", text))
    if interaction == "cross":
        h = (i[:, :, None] * t[:, None, :]).reshape(i.shape[0], -1)
    else:
        h = i * t
    for layer in range(layers):
        h = relu(linear(P, f"{name}.pre_output.{layer}", h))
    return linear(P, name + ".out", h)[:, 0]


def main():
    case = json.load(open(sys.argv[1]))
    P = {k: np.array(v["data"], dtype=np.float64).reshape(v["dims"]) for k, v in case["tensors"].items()}
    I = {k: np.array(v["data"]).reshape(v["dims"]) for k, v in case["inputs"].items()}
    cfg, kind, out = case["config"], case["case"], {}
    if kind in ("resnet", "resnet_train", "resnet_train_fused"):
        bn = BatchNorm(P, train=kind != "resnet", unbiased=kind == "resnet_train")
        out["features"] = resnet(P, cfg, "image", normalise_pixels(I["pixel_values"]), bn)
        out.update(bn.updates)
    elif kind == "vit":
        out["features"] = vit(P, cfg, "image", normalise_pixels(I["pixel_values"]))
    elif kind == "text":
        ids, mask = I["input_ids"].astype(np.int64), I["attention_mask"].astype(np.int64)
        out["cls"] = text_encoder(P, dict(cfg, pooling="cls"), "cls_text", ids, mask)
        out["mean"] = text_encoder(P, dict(cfg, pooling="mean"), "mean_text", ids, mask)
    elif kind == "heads":
        image, text = I["image_features"], I["text_features"]
        out["projection"] = projection_head(P, "proj", image)
        out["dino"] = dino_head(P, "dino", image, cfg["dino_layers"])
        out["concat_logit"] = concat_head(P, "concat", image, text)
        out["cross_logit"] = hate_clipper_head(P, "cross", image, text, "cross", cfg["cross_layers"])
        out["align_logit"] = hate_clipper_head(P, "align", image, text, "align", cfg["align_layers"])
    else:
        raise SystemExit(f"unknown case {kind}")
    print(json.dumps({k: np.asarray(v).reshape(-1).tolist() for k, v in out.items()}))


main()
