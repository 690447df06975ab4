"""The translator folder: round trip, strict loading, crash-safe replacement."""

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from translate.checkpoint import CheckpointError, load_generator, read_translator_json, save_translator
from translate.fsutil import replace_dir
from translate.models import build_generator


def _gen():
    torch.manual_seed(0)
    return build_generator("unet", input_nc=3, output_nc=1, num_downs=5, ngf=8)


def test_round_trip_equal_weights(tmp_path):
    gen = _gen()
    save_translator(tmp_path / "translator", "pix2pix", {"a2b": gen}, {"input_nc": 3, "output_nc": 1},
                    {"step": 5})
    loaded = load_generator(tmp_path, "a2b")  # run folder or translator folder both work
    assert loaded.config == gen.config
    for k, v in gen.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    doc = read_translator_json(tmp_path / "translator")
    assert doc["generators"]["a2b"]["arch"] == "unet" and doc["provenance"]["step"] == 5
    meta_cfg = json.loads(
        __import__("safetensors").safe_open(str(tmp_path / "translator" / "gen_a2b.safetensors"), "pt").metadata()["config"])
    assert meta_cfg == gen.config


def test_missing_direction_and_bad_paths(tmp_path):
    save_translator(tmp_path / "translator", "pix2pix", {"a2b": _gen()}, {})
    with pytest.raises(CheckpointError, match="no 'b2a' generator"):
        load_generator(tmp_path, "b2a")
    with pytest.raises(CheckpointError, match="does not exist"):
        read_translator_json(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="is a file"):
        read_translator_json(tmp_path / "translator" / "gen_a2b.safetensors")


def test_strict_loading(tmp_path):
    folder = save_translator(tmp_path / "translator", "pix2pix", {"a2b": _gen()}, {})
    doc = json.loads((folder / "translator.json").read_text())
    # unknown format version
    (folder / "translator.json").write_text(json.dumps({**doc, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version 99"):
        read_translator_json(folder)
    # unknown key
    (folder / "translator.json").write_text(json.dumps({**doc, "extra": 1}))
    with pytest.raises(CheckpointError, match="unknown keys"):
        read_translator_json(folder)
    (folder / "translator.json").write_text(json.dumps(doc))
    # extra / missing tensors
    weights = load_file(folder / "gen_a2b.safetensors")
    save_file({**weights, "stray": torch.zeros(1)}, folder / "gen_a2b.safetensors")
    with pytest.raises(CheckpointError, match="unexpected: \\['stray'\\]"):
        load_generator(folder, "a2b")
    weights.pop(next(iter(weights)))
    save_file(weights, folder / "gen_a2b.safetensors")
    with pytest.raises(CheckpointError, match="missing"):
        load_generator(folder, "a2b")
    (folder / "gen_a2b.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_generator(folder, "a2b")


def test_no_pickle_in_translator_folder(tmp_path):
    folder = save_translator(tmp_path / "translator", "cyclegan", {"a2b": _gen(), "b2a": _gen()}, {})
    assert sorted(p.name for p in folder.iterdir()) == ["gen_a2b.safetensors", "gen_b2a.safetensors",
                                                      "translator.json"]


def test_interrupted_replacement_is_recovered(tmp_path):
    save_translator(tmp_path / "translator", "pix2pix", {"a2b": _gen()}, {"v": 1})
    # Simulate a crash between the two renames of replace_dir: only translator.old exists.
    (tmp_path / "translator").rename(tmp_path / "translator.old")
    assert read_translator_json(tmp_path)["preprocessing"] == {"v": 1}
    assert (tmp_path / "translator").is_dir()
    # and a normal replacement leaves no leftovers
    save_translator(tmp_path / "translator", "pix2pix", {"a2b": _gen()}, {"v": 2})
    assert read_translator_json(tmp_path)["preprocessing"] == {"v": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["translator"]


def test_replace_dir_keeps_old_until_new_is_in_place(tmp_path, monkeypatch):
    """While a new translator is written, the old one stays loadable from disk at every step:
    during the writes into the temp folder, and around each rename of the swap."""
    import os

    from translate import checkpoint, fsutil

    folder = tmp_path / "run" / "translator"
    old_gen = _gen()
    torch.manual_seed(1)
    new_gen = build_generator("unet", input_nc=3, output_nc=1, num_downs=5, ngf=8)
    save_translator(folder, "pix2pix", {"a2b": old_gen}, {"v": 1})
    versions = {"old": old_gen.state_dict(), "new": new_gen.state_dict()}
    seen = []

    def loadable(event):
        # Read what is on disk without recovering anything (that would disturb the writer):
        # the folder itself, or translator.old between the two renames.
        where = folder if (folder / "translator.json").is_file() else folder.with_name("translator.old")
        state = load_generator(where, "a2b").state_dict()
        which = [name for name, ref in versions.items() if all(torch.equal(state[k], ref[k]) for k in ref)]
        assert len(which) == 1, f"incomplete translator on disk at {event}"
        seen.append((event, where.name, which[0]))

    real_write, real_rename = checkpoint.atomic_write_bytes, os.rename

    def write(path, data):
        loadable(f"write {path.name}")
        real_write(path, data)

    def rename(src, dst):
        loadable(f"before rename {src}")
        real_rename(src, dst)
        loadable(f"after rename {src}")

    monkeypatch.setattr(checkpoint, "atomic_write_bytes", write)
    monkeypatch.setattr(fsutil.os, "rename", rename)
    save_translator(folder, "pix2pix", {"a2b": new_gen}, {"v": 2})
    monkeypatch.undo()

    writes = [w for w in seen if w[0].startswith("write")]
    assert writes and all(which == "old" for _e, _w, which in writes)  # the old one, while the new is written
    assert ("translator.old", "old") in {(w, which) for _e, w, which in seen}  # between the two renames
    assert seen[-1][1:] == ("translator", "new")
    assert read_translator_json(folder)["preprocessing"] == {"v": 2}
    assert sorted(p.name for p in folder.parent.iterdir()) == ["translator"]
    # and replace_dir itself on plain folders
    target, new = tmp_path / "t", tmp_path / "n"
    target.mkdir(); (target / "f").write_text("old")
    new.mkdir(); (new / "f").write_text("new")
    replace_dir(new, target)
    assert (target / "f").read_text() == "new" and not new.exists()
