"""Resume state: ``train_state/latest.pt``, and the run description ``run.json``.

Only tensors and plain Python values are stored, so the file loads with
``torch.load(weights_only=True)`` (no arbitrary code runs when resuming).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch

from ..checkpoint import versions
from ..config import RunConfig, swap_domains
from ..errors import UserError
from ..fsutil import atomic_torch_save, atomic_write_text

STATE_VERSION = 2  # 2: net names name dataset domains (a BtoA pix2pix run has gen_b2a, disc_a)
STATE_FILE = Path("train_state") / "latest.pt"


class ResumeError(UserError):
    """The saved state cannot continue this run; the message says why and what to do."""


def rng_state() -> Dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def save_state(run_dir: Path, *, step: int, epoch: int, step_in_epoch: int, model_config: Dict[str, Any],
               nets, optimizers, schedulers, scalers, method_states, rng_states, ema=None,
               precision: Optional[str] = None) -> Path:
    """Write the resume state atomically; returns its path.

    ``method_states`` and ``rng_states`` hold one entry per process (rank order): under torchrun
    each rank has its own random stream and image pools, and gets them back on resume.
    ``precision`` is what the steps so far computed in ("fp32", "bf16", "fp16"): a resume in
    another one is allowed and says so.
    """
    state = {
        "version": STATE_VERSION,
        "step": step,
        "epoch": epoch,
        "step_in_epoch": step_in_epoch,
        "model_config": model_config,
        "nets": {name: net.state_dict() for name, net in nets.items()},
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "schedulers": {name: s.state_dict() for name, s in schedulers.items()},
        "scalers": scalers.state_dict(),
        "method": method_states,
        "rng": rng_states,
    }
    if precision is not None:
        state["precision"] = precision
    if ema is not None:
        state["ema"] = ema  # averaged generator weights, name -> state dict
    path = Path(run_dir) / STATE_FILE
    atomic_torch_save(state, path)
    return path


def load_state(run_dir: Path) -> Dict[str, Any]:
    path = Path(run_dir) / STATE_FILE
    if not path.is_file():
        raise ResumeError(f"nothing to resume in {run_dir}: {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt or foreign file
        raise ResumeError(f"{path} cannot be loaded ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("version") not in (1, STATE_VERSION):
        raise ResumeError(f"{path} is not a resume state of this version of translate")
    if state["version"] == 1 and _data_direction(run_dir) == "BtoA":
        # Version 1 named the nets of a BtoA run as if it were AtoB (its B->A generator was
        # gen_a2b): rename them to the domains they translate and judge.
        for key in ("nets", "ema"):
            if state.get(key):
                state[key] = {swap_domains(name): value for name, value in state[key].items()}
    state["version"] = STATE_VERSION
    return state


def _data_direction(run_dir: Path) -> str:
    try:
        doc = json.loads((Path(run_dir) / "run.json").read_text(encoding="utf-8"))
        return doc["config"]["data"]["direction"]
    except (OSError, ValueError, KeyError, TypeError):
        return "AtoB"


def check_same_model(saved: Dict[str, Any], current: Dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume when the architecture or losses differ from the saved run."""
    diffs = [f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}"
             for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
    if diffs:
        raise ResumeError(
            f"cannot resume {run_dir} with a different model: " + "; ".join(diffs)
            + ". Resume without these options (the saved configuration is used), "
            "or start a new run with another --name."
        )


def write_run_json(run_dir: Path, cfg: RunConfig, argv: Optional[Sequence[str]], device, resume: bool, step: int,
                   world_size: int = 1, precision: Optional[Dict[str, Any]] = None) -> None:
    """Write ``run.json`` (configuration, command line, versions); a resume appends an entry.

    ``precision`` is the chosen precision (``PrecisionChoice.to_json()``: requested, precision,
    reason, machine); ``config.loop.precision`` keeps what was asked for (e.g. "auto").
    """
    path = run_dir / "run.json"
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if resume and path.exists():
        doc = json.loads(path.read_text(encoding="utf-8"))
        doc.setdefault("resumes", []).append({"argv": list(argv or []), "step": step, "time": now,
                                              "device": str(device), "processes": world_size,
                                              "precision": precision, "config": cfg.to_dict()})
    else:
        doc = {"config": cfg.to_dict(), "argv": list(argv or []), "created": now, "device": str(device),
               "processes": world_size, "precision": precision, "versions": versions()}
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


def load_run_config(run_dir: Path) -> RunConfig:
    """The configuration a run was started with (``run.json``), for ``--resume``."""
    path = Path(run_dir) / "run.json"
    if not path.is_file():
        raise ResumeError(f"nothing to resume: {path} does not exist")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return RunConfig.from_dict(doc["config"])
    except (json.JSONDecodeError, KeyError) as e:
        raise ResumeError(f"{path} is not a valid run description ({e})") from None
