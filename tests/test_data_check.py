"""translate.data.check: the check-data report on good and broken folders."""

import json
from pathlib import Path

import cv2
import numpy as np

from translate.data import check_data, format_report


def _save(path, img):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), img)


def test_good_paired_folders(tmp_path):
    for i in range(3):
        _save(tmp_path / "train" / "A" / f"{i}.png", np.zeros((20, 30, 3), np.uint8))
        _save(tmp_path / "train" / "B" / f"{i}.jpg", np.zeros((20, 30), np.uint8))
    _save(tmp_path / "train" / "A" / "3.png", np.zeros((10, 12, 3), np.uint16))
    _save(tmp_path / "train" / "B" / "3.png", np.zeros((10, 12, 4), np.uint8))
    report = check_data(tmp_path)
    json.dumps(report)  # serialisable, for --json output
    assert report["ok"] and report["problems"] == []
    (train,) = report["splits"]
    assert train["split"] == "train" and train["layout"] == "a_b" and train["pairs"] == 4
    side_a, side_b = train["sides"]["A"], train["sides"]["B"]
    assert side_a["count"] == 4
    assert side_a["sizes"] == {"30x20": 3, "12x10": 1}
    assert side_a["min_size"] == [12, 10] and side_a["max_size"] == [30, 20]
    assert side_a["modes"] == {"RGB": 3, "RGB 16-bit": 1}
    assert side_b["modes"] == {"gray": 3, "RGBA": 1}
    text = format_report(report)
    assert text.startswith(f"Dataset {tmp_path}: OK")
    assert "30x20 (3)" in text and "RGB 16-bit (1)" in text and "matched pairs: 4" in text


def test_bad_folder_reports_every_problem(tmp_path):
    for i in range(2):
        _save(tmp_path / "train" / "A" / f"{i}.png", np.zeros((8, 8, 3), np.uint8))
        _save(tmp_path / "train" / "B" / f"{i}.png", np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "train" / "A" / "1.png").write_text("oops")
    _save(tmp_path / "train" / "A" / "lonely.png", np.zeros((8, 8, 3), np.uint8))
    # A second split with a broken layout.
    (tmp_path / "test" / "A").mkdir(parents=True)
    _save(tmp_path / "test" / "A" / "0.png", np.zeros((8, 8, 3), np.uint8))
    report = check_data(tmp_path)
    assert not report["ok"]
    by_split = {s["split"]: s for s in report["splits"]}
    assert set(by_split) == {"train", "test"}
    train = by_split["train"]
    assert train["only_a"] == [str(tmp_path / "train" / "A" / "lonely.png")]
    assert train["sides"]["A"]["unreadable"][0][0] == str(tmp_path / "train" / "A" / "1.png")
    assert "not an image" in train["sides"]["A"]["unreadable"][0][1]
    assert "no B/" in by_split["test"]["error"]
    text = format_report(report)
    assert "PROBLEMS FOUND" in text and "UNREADABLE: 1 files" in text
    assert "only in A:" in text and "lonely.png" in text and "ERROR" in text


def test_ambiguous_missing_and_empty(tmp_path):
    _save(tmp_path / "amb" / "train" / "0.png", np.zeros((8, 16, 3), np.uint8))
    _save(tmp_path / "amb" / "trainA" / "0.png", np.zeros((8, 8, 3), np.uint8))
    _save(tmp_path / "amb" / "trainB" / "0.png", np.zeros((8, 8, 3), np.uint8))
    report = check_data(tmp_path / "amb", split="train")
    assert not report["ok"] and "--layout" in report["splits"][0]["error"]
    assert check_data(tmp_path / "amb", split="train", layout="unpaired")["ok"]

    assert not check_data(tmp_path / "missing")["ok"]
    (tmp_path / "empty").mkdir()
    report = check_data(tmp_path / "empty")
    assert not report["ok"] and "no images" in report["problems"][0]
    assert "no images" in format_report(report)


def test_side_by_side_and_odd_width_note(tmp_path):
    _save(tmp_path / "train" / "0.jpg", np.zeros((8, 17, 3), np.uint8))
    report = check_data(tmp_path)
    assert report["ok"] and report["splits"][0]["layout"] == "ab"
    assert "odd width" in format_report(report)
