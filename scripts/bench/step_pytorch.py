#!/usr/bin/env python3
"""PyTorch side of `cargo bench -p memeguard-training --bench step -- --vs-pytorch`.

Builds the same architecture as the Rust bench's family (same shapes, same batch, AdamW
lr 1e-3 / weight decay 0.05 on the weights, global-norm clipping at 1.0, the same batch
every step) and runs training steps on demand, so that the bench can alternate blocks of
its own steps with blocks of these in one wall-clock window:

    stdin  "N"    -> run N steps, print their times in ms on one line
    stdin  "quit" -> exit

It prints "ready <params>" once the model is built and warmed up. Run from the benchmark
venv (`make bench-venv`, torch + torchvision); PyTorch's defaults otherwise (the CPU AdamW
is the single-tensor loop unless --foreach is given).
"""

import argparse
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def uniform(seed, shape, scale):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) * 2 - 1) * scale


class Block(nn.Module):
    """Pre-norm block as the bench's `Net::block`: separate q/k/v, exact GELU, MLP 4·d."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        dh = d // self.heads
        h = self.ln1(x)
        q = self.q(h).view(b, t, self.heads, dh).transpose(1, 2)
        k = self.k(h).view(b, t, self.heads, dh).permute(0, 2, 3, 1)
        v = self.v(h).view(b, t, self.heads, dh).transpose(1, 2)
        attn = torch.softmax((q @ k) * (1.0 / dh**0.5), dim=-1)
        ctx = (attn @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(ctx)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TokenClassifier(nn.Module):
    def __init__(self, embed, tokens, d, heads, blocks, classes):
        super().__init__()
        self.embed = embed
        self.pos_embed = nn.Parameter(uniform(7, (1, tokens, d), d**-0.5))
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(blocks))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        h = self.embed(x) + self.pos_embed
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.norm(h).mean(dim=1))


class PatchEmbed(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Conv2d(3, d, 4, stride=4)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


def conv_bn_relu(c_in, c_out, stride):
    return [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


def family(name):
    """(model, inputs, one-hot classes) matching training/benches/step.rs."""
    if name == "mlp":
        b, d, hidden, classes = 256, 64, 256, 10
        model = nn.Sequential(
            nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )
        return model, uniform(97, (b, d), 1.0), b, classes
    if name == "cnn":
        b, hw, classes = 32, 32, 10
        layers = conv_bn_relu(3, 16, 1) + conv_bn_relu(16, 32, 2) + conv_bn_relu(32, 64, 2)
        model = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes))
        return model, uniform(99, (b, 3, hw, hw), 1.0), b, classes
    if name == "vit":
        b, hw, d, classes = 32, 32, 64, 10
        model = TokenClassifier(PatchEmbed(d), (hw // 4) ** 2, d, 4, 4, classes)
        return model, uniform(98, (b, 3, hw, hw), 1.0), b, classes
    if name == "text":
        b, length, vocab, d, classes = 32, 32, 1000, 64, 2
        model = TokenClassifier(nn.Embedding(vocab, d), length, d, 4, 2, classes)
        ids = (torch.arange(b * length) * 7919 % vocab).view(b, length)
        return model, ids, b, classes
    if name == "resnet18":
        import torchvision

        b, hw, classes = 16, 64, 10
        model = torchvision.models.resnet18(num_classes=classes)
        return model, uniform(96, (b, 3, hw, hw), 1.0), b, classes
    raise SystemExit(f"unknown family {name!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("family")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--foreach", action="store_true", help="multi-tensor AdamW (torch's foreach path)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    model, x, b, classes = family(args.family)
    model.train()
    target = torch.arange(b) % classes  # the bench's one-hot rows: class i mod C
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos_embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos_embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-3,
        foreach=True if args.foreach else None,
    )

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    params = sum(p.numel() for p in model.parameters())
    print(f"ready {params} torch {torch.__version__}", flush=True)
    for line in sys.stdin:
        line = line.strip()
        if line == "quit" or not line:
            break
        times = []
        for _ in range(int(line)):
            start = time.perf_counter()
            step()
            times.append((time.perf_counter() - start) * 1e3)
        print(" ".join(f"{t:.3f}" for t in times), flush=True)


if __name__ == "__main__":
    main()
