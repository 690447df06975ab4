"""The package's import architecture (docs/architecture.md).

Two checks, each first shown to fail on a deliberately bad package:
- import-linter runs the contracts declared in setup.cfg: the layers (each module imports only
  from its own layer or below), training below inference, no cycles between sibling modules;
- an AST scan of every import (module level and inside functions): no cycle between modules, and
  no module uses another module's ``_private`` names, neither imported nor as an attribute
  (``translator._direction(...)``) of something defined elsewhere in the package.
"""

import ast
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set

from conftest import repo_root


# ----------------------------------------------------------------------------- AST checker


@dataclass
class Package:
    name: str
    modules: Dict[str, Path]  # dotted name -> file
    packages: Set[str]  # dotted names that are packages (__init__.py)


def scan_package(root: Path) -> Package:
    root = Path(root)
    modules, packages = {}, set()
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
            packages.add(".".join(parts))
        modules[".".join(parts)] = path
    return Package(root.name, modules, packages)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _resolve(pkg: Package, importer: str, level: int, module: str) -> str:
    if level == 0:
        return module
    base = importer.split(".") if importer in pkg.packages else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _private_definitions(pkg: Package, trees) -> Dict[str, Set[str]]:
    """private name -> modules that define it (module level or as a class member)."""
    defined: Dict[str, Set[str]] = {}
    for mod, tree in trees.items():
        scopes = [tree.body] + [n.body for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
        for body in scopes:
            for node in body:
                names = []
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names = [node.name]
                elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    names = [t.id for t in targets if isinstance(t, ast.Name)]
                for name in names:
                    if _is_private(name):
                        defined.setdefault(name, set()).add(mod)
    return defined


# Upward imports declared in setup.cfg (ignore_imports): Translator.translate_folder is a
# convenience entry to the folder job in convert, imported only when it is called.
DECLARED_UPWARD = {("translate.translator", "translate.convert")}
DECLARED_UPWARD.add(("translate.translator", "translate.export"))  # Translator.load(backend=...)
DECLARED_UPWARD.add(("translate.translator", "translate.video"))  # Translator.translate_video


def check_package(root: Path, declared=frozenset()) -> Dict[str, List[str]]:
    """Scan a package: its import graph, cycles and uses of other modules' private names.

    ``declared``: (importer, imported) edges left out of the cycle search (declared exceptions).
    """
    pkg = scan_package(root)
    trees = {mod: ast.parse(path.read_text(encoding="utf-8"), str(path)) for mod, path in pkg.modules.items()}
    private_defs = _private_definitions(pkg, trees)
    graph: Dict[str, Set[str]] = {mod: set() for mod in pkg.modules}
    private: List[str] = []
    for mod, tree in trees.items():
        module_aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == pkg.name and alias.name in pkg.modules:
                        graph[mod].add(alias.name)
                        module_aliases[alias.asname or alias.name] = alias.name
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(pkg, mod, node.level, node.module or "")
                if base.split(".")[0] != pkg.name:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in pkg.modules:  # a module: `from . import distributed as D`
                        graph[mod].add(sub)
                        module_aliases[alias.asname or alias.name] = sub
                        continue
                    if base in pkg.modules:
                        graph[mod].add(base)
                    if _is_private(alias.name) and base != mod:
                        private.append(f"{mod} imports {alias.name} from {base} (line {node.lineno})")
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
                continue
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if owner in module_aliases:
                private.append(f"{mod} uses {module_aliases[owner]}.{node.attr} (line {node.lineno})")
            elif owner not in ("self", "cls") and node.attr in private_defs and mod not in private_defs[node.attr]:
                where = ", ".join(sorted(private_defs[node.attr]))
                private.append(f"{mod} uses {node.attr}, private to {where} (line {node.lineno})")
    acyclic = {m: {t for t in ts if (m, t) not in declared} for m, ts in graph.items()}
    return {"cycles": [" -> ".join(c) for c in find_cycles(acyclic)], "private": private,
            "graph": {k: sorted(v) for k, v in graph.items()}}


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """The strongly connected components with more than one module (or a self-import)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    cycles: List[List[str]] = []

    def visit(v: str) -> None:  # Tarjan
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


# ----------------------------------------------------------------------------- a bad package


def _write_bad_package(root: Path) -> Path:
    files = {
        "__init__.py": "",
        "low.py": """
            from .high import render      # low imports high ...

            _SECRET = 1

            class Thing:
                def _hidden(self):
                    return _SECRET
        """,
        "high.py": """
            from .low import _SECRET, Thing   # ... and high imports low: a cycle; _SECRET is private

            def render():
                return Thing()._hidden()       # a private method of another module's class
        """,
    }
    pkg = root / "badpkg"
    pkg.mkdir(parents=True)
    for name, text in files.items():
        (pkg / name).write_text(textwrap.dedent(text))
    (root / ".importlinter").write_text(textwrap.dedent("""
        [importlinter]
        root_package = badpkg

        [importlinter:contract:layers]
        name = high above low
        type = layers
        containers = badpkg
        layers =
            high
            low

        [importlinter:contract:acyclic]
        name = no cycles
        type = acyclic_siblings
        ancestors =
            badpkg
    """))
    return pkg


def _lint_imports(cwd: Path, config: str):
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={config!r}, no_cache=True, no_logo=True))")
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_checker_reports_a_cycle_and_private_uses(tmp_path):
    report = check_package(_write_bad_package(tmp_path))
    assert report["cycles"] == ["badpkg.high -> badpkg.low"]
    assert any("badpkg.high imports _SECRET from badpkg.low" in p for p in report["private"])
    assert any("badpkg.high uses _hidden, private to badpkg.low" in p for p in report["private"])


def test_import_linter_reports_broken_contracts(tmp_path):
    _write_bad_package(tmp_path)
    r = _lint_imports(tmp_path, ".importlinter")
    assert r.returncode != 0, r.stdout + r.stderr
    assert "badpkg.low is not allowed to import badpkg.high" in r.stdout
    assert "Contracts: 0 kept, 2 broken." in r.stdout


# ----------------------------------------------------------------------------- the real package


def test_package_keeps_its_import_contracts():
    r = _lint_imports(repo_root(), "setup.cfg")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


def test_package_has_no_import_cycles_and_no_private_cross_uses():
    report = check_package(repo_root() / "translate", DECLARED_UPWARD)
    assert not report["cycles"], "import cycles:\n" + "\n".join(report["cycles"])
    assert not report["private"], "private names used across modules:\n" + "\n".join(report["private"])
    # the training package neither shadows nor imports the public entry points
    graph = report["graph"]
    assert "translate.train" not in graph
    for mod, targets in graph.items():
        if mod.startswith("translate.training"):
            assert not {"translate.evaluate", "translate.translator", "translate"} & set(targets), mod


def test_train_is_a_plain_function_of_the_package():
    code = ("import translate as t; a = t.train; import translate.training.loop; b = t.train; "
            "assert callable(a) and a is b; from translate import train; assert train is a")
    env = {**os.environ, "PYTHONPATH": str(repo_root())}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
