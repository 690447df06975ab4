"""Shared fixtures: tiny synthetic datasets written to tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _write_png(path: Path, img: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = img[..., ::-1] if img.ndim == 3 else img
    ok, buf = cv2.imencode(path.suffix, np.ascontiguousarray(bgr))
    assert ok
    path.write_bytes(buf.tobytes())


def make_ab_dataset(root: Path, n: int = 6, size: int = 36, split: str = "train", seed: int = 0) -> Path:
    """``root/split/k.png``: A|B side by side, B a smooth function of A (learnable, checkable)."""
    rng = np.random.default_rng(seed)
    for k in range(n):
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        b = 255 - a
        _write_png(root / split / f"{k:03d}.png", np.concatenate([a, b], axis=1))
    return root


def make_unpaired_dataset(root: Path, n_a: int = 4, n_b: int = 6, size: int = 36, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for side, n in (("A", n_a), ("B", n_b)):
        for k in range(n):
            _write_png(root / f"train{side}" / f"{side}{k:03d}.png",
                       rng.integers(0, 256, (size, size + 4, 3), dtype=np.uint8))
    return root


@pytest.fixture
def ab_data(tmp_path) -> Path:
    return make_ab_dataset(tmp_path / "ab")


@pytest.fixture
def unpaired_data(tmp_path) -> Path:
    return make_unpaired_dataset(tmp_path / "unpaired")


@pytest.fixture(autouse=True)
def _few_threads():
    # Two cores: keep tests from oversubscribing and make float results repeatable.
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def make_translator(folder: Path, method: str = "pix2pix", input_nc: int = 3, output_nc: int = 3) -> Path:
    """A translator folder with small random-weight generators (U-Net for pix2pix, ResNet for CycleGAN)."""
    import torch

    from translate.checkpoint import save_translator
    from translate.models import build_generator
    from translate.nn import init_weights

    torch.manual_seed(0)
    if method == "pix2pix":
        gens = {"a2b": build_generator("unet", input_nc=input_nc, output_nc=output_nc, num_downs=5, ngf=8)}
    else:
        gens = {"a2b": build_generator("resnet_6blocks", input_nc=input_nc, output_nc=output_nc, ngf=8),
                "b2a": build_generator("resnet_6blocks", input_nc=output_nc, output_nc=input_nc, ngf=8)}
    for g in gens.values():
        init_weights(g)
    pre = {"input_nc": input_nc, "output_nc": output_nc, "size_multiple": gens["a2b"].size_multiple,
           "batchnorm": "per_image", "crop_size": 64, "value_range": [-1.0, 1.0], "pad_mode": "reflect"}
    save_translator(folder / "translator", method, gens, pre, {"step": 0})
    return folder


def write_image_file(path: Path, img: np.ndarray) -> Path:
    from translate.data.io import write_image

    write_image(path, img)
    return path


# Session fixtures of real parts: an S3-compatible server and a two-node Ray cluster (started once).
from cloud_parts import ray_cluster, s3_server  # noqa: E402,F401
