"""translate.data discovery (list_images, detect_layout, match_pairs) and the two datasets."""

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from translate.data import (
    DatasetError,
    PairedDataset,
    UnpairedDataset,
    build_dataset,
    detect_layout,
    list_images,
    list_splits,
    match_pairs,
)

SMALL = dict(preprocess="resize_and_crop", load_size=20, crop_size=16)


def _save(path, img):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def _noise(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _make_ab(folder, n=4, h=24, w=24):
    """Side-by-side images, right half = 255 - left half."""
    for i in range(n):
        left = _noise(h, w, i)
        _save(Path(folder) / f"{i}.png", np.concatenate([left, 255 - left], axis=1))


def _make_folder(folder, n, size=(20, 20), ext=".png", start=0):
    for i in range(start, start + n):
        _save(Path(folder) / f"{i}{ext}", _noise(*size, seed=i))


# ------------------------------------------------------------------------------- list_images


def test_list_images_filters_and_sorts(tmp_path):
    for name in ["b.PNG", "a.jpg", "c.JpEg", "sub/z.webp", "sub/deeper/y.tif", ".hidden.png",
                 ".cache/x.png", "sub/.git/w.png", "notes.txt", "a.jpg.bak"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    rel = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert rel == ["a.jpg", "b.PNG", "c.JpEg", "sub/deeper/y.tif", "sub/z.webp"]
    flat = [p.name for p in list_images(tmp_path, recursive=False)]
    assert flat == ["a.jpg", "b.PNG", "c.JpEg"]
    with pytest.raises(DatasetError, match="does not exist"):
        list_images(tmp_path / "missing")


# ----------------------------------------------------------------------------- detect_layout


def test_detect_each_layout(tmp_path):
    _make_ab(tmp_path / "ab" / "train", n=1)
    _make_folder(tmp_path / "flat", 1)
    _make_folder(tmp_path / "ab1" / "train" / "A", 1)
    _make_folder(tmp_path / "ab1" / "train" / "B", 1)
    _make_folder(tmp_path / "ab2" / "A" / "train", 1)
    _make_folder(tmp_path / "ab2" / "B" / "train", 1)
    _make_folder(tmp_path / "ab3" / "A", 1)
    _make_folder(tmp_path / "ab3" / "B", 1)
    _make_folder(tmp_path / "un" / "trainA", 1)
    _make_folder(tmp_path / "un" / "trainB", 1)

    got = detect_layout(tmp_path / "ab")
    assert (got.kind, got.folder, got.split) == ("ab", tmp_path / "ab" / "train", "train")
    got = detect_layout(tmp_path / "flat")
    assert (got.kind, got.folder, got.split) == ("ab", tmp_path / "flat", None)
    got = detect_layout(tmp_path / "ab1")
    assert (got.kind, got.folder_a, got.folder_b) == (
        "a_b", tmp_path / "ab1" / "train" / "A", tmp_path / "ab1" / "train" / "B")
    got = detect_layout(tmp_path / "ab2")
    assert (got.kind, got.folder_a) == ("a_b", tmp_path / "ab2" / "A" / "train")
    got = detect_layout(tmp_path / "ab3")
    assert (got.kind, got.folder_a, got.split) == ("a_b", tmp_path / "ab3" / "A", None)
    got = detect_layout(tmp_path / "un")
    assert (got.kind, got.folder_a, got.folder_b) == (
        "unpaired", tmp_path / "un" / "trainA", tmp_path / "un" / "trainB")


def test_detect_ambiguous_asks_for_layout(tmp_path):
    _make_ab(tmp_path / "train", n=1)
    _make_folder(tmp_path / "trainA", 1)
    _make_folder(tmp_path / "trainB", 1)
    with pytest.raises(DatasetError) as info:
        detect_layout(tmp_path)
    msg = str(info.value)
    assert "--layout" in msg and str(tmp_path) in msg and "trainA" in msg
    assert detect_layout(tmp_path, layout="unpaired").kind == "unpaired"
    assert detect_layout(tmp_path, layout="ab").kind == "ab"
    with pytest.raises(DatasetError, match="a_b"):
        detect_layout(tmp_path, layout="a_b")


def test_detect_empty_and_missing(tmp_path):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DatasetError) as info:
        detect_layout(tmp_path / "empty")
    assert "no image files" in str(info.value)
    assert str(tmp_path / "empty" / "train") in str(info.value)

    _make_ab(tmp_path / "ds" / "train", n=1)
    _make_folder(tmp_path / "ds" / "testA", 1)
    _make_folder(tmp_path / "ds" / "testB", 1)
    with pytest.raises(DatasetError) as info:
        detect_layout(tmp_path / "ds", split="val")
    msg = str(info.value)
    assert "'val'" in msg and "test, train" in msg and str(tmp_path / "ds") in msg

    with pytest.raises(DatasetError, match="does not exist"):
        detect_layout(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="layout must be"):
        detect_layout(tmp_path / "ds", layout="side_by_side")


def test_detect_a_without_b(tmp_path):
    _make_folder(tmp_path / "train" / "A", 1)
    with pytest.raises(DatasetError, match="no B/"):
        detect_layout(tmp_path)


def test_list_splits(tmp_path):
    _make_ab(tmp_path / "train", n=1)
    _make_ab(tmp_path / "val", n=1)
    _make_folder(tmp_path / "testA", 1)
    _make_folder(tmp_path / "testB", 1)
    assert list_splits(tmp_path) == ["test", "train", "val"]


# ------------------------------------------------------------------------------- match_pairs


def test_match_pairs_by_relative_stem(tmp_path):
    _make_folder(tmp_path / "A" / "x", 2, ext=".png")
    _make_folder(tmp_path / "B" / "x", 2, ext=".jpg")
    pairs = match_pairs(tmp_path / "A", tmp_path / "B")
    assert [(a.name, b.name) for a, b in pairs] == [("0.png", "0.jpg"), ("1.png", "1.jpg")]


def test_match_pairs_lists_unmatched_on_both_sides(tmp_path):
    _make_folder(tmp_path / "A", 3)
    _make_folder(tmp_path / "B", 2)
    _make_folder(tmp_path / "B", 1, start=7)
    with pytest.raises(DatasetError) as info:
        match_pairs(tmp_path / "A", tmp_path / "B")
    msg = str(info.value)
    assert f"only in A: {tmp_path / 'A' / '2.png'}" in msg
    assert f"only in B: {tmp_path / 'B' / '7.png'}" in msg


def test_match_pairs_duplicate_stems(tmp_path):
    _make_folder(tmp_path / "A", 1, ext=".png")
    _make_folder(tmp_path / "A", 1, ext=".jpg")
    _make_folder(tmp_path / "B", 1)
    with pytest.raises(DatasetError, match="differ only by extension"):
        match_pairs(tmp_path / "A", tmp_path / "B")


def test_error_lists_are_capped(tmp_path):
    _make_folder(tmp_path / "A", 25)
    (tmp_path / "B").mkdir()
    with pytest.raises(DatasetError) as info:
        match_pairs(tmp_path / "A", tmp_path / "B")
    assert "... and 5 more" in str(info.value) and len(info.value.items) == 25


# ------------------------------------------------------------------------------ PairedDataset


def test_paired_ab_item_format_and_direction(tmp_path):
    red, blue = np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)
    red[..., 2], blue[..., 0] = 255, 255  # OpenCV writes BGR
    _save(tmp_path / "train" / "0.png", np.concatenate([red, blue], axis=1))
    opts = dict(preprocess="none", flip=False)
    item = PairedDataset(tmp_path, **opts)[0]
    assert item["a"].shape == (3, 8, 8) and item["a"].dtype == torch.float32
    assert item["a"][0].eq(1).all() and item["a"][2].eq(-1).all()  # A = left = red
    assert item["b"][2].eq(1).all()
    assert item["path_a"] == item["path_b"] == str(tmp_path / "train" / "0.png")
    swapped = PairedDataset(tmp_path, direction="BtoA", input_nc=1, **opts)[0]
    assert swapped["a"].shape == (1, 8, 8)
    assert swapped["b"][0].eq(1).all()  # target is now the red left half


