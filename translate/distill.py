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

from . import train
from .checkpoint import CheckpointError, read_translator_json
from .config import RunConfig
from .methods import get_method
from .methods.distill import Distill, DistillError

__all__ = ["DistillError", "distill", "prepare"]


def prepare(cfg: RunConfig) -> RunConfig:
    """The run configuration ``cfg`` (method "distill") completed from its teacher's folder.

    Raises:
        DistillError: no teacher, or an ambiguous / missing teacher direction.
        translate.checkpoint.CheckpointError: the teacher folder is not a translator.
    """
    if get_method(cfg.method) is not Distill:
        raise DistillError(f"expected a {Distill.name} configuration, got method {cfg.method!r}")
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
                      paired=teacher_data_kind(doc) == "paired")
    d["data"].update(direction="BtoA" if direction == "b2a" else "AtoB", input_nc=config["input_nc"],
                     output_nc=config["output_nc"])
    return RunConfig.from_dict(d)


def teacher_data_kind(doc: dict) -> str:
    """"paired" or "unpaired": the data the translator ``doc`` (``translator.json``) was trained on,
    as its method declares (a student's: its own teacher's, followed through its provenance)."""
    method = get_method(doc["method"])
    if method.data != "teacher":
        return method.data
    teacher = doc["provenance"].get("teacher")
    try:
        return teacher_data_kind(read_translator_json(teacher)) if teacher else "paired"
    except CheckpointError as e:
        raise DistillError(f"{doc['_folder']} is a student whose teacher cannot be read ({e}); distill from a "
                           "translator trained by translate train") from None


def distill(cfg: RunConfig, resume: bool = False, argv: Optional[Sequence[str]] = None):
    """Train the student ``cfg`` describes (see :func:`prepare`); returns the loop's ``TrainResult``."""
    return train(prepare(cfg), resume=resume, argv=argv)
