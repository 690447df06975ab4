"""Run outputs written during training: log.jsonl lines and sample grids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import torch

from ..data.io import write_image
from ..fsutil import atomic_write_text


class JsonlLog:
    """Append-only ``log.jsonl``: one JSON object per logged step, flushed at once."""

    def __init__(self, path: Path, resume_step: int = 0):
        self.path = Path(path)
        if resume_step and self.path.exists():
            # Drop lines logged after the checkpoint we resume from: they will be logged again.
            kept = []
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line).get("step", 0) <= resume_step:
                        kept.append(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
            atomic_write_text(self.path, "".join(k + "\n" for k in kept))
        elif not resume_step and self.path.exists():
            self.path.unlink()
        self._f = open(self.path, "a", encoding="utf-8")

    def write(self, record: Dict) -> None:
        self._f.write(json.dumps(record) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def save_grid(columns: List[torch.Tensor], path: Path) -> Path:
    """Save rows of images side by side: row i = columns[0][i] | columns[1][i] | ...

    Args:
        columns: tensors (B, C, H, W) in [-1, 1]; 1-channel ones are shown as gray.
        path: PNG file, written atomically.
    """
    from torchvision.utils import make_grid

    cols = [c.detach().float().cpu() for c in columns]
    cols = [c.expand(-1, 3, -1, -1) if c.shape[1] == 1 else c[:, :3] for c in cols]
    tiles = torch.stack(cols, 1).flatten(0, 1)  # (B * ncols, 3, H, W), row-major
    grid = make_grid(tiles, nrow=len(cols), padding=2, normalize=False, pad_value=1.0)
    img = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    write_image(path, img)
    return Path(path)
