"""The standard datasets of the pix2pix and CycleGAN papers, where their authors publish them.

A plain-dict registry (:data:`DATASETS`, :func:`list_datasets`, :func:`get_dataset`) read by
``translate datasets list|download``. Each entry names the archive exactly as the authors
publish it (``facades.tar.gz`` under their pix2pix URL, ``horse2zebra.zip`` under their CycleGAN
URL), so a mirror that keeps copies under the same names can replace the base URL.

Base URLs and archive names are those of the authors' download scripts
(``datasets/download_pix2pix_dataset.sh`` and ``datasets/download_cyclegan_dataset.sh`` in
junyanz/pytorch-CycleGAN-and-pix2pix). A sha256 is pinned only where it is known; otherwise the
first download records one next to the data and later downloads are checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional

from ..errors import UserError

PIX2PIX_BASE_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/"
CYCLEGAN_BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/"
MIRROR_ENV = "TRANSLATE_DATASETS_MIRROR"

_CITYSCAPES_NOTE = (
    "the authors no longer distribute Cityscapes-derived archives (license): get the data from "
    "https://www.cityscapes-dataset.com, or download from a site that keeps a copy with --mirror URL")


class UnknownDatasetError(UserError):
    """A dataset name that the registry does not hold; the message lists the valid names."""


@dataclass(frozen=True)
class DatasetEntry:
    """One published dataset archive.

    Attributes:
        name: Registry name; also the folder the data lands in (``DEST/name``).
        family: ``"pix2pix"`` (paired, ``NAME.tar.gz``) or ``"cyclegan"`` (unpaired, ``NAME.zip``).
        archive: The archive's file name as published.
        layout: The layout ``check-data`` expects after extraction (``ab`` or ``unpaired``).
        description: What the domains hold.
        sha256: The archive's known sha256, or None when not pinned.
        note: When set, the authors' URL is not used: only ``--mirror`` downloads it (the note
            says why).
    """

    name: str
    family: str
    archive: str
    layout: str
    description: str
    sha256: Optional[str] = None
    note: Optional[str] = None

    @property
    def base_url(self) -> str:
        """The authors' base URL for this entry's family."""
        return _BASE_URLS[self.family]

    def url(self, mirror: Optional[str] = None) -> str:
        """The archive's URL: under ``mirror`` when given, else under the authors' base URL."""
        base = mirror if mirror else self.base_url
        return base.rstrip("/") + "/" + self.archive


# Where each family's archives are published (a family is a publisher's collection, not a method).
_BASE_URLS = {"pix2pix": PIX2PIX_BASE_URL, "cyclegan": CYCLEGAN_BASE_URL}


def _pix2pix(name: str, description: str, note: Optional[str] = None) -> DatasetEntry:
    return DatasetEntry(name, "pix2pix", f"{name}.tar.gz", "ab", description, note=note)


def _cyclegan(name: str, description: str, archive: Optional[str] = None,
              note: Optional[str] = None) -> DatasetEntry:
    return DatasetEntry(name, "cyclegan", archive or f"{name}.zip", "unpaired", description, note=note)


# Image counts are the authors' figures (their download script's comments).
_ENTRIES = [
    _pix2pix("facades", "400 building facades: photo (A, left) | label map (B, right); "
                        "labels -> photos is --direction BtoA"),
    _pix2pix("cityscapes", "2975 street scenes: photo (A) | label map (B)", note=_CITYSCAPES_NOTE),
    _pix2pix("maps", "1096 Google Maps tiles: aerial photo (A) | map (B)"),
    _pix2pix("edges2shoes", "50k shoes: edge map (A) | photo (B)"),
    _pix2pix("edges2handbags", "137k handbags: edge map (A) | photo (B)"),
    _pix2pix("night2day", "20k webcam frames: night (A) | day (B)"),
    _cyclegan("horse2zebra", "horses (A) and zebras (B) from ImageNet"),
    _cyclegan("monet2photo", "Monet paintings (A) and landscape photos (B)"),
    _cyclegan("summer2winter_yosemite", "Yosemite in summer (A) and winter (B)"),
    _cyclegan("apple2orange", "apples (A) and oranges (B) from ImageNet"),
    _cyclegan("cezanne2photo", "Cezanne paintings (A) and landscape photos (B)"),
    _cyclegan("ukiyoe2photo", "Ukiyo-e prints (A) and landscape photos (B)"),
    _cyclegan("vangogh2photo", "Van Gogh paintings (A) and landscape photos (B)"),
    _cyclegan("iphone2dslr_flower", "flower photos from iPhones (A) and DSLRs with shallow depth of field (B)"),
    _cyclegan("maps_unpaired", "the maps set as unpaired folders (CycleGAN's maps.zip)", archive="maps.zip"),
    _cyclegan("facades_unpaired", "the facades set as unpaired folders (CycleGAN's facades.zip)",
              archive="facades.zip"),
    _cyclegan("cityscapes_unpaired", "the cityscapes set as unpaired folders (CycleGAN's cityscapes.zip)",
              archive="cityscapes.zip", note=_CITYSCAPES_NOTE),
]

DATASETS: Dict[str, DatasetEntry] = {entry.name: entry for entry in _ENTRIES}


def list_datasets() -> List[str]:
    """The registry's dataset names, pix2pix sets first, in the order ``datasets list`` shows."""
    return list(DATASETS)


def get_dataset(name: str) -> DatasetEntry:
    """The registry entry called ``name``.

    Raises:
        UnknownDatasetError: Unknown name (the message lists the valid ones).
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; valid names: {', '.join(list_datasets())}") from None
