"""Paired-consistent resize / random crop / flip, with randomness from a caller's Generator.

The preprocess modes are those of the pix2pix/CycleGAN reference implementation:

====================  ==================================================================
resize_and_crop       resize to load_size x load_size, then random crop crop_size x crop_size
crop                  random crop crop_size x crop_size from the image as it is
scale_width           resize so width = load_size, keeping the aspect ratio (height is
                      raised to at least crop_size, as in the reference)
scale_width_and_crop  scale_width, then random crop crop_size x crop_size
none                  no resize
====================  ==================================================================

Modes without a crop (scale_width, none) make variable-size outputs; they are then resized
so height and width are multiples of ``size_multiple`` (nearest multiple, at least one
multiple), because generators such as U-Nets only accept sizes divisible by 2**depth.
After that, a horizontal flip with probability 0.5 unless ``flip=False``.

The steps form one albumentations pipeline with B as an additional image target, so A and B
of a pair get the same crop and flip. Randomness: every call seeds the pipeline's random steps
from the ``rng`` passed to it, and only from it (never from global state), so an output is a
pure function of (inputs, rng state); datasets pass a generator made from (seed, epoch, index).
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np
from PIL import Image

# Albumentations checks PyPI for a newer version at import unless told not to; a training job
# (possibly offline, possibly on many workers) should not make network requests.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
_CROP_MODES = ("resize_and_crop", "crop", "scale_width_and_crop")
_LOAD_SIZE_MODES = ("resize_and_crop", "scale_width", "scale_width_and_crop")


RESIZE_FILTER = "bicubic, antialiased when shrinking (Pillow's BICUBIC: the reference implementation's filter)"
_PIL_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def resize_image(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resizes an ``(H, W, C)`` image with Pillow's bicubic filter.

    This is the filter of the pix2pix/CycleGAN reference implementation (torchvision's Resize on
    PIL images): bicubic, with the kernel widened by the scale factor when shrinking, so that
    downscaled images are antialiased. Training, evaluation and the study protocol all resize
    with it, so a model sees the same kind of image in each. uint8 images with 1, 3 or 4
    channels go through Pillow in one call; uint16 and float32 images (and other channel
    counts) are resized channel by channel in Pillow's 32-bit float mode, then rounded and
    saturated back to their dtype.

    Args:
        img: ``(H, W, C)`` uint8, uint16 or float32 array.
        height, width: Output size.

    Returns:
        ``(height, width, C)`` array of the input's dtype (the input itself when the size is
        unchanged).
    """
    if img.shape[:2] == (height, width):
        return img
    channels = img.shape[2]
    if img.dtype == np.uint8 and channels in _PIL_MODES:
        src = img[:, :, 0] if channels == 1 else img
        out = np.asarray(Image.fromarray(np.ascontiguousarray(src), _PIL_MODES[channels])
                         .resize((width, height), Image.BICUBIC))
        return out.reshape(height, width, channels)
    planes = []
    for c in range(channels):
        plane = Image.fromarray(np.ascontiguousarray(img[:, :, c], dtype=np.float32), "F")
        planes.append(np.asarray(plane.resize((width, height), Image.BICUBIC)))
    out = np.stack(planes, axis=2)
    if np.issubdtype(img.dtype, np.integer):
        info = np.iinfo(img.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(img.dtype)


def _round_half_up(x: float) -> int:
    return int(x + 0.5)


def _round_to_multiple(n: int, m: int) -> int:
    """Nearest multiple of ``m`` (halves round up), at least ``m``."""
    return max(m, (n + m // 2) // m * m)


class PillowResize(A.DualTransform):
    """Albumentations transform: resize to the size a preprocess mode gives for the input's size,
    with :func:`resize_image` (Pillow bicubic, antialiased when shrinking).

    Args:
        size_for: ``(height, width) -> (new_height, new_width)``.
    """

    def __init__(self, size_for, p: float = 1.0):
        super().__init__(p=p)
        self.size_for = size_for

    def get_params_dependent_on_data(self, params, data):
        height, width = params["shape"][:2]
        return {"size": self.size_for(height, width)}

    def apply(self, img: np.ndarray, size=None, **params) -> np.ndarray:
        squeeze = img.ndim == 2
        out = resize_image(img[:, :, None] if squeeze else img, *size)
        return out[:, :, 0] if squeeze else out

    def apply_to_mask(self, mask: np.ndarray, size=None, **params) -> np.ndarray:
        # Masks hold class or instance IDs: nearest neighbour only, values are never mixed.
        return nearest_resize(mask, *size)

    def get_transform_init_args_names(self):
        return ("size_for",)


def nearest_resize(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an ``(H, W)`` or ``(H, W, C)`` array (IDs copied, never mixed).

    Output pixel (i, j) takes input pixel (floor((i + 0.5) H / height), floor((j + 0.5) W / width)).
    """
    h, w = arr.shape[:2]
    if (h, w) == (height, width):
        return arr
    rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.int64), w - 1)
    return np.ascontiguousarray(arr[rows[:, None], cols[None, :]])


class PairedTransform:
    """Resize / random crop / horizontal flip applied identically to an A and a B image.

    One albumentations pipeline (:class:`PillowResize`, ``RandomCrop``, ``HorizontalFlip``)
    with B as an additional image target, so one random draw is applied to both.

    Args:
        preprocess: One of ``PREPROCESS_MODES`` (see the module docstring).
        load_size: Resize target (side for resize_and_crop, width for scale_width*).
        crop_size: Side of the square random crop; also the minimum height for scale_width*.
        flip: Flip horizontally with probability 0.5.
        size_multiple: For modes without a crop, output height and width are rounded to a
            multiple of this; for crop modes ``crop_size`` must be a multiple of it.

    Raises:
        ValueError: Unknown mode, non-positive sizes, ``load_size < crop_size`` in a mode that
            uses load_size, or ``crop_size`` not a multiple of ``size_multiple`` in a crop mode.
    """

    def __init__(self, preprocess: str = "resize_and_crop", load_size: int = 286,
                 crop_size: int = 256, flip: bool = True, size_multiple: int = 1):
        if preprocess not in PREPROCESS_MODES:
            raise ValueError(
                f"unknown preprocess mode {preprocess!r}; "
                f"valid modes: {', '.join(PREPROCESS_MODES)}")
        for name, value in (("load_size", load_size), ("crop_size", crop_size),
                            ("size_multiple", size_multiple)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if preprocess in _LOAD_SIZE_MODES and load_size < crop_size:
            raise ValueError(
                f"load_size ({load_size}) must be >= crop_size ({crop_size}) for preprocess "
                f"{preprocess!r}: images are resized to load_size, then cropped to crop_size")
        if preprocess in _CROP_MODES and crop_size % size_multiple:
            raise ValueError(
                f"crop_size ({crop_size}) must be a multiple of size_multiple ({size_multiple}) "
                f"so the generator accepts the crops")
        self.preprocess = preprocess
        self.load_size = int(load_size)
        self.crop_size = int(crop_size)
        self.flip = bool(flip)
        self.size_multiple = int(size_multiple)
        steps = [PillowResize(self.resize_size)]
        if preprocess in _CROP_MODES:
            steps.append(A.RandomCrop(self.crop_size, self.crop_size))
        if self.flip:
            steps.append(A.HorizontalFlip(p=0.5))
        self.pipeline = A.Compose(steps, additional_targets={"target": "image"}, strict=True)

    def __repr__(self) -> str:
        return (f"PairedTransform(preprocess={self.preprocess!r}, load_size={self.load_size}, "
                f"crop_size={self.crop_size}, flip={self.flip}, "
                f"size_multiple={self.size_multiple})")

    @property
    def is_random(self) -> bool:
        return self.flip or self.preprocess in _CROP_MODES

    # ------------------------------------------------------------------------------- sizes

    def resize_size(self, height: int, width: int) -> Tuple[int, int]:
        """``(height, width)`` after the resize step, before any crop."""
        mode, load, crop, m = self.preprocess, self.load_size, self.crop_size, self.size_multiple
        if mode == "resize_and_crop":
            return load, load
        if mode in ("scale_width", "scale_width_and_crop"):
            h = max(_round_half_up(load * height / width), crop)
            if mode == "scale_width":
                return _round_to_multiple(h, m), _round_to_multiple(load, m)
            return h, load
        if mode == "none":
            return _round_to_multiple(height, m), _round_to_multiple(width, m)
        return height, width  # "crop"

    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        """``(height, width)`` of the output for an input of the given size."""
        if self.preprocess in _CROP_MODES:
            return self.crop_size, self.crop_size
        return self.resize_size(height, width)

    def check_size(self, height: int, width: int) -> Optional[str]:
        """Why an input of this size cannot be transformed, or None if it can."""
        h, w = self.resize_size(height, width)
        if self.preprocess in _CROP_MODES and (h < self.crop_size or w < self.crop_size):
            return (f"the image is {width}x{height}, smaller than crop_size {self.crop_size} "
                    f"for preprocess {self.preprocess!r} (use resize_and_crop or a smaller "
                    f"crop_size)")
        return None

    # ------------------------------------------------------------------------------- apply

    def _seed(self, rng: Optional[np.random.Generator]) -> None:
        # Each random step gets its own seed drawn from the caller's generator. One seed for the
        # whole Compose would give every step the same stream (albumentations seeds each step
        # with it), so the crop offset and the flip would be correlated.
        for step in self.pipeline.transforms:
            step.set_random_seed(int(rng.integers(2**32)) if rng is not None else 0)

    def __call__(self, image_a: np.ndarray, image_b: Optional[np.ndarray] = None,
                 rng: Optional[np.random.Generator] = None
                 ) -> Tuple[np.ndarray, Optional[np.ndarray]]:
        """Transforms A (and B with the same crop and flip).

        Args:
            image_a: ``(H, W, C)`` array, uint8, uint16 or float32; its size drives the
                geometry.
            image_b: Optional ``(H', W', C')`` array; resized to A's size first when it
                differs, so A and B may have different sizes and channel counts.
            rng: Source of all randomness; required when the transform is random (a crop
                mode, or flip=True). The output is a pure function of the inputs and its state.

        Returns:
            ``(a, b)``: ``(h, w, C)`` and ``(h, w, C')`` arrays (``b`` is None when
            ``image_b`` is), same dtypes as the inputs, with ``(h, w) = output_size(H, W)``.

        Raises:
            ValueError: Bad shapes, missing ``rng``, or an image smaller than the crop.
        """
        for name, img in (("image_a", image_a), ("image_b", image_b)):
            if img is not None and (not isinstance(img, np.ndarray) or img.ndim != 3):
                raise ValueError(f"{name} must be an (H, W, C) numpy array, got "
                                 f"{getattr(img, 'shape', type(img).__name__)}")
        if self.is_random and not isinstance(rng, np.random.Generator):
            raise ValueError("this transform is random: pass rng=np.random.Generator(...)")
        height, width = image_a.shape[:2]
        problem = self.check_size(height, width)
        if problem:
            raise ValueError(problem)
        self._seed(rng)
        if image_b is None:
            out = self.pipeline(image=image_a)
            return np.ascontiguousarray(out["image"]), None
        out = self.pipeline(image=image_a, target=resize_image(image_b, height, width))
        return np.ascontiguousarray(out["image"]), np.ascontiguousarray(out["target"])

    def apply_to_labels(self, labels: np.ndarray, image_b: np.ndarray,
                        rng: Optional[np.random.Generator] = None) -> Tuple[np.ndarray, np.ndarray]:
        """Transforms an ID map (input) and its image (target) with one crop and flip.

        The ID map is resized with nearest neighbour only (never interpolated); the image with
        the usual bicubic filter, first to the ID map's size.

        Args:
            labels: ``(H, W, K)`` integer array (class IDs, optionally instance IDs as a
                second plane); its size drives the geometry.
            image_b: ``(H', W', C)`` image.
            rng: as for :meth:`__call__`.

        Returns:
            ``(labels, b)``: ``(h, w, K)`` with the input's dtype and ``(h, w, C)``.
        """
        if not isinstance(labels, np.ndarray) or labels.ndim != 3:
            raise ValueError(f"labels must be an (H, W, K) array, got {getattr(labels, 'shape', None)}")
        if self.is_random and not isinstance(rng, np.random.Generator):
            raise ValueError("this transform is random: pass rng=np.random.Generator(...)")
        height, width = labels.shape[:2]
        problem = self.check_size(height, width)
        if problem:
            raise ValueError(problem)
        self._seed(rng)
        out = self.pipeline(image=resize_image(image_b, height, width), mask=labels)
        return np.ascontiguousarray(out["mask"]), np.ascontiguousarray(out["image"])


def build_transform(preprocess: str, load_size: int, crop_size: int, flip: bool = True,
                    size_multiple: int = 1) -> PairedTransform:
    """Builds the transform for a preprocess mode; see :class:`PairedTransform`."""
    return PairedTransform(preprocess, load_size, crop_size, flip, size_multiple)
