"""A few training steps on the shared real datasets (skipped when ../shared/data is absent)."""

import pytest

from translate.checkpoint import load_generator
from translate.cli import main

from conftest import SHARED_DATA

pytestmark = pytest.mark.real_data


@pytest.mark.skipif(not (SHARED_DATA / "facades").is_dir(), reason="../shared/data/facades not present")
def test_pix2pix_on_facades(tmp_path):
    args = ["train", "pix2pix", "--data", str(SHARED_DATA / "facades"), "--direction", "BtoA", "--name", "f",
            "--checkpoints-dir", str(tmp_path), "--netG", "unet_128", "--load-size", "128", "--crop-size", "128",
            "--max-steps", "3", "--log-every", "1"]
    assert main(args) == 0
    gen = load_generator(tmp_path / "f", "b2a")  # BtoA: directions name domains
    assert gen.config["num_downs"] == 7
    assert (tmp_path / "f" / "samples" / "step_0000003.png").is_file()


@pytest.mark.skipif(not (SHARED_DATA / "monet2photo").is_dir(), reason="../shared/data/monet2photo not present")
def test_cyclegan_on_monet2photo(tmp_path):
    args = ["train", "cyclegan", "--data", str(SHARED_DATA / "monet2photo"), "--name", "m",
            "--checkpoints-dir", str(tmp_path), "--load-size", "64", "--crop-size", "64", "--max-steps", "2",
            "--ngf", "16", "--ndf", "16"]
    assert main(args) == 0
    for direction in ("a2b", "b2a"):
        load_generator(tmp_path / "m", direction)
