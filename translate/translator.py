"""``Translator``: a trained generator as a callable object, for pipelines and for ``convert``.

    from translate import Translator
    t = Translator.load("checkpoints/facades")        # run folder or its translator/ folder
    out = t(pil_image)                                 # PIL -> PIL; numpy -> numpy of the same dtype
    y = t.translate_tensor(x)                          # (B, C, H, W) in [-1, 1] -> same H, W

Any input size works: the image is padded (reflect) to the generator's size multiple and the
output cropped back, so output pixels stay aligned with input pixels. Images above a pixel
budget go through overlapping tiles blended with feathered weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import label_encoding, load_generator, read_translator_json
from .conversion.local import convert
from .conversion.plan import DEFAULT_BATCH_SIZE
from .data.io import DEFAULT_MAX_PIXELS, image_to_tensor, read_image, tensor_to_image, to_channels
from .data.labels import check_ids, encode_labels, read_label_map, resize_nearest
from .errors import ArgumentError, DirectionError
from .frames import translate_frames
from .nn.inference import cast_for_inference, for_inference
from .runtime import (PrecisionChoice, autocast, resolve_device, resolve_precision, use_fast_kernels,
                      warn_if_slow_precision)
from .runtimes.generator import use_backend
from .video import convert_video

DEFAULT_TILE_PIXELS = 2048 * 2048  # images above this many pixels are translated in tiles
DEFAULT_TILE_OVERLAP = 64

ImageLike = Union["PIL.Image.Image", np.ndarray, str, Path]  # noqa: F821


def default_channels_last(device: torch.device, precision: str) -> bool:
    """Whether generators run channels_last by default: on CUDA and in reduced precision."""
    return device.type == "cuda" or precision != "fp32"


class Translator:
    """A loaded translator: one generator per direction, in eval mode, without gradients.

    Build it with :meth:`load`. Thread-compatible for reading; one call at a time per instance.
    """

    def __init__(self, doc: Dict[str, Any], generators: Dict[str, torch.nn.Module], device: torch.device,
                 precision: str = "fp32", tile_pixels: int = DEFAULT_TILE_PIXELS,
                 tile_overlap: int = DEFAULT_TILE_OVERLAP):
        self.doc = doc
        self.generators = generators
        self.device = device
        self.precision = precision
        self.tile_pixels = tile_pixels
        self.tile_overlap = tile_overlap
        pre = doc["preprocessing"]
        self.size_multiple = int(pre.get("size_multiple", 1))
        self.method = doc["method"]
        self.preprocessing = pre
        self.folder = Path(doc["_folder"])  # the translator folder it was loaded from (a local copy for URLs)
        self.source = doc.get("_source", doc["_folder"])  # where it was loaded from (path or URL)
        # {"label_nc": N, "instance_channel": bool} when inputs are class-ID maps, else None
        self.labels = label_encoding(pre)
        self.backend = "torch"  # or another of translate.runtimes.list_backends() (use_backend)
        self.channels_last = default_channels_last(device, precision)
        self.precision_choice = PrecisionChoice(precision, precision, "asked for")  # load() says why
        self.weights_dtype = torch.float32  # bf16: the generators' weights were cast once at load

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, checkpoint: Union[str, Path], device: Union[str, torch.device, None] = None,
             precision: Optional[str] = None, batchnorm: Optional[str] = None,
             tile_pixels: int = DEFAULT_TILE_PIXELS, tile_overlap: int = DEFAULT_TILE_OVERLAP,
             backend: str = "torch", onnx: Optional[Union[str, Path]] = None, compile: bool = False,
             memory_format: Optional[str] = None,
             storage_options: Optional[Dict[str, Any]] = None) -> "Translator":
        """Load a translator folder (or the run folder that holds one).

        Args:
            checkpoint: ``<run>/translator`` or ``<run>``: a local path or a URL (``s3://...``,
                ``gs://...``; fetched to a local temp folder first, see :mod:`translate.storage`).
            device: "cpu", "cuda", "cuda:N" or None (CUDA when available).
            precision: "auto" or None (default: bf16 where the device runs it natively and it was not
                measured slower for this generator, else fp32; see
                :func:`translate.runtime.resolve_precision`), "fp32", "bf16" or "fp16" (fp16 on CUDA
                only). ``precision`` is then what runs, ``precision_choice`` says why.
            batchnorm: override how batch-norm layers normalise at inference: "per_image"
                (default, as trained at batch size 1) or "running" (running averages).
            tile_pixels: images with more pixels than this are translated in tiles.
            tile_overlap: overlap between tiles in pixels (blended with feathered weights).
            backend: "torch" (default), "onnxruntime" or "openvino": run the generators with that
                runtime (exported to ONNX in memory and checked against PyTorch first; see
                :func:`translate.runtimes.generator.use_backend`). Padding, tiling and cropping stay the same.
            onnx: with backend onnxruntime/openvino, run this ONNX file instead of exporting
                (e.g. an int8 model from ``translate export --quantize int8``).
            compile: run the torch generators through ``torch.compile`` (torch backend only).
            memory_format: "channels_last" or "contiguous" for the torch generators and their
                inputs; None: channels_last on CUDA and in reduced precision, contiguous for fp32
                on a CPU (docs/performance.md: not consistently faster there).
            storage_options: fsspec options for a URL ``checkpoint`` (credentials, endpoint_url).

        Raises:
            CheckpointError: the path is not a translator folder, or its contents are invalid.
            translate.runtimes.ExportError: the backend cannot run or does not match PyTorch.
        """
        device = resolve_device(device)
        use_fast_kernels(device)  # conversion repeats the same shapes
        if memory_format not in (None, "channels_last", "contiguous"):
            raise ArgumentError(f"memory_format must be channels_last, contiguous or None, got {memory_format!r}")
        doc = read_translator_json(checkpoint, storage_options)
        arch = next(iter(doc["generators"].values()))["arch"]
        choice = resolve_precision(precision, device, work="convert", arch=arch,
                                   backend="onnxruntime" if onnx is not None and backend == "torch" else backend)
        precision = choice.precision
        warn_if_slow_precision(device, precision)
        channels_last = (default_channels_last(device, precision) if memory_format is None
                         else memory_format == "channels_last")
        mode = batchnorm or doc["preprocessing"].get("batchnorm", "per_image")
        gens = {}
        # bf16 on torch: cast the weights once here, not at every call under autocast.
        cast = torch.bfloat16 if precision == "bf16" and backend == "torch" and onnx is None else None
        for direction in doc["generators"]:
            net = load_generator(doc["_folder"], direction, device=device, doc=doc)
            net = for_inference(net, batchnorm=mode, copy_net=False)
            if cast is not None:
                net = cast_for_inference(net, cast)
            if channels_last:
                net = net.to(memory_format=torch.channels_last)
            if compile and backend == "torch":
                net = torch.compile(net, dynamic=True)
            gens[direction] = net
        t = cls(doc, gens, device, precision, tile_pixels, tile_overlap)
        t.channels_last = channels_last
        t.precision_choice = choice
        t.weights_dtype = cast or torch.float32
        if backend != "torch" or onnx is not None:
            use_backend(t, backend, onnx)
        return t

    @property
    def directions(self) -> List[str]:
        return list(self.generators)

    def pick_direction(self, direction: Optional[str] = None) -> str:
        """The direction to translate in: ``direction`` when this translator has it, else its only one.

        Directions name dataset domains: "a2b" translates domain A images into domain B (a
        pix2pix run trained with ``--direction BtoA`` has only "b2a").

        Raises:
            DirectionError: ``direction`` is None and there are two, or it is not one of them.
        """
        if direction is None:
            if len(self.generators) > 1:
                raise DirectionError(None, self.generators, f"this {self.method} translator")
            return next(iter(self.generators))
        if direction not in self.generators:
            raise DirectionError(direction, self.generators, f"this {self.method} translator")
        return direction

    def generator(self, direction: Optional[str] = None) -> torch.nn.Module:
        """The generator for ``direction`` (see :meth:`pick_direction`), in inference mode."""
        return self.generators[self.pick_direction(direction)]

    def channels(self, direction: Optional[str] = None) -> Tuple[int, int]:
        """(input channels, output channels) of the generator for ``direction``."""
        cfg = self.generators[self.pick_direction(direction)].config
        return cfg["input_nc"], cfg["output_nc"]

    def _autocast(self):
        return autocast(self.device, self.precision)

    # ------------------------------------------------------------------ tensors
    @torch.inference_mode()
    def translate_tensor(self, x: torch.Tensor, direction: Optional[str] = None) -> torch.Tensor:
        """Translate a batch ``(B, C_in, H, W)`` in [-1, 1] to ``(B, C_out, H, W)`` in [-1, 1].

        Any H and W: reflect-padded to the size multiple and cropped back; batches whose images
        exceed the tile pixel budget are translated tile by tile.
        """
        direction = self.pick_direction(direction)
        if not isinstance(x, torch.Tensor) or x.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) tensor, got {type(x).__name__} "
                             f"{tuple(getattr(x, 'shape', ()))}")
        c_in, _ = self.channels(direction)
        if x.shape[1] != c_in:
            raise ValueError(f"the {direction} generator takes {c_in} channels, got {x.shape[1]}")
        src_device = x.device
        x = x.to(self.device, torch.float32)
        h, w = x.shape[-2:]
        if h * w > self.tile_pixels:
            out = self._tiled(x, direction)
        else:
            out = self._padded(x, direction)
        return out.to(src_device)

    def _run(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        net = self.generators[direction]
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if self.weights_dtype != torch.float32:  # weights already in bf16: no autocast, no casts per call
            y = net(x.to(self.weights_dtype))
        else:
            with self._autocast():
                y = net(x)
        return y.float().clamp_(-1, 1)

    def _padded(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        m = self.size_multiple
        h, w = x.shape[-2:]
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = _reflect_pad(x, ph, pw)
        return self._run(x, direction)[..., :h, :w]

    def _tiled(self, x: torch.Tensor, direction: str) -> torch.Tensor:
        """Overlapping tiles of at most ``tile_pixels`` pixels, blended with feathered weights."""
        m = self.size_multiple
        b, _, h, w = x.shape
        side = max(m, int(self.tile_pixels ** 0.5) // m * m)
        overlap = min(self.tile_overlap, side // 2)
        th, tw = min(side, _round_up(h, m)), min(side, _round_up(w, m))
        # Pad so every tile lies inside the (padded) image; crop back at the end.
        H, W = max(h, th), max(w, tw)
        xp = _reflect_pad(x, H - h, W - w) if (H, W) != (h, w) else x
        _, c_out = self.channels(direction)
        out = torch.zeros(b, c_out, H, W, device=x.device)
        weight = torch.zeros(1, 1, H, W, device=x.device)
        ramp = _feather(th, tw, overlap, x.device)
        for y0 in _starts(H, th, overlap):
            for x0 in _starts(W, tw, overlap):
                tile = xp[..., y0:y0 + th, x0:x0 + tw]
                out[..., y0:y0 + th, x0:x0 + tw] += self._run(tile, direction) * ramp
                weight[..., y0:y0 + th, x0:x0 + tw] += ramp
        return (out / weight)[..., :h, :w]

    # ------------------------------------------------------------------ images
    def __call__(self, images, direction: Optional[str] = None, resize=None, instance=None):
        """Translate one image or a list of images.

        Args:
            images: a PIL image, a numpy array ``(H, W)`` / ``(H, W, C)`` (uint8, uint16 or float
                in [0, 1]), a path, or a list of these.
            direction: "a2b" or "b2a"; required when the translator has both.
            resize: None (translate at the input's own size), True (at the training crop size),
                an int (square side) or (width, height); the output is resized back to the input
                size either way.

        Returns:
            The same kind as the input: PIL in, PIL out; numpy in, numpy of the same dtype out;
            a path in, a numpy array out. A list gives a list. Alpha is carried over unchanged.

        Label translators (trained with ``--label-nc``) take single-channel class-ID maps (paths,
        gray or palette PIL images, (H, W) integer arrays), one-hot encode them themselves and
        return uint8 images; ``instance`` is the instance-ID map for translators trained with
        instance boundaries.
        """
        if isinstance(images, (list, tuple)):
            if instance is not None:
                raise ValueError("instance= goes with one label map at a time")
            return [self._one(im, direction, resize) for im in images]
        return self._one(images, direction, resize, instance)

    def read(self, path: Union[str, Path], max_pixels: Optional[int] = None) -> np.ndarray:
        """Decode an input file: a class-ID map (H, W) of integers for label translators, else an image."""
        if self.labels is None:
            return read_image(path, max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels)
        ids = read_label_map(path)
        if max_pixels is not None and ids.size > max_pixels:
            raise ValueError(f"{path}: {ids.shape[1]}x{ids.shape[0]} pixels, more than max_pixels={max_pixels}")
        return ids

    def _one(self, image, direction, resize, instance=None):
        direction = self.pick_direction(direction)
        kind = "numpy"
        if isinstance(image, (str, Path)):
            arr = self.read(image)
        elif _is_pil(image) and self.labels is not None:
            kind, arr = "pil", np.asarray(image) if image.mode in ("L", "P", "I;16", "I") else _pil_to_array(image)
        elif _is_pil(image):
            kind, arr = "pil", _pil_to_array(image)
        elif isinstance(image, np.ndarray):
            arr = image
        else:
            raise TypeError(f"expected a PIL image, numpy array or path, got {type(image).__name__}")
        if isinstance(instance, (str, Path)):
            instance = read_label_map(instance)
        elif instance is not None and _is_pil(instance):
            instance = np.asarray(instance)
        out = self.translate_array(arr, direction, resize, instance=instance)
        return _array_to_pil(out) if kind == "pil" else out

    def translate_array(self, arr: np.ndarray, direction: Optional[str] = None, resize=None,
                        instance: Optional[np.ndarray] = None) -> np.ndarray:
        """numpy ``(H, W)`` / ``(H, W, C)`` -> translated array of the same dtype and size.

        Label translators take an ``(H, W)`` class-ID map (and ``instance``, an ``(H, W)``
        instance-ID map, when they were trained with instance boundaries) and return ``(H, W, C)``
        uint8 images.
        """
        x, alpha, dtype, squeeze = self.prepare(arr, direction, resize, instance=instance)
        y = self.translate_tensor(x[None], direction)[0]
        return self.finish(y, arr.shape[:2], alpha, dtype, squeeze)

    def prepare(self, arr: np.ndarray, direction: Optional[str] = None, resize=None,
                instance: Optional[np.ndarray] = None):
        """Split an image array into the network input (C, h, w) in [-1, 1] and what ``finish`` needs.

        Label translators one-hot encode a class-ID map instead (nearest neighbour when resizing).
        """
        if self.labels is not None:
            return self._prepare_labels(arr, resize, instance)
        if not isinstance(arr, np.ndarray) or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 2, 3, 4)):
            raise ValueError(f"expected an (H, W) or (H, W, C) image with C in 1-4, got shape "
                             f"{getattr(arr, 'shape', None)}")
        if arr.dtype not in (np.uint8, np.uint16) and not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"unsupported image dtype {arr.dtype}: use uint8, uint16 or float in [0, 1]")
        squeeze = arr.ndim == 2
        img = arr[:, :, None] if squeeze else arr
        alpha = None
        if img.shape[2] in (2, 4):  # gray+alpha or RGBA: alpha is carried over, not translated
            alpha, img = img[:, :, -1:], img[:, :, :-1]
        c_in, _ = self.channels(direction)
        x = image_to_tensor(to_channels(img, c_in))
        size = self._resize_target(resize)
        if size is not None:
            x = F.interpolate(x[None], size=(size[1], size[0]), mode="bicubic", align_corners=False)[0]
            x = x.clamp(-1, 1)
        return x, alpha, arr.dtype, squeeze

    def _prepare_labels(self, arr: np.ndarray, resize, instance: Optional[np.ndarray]):
        """Class-ID map (H, W) -> one-hot (label_nc [+ 1], h, w) of 0/1; output as uint8 images."""
        n, with_inst = self.labels["label_nc"], self.labels["instance_channel"]
        ids = _as_id_map(arr, "label map")
        check_ids(ids, n, "the label map")
        if with_inst and instance is None:
            raise ValueError(f"this translator was trained with instance boundaries: give the instance-ID map too "
                             f"(instance=..., or --instance-dir with convert)")
        if instance is not None:
            if not with_inst:
                raise ValueError("this translator was trained without instance maps; do not pass instance=")
            instance = _as_id_map(instance, "instance map")
            if instance.shape != ids.shape:
                raise ValueError(f"the instance map is {instance.shape[1]}x{instance.shape[0]}, the label map "
                                 f"{ids.shape[1]}x{ids.shape[0]}")
        size = self._resize_target(resize)
        if size is not None:  # IDs are never interpolated
            ids = resize_nearest(ids, size[1], size[0])
            instance = resize_nearest(instance, size[1], size[0]) if instance is not None else None
        return encode_labels(ids, n, instance), None, np.dtype(np.uint8), False

    def finish(self, y: torch.Tensor, hw, alpha, dtype, squeeze: bool) -> np.ndarray:
        """Network output (C, h, w) in [-1, 1] -> image array of ``dtype`` and size ``hw``."""
        if tuple(y.shape[-2:]) != tuple(hw):
            y = F.interpolate(y[None].float(), size=tuple(hw), mode="bicubic", align_corners=False)[0]
        out_dtype = np.float32 if np.issubdtype(np.dtype(dtype), np.floating) else dtype
        out = tensor_to_image(y, out_dtype)
        if alpha is not None:
            out = np.concatenate([out, alpha.astype(out.dtype, copy=False)], axis=2)
        if squeeze and out.shape[2] == 1:
            out = out[:, :, 0]
        return out

    def _resize_target(self, resize) -> Optional[Tuple[int, int]]:
        if resize is None or resize is False:
            return None
        if resize is True:
            side = int(self.preprocessing.get("crop_size") or 256)
            return side, side
        if isinstance(resize, int):
            return resize, resize
        if isinstance(resize, (tuple, list)) and len(resize) == 2:
            return int(resize[0]), int(resize[1])
        raise ValueError(f"resize must be None, True, an int or (width, height), got {resize!r}")

    def translate_folder(self, input, output, **options):
        """Translate every image under ``input`` into ``output`` (same relative paths).

        ``input`` and ``output`` may be URLs (``s3://...``; ``storage_options=`` for credentials).
        See :func:`translate.conversion.local.convert` for the options; returns its summary.
        """
        return convert(self, input, output, **options)

    def translate_frames(self, frames, direction: Optional[str] = None, batch_size: int = DEFAULT_BATCH_SIZE,
                         **options):
        """Translate an iterable of (H, W, C) frames lazily, a batch at a time (a generator, in order).

        For pipelines with their own decoder; ``options``: ``temporal="flow"``,
        ``temporal_strength``, ``resize`` (see :func:`translate.frames.translate_frames`).
        """
        return translate_frames(self, frames, direction, batch_size, **options)

    def translate_video(self, src, dst, direction: Optional[str] = None, **options):
        """Translate the video file ``src`` into ``dst``, keeping its timing, rotation, sound and subtitles.

        See :func:`translate.video.convert_video` for the options (batch_size, options=VideoOptions(...),
        overwrite, progress, resize); returns its :class:`translate.video.VideoResult`.
        """
        return convert_video(self, src, dst, direction=direction, **options)

    def __repr__(self) -> str:
        return (f"Translator({self.method}, directions={self.directions}, device={self.device}, "
                f"precision={self.precision})")


def _as_id_map(arr, what: str) -> np.ndarray:
    """An (H, W) integer array of IDs from (H, W) or (H, W, 1) input."""
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"expected the {what} as a numpy array, got {type(arr).__name__}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim != 2:
        raise ValueError(f"a {what} must be single-channel (H, W) class IDs, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) or (arr.size and arr.min() < 0):
        raise ValueError(f"a {what} must hold non-negative integer IDs, got {arr.dtype}")
    return arr


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _reflect_pad(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Pad bottom/right by (ph, pw) with reflection; falls back to replicate where the image is
    too small to reflect (reflection needs pad < size)."""
    h, w = x.shape[-2:]
    while ph or pw:  # reflect in steps no larger than the current size
        sh, sw = min(ph, x.shape[-2] - 1), min(pw, x.shape[-1] - 1)
        if sh <= 0 and sw <= 0:
            return F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = F.pad(x, (0, max(sw, 0), 0, max(sh, 0)), mode="reflect")
        ph, pw = ph - max(sh, 0), pw - max(sw, 0)
    return x


def _starts(total: int, tile: int, overlap: int) -> List[int]:
    """Tile origins covering [0, total) with at least ``overlap`` pixels of overlap."""
    if tile >= total:
        return [0]
    stride = tile - overlap
    starts = list(range(0, total - tile, stride))
    starts.append(total - tile)
    return starts


def _feather(th: int, tw: int, overlap: int, device) -> torch.Tensor:
    """(1, 1, th, tw) weights rising linearly over ``overlap`` pixels from each tile edge."""
    def ramp(n):
        d = torch.arange(n, device=device, dtype=torch.float32)
        edge = torch.minimum(d + 0.5, n - 0.5 - d)
        return (edge / max(overlap, 1)).clamp(min=1e-3, max=1.0)

    return (ramp(th)[:, None] * ramp(tw)[None, :])[None, None]


# ---------------------------------------------------------------------- PIL conversion
def _is_pil(obj) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL is optional
        return False
    return isinstance(obj, Image.Image)


def _pil_to_array(img) -> np.ndarray:
    mode = img.mode
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB" if mode != "1" else "L")
    elif mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(img).astype(np.uint16)
    elif mode == "I":
        arr = np.asarray(img)
        if arr.min() < 0 or arr.max() > 65535:
            raise ValueError("32-bit integer images are not supported; convert to 8 or 16 bit")
        return arr.astype(np.uint16)
    elif mode == "F":
        return np.asarray(img, dtype=np.float32)
    return np.asarray(img)


def _array_to_pil(arr: np.ndarray):
    from PIL import Image

    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.dtype == np.uint16 and arr.ndim == 3:
        # PIL has no 16-bit RGB(A) mode: give 8-bit RGB(A) (2-D uint16 stays 16-bit, mode I;16)
        arr = np.rint(arr.astype(np.float32) / 257.0).astype(np.uint8)
    if arr.dtype == np.float32 and arr.ndim == 3:
        arr = np.rint(np.clip(arr, 0, 1) * 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(arr))
