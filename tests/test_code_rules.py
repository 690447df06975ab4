"""Code rules of the package (DESIGN.md section 5), checked on the source, each first shown to
catch a deliberately bad sample:

- no function longer than 80 lines (from ``def`` to its last line, docstring included);
- a method's name is compared only in the method's own module: everything else asks the method
  registry (``translate.methods``) what the method is, so a new method needs no other edit.
"""

import ast
import sys
import textwrap
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

from conftest import repo_root

from translate.methods import get_method, list_methods
from translate.models import list_generators

MAX_FUNCTION_LINES = 80


# ----------------------------------------------------------------------------- function length


def functions(tree: ast.AST, prefix: str = "") -> Iterator[Tuple[str, ast.AST]]:
    """(qualified name, node) of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node
            yield from functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            yield from functions(node, f"{prefix}{node.name}.")
        else:
            yield from functions(node, prefix)


def long_functions(root: Path, limit: int = MAX_FUNCTION_LINES) -> Dict[str, int]:
    """"path::qualname" (path relative to ``root``'s parent) -> lines, for functions over ``limit``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        for name, node in functions(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                out[f"{rel}::{name}"] = lines
    return out


def test_length_checker_finds_long_functions_and_methods(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(80))
    (pkg / "m.py").write_text(f"def long():\n{body}\n\n\ndef short():\n    return 1\n\n\n"
                              f"class C:\n    def method(self):\n    {body.replace(chr(10), chr(10) + '    ')}\n")
    assert long_functions(pkg) == {"pkg/m.py::long": 81, "pkg/m.py::C.method": 81}


def test_no_function_is_longer_than_80_lines():
    found = long_functions(repo_root() / "translate")
    assert not found, "functions over 80 lines: " + ", ".join(f"{k} ({v})" for k, v in sorted(found.items()))


# ----------------------------------------------------------------------------- method names


def _strings(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        for elt in node.elts:
            yield from _strings(elt)


def method_name_comparisons(root: Path, owners: Dict[str, Set[Path]], generator_names: Set[str]) -> List[str]:
    """Comparisons (``==``, ``!=``, ``in``...) with a method name outside the files that own it.

    ``owners``: method name -> the files allowed to compare it (the module that defines it). A
    name that is also a generator architecture may be compared with a ``netG`` / ``arch`` value.
    """
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            for operand in operands:
                others = " ".join(ast.unparse(o) for o in operands if o is not operand)
                names = [name for name in _strings(operand) if name in owners and path.resolve() not in owners[name]
                         and not (name in generator_names and ("netG" in others or "arch" in others))]
                if names:
                    found.append(f"{path}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_name_checker_finds_comparisons_outside_the_method(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "methods").mkdir(parents=True)
    (pkg / "methods" / "foo.py").write_text('def own(name):\n    return name == "foo"\n')
    (pkg / "bench.py").write_text(textwrap.dedent('''
        def rate(method, cfg):
            if method in ("foo", "bar"):
                return 1
            if cfg.netG == "foo":  # a generator of the same name: allowed
                return 2
            return 0 if "foo" != method else 3
    '''))
    owners = {"foo": {(pkg / "methods" / "foo.py").resolve()}, "bar": set()}
    found = method_name_comparisons(pkg, owners, generator_names={"foo"})
    assert [f.split(":", 2)[1] for f in found] == ["3", "7"], found


def test_method_names_are_compared_only_in_their_own_module():
    owners = {name: {Path(sys.modules[get_method(name).__module__].__file__).resolve()} for name in list_methods()}
    found = method_name_comparisons(repo_root() / "translate", owners, set(list_generators()))
    assert not found, "method names compared outside their module:\n" + "\n".join(found)
