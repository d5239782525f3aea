"""The package's imports point one way: the layering rule of the README, read from the source.

    registry ← reference ← fast ← functional ← layers ← catalog ← factory
        ← {swap, optim, properties, plotting, bench} ← lab ← verify ← cli

A module may import modules of its own layer or of lower ones, never of a higher one, never the
package face (``actlab/__init__.py``, which only re-exports), and never in a circle. Every import
counts: at the top of a file and inside functions (the lazy ones too), read from the AST.
"""

from __future__ import annotations

import ast
from pathlib import Path


import actlab

SRC = Path(actlab.__file__).parent
PACKAGE = "actlab"

#: the layers, lowest first; a module's layer is the first entry its dotted name falls under
LAYERS: list[tuple[str, ...]] = [
    ("registry", "version", "machine"),
    ("reference",),
    ("fast",),
    ("functional",),
    ("layers",),
    ("catalog",),
    ("factory",),
    ("swap", "optim", "properties", "plotting", "bench"),
    ("lab",),
    ("verify", "lab.verify"),
    ("cli",),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join((PACKAGE, *parts))] = path
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _imports(name: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import of an actlab module in ``name``'s source."""
    tree = ast.parse(MODULES[name].read_text(), filename=str(MODULES[name]))
    here = name if _is_package(name) else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == PACKAGE]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != PACKAGE:
                continue
            for a in node.names:  # ``from . import registry``: the submodule, if there is one
                sub = f"{module}.{a.name}"
                found.append((node.lineno, sub if sub in MODULES else module))
    return [(line, _owner(m)) for line, m in found]


def _owner(module: str) -> str:
    """The module file an import loads: ``actlab.fast.ops.Rectifier`` → ``actlab.fast.ops``."""
    while module not in MODULES:
        module = module.rpartition(".")[0]
    return module


def _layer(name: str) -> int:
    rel = name[len(PACKAGE) + 1:]
    best = None
    for i, group in enumerate(LAYERS):
        for prefix in group:
            if rel == prefix or rel.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (i, len(prefix))
    assert best is not None, f"{name}: in no layer; add it to LAYERS and to the README's rule"
    return best[0]


def violations() -> list[str]:
    out = []
    for name in MODULES:
        if name == PACKAGE:
            continue
        for line, target in _imports(name):
            where = f"{MODULES[name].relative_to(SRC.parent)}:{line}"
            if target == PACKAGE:
                out.append(f"{where}: {name} imports the package face {PACKAGE}")
            elif target != name and _layer(target) > _layer(name):
                out.append(f"{where}: {name} (layer {_layer(name)}) imports {target} (layer {_layer(target)})")
    return out


def circles() -> list[list[str]]:
    graph = {n: sorted({t for _, t in _imports(n) if t != n and t != PACKAGE}) for n in MODULES}
    found, state, stack = [], {}, []

    def visit(n: str) -> None:
        state[n] = "open"
        stack.append(n)
        for m in graph.get(n, ()):
            if state.get(m) == "open":
                found.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in graph:
        if n not in state:
            visit(n)
    return found


def test_every_module_has_a_layer():
    for name in MODULES:
        if name != PACKAGE:
            _layer(name)


def test_imports_point_down_and_never_at_the_package_face():
    assert violations() == []


def test_no_import_circles():
    assert circles() == []


def test_the_walker_sees_lazy_relative_and_absolute_imports():
    """The checker itself can fail: it finds the imports a module really has."""
    assert any(t == "actlab.registry" for _, t in _imports("actlab.factory"))
    assert any(t == "actlab.registry" for _, t in _imports("actlab.functional"))  # lazy, relative .
    assert {t for _, t in _imports("actlab.lab.train")} >= {"actlab.factory", "actlab.lab.monitors"}
    assert any(t == "actlab.lab.models" for _, t in _imports("actlab.lab.plan"))  # inside a function
    assert _layer("actlab.fast.cpu") == 2 and _layer("actlab.lab.verify") == 9 and _layer("actlab.cli") == 10
