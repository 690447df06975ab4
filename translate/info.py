"""What a checkpoint is: ``translate info``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Union

from .checkpoint import read_translator_json
from .runtime import resolve_device, resolve_precision


def describe(path: Union[str, Path]) -> Dict[str, Any]:
    """Summarise a run folder or translator folder without loading any weights.

    Returns:
        dict with the translator description, and for run folders the run's configuration,
        command line, last logged losses and resume state.
    """
    doc = read_translator_json(path)
    folder = Path(doc.pop("_folder"))
    out: Dict[str, Any] = {"translator": str(folder), **doc}
    arch = next(iter(doc["generators"].values()))["arch"]
    # what `translate convert` / serve / eval would compute in on this machine by default
    out["precision_here"] = resolve_precision(None, resolve_device(None), work="convert", arch=arch).to_json()
    run_dir = folder.parent if folder.name == "translator" else None
    if run_dir is not None and (run_dir / "run.json").is_file():
        run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        out["run"] = {"folder": str(run_dir), "created": run.get("created"), "argv": run.get("argv"),
                      "config": run.get("config"), "resumes": len(run.get("resumes", [])),
                      "precision": (run.get("resumes") or [run])[-1].get("precision")}
        state = run_dir / "train_state" / "latest.pt"
        out["run"]["resume_state"] = str(state) if state.is_file() else None
        log = run_dir / "log.jsonl"
        if log.is_file():
            lines = [ln for ln in log.read_text(encoding="utf-8").splitlines() if ln.strip()]
            try:
                out["run"]["last_log"] = json.loads(lines[-1]) if lines else None
            except json.JSONDecodeError:
                out["run"]["last_log"] = None
        samples = sorted((run_dir / "samples").glob("*.png")) if (run_dir / "samples").is_dir() else []
        out["run"]["samples"] = [str(s) for s in samples[-3:]]
    return out


def format_description(desc: Dict[str, Any]) -> str:
    prov, pre = desc["provenance"], desc["preprocessing"]
    lines = [f"translator: {desc['translator']}",
             f"method:     {desc['method']} (format {desc['format']} v{desc['format_version']})"]
    for direction, g in desc["generators"].items():
        cfg = ", ".join(f"{k}={v}" for k, v in g["config"].items())
        lines.append(f"{direction}:        {g['arch']}({cfg}), {g['params']:,} parameters, {g['file']}")
    labels = pre.get("labels")
    if labels:
        inst = " + 1 instance-boundary channel" if labels["instance_channel"] else ""
        lines.append(f"labels:     class IDs 0..{labels['label_nc'] - 1} (single-channel maps), one-hot encoded to "
                     f"{labels['label_nc']} channels{inst}; resized with nearest neighbour only")
        lines.append(f"input:      label map -> output {pre.get('output_nc')} channels, "
                     f"values in {pre.get('value_range')}, sides padded ({pre.get('pad_mode')}) to multiples of "
                     f"{pre.get('size_multiple')}")
    else:
        lines.append(f"input:      {pre.get('input_nc')} channels -> output {pre.get('output_nc')} channels, "
                     f"values in {pre.get('value_range')}, sides padded ({pre.get('pad_mode')}) to multiples of "
                     f"{pre.get('size_multiple')}")
    lines.append(f"trained on: {prov.get('data')} ({pre.get('direction')}, {pre.get('preprocess')} "
                 f"load {pre.get('load_size')} crop {pre.get('crop_size')})")
    lines.append(f"saved:      step {prov.get('step')}, epoch {prov.get('epoch')}, {prov.get('saved')}")
    if prov.get("teacher"):
        lines.append(f"teacher:    {prov['teacher']} ({prov.get('teacher_direction')}, {prov.get('teacher_arch')}): "
                     "this translator is a distilled student")
    here = desc.get("precision_here")
    if here:
        lines.append(f"precision:  converts in {here['precision']} on this machine by default (auto: {here['reason']})")
    v = prov.get("versions", {})
    lines.append(f"software:   translate {v.get('translate')}, torch {v.get('torch')}")
    run = desc.get("run")
    if run:
        lines.append(f"run:        {run['folder']} (created {run['created']}, resumed {run['resumes']} times)")
        lines.append(f"command:    {' '.join(run['argv'] or [])}")
        trained = run.get("precision")
        if trained:
            asked = "auto: " if trained.get("requested") == "auto" else ""
            lines.append(f"trained in: {trained['precision']} ({asked}{trained['reason']}; {trained.get('machine')})")
        if run.get("last_log"):
            log = run["last_log"]
            lines.append("last log:   " + ", ".join(f"{k}={v}" for k, v in log.items()))
        lines.append(f"resume:     {run['resume_state'] or 'no resume state'}")
        if run.get("samples"):
            lines.append(f"samples:    {run['samples'][-1]}")
    return "\n".join(lines)
