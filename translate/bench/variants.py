"""Opt-in measurements (``--what``) that compare ways of running the same work:

For each method with a conversion row (``convert-NAME``, from the method registry; pix2pix and
CycleGAN among the built-in ones):

- ``train-NAME-compile``: training with ``--compile`` (the nets that ``train_step`` calls go
  through ``torch.compile``). FLOPs are counted on the first, eager step; the first compiled step
  (compilation included) is reported apart as ``first_step_seconds``.
- ``convert-NAME-compile``: conversion with ``Translator.load(compile=True)``; the warm-up
  includes compilation (``load_seconds`` does not).
- ``convert-NAME-channels-last``: conversion with the generators and their inputs in
  channels_last (``memory_format="channels_last"``).

And:

- ``convert-backends``: the same translator and images through every backend of
  :func:`translate.runtimes.list_backends` installed here and an int8 onnxruntime model
  (``translate export --quantize int8`` calibrated on the conversion images); fp32 only.
- ``convert-student``: with ``--checkpoint STUDENT`` (a ``translate distill`` translator), the
  student and the teacher its translator names, on the same images, in the teacher's direction.

Every conversion row has a quality figure: the PSNR of its outputs on the guard images against a
reference (fp32 eager torch outputs of the same translator; the teacher's outputs for a student).
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

from ..checkpoint import CheckpointError, read_translator_json
from ..export import quantize_int8
from ..runtimes import BACKENDS, ExportError
from ..runtimes.onnx import generator_to_onnx
from ..translator import Translator
from .measure import Bench, BenchError, bench_spec, benched_methods, convert_methods, psnr_folders
from ..runtime import has_native_precision

RUNTIME_WHAT = ("convert-backends",)
STUDENT_WHAT = ("convert-student",)
FP32_ONLY = RUNTIME_WHAT  # the runtimes run the fp32 graph


def compile_what() -> Tuple[str, ...]:
    methods = convert_methods()
    return tuple(f"train-{m}-compile" for m in methods) + tuple(f"convert-{m}-compile" for m in methods)


def layout_what() -> Tuple[str, ...]:
    return tuple(f"convert-{m}-channels-last" for m in convert_methods())


def health_what() -> Tuple[str, ...]:
    """``--grad-checkpoint`` (next to the plain row for the memory and time ratios) and the loop's
    health checks (non-finite guard + diagnostics; next to the plain row for their cost)."""
    methods = benched_methods()
    return tuple(f"train-{m}-grad-checkpoint" for m in methods) + tuple(f"train-{m}-guard" for m in methods)


def variant_what() -> Tuple[str, ...]:
    """The opt-in measurements of this module."""
    return compile_what() + layout_what() + RUNTIME_WHAT + STUDENT_WHAT + health_what()


def _method(w: str) -> str:
    return w.split("-")[1]


def checkpoint_method(bench: Bench) -> str:
    """The method whose translator ``convert-backends`` runs: the checkpoint's, else the first
    method whose conversion translator has one generator (an ONNX file holds one)."""
    if bench.s.checkpoint is None:
        return next(m for m in convert_methods() if len(bench_spec(m).convert) == 1)
    return read_translator_json(bench.s.checkpoint)["method"]


def student_and_teacher(checkpoint) -> Dict[str, Any]:
    """The student's and its teacher's translator folders and the distilled direction.

    Raises:
        BenchError: no checkpoint, a checkpoint that names no teacher, or a teacher folder that is gone.
    """
    if checkpoint is None:
        raise BenchError("convert-student needs --checkpoint STUDENT (a translator made by translate distill)")
    doc = read_translator_json(checkpoint)
    prov = doc["provenance"]
    if not prov.get("teacher"):
        raise BenchError(f"{doc['_folder']} names no teacher (translate info shows it): convert-student compares a "
                         "translate distill student with its teacher")
    try:
        teacher = read_translator_json(prov["teacher"])
    except CheckpointError as e:
        raise BenchError(f"the teacher of {doc['_folder']} cannot be read: {e}") from None
    direction = prov.get("teacher_direction") or next(iter(doc["generators"]))
    return {"student": Path(doc["_folder"]), "teacher": Path(teacher["_folder"]), "direction": direction}


def measure_variant(bench: Bench, w: str, prec: str, result: Dict[str, Any],
                    log: Callable[[str], None]) -> List[Dict[str, Any]]:
    """The rows of opt-in measurement ``w`` in precision ``prec``, each with its ``seconds``."""
    t0 = time.perf_counter()
    rows = _variant_rows(bench, w, prec, result, log)
    for row in rows:
        row.setdefault("seconds", time.perf_counter() - t0)  # the whole measurement when not split
    return rows


def _variant_rows(bench: Bench, w: str, prec: str, result: Dict[str, Any],
                  log: Callable[[str], None]) -> List[Dict[str, Any]]:
    compiled = compile_what()
    if w in health_what():
        variant = w.split("-", 2)[2].replace("-", "_")  # grad_checkpoint or guard
        return [{**bench.train(_method(w), prec, **{variant: True}), "variant": variant}]
    if w in compiled and w.startswith("train-"):
        return [{**bench.train(_method(w), prec, compile=True), "variant": "compile"}]
    if w in compiled or w in layout_what():
        method = _method(w)
        variant = "compile" if w in compiled else "channels_last"
        kw = {"compile": True} if variant == "compile" else {"memory_format": "channels_last"}
        row = bench.convert(method, prec, key=f"{method}_{prec}_{variant}", **kw)
        ref = bench.reference(method)
        return [{**row, "variant": variant,
                 **_quality(ref, bench.guard_outputs[f"{method}_{prec}_{variant}"], "fp32 torch")}]
    if w in RUNTIME_WHAT:
        return _backends(bench, result, log)
    if w in STUDENT_WHAT:
        return _student(bench, prec, result)
    raise BenchError(f"unknown measurement {w!r}")


def _timed(fn, *args, **kw) -> Dict[str, Any]:
    t0 = time.perf_counter()
    row = fn(*args, **kw)
    row["seconds"] = time.perf_counter() - t0
    return row


def _quality(ref_dir: Path, test_dir: Path, reference: str) -> Dict[str, Any]:
    q = psnr_folders(ref_dir, test_dir)
    return {"psnr_vs_ref_db": q["psnr_db"], "psnr_identical": q["identical"], "psnr_reference": reference,
            "psnr_images": q["images"]}


def _backends(bench: Bench, result: Dict[str, Any], log: Callable[[str], None]) -> List[Dict[str, Any]]:
    """Conversion of the same translator and images with every backend (torch, onnxruntime, OpenVINO) and
    an int8 onnxruntime model."""
    method = checkpoint_method(bench)
    folder, weights = bench.translator(method)
    rows = [{**_timed(bench.convert, method, "fp32"), "backend": "torch", "psnr_reference": "fp32 torch"}]
    ref = bench.reference(method)
    notes = result.setdefault("notes", [])
    onnx_backends = [b for b in BACKENDS.values() if b.runs_onnx]
    runtimes = [b.name for b in onnx_backends if b.available()]
    onnx_file = _export_once(bench, folder, log) if runtimes else None
    for b in onnx_backends:
        backend = b.name
        if backend not in runtimes:
            notes.append(f"convert-backends: {backend} is not installed here; its row was skipped ({b.install_hint})")
            continue
        log(f"convert-backends {backend} ...")
        key = f"{method}_{backend}"
        try:
            row = _timed(bench.convert, method, "fp32", key=key, backend=backend, onnx=onnx_file)
        except ExportError as e:  # e.g. a parity check that failed: the row is left out, and said so
            notes.append(f"convert-backends: {backend} refused: {e}")
            continue
        rows.append({**row, "backend": backend, **_quality(ref, bench.guard_outputs[key], "fp32 torch")})
        if backend == "openvino" and has_native_precision(bench.s.device, "bf16"):
            rows.append(_openvino_bf16(bench, method, onnx_file, ref, log))
    if "onnxruntime" in runtimes and importlib.util.find_spec("onnx") is not None:
        rows.append(_int8(bench, method, folder, ref, onnx_file, log))
    elif "onnxruntime" in runtimes:
        notes.append("convert-backends: int8 needs the onnx package; its row was skipped")
    for row in rows:
        row["weights"] = weights
    return rows


def _openvino_bf16(bench: Bench, method: str, onnx_file: Path, ref: Path,
                   log: Callable[[str], None]) -> Dict[str, Any]:
    """OpenVINO with its bf16 inference hint (CPUs with AMX / AVX-512 BF16), the same graph and images."""
    log("convert-backends openvino bf16 ...")
    key = f"{method}_openvino_bf16"
    row = _timed(bench.convert, method, "bf16", key=key, backend="openvino", onnx=onnx_file)
    return {**row, "precision": "bf16", "backend": "openvino", **_quality(ref, bench.guard_outputs[key], "fp32 torch")}


def _export_once(bench: Bench, folder: Path, log: Callable[[str], None]) -> Path:
    """The translator's generator as one fp32 ONNX file, shared by the runtime rows (each still
    checks it against PyTorch when it loads it)."""
    direction = bench.direction(folder)
    t = Translator.load(folder, device="cpu", precision="fp32")
    log("convert-backends: exporting the fp32 ONNX graph ...")
    out = bench.tmp / "fp32.onnx"
    out.write_bytes(generator_to_onnx(t.generator(direction), t.doc, direction))
    return out


def _int8(bench: Bench, method: str, folder: Path, ref: Path, onnx_file: Path,
          log: Callable[[str], None]) -> Dict[str, Any]:
    s = bench.s
    calibration = s.data if s.data is not None else bench.datasets()["convert"]
    files = bench.conversion_files()
    out = bench.tmp / f"{method}_int8.onnx"
    direction = bench.direction(folder)
    t0 = time.perf_counter()
    log(f"convert-backends int8: calibrating on {min(len(files), 32)} image(s) of {calibration} ...")
    report = quantize_int8(folder, out, calibration, direction=direction, max_images=32, overwrite=True, force=True,
                           fp32_onnx=onnx_file.read_bytes())
    key = f"{method}_int8"
    row = bench.convert(method, "fp32", key=key, backend="onnxruntime", onnx=out, direction=direction)
    row.update(precision="int8", backend="onnxruntime int8", **_quality(ref, bench.guard_outputs[key], "fp32 torch"),
               quantize={k: report[k] for k in ("images", "side", "psnr_db", "ms_fp32", "ms_int8", "speedup")},
               calibration=str(calibration), seconds=time.perf_counter() - t0)
    return row


def _student(bench: Bench, prec: str, result: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The student's and its teacher's conversion rows, and how they compare."""
    st = student_and_teacher(bench.s.checkpoint)
    rows = {}
    for role in ("teacher", "student"):
        rows[role] = _timed(bench.convert, role, prec, key=f"{role}_{prec}", folder=st[role], direction=st["direction"],
                                   weights=f"{role} {st[role]}")
        rows[role]["role"] = role
    t, s = rows["teacher"], rows["student"]
    s.update(_quality(bench.guard_outputs[f"teacher_{prec}"], bench.guard_outputs[f"student_{prec}"], "teacher"))
    s["speed_vs_teacher"] = s["value"] / t["value"] if t["value"] else None
    for r in rows.values():
        r["gmacs_per_image"] = r["flops_per_item"] / 2e9 if r.get("flops_per_item") else None
    notes = result.setdefault("notes", [])
    eval_note = ("convert-student: quality on held-out data comes from translate eval: "
                 f"translate eval {st['student']} --data DATA; translate eval {st['teacher']} --data DATA")
    if eval_note not in notes:
        notes.append(eval_note)
    return [t, s]
