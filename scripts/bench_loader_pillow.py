#!/usr/bin/env python3
"""The Python reference for memeguard's loader benchmark (training/benches/loader.rs).

Does the same work per image as the Rust loader's benchmark pipeline, the way a
PyTorch data pipeline does it with Pillow and numpy (torchvision's PIL code paths,
without torch): read and decode the file, RandomResizedCrop to SIZE (scale 0.08-1,
ratio 3/4-4/3, bilinear, antialiased), horizontal flip (p=0.5), colour jitter
(brightness 0.4, contrast 0.4, saturation 0.4, hue 0.1, random order) with p=0.8,
grayscale with p=0.2, then stack BATCH images into one contiguous uint8 NHWC array.

One process, one thread: the figure is per core.

    python scripts/bench_loader_pillow.py LIST_FILE --size 224 --batch 64 --repeat 1

LIST_FILE holds one image path per line. Prints one JSON line:
{"images": N, "seconds": S, "images_per_second": R}.
"""

import argparse
import json
import math
import random
import time

import numpy as np
from PIL import Image, ImageEnhance


def random_resized_crop_box(width, height, rng, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """torchvision RandomResizedCrop.get_params, returning a PIL box."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = rng.randint(0, height - h)
            left = rng.randint(0, width - w)
            return (left, top, left + w, top + h)
    in_ratio = width / height
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w, h = int(round(height * max(ratio))), height
    else:
        w, h = width, height
    top, left = (height - h) // 2, (width - w) // 2
    return (left, top, left + w, top + h)


def adjust_hue(img, factor):
    """torchvision.transforms.functional_pil.adjust_hue."""
    h, s, v = img.convert("HSV").split()
    np_h = np.array(h, dtype=np.uint8)
    np_h += np.array(factor * 255).astype(np.uint8)
    return Image.merge("HSV", (Image.fromarray(np_h, "L"), s, v)).convert("RGB")


def color_jitter(img, rng, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1):
    """torchvision ColorJitter on a PIL image: the four adjustments in random order."""
    order = [0, 1, 2, 3]
    rng.shuffle(order)
    b = rng.uniform(max(0, 1 - brightness), 1 + brightness)
    c = rng.uniform(max(0, 1 - contrast), 1 + contrast)
    s = rng.uniform(max(0, 1 - saturation), 1 + saturation)
    h = rng.uniform(-hue, hue)
    for step in order:
        if step == 0:
            img = ImageEnhance.Brightness(img).enhance(b)
        elif step == 1:
            img = ImageEnhance.Contrast(img).enhance(c)
        elif step == 2:
            img = ImageEnhance.Color(img).enhance(s)
        else:
            img = adjust_hue(img, h)
    return img


def augment(path, size, rng):
    with Image.open(path) as im:
        img = im.convert("RGB")
    box = random_resized_crop_box(img.width, img.height, rng)
    img = img.resize((size, size), Image.BILINEAR, box=box)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.8:
        img = color_jitter(img, rng)
    if rng.random() < 0.2:
        img = img.convert("L").convert("RGB")
    return np.asarray(img, dtype=np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("list_file")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=1, help="passes over the list")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with open(args.list_file) as f:
        paths = [line.strip() for line in f if line.strip()]
    rng = random.Random(args.seed)
    # Warm-up: first decode pays for library loading and page cache.
    augment(paths[0], args.size, rng)
    start = time.perf_counter()
    images = 0
    checksum = 0
    for _ in range(args.repeat):
        for i in range(0, len(paths), args.batch):
            batch = np.stack([augment(p, args.size, rng) for p in paths[i : i + args.batch]])
            assert batch.shape[1:] == (args.size, args.size, 3) and batch.flags["C_CONTIGUOUS"]
            checksum += int(batch[:, 0, 0, 0].sum())
            images += batch.shape[0]
    seconds = time.perf_counter() - start
    print(json.dumps({"images": images, "seconds": seconds, "images_per_second": images / seconds, "checksum": checksum}))


if __name__ == "__main__":
    main()
