"""Run by tests under torchrun: train with the public API, then save this rank's weights and the
list of files this rank wrote inside the run folder (so the test can check that only rank 0 writes)."""

import builtins
import json
import os
import sys
import tempfile
from pathlib import Path

import torch

from translate.config import RunConfig

cfg_json, out_dir = sys.argv[1], Path(sys.argv[2])
cfg = RunConfig.from_dict(json.loads(cfg_json))
run_root = str(Path(cfg.checkpoints_dir).resolve())
rank = int(os.environ.get("RANK", "0"))
writes = []


def _watch(fn, path_arg=0, mode_check=None):
    def wrapper(*args, **kwargs):
        path = kwargs.get("dir") if fn is tempfile.mkstemp else (args[path_arg] if args else None)
        if path is not None and str(Path(str(path)).resolve()).startswith(run_root):
            if mode_check is None or mode_check(args, kwargs):
                writes.append(f"{fn.__name__}({path})")
        return fn(*args, **kwargs)
    return wrapper


builtins.open = _watch(builtins.open, mode_check=lambda a, k: any(c in (a[1] if len(a) > 1 else k.get("mode", "r"))
                                                                  for c in "wax+"))
os.replace = _watch(os.replace, path_arg=1)
os.rename = _watch(os.rename, path_arg=1)
os.mkdir = _watch(os.mkdir)
tempfile.mkstemp = _watch(tempfile.mkstemp)

from translate import train  # noqa: E402  (after the patches)

result = train(cfg)
nets = {name: {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        for name, net in result.method.nets.items()}
out_dir.mkdir(parents=True, exist_ok=True)
torch.save({"nets": nets, "writes": writes, "step": result.step}, out_dir / f"rank{rank}.pt")
