"""Paired (pix2pix) dataset: side-by-side A|B files or matching A/ and B/ folders.

Determinism contract, shared with :class:`translate.data.UnpairedDataset`: item ``i`` of epoch
``e`` is a pure function of ``(seed, e, i)``. ``set_epoch(e)`` selects the epoch and
``__getitem__(i)`` draws every random choice from ``np.random.default_rng([seed, e, i])``, so
results do not depend on the number of DataLoader workers, on the order items are fetched,
or on where a resumed run restarts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from .check import ImageInfo, validate_files
from .discover import DatasetError, detect_layout, list_images, match_pairs
from .io import image_to_tensor, read_image, to_channels
from .labels import check_ids, encode_labels, match_instances, read_label_map
from .transforms import build_transform

PathLike = Union[str, os.PathLike]
DIRECTIONS = ("AtoB", "BtoA")


def check_common_args(direction: str, input_nc: int, output_nc: int, seed: int,
                      max_items: Optional[int]) -> None:
    """Validates the constructor arguments both dataset classes share."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
    for name, nc in (("input_nc", input_nc), ("output_nc", output_nc)):
        if nc not in (1, 3):
            raise ValueError(f"{name} must be 1 (gray) or 3 (RGB), got {nc!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if max_items is not None and (not isinstance(max_items, (int, np.integer)) or max_items < 1):
        raise ValueError(f"max_items must be None or a positive integer, got {max_items!r}")


def init_common(dataset: Dataset, root: PathLike, split: Optional[str], layout: str,
                direction: str, input_nc: int, output_nc: int, seed: int,
                max_items: Optional[int], preprocess: str, load_size: int, crop_size: int,
                flip: bool, size_multiple: int) -> None:
    """Validates the shared constructor arguments and sets the attributes both dataset classes
    share: ``transform``, ``root``, ``split``, ``direction``, ``input_nc``, ``output_nc``,
    ``seed``, ``epoch`` (0) and ``layout`` (detected)."""
    check_common_args(direction, input_nc, output_nc, seed, max_items)
    dataset.transform = build_transform(preprocess, load_size, crop_size, flip, size_multiple)
    dataset.root = Path(root)
    dataset.split = split
    dataset.direction = direction
    dataset.input_nc = input_nc
    dataset.output_nc = output_nc
    dataset.seed = int(seed)
    dataset.epoch = 0
    dataset.layout = detect_layout(root, split, layout)


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator for one item: a pure function of (seed, epoch, index)."""
    return np.random.default_rng([seed, epoch, index])


def check_epoch(epoch: int) -> int:
    if not isinstance(epoch, (int, np.integer)) or isinstance(epoch, bool) or epoch < 0:
        raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
    return int(epoch)


def normalise_index(index: int, length: int) -> int:
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
        raise TypeError(f"dataset index must be an integer, got {type(index).__name__}")
    if not -length <= index < length:
        raise IndexError(f"index {index} out of range for a dataset of {length} items")
    return int(index) % length


def split_halves(img: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Splits a side-by-side image into its left and right halves.

    Each half is ``floor(W / 2)`` columns wide; for an odd width the middle column belongs to
    neither half.

    Args:
        img: ``(H, W, C)`` array.

    Returns:
        ``(left, right)``, each ``(H, W // 2, C)`` (views, not copies).
    """
    half = img.shape[1] // 2
    return img[:, :half], img[:, img.shape[1] - half:]


class PairedDataset(Dataset):
    """Aligned image pairs for pix2pix.

    Args:
        root: Dataset folder (see :func:`translate.data.detect_layout` for the layouts).
        split: Split to read ("train", "test", ...).
        layout: "auto", "ab" or "a_b" ("unpaired" is refused: there are no pairs).
        direction: "AtoB": A is the input; "BtoA": B is the input. In layout ab, A is the
            left half.
        input_nc: Channels of the input ``a`` (1 gray or 3 RGB; converted as needed).
        output_nc: Channels of the target ``b``.
        preprocess, load_size, crop_size, flip, size_multiple: See
            :class:`translate.data.PairedTransform`. Crop and flip are shared by a and b.
        seed: Base seed of all randomness (non-negative).
        skip_bad_images: What to do with files that cannot be decoded (or are smaller than
            the crop): False raises DatasetError listing them; True drops their pairs with a
            warning and records them in ``bad_files``.
        max_items: Keep only the first N pairs (sorted order, before bad ones are dropped).
        validate: Decode every file at construction (default). False skips the check (for
            huge datasets); a bad file then raises ImageReadError when its item is loaded.
        label_nc: 0 (default): the input is an image like any other. N > 0: the input side
            holds single-channel class-ID maps (IDs 0..N-1), one-hot encoded into N channels;
            resized with nearest neighbour only. An ID >= N is a LabelError naming the file,
            the value and the pixel (checked for every file at construction when ``validate``).
        instance_dir: with ``label_nc``: a folder of instance-ID maps matched to the label maps
            by relative path; their instance boundaries become one more input channel. None:
            the ``inst/`` folder beside ``A/`` and ``B/`` when there is one (layout a_b).

    Attributes:
        layout: The detected :class:`Layout`.
        files: ``(path_a, path_b)`` per item, after ``direction`` (path_a is the input's
            file; both are the same file in layout ab).
        files_a, files_b: The same, as two lists.
        bad_files: ``(path, reason)`` for every file left out.
        image_info: ``ImageInfo`` per validated file (empty when ``validate=False``).

    Items are dicts: ``"a"`` float tensor ``(input_nc, H, W)`` in [-1, 1] (the model input),
    ``"b"`` float tensor ``(output_nc, H, W)`` in [-1, 1] (the target), ``"path_a"`` and
    ``"path_b"`` strings.
    """

    def __init__(self, root: PathLike, split: Optional[str] = "train", layout: str = "auto",
                 direction: str = "AtoB", input_nc: int = 3, output_nc: int = 3,
                 preprocess: str = "resize_and_crop", load_size: int = 286, crop_size: int = 256,
                 flip: bool = True, size_multiple: int = 1, seed: int = 0,
                 skip_bad_images: bool = False, max_items: Optional[int] = None,
                 validate: bool = True, label_nc: int = 0, instance_dir: Optional[PathLike] = None):
        init_common(self, root, split, layout, direction, input_nc, output_nc, seed, max_items,
                    preprocess, load_size, crop_size, flip, size_multiple)
        if self.layout.kind == "unpaired":
            raise DatasetError(
                f"pix2pix needs aligned pairs, but {self.layout.folder_a} and "
                f"{self.layout.folder_b} are unpaired folders (layout unpaired), whose files "
                f"need not correspond. For pix2pix, put side-by-side A|B images in "
                f"{self.root}/{split}/ or matching files in {self.root}/{split}/A/ and "
                f"{self.root}/{split}/B/; for unpaired folders, train CycleGAN instead."
            )
        if self.layout.kind == "ab":
            pairs = [(p, p) for p in list_images(self.layout.folder)]
        else:
            pairs = match_pairs(self.layout.folder_a, self.layout.folder_b)
            if direction == "BtoA":
                pairs = [(b, a) for a, b in pairs]
        if max_items is not None:
            pairs = pairs[:max_items]

        self.bad_files: List[Tuple[Path, str]] = []
        self.image_info: Dict[Path, ImageInfo] = {}
        if validate:
            input_files = {a for a, _ in pairs}
            self.image_info, self.bad_files = validate_files(
                [p for pair in pairs for p in pair], skip_bad_images,
                size_check=lambda info: self._size_problem(info, info.path in input_files))
            bad = {path for path, _ in self.bad_files}
            pairs = [(a, b) for a, b in pairs if a not in bad and b not in bad]
            if not pairs:
                raise DatasetError(
                    f"No usable image pairs are left in {self.layout.describe()}: every file "
                    f"was unreadable or too small (see the warning above).")
        self.files: List[Tuple[Path, Path]] = pairs
        self.files_a = [a for a, _ in pairs]
        self.files_b = [b for _, b in pairs]
        self.label_nc = int(label_nc)
        self.instance_files: Optional[List[Path]] = None
        if self.label_nc > 0:
            self._init_labels(instance_dir, validate)

    def _init_labels(self, instance_dir: Optional[PathLike], validate: bool) -> None:
        """Finds the instance maps and checks every label map's IDs (when validating)."""
        if self.layout.kind == "a_b":
            label_folder = self.layout.folder_b if self.direction == "BtoA" else self.layout.folder_a
            inst = Path(instance_dir) if instance_dir else label_folder.parent / "inst"
            if instance_dir and not inst.is_dir():
                raise DatasetError(f"instance folder {inst} does not exist")
            if inst.is_dir():
                self.instance_files = match_instances(self.files_a, label_folder, inst)
        elif instance_dir:
            raise DatasetError("instance maps need the a_b layout (A/ labels, B/ images, inst/ instances); "
                               f"{self.layout.describe()} is side-by-side")
        if validate:
            for path in self.files_a:
                ids = read_label_map(path)
                if self.layout.kind == "ab":
                    ids = split_halves(ids[:, :, None])[0 if self.direction == "AtoB" else 1]
                check_ids(ids, self.label_nc, path)

    @property
    def instance_channel(self) -> bool:
        """Whether items carry the instance-boundary channel after the one-hot channels."""
        return self.instance_files is not None

    def _size_problem(self, info: ImageInfo, is_input: bool) -> Optional[str]:
        width = info.width
        if self.layout.kind == "ab":
            if width < 2:
                return f"the image is {width} pixel wide, too narrow to split into A|B halves"
            width //= 2
        elif not is_input:
            return None  # the target is resized to the input's size, so any size works
        return self.transform.check_size(info.height, width)

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose random crops/flips ``__getitem__`` returns."""
        self.epoch = check_epoch(epoch)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Dict[str, Union[torch.Tensor, str]]:
        index = normalise_index(index, len(self.files))
        rng = item_rng(self.seed, self.epoch, index)
        path_a, path_b = self.files[index]
        if self.label_nc > 0:
            return self._label_item(index, path_a, path_b, rng)
        if self.layout.kind == "ab":
            left, right = split_halves(read_image(path_a))
            a, b = (left, right) if self.direction == "AtoB" else (right, left)
        else:
            a, b = read_image(path_a), read_image(path_b)
        a = to_channels(a, self.input_nc)
        b = to_channels(b, self.output_nc)
        a, b = self.transform(a, b, rng=rng)
        return {"a": image_to_tensor(a), "b": image_to_tensor(b),
                "path_a": str(path_a), "path_b": str(path_b)}

    def _label_item(self, index: int, path_a: Path, path_b: Path, rng) -> Dict[str, Union[torch.Tensor, str]]:
        """Item of a class-ID dataset: ``"a"`` one-hot (label_nc [+ 1], H, W) of 0/1, ``"b"`` the image."""
        if self.layout.kind == "ab":
            whole = read_label_map(path_a)[:, :, None]
            left, right = split_halves(whole)
            ids, b = (left, right) if self.direction == "AtoB" else (right, left)
        else:
            ids, b = read_label_map(path_a)[:, :, None], read_image(path_b)
        check_ids(ids, self.label_nc, path_a)
        planes = [ids.astype(np.int32)]
        if self.instance_files is not None:
            inst_path = self.instance_files[index]
            inst = read_label_map(inst_path)
            if inst.shape != ids.shape[:2]:
                raise DatasetError(f"instance map {inst_path} is {inst.shape[1]}x{inst.shape[0]}, but its label "
                                   f"map {path_a} is {ids.shape[1]}x{ids.shape[0]}")
            planes.append(inst[:, :, None].astype(np.int32))
        labels, b = self.transform.apply_to_labels(np.concatenate(planes, 2), to_channels(b, self.output_nc), rng)
        inst_plane = labels[:, :, 1] if self.instance_files is not None else None
        return {"a": encode_labels(labels[:, :, 0], self.label_nc, inst_plane), "b": image_to_tensor(b),
                "path_a": str(path_a), "path_b": str(path_b)}

    def describe(self) -> str:
        """One line: layout, folders, counts, direction."""
        skipped = f", {len(self.bad_files)} bad files skipped" if self.bad_files else ""
        labels = ""
        if getattr(self, "label_nc", 0):
            labels = (f"; class-ID inputs one-hot to {self.label_nc} channels"
                      f"{' + instance boundaries' if self.instance_channel else ''}")
        return (f"paired dataset, layout {self.layout.describe()}: {len(self.files)} pairs"
                f"{skipped}; direction {self.direction}, {self.transform!r}{labels}")

    def __repr__(self) -> str:
        return f"<PairedDataset {self.describe()}>"
