"""``--compile``: training through torch.compile leaves checkpoints, resume and export unchanged."""

import shutil

import pytest
import torch
from safetensors import safe_open

from translate import train
from translate.cli import build_parser
from translate.training.pipeline import TrainingError, check_compile
from translate.training.state import load_state

from test_train import tiny_cfg

needs_compiler = pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
                                    reason="torch.compile on CPU needs a C++ compiler")


def _keys(run_dir):
    with safe_open(str(run_dir / "translator" / "gen_a2b.safetensors"), "pt") as f:
        return sorted(f.keys())


@needs_compiler
@pytest.mark.slow
def test_compiled_pix2pix_trains_and_saves_the_same_keys(ab_data, tmp_path):
    plain = train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", name="plain", max_steps=2))
    compiled = train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", name="compiled", max_steps=2, compile=True))
    assert compiled.step == 2
    assert _keys(compiled.run_dir) == _keys(plain.run_dir)
    assert not any("_orig_mod" in k for k in _keys(compiled.run_dir))
    a, b = load_state(plain.run_dir), load_state(compiled.run_dir)
    for name in a["nets"]:
        assert sorted(a["nets"][name]) == sorted(b["nets"][name]), name
    # the same steps on the same data: the compiled graphs compute what the eager nets compute
    for k, v in a["nets"]["gen_a2b"].items():
        if v.is_floating_point():
            torch.testing.assert_close(b["nets"]["gen_a2b"][k], v, rtol=1e-3, atol=1e-4)
    # a compiled run resumes without compiling, and the other way round
    resumed = train(tiny_cfg("pix2pix", ab_data, tmp_path / "ck", name="compiled", max_steps=3), resume=True)
    assert resumed.step == 3


def test_compile_is_a_training_flag_and_refused_with_several_processes():
    args = build_parser().parse_args(["train", "pix2pix", "--data", "d", "--name", "n", "--compile"])
    assert getattr(args, "loop.compile") is True
    with pytest.raises(TrainingError, match="single-process"):
        check_compile(torch.device("cpu"), distributed=True)
