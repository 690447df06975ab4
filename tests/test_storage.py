"""Local folders and object-storage URLs (translate.storage), and conversion to and from a real
S3-compatible server (moto in server mode, started once per session) with the local engine."""

import hashlib
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from translate import Translator
from translate.checkpoint import CheckpointError
from translate.convert import ConvertError, convert_folder
from translate.data.io import decode_image, read_image
from translate.info import describe
from translate.storage import Folder, StorageError, is_url, parse_storage_options

from cloud_parts import objects
from conftest import make_translator, repo_root, write_image_file

RNG = np.random.default_rng(3)
NAMES = {"plain.png": (40, 52, 3, np.uint8), "with space/ünïcødé ø.png": (33, 47, 3, np.uint8),
         "deep/16 bit.png": (24, 30, 3, np.uint16), "photo.jpg": (64, 48, 3, np.uint8)}


def _img(h, w, c, dtype):
    hi = 256 if dtype == np.uint8 else 65536
    return RNG.integers(0, hi, (h, w, c), dtype=np.int64).astype(dtype)


def make_inputs(folder):
    for rel, spec in NAMES.items():
        write_image_file(folder / rel, _img(*spec))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def cli(*args, env=None):
    full = dict(os.environ, PYTHONPATH=str(repo_root()), **(env or {}))
    return subprocess.run([sys.executable, "-m", "translate", *map(str, args)], capture_output=True, text=True,
                          env=full, timeout=300)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_translator(tmp_path_factory.mktemp("ck"))


# ----------------------------------------------------------------------------- the interface


def test_urls_and_options_are_parsed():
    assert is_url("s3://b/x") and is_url("gs://b") and is_url("file:///tmp/x")
    assert not is_url("/tmp/x") and not is_url("relative/dir") and not is_url("C:/x")
    opts = parse_storage_options(["endpoint_url=http://h:9000", "anon=true", "client_kwargs.region_name=eu-west-1"])
    assert opts == {"endpoint_url": "http://h:9000", "anon": True, "client_kwargs": {"region_name": "eu-west-1"}}
    with pytest.raises(StorageError, match="KEY=VALUE"):
        parse_storage_options(["novalue"])
    with pytest.raises(StorageError, match="not a storage protocol"):
        Folder("nosuchproto://x/y").list()


def test_local_folder_lists_reads_and_puts_atomically(tmp_path):
    f = Folder(tmp_path / "d")
    assert f.list() == [] and not f.is_dir()
    f.put("a b/ünï.png", b"1234")
    f.put(".hidden/x.png", b"h")
    f.put("top.txt", b"t")
    assert f.list() == ["a b/ünï.png", "top.txt"]
    assert f.names() == {"a b/ünï.png", ".hidden/x.png", "top.txt"}
    assert f.read_bytes("a b/ünï.png") == b"1234" and f.exists("top.txt")
    assert Folder(f"file://{tmp_path / 'd'}").read_bytes("top.txt") == b"t"
    f.put("top.txt", b"new")  # replaces; no temp file left behind
    assert f.read_bytes("top.txt") == b"new"
    assert not [p for p in (tmp_path / "d").rglob("*.tmp")]
    f.delete("top.txt")
    assert not f.exists("top.txt")


def test_s3_folder_round_trip(s3_server):
    s3_server.bucket("iface")
    f = Folder("s3://iface/some prefix", {"endpoint_url": s3_server.endpoint, "key": "testing",
                                          "secret": "testing"})
    f.put("x/ünï cødé.png", b"abc")
    f.put(".hidden", b"h")
    assert f.list() == ["x/ünï cødé.png"] and f.read_bytes("x/ünï cødé.png") == b"abc"
    assert f.is_dir() and f.exists("x/ünï cødé.png") and not f.exists("nope")
    f.delete("x/ünï cødé.png")
    assert f.list() == []


