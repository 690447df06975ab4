"""translate.data.transforms: sizes per mode, crop/flip shared by A and B, RNG discipline."""

import random

import numpy as np
import pytest

from translate.data.io import to_channels
from translate.data.transforms import PREPROCESS_MODES, PairedTransform, build_transform


def _coords_image(h, w):
    """(h, w, 3) uint8 whose pixels encode their own position: R = row, G = column."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y, x, (3 * y + 5 * x) % 256], axis=2).astype(np.uint8)


def _noise(h, w, c=3, seed=0, dtype=np.uint8):
    top = np.iinfo(dtype).max + 1
    return np.random.default_rng(seed).integers(0, top, (h, w, c)).astype(dtype)


# --------------------------------------------------------------------------------------- sizes


@pytest.mark.parametrize("mode,hw,expected", [
    ("resize_and_crop", (50, 70), (32, 32)),
    ("crop", (50, 70), (32, 32)),
    ("scale_width", (100, 50), (80, 40)),          # width -> load_size 40, aspect kept
    ("scale_width", (10, 100), (32, 40)),          # height raised to crop_size
    ("scale_width_and_crop", (50, 100), (32, 32)),
    ("none", (50, 70), (50, 70)),
])
def test_output_sizes(mode, hw, expected):
    t = build_transform(mode, load_size=40, crop_size=32, flip=True)
    a, b = t(_noise(*hw), _noise(*hw, c=1), rng=np.random.default_rng(0))
    assert a.shape == expected + (3,) and b.shape == expected + (1,)
    assert t.output_size(*hw) == expected


@pytest.mark.parametrize("mode,hw,expected", [
    ("none", (70, 100), (64, 96)),        # nearest multiples of 16
    ("none", (88, 24), (96, 32)),         # halves round up
    ("none", (5, 5), (16, 16)),           # at least one multiple
    ("scale_width", (60, 100), (32, 48)),  # 40x24 -> nearest multiples of 16
])
def test_size_multiple_rounding(mode, hw, expected):
    t = build_transform(mode, load_size=40, crop_size=16, flip=False, size_multiple=16)
    a, _ = t(_noise(*hw))
    assert a.shape[:2] == expected


def test_crop_mode_too_small_names_sizes():
    t = build_transform("crop", load_size=64, crop_size=64, flip=False)
    with pytest.raises(ValueError, match="30x20.*crop_size 64"):
        t(_noise(20, 30), rng=np.random.default_rng(0))
    assert "smaller than crop_size" in t.check_size(20, 30)
    assert t.check_size(64, 64) is None


def test_argument_validation():
    with pytest.raises(ValueError) as info:
        build_transform("resize", 286, 256)
    assert all(mode in str(info.value) for mode in PREPROCESS_MODES)
    with pytest.raises(ValueError, match="load_size .* >= crop_size"):
        build_transform("resize_and_crop", 200, 256)
    with pytest.raises(ValueError, match="multiple of size_multiple"):
        build_transform("resize_and_crop", 286, 250, size_multiple=16)
    with pytest.raises(ValueError, match="positive integer"):
        build_transform("crop", 0, 256)
    with pytest.raises(ValueError, match="rng"):
        build_transform("crop", 32, 32)(_noise(40, 40))


# ----------------------------------------------------------------------- A/B share parameters


@pytest.mark.parametrize("mode", ["crop", "resize_and_crop", "scale_width_and_crop"])
def test_same_crop_and_flip_for_a_and_b(mode):
    t = build_transform(mode, load_size=48, crop_size=32, flip=True)
    a_in = _coords_image(40, 56)
    seen_flips, seen_offsets = set(), set()
    for seed in range(40):
        a, b = t(a_in, a_in.copy(), rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(a, b)  # identical inputs -> identical outputs
        flipped = int(a[0, 0, 1]) > int(a[0, -1, 1])  # column code decreases left to right
        seen_flips.add(flipped)
        seen_offsets.add((int(a[0, 0, 0]), int(a[:, :, 1].min())))
    assert seen_flips == {True, False}
    assert len(seen_offsets) > 5


def test_b_equals_function_of_a_exactly():
    """B = 255 - A and B = gray(A): the crop/flip must commute, so b == f(a) pixel for pixel."""
    t = build_transform("crop", load_size=32, crop_size=32, flip=True)
    a_in = _noise(48, 64, seed=5)
    for seed in range(30):
        a, b = t(a_in, 255 - a_in, rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(b, 255 - a)
        a, g = t(a_in, to_channels(a_in, 1), rng=np.random.default_rng(seed))
        np.testing.assert_array_equal(g, to_channels(a, 1))


def test_b_equals_function_of_a_with_resize():
    t = build_transform("resize_and_crop", load_size=40, crop_size=32, flip=True)
    a_in = _noise(48, 64, seed=6)
    for seed in range(20):
        a, b = t(a_in, 255 - a_in, rng=np.random.default_rng(seed))
        # Resizing is linear, so only rounding can differ.
        assert np.abs(b.astype(int) - (255 - a.astype(int))).max() <= 1


def test_no_flip_never_flips():
    t = build_transform("crop", load_size=32, crop_size=32, flip=False)
    for seed in range(30):
        a, _ = t(_coords_image(40, 56), rng=np.random.default_rng(seed))
        assert a[0, 0, 1] < a[0, -1, 1]


def test_b_of_another_size_is_resized_to_a():
    t = build_transform("crop", load_size=32, crop_size=32, flip=True)
    a, b = t(_noise(64, 80), _noise(32, 40, c=1), rng=np.random.default_rng(0))
    assert a.shape == (32, 32, 3) and b.shape == (32, 32, 1)


# ---------------------------------------------------------------------- randomness discipline


def test_randomness_only_from_passed_rng():
    t = build_transform("resize_and_crop", load_size=48, crop_size=32, flip=True)
    img = _noise(40, 50)
    np.random.seed(1)
    random.seed(1)
    first = t(img, rng=np.random.default_rng(123))[0]
    state = np.random.get_state()
    np.random.seed(2)
    random.seed(2)
    second = t(img, rng=np.random.default_rng(123))[0]
    np.testing.assert_array_equal(first, second)
    outputs = {t(img, rng=np.random.default_rng(s))[0].tobytes() for s in range(10)}
    assert len(outputs) > 3  # different generators -> different crops
    np.random.seed(1)
    random.seed(1)
    t(img, rng=np.random.default_rng(5))
    assert all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y
               for x, y in zip(np.random.get_state(), state))  # global RNG untouched


@pytest.mark.parametrize("mode", ["resize_and_crop", "scale_width", "none"])
def test_sixteen_bit_and_float_survive(mode):
    t = build_transform(mode, load_size=40, crop_size=32, flip=True)
    deep = _noise(30, 50, dtype=np.uint16)
    a, b = t(deep, deep[:, :, :1], rng=np.random.default_rng(0))
    assert a.dtype == np.uint16 and b.dtype == np.uint16 and a.max() > 255
    f, _ = t(deep.astype(np.float32) / 65535, rng=np.random.default_rng(0))
    assert f.dtype == np.float32


def test_transform_is_picklable():
    import pickle

    t = build_transform("resize_and_crop", 40, 32)
    t(_noise(30, 30), rng=np.random.default_rng(0))  # populate the resizer cache
    clone = pickle.loads(pickle.dumps(t))
    assert isinstance(clone, PairedTransform)
    np.testing.assert_array_equal(clone(_noise(30, 30), rng=np.random.default_rng(4))[0],
                                  t(_noise(30, 30), rng=np.random.default_rng(4))[0])


def test_downscaling_averages_instead_of_aliasing():
    # A 1-pixel checkerboard shrunk 4x must become flat mid-grey, not a moire pattern.
    board = ((np.indices((64, 64)).sum(axis=0) % 2) * 255).astype(np.uint8)[:, :, None]
    t = build_transform("resize_and_crop", load_size=16, crop_size=16, flip=False)
    a, _ = t(board, rng=np.random.default_rng(0))
    assert np.abs(a.astype(int) - 128).max() <= 1


def test_crop_offset_and_flip_are_independent():
    # Albumentations seeds every step of a pipeline with the same seed unless told otherwise,
    # which ties the flip to the crop offset; each step must get its own draw.
    t = build_transform("crop", load_size=32, crop_size=32, flip=True)
    img = _coords_image(64, 64)
    counts = {}
    for seed in range(400):
        a, _ = t(img, rng=np.random.default_rng(seed))
        top_half = int(a[0, 0, 0]) < 16  # row code of the first output row
        flipped = int(a[0, 0, 1]) > int(a[0, -1, 1])
        counts[(top_half, flipped)] = counts.get((top_half, flipped), 0) + 1
    assert len(counts) == 4 and min(counts.values()) > 60, counts


def test_resize_is_pillow_bicubic():
    from PIL import Image

    from translate.data.transforms import resize_image

    img = _noise(50, 70, seed=3)
    expected = np.asarray(Image.fromarray(img).resize((40, 30), Image.BICUBIC))
    np.testing.assert_array_equal(resize_image(img, 30, 40), expected)
    gray = resize_image(img[:, :, :1], 30, 40)
    assert gray.shape == (30, 40, 1)
    # 16-bit and float go through Pillow's float mode: same filter, dtype kept (compared on a
    # smooth image: the 8-bit path also clips overshoot between its two passes).
    img = _coords_image(50, 70)
    img[:, :, 2] = img[:, :, 0]  # ramps only (the third channel of the helper wraps around)
    expected = np.asarray(Image.fromarray(img).resize((40, 30), Image.BICUBIC))
    deep = img.astype(np.uint16) * 257
    out16 = resize_image(deep, 30, 40)
    assert out16.dtype == np.uint16
    assert np.abs(out16.astype(int) / 257 - expected).max() <= 1.0
    outf = resize_image(img.astype(np.float32) / 255, 30, 40)
    assert outf.dtype == np.float32 and np.abs(outf * 255 - expected).max() <= 1.0
