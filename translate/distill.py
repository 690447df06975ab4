"""``translate distill``: train a small student generator to reproduce a trained translator.

The training itself is the ``distill`` method (:mod:`translate.methods.distill`) in the one
training loop, so logging, sample grids, checkpoints, ``--resume`` and ``--max-minutes`` work as
for ``translate train``. This module fills in what the teacher decides: which of its generators
is distilled, the data direction and channels, and whether the data are aligned pairs (pix2pix
teachers) or unpaired domains (CycleGAN teachers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from .checkpoint import read_translator_json
from .config import RunConfig
from .methods.distill import DistillError

__all__ = ["DistillError", "distill", "prepare"]


def prepare(cfg: RunConfig) -> RunConfig:
    """The run configuration ``cfg`` (method "distill") completed from its teacher's folder.

    Raises:
        DistillError: no teacher, or an ambiguous / missing teacher direction.
        translate.checkpoint.CheckpointError: the teacher folder is not a translator.
    """
    if cfg.method != "distill":
        raise DistillError(f"expected a distill configuration, got method {cfg.method!r}")
    if not cfg.model.teacher:
        raise DistillError("no teacher: give the teacher's translator folder (translate distill TEACHER ...)")
    doc = read_translator_json(cfg.model.teacher)
    gens = doc["generators"]
    direction = cfg.model.teacher_direction
    if direction == "auto":
        if len(gens) != 1:
            raise DistillError(f"the teacher {doc['_folder']} has the generators {' and '.join(gens)}; choose the "
                               "one to distill with --teacher-direction a2b or b2a")
        direction = next(iter(gens))
    elif direction not in gens:
        raise DistillError(f"the teacher {doc['_folder']} has no {direction!r} generator; it has "
                           f"{', '.join(gens)}")
    config = gens[direction]["config"]
    d = cfg.to_dict()
    d["model"].update(teacher=str(Path(doc["_folder"]).resolve()), teacher_direction=direction,
                      paired=doc["method"] != "cyclegan")
    d["data"].update(direction="BtoA" if direction == "b2a" else "AtoB", input_nc=config["input_nc"],
                     output_nc=config["output_nc"])
    return RunConfig.from_dict(d)


def distill(cfg: RunConfig, resume: bool = False, argv: Optional[Sequence[str]] = None):
    """Train the student ``cfg`` describes (see :func:`prepare`); returns the loop's ``TrainResult``."""
    from . import train

    return train(prepare(cfg), resume=resume, argv=argv)
