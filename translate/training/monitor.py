"""What a run shows while it trains: loss plot, optional TensorBoard, periodic evaluation that
keeps the best checkpoint in ``translator_best/``. Used by rank 0 only.

Evaluation itself is passed in (``translate.evaluate.evaluate`` when called through
``translate.train`` or the CLI): training sits below inference and evaluation."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Optional

from ..config import RunConfig
from ..fsutil import atomic_write_text, replace_dir
from ..data import list_splits
from .pipeline import TrainingError, data_kind
from .plot import plot_losses

LOWER_IS_BETTER = {"l1": True, "fid": True, "kid": True, "psnr": False, "ssim": False}
PLOT_EVERY_S = 30.0


class Monitor:
    """Loss plot (``losses.png``, refreshed at most every 30 s and at the end) and TensorBoard."""

    def __init__(self, run_dir: Path, cfg: RunConfig):
        self.run_dir = Path(run_dir)
        self.last_plot = 0.0
        self.tb = None
        if cfg.loop.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrainingError("--tensorboard needs the tensorboard package: pip install tensorboard") from None
            self.tb = SummaryWriter(str(self.run_dir / "tensorboard"))

    def log(self, record: Dict, force_plot: bool = False) -> None:
        if self.tb is not None:
            for key, value in record.items():
                if key not in ("step", "epoch") and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, record["step"])
        if force_plot or time.monotonic() - self.last_plot >= PLOT_EVERY_S:
            self.plot()

    def plot(self) -> None:
        log = self.run_dir / "log.jsonl"
        if log.exists():
            plot_losses(log, self.run_dir / "losses.png")
        self.last_plot = time.monotonic()

    def image(self, tag: str, png: Path, step: int) -> None:
        if self.tb is not None:
            import cv2

            img = cv2.imread(str(png), cv2.IMREAD_COLOR)
            if img is not None:
                self.tb.add_image(f"samples/{tag}", img[:, :, ::-1].copy(), step, dataformats="HWC")

    def close(self) -> None:
        self.plot()
        if self.tb is not None:
            self.tb.close()


EvaluateFn = Callable[..., Dict]
"""``evaluate(translator_dir, data_root, *, split, max_images, fid, out_dir) -> eval.json document``
(as ``translate.evaluate.evaluate``): the document's ``metrics`` maps names to values."""


class BestKeeper:
    """Evaluate ``translator/`` on a held-out split; copy it to ``translator_best/`` when it is the best
    so far by the chosen metric (the record is in ``best.json``, so it survives ``--resume``).

    Args:
        evaluate: the evaluation function (see ``EvaluateFn``).
    """

    def __init__(self, run_dir: Path, cfg: RunConfig, evaluate: EvaluateFn):
        self.run_dir, self.cfg, self.evaluate_fn = Path(run_dir), cfg, evaluate
        loop = cfg.loop
        splits = [s for s in list_splits(cfg.data.root) if s is not None]
        if loop.eval_split == "auto":
            held_out = [s for s in ("val", "test") if s in splits]
            if not held_out:
                raise TrainingError(f"--eval-every needs a held-out split (val or test) in {cfg.data.root}; "
                                    f"found: {', '.join(splits) or 'none'}. Pass --eval-split NAME.")
            self.split = held_out[0]
        else:
            self.split = loop.eval_split
        paired = data_kind(cfg) == "paired"  # a student's data are its teacher's
        self.metric = loop.eval_metric if loop.eval_metric != "auto" else ("l1" if paired else "fid")
        if not paired and self.metric in ("l1", "psnr", "ssim"):
            raise TrainingError(f"--eval-metric {self.metric} needs paired data; this {cfg.method} run trains on "
                                "unpaired data: use fid or kid")
        self.best_file = self.run_dir / "best.json"
        self.best: Optional[Dict] = json.loads(self.best_file.read_text()) if self.best_file.exists() else None

    def evaluate(self, step: int) -> Dict:
        needs_fid = self.metric in ("fid", "kid")
        doc = self.evaluate_fn(self.run_dir / "translator", self.cfg.data.root, split=self.split,
                       max_images=self.cfg.loop.eval_max_images, fid=needs_fid,
                       out_dir=self.run_dir / "eval" / f"step_{step:07d}")
        value = doc["metrics"].get(self.metric)
        record = {"step": step, "eval_split": self.split, f"eval_{self.metric}": value}
        if value is None:
            print(f"evaluation at step {step}: {self.metric} unavailable (see above); translator_best/ not updated",
                  file=sys.stderr)
            return record
        better = self.best is None or (value < self.best["value"] if LOWER_IS_BETTER[self.metric]
                                       else value > self.best["value"])
        if better:
            tmp = Path(tempfile.mkdtemp(dir=self.run_dir, prefix=".translator_best.tmp-"))
            shutil.rmtree(tmp)
            shutil.copytree(self.run_dir / "translator", tmp)
            replace_dir(tmp, self.run_dir / "translator_best")
            self.best = {"metric": self.metric, "value": value, "step": step, "split": self.split}
            atomic_write_text(self.best_file, json.dumps(self.best, indent=2) + "\n")
        print(f"evaluation at step {step} on {self.split}: {self.metric} = {value:.4g}"
              f"{' (best so far: translator_best/)' if better else ''}", file=sys.stderr)
        return record
