"""Multi-scale discriminator, feature matching, the pix2pixHD method and class-ID translators end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from translate import Translator, train
from translate.cli import main
from translate.config import RunConfig
from translate.losses import feature_matching_loss
from translate.models import MultiscaleDiscriminator, Pix2PixHDGenerator, build_discriminator
from translate.training.state import load_state


def n_params(net):
    return sum(p.numel() for p in net.parameters())


# ---------------------------------------------------------------------------- multi-scale D


def test_multiscale_discriminator_returns_every_layer_at_every_scale():
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(input_nc=5, ndf=4, n_layers=3, norm="instance", num_D=3)
    out = d(torch.randn(2, 5, 128, 128))
    assert len(out) == 3
    # PatchGAN with 4x4 convs, padding 1: stride 2 three times, then two stride-1 convs (-1 each)
    for k, feats in enumerate(out):
        s = 128 // 2**k
        assert [tuple(f.shape) for f in feats] == [
            (2, 4, s // 2, s // 2), (2, 8, s // 4, s // 4), (2, 16, s // 8, s // 8),
            (2, 32, s // 8 - 1, s // 8 - 1), (2, 1, s // 8 - 2, s // 8 - 2)]
    # scale k sees the input average-pooled k times
    x = torch.randn(1, 5, 128, 128)
    pooled = torch.nn.functional.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    assert torch.allclose(d(x)[1][-1], MultiscaleDiscriminator.layer_outputs(d.discriminators[1], pooled)[-1])


def test_feature_matching_loss_values_and_gradients():
    real = [[torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 1, 1)]] * 2
    fake = [[torch.ones(1, 2, 4, 4, requires_grad=True), torch.full((1, 3, 2, 2), 2.0, requires_grad=True),
             torch.full((1, 1, 1, 1), 9.0)] for _ in range(2)]
    loss = feature_matching_loss(fake, real)
    # two layers per scale (logits left out): each weighted 4 / 2, scales weighted 1 / 2
    assert loss.item() == pytest.approx(2 * 0.5 * 2.0 * (1.0 + 2.0))
    assert feature_matching_loss(real, real).item() == 0.0
    loss.backward()
    assert fake[0][0].grad is not None and fake[0][0].grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same non-zero number of scales"):
        feature_matching_loss(fake[:1], real)


def test_parameter_counts_of_the_default_global_generator_and_3_scale_discriminator():
    """Counted layer by layer from the paper's architecture (Cityscapes: 35 classes + instance
    boundaries in, RGB out; instance norm without affine parameters; biases on every conv)."""
    cin, cout, ngf = 36, 3, 64
    expected_g = cin * ngf * 49 + ngf  # 7x7 stem
    c = ngf
    for _ in range(4):  # 3x3 stride-2 downsamplings
        expected_g += c * 2 * c * 9 + 2 * c
        c *= 2
    expected_g += 9 * 2 * (c * c * 9 + c)  # 9 residual blocks of two 3x3 convs at 1024 channels
    for _ in range(4):  # 3x3 transposed convs
        expected_g += c * (c // 2) * 9 + c // 2
        c //= 2
    expected_g += ngf * cout * 49 + cout  # 7x7 head
    with torch.device("meta"):
        g = Pix2PixHDGenerator(input_nc=cin, output_nc=cout)
        d = build_discriminator("multiscale", input_nc=cin + cout, norm="instance", num_D=3)
    assert n_params(g) == expected_g == 182_546_755
    widths = [cin + cout, 64, 128, 256, 512, 1]
    one_d = sum(a * b * 16 + b for a, b in zip(widths, widths[1:]))
    assert n_params(d) == 3 * one_d == 8_404_803
    assert g.size_multiple == 16


def test_local_enhancer_doubles_the_global_width_and_the_size_multiple():
    g = Pix2PixHDGenerator(input_nc=4, output_nc=3, ngf=4, n_downsample_global=2, n_blocks_global=1,
                           n_local_enhancers=1, n_blocks_local=1)
    assert g.size_multiple == 8 and g.global_net.head[1].in_channels == 8
    x = torch.randn(1, 4, 32, 48)
    assert g(x).shape == (1, 3, 32, 48) and g.forward_global(x[..., :16, :24]).shape == (1, 3, 16, 24)
    with pytest.raises(ValueError, match="multiples of 8"):
        g(torch.randn(1, 4, 20, 24))


def test_pix2pix_with_a_multiscale_discriminator_adds_feature_matching():
    from translate.methods import build_method
    from translate.runtime import Scalers, autocast

    cfg = RunConfig.from_dict({"model": {"netG": "unet", "num_downs": 5, "ngf": 4, "ndf": 4, "netD": "multiscale",
                                         "num_D": 2, "n_layers_D": 2, "lambda_feat": 10.0}})
    torch.manual_seed(0)
    m = build_method("pix2pix", cfg.model, 3, 3, torch.device("cpu"))
    assert isinstance(m.nets["disc_b"], MultiscaleDiscriminator) and len(m.nets["disc_b"].discriminators) == 2
    opt = m.make_optimizers(cfg.loop)
    batch = {k: torch.rand(2, 3, 64, 64) * 2 - 1 for k in "ab"}
    losses = m.train_step(batch, opt, Scalers(opt, "fp32", torch.device("cpu")), autocast(torch.device("cpu"), "fp32"))
    assert {"g_gan", "g_l1", "g_feat", "d_real", "d_fake"} <= set(losses) and losses["g_feat"] > 0
    with pytest.raises(Exception, match="multiscale does not support --gan-mode wgan-gp"):
        RunConfig.from_dict({"model": {"netD": "multiscale", "gan_mode": "wgan-gp"}})


def test_too_small_crops_for_the_multiscale_discriminator_are_refused(tmp_path):
    from translate.training.loop import TrainingError

    cfg = hd_cfg(label_dataset(tmp_path / "d", n=1), tmp_path / "ck", n_local_enhancers=0, num_D=3, n_layers_D=3)
    with pytest.raises(TrainingError, match="needs crops of at least 96 pixels, but crop_size is 64"):
        train(cfg)


# ---------------------------------------------------------------------------- training


def label_dataset(root, n=4, size=(64, 96), label_nc=6, seed=0):
    """A tiny class-ID dataset: A/ 8-bit ID maps of blocks, B/ photos coloured by class."""
    rng = np.random.default_rng(seed)
    palette = rng.integers(0, 256, (label_nc, 3), dtype=np.uint8)
    h, w = size
    for split in ("train", "test"):
        for i in range(n):
            ids = np.zeros((h, w), np.uint8)
            for _ in range(6):
                y, x = rng.integers(0, h), rng.integers(0, w)
                ids[y:y + h // 3, x:x + w // 3] = rng.integers(0, label_nc)
            for sub, arr in (("A", ids), ("B", palette[ids])):
                (root / split / sub).mkdir(parents=True, exist_ok=True)
                Image.fromarray(arr).save(root / split / sub / f"{i}.png")
    return root


def hd_cfg(data, ckpt, name="run", **model):
    return RunConfig.from_dict({
        "method": "pix2pixhd", "name": name, "checkpoints_dir": str(ckpt),
        "data": {"root": str(data), "label_nc": 6, "load_size": 64, "crop_size": 64, "num_workers": 0},
        "model": {"ngf": 4, "ndf": 4, "n_downsample_global": 2, "n_blocks_global": 1, "n_layers_D": 2, "num_D": 2,
                  "n_local_enhancers": 1, "n_blocks_local": 1, "global_steps": 3, **model},
        "loop": {"batch_size": 2, "epochs": 2, "epochs_decay": 1, "log_every": 1, "ema_decay": 0},
    })


def test_coarse_to_fine_switches_phase_and_resumes_exactly_across_the_switch(tmp_path):
    data = label_dataset(tmp_path / "d")
    full = train(hd_cfg(data, tmp_path / "ck", "full"))  # 2 steps/epoch x 3 epochs = 6 steps
    assert full.step == 6 and full.method.steps_done == 6 and full.method.phase == "joint"
    log = [json.loads(x) for x in (full.run_dir / "log.jsonl").read_text().splitlines()]
    assert {"g_gan", "g_feat", "d_real", "d_fake"} <= set(log[-1])

    part_cfg = hd_cfg(data, tmp_path / "ck", "part")
    part_cfg.loop.max_steps = 2  # stop inside the global phase (global_steps 3)
    part = train(part_cfg)
    state = load_state(part.run_dir)
    assert state["method"][0] == {"steps_done": 2} and part.method.phase == "global"
    from translate.training.pipeline import build_trainables

    first = build_trainables(hd_cfg(data, tmp_path / "ck"), torch.device("cpu")).method.nets["gen_a2b"].state_dict()
    # the global phase trains G1 only: the local enhancer is still at its initial weights
    for k, v in state["nets"]["gen_a2b"].items():
        if k.startswith("local_"):
            assert torch.equal(v, first[k]), k
    resumed = train(hd_cfg(data, tmp_path / "ck", "part"), resume=True)
    assert resumed.step == 6 and resumed.method.phase == "joint"
    a, b = load_state(full.run_dir)["nets"], load_state(resumed.run_dir)["nets"]
    for net in a:
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), f"{net}.{k} differs after resume"
    assert any(not torch.equal(a["gen_a2b"][k], first[k]) for k in a["gen_a2b"] if k.startswith("local_"))


def test_vgg_loss_is_off_without_weights_and_says_so(tmp_path, capsys):
    data = label_dataset(tmp_path / "d", n=2)
    cfg = hd_cfg(data, tmp_path / "ck", n_local_enhancers=0)
    cfg.loop.max_steps = 1
    train(cfg)
    assert "VGG19 perceptual loss off (no --vgg-weights given" in capsys.readouterr().err
    cfg = hd_cfg(data, tmp_path / "ck", "vgg", n_local_enhancers=0, vgg_weights=str(tmp_path / "missing.pth"))
    with pytest.raises(Exception, match="missing.pth: no such file"):
        train(cfg)


def test_vgg_loss_with_local_weights(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    from translate.methods.pix2pixhd import VGGPerceptualLoss

    torch.manual_seed(0)
    path = tmp_path / "vgg19.pth"
    torch.save(torchvision.models.vgg19(weights=None).state_dict(), path)
    loss = VGGPerceptualLoss(str(path))
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0
    y = x.clone().requires_grad_(True)
    value = loss(y.flip(-1), x)
    value.backward()
    assert value.item() > 0 and y.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.parameters())


# ---------------------------------------------------------------------------- end to end


def test_cli_check_data_train_convert_info_on_a_class_id_folder(tmp_path, capsys):
    data = label_dataset(tmp_path / "d", label_nc=6)
    assert main(["check-data", str(data), "--label-nc", "6"]) == 0
    out = capsys.readouterr().out
    assert "A as class-ID label maps" in out and "all IDs are below --label-nc 6" in out
    bad = np.zeros((64, 96), np.uint8)
    bad[5, 70] = 9
    Image.fromarray(bad).save(data / "test" / "A" / "3.png")
    assert main(["check-data", str(data), "--label-nc", "6"]) == 1
    assert "3.png: ID 9 at pixel (x=70, y=5)" in capsys.readouterr().out

    ck = tmp_path / "ck"
    assert main(["train", "pix2pixhd", "--data", str(data), "--name", "hd", "--checkpoints-dir", str(ck),
                 "--label-nc", "6", "--load-size", "64", "--crop-size", "64", "--max-steps", "2",
                 "--ngf", "4", "--ndf", "4", "--n-blocks-global", "1", "--num-D", "2", "--n-layers-D", "2",
                 "--num-workers", "0"]) == 0
    capsys.readouterr()

    # full-size label maps of odd sizes: the output has exactly the input size, with and without tiles
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 6, (100, 203), dtype=np.uint8)).save(inputs / "a.png")
    Image.fromarray(rng.integers(0, 6, (70, 50), dtype=np.uint16)).save(inputs / "b.png")
    Image.fromarray(np.full((8, 8), 7, np.uint8)).save(inputs / "bad.png")
    for out, extra in (("out", []), ("tiled", ["--tile-pixels", "4096", "--tile-overlap", "16"])):
        assert main(["convert", str(ck / "hd"), str(inputs), str(tmp_path / out), "--no-progress", *extra]) == 1
        assert Image.open(tmp_path / out / "a.png").size == (203, 100)
        assert Image.open(tmp_path / out / "a.png").mode == "RGB"
        assert Image.open(tmp_path / out / "b.png").size == (50, 70)
        assert not (tmp_path / out / "bad.png").exists()
        failed = (tmp_path / out / "failed.jsonl").read_text()
        assert "bad.png" in failed and "class ID 7" in failed

    # the Translator one-hot encodes class-ID arrays itself; a colour image is refused
    t = Translator.load(ck / "hd", device="cpu")
    assert t.labels == {"label_nc": 6, "instance_channel": False}
    ids = rng.integers(0, 6, (48, 80)).astype(np.uint8)
    out = t(ids)
    assert out.shape == (48, 80, 3) and out.dtype == np.uint8
    with pytest.raises(ValueError, match="single-channel"):
        t(np.zeros((8, 8, 3), np.uint8))

    assert main(["info", str(ck / "hd")]) == 0
    assert "labels:     class IDs 0..5 (single-channel maps), one-hot encoded to 6 channels" in capsys.readouterr().out
    assert main(["info", str(ck / "hd"), "--json"]) == 0
    desc = json.loads(capsys.readouterr().out)
    assert desc["preprocessing"]["labels"] == {"label_nc": 6, "instance_channel": False}

    # paired metrics at full resolution; the label side is read as IDs
    assert main(["eval", str(ck / "hd"), "--data", str(data), "--split", "train", "--size", "0", "--no-fid",
                 "--out", str(tmp_path / "ev")]) == 0
    doc = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert doc["protocol"]["resolution"] == "native" and len(doc["per_image"]) == 4
    assert doc["protocol"]["label_encoding"] == {"label_nc": 6, "instance_channel": False}
    assert doc["metrics"]["psnr"] is not None and "full resolution" in capsys.readouterr().out

    # the exported model takes the one-hot tensor; the export says how to make it
    from translate.export import export_translator, load_torchscript

    report = export_translator(ck / "hd", "torchscript", tmp_path / "hd.pt")
    assert report["input_nc"] == 6 and "one-hot" in report["label_usage"]
    module, meta = load_torchscript(tmp_path / "hd.pt")
    assert meta["label_encoding"] == {"label_nc": 6, "instance_channel": False}


def test_instance_maps_reach_training_and_convert(tmp_path):
    data = label_dataset(tmp_path / "d", n=2)
    for split in ("train", "test"):
        for f in (data / split / "A").glob("*.png"):
            ids = np.asarray(Image.open(f)).astype(np.uint16)
            inst = ids * 1000 + (np.arange(ids.shape[1]) >= ids.shape[1] // 2)
            (data / split / "inst").mkdir(exist_ok=True)
            Image.fromarray(inst.astype(np.uint16)).save(data / split / "inst" / f.name)
    cfg = hd_cfg(data, tmp_path / "ck", n_local_enhancers=0)
    cfg.loop.max_steps = 1
    result = train(cfg)
    t = Translator.load(result.run_dir, device="cpu")
    assert t.labels == {"label_nc": 6, "instance_channel": True} and t.channels() == (7, 3)
    with pytest.raises(ValueError, match="instance"):
        t(data / "test" / "A" / "0.png")
    out = t(data / "test" / "A" / "0.png", instance=data / "test" / "inst" / "0.png")
    assert out.shape == (64, 96, 3)
    assert main(["convert", str(result.run_dir), str(data / "test" / "A"), str(tmp_path / "o"), "--no-progress",
                 "--instance-dir", str(data / "test" / "inst")]) == 0
    assert Image.open(tmp_path / "o" / "1.png").size == (96, 64)


def test_old_translator_folders_without_a_label_record_still_load(tmp_path):
    from translate.checkpoint import CheckpointError, read_translator_json, save_translator

    g = Pix2PixHDGenerator(input_nc=3, output_nc=3, ngf=4, n_downsample_global=2, n_blocks_global=1)
    folder = save_translator(tmp_path / "t", "pix2pix", {"a2b": g}, {"input_nc": 3, "output_nc": 3,
                                                                     "size_multiple": 4})
    assert Translator.load(folder, device="cpu").labels is None
    doc = json.loads((folder / "translator.json").read_text())
    doc["preprocessing"]["labels"] = {"label_nc": 0, "instance_channel": False}
    (folder / "translator.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="preprocessing.labels"):
        read_translator_json(folder)


@pytest.mark.slow
def test_bench_measures_pix2pixhd_training_on_rectangular_class_id_maps():
    from translate.bench import run_bench

    result = run_bench(quick=True, what=["train-pix2pixhd"], label_size="96x64", label_nc=7, precisions=["fp32"],
                       num_workers=0, windows=1, warmup=0, log=lambda msg: None)
    (row,) = [r for r in result["rows"] if r["measurement"] != "peak"]  # the peaks are always probed
    assert row["measurement"] == "train-pix2pixhd" and row["value"] > 0 and row["unit"] == "img/s"
    assert row["label_size"] == [96, 64] and row["label_nc"] == 7 and row["peak_memory_bytes"] is not None
    assert result["flops"]["pix2pixhd"]["generator"] == "pix2pixhd"
    with pytest.raises(Exception, match="WIDTHxHEIGHT"):
        run_bench(quick=True, what=["train-pix2pixhd"], label_size="big", log=lambda msg: None)


def test_pix2pix_trains_on_class_id_maps_and_its_samples_show_them(tmp_path):
    data = label_dataset(tmp_path / "d", n=2)
    ck = tmp_path / "ck"
    assert main(["train", "pix2pix", "--data", str(data), "--name", "p", "--checkpoints-dir", str(ck),
                 "--label-nc", "6", "--preset", "tiny", "--load-size", "40", "--max-steps", "2"]) == 0
    grid = Image.open(sorted((ck / "p" / "samples").glob("*.png"))[-1])
    assert grid.mode == "RGB"
    t = Translator.load(ck / "p", device="cpu")
    assert t.channels() == (6, 3) and t(np.zeros((40, 56), np.uint8)).shape == (40, 56, 3)
