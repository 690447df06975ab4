"""``translate demo``: the whole pipeline on a dataset generated offline, in minutes on a CPU.

The dataset imitates the facades task (label map -> photo): a label map of flat class colours
(wall, windows, door, roof, sky) and a "photo" that renders each class with its own shading and
texture. pix2pix must learn the colours, gradients and textures of each class from the labels.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from .checkpoint import load_generator
from .config import RunConfig
from .data import PairedDataset
from .data.io import write_image
from .nn.inference import for_inference
from .training.logging import save_grid
from .training.loop import train

# class -> label colour (RGB), as in a segmentation map
LABELS = {"sky": (0, 0, 170), "wall": (0, 85, 255), "roof": (255, 85, 0), "window": (0, 255, 255),
          "door": (255, 255, 0), "ledge": (170, 255, 85)}


def _photo_texture(cls: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A (h, w, 3) float image in [0, 1] rendering one class region."""
    y = np.linspace(0, 1, h)[:, None, None]
    x = np.linspace(0, 1, w)[None, :, None]
    noise = rng.normal(0, 0.025, (h, w, 1))
    if cls == "sky":
        img = np.array([0.55, 0.75, 0.95]) * (0.8 + 0.2 * y) + 0 * x
    elif cls == "wall":
        tint = rng.uniform(-0.05, 0.05, 3)
        img = (np.array([0.85, 0.72, 0.55]) + tint) * (1.0 - 0.25 * y) + noise + 0 * x
    elif cls == "roof":
        stripes = 0.08 * (np.sin(np.arange(h) * 1.6)[:, None, None] > 0)
        img = np.array([0.55, 0.18, 0.12]) + stripes + noise + 0 * x
    elif cls == "window":
        glare = 0.35 * np.clip(1.0 - 2.0 * np.abs(x - y), 0, 1)
        img = np.array([0.10, 0.16, 0.28]) + glare + 0.5 * noise
    elif cls == "door":
        planks = 0.06 * (np.sin(np.arange(w) * 1.3)[None, :, None] > 0)
        img = np.array([0.40, 0.24, 0.12]) + planks + noise + 0 * y
    else:  # ledge
        img = np.array([0.92, 0.92, 0.88]) - 0.3 * y + 0 * x
    return np.clip(img, 0, 1)


def make_pair(size: int, rng: np.random.Generator):
    """One (label, photo) pair of (size, size, 3) uint8 RGB images."""
    label = np.zeros((size, size, 3), np.uint8)
    photo = np.zeros((size, size, 3), np.float64)

    def paint(cls, y0, y1, x0, x1):
        y0, y1, x0, x1 = (int(np.clip(v, 0, size)) for v in (y0, y1, x0, x1))
        if y1 > y0 and x1 > x0:
            label[y0:y1, x0:x1] = LABELS[cls]
            photo[y0:y1, x0:x1] = _photo_texture(cls, y1 - y0, x1 - x0, rng)

    sky = int(rng.uniform(0.05, 0.2) * size)
    roof = int(rng.uniform(0.06, 0.12) * size)
    paint("sky", 0, sky, 0, size)
    paint("roof", sky, sky + roof, 0, size)
    paint("wall", sky + roof, size, 0, size)
    floors, cols = int(rng.integers(2, 5)), int(rng.integers(2, 6))
    top, bottom = sky + roof + 4, size - int(0.22 * size)
    fh, cw = (bottom - top) / floors, size / cols
    ww, wh = rng.uniform(0.35, 0.65) * cw, rng.uniform(0.4, 0.7) * fh
    for f in range(floors):
        yc = top + (f + 0.5) * fh
        paint("ledge", yc + wh / 2, yc + wh / 2 + max(2, size // 64), 0, size)
        for c in range(cols):
            xc = (c + 0.5) * cw
            paint("window", yc - wh / 2, yc + wh / 2, xc - ww / 2, xc + ww / 2)
    door_w = rng.uniform(0.12, 0.2) * size
    door_x = rng.uniform(0.1, 0.9 - door_w / size) * size
    paint("door", size - 0.2 * size, size, door_x, door_x + door_w)
    return label, (photo * 255).round().astype(np.uint8)


def make_dataset(root: Path, n_train: int = 200, n_test: int = 20, size: int = 128, seed: int = 0) -> Path:
    """Write ``root/{train,test}/NNNN.png`` side-by-side label|photo images (layout ``ab``)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            path = root / split / f"{i:04d}.png"
            label, photo = make_pair(size, rng)
            if not path.exists():
                write_image(path, np.concatenate([label, photo], axis=1))
    return root


def run_demo(out: str = "checkpoints", data: str = "datasets/demo_shapes", name: str = "demo",
             minutes: float = 4.0, device: str = "auto", seed: int = 0, max_steps: Optional[int] = None) -> int:
    """Generate the dataset, train pix2pix on it for ``minutes`` (or ``max_steps`` steps, whichever
    comes first), print where the samples are."""
    t0 = time.time()
    root = make_dataset(Path(data), seed=seed)
    print(f"demo dataset: {root} (200 train / 20 test label|photo pairs, generated in "
          f"{time.time() - t0:.1f}s)", file=sys.stderr)
    run_dir = Path(out) / name
    if (run_dir / "train_state" / "latest.pt").exists():
        stamp = time.strftime("%Y%m%d-%H%M%S")
        name = f"{name}-{stamp}"
        print(f"{run_dir} exists; this demo run is {Path(out) / name}", file=sys.stderr)
    cfg = RunConfig.from_dict({
        "method": "pix2pix", "name": name, "checkpoints_dir": out,
        "data": {"root": str(root), "direction": "AtoB", "load_size": 64, "crop_size": 64,
                 "preprocess": "resize_and_crop"},
        "model": {"netG": "unet", "num_downs": 6, "ngf": 32, "ndf": 32},
        "loop": {"epochs": 1000, "epochs_decay": 0, "max_minutes": minutes, "max_steps": max_steps, "seed": seed,
                 "device": device,
                 "log_every": 20, "save_every": 500, "batch_size": 4, "sample_count": 6},
    })
    result = train(cfg, argv=["translate", "demo"])
    test_grid = _test_grid(result.run_dir, root)
    print(f"demo done: {result.step} steps in {(time.time() - t0) / 60:.1f} min.\n"
          f"  held-out test images (label | output | target): {test_grid}\n"
          f"  translator: {result.run_dir / 'translator'}  (translate info {result.run_dir})",
          file=sys.stderr)
    return 0 if result.stopped_by_signal is None else 128 + result.stopped_by_signal


def _test_grid(run_dir: Path, root: Path, count: int = 8) -> Path:
    """Translate held-out test pairs with the saved translator; write label | output | target."""
    import torch

    gen = for_inference(load_generator(run_dir, "a2b"), copy_net=False)
    test = PairedDataset(root, split="test", preprocess="resize_and_crop", load_size=64, crop_size=64,
                         flip=False, size_multiple=gen.size_multiple)
    test.set_epoch(0)
    items = [test[i] for i in range(min(count, len(test)))]
    a = torch.stack([it["a"] for it in items])
    b = torch.stack([it["b"] for it in items])
    with torch.no_grad():
        out = gen(a)
    return save_grid([a, out, b], run_dir / "samples" / "test.png")
