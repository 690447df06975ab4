"""The translator folder: a self-describing, strictly loaded, pickle-free inference artefact.

Layout::

    translator/
      translator.json        format + version, method, per-direction generator (arch, constructor
                             config, file), preprocessing, provenance
      gen_a2b.safetensors    weights (+ gen_b2a.safetensors for CycleGAN); the arch and config
                             are repeated in the safetensors header metadata

Saving writes a complete new folder next to the old one and swaps it in
(:func:`translate.fsutil.replace_dir`), so a crash at any instant leaves a loadable translator.

torch is imported by the functions that handle weights only: reading a translator's description
(``translate info``, the driver of a Ray job) does not load it.
"""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Union

from safetensors import SafetensorError

from .errors import UserError
from .fsutil import atomic_write_bytes, atomic_write_text, recover_dir, replace_dir
from .options import DIRECTIONS, swap_domains
from .storage import Folder, StorageError, is_url
from .version import __version__

FORMAT = "translate.translator"
FORMAT_VERSION = 2
# Version 2: directions name dataset domains, so a BtoA pix2pix run stores gen_b2a. Version 1
# folders still load: the generators of a BtoA run are read under the domain directions they
# translate (its a2b entry, file gen_a2b.safetensors, is the b2a generator).
READABLE_VERSIONS = (1, FORMAT_VERSION)
TRANSLATOR_JSON = "translator.json"
_TOP_KEYS = {"format", "format_version", "method", "generators", "preprocessing", "provenance"}
_GEN_KEYS = {"file", "arch", "config", "params"}


class CheckpointError(UserError):
    """A checkpoint is missing, malformed, or does not match what the code expects."""


