"""docs/errors.md's error tree and messages, produced by really raising each error.

Every build finds the exception classes of ``src/atriva_inference`` (subclasses of
``InferenceRuntimeError``), triggers each one with the real runtime on each CPU backend here
(ONNX Runtime, and OpenVINO where installed), on tiny models written with ``onnx.helper`` into a
temporary folder that is the working directory (so paths in messages are relative), and writes
the tree, the code that raised it, the message and the chained backend exception into the page
(one tab per backend where their messages differ). A class without a trigger here, or a
trigger that raises something else, fails the build: the page cannot drift from the code.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import os
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

PAGE = "errors.md"
PACKAGE = "atriva_inference"


@dataclass
class Raised:
    """One error as each backend raised it: backend label -> (message, chained exception)."""

    cls: type[BaseException]
    code: str
    by_backend: dict[str, tuple[str, str | None]]


# -- finding the classes -------------------------------------------------------------------
def error_classes() -> list[type[BaseException]]:
    """Every public exception class of the package, the root first, then by module and line."""
    from atriva_inference.errors import InferenceRuntimeError

    source = Path(importlib.import_module(PACKAGE).__file__).parent
    found: list[type[BaseException]] = []
    for path in sorted(source.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [
            node.name
            for node in tree.body
            if isinstance(node, ast.ClassDef)
            and not node.name.startswith("_")
            and any(_base_name(base).endswith(("Error", "Exception")) for base in node.bases)
        ]
        if not names:
            continue
        relative = path.relative_to(source).with_suffix("").parts
        module_name = ".".join([PACKAGE, *(p for p in relative if p != "__init__")])
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise PluginError(
                f"docs/{PAGE}: {module_name} cannot be imported ({exc}); the errors page raises "
                "every error for real: install the [docs] extra"
            ) from exc
        found += [
            cls
            for cls in (getattr(module, name) for name in names)
            if issubclass(cls, InferenceRuntimeError) and cls.__module__ == module_name
        ]
    return found


def _base_name(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def public_path(cls: type) -> str:
    """Where users import it from: the package when it exports it, else its subpackage."""
    package = importlib.import_module(PACKAGE)
    if cls.__name__ in getattr(package, "__all__", ()):
        return PACKAGE
    parts = cls.__module__.split(".")
    for end in range(2, len(parts) + 1):
        module = importlib.import_module(".".join(parts[:end]))
        if cls.__name__ in getattr(module, "__all__", ()):
            return module.__name__
    return cls.__module__


# -- raising them --------------------------------------------------------------------------
@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    before = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="atriva-errors-") as directory:
        os.chdir(directory)
        try:
            yield Path(directory)
        finally:
            os.chdir(before)


def _write_models() -> None:
    """add.onnx: x float32[1,3,4,4] + 1; slow.onnx: eight 512x512 MatMuls (tens of ms);
    mismatch.onnx: a[n] + b[m], which fails inside the backend when n != m."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def save(name, nodes, inputs, outputs, initializers=()):
        graph = helper.make_graph(nodes, name, inputs, outputs, list(initializers))
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 8
        onnx.save(model, f"{name}.onnx")

    one = numpy_helper.from_array(np.ones((1, 3, 4, 4), np.float32), "one")
    square = [1, 3, 4, 4]
    save(
        "add",
        [helper.make_node("Add", ["x", "one"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, square)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, square)],
        [one],
    )
    weight = numpy_helper.from_array(np.eye(512, dtype=np.float32), "w")
    chain, previous = [], "x"
    for index in range(8):
        name = "y" if index == 7 else f"h{index}"
        chain.append(helper.make_node("MatMul", [previous, "w"], [name]))
        previous = name
    save(
        "slow",
        chain,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [512, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [512, 512])],
        [weight],
    )
    save(
        "mismatch",
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["m"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["k"])],
    )


# Each trigger is shown on the page as written (its body), so it reads as user code.
def _backend_unavailable(runtime: Any) -> None:
    InferenceRuntime(backend="tensorflow")  # noqa: F821 (bound in _namespace)


def _device_unavailable(runtime: Any) -> None:
    runtime.load_model("add.onnx", device="NPU")


def _model_load(runtime: Any) -> None:
    runtime.load_model("missing.onnx")


def _invalid_input(runtime: Any) -> None:
    model = runtime.load_model("add.onnx")
    model.run({"x": np.zeros((1, 3, 5, 5), np.float32)})  # noqa: F821


def _timeout(runtime: Any) -> None:
    model = runtime.load_model("slow.onnx")
    request = model.create_async_request()
    request.start({"x": np.ones((512, 512), np.float32)})  # noqa: F821
    try:
        request.wait(timeout=0.001)
    finally:
        request.wait()


def _failed(runtime: Any) -> None:
    model = runtime.load_model("mismatch.onnx")
    model.run({"a": np.ones(3, np.float32), "b": np.ones(4, np.float32)})  # noqa: F821


def _busy(runtime: Any) -> None:
    model = runtime.load_model("slow.onnx")
    request = model.create_async_request()
    request.start({"x": np.ones((512, 512), np.float32)})  # noqa: F821
    try:
        request.start({"x": np.ones((512, 512), np.float32)})  # noqa: F821
    finally:
        request.wait()


def _closed(runtime: Any) -> None:
    model = runtime.load_model("add.onnx")
    model.close()
    model.run({"x": np.zeros((1, 3, 4, 4), np.float32)})  # noqa: F821


def _model_not_found(runtime: Any) -> None:
    repository = ModelRepository({"add": runtime.load_model("add.onnx")})  # noqa: F821
    asyncio.run(repository.infer("detector", "", []))


