"""The file formats the toolkit reads and writes, as constants every layer can use without
loading the image stack (OpenCV, torch)."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""File name endings treated as images (compared case-insensitively)."""

DEFAULT_MAX_PIXELS = 2**28
"""Largest image (width x height) :func:`translate.data.io.read_image` decodes by default: 268
million pixels, e.g. 16384 x 16384, which is ~800 MB as 8-bit RGB. Larger files are almost always
a mistake or a "decompression bomb" (a tiny file that expands to gigabytes). OpenCV has its own
limit of 2**30 pixels (environment variable ``OPENCV_IO_MAX_IMAGE_PIXELS``) that applies on top
of this one."""
