#!/usr/bin/env python3
"""Writes tests/fixtures/imagenet-tiny/: a tiny ImageNet-style folder tree (3 classes, 40x30-ish
synthetic JPEGs) and, under expected/, what PIL and torchvision make of some of them, for
tests/imagenet_data.rs.

Needs Pillow; torchvision (any version whose transforms run on PIL images) is used for the
validation-transform reference when present. On this project's machines:

    python3 -m venv --system-site-packages /tmp/tvenv
    /tmp/tvenv/bin/pip install pillow torchvision==0.15.2 --no-deps
    /tmp/tvenv/bin/python scripts/make-imagenet-tiny.py

Deterministic: the same versions write the same bytes. `--bench DIR N` instead writes N
500x375 JPEGs (ImageNet's typical size) under DIR/train/<class>/ for a throughput check; those
are not committed.
"""

import json
import os
import shutil
import sys

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "imagenet-tiny")
CLASSES = ["n01440764", "n01443537", "n01484850"]


def synthetic(rng, w, h, noise=4.0):
    """A smooth colour field plus a few sharp rectangles and mild noise: edges for the
    resampling filters, gradients for the colour ops, nothing a JPEG coder mangles badly."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    base = rng.uniform(40, 200, size=3)
    gx, gy = rng.uniform(-3, 3, size=3), rng.uniform(-3, 3, size=3)
    img = base + gx * x[..., None] + gy * y[..., None]
    for _ in range(3):
        x0, y0 = rng.integers(0, w - 8), rng.integers(0, h - 8)
        img[y0 : y0 + rng.integers(4, 12), x0 : x0 + rng.integers(4, 12)] = rng.uniform(0, 255, size=3)
    img += rng.normal(0, noise, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def save(arr, path, mode="RGB"):
    img = Image.fromarray(arr, "RGB")
    if mode == "L":
        img = img.convert("L")
    elif mode == "CMYK":
        img = img.convert("CMYK")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img.save(path, format="JPEG", quality=90)


def make_tree():
    if os.path.isdir(ROOT):
        shutil.rmtree(ROOT)
    rng = np.random.default_rng(20240611)
    # (split, class index, file name, width, height, mode): three train images in class 0,
    # two elsewhere, one portrait, one greyscale, one CMYK, and the accepted extension spellings.
    files = [
        ("train", 0, "n01440764_10026.JPEG", 40, 30, "RGB"),
        ("train", 0, "n01440764_10027.JPEG", 40, 30, "RGB"),
        ("train", 0, "n01440764_10042.jpg", 30, 40, "RGB"),
        ("train", 1, "n01443537_1000.JPEG", 40, 30, "L"),
        ("train", 1, "n01443537_10007.jpeg", 44, 28, "RGB"),
        ("train", 2, "n01484850_1001.JPEG", 40, 30, "RGB"),
        ("train", 2, "n01484850_10016.JPG", 36, 36, "CMYK"),
        ("val", 0, "ILSVRC2012_val_00000293.JPEG", 40, 30, "RGB"),
        ("val", 1, "ILSVRC2012_val_00002138.JPEG", 40, 30, "RGB"),
        ("val", 1, "ILSVRC2012_val_00003014.JPEG", 30, 40, "RGB"),
        ("val", 2, "ILSVRC2012_val_00000236.JPEG", 40, 30, "RGB"),
    ]
    for split, c, name, w, h, mode in files:
        save(synthetic(rng, w, h), os.path.join(ROOT, split, CLASSES[c], name), mode)
    # Not an image: a folder reader must skip it (torchvision's ImageFolder does).
    with open(os.path.join(ROOT, "train", CLASSES[0], "notes.txt"), "w") as f:
        f.write("not an image\n")


def raw(img):
    return np.asarray(img.convert("RGB"), dtype=np.uint8).tobytes()


def make_expected():
    out = os.path.join(ROOT, "expected")
    os.makedirs(out, exist_ok=True)
    meta = {"pil": Image.__version__}
    val = os.path.join("val", CLASSES[0], "ILSVRC2012_val_00000293.JPEG")
    img = Image.open(os.path.join(ROOT, val)).convert("RGB")
    w, h = img.size
    # PIL's (libjpeg's) decode of three images: RGB 4:2:0, greyscale, Adobe CMYK.
    decoded = {}
    for key, rel in [
        ("rgb", val),
        ("grey", os.path.join("train", CLASSES[1], "n01443537_1000.JPEG")),
        ("cmyk", os.path.join("train", CLASSES[2], "n01484850_10016.JPG")),
    ]:
        im = Image.open(os.path.join(ROOT, rel))
        fname = f"decoded_{key}.rgb"
        with open(os.path.join(out, fname), "wb") as f:
            f.write(raw(im))
        decoded[key] = {"image": rel, "mode": im.mode, "width": im.size[0], "height": im.size[1], "file": fname}
    meta["decoded"] = decoded
    # PIL's antialiased bilinear resize of the decoded RGB image: a downscale (shorter side 30 ->
    # 20, as Resize(20) does) and an upscale of a crop box (as RandomResizedCrop does).
    down = (int(20 * w / h), 20) if w >= h else (20, int(20 * h / w))
    box = (5, 3, 5 + 17, 3 + 13)  # left, top, right, bottom
    up = (24, 24)
    with open(os.path.join(out, "pil_down.rgb"), "wb") as f:
        f.write(raw(img.resize(down, Image.BILINEAR)))
    with open(os.path.join(out, "pil_up.rgb"), "wb") as f:
        f.write(raw(img.crop(box).resize(up, Image.BILINEAR)))
    meta["pil_down"] = {"width": down[0], "height": down[1], "file": "pil_down.rgb"}
    meta["pil_up"] = {"box_ltrb": box, "width": up[0], "height": up[1], "file": "pil_up.rgb"}
    try:
        import torch
        from torchvision import transforms as T
    except ImportError:
        print("torchvision not found: expected/val_transform.f32 not written", file=sys.stderr)
    else:
        import torchvision

        tf = T.Compose(
            [
                T.Resize(20),
                T.CenterCrop(16),
                T.ToTensor(),
                T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
            ]
        )
        x = tf(img).to(torch.float32).contiguous()
        assert tuple(x.shape) == (3, 16, 16), x.shape
        with open(os.path.join(out, "val_transform.f32"), "wb") as f:
            f.write(x.numpy().astype("<f4").tobytes())
        meta["val_transform"] = {
            "image": val,
            "resize": 20,
            "crop": 16,
            "file": "val_transform.f32",
            "torchvision": torchvision.__version__,
            "torch": torch.__version__,
        }
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


def make_bench(root, n):
    rng = np.random.default_rng(7)
    for i in range(n):
        c = CLASSES[i % len(CLASSES)]
        # Files of about 27 KB: a quarter of ImageNet's ~110 KB average, so real photos spend
        # somewhat longer in entropy decoding than these.
        save(synthetic(rng, 500, 375, noise=14.0), os.path.join(root, "train", c, f"{c}_{i}.JPEG"))
    for c in CLASSES:
        os.makedirs(os.path.join(root, "val", c), exist_ok=True)
        save(synthetic(rng, 500, 375), os.path.join(root, "val", c, f"{c}_val.JPEG"))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--bench":
        make_bench(sys.argv[2], int(sys.argv[3]))
    else:
        make_tree()
        make_expected()
