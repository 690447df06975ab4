"""translate.data.io: decoding (formats, bit depths, orientation, errors), conversion, writing."""

import os
import stat

import cv2
import numpy as np
import pytest
import torch

from translate.data.io import (
    ImageReadError,
    image_to_tensor,
    read_image,
    tensor_to_image,
    to_channels,
    write_image,
)

Image = pytest.importorskip("PIL.Image")


def _rgb_gradient(h=24, w=32):
    """(h, w, 3) uint8 with distinct, recognisable channels."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 7 % 256, y * 9 % 256, (x + y) * 3 % 256], axis=2).astype(np.uint8)


# ------------------------------------------------------------------------------ read: formats


def test_read_rgb_png_is_rgb_order(tmp_path):
    img = _rgb_gradient()
    Image.fromarray(img).save(tmp_path / "x.png")
    out = read_image(tmp_path / "x.png")
    assert out.shape == (24, 32, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, img)


def test_read_gray_png_has_one_channel(tmp_path):
    img = _rgb_gradient()[:, :, 0]
    Image.fromarray(img).save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (24, 32, 1)
    np.testing.assert_array_equal(out[:, :, 0], img)


def test_read_rgba_png_keeps_alpha_in_rgba_order(tmp_path):
    rgba = np.dstack([_rgb_gradient(), np.full((24, 32), 77, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(out, rgba)


def test_read_gray_alpha_png_becomes_rgba(tmp_path):
    gray = _rgb_gradient()[:, :, 1]
    la = np.dstack([gray, np.full_like(gray, 200)])
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    out = read_image(tmp_path / "la.png")
    assert out.shape == (24, 32, 4)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)
    assert (out[:, :, 3] == 200).all()


@pytest.mark.parametrize("transparent", [False, True])
def test_read_palette_png(tmp_path, transparent):
    pal = Image.fromarray(_rgb_gradient()).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    if transparent:
        pal.save(tmp_path / "p.png", transparency=0)
        expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGBA"))
    else:
        pal.save(tmp_path / "p.png")
        expected = np.asarray(pal.convert("RGB"))
    out = read_image(tmp_path / "p.png")
    assert out.shape[2] == (4 if transparent else 3)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("channels", [1, 3])
def test_read_16bit_png_keeps_values(tmp_path, channels):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65536, (10, 12, channels), dtype=np.uint16)
    img[0, 0] = 65535
    img[0, 1] = 1  # would be lost by an 8-bit round trip
    cv2.imwrite(str(tmp_path / "d.png"), img[:, :, ::-1] if channels == 3 else img[:, :, 0])
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint16
    np.testing.assert_array_equal(out, img)


def test_read_jpeg_applies_exif_orientation(tmp_path):
    # 32 wide, 16 high; a white 8x8 block in the top-left corner.
    img = np.zeros((16, 32, 3), np.uint8)
    img[:8, :8] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    Image.fromarray(img).save(tmp_path / "o.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "o.jpg")
    assert out.shape == (32, 16, 3)
    # Rotating clockwise moves the top-left corner to the top-right.
    assert out[:8, 8:].mean() > 200
    assert out[:8, :8].mean() < 50 and out[24:, :].mean() < 50


def test_read_unicode_and_spaces_in_name(tmp_path):
    folder = tmp_path / "dossier été"
    folder.mkdir()
    path = folder / "тест файл 1.png"
    img = _rgb_gradient()
    ok, buf = cv2.imencode(".png", img[:, :, ::-1])
    buf.tofile(path)
    np.testing.assert_array_equal(read_image(path), img)


def test_read_jpeg_with_trailing_padding_or_data(tmp_path):
    ok, buf = cv2.imencode(".jpg", _rgb_gradient())
    for i, tail in enumerate([b"\x00" * 100, b"appended data \xff\xd8 not part of it"]):
        path = tmp_path / f"t{i}.jpg"
        path.write_bytes(buf.tobytes() + tail)
        assert read_image(path).shape == (24, 32, 3)


# ------------------------------------------------------------------------------- read: errors


def _reason(path, **kwargs):
    with pytest.raises(ImageReadError) as info:
        read_image(path, **kwargs)
    err = info.value
    assert err.path == path and str(err) == f"{path}: {err.reason}"
    return err.reason


def test_error_zero_byte_file(tmp_path):
    (tmp_path / "e.jpg").write_bytes(b"")
    assert "empty" in _reason(tmp_path / "e.jpg")


def test_error_missing_file(tmp_path):
    assert "cannot read" in _reason(tmp_path / "nope.png")


def test_error_text_file_named_png(tmp_path):
    (tmp_path / "t.png").write_text("hello, I am not an image\n")
    assert "not an image" in _reason(tmp_path / "t.png")


@pytest.mark.parametrize("ext,detail", [
    (".jpg", "end-of-image"), (".png", "IEND"), (".webp", "header announces")])
def test_error_truncated_file(tmp_path, ext, detail):
    # The container check must catch it: some OpenCV versions decode a cut JPEG silently.
    big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = cv2.imencode(ext, big)[1].tobytes()
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data[: len(data) * 2 // 3])
    reason = _reason(path)
    assert "truncated" in reason and detail in reason


def test_error_truncated_jpeg_even_with_zero_padding(tmp_path):
    data = cv2.imencode(".jpg", _rgb_gradient(64, 64))[1].tobytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) - 40] + b"\x00" * 64)  # EOI gone, zeros appended
    assert "end-of-image" in _reason(path)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".webp", ".tif"])
def test_error_too_many_pixels(tmp_path, ext):
    path = tmp_path / f"big{ext}"
    cv2.imwrite(str(path), np.zeros((50, 40, 3), np.uint8))
    reason = _reason(path, max_pixels=1999)
    assert "40x50" in reason and "max_pixels" in reason
    assert read_image(path, max_pixels=2000).shape == (50, 40, 3)
    assert read_image(path, max_pixels=None).shape == (50, 40, 3)


def test_error_is_picklable(tmp_path):
    import pickle

    err = pickle.loads(pickle.dumps(ImageReadError(tmp_path / "x.png", "broken")))
    assert err.reason == "broken" and str(err).endswith("x.png: broken")


# --------------------------------------------------------------------------------- conversion


def test_to_channels():
    rgb = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]], np.uint8)
    gray = to_channels(rgb, 1)
    assert gray.shape == (1, 4, 1) and gray.dtype == np.uint8
    # BT.601: 0.299 R + 0.587 G + 0.114 B, rounded.
    assert gray[0, :, 0].tolist() == [76, 150, 29, 18]
    np.testing.assert_array_equal(to_channels(gray, 3), np.repeat(gray, 3, axis=2))
    rgba = np.dstack([rgb, np.zeros((1, 4), np.uint8)])
    np.testing.assert_array_equal(to_channels(rgba, 3), rgb)
    assert to_channels(rgb, 3) is rgb
    deep = to_channels(rgb.astype(np.uint16) * 257, 1)
    assert deep.dtype == np.uint16 and deep[0, 0, 0] == round(0.299 * 65535)
    with pytest.raises(ValueError, match="1 .*or 3"):
        to_channels(rgb, 2)


def test_tensor_conversion_range_and_round_trip():
    img = np.array([[[0, 128, 255]]], np.uint8)
    t = image_to_tensor(img)
    assert t.shape == (3, 1, 1) and t.dtype == torch.float32
    assert t[0].item() == -1.0 and t[2].item() == 1.0
    deep = np.array([[[0], [65535]]], np.uint16)
    assert image_to_tensor(deep).flatten().tolist() == [-1.0, 1.0]
    rng = np.random.default_rng(1)
    for dtype, top in ((np.uint8, 256), (np.uint16, 65536)):
        x = rng.integers(0, top, (5, 6, 3)).astype(dtype)
        np.testing.assert_array_equal(tensor_to_image(image_to_tensor(x), dtype=dtype), x)
    clamped = tensor_to_image(torch.full((1, 2, 2), 3.0))
    assert (clamped == 255).all()


# ------------------------------------------------------------------------------------ writing


@pytest.mark.parametrize("ext,dtype,channels", [
    (".png", np.uint8, 3), (".png", np.uint8, 1), (".png", np.uint8, 4),
    (".png", np.uint16, 3), (".tif", np.uint16, 1), (".bmp", np.uint8, 3),
])
def test_write_round_trip_leaves_no_temp_files(tmp_path, ext, dtype, channels):
    top = np.iinfo(dtype).max + 1
    img = np.random.default_rng(2).integers(0, top, (9, 7, channels)).astype(dtype)
    path = tmp_path / "new" / "deeper" / f"out{ext}"
    write_image(path, img)
    np.testing.assert_array_equal(read_image(path), img)
    assert os.listdir(path.parent) == [path.name]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600


def test_write_jpeg_quality_and_overwrite(tmp_path):
    img = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    path = tmp_path / "q.jpg"
    write_image(path, img, quality=95)
    high = path.stat().st_size
    write_image(path, img, quality=20)
    assert path.stat().st_size < high
    assert os.listdir(tmp_path) == ["q.jpg"]


def test_write_refuses_what_the_format_cannot_store(tmp_path):
    with pytest.raises(ValueError, match="16-bit"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 3), np.uint16))
    with pytest.raises(ValueError, match="alpha"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="uint8 or uint16"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ValueError, match="extension"):
        write_image(tmp_path / "a.gif", np.zeros((4, 4, 3), np.uint8))
    assert os.listdir(tmp_path) == []


def test_write_failure_keeps_old_file_and_removes_temp(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    old = np.full((4, 4, 3), 9, np.uint8)
    write_image(path, old)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_image(path, np.zeros((4, 4, 3), np.uint8))
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["keep.png"]
    np.testing.assert_array_equal(read_image(path), old)


def test_in_memory_decode_encode_and_header_probe(tmp_path):
    from translate.data.io import ImageTooLargeError, decode_image, encode_image, probe_image, read_image

    img = np.random.default_rng(1).integers(0, 65536, (9, 13, 3), dtype=np.uint16)
    data = encode_image(img, "png")
    (tmp_path / "x.png").write_bytes(data)
    np.testing.assert_array_equal(decode_image(data), read_image(tmp_path / "x.png"))
    np.testing.assert_array_equal(decode_image(data), img)  # 16-bit survives the round trip
    assert probe_image(data) == probe_image(np.frombuffer(data, np.uint8))
    assert (probe_image(data).format, probe_image(data).size, probe_image(data).problem) == ("png", (13, 9), None)
    assert probe_image(b"hello, not an image").format is None
    assert "truncated" in probe_image(data[:40]).problem
    with pytest.raises(ImageTooLargeError, match="upload: the image is 13x9"):
        decode_image(data, "upload", max_pixels=100)
    with pytest.raises(ValueError, match="cannot store 16-bit"):
        encode_image(img, ".jpg")
