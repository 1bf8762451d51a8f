"""Import-time behaviour, the public namespace and backend availability."""

from __future__ import annotations

import importlib.util
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import atriva_inference
from atriva_inference import (
    BackendUnavailableError,
    InferenceRuntime,
    InferenceRuntimeError,
    available_backends,
    errors,
)

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
BACKEND_PACKAGES = ("openvino", "onnxruntime", "tensorrt")


def _run(code: str) -> dict:
    """Run ``code`` in a fresh interpreter; it must print one JSON object as its last line."""
    completed = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- lazy imports


def test_import_loads_no_backend_framework():
    result = _run(
        """
        import json, sys
        import atriva_inference
        heavy = ("openvino", "onnxruntime", "tensorrt")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in heavy)
        print(json.dumps({"loaded": loaded, "has_runtime": hasattr(atriva_inference,
                                                                   "InferenceRuntime")}))
        """
    )
    assert result == {"loaded": [], "has_runtime": True}


def test_creating_a_runtime_imports_only_its_backend():
    result = _run(
        """
        import json, sys
        import atriva_inference
        rt = atriva_inference.InferenceRuntime("onnxruntime")
        heavy = ("openvino", "onnxruntime", "tensorrt")
        loaded = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in heavy})
        rt.close()
        print(json.dumps({"loaded": loaded}))
        """
    )
    assert result == {"loaded": ["onnxruntime"]}


# --------------------------------------------------------------------------- version and __all__


def test_version_matches_pyproject():
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        tomllib = pytest.importorskip("tomli")
    with PYPROJECT.open("rb") as handle:
        version = tomllib.load(handle)["project"]["version"]
    assert isinstance(atriva_inference.__version__, str)
    assert atriva_inference.__version__ == version


def test_every_name_in_all_exists():
    assert len(atriva_inference.__all__) == len(set(atriva_inference.__all__))
    for name in atriva_inference.__all__:
        assert hasattr(atriva_inference, name), name


def test_quantize_is_the_quantization_applications_own_and_loads_on_first_use():
    result = _run(
        """
        import json, sys
        import atriva_inference
        before = "atriva_inference.quantization" in sys.modules
        from atriva_inference import QuantReport, quantize
        import atriva_inference.quantization as application
        print(json.dumps({"before": before, "same": quantize is application.quantize
                          and QuantReport is application.QuantReport}))
        """
    )
    assert result == {"before": False, "same": True}


REQUIRED_PUBLIC = [
    "InferenceRuntime",
    "InferenceRuntimeError",
    "Tensor",
    "TensorInfo",
    "available_backends",
    "BackendStatus",
    "Model",
    "AsyncRequest",
    "Stream",
    "Profile",
    "LayerRecord",
    "__version__",
]


@pytest.mark.parametrize("name", REQUIRED_PUBLIC + list(errors.__all__))
def test_required_names_are_in_all(name):
    assert name in atriva_inference.__all__
    assert hasattr(atriva_inference, name)


def test_every_error_class_is_in_all():
    error_classes = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj) and issubclass(obj, BaseException) and not name.startswith("_")
    }
    assert error_classes  # the module defines some
    assert error_classes <= set(atriva_inference.__all__)


def test_star_import_gives_exactly_all():
    namespace: dict = {}
    exec("from atriva_inference import *", namespace)
    exported = {name for name in namespace if name != "__builtins__"}
    assert exported == set(atriva_inference.__all__)


# --------------------------------------------------------------------------- available_backends


def test_available_backends_lists_every_known_backend():
    statuses = available_backends()
    assert [s.name for s in statuses] == ["openvino", "onnxruntime", "tensorrt"]
    for status in statuses:
        assert isinstance(status, atriva_inference.BackendStatus)
        assert isinstance(status.usable, bool)
        assert isinstance(status.reason, str)
        assert status.reason
        assert isinstance(status.devices, tuple)
        if not status.usable:
            assert status.devices == ()


@pytest.mark.parametrize("name", ["openvino", "onnxruntime"])
def test_installed_backends_are_usable_on_cpu(name):
    status = {s.name: s for s in available_backends()}[name]
    assert status.usable, status.reason
    assert "CPU" in status.devices
    assert status.reason == "installed"


