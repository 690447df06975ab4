"""A method is one file and one registration line: a method defined here, in the test module,
and registered with ``register_method`` trains from the command line, appears in ``translate
train --help``, has a tiny preset and a benchmark row, without any other file of the package
knowing about it."""

from dataclasses import dataclass
from typing import Any, Dict

import pytest
import torch
import torch.nn.functional as F
from conftest import make_ab_dataset
from torch import nn

from translate import Translator
from translate import options as o
from translate.bench import all_what, run_bench
from translate.cli import main
from translate.methods import METHODS, BenchSpec, MethodInfo, get_method, list_methods, register_method
from translate.methods.common import adam, generator_kwargs
from translate.models import build_generator
from translate.nn import init_weights
from translate.nn.inference import for_inference
from translate.presets import get_preset


@dataclass
class L1RegressionConfig(o.ModelConfig):
    """A generator fitted to the paired targets in L1 alone (no discriminator)."""

    netG: str = o.net_g("unet_256")
    num_downs: int = o.num_downs()
    n_blocks: int = o.n_blocks()
    ngf: int = o.ngf()
    norm: str = o.norm("batch")
    use_dropout: bool = o.dropout(False)
    init_type: str = o.init_type()
    init_gain: float = o.init_gain()


class L1Regression(MethodInfo):
    """The non-adversarial baseline of pix2pix: ``gen_a2b`` trained on |G(a) - b|."""

    name = "l1regression"
    config_class = L1RegressionConfig
    help = "paired, no GAN: a generator fitted to the targets in L1 (a baseline)"
    data = "paired"
    tiny = {"netG": "unet", "num_downs": 5}
    bench = BenchSpec(counts="images")
    optimizer_names = ("gen",)

    def __init__(self, cfg: L1RegressionConfig, input_nc: int, output_nc: int, device: torch.device,
                 seed: int = 0, direction: str = "a2b"):
        self.cfg, self.device, self.gen_name = cfg, device, f"gen_{direction}"
        gen = build_generator(cfg.netG, **generator_kwargs(cfg, input_nc, output_nc))
        init_weights(gen, cfg.init_type, cfg.init_gain)
        self.nets = nn.ModuleDict({self.gen_name: gen}).to(device)
        self.train_nets = dict(self.nets)
        self.generators = {direction: self.gen_name}

    @property
    def size_multiple(self) -> int:
        return self.nets[self.gen_name].size_multiple

    def make_optimizers(self, loop: Any) -> Dict[str, torch.optim.Optimizer]:
        return {"gen": adam(self.nets[self.gen_name].parameters(), loop.lr, (loop.beta1, loop.beta2), self.device)}

    def train_step(self, batch, opt, scalers, amp) -> Dict[str, torch.Tensor]:
        opt["gen"].zero_grad(set_to_none=True)
        with amp:
            fake_b = self.train_nets[self.gen_name](batch["a"])  # (B, Co, H, W)
        loss = F.l1_loss(fake_b.float(), batch["b"].float())
        scalers.backward("gen", loss)
        scalers.step("gen", opt["gen"])
        return {"g_l1": loss.detach()}

    @torch.no_grad()
    def sample(self, batch, amp) -> list:
        with amp:
            fake_b = for_inference(self.nets[self.gen_name])(batch["a"]).float()
        return [batch["a"], fake_b, batch["b"]]


@pytest.fixture
def registered():
    register_method(L1Regression)  # the one line that adds the method
    yield L1Regression.name
    del METHODS[L1Regression.name]  # other tests see the built-in methods only


def test_it_is_listed_with_its_help(registered, capsys):
    assert registered in list_methods("train") and get_method(registered) is L1Regression
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert f"{registered} paired, no GAN: a generator fitted to the targets in L1" in out
    with pytest.raises(SystemExit):
        main(["train", registered, "--help"])
    out = capsys.readouterr().out
    assert "--netG" in out and "--ngf" in out and "--ndf" not in out  # its own options, no discriminator's


def test_it_has_a_tiny_preset(registered):
    model = get_preset("tiny", registered)["model"]
    assert model == {"ngf": 8, "netG": "unet", "num_downs": 5}  # the shared width, its own generator


def test_it_trains_from_the_command_line(registered, tmp_path):
    data = make_ab_dataset(tmp_path / "data", n=4, size=36)
    code = main(["train", registered, "--data", str(data), "--name", "run", "--checkpoints-dir", str(tmp_path / "ck"),
                 "--preset", "tiny", "--max-steps", "2", "--batch-size", "2"])
    assert code == 0
    t = Translator.load(tmp_path / "ck" / "run", device="cpu")
    assert t.method == registered and t.directions == ["a2b"]
    assert t.translate_tensor(torch.zeros(1, 3, 40, 44)).shape == (1, 3, 40, 44)


def test_it_has_a_bench_row(registered):
    assert f"train-{registered}" in all_what()
    result = run_bench(device="cpu", precisions="fp32", quick=True, what=f"train-{registered}", windows=1,
                       window_seconds=0.2, warmup=0, num_workers=0, batch_size=2, log=lambda msg: None)
    (row,) = [r for r in result["rows"] if r["measurement"] != "peak"]  # the peaks are always probed
    assert row["measurement"] == f"train-{registered}" and row["unit"] == "img/s" and row["value"] > 0
    flops = result["flops"][registered]["train_step_flops"]
    assert row["flops_per_item"] == flops / 2  # images: the step's FLOPs over its batch
