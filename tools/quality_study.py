#!/usr/bin/env python3
"""Train one recipe with several seeds, evaluate each run, report mean ± std of every metric.

A single GAN run is one sample of a noisy process: two seeds of the same recipe can differ by
more than two recipes do. Every quality claim of this project is therefore made with this
script: it runs ``translate train`` once per seed, ``translate eval`` on each result, and prints
(and writes) the distribution.

    python tools/quality_study.py run --out studies/p2p_base --data ../shared/data/facades \\
        --method pix2pix --seeds 0 1 2 --steps 2000 --split test --size 128 --jobs 2 -- \\
        --direction BtoA --netG unet_128 --load-size 142 --crop-size 128

Everything after ``--`` goes to ``translate train`` unchanged. ``--val-from-train K`` carves a
validation split out of the training folder (the last K files, by name, of layout ab or of
the a_b / unpaired folders) so recipe choices are never made on the test split: training then
uses the other files and ``--split val`` scores on the carved ones.

A study is resumable: finished runs and evaluations are reused, an interrupted run continues
with ``--resume``. ``report`` prints several finished studies side by side:

    python tools/quality_study.py report studies/p2p_base studies/p2p_pilresize

Cost on the 2-core machines of this project (AMD EPYC Zen 3, AVX2, idle): a pix2pix unet_128
step at batch 1 takes 0.38 s with both cores (2.6 steps/s) and 0.60 s on one core (1.66 steps/s),
so one 2000-step run is ~13 minutes and three seeds one after the other ~39 minutes;
``translate eval`` of 100 images at 128 x 128 with FID/KID takes ~25 s. ``--jobs`` runs seeds side
by side with ``--threads`` each (default: cores / jobs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from translate.data.discover import detect_layout, list_images

METRICS = ("l1", "psnr", "ssim", "fid", "kid")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "l1": False, "fid": False, "kid": False}


def translate_exe() -> List[str]:
    """The ``translate`` command of the running interpreter's environment."""
    exe = Path(sys.executable).with_name("translate")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "translate"]


# ------------------------------------------------------------------------------ data


def carve_validation(data: Path, split: str, count: int, out: Path) -> Path:
    """A dataset folder whose ``train`` split holds all but the last ``count`` files of
    ``data/split`` and whose ``val`` split holds those (symlinks; nothing is copied).

    Works for layout ab (one folder of A|B files), a_b (``A/`` and ``B/``, matched by name)
    and unpaired (``trainA``/``trainB``: the last ``count`` of each side).
    """
    layout = detect_layout(data, split, "auto")
    root = out / "data"
    if root.exists():
        shutil.rmtree(root)

    def link(files: Sequence[Path], src_root: Path, dst: Path) -> None:
        for f in files:
            target = dst / f.relative_to(src_root)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f.resolve(), target)

    def divide(files: List[Path]):
        if len(files) <= count:
            raise SystemExit(f"error: {len(files)} files, too few to hold out {count} for validation")
        return files[:-count], files[-count:]

    if layout.kind == "ab":
        train, val = divide(list_images(layout.folder))
        link(train, layout.folder, root / "train")
        link(val, layout.folder, root / "val")
    elif layout.kind == "a_b":
        files_a = list_images(layout.folder_a)
        keys = sorted({f.relative_to(layout.folder_a).with_suffix("").as_posix() for f in files_a})
        held = set(keys[-count:])
        for side, folder in (("A", layout.folder_a), ("B", layout.folder_b)):
            for f in list_images(folder):
                which = "val" if f.relative_to(folder).with_suffix("").as_posix() in held else "train"
                link([f], folder, root / which / side)
    else:  # unpaired
        for side, folder in (("A", layout.folder_a), ("B", layout.folder_b)):
            train, val = divide(list_images(folder))
            link(train, folder, root / f"train{side}")
            link(val, folder, root / f"val{side}")
    return root


# ------------------------------------------------------------------------------ runs


def run_logged(cmd: List[str], log: Path, env: Dict[str, str]) -> int:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        return subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)


def trained_steps(run: Path) -> int:
    info = run / "translator" / "translator.json"
    if not info.exists():
        return 0
    doc = json.loads(info.read_text(encoding="utf-8"))
    return int(doc.get("provenance", {}).get("step", 0))


