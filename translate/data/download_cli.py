"""``translate datasets list`` and ``translate datasets download NAME``: the argparse adapters."""

from __future__ import annotations

import argparse
import json
import sys

from .catalog import CYCLEGAN_BASE_URL, DATASETS, MIRROR_ENV, PIX2PIX_BASE_URL, list_datasets
from .check import format_report
from .download import download_dataset, resolve_mirror


def add_datasets_parser(sub) -> argparse.ArgumentParser:
    """Adds ``datasets list|download`` to the ``translate`` subparsers ``sub``."""
    p = sub.add_parser(
        "datasets", help="list and download the standard pix2pix and CycleGAN datasets",
        description="The standard datasets of the pix2pix and CycleGAN papers, from the archives their "
                    f"authors publish ({PIX2PIX_BASE_URL}NAME.tar.gz, {CYCLEGAN_BASE_URL}NAME.zip).")
    dsub = p.add_subparsers(dest="datasets_command", metavar="ACTION", required=True, help="what to do")

    lst = dsub.add_parser("list", help="the datasets that can be downloaded",
                          description="List the datasets `translate datasets download` knows.")
    lst.add_argument("--json", action="store_true", help="print machine-readable JSON")
    lst.set_defaults(func=_cmd_list)

    dl = dsub.add_parser(
        "download", help="download, verify and extract a dataset, then check it",
        description="Download a dataset archive (resuming a partial download), check its size and sha256 "
                    "(recorded in DEST/ARCHIVE.sha256 on the first download and compared on every later "
                    "one), extract it safely into DEST/NAME and run check-data on it. Exit status 1 when "
                    "check-data finds problems.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    dl.add_argument("name", metavar="NAME", choices=list_datasets(),
                    help="dataset name (see `translate datasets list`)")
    dl.add_argument("--dest", default="datasets", help="data root; the dataset goes to DEST/NAME")
    dl.add_argument("--mirror", default=None, metavar="URL",
                    help=f"base URL of a site that keeps the archives under their published names "
                         f"(http, https or file); default: ${MIRROR_ENV}, else the authors' URL")
    dl.add_argument("--keep-archive", action="store_true", help="keep DEST/ARCHIVE after extracting it")
    dl.add_argument("--retries", type=int, default=3, help="further tries, each resuming, when the connection breaks")
    dl.add_argument("--no-progress", action="store_true", help="no progress bar")
    dl.set_defaults(func=_cmd_download)
    return p


def _cmd_list(args, argv) -> int:
    rows = [{"name": e.name, "family": e.family, "layout": e.layout, "archive": e.archive,
             "url": e.url(), "description": e.description, "sha256": e.sha256, "note": e.note}
            for e in DATASETS.values()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for family, layout in (("pix2pix", "paired ab: A|B side by side"),
                           ("cyclegan", "unpaired: trainA/ trainB/ testA/ testB/")):
        print(f"{family} ({layout}):")
        for r in rows:
            if r["family"] == family:
                extra = " [mirror only]" if r["note"] else ""
                print(f"  {r['name']:<{width}}  {r['description']}{extra}")
    print("\ntranslate datasets download NAME [--dest datasets] [--mirror URL]")
    return 0


def _cmd_download(args, argv) -> int:
    mirror = resolve_mirror(args.mirror)
    result = download_dataset(args.name, args.dest, mirror=mirror, progress=not args.no_progress,
                              keep_archive=args.keep_archive, retries=args.retries)
    if result.already_there:
        print(f"{result.root} already exists: nothing downloaded (remove it to download again)", file=sys.stderr)
    else:
        print(f"downloaded {result.url} (sha256 {result.sha256}) into {result.root}", file=sys.stderr)
    print(format_report(result.report))
    return 0 if result.report.get("ok") else 1
