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

def _parse_as(hint):
    """An argparse ``type`` that parses a string into a config field's type (``none`` for Optional)."""
    from .config import ConfigError, parse_value

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
    (:func:`translate.config.option`): a new field gets its option without a second edit.
    """
    from .config import RunConfig, section_classes

    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        if "help" in f.metadata:
            yield f.name, f, hints[f.name]
    for section, cls in section_classes(method).items():
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            yield f"{section}.{f.name}", f, hints[f.name]


def _add_train_parser(sub, method: str, help: Optional[str] = None, description: Optional[str] = None):
    from .config import option_flag
    from .presets import list_presets

    p = sub.add_parser(method, help=help or f"train {method}", description=(description or f"Train {method} on an "
                       "image folder.") + " Options left out take their value from --preset, then the defaults shown; "
                       "with --resume, from the run's saved configuration.")
    p.add_argument("--resume", action="store_true",
                   help="continue the run NAME from its last checkpoint, with its saved configuration")
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


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = argparse.ArgumentParser(
        prog="translate", description="Image-to-image translation: train pix2pix, CycleGAN, CUT/FastCUT and pix2pixHD; "
                                    "convert, evaluate, export, distill and serve translators.")
    parser.add_argument("--version", action="version", version=f"translate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, help="what to do")

    train = sub.add_parser("train", help="train a model", description="Train a model.")
    tsub = train.add_subparsers(dest="method", metavar="METHOD", required=True, help="the method")
    _add_train_parser(tsub, "pix2pix", help="paired: U-Net + PatchGAN + L1 (A|B side by side, or A/ + B/)")
    _add_train_parser(tsub, "cyclegan", help="unpaired: two ResNet generators, cycle + identity (trainA/, trainB/)")
    _add_train_parser(tsub, "cut", help="unpaired, one-sided: one generator + PatchNCE (trainA/, trainB/)")
    _add_train_parser(tsub, "fastcut", help="unpaired, one-sided: CUT without identity NCE, faster")
    _add_train_parser(tsub, "pix2pixhd", help="paired, high resolution: label maps (--label-nc) to images, "
                                              "multi-scale D + feature matching")

    dist = _add_train_parser(
        sub, "distill", help="train a small student generator that reproduces a trained translator",
        description="Train a student generator (default slim_unet, ngf 16) on the teacher's input-domain images "
                    "of --data to reproduce the teacher's outputs (L1 + teacher-encoder feature loss + a fresh "
                    "PatchGAN). The result is an ordinary translator folder whose info names its teacher; the "
                    "direction, channels and data pairing come from the teacher.")
    dist.add_argument("model.teacher", metavar="TEACHER", help="the teacher: a translator folder or its run folder")
    dist.set_defaults(func=_cmd_distill)

    info = sub.add_parser("info", help="describe a checkpoint", description="Describe a checkpoint.")
    info.add_argument("checkpoint", help="a run folder or its translator/ folder")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON")
    info.set_defaults(func=_cmd_info)

    conv = sub.add_parser(
        "convert", help="translate a folder of images with a trained checkpoint",
        description="Translate every image under INPUT into OUTPUT, mirroring relative paths. Existing outputs "
                    "are skipped (re-run to finish an interrupted job); bad files are listed in "
                    "OUTPUT/failed.jsonl and make the exit status 1.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    conv.add_argument("checkpoint", help="a run folder or its translator/ folder")
    conv.add_argument("input", help="image folder (recursive), one image file, or - to read paths from stdin")
    conv.add_argument("output", help="output folder (created)")
    conv.add_argument("--direction", choices=["a2b", "b2a"], help="which generator (required for CycleGAN)")
    conv.add_argument("--batch-size", type=int, default=4, help="images per network call (same-size images)")
    conv.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    conv.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                      help="inference precision (autocast)")
    conv.add_argument("--ext", default="same", choices=["same", "png", "jpg", "webp", "tif"],
                      help="output format; same keeps each input's format")
    conv.add_argument("--quality", type=int, default=None, help="JPEG/WebP quality 1-100 (default: 95 / lossless)")
    conv.add_argument("--overwrite", action="store_true", help="replace existing outputs instead of skipping them")
    conv.add_argument("--in-place-ok", action="store_true",
                      help="allow OUTPUT equal to or inside INPUT (input files are still never replaced)")
    conv.add_argument("--resize", type=int, default=None, metavar="SIDE",
                      help="translate at SIDE x SIDE (e.g. the training size) and resize back; default: native size")
    conv.add_argument("--tile-pixels", type=int, default=2048 * 2048,
                      help="images with more pixels are translated in overlapping tiles")
    conv.add_argument("--tile-overlap", type=int, default=64, help="tile overlap in pixels (feathered)")
    conv.add_argument("--max-pixels", type=int, default=None,
                      help="refuse images with more pixels than this (decompression-bomb guard; default 2^28)")
    conv.add_argument("--workers", type=int, default=None, help="decode/encode threads (default: from CPU count)")
    conv.add_argument("--no-progress", action="store_true", help="no progress bar")
    conv.add_argument("--instance-dir", default=None,
                      help="instance-ID maps matched to the inputs by name (label translators trained with them)")
    conv.add_argument("--backend", default="torch", choices=["torch", "onnxruntime", "openvino"],
                      help="runtime for the generator: torch, or onnxruntime / openvino (exported to ONNX in "
                           "memory and checked against torch first; openvino needs the [openvino] extra)")
    conv.add_argument("--onnx", default=None, metavar="FILE",
                      help="with --backend onnxruntime/openvino: run this ONNX file (e.g. from translate export "
                           "--quantize int8) instead of exporting")
    conv.add_argument("--compile", action="store_true", help="run the torch generator through torch.compile")
    _add_video_options(conv)
    conv.set_defaults(func=_cmd_convert)

    from .bench import add_bench_parser
    from .evaluate import add_eval_parser
    from .export import add_export_parser

    add_export_parser(sub)
    add_eval_parser(sub)
    add_bench_parser(sub)

    from .serve import add_serve_parser

    add_serve_parser(sub)

    from .config import DataConfig

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
    return parser


def _train_config(args):
    from .config import MODEL_CONFIGS, ConfigError, RunConfig, apply_overrides
    from .presets import get_preset
    from .training.state import load_run_config

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
        d = RunConfig(method=args.method, model=MODEL_CONFIGS[args.method]()).to_dict()
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
    from . import train
    from .distributed import launched_by_torchrun

    cfg = _train_config(args)
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
    from .distill import distill

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


def _video_options(args):
    from .video_options import VideoOptions, parse_frames

    return VideoOptions(codec=args.codec, crf=args.crf, frames=parse_frames(args.frames), every=args.every,
                        temporal=args.temporal, temporal_strength=args.temporal_strength).check()


def _cmd_convert(args, argv) -> int:
    from .convert import convert_folder

    paths = [line.rstrip("\n") for line in sys.stdin if line.strip()] if args.input == "-" else None
    job = convert_folder(
        args.checkpoint, args.input, args.output, device=args.device, precision=args.precision,
        tile_pixels=args.tile_pixels, tile_overlap=args.tile_overlap, progress=not args.no_progress,
        direction=args.direction, batch_size=args.batch_size, ext=args.ext, quality=args.quality,
        overwrite=args.overwrite, in_place_ok=args.in_place_ok, resize=args.resize, max_pixels=args.max_pixels,
        workers=args.workers, paths=paths, backend=args.backend, onnx=args.onnx, compile=args.compile,
        video=_video_options(args), **({"instance_dir": args.instance_dir} if args.instance_dir else {}))
    summary = job.summary
    if job.is_main:
        for path, reason in summary.failures:
            print(f"failed: {path}: {reason}", file=sys.stderr)
        print(job.line(), file=sys.stderr)
    if summary.interrupted:
        return 130
    return 1 if summary.failures else 0


def _cmd_info(args, argv) -> int:
    from .info import describe, format_description

    desc = describe(args.checkpoint)
    print(json.dumps(desc, indent=2) if args.json else format_description(desc))
    return 0


def _cmd_check_data(args, argv) -> int:
    from .data import check_data, format_report

    report = check_data(args.data, split=args.split, layout=args.layout,
                        **({"label_nc": args.label_nc} if args.label_nc is not None else {}))
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))
    return 0 if report.get("ok") else 1


def _cmd_demo(args, argv) -> int:
    from .demo import run_demo

    return run_demo(out=args.out, data=args.data, name=args.name, minutes=args.minutes,
                    device=args.device, seed=args.seed)


def main(argv: Optional[List[str]] = None) -> int:
    from .errors import DirectionError, UserError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    known = [UserError]
    try:
        from .bench import BenchError

        known.append(BenchError)
    except ImportError:  # pragma: no cover
        pass
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