def write_last_step_translator(run: Path) -> Path:
    """``run/translator_raw``: the run's translator with the weights of the last step instead of
    their moving average (``--ema-decay``), so one training run scores both."""
    import torch

    from translate.checkpoint import load_generator, read_translator_json, save_translator

    doc = read_translator_json(run / "translator")
    state = torch.load(run / "train_state" / "latest.pt", map_location="cpu", weights_only=True)
    nets = {}
    for direction in doc["generators"]:
        net = load_generator(run / "translator", direction)
        net.load_state_dict(state["nets"][f"gen_{direction}"])
        nets[direction] = net
    return save_translator(run / "translator_raw", doc["method"], nets, doc["preprocessing"],
                           dict(doc.get("provenance", {}), weights="last step (no moving average)"))


def evaluate(args, target: Path, ev_dir: Path, data: Path, log: Path, env) -> Optional[Dict]:
    ev_json = ev_dir / "eval.json"
    if not ev_json.exists():
        cmd = translate_exe() + ["eval", str(target), "--data", str(data), "--split", args.split,
                                 "--out", str(ev_dir)]
        if args.size:
            cmd += ["--size", str(args.size)]
        if args.direction:
            cmd += ["--direction", args.direction]
        if args.no_fid:
            cmd += ["--no-fid"]
        if run_logged(cmd, log, env) != 0 or not ev_json.exists():
            return None
    metrics = json.loads(ev_json.read_text(encoding="utf-8"))["metrics"]
    return {k: metrics.get(k) for k in METRICS}


def one_seed(args, data: Path, seed: int, threads: int) -> Dict:
    """Train (or resume, or reuse) the run of one seed, then evaluate it."""
    runs = args.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    name = f"seed{seed}"
    run = runs / name
    log = runs / f"{name}.log"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    timing_file = run / "study_timing.json"
    timing = json.loads(timing_file.read_text()) if timing_file.exists() else {"train_seconds": 0.0}
    if trained_steps(run) < args.steps:
        cmd = translate_exe() + ["train", args.method, "--data", str(data), "--name", name,
                                 "--checkpoints-dir", str(runs), "--seed", str(seed),
                                 "--max-steps", str(args.steps)]
        if (run / "train_state" / "latest.pt").exists():
            cmd += ["--resume"]
        else:
            cmd += list(args.train_args)
        start = time.perf_counter()
        rc = run_logged(cmd, log, env)
        timing["train_seconds"] += time.perf_counter() - start
        timing["threads"] = threads
        if run.exists():
            timing_file.write_text(json.dumps(timing))
        if rc != 0 or trained_steps(run) < args.steps:
            return {"seed": seed, "error": f"training failed (exit {rc}); see {log}"}
    metrics = evaluate(args, run, run / f"study_eval_{args.split}", data, log, env)
    if metrics is None:
        return {"seed": seed, "error": f"evaluation failed; see {log}"}
    result = {"seed": seed, "metrics": metrics,
              "train_seconds": round(timing["train_seconds"], 1), "threads": timing.get("threads")}
    if args.also_last_step:
        if not (run / "translator_raw").exists():
            write_last_step_translator(run)
        raw = evaluate(args, run / "translator_raw", run / f"study_eval_{args.split}_raw", data, log, env)
        if raw is None:
            return {"seed": seed, "error": f"evaluation of the last-step weights failed; see {log}"}
        result["metrics_last_step"] = raw
    return result


def mean_std(values: Sequence[float]):
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)  # sample std (ddof 1)
    return mean, math.sqrt(var)


def summarise(results: List[Dict], key: str = "metrics") -> Dict:
    ok = [r for r in results if key in r]
    summary = {}
    for m in METRICS + ("train_seconds",):
        vals = [r[key][m] if m in METRICS else r[m] for r in ok]
        mean, std = mean_std(vals)
        summary[m] = {"mean": mean, "std": std, "values": vals}
    return summary


def fmt(stat: Dict, digits: int) -> str:
    if stat["mean"] is None:
        return "n/a"
    if stat["std"] is None:
        return f"{stat['mean']:.{digits}f}"
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


DIGITS = {"l1": 4, "psnr": 2, "ssim": 3, "fid": 1, "kid": 3, "train_seconds": 0}
HEADER = "| study | seeds | L1 ↓ | PSNR ↑ | SSIM ↑ | FID ↓ | KID ↓ | train s |"


def table_row(doc: Dict) -> str:
    s = doc["summary"]
    cells = [fmt(s[m], DIGITS[m]) for m in METRICS + ("train_seconds",)]
    n = sum(1 for r in doc["results"] if "metrics" in r)
    return f"| {doc['label']} | {n} | " + " | ".join(cells) + " |"


