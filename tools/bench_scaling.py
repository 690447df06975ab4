"""Measure ``translate convert``: Ray engine vs local engine, S3 (a local moto server) vs local disk,
and the driver's peak memory while converting many images. Prints one JSON object per run and a
summary; the figures in docs/scaling.md come from this script.

    flock /tmp/translate-measure.lock python tools/bench_scaling.py --data FACADES/train --out /tmp/scaling

It builds a random-weight pix2pix translator at a real size (unet_256: 8 levels, ngf 64, batch
norm, 54 M parameters), takes the first N images of --data (sorted by name), starts a moto S3
server and a one-node Ray cluster on free ports, runs every command twice in alternation (local,
ray, local, ray, ...), and stops what it started. Needs the [ray] and [cloud] extras and moto[server].
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_translator(folder: Path, num_downs: int, ngf: int) -> Path:
    import torch

    from translate.checkpoint import save_translator
    from translate.models import build_generator
    from translate.nn import init_weights

    torch.manual_seed(0)
    gen = build_generator("unet", input_nc=3, output_nc=3, num_downs=num_downs, ngf=ngf)
    init_weights(gen)
    pre = {"input_nc": 3, "output_nc": 3, "size_multiple": gen.size_multiple, "batchnorm": "per_image",
           "crop_size": 256, "value_range": [-1.0, 1.0], "pad_mode": "reflect"}
    save_translator(folder / "translator", "pix2pix", {"a2b": gen}, pre, {"step": 0})
    return folder


API_DRIVER = """
import sys
from translate.ray import RayOptions, convert_with_ray
job = convert_with_ray(sys.argv[1], sys.argv[2], sys.argv[3], RayOptions(address=sys.argv[4], workers=1,
                       cpus_per_worker=float(sys.argv[5])), device="cpu", progress=False)