def _server_busy(runtime: Any) -> None:
    repository = ModelRepository({"add": runtime.load_model("add.onnx")})  # noqa: F821
    repository.drain()
    asyncio.run(repository.infer("add", "", [("x", np.zeros((1, 3, 4, 4), np.float32))]))  # noqa: F821


#: Class name -> the code that raises it. A new error class needs an entry here.
TRIGGERS: dict[str, Callable[[Any], None]] = {
    "BackendUnavailableError": _backend_unavailable,
    "DeviceUnavailableError": _device_unavailable,
    "ModelLoadError": _model_load,
    "InvalidInputError": _invalid_input,
    "InferenceTimeoutError": _timeout,
    "InferenceFailedError": _failed,
    "RequestBusyError": _busy,
    "ModelClosedError": _closed,
    "ModelNotFoundError": _model_not_found,
    "ServerBusyError": _server_busy,
}
#: Raised by no code of its own: the class to catch.
ROOT = "InferenceRuntimeError"


def raise_each(classes: list[type[BaseException]]) -> dict[str, Raised]:
    """Run every trigger; each must raise exactly its class."""
    import numpy as np

    from atriva_inference import InferenceRuntime
    from atriva_inference.serve.repository import ModelRepository

    names = {cls.__name__ for cls in classes} - {ROOT}
    missing = sorted(names - TRIGGERS.keys())
    if missing:
        raise PluginError(
            f"docs/{PAGE}: no trigger for {', '.join(missing)}: add one to TRIGGERS in "
            "docs/hooks/error_reference.py (the page shows each error really raised)"
        )
    by_name = {cls.__name__: cls for cls in classes}
    raised = {name: Raised(by_name[name], _body(TRIGGERS[name]), {}) for name in names}
    with _workdir(), _quiet_onnxruntime():
        _write_models()
        for backend, label in _backends():
            for name in sorted(names):
                trigger = TRIGGERS[name]
                trigger.__globals__.update(
                    np=np, InferenceRuntime=InferenceRuntime, ModelRepository=ModelRepository
                )
                with InferenceRuntime(backend=backend) as runtime:
                    try:
                        trigger(runtime)
                    except BaseException as exc:  # the one we want is checked just below
                        if type(exc) is not by_name[name]:
                            raise PluginError(
                                f"docs/{PAGE}: on {backend}, the trigger of {name} raised "
                                f"{type(exc).__name__}: {exc}"
                            ) from exc
                        cause = exc.__cause__
                        chained = None if cause is None else _qualified(type(cause))
                        raised[name].by_backend[label] = (str(exc), chained)
                    else:
                        raise PluginError(f"docs/{PAGE}: on {backend}, {name} was not raised")
    return raised


def _backends() -> list[tuple[str, str]]:
    """ONNX Runtime (the [docs] extra brings it), and OpenVINO where it is installed."""
    found = [("onnxruntime", "ONNX Runtime")]
    if importlib.util.find_spec("openvino") is not None:
        found.append(("openvino", "OpenVINO"))
    return found


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """ONNX Runtime logs the failure we cause on stderr; the message is on the page."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)
    try:
        yield
    finally:
        onnxruntime.set_default_logger_severity(2)  # its default: warnings


def _body(function: Callable[..., Any]) -> str:
    lines = inspect.getsource(function).splitlines()[1:]
    code = textwrap.dedent("\n".join(lines))
    return "\n".join(line.split("  # noqa")[0].rstrip() for line in code.splitlines())


# -- the page --------------------------------------------------------------------------------
def render_reference() -> str:
    classes = error_classes()
    raised = raise_each(classes)
    root = next(cls for cls in classes if cls.__name__ == ROOT)
    lines = ["```text", *_tree(root, classes), "```", ""]
    for cls in classes:
        lines += _section(cls, raised.get(cls.__name__))
    return "\n".join(lines)


def _tree(root: type, classes: list[type], prefix: str = "") -> list[str]:
    out = [root.__name__] if not prefix else []
    children = [cls for cls in classes if root in cls.__bases__]
    for index, child in enumerate(children):
        last = index == len(children) - 1
        others = [base.__name__ for base in child.__bases__ if base is not root]
        also = f"  (also {', '.join(others)})" if others else ""
        out.append(f"{prefix}{'└── ' if last else '├── '}{child.__name__}{also}")
        out += _tree(child, classes, prefix + ("    " if last else "│   "))
    return out


def _section(cls: type, raised: Raised | None) -> list[str]:
    bases = ", ".join(f"`{base.__name__}`" for base in cls.__bases__)
    doc = inspect.getdoc(cls) or ""
    lines = [
        f"## {cls.__name__}",
        "",
        f"`from {public_path(cls)} import {cls.__name__}`, a subclass of {bases}.",
        "",
        doc,
        "",
    ]
    if raised is None:
        lines += ["Never raised as such: catch it to catch every error of the runtime.", ""]
        return lines
    lines += ["Raised by:", "", "```python", raised.code, "```", ""]
    if len(set(raised.by_backend.values())) == 1:  # one block, said to be the same on every backend
        backends = " and ".join(raised.by_backend)
        lines += [f"Message ({backends}, CPU):", ""]
        lines += _message(cls, next(iter(raised.by_backend.values())))
        return lines
    for label, message in raised.by_backend.items():  # a tab per backend
        lines += [f'=== "{label}"', ""]
        lines += ["    " + line if line else "" for line in _message(cls, message)]
    return lines


def _message(cls: type, message: tuple[str, str | None]) -> list[str]:
    text, chained = message
    lines = ["```text", f"{cls.__name__}: {text}", "```", ""]
    if chained:
        lines += [f"Chained backend exception (`__cause__`): `{chained}`.", ""]
    return lines
