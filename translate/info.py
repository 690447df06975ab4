"""What a checkpoint is: ``translate info``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

from .checkpoint import read_translator_json
from .runtime import resolve_device, resolve_precision
from .training.diagnostics import LABELS, health_summary


def describe(path: Union[str, Path], storage_options: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Summarise a run folder or translator folder without loading any weights.

    ``path`` may be a URL (``s3://...``, with ``storage_options``); only its translator is described.

    Returns:
        dict with the translator description, and for run folders the run's configuration,
        command line, last logged losses and resume state.
    """
    doc = read_translator_json(path, storage_options, weights=False)
    folder = Path(doc.pop("_folder"))
    source = doc.pop("_source", None)  # a URL: described from its fetched copy, without the run folder
    out: Dict[str, Any] = {"translator": source or str(folder), **doc}
    arch = next(iter(doc["generators"].values()))["arch"]
    # what `translate convert` / serve / eval would compute in on this machine by default
    out["precision_here"] = resolve_precision(None, resolve_device(None), work="convert", arch=arch).to_json()
    run_dir = folder.parent if folder.name == "translator" and source is None else None
    if run_dir is not None and (run_dir / "run.json").is_file():
        run = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        out["run"] = {"folder": str(run_dir), "created": run.get("created"), "argv": run.get("argv"),
                      "config": run.get("config"), "resumes": len(run.get("resumes", [])),
                      "precision": (run.get("resumes") or [run])[-1].get("precision")}
        state = run_dir / "train_state" / "latest.pt"
        out["run"]["resume_state"] = str(state) if state.is_file() else None
        log = run_dir / "log.jsonl"
        if log.is_file():
            records = []
            for ln in log.read_text(encoding="utf-8").splitlines():
                try:
                    records.append(json.loads(ln))
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
            losses = [r for r in records if "event" not in r]
            out["run"]["last_log"] = losses[-1] if losses else None
            out["run"]["health"] = health_summary(records)
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
        for h in run.get("health") or []:
            when = f"steps {h['start']}-{h['end']}" if h["end"] is not None else f"since step {h['start']} (ongoing)"
            lines.append(f"health:     {LABELS.get(h['diagnostic'], h['diagnostic'])}, {when}: {h['message']}")
        if run.get("health") == []:
            lines.append("health:     no findings (docs/health.md)")
        lines.append(f"resume:     {run['resume_state'] or 'no resume state'}")
        if run.get("samples"):
            lines.append(f"samples:    {run['samples'][-1]}")
    return "\n".join(lines)
