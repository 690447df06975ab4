"""Datasets for image-to-image translation: reading images, layouts, transforms, checks.

Typical use::

    from translate.data import build_dataset
    ds = build_dataset("datasets/facades", "paired", direction="BtoA")
    ds.set_epoch(0)
    item = ds[0]          # {"a": (3, 256, 256) in [-1, 1], "b": ..., "path_a", "path_b"}
"""

from __future__ import annotations

from .check import ImageInfo, check_data, format_report, scan_images, validate_files
from .discover import (
    LAYOUTS,
    DatasetError,
    Layout,
    detect_layout,
    list_images,
    list_splits,
    match_pairs,
)
from .io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    ImageReadError,
    image_to_tensor,
    read_image,
    tensor_to_image,
    to_channels,
    write_image,
)
from .paired import PairedDataset
from .transforms import PREPROCESS_MODES, PairedTransform, build_transform
from .unpaired import UnpairedDataset

DATA_KINDS = ("paired", "unpaired")  # what a training method trains on (translate.methods)

__all__ = [
    "DATA_KINDS", "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "LAYOUTS", "PREPROCESS_MODES",
    "DatasetError", "ImageInfo", "ImageReadError", "Layout", "PairedDataset", "PairedTransform",
    "UnpairedDataset", "build_dataset", "build_transform", "check_data", "detect_layout",
    "format_report", "image_to_tensor", "list_images", "list_splits", "match_pairs",
    "read_image", "scan_images", "tensor_to_image", "to_channels", "validate_files", "write_image",
]


def build_dataset(root, kind: str, **kwargs):
    """Builds a training dataset of the kind a method trains on.

    Args:
        root: Dataset folder.
        kind: "paired" -> :class:`PairedDataset` (layouts ab and a_b);
            "unpaired" -> :class:`UnpairedDataset` (layout unpaired, or a_b used as two
            unpaired folders).
        **kwargs: Passed to the dataset class (split, direction, preprocess, seed, ...).

    Raises:
        ValueError: Unknown kind.
        DatasetError: The folder's layout does not suit the kind (the message says why).
    """
    classes = {"paired": PairedDataset, "unpaired": UnpairedDataset}
    if kind not in classes:
        raise ValueError(f"unknown data kind {kind!r}; valid: {', '.join(DATA_KINDS)}")
    return classes[kind](root, **kwargs)
