"""Find images on disk: list folders, recognise dataset layouts, match pairs.

Layouts (``split`` is e.g. ``train``; see :func:`detect_layout`):

=========  ==================================================================================
ab         ``root/split/*.jpg``: each file holds A and B side by side (A left, B right).
           Also ``root/*.jpg`` when the root itself holds images and has no split folder.
a_b        ``root/split/A/`` + ``root/split/B/``, or ``root/A/split/`` + ``root/B/split/``,
           or ``root/A/`` + ``root/B/`` (no split). Files pair up by relative path minus
           extension: ``A/x/1.png`` <-> ``B/x/1.jpg``.
unpaired   ``root/splitA/`` + ``root/splitB/`` (e.g. ``trainA``, ``trainB``); no pairing.
=========  ==================================================================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..errors import UserError
from .io import IMAGE_EXTENSIONS

PathLike = Union[str, os.PathLike]

LAYOUTS = ("ab", "a_b", "unpaired")
_MAX_LISTED = 20


class DatasetError(UserError):
    """A dataset folder cannot be used as asked. The message explains why in one paragraph,
    followed by the offending files (at most 20, then "... and N more").

    Attributes:
        summary: The explanation paragraph.
        items: All offending entries (files, "file: reason" strings, ...), uncapped.
    """

    def __init__(self, summary: str, items: Sequence[object] = ()):
        self.summary = summary
        self.items = [str(item) for item in items]
        super().__init__(summary + format_items(self.items))

    def __reduce__(self):
        return (type(self), (self.summary, self.items))


def format_items(items: Sequence[object], limit: int = _MAX_LISTED) -> str:
    """Formats a list as indented lines, capped at ``limit`` with "... and N more"."""
    if not items:
        return ""
    lines = [f"\n  {item}" for item in items[:limit]]
    if len(items) > limit:
        lines.append(f"\n  ... and {len(items) - limit} more")
    return "".join(lines)


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(folder: PathLike, recursive: bool = True) -> List[Path]:
    """Lists the image files in a folder.

    Args:
        folder: Folder to search.
        recursive: Also search subfolders. Symlinked subfolders are not entered (avoids
            cycles); the folder itself may be a symlink.

    Returns:
        Paths whose extension is in ``IMAGE_EXTENSIONS`` (any case), skipping hidden files
        and hidden folders (name starting with "."), sorted by relative POSIX path so the
        order is the same on every machine.

    Raises:
        DatasetError: ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise DatasetError(f"Image folder {folder} {what}.")
    found: List[Tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        # Pruning in place stops os.walk from entering hidden folders (.git, .ipynb_checkpoints).
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        base = Path(dirpath)
        for name in filenames:
            if _is_image_name(name):
                path = base / name
                found.append((path.relative_to(folder).as_posix(), path))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def _has_images(folder: Path, recursive: bool = True) -> bool:
    """True when ``folder`` holds at least one image (stops at the first one)."""
    if not folder.is_dir():
        return False
    for _dirpath, dirnames, filenames in os.walk(folder):
        if any(_is_image_name(name) for name in filenames):
            return True
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
    return False


# ------------------------------------------------------------------------------------ layouts


@dataclass(frozen=True)
class Layout:
    """A recognised dataset layout for one split.

    Attributes:
        kind: "ab" (side-by-side files), "a_b" (paired A and B folders) or "unpaired".
        root: The dataset root that was given.
        split: The split name, or None when the root has no split folders.
        folder: The folder of side-by-side images (kind "ab" only).
        folder_a: The A folder (kinds "a_b" and "unpaired").
        folder_b: The B folder (kinds "a_b" and "unpaired").
    """

    kind: str
    root: Path
    split: Optional[str]
    folder: Optional[Path] = None
    folder_a: Optional[Path] = None
    folder_b: Optional[Path] = None

    @property
    def folders(self) -> Tuple[Path, ...]:
        return (self.folder,) if self.kind == "ab" else (self.folder_a, self.folder_b)

    def describe(self) -> str:
        if self.kind == "ab":
            return f"ab (A|B side by side) in {self.folder}"
        return f"{self.kind} with A = {self.folder_a}, B = {self.folder_b}"


def _expected_text(split: Optional[str], kind: Optional[str] = None) -> str:
    s = split or "SPLIT"
    # Paths relative to root, which every message names already.
    texts = {
        "ab": f"{s}/ holding side-by-side A|B images (layout ab)",
        "a_b": f"{s}/A/ + {s}/B/, A/{s}/ + B/{s}/ or A/ + B/ (layout a_b)",
        "unpaired": f"{s}A/ + {s}B/ (layout unpaired)",
    }
    if kind is not None:
        return texts[kind]
    return "; ".join(texts.values())


def _candidates(root: Path, split: Optional[str]) -> List[Layout]:
    """Every layout whose folder structure is present for ``split`` (images not yet checked)."""
    found: List[Layout] = []
    if split is not None:
        folder = root / split
        if folder.is_dir():
            if (folder / "A").is_dir() and (folder / "B").is_dir():
                found.append(Layout("a_b", root, split, folder_a=folder / "A",
                                    folder_b=folder / "B"))
            else:
                found.append(Layout("ab", root, split, folder=folder))
        if (root / "A" / split).is_dir() and (root / "B" / split).is_dir():
            found.append(Layout("a_b", root, split, folder_a=root / "A" / split,
                                folder_b=root / "B" / split))
        if (root / f"{split}A").is_dir() and (root / f"{split}B").is_dir():
            found.append(Layout("unpaired", root, split, folder_a=root / f"{split}A",
                                folder_b=root / f"{split}B"))
    if not found:
        # No folder for this split: the root may itself be a split-less dataset. Only images
        # directly inside count, so a root that merely has other splits does not match.
        if _has_images(root, recursive=False):
            found.append(Layout("ab", root, None, folder=root))
        if _has_images(root / "A", recursive=False) and _has_images(root / "B", recursive=False):
            found.append(Layout("a_b", root, None, folder_a=root / "A", folder_b=root / "B"))
    return found


def list_splits(root: PathLike) -> List[Optional[str]]:
    """Names the splits present under ``root`` (``None`` stands for a split-less root).

    A split ``s`` is present when ``root/s`` holds images or A/B folders, when ``root/sA`` and
    ``root/sB`` both exist, or when ``root/A/s`` and ``root/B/s`` both exist.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    splits = set()
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    names = set(subdirs)
    for name in subdirs:
        if name in ("A", "B"):
            continue
        if name.endswith("A") and len(name) > 1 and name[:-1] + "B" in names:
            splits.add(name[:-1])
        elif name.endswith("B") and len(name) > 1 and name[:-1] + "A" in names:
            continue
        elif (root / name / "A").is_dir() and (root / name / "B").is_dir():
            splits.add(name)
        elif _has_images(root / name):
            splits.add(name)
    if "A" in names and "B" in names:
        for sub in (root / "A").iterdir():
            if sub.is_dir() and not sub.name.startswith(".") and (root / "B" / sub.name).is_dir():
                splits.add(sub.name)
    result: List[Optional[str]] = sorted(splits)
    if _candidates(root, None):
        result.insert(0, None)
    return result


def detect_layout(root: PathLike, split: Optional[str] = "train", layout: str = "auto") -> Layout:
    """Recognises how a dataset folder is organised (see the module docstring).

    Args:
        root: Dataset root folder.
        split: Split to use ("train", "test", ...). When the root has no folder for it but
            holds images directly (or in A/ and B/ directly), the whole root is used and the
            returned ``split`` is None. ``None`` asks for that split-less form only.
        layout: "auto" to recognise it, or "ab", "a_b", "unpaired" to insist on one.

    Returns:
        The layout, with its folders. Every folder it names holds at least one image.

    Raises:
        DatasetError: Missing root or split, no layout or more than one layout fits (with
            "auto"), the asked layout is absent, or a folder has no images.
        ValueError: Unknown ``layout`` name.
    """
    if layout != "auto" and layout not in LAYOUTS:
        raise ValueError(f"layout must be 'auto' or one of {', '.join(LAYOUTS)}, got {layout!r}")
    root = Path(root)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "does not exist"
        raise DatasetError(f"Dataset folder {root} {what}.")

    candidates = _candidates(root, split)
    if layout != "auto":
        candidates = [c for c in candidates if c.kind == layout]
    if not candidates:
        raise _no_layout_error(root, split, layout)

    if len(candidates) > 1:
        # Empty candidates do not count when a non-empty one exists (e.g. an empty train/
        # next to trainA/ + trainB/).
        full = [c for c in candidates if all(_has_images(f) for f in c.folders)]
        if len(full) == 1:
            candidates = full
        else:
            hint = "--layout" if layout == "auto" else "a more specific folder as --data"
            raise DatasetError(
                f"Dataset folder {root} matches more than one layout for split {split!r}, so "
                f"it is unclear which to use. Move or rename the folders you do not want, or "
                f"pass {hint} (ab, a_b or unpaired). Found:",
                [c.describe() for c in (full or candidates)],
            )
    chosen = candidates[0]
    if chosen.kind == "ab" and (chosen.folder / "A").is_dir() != (chosen.folder / "B").is_dir():
        present, missing = ("A", "B") if (chosen.folder / "A").is_dir() else ("B", "A")
        raise DatasetError(
            f"Dataset folder {chosen.folder} has a {present}/ subfolder but no {missing}/, so it "
            f"is neither side-by-side images (layout ab) nor paired A/ + B/ folders (layout "
            f"a_b). Add {chosen.folder / missing} or move {chosen.folder / present} away."
        )
    empty = [f for f in chosen.folders if not _has_images(f)]
    if empty:
        raise DatasetError(
            f"Dataset folder {root} looks like layout {chosen.kind}, but these folders contain "
            f"no image files (looked for {', '.join(IMAGE_EXTENSIONS)} in any case, "
            f"recursively, hidden files ignored):",
            empty,
        )
    return chosen


def _no_layout_error(root: Path, split: Optional[str], layout: str) -> DatasetError:
    splits = [s for s in list_splits(root) if s is not None]
    kind = None if layout == "auto" else layout
    expected = _expected_text(split, kind)
    if split is not None and split not in splits and not (root / split).exists():
        found = (f"The splits that do exist are: {', '.join(splits)}." if splits
                 else "No split folders were found either.")
        in_layout = "" if kind is None else f" in layout {kind}"
        return DatasetError(
            f"Dataset folder {root} has no {split!r} split{in_layout}. Expected, inside it: "
            f"{expected}. {found} Its contents are:",
            _folder_contents(root),
        )
    return DatasetError(
        f"Dataset folder {root} does not match "
        f"{'any known layout' if kind is None else 'layout ' + kind} for split {split!r}. "
        f"Expected, inside it: {expected}. Its contents are:",
        _folder_contents(root),
    )


def _folder_contents(root: Path) -> List[str]:
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    return [p.name + ("/" if p.is_dir() else "") for p in entries] or ["(empty folder)"]


# -------------------------------------------------------------------------------------- pairs


def _keyed(folder: Path) -> Tuple[Dict[str, Path], List[str]]:
    """Maps relative-path-without-extension -> file; also returns duplicate descriptions."""
    keyed: Dict[str, Path] = {}
    duplicates: List[str] = []
    for path in list_images(folder):
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in keyed:
            duplicates.append(f"{keyed[key]} and {path}")
        else:
            keyed[key] = path
    return keyed, duplicates


def pair_up(folder_a: PathLike, folder_b: PathLike):
    """Pairs files of two folders by relative path without extension, without raising.

    Returns:
        ``(pairs, only_a, only_b, duplicates)``: matched ``(a, b)`` paths sorted by key, files
        without a partner on each side, and descriptions of same-stem files within one folder.
    """
    keyed_a, dup_a = _keyed(Path(folder_a))
    keyed_b, dup_b = _keyed(Path(folder_b))
    pairs = [(keyed_a[k], keyed_b[k]) for k in sorted(keyed_a.keys() & keyed_b.keys())]
    only_a = [keyed_a[k] for k in sorted(keyed_a.keys() - keyed_b.keys())]
    only_b = [keyed_b[k] for k in sorted(keyed_b.keys() - keyed_a.keys())]
    return pairs, only_a, only_b, dup_a + dup_b


def match_pairs(folder_a: PathLike, folder_b: PathLike) -> List[Tuple[Path, Path]]:
    """Pairs the images of an A folder with those of a B folder.

    Files match by relative path without extension, so ``A/x/1.png`` pairs with ``B/x/1.jpg``.

    Returns:
        ``(path_a, path_b)`` tuples sorted by relative path.

    Raises:
        DatasetError: Some files have no partner (all are listed, both sides), or one folder
            holds two files that differ only by extension.
    """
    pairs, only_a, only_b, duplicates = pair_up(folder_a, folder_b)
    if duplicates:
        raise DatasetError(
            f"Paired folders {folder_a} and {folder_b}: these files differ only by extension, "
            f"so it is unclear which one is meant. Keep one of each:",
            duplicates,
        )
    if only_a or only_b:
        raise DatasetError(
            f"Paired folders {folder_a} (A) and {folder_b} (B) do not match: every A file needs "
            f"a B file with the same relative path (extension may differ). "
            f"{len(only_a)} file(s) only in A, {len(only_b)} only in B:",
            [f"only in A: {p}" for p in only_a] + [f"only in B: {p}" for p in only_b],
        )
    if not pairs:
        raise DatasetError(f"Paired folders {folder_a} and {folder_b} contain no images.")
    return pairs
