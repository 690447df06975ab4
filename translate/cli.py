"""The ``translate`` command line: thin adapters over the public functions.

Exit status: 0 when everything asked for succeeded, 1 when a check found problems, 2 for
usage/configuration/data errors, 128 + N when stopped by signal N (after saving).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing
from pathlib import Path
from typing import List, Optional

from . import train
from .bench import BenchError, add_bench_parser
from .config import (ConfigError, DataConfig, RunConfig, apply_overrides, default_config, option_flag, parse_value,
                     section_classes)
from .conversion.plan import DEFAULT_BATCH_SIZE
from .convert import convert_folder
from .data import check_data, format_report
from .data.download_cli import add_datasets_parser
from .demo import run_demo
from .distill import distill
from .distributed import launched_by_torchrun
from .errors import DirectionError, UserError
from .evaluate import add_eval_parser
from .export import add_export_parser
from .info import describe, format_description
from .methods import get_method, list_methods
from .presets import get_preset, list_presets
from .runtime import AUTO, PRECISION_CHOICES
from .runtimes import list_backends
from .serve import add_serve_parser
from .storage import parse_storage_options
from .training.state import load_run_config
from .translator import DEFAULT_TILE_OVERLAP, DEFAULT_TILE_PIXELS
from .version import __version__
from .video_options import VideoOptions, parse_frames


def _parse_as(hint):
    """An argparse ``type`` that parses a string into a config field's type (``none`` for Optional)."""
    def parse(text: str):
        try:
            return parse_value(text, hint)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    parse.__name__ = getattr(typing.get_args(hint)[0] if typing.get_args(hint) else hint, "__name__", "value")
    return parse


def train_option_fields(method: str):
    """(config key, field, type) for every option of ``translate train METHOD``, in --help order.

    The options are generated from the configuration dataclasses' field metadata
    (:func:`translate.options.option`): a new field gets its option without a second edit.
    """
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        if "help" in f.metadata:
            yield f.name, f, hints[f.name]
    for section, cls in section_classes(method).items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            yield f"{section}.{f.name}", f, hints[f.name]


def _add_train_parser(sub, method: str):
    """The parser of the command that trains ``method``: its help and options are the method's own
    (:mod:`translate.methods`), with the data, loop and run options every method shares."""
    cls = get_method(method)
    description = cls.description or f"Train {method} ({cls.help})."
    p = sub.add_parser(method, help=cls.help, description=description + " Options left out take their value from --preset, then the defaults shown; "
                       "with --resume, from the run's saved configuration.")
    p.add_argument("--resume", action="store_true",
                   help="continue the run NAME from its last checkpoint, with its saved configuration")
    p.add_argument("--dry-run", action="store_true",
                   help="build the run and time a few real steps at this size and batch: print parameters per "
                        "net, peak memory, seconds per step and the time to the end; write nothing")
    p.add_argument("--preset", choices=list_presets(),
                   help="named recipe applied before the options: " + ", ".join(list_presets()))
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any configuration value, e.g. --set model.lambda_l1=50 (repeatable)")
    # An option that is not given leaves no attribute (SUPPRESS), so that presets, run.json (on
    # --resume) and --set compose predictably, and `--max-steps none` can still clear a value;
    # the help shows the configuration default instead.
    for key, f, hint in train_option_fields(method):
        flag = option_flag(f)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        help_text = f.metadata["help"].replace("%", "%%")
        kw = {"dest": key, "default": argparse.SUPPRESS}
        if f.metadata.get("required"):
            kw["required"] = True
        elif hint is bool:
            help_text += f" (default: {'on' if default else 'off'})"
        else:
            help_text += f" (default: {default})"
        if hint is bool:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _parse_as(hint)
            if f.metadata.get("choices"):
                kw["choices"] = f.metadata["choices"]
            else:
                kw["metavar"] = flag.replace("-", "_").upper()
        p.add_argument("--" + flag, help=help_text, **kw)
    p.set_defaults(func=_cmd_train, method=method)
    return p


