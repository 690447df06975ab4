"""CUT and FastCUT: the PatchNCE loss, patch sampling, the G step's gradients, the heads, exact
resume, and train -> convert -> eval through the command line."""

import json
import math
import shutil

import pytest
import torch

from conftest import make_unpaired_dataset

from translate import metrics, train
from translate.cli import main
from translate.config import ConfigError, RunConfig
from translate.methods import get_method
from translate.methods.cut import CUTConfig, FastCUTConfig
from translate.losses import patch_nce_loss
from translate.methods import build_method
from translate.methods import cut as cut_module
from translate.presets import get_preset
from translate.runtime import Scalers, autocast
from translate.training.state import load_state

CPU = torch.device("cpu")


def tiny(name, **model):
    preset = get_preset("tiny", name)["model"]
    cfg = RunConfig.from_dict({"method": name, "model": {**preset, **model}}).model
    torch.manual_seed(0)
    return build_method(name, cfg, 3, 3, CPU, seed=0)


def batch(size=32, n=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(n, 3, size, size, generator=g) * 2 - 1 for k in ("a", "b")}


# -- the loss


def test_patch_nce_matches_a_hand_computed_example():
    # One image, two locations, unit vectors: query i equals key i (the positives).
    q = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    # logits q.k^T / T = [[1/T, 0], [0, 1/T]]: each row's loss is log(1 + exp(-1/T))
    assert patch_nce_loss(q, q.clone(), temperature=1.0).item() == pytest.approx(math.log(1 + math.exp(-1)))
    assert patch_nce_loss(q, q.clone(), temperature=0.5).item() == pytest.approx(math.log(1 + math.exp(-2)))
    # Keys swapped: each query's positive is now orthogonal to it and its negative equal to it.
    swapped = q.flip(1)
    assert patch_nce_loss(q, swapped, temperature=1.0).item() == pytest.approx(math.log(1 + math.exp(1)))
    # Three locations at 0, 90 and 180 degrees, temperature 0.5: row 0 has logits (2, 0, -2).
    q3 = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]])
    row0 = -math.log(math.exp(2) / (math.exp(2) + math.exp(0) + math.exp(-2)))  # = row 2 by symmetry
    row1 = -math.log(math.exp(2) / (math.exp(0) + math.exp(2) + math.exp(0)))
    assert patch_nce_loss(q3, q3.clone(), 0.5).item() == pytest.approx((2 * row0 + row1) / 3, rel=1e-5)
    # At the paper's temperature 0.07 an orthogonal negative weighs exp(-1 / 0.07) against the positive.
    assert patch_nce_loss(q, swapped, 0.07).item() == pytest.approx(1 / 0.07, rel=1e-4)


def test_patch_nce_uses_negatives_from_the_same_image_only():
    # Image 1's keys are identical to image 0's queries; they must not act as negatives for image 0.
    q = torch.nn.functional.normalize(torch.randn(1, 4, 8), dim=-1)
    alone = patch_nce_loss(q, q.clone())
    other = torch.nn.functional.normalize(torch.randn(1, 4, 8), dim=-1)
    both = patch_nce_loss(torch.cat([q, other]), torch.cat([q, other]))
    assert both.item() == pytest.approx((alone.item() + patch_nce_loss(other, other.clone()).item()) / 2, rel=1e-6)


def test_patch_nce_trains_the_queries_not_the_keys():
    q = torch.nn.functional.normalize(torch.randn(2, 5, 4), dim=-1).requires_grad_(True)
    k = torch.nn.functional.normalize(torch.randn(2, 5, 4), dim=-1).requires_grad_(True)
    patch_nce_loss(q, k).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0 and k.grad is None
    with pytest.raises(ValueError, match=r"\(B, P, C\)"):
        patch_nce_loss(q[0], k[0])


# -- sampling, heads, the G step


