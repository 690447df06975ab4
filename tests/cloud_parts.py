"""Real parts for the object-storage and Ray tests: an S3-compatible server (moto in server mode)
and a two-node Ray cluster on this machine, each started once per test session.

Both are started as their own processes on free ports and stopped at the end of the session; the
Ray cluster's processes are found by its own temp folder, so nothing else running on the machine
is touched. Tests that need a part that cannot start are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import pytest

BIN = Path(sys.executable).parent


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- S3 (moto server)


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen

    @property
    def env(self) -> Dict[str, str]:
        """What a process needs to reach the server through the usual AWS environment."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
                            aws_secret_access_key="testing", region_name="us-east-1")

    def bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name


def objects(s3, bucket, prefix):
    """key relative to prefix -> (ETag, LastModified) of every object under it."""
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            out[o["Key"][len(prefix):]] = (o["ETag"], o["LastModified"])
    return out


def start_s3_server() -> S3Server:
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as e:
        pytest.skip(f"moto[server] and boto3 are needed for the S3 tests ({e})")
    port = free_port()
    log = open(Path(tempfile.gettempdir()) / f"moto-{port}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2)
            return S3Server(endpoint, proc)
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.2)
    proc.kill()
    pytest.skip(f"the moto S3 server did not start on port {port} (see {log.name})")


def stop_process(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# ----------------------------------------------------------------------------- Ray (two nodes)


def _procs() -> Dict[int, str]:
    """pid -> command line of the processes on this machine."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                out[int(d)] = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                pass
    return out


def _parent(pid: int) -> Optional[int]:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(pid: int) -> List[int]:
    """All processes below ``pid``."""
    procs = list(_procs())
    found, frontier = [], {pid}
    while frontier:
        children = [p for p in procs if _parent(p) in frontier and p not in found]
        found.extend(children)
        frontier = set(children)
    return found


@dataclass
class RayCluster:
    address: str
    temp_dir: str
    env: Dict[str, str]
    node2_raylet: int
    own: List[int] = field(default_factory=list)

    def workers_on_node2(self, needle: str) -> List[int]:
        """Worker processes of the second node whose title contains ``needle``."""
        procs = _procs()
        return [p for p in descendants(self.node2_raylet) if needle in procs.get(p, "")]


def _ray_start(args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ray"), "start", *args], env=env, capture_output=True, text=True, timeout=180)


def _raylets(temp_dir: str) -> List[int]:
    return [p for p, cmd in _procs().items() if "raylet" in cmd.split(" ")[0] and temp_dir in cmd]


def start_ray_cluster(extra_env: Dict[str, str]) -> RayCluster:
    """A head node and a second node, two logical CPUs each, sharing this machine."""
    if not (BIN / "ray").exists():
        pytest.skip("ray is not installed (pip install 'translate-images[ray]')")
    port = free_port()
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, **extra_env, "PYTHONPATH": str(repo_root()), "RAY_USAGE_STATS_ENABLED": "0",
           "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"}
    # Two logical CPUs per node (the machine may have fewer): an actor pool and the read/write tasks
    # of a user's pipeline fit side by side. One thread per worker keeps the machine usable.
    common = ["--num-cpus", "2", "--object-store-memory", str(150 * 2**20), "--disable-usage-stats"]
    head = _ray_start(["--head", "--port", str(port), "--temp-dir", temp_dir, "--include-dashboard=false",
                       "--node-ip-address", "127.0.0.1", *common], env)
    if head.returncode != 0:
        _stop_ray(temp_dir, port)
        pytest.skip(f"ray start --head failed: {head.stderr.strip().splitlines()[-1:]}")
    before = set(_raylets(temp_dir))
    second = _ray_start(["--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", *common], env)
    after = set(_raylets(temp_dir)) - before
    if second.returncode != 0 or len(after) != 1:
        _stop_ray(temp_dir, port)
        pytest.skip(f"the second Ray node did not start: {second.stderr.strip().splitlines()[-1:]}")
    return RayCluster(f"127.0.0.1:{port}", temp_dir, env, after.pop())


def _stop_ray(temp_dir: str, port: Optional[int] = None) -> None:
    """Stop the processes of the cluster that lives in ``temp_dir`` on GCS ``port`` (and their workers)."""
    mine = [p for p, cmd in _procs().items()
            if (temp_dir in cmd or (port and f":{port} " in cmd + " " and "ray" in cmd)) and p != os.getpid()]
    victims = set(mine)
    for p in mine:
        victims.update(descendants(p))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in victims:
            try:
                os.kill(p, sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.time() + 10
        while time.time() < deadline and any(Path(f"/proc/{p}").exists() and _alive(p) for p in victims):
            time.sleep(0.2)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def stop_ray_cluster(cluster: RayCluster) -> None:
    _stop_ray(cluster.temp_dir, int(cluster.address.rsplit(":", 1)[1]))


@pytest.fixture(scope="session")
def s3_server():
    server = start_s3_server()
    yield server
    stop_process(server.proc)


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    cluster = start_ray_cluster(s3_server.env)
    yield cluster
    stop_ray_cluster(cluster)