def add_storage_option(parser: argparse.ArgumentParser) -> None:
    """``--storage-option KEY=VALUE`` (repeatable): fsspec options for URL locations."""
    parser.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                        help="option for s3:// gs:// az:// locations (repeatable), e.g. endpoint_url=http://host:9000 "
                             "or anon=true; credentials also come from the environment (AWS_*, "
                             "GOOGLE_APPLICATION_CREDENTIALS, AZURE_STORAGE_*)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="translate", description="Image-to-image translation: train ("
                                    f"{', '.join(list_methods('train'))}); convert, evaluate, export, distill and "
                                    "serve translators.")
    parser.add_argument("--version", action="version", version=f"translate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, help="what to do")

    train = sub.add_parser("train", help="train a model", description="Train a model.")
    tsub = train.add_subparsers(dest="method", metavar="METHOD", required=True, help="the method")
    for method in list_methods("train"):
        _add_train_parser(tsub, method)

    (student,) = list_methods("distill")  # the method of `translate distill`
    dist = _add_train_parser(sub, student)
    dist.add_argument("model.teacher", metavar="TEACHER", help="the teacher: a translator folder or its run folder")
    dist.set_defaults(func=_cmd_distill)

    info = sub.add_parser("info", help="describe a checkpoint", description="Describe a checkpoint.")
    info.add_argument("checkpoint", help="a run folder or its translator/ folder")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_storage_option(info)
    info.set_defaults(func=_cmd_info)

    _add_convert_parser(sub)

    add_export_parser(sub)
    add_eval_parser(sub)
    add_bench_parser(sub)
    add_serve_parser(sub)

    _add_check_data_parser(sub)
    add_datasets_parser(sub)
    _add_demo_parser(sub)
    return parser


def _add_convert_parser(sub) -> None:
    """The ``convert`` subcommand: what to convert and how (here), the engine, the runtime."""
    conv = sub.add_parser(
        "convert", help="translate a folder of images with a trained checkpoint",
        description="Translate every image under INPUT into OUTPUT, mirroring relative paths. Existing outputs "
                    "are skipped (re-run to finish an interrupted job); bad files are listed in "
                    "OUTPUT/failed.jsonl and make the exit status 1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    conv.add_argument("checkpoint", help="a run folder or its translator/ folder (a path or an s3:// gs:// az:// URL)")
    conv.add_argument("input", help="image folder (recursive) or one image file, a path or URL; or - to read "
                      "local paths from stdin")
    conv.add_argument("output", help="output folder (created), a path or URL")
    conv.add_argument("--direction", choices=["a2b", "b2a"], help="which generator (required for CycleGAN)")
    conv.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                      help="images per network call (same-size images)")
    conv.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    conv.add_argument("--precision", default=AUTO, choices=PRECISION_CHOICES,
                      help="inference precision; auto: bf16 where the device runs it natively and it was not "
                           "measured slower for this generator, else fp32")
    conv.add_argument("--ext", default="same", choices=["same", "png", "jpg", "webp", "tif"],
                      help="output format; same keeps each input's format")
    conv.add_argument("--quality", type=int, default=None, help="JPEG/WebP quality 1-100 (default: 95 / lossless)")
    conv.add_argument("--overwrite", action="store_true", help="replace existing outputs instead of skipping them")
    conv.add_argument("--in-place-ok", action="store_true",
                      help="allow OUTPUT equal to or inside INPUT (input files are still never replaced)")
    conv.add_argument("--resize", type=int, default=None, metavar="SIDE",
                      help="translate at SIDE x SIDE (e.g. the training size) and resize back; default: native size")
    conv.add_argument("--tile-pixels", type=int, default=DEFAULT_TILE_PIXELS,
                      help="images with more pixels are translated in overlapping tiles")
    conv.add_argument("--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP, help="tile overlap in pixels (feathered)")
    conv.add_argument("--max-pixels", type=int, default=None,
                      help="refuse images with more pixels than this (decompression-bomb guard; default 2^28)")
    conv.add_argument("--no-progress", action="store_true", help="no progress bar")
    conv.add_argument("--instance-dir", default=None,
                      help="instance-ID maps matched to the inputs by name (label translators trained with them)")
    _add_convert_engine_options(conv)
    _add_convert_runtime_options(conv)
    _add_video_options(conv)
    conv.set_defaults(func=_cmd_convert)


def _add_convert_engine_options(conv) -> None:
    """Where the conversion runs (this process, torchrun's processes or a Ray actor pool) and the
    storage options of URL locations."""
    conv.add_argument("--workers", type=int, default=None,
                      help="local engine: decode/encode threads (default: from CPU count); ray engine: actors in "
                           "the pool (default: cluster GPUs / --gpus-per-worker, else CPUs / --cpus-per-worker)")
    conv.add_argument("--engine", default="local", choices=["local", "ray"],
                      help="local: this process (or torchrun's); ray: a Ray Data actor pool (the [ray] extra)")
    conv.add_argument("--ray-address", default=None, metavar="ADDR",
                      help="ray engine: auto (the cluster of this machine) or ray://HOST:PORT; default: start a "
                           "local Ray instance")
    conv.add_argument("--cpus-per-worker", type=float, default=1.0, help="ray engine: CPUs per actor")
    conv.add_argument("--gpus-per-worker", type=float, default=0.0, help="ray engine: GPUs per actor (0: CPU)")
    add_storage_option(conv)


def _add_convert_runtime_options(conv) -> None:
    """What runs the generator."""
    conv.add_argument("--backend", default="torch", choices=list_backends(),
                      help="runtime for the generator: torch, or onnxruntime / openvino (exported to ONNX in "
                           "memory and checked against torch first; openvino needs the [openvino] extra)")
    conv.add_argument("--onnx", default=None, metavar="FILE",
                      help="with --backend onnxruntime/openvino: run this ONNX file (e.g. from translate export "
                           "--quantize int8) instead of exporting")
    conv.add_argument("--compile", action="store_true", help="run the torch generator through torch.compile")


def _add_check_data_parser(sub) -> None:
    """The ``check-data`` subcommand."""
    layouts = next(f for f in dataclasses.fields(DataConfig) if f.name == "layout").metadata["choices"]
    check = sub.add_parser("check-data", help="validate a dataset folder without training",
                           description="Report layout, counts, sizes, channel modes, unreadable files "
                                       "and unmatched pairs of a dataset folder.")
    check.add_argument("data", help="dataset folder")
    check.add_argument("--split", help="check only this split (default: all splits found)")
    check.add_argument("--layout", default="auto", choices=layouts, help="expected layout")
    check.add_argument("--json", action="store_true", help="print machine-readable JSON")
    check.add_argument("--label-nc", type=int, default=None, metavar="N",
                       help="the label maps hold class IDs 0..N-1: report IDs >= N as problems")
    check.set_defaults(func=_cmd_check_data)


def _add_demo_parser(sub) -> None:
    """The ``demo`` subcommand."""
    demo = sub.add_parser("demo", help="train pix2pix on a generated dataset (offline, minutes on a CPU)",
                          description="Generate a small paired dataset offline, train pix2pix on it and "
                                      "write sample grids.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    demo.add_argument("--out", default="checkpoints", help="checkpoints folder for the demo run")
    demo.add_argument("--data", default="datasets/demo_shapes", help="where the generated dataset is written")
    demo.add_argument("--name", default="demo", help="run name")
    demo.add_argument("--minutes", type=float, default=4.0, help="training time budget")
    demo.add_argument("--device", default="auto", help="cpu, cuda or auto")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.set_defaults(func=_cmd_demo)


def _train_config(args):
    given = {key: getattr(args, key) for key, _f, _h in train_option_fields(args.method) if hasattr(args, key)}
    checkpoints_dir = given.pop("checkpoints_dir", RunConfig.checkpoints_dir)
    name = given.pop("name")
    run_dir = Path(checkpoints_dir) / name
    if args.resume:
        cfg = load_run_config(run_dir)
        d = cfg.to_dict()
        if cfg.method != args.method:
            raise ConfigError(f"{run_dir} is a {cfg.method} run; resume it with `translate train {cfg.method}`")
    else:
        d = default_config(args.method).to_dict()
    if args.preset:
        # On --resume a repeated preset is harmless; one that changes the model is refused later.
        for section, values in get_preset(args.preset, args.method).items():
            d[section].update(values)
    d["name"], d["checkpoints_dir"] = name, checkpoints_dir
    for key, value in given.items():
        section, field_name = key.split(".")
        d[section][field_name] = value
    cfg = RunConfig.from_dict(d)
    return apply_overrides(cfg, args.set)


def _cmd_train(args, argv) -> int:
    cfg = _train_config(args)
    if getattr(args, "dry_run", False):
        from .training.dryrun import dry_run

        print(dry_run(cfg).format())
        return 0
    result = train(cfg, resume=args.resume, argv=argv)
    if launched_by_torchrun() and os.environ.get("RANK", "0") != "0":
        return 128 + result.stopped_by_signal if result.stopped_by_signal is not None else 0
    resume_cmd = (f"translate train {cfg.method} --data {cfg.data.root} --name {cfg.name} "
                  f"--checkpoints-dir {cfg.checkpoints_dir} --resume")
    if result.stopped_by_signal is not None:
        print(f"Stopped at step {result.step}; checkpoint saved in {result.run_dir}.\n"
              f"Resume with: {resume_cmd}", file=sys.stderr)
        return 128 + result.stopped_by_signal
    print(f"Done at step {result.step}: translator in {result.run_dir / 'translator'}; "
          f"inspect it with `translate info {result.run_dir}`; "
          f"train longer with {resume_cmd} --max-steps N", file=sys.stderr)
    return 0


def _cmd_distill(args, argv) -> int:
    cfg = _train_config(args)
    result = distill(cfg, resume=args.resume, argv=argv)
    resume_cmd = (f"translate distill {cfg.model.teacher} --data {cfg.data.root} --name {cfg.name} "
                  f"--checkpoints-dir {cfg.checkpoints_dir} --resume")
    if result.stopped_by_signal is not None:
        print(f"Stopped at step {result.step}; checkpoint saved in {result.run_dir}.\nResume with: {resume_cmd}",
              file=sys.stderr)
        return 128 + result.stopped_by_signal
    print(f"Done at step {result.step}: student translator in {result.run_dir / 'translator'}; compare it with "
          f"its teacher: translate eval {result.run_dir} --data {cfg.data.root}", file=sys.stderr)
    return 0


def _add_video_options(conv) -> None:
    vid = conv.add_argument_group(
        "videos", "Videos among the inputs (.mp4 .mov .mkv .webm .avi, also recognised by content) become videos of "
                  "the same name, with their timing, rotation, sound and subtitles kept; INPUT a video and OUTPUT a "
                  "video file name converts that one file (docs/video.md). Needs the [video] extra (PyAV).")
    vid.add_argument("--codec", default=None,
                     help="output video codec: h264 (default; vp9 for .webm), hevc, vp9, av1, ffv1 (lossless); one "
                          "the installed FFmpeg lacks is refused with the list of those it has")
    vid.add_argument("--crf", type=int, default=None, help="quality of lossy codecs, lower is better (default: "
                                                           "h264 18, hevc 22, vp9 32, av1 32)")
    vid.add_argument("--frames", default=None, metavar="START:END",
                     help="convert only frames START to END-1 (a preview; the output starts at time 0)")
    vid.add_argument("--every", type=int, default=1, metavar="N",
                     help="convert every N-th frame (a preview; kept frames keep their timestamps)")
    vid.add_argument("--temporal", default="none", choices=["none", "flow"],
                     help="flow: blend the previous output, warped by the optical flow between the input frames, "
                          "where the flow holds (less flicker)")
    vid.add_argument("--temporal-strength", type=float, default=0.4,
                     help="weight of the warped previous output with --temporal flow, in [0, 1)")


def _video_options(args) -> VideoOptions:
    return VideoOptions(codec=args.codec, crf=args.crf, frames=parse_frames(args.frames), every=args.every,
                        temporal=args.temporal, temporal_strength=args.temporal_strength).check()


def _cmd_convert(args, argv) -> int:
    paths = [line.rstrip("\n") for line in sys.stdin if line.strip()] if args.input == "-" else None
    job = convert_folder(
        args.checkpoint, args.input, args.output, device=args.device, precision=args.precision,
        tile_pixels=args.tile_pixels, tile_overlap=args.tile_overlap, progress=not args.no_progress,
        direction=args.direction, batch_size=args.batch_size, ext=args.ext, quality=args.quality,
        overwrite=args.overwrite, in_place_ok=args.in_place_ok, resize=args.resize, max_pixels=args.max_pixels,
        paths=paths, backend=args.backend, onnx=args.onnx, compile=args.compile,
        storage_options=parse_storage_options(args.storage_option), engine=args.engine,
        video=_video_options(args),
        **_engine_options(args), **({"instance_dir": args.instance_dir} if args.instance_dir else {}))
    summary = job.summary
    if job.is_main:
        for path, reason in summary.failures:
            print(f"failed: {path}: {reason}", file=sys.stderr)
        print(job.line(), file=sys.stderr)
    if summary.interrupted:
        return 130
    return 1 if summary.failures else 0


def _engine_options(args) -> dict:
    """``--workers`` means decode/encode threads to the local engine, actors to the ray engine."""
    if args.engine != "ray":
        return {"workers": args.workers}
    return {"ray": {"address": args.ray_address, "workers": args.workers, "cpus_per_worker": args.cpus_per_worker,
                    "gpus_per_worker": args.gpus_per_worker}}


def _cmd_info(args, argv) -> int:
    desc = describe(args.checkpoint, parse_storage_options(args.storage_option))
    print(json.dumps(desc, indent=2) if args.json else format_description(desc))
    return 0


def _cmd_check_data(args, argv) -> int:
    report = check_data(args.data, split=args.split, layout=args.layout,
                        **({"label_nc": args.label_nc} if args.label_nc is not None else {}))
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0 if report.get("ok") else 1


def _cmd_demo(args, argv) -> int:
    return run_demo(out=args.out, data=args.data, name=args.name, minutes=args.minutes,
                    device=args.device, seed=args.seed)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    known = [UserError, BenchError]
    try:
        return args.func(args, ["translate", *argv])
    except DirectionError as e:  # the API's message names direction=; a shell user needs --direction
        print(f"error: {e.cli_message()}", file=sys.stderr)
        return 2
    except tuple(known) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