TENSORRT_INSTALLED = all(
    importlib.util.find_spec(package) is not None for package in ("tensorrt", "cuda")
)


@pytest.mark.skipif(TENSORRT_INSTALLED, reason="TensorRT is installed here")
def test_tensorrt_not_usable_and_names_the_extra():
    status = {s.name: s for s in available_backends()}["tensorrt"]
    assert status.usable is False
    assert status.devices == ()
    assert "atriva-inference[tensorrt]" in status.reason


# --------------------------------------------------------------------------- InferenceRuntime(...)


@pytest.mark.parametrize("name", ["nope", "", "open-vino", "TensorRT-LLM", None, 3])
def test_unknown_backend_lists_known_names(name):
    with pytest.raises(BackendUnavailableError) as info:
        InferenceRuntime(name)
    message = str(info.value)
    assert "unknown backend" in message
    assert repr(name) in message
    for known in ("openvino", "onnxruntime", "tensorrt"):
        assert known in message


def test_backend_name_is_case_insensitive():
    runtime = InferenceRuntime("ONNXRuntime")
    try:
        assert runtime.backend == "onnxruntime"
        assert "CPU" in runtime.available_devices()
    finally:
        runtime.close()


@pytest.mark.skipif(TENSORRT_INSTALLED, reason="TensorRT is installed here")
def test_tensorrt_missing_names_the_pip_extra_and_chains_import_error():
    with pytest.raises(BackendUnavailableError) as info:
        InferenceRuntime("tensorrt")
    assert "pip install 'atriva-inference[tensorrt]'" in str(info.value)
    assert isinstance(info.value.__cause__, ImportError)
    assert isinstance(info.value, InferenceRuntimeError)


# ------------------------------------------------------------------- missing backend package

_REPORT = """
import json
import atriva_inference as ai
result = {}
try:
    ai.InferenceRuntime("onnxruntime")
except Exception as exc:
    result["type"] = type(exc).__name__
    result["message"] = str(exc)
    result["cause_is_import_error"] = isinstance(exc.__cause__, ImportError)
else:
    result["type"] = None
try:
    statuses = {s.name: [s.usable, s.reason] for s in ai.available_backends()}
except Exception as exc:
    statuses = {"error": f"{type(exc).__name__}: {exc}"}
result["statuses"] = statuses
print(json.dumps(result))
"""


def _assert_reported_missing(result: dict) -> None:
    assert result["type"] == "BackendUnavailableError", result
    assert "atriva-inference[onnxruntime]" in result["message"]
    assert "pip install" in result["message"]
    assert result["cause_is_import_error"] is True
    statuses = result["statuses"]
    assert "error" not in statuses, statuses
    assert statuses["onnxruntime"][0] is False
    assert "atriva-inference[onnxruntime]" in statuses["onnxruntime"][1]
    assert statuses["openvino"][0] is True  # one missing backend does not hide the others


def test_missing_package_via_none_in_sys_modules():
    # sys.modules[name] = None is how Python marks a module as not importable.
    result = _run("import sys\nsys.modules['onnxruntime'] = None\n" + _REPORT)
    _assert_reported_missing(result)
    assert "not installed" in result["message"]


def test_installed_but_broken_package():
    # The package is found but fails while importing (e.g. a missing shared library).
    result = _run(
        textwrap.dedent(
            """
            import importlib.abc, importlib.machinery, sys

            class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
                def find_spec(self, name, path=None, target=None):
                    if name == "onnxruntime":
                        return importlib.machinery.ModuleSpec(name, self)
                    return None

                def create_module(self, spec):
                    return None

                def exec_module(self, module):
                    raise ImportError("libonnxruntime.so: cannot open shared object file")

            sys.meta_path.insert(0, Broken())
            """
        )
        + _REPORT
    )
    _assert_reported_missing(result)
    assert "libonnxruntime.so" in result["message"]


def test_missing_package_via_blocking_meta_path_finder():
    result = _run(
        textwrap.dedent(
            """
            import importlib.abc, sys

            class Block(importlib.abc.MetaPathFinder):
                def find_spec(self, name, path=None, target=None):
                    if name.split(".")[0] == "onnxruntime":
                        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                    return None

            sys.meta_path.insert(0, Block())
            """
        )
        + _REPORT
    )
    _assert_reported_missing(result)
