"""docs/cli.md is the parser's --help for every command: regenerate it with tools/gen_cli_docs.py."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TOOL = Path(__file__).resolve().parents[1] / "tools" / "gen_cli_docs.py"


def _load():
    spec = importlib.util.spec_from_file_location("gen_cli_docs", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_cli_md_is_up_to_date():
    gen = _load()
    generated = gen.render()
    current = gen.DOC.read_text() if gen.DOC.exists() else ""
    assert current == generated, (
        f"docs/cli.md is out of date with the command-line parser: regenerate it with "
        f"`{gen.REGENERATE}` (from the repository root) and commit the result")


def test_every_command_has_its_section():
    gen = _load()
    from translate.cli import build_parser

    text = gen.render()
    words = [w for w, _p, _h in gen.walk(build_parser())]
    assert ("translate", "datasets", "download") in words and ("translate", "train", "pix2pix") in words
    for w in words:
        assert f"\n## {' '.join(w)}\n" in text


@pytest.mark.slow  # three interpreter starts, each importing torch
def test_check_mode_reports_a_stale_file(tmp_path):
    gen = _load()
    stale = tmp_path / "cli.md"
    stale.write_text(gen.render().replace("--max-steps", "--max-stepz", 1))
    proc = subprocess.run([sys.executable, str(TOOL), "--check", "--out", str(stale)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and "python tools/gen_cli_docs.py" in proc.stderr
    assert subprocess.run([sys.executable, str(TOOL), "--out", str(stale)], capture_output=True).returncode == 0
    assert subprocess.run([sys.executable, str(TOOL), "--check", "--out", str(stale)]).returncode == 0