def test_paired_ab_crop_and_flip_shared(tmp_path):
    _make_ab(tmp_path / "train", n=3, h=24, w=30)
    ds = PairedDataset(tmp_path, preprocess="crop", crop_size=16, load_size=16)
    for epoch in range(8):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            torch.testing.assert_close(item["b"], -item["a"], atol=1e-6, rtol=0)


def test_paired_a_b_layout_pairs_files(tmp_path):
    for i in range(3):
        img = _noise(16, 16, i)
        _save(tmp_path / "train" / "A" / f"{i}.png", img)
        _save(tmp_path / "train" / "B" / f"{i}.png", 255 - img)
    ds = PairedDataset(tmp_path, preprocess="crop", load_size=8, crop_size=8)
    assert len(ds) == 3 and ds.layout.kind == "a_b"
    item = ds[1]
    assert item["path_a"].endswith("A/1.png") and item["path_b"].endswith("B/1.png")
    torch.testing.assert_close(item["b"], -item["a"], atol=1e-6, rtol=0)
    rev = PairedDataset(tmp_path, direction="BtoA", preprocess="none", flip=False)[1]
    assert rev["path_a"].endswith("B/1.png")


def test_paired_is_a_pure_function_of_seed_epoch_index(tmp_path):
    _make_ab(tmp_path / "train", n=4)
    one, two = PairedDataset(tmp_path, **SMALL), PairedDataset(tmp_path, **SMALL)
    np.random.seed(0)
    one.set_epoch(3)
    first = [one[i]["a"] for i in range(4)]
    np.random.seed(99)
    two.set_epoch(3)
    for i in reversed(range(4)):  # order of access must not matter
        assert torch.equal(two[i]["a"], first[i])
    two.set_epoch(4)
    assert any(not torch.equal(two[i]["a"], first[i]) for i in range(4))
    other_seed = PairedDataset(tmp_path, seed=1, **SMALL)
    other_seed.set_epoch(3)
    assert any(not torch.equal(other_seed[i]["a"], first[i]) for i in range(4))