@pytest.mark.slow
def test_s3_put_is_one_request_even_past_the_multipart_size(s3_server):
    """s3fs would upload 120 MB in parts; the put is one PutObject: the ETag is the plain MD5."""
    s3_server.bucket("big")
    data = np.random.default_rng(0).integers(0, 256, 120 * 2**20, dtype=np.uint8).tobytes()
    f = Folder("s3://big/p", {"endpoint_url": s3_server.endpoint, "key": "testing", "secret": "testing"})
    f.put("blob.bin", data)
    s3 = s3_server.client()
    head = s3.head_object(Bucket="big", Key="p/blob.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"') == hashlib.md5(data).hexdigest()  # a multipart ETag ends in "-N"
    assert not s3.list_multipart_uploads(Bucket="big").get("Uploads")


# ----------------------------------------------------------------------------- conversion


@pytest.mark.slow
def test_local_to_s3_to_local_with_a_translator_in_s3(ckpt, s3_server, tmp_path):
    s3 = s3_server.client()
    s3_server.bucket("conv")
    models = Folder("s3://conv/models/facades", {"endpoint_url": s3_server.endpoint, "key": "testing",
                                                 "secret": "testing"})
    for p in (ckpt / "translator").iterdir():
        models.put("translator/" + p.name, p.read_bytes())
    src = make_inputs(tmp_path / "in")
    env = s3_server.env

    # local -> S3, translator read from S3
    r = cli("convert", "s3://conv/models/facades", src, "s3://conv/out/", "--device", "cpu", "--no-progress",
            env=env)
    assert r.returncode == 1, r.stderr  # the broken file
    assert "broken.png" in r.stderr and "converted 4, skipped 0 (already done), failed 1 of 5" in r.stderr
    found = objects(s3, "conv", "out/")
    assert sorted(found) == sorted([*NAMES, "failed.jsonl"])
    for rel, (h, w, _c, dtype) in NAMES.items():
        img = decode_image(s3.get_object(Bucket="conv", Key="out/" + rel)["Body"].read(), rel)
        assert img.shape[:2] == (h, w) and img.dtype == dtype, rel
    failed = [json.loads(x) for x in s3.get_object(Bucket="conv", Key="out/failed.jsonl")["Body"].read().splitlines()]
    assert [os.path.basename(f["path"]) for f in failed] == ["broken.png"]
    assert not s3.list_multipart_uploads(Bucket="conv").get("Uploads")

    # the rerun skips everything and writes nothing (same ETags and times, failed.jsonl included)
    time.sleep(1.1)
    r = cli("convert", "s3://conv/models/facades", src, "s3://conv/out", "--device", "cpu", "--no-progress", env=env)
    assert r.returncode == 1 and "converted 0, skipped 4 (already done), failed 1 of 5" in r.stderr, r.stderr
    assert objects(s3, "conv", "out/") == found

    # S3 -> local with the endpoint and keys as storage options (the API behind the command)
    opts = {"endpoint_url": s3_server.endpoint, "key": "testing", "secret": "testing"}
    job = convert_folder(ckpt, "s3://conv/out", tmp_path / "back", device="cpu", progress=False,
                         storage_options=opts)
    assert (job.summary.converted, job.summary.failed) == (len(NAMES), 0)
    for rel, (h, w, _c, dtype) in NAMES.items():
        img = read_image(tmp_path / "back" / rel)
        assert img.shape[:2] == (h, w) and img.dtype == dtype, rel

    # info reads the translator from S3; a prefix without one is refused in one line
    assert describe("s3://conv/models/facades", opts)["translator"] == "s3://conv/models/facades/translator"
    with pytest.raises(CheckpointError, match="is not a checkpoint: no translator.json"):
        Translator.load("s3://conv/models/nothing", storage_options=opts)

    # serve loads it from S3 too
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from translate.serve import build_app

    with TestClient(build_app("s3://conv/models/facades", device="cpu", storage_options=opts)) as client:
        assert client.get("/v1/info").status_code == 200


@pytest.mark.slow
def test_s3_to_s3_refuses_an_output_inside_the_input(ckpt, s3_server, tmp_path):
    s3_server.bucket("inside")
    opts = {"endpoint_url": s3_server.endpoint, "key": "testing", "secret": "testing"}
    photos = Folder("s3://inside/photos", opts)
    photos.put("a.png", write_image_file(tmp_path / "a.png", _img(20, 20, 3, np.uint8)).read_bytes())
    t = Translator.load(ckpt, device="cpu")
    with pytest.raises(ConvertError, match="inside the input folder"):
        t.translate_folder("s3://inside/photos", "s3://inside/photos/out", storage_options=opts)
    summary = t.translate_folder("s3://inside/photos", "s3://inside/translated", storage_options=opts, progress=False)
    assert summary.converted == 1 and Folder("s3://inside/translated", opts).list() == ["a.png"]
    with pytest.raises(ConvertError, match="does not exist"):
        t.translate_folder("s3://inside/nothing-here", "s3://inside/t2", storage_options=opts)