def versions() -> Dict[str, str]:
    """Versions of the software a checkpoint was made with (recorded for reproducibility)."""
    import numpy
    import torch

    out = {"translate": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
           "python": platform.python_version()}
    for mod in ("torchvision", "albumentations", "cv2", "safetensors"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # pragma: no cover - optional in the record only
            pass
    return out


def save_translator(
    folder: Union[str, Path],
    method: str,
    generators: Dict[str, nn.Module],
    preprocessing: Dict[str, Any],
    provenance: Optional[Dict[str, Any]] = None,
) -> Path:
    """Write a translator folder atomically.

    Args:
        folder: destination, usually ``<run>/translator``.
        method: "pix2pix" or "cyclegan".
        generators: direction ("a2b"/"b2a", named by dataset domains: a generator trained from
            B to A is "b2a") -> generator; each must have ``arch`` and ``config``.
        preprocessing: how inputs were prepared in training (channels, value range, size multiple...).
        provenance: run name, step, epoch, versions...
    """
    from safetensors.torch import save as st_save

    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        entries = {}
        for direction, net in generators.items():
            if direction not in DIRECTIONS:
                raise ValueError(f"unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
            file = f"gen_{direction}.safetensors"
            state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
            meta = {"format": FORMAT, "arch": net.arch, "config": json.dumps(net.config, sort_keys=True)}
            atomic_write_bytes(tmp / file, st_save(state, metadata=meta))
            entries[direction] = {"file": file, "arch": net.arch, "config": dict(net.config),
                                  "params": sum(p.numel() for p in net.parameters())}
        doc = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": method,
            "generators": entries,
            "preprocessing": dict(preprocessing),
            "provenance": dict(provenance or {}, versions=versions()),
        }
        atomic_write_text(tmp / TRANSLATOR_JSON, json.dumps(doc, indent=2) + "\n")
        replace_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def resolve_translator_dir(path: Union[str, Path], storage_options: Optional[Dict[str, Any]] = None,
                           weights: bool = True) -> Path:
    """Accept a run folder or its ``translator/`` folder; return the translator folder.

    A URL (``s3://bucket/runs/facades``) is fetched first (:func:`fetch_translator`; without the
    weight files when ``weights`` is False) and the local copy returned.

    Raises:
        CheckpointError: saying what was found and what was expected.
    """
    if is_url(path) and not str(path).startswith("file://"):
        return fetch_translator(str(path), storage_options, weights)
    path = Path(str(path)[len("file://"):] if str(path).startswith("file://") else path)
    if path.is_file():
        raise CheckpointError(
            f"{path} is a file; expected a translator folder (with {TRANSLATOR_JSON}) or a run "
            "folder that contains translator/"
        )
    candidates = [path, path / "translator"]
    for cand in candidates:
        cand = recover_dir(cand)
        if (cand / TRANSLATOR_JSON).is_file():
            return cand
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; expected a run folder or a translator folder")
    raise CheckpointError(
        f"{path} is not a checkpoint: no {TRANSLATOR_JSON} in it or in {path / 'translator'}. "
        "A run folder gets its translator/ at the first checkpoint save."
    )


def fetch_translator(location: str, storage_options: Optional[Dict[str, Any]] = None, weights: bool = True) -> Path:
    """Copy a translator folder (or the ``translator/`` of a run folder) at a URL to a local temp folder.

    Only ``translator.json`` and (with ``weights``) the weight files it names are fetched; the copy
    is removed when the process exits. Loading then proceeds as for a local folder (strictly, without pickle).

    Raises:
        CheckpointError: no translator there, or it cannot be read.
    """
    import atexit

    root = Folder(location, storage_options)
    try:
        found = next((c for c in (root, root.child("translator")) if c.is_file(TRANSLATOR_JSON)), None)
        if found is None:
            raise CheckpointError(f"{location} is not a checkpoint: no {TRANSLATOR_JSON} in it or in "
                                  f"{root.join('translator')}")
        text = found.read_bytes(TRANSLATOR_JSON)
        try:
            gens = json.loads(text).get("generators", {})
            files = [e["file"] for e in gens.values()]
        except (ValueError, AttributeError, KeyError, TypeError) as e:
            raise CheckpointError(f"{found.join(TRANSLATOR_JSON)}: not a translator description ({e})") from None
        local = Path(tempfile.mkdtemp(prefix="translate-translator-"))
        atexit.register(shutil.rmtree, local, True)
        (local / TRANSLATOR_JSON).write_bytes(text)
        for name in files:
            if not isinstance(name, str) or Path(name).name != name or name.startswith("."):
                raise CheckpointError(f"{found.join(TRANSLATOR_JSON)}: bad weights file name {name!r}")
            if weights:
                found.download(name, local / name)
    except (OSError, StorageError) as e:
        raise CheckpointError(f"{location}: cannot read the translator ({e})") from None
    (local / _SOURCE_FILE).write_text(found.root, encoding="utf-8")
    return local


_SOURCE_FILE = ".source"  # in a fetched copy: the URL it came from


def read_translator_json(folder: Union[str, Path], storage_options: Optional[Dict[str, Any]] = None,
                         weights: bool = True) -> Dict[str, Any]:
    """Read and validate ``translator.json`` of a translator folder (strict).

    ``folder`` may be a URL (see :func:`resolve_translator_dir`); ``doc["_source"]`` is then
    that URL and ``doc["_folder"]`` the local copy, which holds the weight files only when
    ``weights`` (False: to describe a translator without loading it).
    """
    folder = resolve_translator_dir(folder, storage_options, weights)
    path = folder / TRANSLATOR_JSON
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: cannot read it as JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a translator description (format should be {FORMAT!r})")
    if doc.get("format_version") not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path}: format_version {doc.get('format_version')!r} is not supported by this version "
            f"of translate (it reads versions {', '.join(map(str, READABLE_VERSIONS))}); "
            "upgrade translate to load it"
        )
    unknown = set(doc) - _TOP_KEYS
    missing = _TOP_KEYS - set(doc)
    if unknown or missing:
        raise CheckpointError(f"{path}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
    gens = doc["generators"]
    if not isinstance(gens, dict) or not gens or set(gens) - set(DIRECTIONS):
        raise CheckpointError(f"{path}: 'generators' must map {' and/or '.join(DIRECTIONS)} to generators")
    for direction, entry in gens.items():
        if not isinstance(entry, dict) or set(entry) != _GEN_KEYS:
            raise CheckpointError(f"{path}: generator {direction!r} must have exactly the keys {sorted(_GEN_KEYS)}")
    if doc["format_version"] == 1 and isinstance(doc["preprocessing"], dict) \
            and doc["preprocessing"].get("direction") == "BtoA":
        doc["generators"] = {swap_domains(d): entry for d, entry in gens.items()}
    if isinstance(doc["preprocessing"], dict) and "labels" in doc["preprocessing"]:
        label_encoding(doc["preprocessing"], path)  # strict: a malformed record is an error now
    doc["_folder"] = str(folder)
    if (folder / _SOURCE_FILE).is_file():
        doc["_source"] = (folder / _SOURCE_FILE).read_text(encoding="utf-8")
    return doc


def label_encoding(preprocessing: Dict[str, Any], where: Union[str, Path] = "translator.json") -> Optional[Dict[str, Any]]:
    """The class-ID label encoding a translator was trained with, or None for image inputs.

    Recorded in ``preprocessing["labels"]`` as ``{"label_nc": N, "instance_channel": bool}``:
    inputs are single-channel maps of class IDs 0..N-1, one-hot encoded into N channels, followed
    by an instance-boundary channel when ``instance_channel`` is true. Folders written before
    label inputs existed have no such record and load as image translators.

    Raises:
        CheckpointError: the record is malformed.
    """
    rec = preprocessing.get("labels")
    if rec is None:
        return None
    if (not isinstance(rec, dict) or set(rec) != {"label_nc", "instance_channel"}
            or not isinstance(rec["label_nc"], int) or isinstance(rec["label_nc"], bool) or rec["label_nc"] < 1
            or not isinstance(rec["instance_channel"], bool)):
        raise CheckpointError(f"{where}: preprocessing.labels must be {{\"label_nc\": N >= 1, "
                              f"\"instance_channel\": true|false}}, got {rec!r}")
    return dict(rec)


def load_generator(folder: Union[str, Path], direction: str, device: Union[str, torch.device] = "cpu",
                   doc: Optional[Dict[str, Any]] = None) -> nn.Module:
    """Build the generator for ``direction`` from its saved config and load its weights strictly."""
    from safetensors.torch import load as st_load

    from .models import build_generator

    doc = doc or read_translator_json(folder)
    folder = Path(doc["_folder"])
    if direction not in doc["generators"]:
        raise CheckpointError(
            f"{folder} has no {direction!r} generator; it has: {', '.join(doc['generators'])}"
        )
    entry = doc["generators"][direction]
    file = folder / entry["file"]
    if Path(entry["file"]).name != entry["file"] or not file.is_file():
        raise CheckpointError(f"{folder}: weights file {entry['file']!r} is missing")
    try:
        net = build_generator(entry["arch"], **entry["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder}: cannot build generator {entry['arch']!r} from its config: {e}") from None
    try:
        state = st_load(file.read_bytes())
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from None
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise CheckpointError(
            f"{file}: tensors do not match the {entry['arch']} architecture; "
            f"missing: {missing[:10]}{' ...' if len(missing) > 10 else ''}; "
            f"unexpected: {extra[:10]}{' ...' if len(extra) > 10 else ''}"
        )
    bad = [k for k in expected if expected[k].shape != state[k].shape]
    if bad:
        raise CheckpointError(f"{file}: tensor shapes differ from the architecture for: {bad[:10]}")
    net.load_state_dict(state, strict=True)
    return net.to(device)
