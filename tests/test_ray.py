"""``translate convert --engine ray`` and ``translate.ray.TranslateBatch`` on a real two-node Ray
cluster (two ``ray start`` nodes of two logical CPUs each on this machine) with a real S3-compatible server
(moto), both started once per session (tests/cloud_parts.py)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from translate.data.io import decode_image, encode_image, read_image
from translate.storage import Folder

from cloud_parts import objects
from conftest import make_translator, repo_root

pytestmark = pytest.mark.slow

ray = pytest.importorskip("ray", reason="the Ray tests need the [ray] extra (ray[data])")
RNG = np.random.default_rng(7)
# a folder the project has never seen: spaces, unicode, subfolders, 16-bit, JPEG, mixed sizes
NAMES = {"Straße 1.png": (48, 64, np.uint8), "子目录/照片 二.jpg": (40, 56, np.uint8),
         "deep/er/x y.png": (35, 21, np.uint16), "ok.png": (64, 64, np.uint8)}


def _img(h, w, dtype=np.uint8, c=3):
    hi = 256 if dtype == np.uint8 else 65536
    return RNG.integers(0, hi, (h, w, c), dtype=np.int64).astype(dtype)


def cli(*args, env, timeout=180):
    return subprocess.run([sys.executable, "-m", "translate", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=timeout)


def s3_folder(server, url):
    return Folder(url, {"endpoint_url": server.endpoint, "key": "testing", "secret": "testing"})


def upload_translator(server, folder: Path, url: str) -> str:
    dest = s3_folder(server, url)
    for p in (folder / "translator").iterdir():
        dest.put("translator/" + p.name, p.read_bytes())
    return url


def test_s3_to_s3_on_two_nodes_keeps_names_reports_bad_objects_and_reruns_idle(ray_cluster, s3_server, tmp_path):
    s3 = s3_server.client()
    s3_server.bucket("rayjob")
    model = upload_translator(s3_server, make_translator(tmp_path / "ck"), "s3://rayjob/models/tiny")
    photos = s3_folder(s3_server, "s3://rayjob/in")
    for rel, (h, w, dtype) in NAMES.items():
        photos.put(rel, encode_image(_img(h, w, dtype), "." + rel.rsplit(".", 1)[1]))
    photos.put("sub/truncated.png", encode_image(_img(30, 30), ".png")[:60])
    photos.put("notes.txt", b"not an image, not listed")
    # --tile-pixels 2048: the larger images take the tiled path inside the actor
    args = ["convert", model, "s3://rayjob/in/", "s3://rayjob/out/", "--engine", "ray", "--ray-address",
            ray_cluster.address, "--workers", "2", "--device", "cpu", "--no-progress", "--tile-pixels", "2048"]

    r = cli(*args, env=ray_cluster.env)
    assert r.returncode == 1, r.stderr
    assert "converted 4, skipped 0 (already done), failed 1 of 5" in r.stderr and "by 1 Ray worker" in r.stderr
    assert "failed: s3://rayjob/in/sub/truncated.png:" in r.stderr
    found = objects(s3, "rayjob", "out/")
    assert sorted(found) == sorted([*NAMES, "failed.jsonl"])
    for rel, (h, w, dtype) in NAMES.items():
        img = decode_image(s3.get_object(Bucket="rayjob", Key="out/" + rel)["Body"].read(), rel)
        assert img.shape == (h, w, 3) and img.dtype == dtype, rel
    failed = [json.loads(x) for x in s3.get_object(Bucket="rayjob", Key="out/failed.jsonl")["Body"].iter_lines()]
    assert [f["path"] for f in failed] == ["s3://rayjob/in/sub/truncated.png"] and failed[0]["reason"]
    assert not s3.list_multipart_uploads(Bucket="rayjob").get("Uploads")

    time.sleep(1.1)  # LastModified has a resolution of one second
    r = cli(*args, env=ray_cluster.env)
    assert r.returncode == 1 and "converted 0, skipped 4 (already done), failed 1 of 5" in r.stderr, r.stderr
    assert objects(s3, "rayjob", "out/") == found  # nothing written, failed.jsonl included


def _slow_translator(folder: Path) -> Path:
    """A U-Net big enough (ngf 32, 8 levels) that a 256 x 256 image takes a while on one thread."""
    import torch

    from translate.checkpoint import save_translator
    from translate.models import build_generator
    from translate.nn import init_weights

    torch.manual_seed(0)
    gen = build_generator("unet", input_nc=3, output_nc=3, num_downs=8, ngf=32)
    init_weights(gen)
    pre = {"input_nc": 3, "output_nc": 3, "size_multiple": gen.size_multiple, "batchnorm": "per_image",
           "crop_size": 256, "value_range": [-1.0, 1.0], "pad_mode": "reflect"}
    save_translator(folder / "translator", "pix2pix", {"a2b": gen}, pre, {"step": 0})
    return folder


def test_a_killed_worker_on_the_second_node_loses_and_duplicates_nothing(ray_cluster, s3_server, tmp_path):
    s3_server.bucket("raykill")
    photos = s3_folder(s3_server, "s3://raykill/in")
    n = 48
    for k in range(n):
        photos.put(f"img {k:03d}.png", encode_image(_img(256, 256), ".png"))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "translate", "convert", _slow_translator(tmp_path / "ck"), "s3://raykill/in",
         out, "--engine", "ray", "--ray-address", ray_cluster.address, "--workers", "2", "--cpus-per-worker", "2",
         "--batch-size", "1",
         "--device", "cpu", "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ray_cluster.env)
    killed, deadline = [], time.time() + 240
    while not killed and time.time() < deadline and proc.poll() is None:
        actors = ray_cluster.workers_on_node2("ConvertBatch")
        if actors and out.is_dir() and any(p.suffix == ".png" for p in out.iterdir()):
            for pid in actors:  # mid-job: outputs are being written and many remain
                os.kill(pid, signal.SIGKILL)
            killed = actors
        time.sleep(0.05)
    still_running = proc.poll() is None
    _, err = proc.communicate(timeout=180)
    assert killed, f"no translating worker showed up on the second node; {err[-2000:]}"
    assert still_running, "the job ended before the kill: make it longer"
    assert proc.returncode == 0, err
    assert f"converted {n}, skipped 0 (already done), failed 0 of {n}" in err, err
    names = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert names == [f"img {k:03d}.png" for k in range(n)]  # each exactly once, no temp file left
    for k in range(n):
        assert read_image(out / f"img {k:03d}.png").shape == (256, 256, 3)


README_MARK = "<!-- ray-map-batches-example -->"


def readme_example() -> str:
    text = (repo_root() / "README.md").read_text(encoding="utf-8")
    block = text[text.index(README_MARK):]
    return re.search(r"```python\n(.*?)```", block, re.S).group(1)


def test_readme_map_batches_example_runs_as_written(ray_cluster, tmp_path):
    make_translator(tmp_path / "checkpoints" / "facades")
    sizes = [(64, 64), (64, 64), (48, 80)]
    for k, (h, w) in enumerate(sizes):
        (tmp_path / "photos").mkdir(exist_ok=True)
        (tmp_path / "photos" / f"{k}.png").write_bytes(encode_image(_img(h, w), ".png"))
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    env = dict(ray_cluster.env, RAY_ADDRESS=ray_cluster.address)
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, env=env,
                       timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    written = sorted((tmp_path / "translated").glob("*.png"))
    assert len(written) == len(sizes)
    assert sorted(read_image(p).shape for p in written) == sorted((h, w, 3) for h, w in sizes)


def test_translate_batch_on_encoded_bytes_from_s3(ray_cluster, s3_server, tmp_path):
    """The callable class over a bytes column, translator read from S3, PNG bytes out."""
    s3_server.bucket("raybytes")
    model = upload_translator(s3_server, make_translator(tmp_path / "ck"), "s3://raybytes/m")
    images = [_img(32, 48), _img(40, 40, np.uint16)]
    code = f"""
import ray, numpy as np
from translate.ray import TranslateBatch
from translate.data.io import encode_image, decode_image
images = [np.load({str(tmp_path / 'a.npy')!r}), np.load({str(tmp_path / 'b.npy')!r})]
ds = ray.data.from_items([{{"bytes": encode_image(im, ".png"), "k": k}} for k, im in enumerate(images)])
ds = ds.map_batches(TranslateBatch, fn_constructor_kwargs={{"translator": {model!r}, "column": "bytes",
                    "output_column": "out", "output_format": "png"}}, compute=ray.data.ActorPoolStrategy(size=1),
                    batch_size=2, num_cpus=1)
rows = sorted(ds.take_all(), key=lambda r: r["k"])
for row, im in zip(rows, images):
    out = decode_image(row["out"])
    assert out.shape == im.shape and out.dtype == im.dtype, (out.shape, out.dtype)
print("ok", len(rows))
"""
    np.save(tmp_path / "a.npy", images[0])
    np.save(tmp_path / "b.npy", images[1])
    env = dict(ray_cluster.env, RAY_ADDRESS=ray_cluster.address)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0 and "ok 2" in r.stdout, r.stderr[-3000:]
