"""Class-ID label maps: reading, validation, one-hot encoding, nearest-only geometry, datasets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from translate.data import PairedDataset
from translate.data.labels import (LabelError, check_ids, encode_labels, id_counts, instance_edges,
                                   read_label_map, resize_nearest)
from translate.data.transforms import build_transform


def save(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)
    return path


def label_folder(tmp_path, n=3, size=(48, 64), label_nc=10, inst=False, seed=0):
    """a_b folder: A/ 8-bit class-ID maps (blocks of IDs), B/ RGB photos, optional inst/."""
    rng = np.random.default_rng(seed)
    h, w = size
    for i in range(n):
        ids = np.zeros((h, w), np.uint8)
        for _ in range(5):
            y, x = rng.integers(0, h), rng.integers(0, w)
            ids[y:y + h // 3, x:x + w // 3] = rng.integers(0, label_nc)
        save(tmp_path / "train" / "A" / f"{i}.png", ids)
        save(tmp_path / "train" / "B" / f"{i}.png", rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        if inst:
            save(tmp_path / "train" / "inst" / f"{i}.png", (ids.astype(np.uint16) * 1000 + (np.arange(w) >= w // 2)))
    return tmp_path


# ---------------------------------------------------------------------------------- reading


def test_reads_8bit_16bit_and_palette_maps_as_ids(tmp_path):
    ids8 = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(read_label_map(save(tmp_path / "a.png", ids8)), ids8)
    ids16 = (np.arange(12, dtype=np.uint16) * 4000).reshape(3, 4)
    out = read_label_map(save(tmp_path / "b.png", ids16))
    assert out.dtype == np.uint16 and np.array_equal(out, ids16)
    pal = Image.fromarray(ids8, "P")
    pal.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    pal.save(tmp_path / "c.png")
    assert np.array_equal(read_label_map(tmp_path / "c.png"), ids8)  # indices, not colours


def test_colour_maps_and_unreadable_files_are_refused_with_the_file_named(tmp_path):
    rgb = save(tmp_path / "rgb.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(LabelError, match=r"rgb\.png.*single-channel.*'RGB'"):
        read_label_map(rgb)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(LabelError, match=r"bad\.png: cannot read"):
        read_label_map(tmp_path / "bad.png")


def test_id_at_or_above_label_nc_names_file_value_and_pixel():
    ids = np.zeros((5, 6), np.uint8)
    ids[3, 4] = 35
    ids[4, 1] = 40
    with pytest.raises(LabelError, match=r"x\.png: class ID 35 at pixel \(x=4, y=3\).*label_nc=35.*2 pixels"):
        check_ids(ids, 35, "x.png")
    check_ids(ids, 41, "x.png")  # all below: no error


# ---------------------------------------------------------------------------------- encoding


def test_one_hot_has_exactly_one_class_per_pixel_and_round_trips():
    ids = np.random.default_rng(0).integers(0, 7, (9, 11))
    x = encode_labels(ids, 7)
    assert x.shape == (7, 9, 11) and x.dtype == torch.float32
    assert torch.equal(x.sum(0), torch.ones(9, 11))
    assert np.array_equal(x.argmax(0).numpy(), ids)


def test_instance_edges_mark_both_sides_of_an_instance_boundary():
    inst = np.zeros((4, 6), np.int32)
    inst[:, 3:] = 5
    edges = instance_edges(inst)
    assert edges[:, 2].all() and edges[:, 3].all() and edges[:, [0, 1, 4, 5]].sum() == 0
    x = encode_labels(np.zeros((4, 6), np.int64), 3, inst)
    assert x.shape == (4, 4, 6) and torch.equal(x[3], torch.from_numpy(edges))


def test_nearest_resize_copies_values_from_the_covering_pixel():
    arr = np.arange(4 * 6, dtype=np.int32).reshape(4, 6)
    up = resize_nearest(arr, 8, 12)
    assert np.array_equal(up, np.repeat(np.repeat(arr, 2, 0), 2, 1))
    assert np.array_equal(resize_nearest(up, 4, 6), arr)


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "crop", "scale_width_and_crop"])
def test_ids_stay_exact_through_resize_crop_and_flip(preprocess):
    """Every pixel ID is unique, so any interpolation would create values that are not in the
    nearest-resized source; the output must be an exact (possibly flipped) window of it."""
    h, w = 40, 50
    ids = np.arange(h * w, dtype=np.int32).reshape(h, w, 1) + 1000
    photo = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    t = build_transform(preprocess, load_size=36, crop_size=24, flip=True)
    flips = 0
    for seed in range(12):
        out, b = t.apply_to_labels(ids, photo, rng=np.random.default_rng(seed))
        assert out.shape == (24, 24, 1) and out.dtype == np.int32 and b.shape == (24, 24, 3)
        source = resize_nearest(ids, *t.resize_size(h, w))[:, :, 0]
        window = out[:, :, 0]
        if window[0, 0] < window[0, -1]:
            start = window[0, 0]
        else:
            flips += 1
            window = window[:, ::-1]
            start = window[0, 0]
        y0, x0 = map(int, np.argwhere(source == start)[0])
        assert np.array_equal(window, source[y0:y0 + 24, x0:x0 + 24])
    assert 0 < flips < 12


# ---------------------------------------------------------------------------------- datasets


def test_paired_dataset_one_hot_items_and_paths(tmp_path):
    root = label_folder(tmp_path)
    ds = PairedDataset(root, label_nc=10, load_size=40, crop_size=32, seed=1)
    assert not ds.instance_channel and "one-hot to 10 channels" in ds.describe()
    for epoch in range(2):
        ds.set_epoch(epoch)
        item = ds[0]
        a = item["a"]
        assert a.shape == (10, 32, 32) and torch.equal(a.sum(0), torch.ones(32, 32))
        assert set(a.unique().tolist()) <= {0.0, 1.0}
        found = set(a.argmax(0).unique().tolist())
        assert found <= set(np.unique(read_label_map(item["path_a"])).tolist())
        assert item["b"].shape == (3, 32, 32)


def test_paired_dataset_adds_the_instance_channel_from_inst_folder(tmp_path):
    root = label_folder(tmp_path, inst=True)
    ds = PairedDataset(root, label_nc=10, preprocess="none", flip=False)
    assert ds.instance_channel
    item = ds[0]
    assert item["a"].shape == (11, 48, 64)
    inst = read_label_map(tmp_path / "train" / "inst" / "0.png")
    assert torch.equal(item["a"][10], torch.from_numpy(instance_edges(inst)))


def test_paired_dataset_refuses_an_id_at_or_above_label_nc_at_construction(tmp_path):
    root = label_folder(tmp_path, label_nc=10)
    bad = np.zeros((48, 64), np.uint8)
    bad[7, 9] = 12
    save(root / "train" / "A" / "1.png", bad)
    with pytest.raises(LabelError, match=r"1\.png: class ID 12 at pixel \(x=9, y=7\)"):
        PairedDataset(root, label_nc=10)


def test_16bit_ids_above_255(tmp_path):
    ids = np.full((32, 32), 299, np.uint16)
    ids[:, :16] = 7
    save(tmp_path / "train" / "A" / "0.png", ids)
    save(tmp_path / "train" / "B" / "0.png", np.zeros((32, 32, 3), np.uint8))
    item = PairedDataset(tmp_path, label_nc=300, preprocess="none", flip=False)[0]
    assert item["a"].shape == (300, 32, 32)
    assert item["a"][7, :, :16].all() and item["a"][299, :, 16:].all()


def test_id_counts_reports_ids_and_out_of_range_files(tmp_path):
    a = save(tmp_path / "a.png", np.array([[0, 3], [3, 40]], np.uint8))
    b = save(tmp_path / "b.png", np.array([[1, 1], [1, 1]], np.uint8))
    report = id_counts([a, b], label_nc=35)
    assert report["ids"] == [0, 1, 3, 40] and report["pixels"][1] == 4
    assert report["out_of_range"] == [[str(a), 40, [1, 1]]] and report["out_of_range_files"] == 1


def test_side_by_side_files_split_into_an_id_half_and_an_image_half(tmp_path):
    whole = np.zeros((32, 64), np.uint8)
    whole[:, :32] = np.arange(32, dtype=np.uint8)[None, :] % 5  # left half: IDs 0..4
    whole[:, 32:] = 200  # right half: the (gray) photo
    save(tmp_path / "train" / "0.png", whole)
    item = PairedDataset(tmp_path, label_nc=5, preprocess="none", flip=False)[0]
    assert item["a"].shape == (5, 32, 32)
    assert np.array_equal(item["a"].argmax(0).numpy(), whole[:, :32])
    assert item["b"].shape == (3, 32, 32) and torch.allclose(item["b"], torch.tensor(200 / 127.5 - 1))
    with pytest.raises(LabelError, match=r"0\.png: class ID 200"):
        PairedDataset(tmp_path, label_nc=5, direction="BtoA")
