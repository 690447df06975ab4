#!/usr/bin/env python3
"""Save a grid of training items exactly as the model sees them (after resize, crop and flip).

Looking at what the loss really compares is the cheapest check there is: a wrong direction,
a half-width split, a colour swap or a crop that cuts away the content all show at a glance.

    python tools/show_training_pairs.py ../shared/data/facades --direction BtoA \\
        --load-size 142 --crop-size 128 --count 8 --out pairs.png

Each row is one item: input (``a``) on the left, target (``b``) on the right. ``--epoch``
picks the epoch whose random crops and flips are shown (items are a pure function of
seed, epoch and index, so this is what training draws).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from translate.data import build_dataset
from translate.data.io import tensor_to_image, to_channels, write_image


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("data", help="dataset folder")
    p.add_argument("--method", default="pix2pix", help="pix2pix (paired) or cyclegan (unpaired)")
    p.add_argument("--split", default="train")
    p.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"])
    p.add_argument("--preprocess", default="resize_and_crop")
    p.add_argument("--load-size", type=int, default=286)
    p.add_argument("--crop-size", type=int, default=256)
    p.add_argument("--no-flip", dest="flip", action="store_false")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epoch", type=int, default=0)
    p.add_argument("--count", type=int, default=8, help="items to show")
    p.add_argument("--out", required=True, help="PNG file to write")
    args = p.parse_args(argv)

    ds = build_dataset(args.data, method=args.method, split=args.split, direction=args.direction,
                       preprocess=args.preprocess, load_size=args.load_size,
                       crop_size=args.crop_size, flip=args.flip, seed=args.seed, validate=False)
    ds.set_epoch(args.epoch)
    rows = []
    for i in range(min(args.count, len(ds))):
        item = ds[i]
        a, b = (to_channels(tensor_to_image(item[k]), 3) for k in ("a", "b"))
        gap = np.full((a.shape[0], 4, 3), 255, np.uint8)
        rows.append(np.concatenate([a, gap, b], axis=1))
        print(f"row {i}: a = {item['path_a']}, b = {item['path_b']}", file=sys.stderr)
    sep = np.full((4, rows[0].shape[1], 3), 255, np.uint8)
    grid = np.concatenate([r for row in rows for r in (row, sep)][:-1], axis=0)
    write_image(args.out, grid)
    print(f"wrote {args.out} ({len(rows)} items: input | target)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
