"""Synthetic benchmark inputs in the real dataset layouts (JPEG, photo-like content)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np

from ..data.io import write_image

def synthetic_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """A smooth, photo-like RGB uint8 image: low-frequency colour fields, a few shapes, grain."""
    import cv2

    field = rng.random((max(2, h // 32), max(2, w // 32), 3)).astype(np.float32)
    img = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC) * 200 + 25
    for _ in range(int(rng.integers(3, 8))):
        color = tuple(float(c) for c in rng.integers(0, 256, 3))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.rectangle(img, (x0, y0), (x1, y1), color, -1)
        else:
            cv2.circle(img, (x0, y0), max(2, abs(x1 - x0) // 3), color, -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_jpeg(path: Path, rgb: np.ndarray) -> None:
    write_image(path, rgb, quality=95)


def make_synthetic_datasets(root: Path, size: int, n_train: int, n_convert: int, seed: int = 0) -> Dict[str, Path]:
    """Write the benchmark's inputs under ``root``: a paired set (``paired/train/k.jpg``, A|B side
    by side), an unpaired set (``unpaired/trainA``, ``trainB``) and a conversion folder
    (``convert/k.jpg``), all JPEG at ``size``."""
    rng = np.random.default_rng(seed)
    paths = {"paired": root / "paired", "unpaired": root / "unpaired", "convert": root / "convert"}
    for k in range(n_train):
        a = synthetic_image(rng, size, size)
        b = 255 - a[:, ::-1]  # a target that depends on the input
        write_jpeg(paths["paired"] / "train" / f"{k:04d}.jpg", np.concatenate([a, b], axis=1))
        write_jpeg(paths["unpaired"] / "trainA" / f"{k:04d}.jpg", synthetic_image(rng, size, size))
        write_jpeg(paths["unpaired"] / "trainB" / f"{k:04d}.jpg", synthetic_image(rng, size, size))
    for k in range(n_convert):
        write_jpeg(paths["convert"] / f"{k:04d}.jpg", synthetic_image(rng, size, size))
    return paths
