"""The demo's generated dataset and a very short demo run."""

import numpy as np

from translate.data import PairedDataset, check_data
from translate.demo import make_dataset, make_pair, run_demo


def test_generated_pairs_are_aligned():
    label, photo = make_pair(64, np.random.default_rng(0))
    assert label.shape == photo.shape == (64, 64, 3) and label.dtype == photo.dtype == np.uint8
    # every label colour maps to a region of the photo; the photo is not a copy of the labels
    assert len(np.unique(label.reshape(-1, 3), axis=0)) >= 4
    assert not np.array_equal(label, photo)


def test_demo_dataset_is_a_valid_ab_dataset(tmp_path):
    root = make_dataset(tmp_path / "d", n_train=4, n_test=2, size=32)
    report = check_data(root)
    assert report["ok"]
    ds = PairedDataset(root, load_size=32, crop_size=32)
    assert len(ds) == 4


def test_short_demo_run(tmp_path):
    assert run_demo(out=str(tmp_path / "ck"), data=str(tmp_path / "d"), minutes=0.05, device="cpu") == 0
    assert (tmp_path / "ck" / "demo" / "samples" / "test.png").is_file()
    assert (tmp_path / "ck" / "demo" / "translator" / "translator.json").is_file()
