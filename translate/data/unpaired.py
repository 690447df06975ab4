"""Unpaired (CycleGAN) dataset: two folders of images whose files need not correspond.

Follows the determinism contract described in :mod:`translate.data.paired`: item ``i`` of
epoch ``e`` depends only on ``(seed, e, i)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import torch
from torch.utils.data import Dataset

from .check import ImageInfo, validate_files
from .discover import DatasetError, list_images
from .io import image_to_tensor, read_image, to_channels
from .paired import check_epoch, init_common, item_rng, normalise_index

PathLike = Union[str, os.PathLike]


class UnpairedDataset(Dataset):
    """Two image domains for CycleGAN.

    An epoch has ``max(len A, len B)`` items. Item ``i`` takes A file ``i % len A`` and a B
    file drawn at random (from the item's generator), so every A image is seen once per epoch
    when A is the larger domain, and B images are sampled with replacement. A and B get
    independent crops and flips.

    Args:
        root: Dataset folder: ``root/{split}A`` + ``root/{split}B`` (layout unpaired), or any
            a_b layout, whose A and B folders are then used without pairing. Side-by-side
            images (layout ab) are refused.
        split: Split to read ("train", "test", ...).
        direction: "AtoB": domain A is the input ``a``; "BtoA" swaps the domains.
        input_nc: Channels of ``a`` (1 gray or 3 RGB; converted as needed).
        output_nc: Channels of ``b``.
        preprocess, load_size, crop_size, flip, size_multiple: See
            :class:`translate.data.PairedTransform`.
        seed: Base seed of all randomness (non-negative).
        skip_bad_images: False: raise DatasetError listing unreadable (or too small) files;
            True: drop them with a warning and record them in ``bad_files``.
        max_items: Keep only the first N files of each domain (sorted order, before bad
            ones are dropped).
        layout: "auto", "unpaired" or "a_b".
        validate: Decode every file at construction (default); see PairedDataset.

    Attributes:
        layout: The detected :class:`Layout`.
        files_a, files_b: Files of the input domain and of the other domain (after
            ``direction``).
        bad_files: ``(path, reason)`` for every file left out.
        image_info: ``ImageInfo`` per validated file.

    Items are dicts: ``"a"`` float tensor ``(input_nc, H, W)`` in [-1, 1], ``"b"`` float
    tensor ``(output_nc, H', W')`` in [-1, 1] (sizes differ only in the no-crop modes),
    ``"path_a"``, ``"path_b"`` strings.
    """

    def __init__(self, root: PathLike, split: Optional[str] = "train", direction: str = "AtoB",
                 input_nc: int = 3, output_nc: int = 3, preprocess: str = "resize_and_crop",
                 load_size: int = 286, crop_size: int = 256, flip: bool = True,
                 size_multiple: int = 1, seed: int = 0, skip_bad_images: bool = False,
                 max_items: Optional[int] = None, layout: str = "auto", validate: bool = True):
        init_common(self, root, split, layout, direction, input_nc, output_nc, seed, max_items,
                    preprocess, load_size, crop_size, flip, size_multiple)
        if self.layout.kind == "ab":
            raise DatasetError(
                f"CycleGAN needs two folders of images, one per domain, but "
                f"{self.layout.folder} holds side-by-side A|B images (layout ab). Train "
                f"pix2pix on them, or split each image into {self.root}/{split}A/ and "
                f"{self.root}/{split}B/."
            )
        folder_a, folder_b = self.layout.folder_a, self.layout.folder_b
        if direction == "BtoA":
            folder_a, folder_b = folder_b, folder_a
        files_a, files_b = list_images(folder_a), list_images(folder_b)
        if max_items is not None:
            files_a, files_b = files_a[:max_items], files_b[:max_items]

        self.bad_files: List[Tuple[Path, str]] = []
        self.image_info: Dict[Path, ImageInfo] = {}
        if validate:
            self.image_info, self.bad_files = validate_files(
                files_a + files_b, skip_bad_images,
                size_check=lambda info: self.transform.check_size(info.height, info.width))
            bad = {path for path, _ in self.bad_files}
            files_a = [p for p in files_a if p not in bad]
            files_b = [p for p in files_b if p not in bad]
            for folder, files in ((folder_a, files_a), (folder_b, files_b)):
                if not files:
                    raise DatasetError(
                        f"No usable images are left in {folder}: every file was unreadable "
                        f"or too small (see the warning above).")
        self.files_a: List[Path] = files_a
        self.files_b: List[Path] = files_b

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose random choices ``__getitem__`` returns."""
        self.epoch = check_epoch(epoch)

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def __getitem__(self, index: int) -> Dict[str, Union[torch.Tensor, str]]:
        index = normalise_index(index, len(self))
        rng = item_rng(self.seed, self.epoch, index)
        path_a = self.files_a[index % len(self.files_a)]
        path_b = self.files_b[int(rng.integers(len(self.files_b)))]
        a, _ = self.transform(to_channels(read_image(path_a), self.input_nc), rng=rng)
        b, _ = self.transform(to_channels(read_image(path_b), self.output_nc), rng=rng)
        return {"a": image_to_tensor(a), "b": image_to_tensor(b),
                "path_a": str(path_a), "path_b": str(path_b)}

    def describe(self) -> str:
        """One line: layout, folders, counts, direction."""
        skipped = f", {len(self.bad_files)} bad files skipped" if self.bad_files else ""
        return (f"unpaired dataset, layout {self.layout.describe()}: {len(self.files_a)} input "
                f"images, {len(self.files_b)} target images, {len(self)} items per epoch"
                f"{skipped}; direction {self.direction}, {self.transform!r}")

    def __repr__(self) -> str:
        return f"<UnpairedDataset {self.describe()}>"
