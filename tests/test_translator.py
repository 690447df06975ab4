"""The embeddable Translator: input kinds round-trip, any size, alignment, tiles, alpha."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from translate import Translator
from translate.checkpoint import CheckpointError

from conftest import make_translator


class Identity(torch.nn.Module):
    """Stands in for a generator whose output equals its input: exposes pixel alignment."""

    def __init__(self, nc=3):
        super().__init__()
        self.config = {"input_nc": nc, "output_nc": nc}

    def forward(self, x):
        assert x.shape[-1] % 32 == 0 and x.shape[-2] % 32 == 0  # padded to the size multiple
        return x


@pytest.fixture(scope="module")
def p2p(tmp_path_factory):
    return Translator.load(make_translator(tmp_path_factory.mktemp("p2p")), device="cpu")


def test_load_accepts_run_or_translator_folder_and_refuses_others(tmp_path):
    run = make_translator(tmp_path / "run")
    assert Translator.load(run, device="cpu").directions == ["a2b"]
    assert Translator.load(run / "translator", device="cpu").method == "pix2pix"
    with pytest.raises(CheckpointError, match="does not exist"):
        Translator.load(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a storage protocol"):
        Translator.load("nosuchprotocol://bucket/model")
    with pytest.raises(CheckpointError, match="is a file"):
        Translator.load(run / "translator" / "translator.json")


def test_round_trip_kinds(p2p):
    rgb8 = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    out = p2p(rgb8)
    assert out.shape == rgb8.shape and out.dtype == np.uint8
    rgb16 = (rgb8.astype(np.uint16) * 257)
    out16 = p2p(rgb16)
    assert out16.shape == rgb16.shape and out16.dtype == np.uint16
    # 16-bit and 8-bit inputs with the same content give the same picture
    assert np.abs(out16.astype(np.int64) // 257 - out.astype(np.int64)).max() <= 1
    f = rgb8.astype(np.float32) / 255
    outf = p2p(f)
    assert outf.dtype == np.float32 and outf.shape == f.shape and 0 <= outf.min() and outf.max() <= 1
    pil = Image.fromarray(rgb8)
    out_pil = p2p(pil)
    assert isinstance(out_pil, Image.Image) and out_pil.size == pil.size and out_pil.mode == "RGB"
    assert np.array_equal(np.asarray(out_pil), out)
    outs = p2p([rgb8, pil])
    assert isinstance(outs, list) and np.array_equal(outs[0], out)


def test_gray_and_alpha(p2p):
    gray = np.random.default_rng(1).integers(0, 256, (20, 30), dtype=np.uint8)
    assert p2p(gray).shape == (20, 30, 3)  # 3-channel model output
    rgba = np.random.default_rng(2).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    out = p2p(rgba)
    assert out.shape == (20, 30, 4) and np.array_equal(out[:, :, 3], rgba[:, :, 3])
    pil = p2p(Image.fromarray(rgba))
    assert pil.mode == "RGBA"


def test_translate_tensor_any_size_and_batch_independence(p2p):
    x = torch.rand(2, 3, 31, 17) * 2 - 1
    y = p2p.translate_tensor(x)
    assert y.shape == (2, 3, 31, 17) and y.min() >= -1 and y.max() <= 1
    # an image's output does not depend on the other images of its batch
    assert torch.allclose(p2p.translate_tensor(x[:1]), y[:1], atol=1e-5)


def test_pixels_stay_aligned_including_tiles(tmp_path):
    t = Translator.load(make_translator(tmp_path), device="cpu")
    t.generators["a2b"] = Identity()
    img = np.random.default_rng(3).integers(0, 256, (45, 71, 3), dtype=np.uint8)
    assert np.array_equal(t(img), img)
    t.tile_pixels, t.tile_overlap = 32 * 32, 8  # forces 5+ tiles per axis
    assert np.array_equal(t(img), img)


class InstanceNormLike(torch.nn.Module):
    """A smooth generator whose output depends on whole-input statistics, as instance/per-image
    batch norm makes real generators do: translated tile by tile, each tile is normalised
    differently, which is what produces seams unless tiles are blended."""

    config = {"input_nc": 3, "output_nc": 3}

    def forward(self, x):
        return torch.tanh(torch.nn.functional.instance_norm(x) * 0.5)


def _max_jump(img):
    return max(np.abs(np.diff(img, axis=0)).max(), np.abs(np.diff(img, axis=1)).max())


def test_tiles_have_no_visible_seams(tmp_path, monkeypatch):
    """On a smooth gradient, neighbouring output pixels across tile borders differ about as much as
    inside tiles: blended tiles leave no step (hard-edged tiles make a step 40x larger)."""
    import translate.translator as tr

    t = Translator.load(make_translator(tmp_path), device="cpu")
    t.generators["a2b"] = InstanceNormLike()
    h, w = 160, 160
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grad = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], axis=2)
    smooth = _max_jump(t(grad))  # whole image at once
    t.tile_pixels, t.tile_overlap = 64 * 64, 24
    tiled = t(grad)
    assert tiled.shape == grad.shape
    assert _max_jump(tiled) <= 5 * smooth  # measured: 3.7x with feathering
    monkeypatch.setattr(tr, "_feather", lambda th, tw, o, dev: torch.ones(1, 1, th, tw))
    assert _max_jump(t(grad)) > 20 * smooth  # the same tiles without blending: visible seams


def test_cyclegan_needs_a_direction(tmp_path):
    t = Translator.load(make_translator(tmp_path, method="cyclegan"), device="cpu")
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="a2b, b2a; pass direction='a2b' or direction='b2a'"):
        t(img)
    assert t(img, direction="b2a").shape == (8, 8, 3)


def test_resize_option(p2p):
    img = np.random.default_rng(4).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    assert p2p(img, resize=True).shape == img.shape  # translated at 64x64, resized back
    assert p2p(img, resize=(96, 32)).shape == img.shape


FIXTURE_V1 = Path(__file__).parent / "fixtures" / "pix2pix_btoa_v1"


def test_format_1_btoa_folder_loads_as_b2a_and_converts_identically(tmp_path):
    """A translator folder written by format version 1 (its B->A generator stored as a2b)."""
    from translate.data.io import read_image
    from translate.errors import DirectionError

    assert json.loads((FIXTURE_V1 / "translator" / "translator.json").read_text())["format_version"] == 1
    t = Translator.load(FIXTURE_V1, device="cpu", precision="fp32")  # the fixture holds fp32 outputs
    assert t.directions == ["b2a"] and t.pick_direction() == "b2a"
    with pytest.raises(DirectionError, match="direction 'a2b' is not in this pix2pix translator; it has: b2a"):
        t.pick_direction("a2b")
    expected = read_image(FIXTURE_V1 / "output.png")
    assert np.array_equal(t(read_image(FIXTURE_V1 / "input.png")), expected)
    assert np.array_equal(t(read_image(FIXTURE_V1 / "input.png"), direction="b2a"), expected)
    summary = t.translate_folder(FIXTURE_V1 / "input.png", tmp_path / "out", progress=False)
    assert summary.converted == 1
    assert np.array_equal(read_image(tmp_path / "out" / "input.png"), expected)
