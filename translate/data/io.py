"""Decode and encode images: 8/16-bit, gray/RGB/RGBA, palette, EXIF orientation.

Everything in this package reads pixels through :func:`read_image` and writes them through
:func:`write_image`, so file-format quirks are handled in one place:

* arrays are always ``(H, W, C)`` with ``C`` in {1, 3, 4}, in RGB(A) channel order;
* 16-bit samples are kept as ``uint16`` (value range [0, 65535]); float TIFFs come back as
  ``float32`` exactly as stored (expected range [0, 1]);
* problems are raised as :class:`ImageReadError`, whose message names the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple, Union

import cv2
import numpy as np
import torch

from ..formats import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS
from ..fsutil import atomic_write_bytes

PathLike = Union[str, os.PathLike]

# IMAGE_EXTENSIONS and DEFAULT_MAX_PIXELS (the decode guard) are defined in translate.formats.

# ITU-R BT.601 luma weights for R, G, B (what PIL's "L" mode and OpenCV's RGB2GRAY use).
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


class ImageReadError(Exception):
    """An image file could not be read. ``str(err)`` is ``"{path}: {reason}"``.

    Attributes:
        path: The file that failed.
        reason: What is wrong with it, in words.
    """

    def __init__(self, path: PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):
        # Keeps the exception picklable, so DataLoader workers can send it to the main process.
        return (type(self), (self.path, self.reason))


class ImageTooLargeError(ImageReadError):
    """The image has more pixels than the ``max_pixels`` guard allows."""


# ----------------------------------------------------------------------------------- reading


def read_image(path: PathLike, max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes an image file into a numpy array.

    Formats are whatever OpenCV decodes (JPEG, PNG, BMP, TIFF, WebP, ...), recognised by content,
    not by the file name. Palette PNGs are expanded to RGB, or RGBA when they have transparency.
    Gray+alpha PNGs come back as RGBA (gray replicated). EXIF orientation is applied to JPEGs
    (the only format where cameras and phones write it); other formats are returned as stored.

    Args:
        path: Image file. Non-ASCII names work (the bytes are read by numpy, not by OpenCV).
        max_pixels: Refuse images with more than this many pixels (width x height); checked
            from the file header before decoding for JPEG, PNG, BMP and WebP, after decoding
            otherwise. ``None`` disables the check.

    Returns:
        ``(H, W, C)`` array, ``C`` in {1, 3, 4} (gray, RGB, RGBA), dtype ``uint8`` [0, 255],
        ``uint16`` [0, 65535] or ``float32`` (float TIFFs, as stored, expected in [0, 1]).

    Raises:
        ImageReadError: Missing/unreadable file, empty file, not an image, truncated file,
            too many pixels, or an unsupported sample type or channel count.
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise ImageReadError(path, f"cannot read the file ({err.strerror or err})") from None
    return decode_image(data, path, max_pixels=max_pixels)


def decode_image(data: Union[bytes, bytearray, memoryview, np.ndarray], name: PathLike = "<bytes>",
                 max_pixels: Optional[int] = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decodes an encoded image held in memory, with the same rules as :func:`read_image`.

    Args:
        data: The encoded file's bytes (or a uint8 array of them).
        name: What error messages call the data (a file name, "upload"...).
        max_pixels: See :func:`read_image`.

    Returns:
        ``(H, W, C)`` array as :func:`read_image` returns it.

    Raises:
        ImageReadError: Empty, not an image, truncated, or an unsupported sample type or
            channel count; :class:`ImageTooLargeError` for more pixels than ``max_pixels``.
    """
    path = name
    if not isinstance(data, np.ndarray):
        data = np.frombuffer(data, dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(path, "the file is empty (0 bytes)")

    head = data[:64].tobytes()  # enough to recognise the format
    fmt = _sniff_format(head)

    problem, size = _check_container(fmt, data)
    if problem:
        raise ImageReadError(path, problem)
    if size is not None:
        _check_pixels(path, size[0], size[1], max_pixels)

    # IMREAD_UNCHANGED keeps 16-bit samples and alpha but skips EXIF orientation; JPEG has no
    # alpha, so for JPEG ANYDEPTH|ANYCOLOR keeps the same pixels *and* applies the orientation.
    if fmt == "jpeg":
        flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR
    else:
        flags = cv2.IMREAD_UNCHANGED
    try:
        img = cv2.imdecode(data, flags)
    except cv2.error as err:
        raise ImageReadError(path, f"cannot decode the image ({_last_line(err)})") from None
    if img is None:
        if fmt is None:
            raise ImageReadError(
                path, f"not an image file OpenCV can decode (it starts with {head[:12]!r})")
        raise ImageReadError(path, f"cannot decode the {fmt.upper()} data (corrupt or truncated)")

    if size is None:
        _check_pixels(path, img.shape[1], img.shape[0], max_pixels)
    return _normalise_decoded(path, img)


@dataclass(frozen=True)
class ImageProbe:
    """What the first bytes of an encoded image say, without decoding any pixel.

    Attributes:
        format: "jpeg", "png", "webp", "bmp", "tiff", or None when the bytes are no known image.
        size: ``(width, height)`` from the header, or None when the header does not give it.
        problem: Why the file is malformed or truncated, or None.
    """

    format: Optional[str]
    size: Optional[Tuple[int, int]]
    problem: Optional[str]


def probe_image(data: Union[bytes, bytearray, memoryview, np.ndarray]) -> ImageProbe:
    """Recognises an image by its content and reads its size from the header.

    Works on JPEG, PNG, WebP, BMP and TIFF (first image of the file); checks that JPEG, PNG and
    WebP files are complete. Cheap: no pixel is decoded, so it can guard a decoder against
    files that would expand to too many pixels.
    """
    if not isinstance(data, np.ndarray):
        data = np.frombuffer(data, dtype=np.uint8)
    fmt = _sniff_format(data[:64].tobytes())
    if fmt is None:
        return ImageProbe(None, None, None)
    problem, size = _check_container(fmt, data)
    if fmt == "tiff" and size is None:
        size = _tiff_size(data)
    return ImageProbe(fmt, size, problem)


def _last_line(err: Exception) -> str:
    """The informative part of an OpenCV error (its last non-empty line)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _check_pixels(path: Path, width: int, height: int, max_pixels: Optional[int]) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(
            path,
            f"the image is {width}x{height} = {width * height} pixels, more than max_pixels="
            f"{max_pixels} (a guard against decompression bombs; raise max_pixels to allow it)",
        )


def _normalise_decoded(path: Path, img: np.ndarray) -> np.ndarray:
    """Brings an OpenCV result to (H, W, C) RGB(A) with a supported dtype."""
    if img.dtype == np.float64:
        img = img.astype(np.float32)
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageReadError(
            path, f"unsupported sample type {img.dtype} (expected 8-bit, 16-bit or float32)")
    if img.ndim == 2:
        return img[:, :, None]
    channels = img.shape[2]
    if channels == 1:
        return img
    if channels == 3:
        return np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    raise ImageReadError(
        path, f"unsupported channel count {channels} (expected 1 gray, 3 RGB or 4 RGBA)")


def _sniff_format(head: bytes) -> Optional[str]:
    """Names the container format from the first bytes of a file, or None if unknown."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


_Check = Tuple[Optional[str], Optional[Tuple[int, int]]]  # (problem, (width, height))


def _check_container(fmt: Optional[str], data: np.ndarray) -> _Check:
    """Checks a file's structure without decoding pixels.

    Returns:
        ``(problem, size)``: ``problem`` is a reason string when the file is truncated or
        malformed, else None; ``size`` is ``(width, height)`` from the header when known.
    """
    if fmt == "jpeg":
        return _check_jpeg(data.tobytes())
    if fmt == "png":
        return _check_png(data)
    if fmt == "webp":
        return _check_webp(data[:32].tobytes(), data.size)
    if fmt == "bmp":
        return None, _bmp_size(data[:32].tobytes())
    return None, None


# A marker that ends entropy-coded data: 0xFF followed by anything except a stuffed zero,
# a restart marker (D0-D7) or another 0xFF fill byte.
_JPEG_END_OF_SCAN = re.compile(b"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (DHT/JPG/DAC excluded)


def _check_jpeg(buf: bytes) -> _Check:
    """Walks the JPEG segments to find the frame size and the end-of-image marker.

    libjpeg decodes a truncated JPEG into a partly grey image with only a warning (older OpenCV
    versions return it as if nothing happened), so completeness is checked here: the file must
    reach an EOI marker (FFD9) after its last scan. Data after EOI (zero padding, appended
    thumbnails or videos) is ignored.
    """
    truncated = ("truncated JPEG: the file ends before the end-of-image marker "
                 "(incomplete download or copy?)")
    size = None
    pos, n = 2, len(buf)
    while True:
        if pos + 2 > n:
            return truncated, size
        if buf[pos] != 0xFF:
            # Garbage between segments; libjpeg skips it with a warning, so do the same.
            nxt = buf.find(b"\xff", pos)
            if nxt < 0:
                return truncated, size
            pos = nxt
            continue
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI
            return None, size
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length field
            pos += 2
            continue
        if pos + 4 > n:
            return truncated, size
        seg_len = int.from_bytes(buf[pos + 2:pos + 4], "big")
        if marker in _JPEG_SOF and size is None and pos + 9 <= n:
            height = int.from_bytes(buf[pos + 5:pos + 7], "big")
            width = int.from_bytes(buf[pos + 7:pos + 9], "big")
            size = (width, height)
        pos += 2 + seg_len
        if marker == 0xDA:  # start of scan: skip the entropy-coded data that follows
            match = _JPEG_END_OF_SCAN.search(buf, pos)
            if match is None:
                return truncated, size
            pos = match.start()


def _check_png(data: np.ndarray) -> _Check:
    """Reads the IHDR size and walks the chunk list to the IEND chunk."""
    n = data.size
    if n < 33:
        return "truncated PNG: the file is shorter than a PNG header", None
    head = data[:33].tobytes()
    if head[12:16] != b"IHDR":
        return "malformed PNG: the first chunk is not IHDR", None
    size = (int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
    pos = 8
    while pos + 8 <= n:
        length = int.from_bytes(data[pos:pos + 4].tobytes(), "big")
        if data[pos + 4:pos + 8].tobytes() == b"IEND":
            return None, size
        pos += 12 + length  # length + type + data + CRC
    return "truncated PNG: the file ends before the IEND chunk (incomplete download or copy?)", size


def _check_webp(head: bytes, n: int) -> _Check:
    """Compares the RIFF size with the file size and reads the canvas size."""
    riff_size = int.from_bytes(head[4:8], "little")
    if riff_size + 8 > n:
        return (f"truncated WebP: the header announces {riff_size + 8} bytes, the file has {n}",
                None)
    chunk = head[12:16]
    size = None
    if chunk == b"VP8 " and len(head) >= 30:
        size = (int.from_bytes(head[26:28], "little") & 0x3FFF,
                int.from_bytes(head[28:30], "little") & 0x3FFF)
    elif chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        size = ((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    elif chunk == b"VP8X" and len(head) >= 30:
        size = (int.from_bytes(head[24:27], "little") + 1,
                int.from_bytes(head[27:30], "little") + 1)
    return None, size


def _bmp_size(head: bytes) -> Optional[Tuple[int, int]]:
    if len(head) < 26:
        return None
    dib = int.from_bytes(head[14:18], "little")
    if dib == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        return int.from_bytes(head[18:20], "little"), int.from_bytes(head[20:22], "little")
    width = int.from_bytes(head[18:22], "little", signed=True)
    height = int.from_bytes(head[22:26], "little", signed=True)  # negative means top-down
    return abs(width), abs(height)


def _tiff_size(data: np.ndarray) -> Optional[Tuple[int, int]]:
    """Width and height from the first IFD of a TIFF (tags 256 and 257), or None."""
    buf = data[:65536].tobytes()  # the first IFD is almost always near the start
    if len(buf) < 8:
        return None
    order = "little" if buf[:2] == b"II" else "big"
    offset = int.from_bytes(buf[4:8], order)
    if offset + 2 > len(buf):
        return None
    count = int.from_bytes(buf[offset:offset + 2], order)
    width = height = None
    for k in range(count):
        entry = offset + 2 + 12 * k
        if entry + 12 > len(buf):
            return None
        tag = int.from_bytes(buf[entry:entry + 2], order)
        kind = int.from_bytes(buf[entry + 2:entry + 4], order)
        if tag in (256, 257):
            # SHORT (3) values sit in the first two bytes of the value field, LONG (4) in four.
            size = 2 if kind == 3 else 4
            value = int.from_bytes(buf[entry + 8:entry + 8 + size], order)
            if tag == 256:
                width = value
            else:
                height = value
    if width is None or height is None:
        return None
    return width, height


# -------------------------------------------------------------------------------- conversion


def to_channels(img: np.ndarray, nc: int) -> np.ndarray:
    """Converts an image to 1 (gray) or 3 (RGB) channels.

    Gray -> RGB replicates the channel; RGB -> gray uses ITU-R BT.601 luma
    (0.299 R + 0.587 G + 0.114 B); RGBA drops alpha first. Alpha is never used for training:
    transparent pixels keep whatever color they store.

    Args:
        img: ``(H, W)`` or ``(H, W, C)`` array with ``C`` in {1, 3, 4}; uint8, uint16 or float.
        nc: Wanted channel count, 1 or 3.

    Returns:
        ``(H, W, nc)`` array of the same dtype (the input itself when nothing changes).

    Raises:
        ValueError: ``nc`` not in {1, 3}, or an input with another channel count.
    """
    if nc not in (1, 3):
        raise ValueError(f"nc must be 1 (gray) or 3 (RGB), got {nc!r}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W, C) image with C in 1, 3, 4, got shape {img.shape}")
    channels = img.shape[2]
    if channels == 4:
        img, channels = img[:, :, :3], 3
    if channels == nc:
        return img
    if nc == 3:  # gray -> RGB
        return np.repeat(img, 3, axis=2)
    luma = img.astype(np.float32) @ _LUMA_WEIGHTS  # (H, W)
    if np.issubdtype(img.dtype, np.integer):
        luma = np.clip(np.rint(luma), 0, np.iinfo(img.dtype).max)
    return luma.astype(img.dtype)[:, :, None]


def image_to_tensor(img: np.ndarray) -> torch.Tensor:
    """Converts an image array to the network's input format.

    Args:
        img: ``(H, W, C)`` or ``(H, W)`` array: uint8 [0, 255], uint16 [0, 65535] or
            float [0, 1] (clamped).

    Returns:
        float32 tensor ``(C, H, W)`` in [-1, 1].
    """
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3:
        raise ValueError(f"expected an (H, W, C) image, got shape {img.shape}")
    if img.dtype == np.uint8:
        x = img.astype(np.float32) * (2.0 / 255.0) - 1.0
    elif img.dtype == np.uint16:
        x = img.astype(np.float32) * (2.0 / 65535.0) - 1.0
    elif np.issubdtype(img.dtype, np.floating):
        x = np.clip(img.astype(np.float32), 0.0, 1.0) * 2.0 - 1.0
    else:
        raise ValueError(f"unsupported image dtype {img.dtype} (expected uint8, uint16 or float)")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def tensor_to_image(t: torch.Tensor, dtype=np.uint8) -> np.ndarray:
    """Converts a network output back to an image array (inverse of :func:`image_to_tensor`).

    Args:
        t: ``(C, H, W)`` tensor in [-1, 1] (values outside are clamped), any device.
        dtype: ``np.uint8`` [0, 255], ``np.uint16`` [0, 65535] or ``np.float32`` [0, 1].

    Returns:
        ``(H, W, C)`` array of ``dtype``; integers are rounded to nearest.
    """
    if t.ndim != 3:
        raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(t.shape)}")
    x = ((t.detach().float().clamp(-1.0, 1.0) + 1.0) * 0.5).permute(1, 2, 0).cpu().numpy()
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return np.rint(x * 255.0).astype(np.uint8)
    if dtype == np.uint16:
        return np.rint(x * 65535.0).astype(np.uint16)
    if dtype == np.float32:
        return np.ascontiguousarray(x)
    raise ValueError(f"dtype must be uint8, uint16 or float32, got {dtype}")


# ----------------------------------------------------------------------------------- writing

_SIXTEEN_BIT_EXTENSIONS = (".png", ".tif", ".tiff")
_ALPHA_EXTENSIONS = (".png", ".tif", ".tiff", ".webp", ".bmp")


def write_image(path: PathLike, img: np.ndarray, quality: Optional[int] = None) -> None:
    """Encodes an image and writes it atomically (readers never see a partial file).

    The encoded bytes go to a hidden temp file in the destination folder, which is flushed,
    fsynced and renamed over ``path``; missing parent folders are created.

    Args:
        path: Destination; the extension picks the format (one of ``IMAGE_EXTENSIONS``).
        img: ``(H, W)`` or ``(H, W, C)`` array, ``C`` in {1, 3, 4}, RGB(A) order; uint8, or
            uint16 for PNG/TIFF. Convert float outputs with :func:`tensor_to_image` first.
        quality: 1-100 for JPEG and WebP. None keeps OpenCV's defaults: quality 95 for JPEG,
            lossless for WebP. Ignored by the other (lossless) formats.

    Raises:
        ValueError: Unknown extension, or an image the format cannot store (16-bit JPEG,
            alpha in JPEG, float data, wrong shape).
        OSError: The file cannot be written.
    """
    path = Path(path)
    atomic_write_bytes(path, encode_image(img, path.suffix, quality=quality, name=path))


def encode_image(img: np.ndarray, ext: str, quality: Optional[int] = None,
                 name: PathLike = "<image>") -> bytes:
    """Encodes an image array into the bytes of an image file (see :func:`write_image`).

    Args:
        img: As for :func:`write_image`.
        ext: The format as a file extension: ".png", "jpg", ".webp", ...
        quality: As for :func:`write_image`.
        name: What error messages call the output.

    Raises:
        ValueError: As for :func:`write_image`.
    """
    path = name
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ValueError(f"{path}: unknown image extension {ext!r}; "
                         f"use one of {', '.join(IMAGE_EXTENSIONS)}")
    if img.ndim == 2:
        img = img[:, :, None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{path}: expected an (H, W, C) image with C in 1, 3, 4, got shape {img.shape}")
    if img.dtype == np.uint16 and ext not in _SIXTEEN_BIT_EXTENSIONS:
        raise ValueError(f"{path}: {ext} cannot store 16-bit samples; use .png or .tif")
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"{path}: expected uint8 or uint16 pixels, got {img.dtype} (see tensor_to_image)")
    if img.shape[2] == 4 and ext not in _ALPHA_EXTENSIONS:
        raise ValueError(f"{path}: {ext} cannot store alpha; drop it with to_channels(img, 3)")

    if img.shape[2] == 3:
        bgr = np.ascontiguousarray(img[:, :, ::-1])
    elif img.shape[2] == 4:
        bgr = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGBA2BGRA)
    else:
        bgr = np.ascontiguousarray(img[:, :, 0])
    params = []
    if quality is not None and ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif quality is not None and ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    ok, encoded = cv2.imencode(ext, bgr, params)
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot encode a {img.shape} {img.dtype} image as {ext}")
    return encoded.tobytes()


def fit_to_format(arr: np.ndarray, ext: str) -> np.ndarray:
    """Adapts an image array to what a file format stores, as ``translate convert`` writes it.

    16-bit samples become 8-bit outside PNG/TIFF; JPEG drops alpha; gray + alpha becomes RGBA
    (no format stores two channels).

    Args:
        arr: ``(H, W)`` or ``(H, W, C)`` array, ``C`` in 1-4, uint8 or uint16.
        ext: The output format as an extension (".png", "jpg", ...).
    """
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if arr.dtype == np.uint16 and ext not in _SIXTEEN_BIT_EXTENSIONS:
        arr = np.rint(arr.astype(np.float32) / 257.0).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] in (2, 4) and ext in (".jpg", ".jpeg"):
        arr = to_channels(arr[:, :, :-1], arr.shape[2] - 1) if arr.shape[2] == 2 else to_channels(arr, 3)
    if arr.ndim == 3 and arr.shape[2] == 2:  # gray + alpha: formats store it as RGBA
        arr = np.concatenate([np.repeat(arr[:, :, :1], 3, axis=2), arr[:, :, 1:]], axis=2)
    return arr
