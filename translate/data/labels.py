"""Class-ID label maps: reading, validating, one-hot encoding and instance boundaries.

A class-ID label map is a single-channel image (8- or 16-bit gray, or a palette PNG whose
palette indices are the IDs) whose pixel values are class IDs ``0 .. label_nc - 1``, e.g. the
``*_labelIds.png`` files of Cityscapes. The network sees it one-hot encoded: ``label_nc``
channels holding 0 or 1, plus optionally one channel marking instance boundaries (pixels whose
instance ID differs from a 4-neighbour's), as in pix2pixHD (Wang et al. 2018).

IDs are never interpolated: every resize of a label map is nearest-neighbour
(:func:`resize_nearest`), and crops and flips move whole pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import UserError
from .discover import list_images
from .transforms import nearest_resize as resize_nearest  # noqa: F401 - part of this module's API

PathLike = Union[str, os.PathLike]


class LabelError(UserError, ValueError):
    """A label map is unreadable, not single-channel, or holds an ID outside ``0 .. label_nc - 1``."""


def read_label_map(path: PathLike) -> np.ndarray:
    """Reads a single-channel class-ID (or instance-ID) image as integers.

    Args:
        path: 8-bit gray, 16-bit gray, 32-bit integer (values 0..65535) or palette image
            (palette indices are the IDs); PNG, TIFF, BMP or anything else Pillow reads
            losslessly as one channel.

    Returns:
        ``(H, W)`` array, ``uint8`` for 8-bit and palette images, ``uint16`` otherwise.

    Raises:
        LabelError: unreadable file, or an image with colour channels (the message says what
            was found and what is expected).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in ("L", "P"):
                return np.array(img, dtype=np.uint8)
            if mode == "1":
                return np.array(img, dtype=np.uint8)
            if mode.startswith("I;16"):
                return np.array(img).astype(np.uint16)
            if mode == "I":
                arr = np.array(img)
                if arr.size and (arr.min() < 0 or arr.max() > 65535):
                    raise LabelError(f"{path}: label values must lie in 0..65535, found "
                                     f"{int(arr.min())}..{int(arr.max())}")
                return arr.astype(np.uint16)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise LabelError(f"{path}: cannot read it as a label map ({e})") from None
    raise LabelError(
        f"{path}: a class-ID label map must be a single-channel image (8- or 16-bit gray, or a "
        f"palette PNG), but this one is {mode!r}. Colour label maps train without --label-nc; "
        f"with --label-nc, save one class ID per pixel as a gray PNG.")


def check_ids(ids: np.ndarray, label_nc: int, path: PathLike = "<array>") -> None:
    """Refuses a label map with an ID >= ``label_nc``.

    Raises:
        LabelError: naming ``path``, the first offending value (in row-major order), its pixel
            location (x, y) and how many pixels are out of range.
    """
    if ids.ndim == 3:  # (H, W, 1)
        ids = ids[:, :, 0]
    if ids.size == 0:
        return
    if int(ids.max()) < label_nc:
        return
    bad = ids >= label_nc
    y, x = np.unravel_index(int(np.argmax(bad)), ids.shape[:2])
    value = int(ids[y, x])
    raise LabelError(
        f"{path}: class ID {value} at pixel (x={x}, y={y}) is not below label_nc={label_nc} "
        f"(valid IDs: 0..{label_nc - 1}); {int(bad.sum())} pixels are out of range, largest ID "
        f"{int(ids.max())}. Raise --label-nc to at least {int(ids.max()) + 1} or fix the map.")


def instance_edges(inst: np.ndarray) -> np.ndarray:
    """Instance-boundary map: 1 where a pixel's instance ID differs from a 4-neighbour's.

    Args:
        inst: ``(H, W)`` integer instance IDs.

    Returns:
        ``(H, W)`` float32 array of 0 and 1.
    """
    edge = np.zeros(inst.shape, dtype=bool)
    dx = inst[:, 1:] != inst[:, :-1]
    dy = inst[1:, :] != inst[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    return edge.astype(np.float32)


def encode_labels(ids: np.ndarray, label_nc: int, inst: Optional[np.ndarray] = None) -> torch.Tensor:
    """One-hot encodes a class-ID map (and appends the instance-boundary channel).

    Args:
        ids: ``(H, W)`` integer class IDs, all < ``label_nc`` (see :func:`check_ids`).
        label_nc: number of classes.
        inst: optional ``(H, W)`` instance IDs of the same size.

    Returns:
        float32 tensor ``(label_nc [+ 1], H, W)`` of 0 and 1.
    """
    ids_t = torch.from_numpy(np.ascontiguousarray(ids).astype(np.int64))
    out = torch.zeros((label_nc + (inst is not None),) + ids.shape, dtype=torch.float32)
    out[:label_nc].scatter_(0, ids_t[None], 1.0)  # (label_nc, H, W)
    if inst is not None:
        out[label_nc] = torch.from_numpy(instance_edges(inst))
    return out


def encoded_channels(label_nc: int, instance: bool) -> int:
    """Channels of the network input for a label encoding."""
    return label_nc + int(bool(instance))


def id_counts(paths: Iterable[PathLike], label_nc: Optional[int] = None, limit: int = 10) -> Dict[str, object]:
    """Which class IDs occur in label maps (for ``translate check-data``).

    Returns:
        ``{"ids": sorted IDs found, "pixels": {id: count}, "unreadable": [[path, reason]],
        "out_of_range": [[path, first bad ID, [x, y]]] (only when label_nc is given, at most
        ``limit`` files listed), "out_of_range_files": count}``.
    """
    counts = np.zeros(65536, dtype=np.int64)
    unreadable: List[List[str]] = []
    out_of_range: List[list] = []
    bad_files = 0
    for path in paths:
        try:
            ids = read_label_map(path)
        except LabelError as e:
            unreadable.append([str(path), str(e)])
            continue
        counts += np.bincount(ids.ravel(), minlength=65536)[:65536]
        if label_nc is not None and ids.size and int(ids.max()) >= label_nc:
            bad_files += 1
            if len(out_of_range) < limit:
                bad = ids >= label_nc
                y, x = np.unravel_index(int(np.argmax(bad)), ids.shape)
                out_of_range.append([str(path), int(ids[y, x]), [int(x), int(y)]])
    found = np.nonzero(counts)[0]
    return {"ids": [int(i) for i in found], "pixels": {int(i): int(counts[i]) for i in found},
            "unreadable": unreadable, "out_of_range": out_of_range, "out_of_range_files": bad_files}


def match_instances(label_files: Sequence[Path], label_folder: Path, inst_folder: Path) -> List[Path]:
    """The instance map of every label file: same relative path (extension may differ) under ``inst_folder``.

    Raises:
        LabelError: listing label files without an instance map.
    """
    keyed = {p.relative_to(inst_folder).with_suffix("").as_posix(): p for p in list_images(inst_folder)}
    out, missing = [], []
    for f in label_files:
        key = Path(f).relative_to(label_folder).with_suffix("").as_posix()
        if key in keyed:
            out.append(keyed[key])
        else:
            missing.append(str(f))
    if missing:
        shown = ", ".join(missing[:5]) + (f" ... ({len(missing)} in all)" if len(missing) > 5 else "")
        raise LabelError(f"instance folder {inst_folder} has no instance map for: {shown} "
                         "(matched by relative path without extension)")
    return out
