"""The shape of the package (docs/architecture.md): no import circle anywhere in src, and no module
imports one from a layer above its own. Every ``import`` statement counts, those inside
functions and under ``TYPE_CHECKING`` included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import atriva_inference

PACKAGE = Path(atriva_inference.__file__).parent
ROOT = "atriva_inference"

#: Layers, lowest first. A module may import from its own layer or the ones below.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("errors", ("errors",)),
    (
        "value types",
        ("dtypes", "devices", "precision", "profiling", "shapes", "tensor", "_layouts"),
    ),
    ("platform and run-time input plans", ("cuda", "_preparation")),
    ("backends", ("backends",)),
    ("engine", ("_engine",)),
    ("execution", ("execution",)),
    ("model", ("model",)),
    ("runtime", ("runtime",)),
    ("public names", ("",)),  # the package's __init__
    # Built on the public API, each imported on its own (optional extras): video, server.
    ("vision", ("vision",)),
    ("applications", ("pipeline", "quantization", "serve")),
    ("command line", ("cli",)),
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([ROOT, *parts])


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(path: Path) -> set[str]:
    """Modules of this package that ``path`` imports (absolute names)."""
    name = _module_name(path)
    package = name if _is_package(path) else name.rpartition(".")[0]
    modules = _all_modules()
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:  # `from . import onnx_graph` imports that module only
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return {target for target in found if target in modules and target != name}


def _all_modules() -> dict[str, Path]:
    return {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _graph() -> dict[str, set[str]]:
    return {name: _imports(path) for name, path in _all_modules().items()}


def _layer(module: str) -> int:
    relative = module[len(ROOT) + 1 :] if module != ROOT else ""
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if relative == prefix or (prefix and relative.startswith(prefix + ".")):
                return index
    raise AssertionError(f"{module} is in no layer: add it to LAYERS and docs/architecture.md")


def test_every_module_has_a_layer():
    for module in _all_modules():
        _layer(module)


def test_no_import_circle_in_src():
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [
        f"{module} ({LAYERS[_layer(module)][0]}) imports {target} ({LAYERS[_layer(target)][0]})"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if _layer(target) > _layer(module)
    ]
    assert not upward, "imports that run upward:\n" + "\n".join(upward)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from .errors import X\nfrom ._engine import Y\n", {"errors", "_engine"}),
        ("def f():\n    from .backends import base\n", {"backends.base"}),
        ("from .backends import create_backend, base\n", {"backends", "backends.base"}),
    ],
)
def test_the_import_reader_sees_what_it_must(tmp_path, monkeypatch, source, expected):
    """The checks above can fail: the reader finds module-level and function-level imports."""
    probe = PACKAGE / "model.py"
    monkeypatch.setattr(Path, "read_text", lambda self: source if self == probe else "")
    assert _imports(probe) == {f"{ROOT}.{name}" for name in expected}
