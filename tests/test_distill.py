"""translate distill: a student translator trained to reproduce a teacher translator."""

import json

import pytest
import torch
from conftest import make_ab_dataset, make_translator, make_unpaired_dataset

from translate import Translator
from translate.cli import main
from translate.config import RunConfig
from translate.distill import DistillError, prepare
from translate.info import describe
from translate.presets import get_preset


def student_cfg(teacher, data, ckpt, name="student", **model):
    preset = get_preset("tiny", "distill")
    return RunConfig.from_dict({
        "method": "distill", "name": name, "checkpoints_dir": str(ckpt),
        "data": {**preset["data"], "root": str(data)},
        "model": {**preset["model"], "teacher": str(teacher), **model},
        "loop": {**preset["loop"], "batch_size": 2, "max_steps": 2}})


def test_distill_cli_writes_a_student_translator_that_names_its_teacher(tmp_path, capsys):
    data = make_ab_dataset(tmp_path / "data", n=4, size=36)
    teacher = make_translator(tmp_path / "teacher")
    code = main(["distill", str(teacher), "--data", str(data), "--name", "student", "--checkpoints-dir",
                 str(tmp_path / "ck"), "--preset", "tiny", "--max-steps", "2"])
    assert code == 0
    desc = describe(tmp_path / "ck" / "student")
    assert desc["method"] == "distill" and desc["generators"]["a2b"]["arch"] == "slim_unet"
    assert desc["provenance"]["teacher"] == str((teacher / "translator").resolve())
    main(["info", str(tmp_path / "ck" / "student")])
    assert "distilled student" in capsys.readouterr().out
    # an ordinary translator: it loads and translates any size like its teacher
    out = Translator.load(tmp_path / "ck" / "student", device="cpu").translate_tensor(torch.zeros(1, 3, 40, 50))
    assert out.shape == (1, 3, 40, 50)
    # resume continues the run from its checkpoint
    code = main(["distill", str(teacher), "--data", str(data), "--name", "student", "--checkpoints-dir",
                 str(tmp_path / "ck"), "--resume", "--max-steps", "3"])
    assert code == 0 and describe(tmp_path / "ck" / "student")["provenance"]["step"] == 3


def test_student_learns_to_reproduce_the_teacher(tmp_path):
    from translate.distill import distill

    # 24 pairs at batch 2: 12 steps per epoch (each epoch ends with a sample grid and a checkpoint)
    data = make_ab_dataset(tmp_path / "data", n=24, size=36)
    teacher = make_translator(tmp_path / "teacher")
    t = Translator.load(teacher, device="cpu")
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    target = t.translate_tensor(x)

    def gap(run):
        s = Translator.load(run, device="cpu").translate_tensor(x)
        return (s - target).abs().mean().item()

    # the L1 term alone (no GAN, no feature loss: the CLI test trains with those) keeps it to a few seconds
    cfg = student_cfg(teacher, data, tmp_path / "ck", name="s0", lambda_gan=0.0, lambda_feat=0.0)
    first = gap(distill(cfg).run_dir)
    d = student_cfg(teacher, data, tmp_path / "ck", name="s1", lambda_gan=0.0, lambda_feat=0.0).to_dict()
    d["loop"].update(max_steps=48, epochs=4, epochs_decay=0, lr=2e-3, ema_decay=0.0, log_every=12)
    later = gap(distill(RunConfig.from_dict(d)).run_dir)
    assert later < 0.6 * first, (first, later)


def test_cyclegan_teacher_needs_a_direction_and_trains_on_unpaired_data(tmp_path):
    data = make_unpaired_dataset(tmp_path / "data", size=36)
    teacher = make_translator(tmp_path / "teacher", method="cyclegan")
    with pytest.raises(DistillError, match="choose the one to distill with --teacher-direction"):
        prepare(student_cfg(teacher, data, tmp_path / "ck"))
    cfg = prepare(student_cfg(teacher, data, tmp_path / "ck", teacher_direction="b2a", netG="mobile_resnet",
                              n_blocks=2))
    assert cfg.model.paired is False and cfg.data.direction == "BtoA"
    from translate.distill import distill

    run = distill(cfg).run_dir
    doc = json.loads((run / "translator" / "translator.json").read_text())
    assert list(doc["generators"]) == ["b2a"] and doc["generators"]["b2a"]["arch"] == "mobile_resnet"
    assert doc["provenance"]["teacher_direction"] == "b2a"


def test_missing_teacher_is_a_clear_error(tmp_path, capsys):
    data = make_ab_dataset(tmp_path / "data", n=2, size=36)
    code = main(["distill", str(tmp_path / "nope"), "--data", str(data), "--name", "s",
                 "--checkpoints-dir", str(tmp_path / "ck")])
    assert code == 2
    assert "nope does not exist" in capsys.readouterr().err
    assert not (tmp_path / "ck" / "s").exists()


def test_eval_during_distillation_follows_the_teachers_data(tmp_path):
    """A CycleGAN teacher's student trains on unpaired domains: --eval-every picks an unpaired
    metric (fid) and refuses paired ones, as for the teacher's own runs."""
    from translate.training.monitor import BestKeeper
    from translate.training.pipeline import TrainingError

    data = make_unpaired_dataset(tmp_path / "data", size=36)
    teacher = make_translator(tmp_path / "teacher", method="cyclegan")
    cfg = prepare(student_cfg(teacher, data, tmp_path / "ck", teacher_direction="a2b", netG="mobile_resnet",
                              n_blocks=2))
    d = cfg.to_dict()
    d["loop"].update(eval_every=1, eval_split="train")
    keeper = BestKeeper(tmp_path / "ck" / "student", RunConfig.from_dict(d), evaluate=None)
    assert keeper.metric == "fid"
    d["loop"]["eval_metric"] = "l1"
    with pytest.raises(TrainingError, match="needs paired data"):
        BestKeeper(tmp_path / "ck" / "student", RunConfig.from_dict(d), evaluate=None)