def test_dataloader_worker_count_does_not_change_batches(tmp_path):
    _make_ab(tmp_path / "train", n=4)
    ds = PairedDataset(tmp_path, **SMALL)
    ds.set_epoch(2)
    batches = []
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=workers)
        batches.append(torch.cat([b["a"] for b in loader]))
    assert torch.equal(batches[0], batches[1])


def test_build_dataset_checks_data_kind_against_layout(tmp_path):
    _make_folder(tmp_path / "un" / "trainA", 2)
    _make_folder(tmp_path / "un" / "trainB", 2)
    _make_ab(tmp_path / "ab" / "train", n=2)
    with pytest.raises(DatasetError, match="unpaired.*CycleGAN"):
        build_dataset(tmp_path / "un", "paired", **SMALL)
    with pytest.raises(DatasetError, match="side-by-side.*pix2pix"):
        build_dataset(tmp_path / "ab", "unpaired", **SMALL)
    assert isinstance(build_dataset(tmp_path / "ab", "paired", **SMALL), PairedDataset)
    assert isinstance(build_dataset(tmp_path / "un", "unpaired", **SMALL), UnpairedDataset)
    with pytest.raises(ValueError, match="valid: paired, unpaired"):
        build_dataset(tmp_path / "ab", "munit")


# ---------------------------------------------------------------------------- UnpairedDataset