def test_source_and_translated_features_are_read_at_the_same_locations(monkeypatch):
    m = tiny("cut")
    calls = []
    real_gather = cut_module.gather_patches

    def spy(feats, locations):
        calls.append([ids.clone() for ids in locations])
        return real_gather(feats, locations)

    monkeypatch.setattr(cut_module, "gather_patches", spy)
    opt = m.make_optimizers(RunConfig().loop)
    m.train_step(batch(), opt, Scalers(opt, "fp32", CPU), autocast(CPU, "fp32"))
    assert len(calls) == 4  # (keys, queries) for A -> B, then for the identity B -> B
    for keys, queries in (calls[0:2], calls[2:4]):
        assert len(keys) == len(m.layers) and all(torch.equal(a, b) for a, b in zip(keys, queries))
    # at most num_patches distinct locations per layer, all of them on a small layer
    sizes = [32 * 32, 16 * 16, 8 * 8, 8 * 8, 8 * 8]
    assert [len(ids) for ids in calls[0]] == [min(256, s) for s in sizes]
    assert all(len(set(ids.tolist())) == len(ids) for ids in calls[0])
    # the identity term draws new locations
    assert not torch.equal(calls[0][0], calls[2][0])


def test_gather_patches_reads_the_feature_vector_of_each_location():
    feats = [torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)]
    ids = [torch.tensor([0, 7, 19])]
    (p,) = cut_module.gather_patches(feats, ids)
    assert p.shape == (2, 3, 3)
    for b in range(2):
        for j, loc in enumerate(ids[0].tolist()):
            assert torch.equal(p[b, j], feats[0][b, :, loc // 5, loc % 5])


class GradScalers(Scalers):
    """Records, after each backward, which nets' parameters hold a nonzero gradient."""

    def __init__(self, optimizers, nets):
        super().__init__(optimizers, "fp32", CPU)
        self.nets, self.seen = nets, {}

    def backward(self, name, loss):
        super().backward(name, loss)
        self.seen[name] = {
            net: [p.grad is not None and bool(p.grad.abs().sum() > 0) for p in module.parameters()]
            for net, module in self.nets.items()}


@pytest.mark.parametrize("name", ["cut", "fastcut"])
def test_generator_step_trains_the_generator_and_every_head_but_not_the_discriminator(name):
    m = tiny(name)
    assert set(m.nets) == {"gen_a2b", "proj_a2b", "disc_b"} and m.generators == {"a2b": "gen_a2b"}
    opt = m.make_optimizers(RunConfig().loop)
    scalers = GradScalers(opt, m.nets)
    losses = m.train_step(batch(), opt, scalers, autocast(CPU, "fp32"))
    g = scalers.seen["gen"]
    assert all(g["gen_a2b"]) and all(g["proj_a2b"]) and not any(g["disc_b"])
    assert all(p.requires_grad for p in m.nets["disc_b"].parameters())  # D is unfrozen afterwards
    assert ("nce_idt" in losses) == (name == "cut")
    assert {"g_gan", "nce", "d_b"} <= set(losses)


def test_heads_are_built_at_construction_with_the_paper_sizes():
    cfg = CUTConfig()  # resnet_9blocks, ngf 64, layers 0,2,3,4,8
    m = build_method("cut", cfg, 3, 3, CPU)
    heads = m.nets["proj_a2b"]
    assert heads.config["channels"] == [3, 128, 256, 256, 256]
    # per head: Linear(C, 256) + Linear(256, 256), with biases
    expected = sum(c * 256 + 256 + 256 * 256 + 256 for c in (3, 128, 256, 256, 256))
    assert expected == 560384
    assert sum(p.numel() for p in heads.parameters()) == expected
    opt = m.make_optimizers(RunConfig().loop)
    in_gen_opt = {id(p) for group in opt["gen"].param_groups for p in group["params"]}
    assert {id(p) for p in heads.parameters()} <= in_gen_opt


def test_fastcut_defaults_and_option_checks():
    f, c = FastCUTConfig(), CUTConfig()
    assert (f.lambda_nce, f.nce_idt, f.flip_equivariance) == (10.0, False, True)
    assert (c.lambda_nce, c.nce_idt, c.flip_equivariance, c.num_patches, c.nce_temperature) == (1.0, True, False, 256, 0.07)
    assert get_method("fastcut").config_class is FastCUTConfig
    with pytest.raises(ConfigError, match="encoder points 0..9"):
        RunConfig.from_dict({"method": "cut", "model": {"netG": "resnet_6blocks", "nce_layers": "0,10"}})
    with pytest.raises(ConfigError, match="comma-separated integers"):
        RunConfig.from_dict({"method": "cut", "model": {"nce_layers": "0,x"}})
    with pytest.raises(ConfigError, match="--no-nce-idt"):
        RunConfig.from_dict({"method": "cut", "data": {"input_nc": 1}})
    RunConfig.from_dict({"method": "cut", "data": {"input_nc": 1}, "model": {"nce_idt": False}})


def test_b2a_run_names_nets_by_domain():
    cfg = RunConfig.from_dict({"method": "cut", "model": get_preset("tiny", "cut")["model"]}).model
    m = build_method("cut", cfg, 3, 3, CPU, direction="b2a")
    assert set(m.nets) == {"gen_b2a", "proj_b2a", "disc_a"} and m.generators == {"b2a": "gen_b2a"}
    opt = m.make_optimizers(RunConfig().loop)
    losses = m.train_step(batch(), opt, Scalers(opt, "fp32", CPU), autocast(CPU, "fp32"))
    assert "d_a" in losses and "d_b" not in losses


# -- the loop and the command line


def tiny_cfg(method, data, ckpt, name, **loop):
    preset = get_preset("tiny", method)
    return RunConfig.from_dict({"method": method, "name": name, "checkpoints_dir": str(ckpt),
                                "data": {**preset["data"], "root": str(data)}, "model": dict(preset["model"]),
                                "loop": {**preset["loop"], "batch_size": 2, **loop}})


@pytest.mark.parametrize("method", ["fastcut"])  # FastCUT: CUT's state plus the random flips
def test_resume_ends_bit_exactly_where_an_uninterrupted_run_ends(method, tmp_path):
    data = make_unpaired_dataset(tmp_path / "d", 5, 6)  # 6 items at batch 2: 3 steps/epoch, 2 epochs
    full = train(tiny_cfg(method, data, tmp_path / "ck", "full"))
    part = train(tiny_cfg(method, data, tmp_path / "ck", "part", max_steps=2))
    assert (full.step, part.step) == (6, 2)
    resumed = train(tiny_cfg(method, data, tmp_path / "ck", "part"), resume=True)
    assert resumed.step == 6
    a, b = load_state(full.run_dir), load_state(resumed.run_dir)
    assert set(a["nets"]) == {"gen_a2b", "proj_a2b", "disc_b"}
    for net in a["nets"]:
        for k in a["nets"][net]:
            assert torch.equal(a["nets"][net][k], b["nets"][net][k]), f"{net}.{k} differs after resume"
    for k in a["ema"]["gen_a2b"]:
        assert torch.equal(a["ema"]["gen_a2b"][k], b["ema"]["gen_a2b"][k])
    assert torch.equal(a["method"][0]["rng"], b["method"][0]["rng"])


def test_cli_train_convert_eval_on_an_unpaired_folder(tmp_path, monkeypatch, capsys):
    data = make_unpaired_dataset(tmp_path / "d", 4, 4)
    for side in "AB":
        shutil.copytree(data / f"train{side}", data / f"test{side}")
    ck = tmp_path / "ck"
    base = ["train", "fastcut", "--data", str(data), "--name", "fc", "--checkpoints-dir", str(ck),
            "--preset", "tiny", "--batch-size", "2", "--num-patches", "64", "--nce-layers", "0,3,5"]
    assert main(base + ["--max-steps", "2"]) == 0
    assert main(base + ["--max-steps", "3", "--resume"]) == 0
    run = ck / "fc"
    cfg = json.loads((run / "run.json").read_text())["config"]
    assert cfg["method"] == "fastcut" and cfg["model"]["num_patches"] == 64 and cfg["model"]["nce_layers"] == "0,3,5"
    doc = json.loads((run / "translator" / "translator.json").read_text())
    assert doc["method"] == "fastcut" and set(doc["generators"]) == {"a2b"}
    assert sorted(p.name for p in (run / "translator").iterdir()) == ["gen_a2b.safetensors", "translator.json"]
    out = tmp_path / "out"
    assert main(["convert", str(run), str(data / "testA"), str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"A{k:03d}.png" for k in range(4)]
    monkeypatch.setattr(metrics, "find_inception", lambda: None)  # FID's Inception is slow on CPU
    capsys.readouterr()
    assert main(["eval", str(run), "--data", str(data), "--size", "32", "--device", "cpu"]) == 0
    ev = json.loads((run / "eval" / "test" / "eval.json").read_text())
    assert ev["checkpoint"]["method"] == "fastcut" and len(ev["per_image"]) == 4


def test_cli_options_and_identity_check():
    from translate.cli import build_parser

    args = build_parser().parse_args(["train", "cut", "--data", "d", "--name", "n", "--lambda-nce", "2",
                                      "--nce-layers", "0,4", "--num-patches", "128", "--nce-temperature", "0.1",
                                      "--no-nce-idt"])
    assert (getattr(args, "model.lambda_nce"), getattr(args, "model.nce_layers"), getattr(args, "model.num_patches"),
            getattr(args, "model.nce_temperature"), getattr(args, "model.nce_idt")) == (2.0, "0,4", 128, 0.1, False)
    args = build_parser().parse_args(["train", "fastcut", "--data", "d", "--name", "n", "--nce-idt"])
    assert getattr(args, "model.nce_idt") is True


# -- the benchmark rows


def test_bench_reports_cut_and_fastcut_next_to_cyclegan():
    from translate.bench import format_table, run_bench

    result = run_bench(device="cpu", precisions="fp32", quick=True, what="train-cyclegan,train-cut,train-fastcut",
                       windows=1, window_seconds=0.2, warmup=0, num_workers=0)
    rows = {r["measurement"]: r for r in result["rows"] if r["measurement"] != "peak"}  # peaks: always probed
    assert set(rows) == {"train-cyclegan", "train-cut", "train-fastcut"}
    for w, row in rows.items():
        assert row["unit"] == "it/s" and row["value"] > 0 and row["flops_per_item"] > 0, w
        assert isinstance(row["peak_memory_bytes"], int)
    # FastCUT translates one image per step, CUT two (identity NCE); at these tiny widths the
    # 256-unit heads, not the generator, dominate, so neither is compared with CycleGAN here
    assert rows["train-fastcut"]["flops_per_item"] < rows["train-cut"]["flops_per_item"]
    table = format_table(result)
    for w in ("train-cut", "train-fastcut"):
        ratio = rows["train-cyclegan"]["value"] / rows[w]["value"]
        assert f"{w} fp32: {1 / rows[w]['value']:.3f} s/iteration, {ratio:.2f}x CycleGAN's" in table


def test_bf16_autocast_step_keeps_the_loss_finite():
    for name in ("cut", "fastcut"):
        m = tiny(name)
        opt = m.make_optimizers(RunConfig().loop)
        losses = m.train_step(batch(), opt, Scalers(opt, "bf16", CPU), autocast(CPU, "bf16"))
        assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in losses.values()), name


@pytest.mark.slow
def test_two_torchrun_processes_keep_identical_weights(tmp_path):
    from test_distributed import tiny as ddp_cfg, torchrun

    from conftest import repo_root

    data = make_unpaired_dataset(tmp_path / "d", 6, 8)
    cfg = ddp_cfg("fastcut", data, tmp_path / "ck", "ddp", loop={"batch_size": 1, "max_steps": 3})
    r = torchrun(repo_root() / "tests" / "ddp_worker.py", json.dumps(cfg.to_dict()), tmp_path / "out")
    assert r.returncode == 0, r.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / "out" / f"rank{k}.pt", weights_only=True) for k in (0, 1))
    assert r0["step"] == r1["step"] == 3 and set(r0["nets"]) == {"gen_a2b", "proj_a2b", "disc_b"}
    for net in r0["nets"]:
        for k, v in r0["nets"][net].items():
            assert torch.equal(v, r1["nets"][net][k]), f"{net}.{k} differs between ranks"
