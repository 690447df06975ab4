#!/usr/bin/env python3
"""Write docs/cli.md, the command reference, from the ``translate`` argparse parser.

    python tools/gen_cli_docs.py            # regenerate docs/cli.md
    python tools/gen_cli_docs.py --check    # exit 1 when docs/cli.md is out of date

Every command and subcommand (``translate train pix2pix``, ``translate datasets download``, ...)
gets a section holding exactly its ``--help`` text, rendered 100 columns wide so the file does
not depend on the terminal. tests/test_cli_docs.py runs the check.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "cli.md"
WIDTH = 100
REGENERATE = "python tools/gen_cli_docs.py"


def walk(parser: argparse.ArgumentParser, words: Tuple[str, ...] = ("translate",)
         ) -> Iterator[Tuple[Tuple[str, ...], argparse.ArgumentParser, Optional[str]]]:
    """Yields (command words, parser, one-line help) for ``parser`` and every subparser, depth first."""
    yield words, parser, None
    for action in parser._actions:  # argparse exposes subparsers only through _actions
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                for child_words, child, child_help in walk(sub, words + (name,)):
                    yield child_words, child, child_help if child_words != words + (name,) else helps.get(name)


def _help_text(parser: argparse.ArgumentParser) -> str:
    text = parser.format_help().rstrip()
    # Python < 3.10 names the section "optional arguments"; keep the file version-independent.
    return text.replace("\noptional arguments:\n", "\noptions:\n")


def render() -> str:
    """The whole docs/cli.md text."""
    from translate.cli import build_parser

    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)  # argparse reads the width when each help is formatted
    try:
        sections = [(words, one_line, _help_text(parser)) for words, parser, one_line in walk(build_parser())]
    finally:
        if before is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = before
    lines: List[str] = [
        "# Command reference",
        "",
        "Every `translate` command with its options, exactly as `--help` prints them. This file is",
        f"generated from the command-line parser: run `{REGENERATE}` after changing an option",
        "(the test suite fails while it is out of date). Exit status: 0 when everything asked for",
        "succeeded, 1 when a check found problems or some files failed, 2 for usage, configuration,",
        "data and checkpoint errors.",
        "",
    ]
    for words, one_line, _text in sections[1:]:
        anchor = "-".join(words).replace(".", "")
        lines.append(f"- [`{' '.join(words)}`](#{anchor})" + (f": {one_line}" if one_line else ""))
    lines.append("")
    for words, _one_line, text in sections:
        lines += [f"## {' '.join(words)}", "", "```text", text, "```", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="do not write; exit 1 when docs/cli.md differs")
    p.add_argument("--out", type=Path, default=DOC, help="file to write or check")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current == text:
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(args.out), "generated", lineterm="")
        print("\n".join(list(diff)[:60]), file=sys.stderr)
        print(f"{args.out} is out of date: regenerate it with `{REGENERATE}`", file=sys.stderr)
        return 1
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