print(job.summary.line(), file=sys.stderr)
"""


def run(name: str, args, env, out_dir=None, api: bool = False) -> dict:
    """Run ``translate convert ...`` (or the Python API driver); wall time, the summary's own figures,
    the peak RSS of the driver process."""
    if out_dir is not None:
        shutil.rmtree(out_dir, ignore_errors=True)
    if api:
        cmd = [sys.executable, "-c", API_DRIVER, *map(str, args)]
    else:
        cmd = [sys.executable, "-m", "translate", "convert", *map(str, args), "--no-progress"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
            peak = max(peak, int(re.search(r"VmHWM:\s+(\d+)", status).group(1)))
        except (OSError, AttributeError):
            pass
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    err = proc.stderr.read()
    line = next((ln for ln in err.splitlines() if ln.startswith("converted ")), "")
    m = re.search(r"converted (\d+).* in ([\d.]+)s \(([\d.]+) img/s\)", line)
    result = {"run": name, "exit": proc.returncode, "wall_s": round(wall, 2), "driver_peak_rss_mb": round(peak / 1024, 1),
              "converted": int(m.group(1)) if m else None, "job_s": float(m.group(2)) if m else None,
              "job_img_s": float(m.group(3)) if m else None, "line": line,
              "cmd": ("python -c API_DRIVER " if api else "translate convert ") + " ".join(map(str, args))
              + ("" if api else " --no-progress")}
    if proc.returncode != 0:
        result["stderr_tail"] = err[-1500:]
    print(json.dumps(result), flush=True)
    return result


def start_moto(env):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    endpoint = f"http://127.0.0.1:{port}"
    import urllib.request

    for _ in range(150):
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
            return proc, endpoint
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("moto server did not start")


def start_ray(env, temp_dir: str, cpus: int) -> str:
    port = free_port()
    subprocess.run([str(BIN / "ray"), "start", "--head", "--port", str(port), "--num-cpus", str(cpus),
                    "--temp-dir", temp_dir, "--include-dashboard=false", "--disable-usage-stats",
                    "--node-ip-address", "127.0.0.1", "--object-store-memory", str(300 * 2**20)],
                   env=env, check=True, capture_output=True)
    return f"127.0.0.1:{port}"


def stop_ray(temp_dir: str, address: str) -> None:
    """Stop the cluster this script started: its processes name its temp folder or its GCS port."""
    port = address.rsplit(":", 1)[1]
    mine = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
        except OSError:
            continue
        if temp_dir in cmd or (f":{port} " in cmd + " " and "ray" in cmd):
            mine.append(int(d))
    mine += _descendants(mine)
    for sig, wait in ((15, 10), (9, 2)):
        for pid in mine:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + wait
        while time.time() < deadline and any(_running(p) for p in mine):
            time.sleep(0.2)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _descendants(roots):
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                parents[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                pass
    found, frontier = [], set(roots)
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier and p not in found and p not in roots}
        found += sorted(frontier)
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def memory_runs(args, tiny, src, big, work, env, ray_args, address):
    """The driver's peak memory: CLI and Python API drivers of the Ray engine, and the local engine."""
    return [
        run(f"ray driver memory, {args.rss_n} images (tiny translator)",
            [tiny, big, work / "out_big_ray", "--device", "cpu", *ray_args], env, work / "out_big_ray"),
        run(f"ray driver memory, Python API driver, {args.rss_n} images (tiny translator)",
            [tiny, big, work / "out_big_api", address, os.cpu_count() or 2], env,
            work / "out_big_api", api=True),
        run(f"ray driver memory, {args.n} images (tiny translator)",
            [tiny, src, work / "out_small_ray", "--device", "cpu", *ray_args], env, work / "out_small_ray"),
        run(f"local driver memory, {args.rss_n} images (tiny translator)",
            [tiny, big, work / "out_big_local", "--device", "cpu"], env, work / "out_big_local"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="folder of images (e.g. facades/train)")
    ap.add_argument("--out", required=True, help="work folder (inputs, outputs, translator)")
    ap.add_argument("--n", type=int, default=200, help="images for the throughput runs")
    ap.add_argument("--rss-n", type=int, default=2000, help="images for the driver-memory run (replicated)")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each throughput variant, alternated")
    ap.add_argument("--memory-only", action="store_true", help="only the driver-memory runs")
    ap.add_argument("--engines-only", action="store_true", help="only local vs ray on disk (no S3, no memory runs)")
    args = ap.parse_args()

    work = Path(args.out)
    work.mkdir(parents=True, exist_ok=True)
    images = sorted(Path(args.data).iterdir(), key=lambda p: p.name)[: args.n]
    src = work / f"in{args.n}"
    if not src.is_dir():
        src.mkdir()
        for p in images:
            shutil.copy(p, src / p.name)
    big = work / f"in{args.rss_n}"
    if not big.is_dir():  # --rss-n images: the N images repeated in subfolders (hard links)
        for k in range(args.rss_n):
            p = src / images[k % len(images)].name
            dst = big / f"r{k // len(images):02d}" / p.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.link(p, dst)
    ck = work / "unet256_ngf64" if (work / "unet256_ngf64").is_dir() else make_translator(work / "unet256_ngf64", 8, 64)
    tiny = work / "unet_tiny" if (work / "unet_tiny").is_dir() else make_translator(work / "unet_tiny", 5, 8)

    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("OMP_NUM_THREADS", None)
    moto, endpoint = start_moto(env)
    env["AWS_ENDPOINT_URL"] = endpoint
    temp_dir = tempfile.mkdtemp(prefix="rb", dir="/tmp")
    address = start_ray(env, temp_dir, os.cpu_count() or 2)
    ray_args = ["--engine", "ray", "--ray-address", address, "--workers", "1", "--cpus-per-worker",
                str(os.cpu_count() or 2)]
    print(json.dumps({"uptime_start": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}))
    try:
        import boto3

        s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
        s3.create_bucket(Bucket="bench")
        for p in sorted(src.iterdir()):
            s3.put_object(Bucket="bench", Key=f"in/{p.name}", Body=p.read_bytes())
        results = []
        for rep in range(0 if args.memory_only else args.repeats):
            results.append(run(f"local disk->disk #{rep + 1}", [ck, src, work / "out_local", "--device", "cpu"],
                               env, work / "out_local"))
            results.append(run(f"ray disk->disk #{rep + 1}", [ck, src, work / "out_ray", "--device", "cpu",
                                                              *ray_args], env, work / "out_ray"))
            if not args.engines_only:
                results.append(run(f"local s3->s3 #{rep + 1}", [ck, "s3://bench/in", f"s3://bench/out{rep}",
                                                                "--device", "cpu"], env))
        if not args.engines_only:
            results += memory_runs(args, tiny, src, big, work, env, ray_args, address)
    finally:
        stop_ray(temp_dir, address)
        moto.terminate()
    print(json.dumps({"uptime_end": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}))
    (work / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