def test_unpaired_length_indexing_and_random_b(tmp_path):
    _make_folder(tmp_path / "trainA", 3, size=(20, 20))
    _make_folder(tmp_path / "trainB", 7, size=(24, 30))
    ds = UnpairedDataset(tmp_path, **SMALL)
    assert len(ds) == 7 and len(ds.files_a) == 3 and len(ds.files_b) == 7
    items = [ds[i] for i in range(7)]
    assert [Path(it["path_a"]).name for it in items] == [f"{i % 3}.png" for i in range(7)]
    assert all(Path(it["path_b"]).parent.name == "trainB" for it in items)
    assert all(it["a"].shape == it["b"].shape == (3, 16, 16) for it in items)
    ds.set_epoch(1)
    next_epoch = [ds[i]["path_b"] for i in range(7)]
    # B is drawn at random per (epoch, item), not tied to the index.
    assert any(b != it["path_b"] for b, it in zip(next_epoch, items))
    assert len(set(next_epoch) | {it["path_b"] for it in items}) > 2
    ds.set_epoch(0)
    again = ds[4]
    assert again["path_b"] == items[4]["path_b"] and torch.equal(again["b"], items[4]["b"])

    rev = UnpairedDataset(tmp_path, direction="BtoA", output_nc=1, **SMALL)
    assert Path(rev[0]["path_a"]).parent.name == "trainB" and rev[0]["b"].shape[0] == 1


def test_unpaired_accepts_a_b_layout_without_matching(tmp_path):
    _make_folder(tmp_path / "train" / "A", 2)
    _make_folder(tmp_path / "train" / "B", 3, start=10)  # no names in common
    ds = build_dataset(tmp_path, "unpaired", **SMALL)
    assert ds.layout.kind == "a_b" and len(ds) == 3


# ---------------------------------------------------------------------------------- bad files


def _add_bad_files(folder):
    (folder / "text.jpg").write_text("not an image")
    good = cv2.imencode(".jpg", _noise(20, 20, 0))[1].tobytes()
    (folder / "cut.jpg").write_bytes(good[: len(good) // 2])


def test_bad_files_are_listed(tmp_path):
    _make_ab(tmp_path / "train", n=3)
    _add_bad_files(tmp_path / "train")
    with pytest.raises(DatasetError) as info:
        PairedDataset(tmp_path, **SMALL)
    msg = str(info.value)
    assert "--skip-bad-images" in msg and "2 of 5" in msg
    assert f"{tmp_path / 'train' / 'text.jpg'}: not an image" in msg
    assert f"{tmp_path / 'train' / 'cut.jpg'}: truncated" in msg


def test_skip_bad_images_drops_them_with_warning(tmp_path):
    _make_ab(tmp_path / "train", n=3)
    _add_bad_files(tmp_path / "train")
    with pytest.warns(UserWarning, match="Skipping 2 of 5") as record:
        ds = PairedDataset(tmp_path, skip_bad_images=True, **SMALL)
    assert "text.jpg" in str(record[0].message)
    assert len(ds) == 3 and {p.name for p, _ in ds.bad_files} == {"text.jpg", "cut.jpg"}
    assert "3 pairs, 2 bad files skipped" in ds.describe()
    ds[2]  # the remaining items load


def test_skip_bad_images_drops_whole_pair_and_small_crops(tmp_path):
    _make_folder(tmp_path / "train" / "A", 3, size=(20, 20))
    _make_folder(tmp_path / "train" / "B", 3, size=(20, 20))
    (tmp_path / "train" / "B" / "1.png").write_bytes(b"")
    _save(tmp_path / "train" / "A" / "5.png", _noise(8, 8, 5))  # smaller than the crop
    _save(tmp_path / "train" / "B" / "5.png", _noise(20, 20, 5))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        ds = PairedDataset(tmp_path, preprocess="crop", load_size=16, crop_size=16,
                           skip_bad_images=True)
    assert [p.name for p in ds.files_a] == ["0.png", "2.png"]
    reasons = dict((p.name, r) for p, r in ds.bad_files)
    assert "empty" in reasons["1.png"] and "smaller than crop_size 16" in reasons["5.png"]


def test_all_bad_is_an_error(tmp_path):
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainA" / "x.png").write_bytes(b"")
    _make_folder(tmp_path / "trainB", 2)
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="No usable images"):
        UnpairedDataset(tmp_path, skip_bad_images=True, **SMALL)


def test_max_items_and_validate_off(tmp_path):
    _make_ab(tmp_path / "train", n=5)
    assert len(PairedDataset(tmp_path, max_items=2, **SMALL)) == 2
    (tmp_path / "train" / "9.png").write_bytes(b"")
    ds = PairedDataset(tmp_path, validate=False, **SMALL)
    assert len(ds) == 6 and ds.bad_files == []
