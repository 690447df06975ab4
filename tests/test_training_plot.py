"""losses.png: step ticks, raw and smoothed lines, log scale for losses spanning decades."""

import json

import numpy as np

from translate.training.plot import ema, loss_figure, plot_losses, wants_log_scale


def _records(n=60):
    rng = np.random.default_rng(0)
    recs = []
    for s in range(1, n + 1):
        r = {"step": s * 10, "epoch": 1, "g_gan": 0.7 + 0.1 * rng.standard_normal(),
             "g_l1": 10.0 ** (-3 * s / n) * 50, "lr": 2e-4, "images_per_s": 3.0}
        if s % 20 == 0:
            r = {"step": s * 10, "eval_split": "test", "eval_l1": 0.5 - s / 1000}
        recs.append(r)
    return recs


def test_ema_is_debiased_and_smooths():
    assert ema([4.0])[0] == 4.0  # not pulled towards zero
    noisy = np.tile([0.0, 1.0], 50)
    smooth = ema(noisy, 0.9)
    assert np.std(smooth[20:]) < 0.2 * np.std(noisy) and abs(smooth[-20:].mean() - 0.5) < 0.1


def test_log_scale_only_for_positive_values_spanning_decades():
    assert wants_log_scale([100.0, 1.0, 0.05])
    assert not wants_log_scale([1.0, 0.5, 0.2])
    assert not wants_log_scale([100.0, -1.0, 0.05])  # hinge / wgan losses go negative


def test_figure_has_step_ticks_raw_and_smoothed_lines(tmp_path):
    fig = loss_figure(_records())
    axes = {ax.get_ylabel(): ax for ax in fig.axes}
    assert list(axes) == ["g_gan", "g_l1", "eval_l1"]  # lr, epoch, images/s and strings are left out
    assert axes["g_l1"].get_yscale() == "log" and axes["g_gan"].get_yscale() == "linear"
    assert [line.get_label() for line in axes["g_gan"].get_lines()] == ["raw", "EMA 0.9"]
    raw, smooth = (line.get_ydata() for line in axes["g_gan"].get_lines())
    assert np.std(np.diff(smooth)) < np.std(np.diff(raw))
    assert len(axes["eval_l1"].get_lines()[0].get_xdata()) == 3  # the evaluation points
    bottom = fig.axes[-1]
    assert bottom.get_xlabel() == "step"
    ticks = [t for t in bottom.get_xticks() if 10 <= t <= 600]
    assert len(ticks) >= 3 and all(float(t).is_integer() for t in ticks)


def test_plot_losses_writes_a_png(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(r) + "\n" for r in _records()) + '{"step": 7, "g_g')  # a cut line
    out = plot_losses(log, tmp_path / "sub" / "losses.png", width=600, panel_height=150)
    from translate.data.io import read_image

    img = read_image(out)
    assert img.shape[:2] == (450, 600) and img.std() > 10
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["losses.png"]