def print_table(docs: List[Dict]) -> None:
    print(HEADER)
    print("|" + "---|" * 8)
    for doc in docs:
        print(table_row(doc))
        if doc.get("summary_last_step"):
            print(table_row({**doc, "label": doc["label"] + ", last-step weights",
                             "summary": doc["summary_last_step"]}))


def cmd_run(args) -> int:
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).resolve()
    if args.val_from_train:
        data = carve_validation(data, "train", args.val_from_train, args.out)
    jobs = max(1, min(args.jobs, len(args.seeds)))
    threads = args.threads or max(1, (os.cpu_count() or 1) // jobs)
    print(f"study {args.out.name}: {args.method}, seeds {args.seeds}, {args.steps} steps, "
          f"{jobs} job(s) x {threads} thread(s); logs in {args.out / 'runs'}", file=sys.stderr)
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(lambda s: one_seed(args, data, s, threads), args.seeds))
    doc = {"label": args.label or args.out.name, "method": args.method, "steps": args.steps,
           "split": args.split, "size": args.size, "data": str(Path(args.data).resolve()),
           "val_from_train": args.val_from_train, "train_args": list(args.train_args),
           "jobs": jobs, "threads_per_job": threads, "results": results,
           "summary": summarise(results)}
    if args.also_last_step:
        doc["summary_last_step"] = summarise(results, "metrics_last_step")
        paired = [r for r in results if "metrics_last_step" in r]
        doc["paired_difference"] = {  # moving average minus last step, per seed
            m: dict(zip(("mean", "std"), mean_std([r["metrics"][m] - r["metrics_last_step"][m]
                                                   for r in paired
                                                   if r["metrics"][m] is not None
                                                   and r["metrics_last_step"][m] is not None])))
            for m in METRICS}
    (args.out / "study.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print_table([doc])
    for m, d in doc.get("paired_difference", {}).items():
        if d["mean"] is not None:
            spread = f" ± {d['std']:.4g}" if d["std"] is not None else ""
            print(f"paired difference (average - last step) {m}: {d['mean']:+.4g}{spread}", file=sys.stderr)
    for r in results:
        if "error" in r:
            print(f"seed {r['seed']}: {r['error']}", file=sys.stderr)
        else:
            vals = ", ".join(f"{k} {v:.4g}" for k, v in r["metrics"].items() if v is not None)
            print(f"seed {r['seed']}: {vals}; train {r['train_seconds']:.0f} s", file=sys.stderr)
    return 1 if any("error" in r for r in results) else 0


def cmd_report(args) -> int:
    docs = []
    for folder in args.studies:
        path = Path(folder) / "study.json"
        if not path.exists():
            print(f"error: {path} does not exist (run the study first)", file=sys.stderr)
            return 2
        docs.append(json.loads(path.read_text(encoding="utf-8")))
    print_table(docs)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args: List[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, train_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train and evaluate one recipe over several seeds")
    r.add_argument("--out", type=Path, required=True, help="study folder (runs, study.json)")
    r.add_argument("--data", required=True, help="dataset folder")
    r.add_argument("--method", default="pix2pix", help="training method (default: pix2pix)")
    r.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    r.add_argument("--steps", type=int, required=True, help="training steps per seed")
    r.add_argument("--split", default="test", help="split to evaluate on (default: test)")
    r.add_argument("--size", type=int, default=None, help="evaluation resolution (translate eval --size)")
    r.add_argument("--direction", default=None, help="generator to evaluate (a2b|b2a)")
    r.add_argument("--no-fid", action="store_true", help="skip FID/KID (paired metrics only)")
    r.add_argument("--val-from-train", type=int, default=0, metavar="K",
                   help="hold out the last K training files as split 'val' (then use --split val)")
    r.add_argument("--jobs", type=int, default=1, help="runs trained at once (default: 1)")
    r.add_argument("--threads", type=int, default=0, help="threads per run (default: cores / jobs)")
    r.add_argument("--also-last-step", action="store_true",
                   help="with --ema-decay in the recipe: also score each run's last-step weights "
                        "(translator_raw/), a paired comparison on the same training runs")
    r.add_argument("--label", default=None, help="name of the study in tables (default: folder name)")
    rep = sub.add_parser("report", help="print finished studies side by side")
    rep.add_argument("studies", nargs="+", help="study folders")
    args = p.parse_args(argv)
    if args.cmd == "run":
        args.train_args = train_args
        return cmd_run(args)
    return cmd_report(args)


if __name__ == "__main__":
    sys.exit(main())
