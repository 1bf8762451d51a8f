"""The TensorRT backend.

Without TensorRT and a GPU (the development machine): the refusal when TensorRT is absent,
broken or too old, and the pure parts -- the precision and typing decisions, optimization
profiles, profile selection, when ``shapes=`` frees declared dims, the engine-cache key and
directory, the dtype table, the per-thread error log of the process-wide logger, the
256-byte alignment rule for zero-copy inputs and a worker pool refusing an async wait.
The decisions take the member names of TensorRT's enums; the name sets below are the ones
the real TensorRT 10.16 and 11.4 bindings declare (read from the ``tensorrt-cu13-bindings``
wheels), so the tests check our logic against what each version offers, not a made-up
TensorRT. The tests marked ``gpu`` need TensorRT and an
NVIDIA GPU and skip, naming what is missing, everywhere else.
"""

from __future__ import annotations

import enum
import gc
import importlib
import sys
import threading
import types
import weakref
from concurrent.futures import ThreadPoolExecutor

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from atriva_inference import (
    BackendUnavailableError,
    DeviceUnavailableError,
    InferenceFailedError,
    InferenceRuntime,
    InvalidInputError,
    ModelLoadError,
    available_backends,
    cuda,
)
from atriva_inference.backends.tensorrt import (
    DEFAULT_BATCH_RANGE,
    TENSOR_ALIGNMENT,
    BuildPlan,
    ErrorLog,
    ShapeRange,
    TensorRTBackend,
    binds_in_place,
    check_engine_shapes,
    check_tensorrt_version,
    device_index,
    engine_cache_dir,
    engine_cache_key,
    has_fast_fp16,
    is_quantized,
    model_precision,
    network_creation_flags,
    numpy_dtype_for,
    optimization_profile,
    plan_build,
    process_logger,
    select_profile,
    shapes_need_dynamic,
    submit_wait,
    weak_typing,
)
from atriva_inference.backends.tensorrt import messages as trt_messages
from atriva_inference.backends.tensorrt import runner as trt_runner
from atriva_inference.backends.tensorrt.cache import write_atomically
from atriva_inference.cuda import GpuProperties
from atriva_inference.devices import Device
from atriva_inference.tensor import TensorInfo
from tests import zoo
from tests.backends.gpu_libraries import usable_cupy

EXTRA = r"pip install 'atriva-inference\[tensorrt\]'"


# -- what is missing here ------------------------------------------------------------------
def _tensorrt_missing() -> str | None:
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError) as exc:
        return f"needs TensorRT: import tensorrt failed ({type(exc).__name__}: {exc})"
    return None


def _gpu_missing() -> str | None:
    try:
        import cuda.core as cuda_core
    except ImportError as exc:
        return f"needs cuda-python (cuda.core) to find a GPU: {exc}"
    try:
        count = len(cuda_core.Device.get_all_devices())
    except Exception as exc:
        return f"needs an NVIDIA GPU: cuda.core says {type(exc).__name__}: {exc}"
    if not count:
        return "needs an NVIDIA GPU: cuda.core found none"
    return None


def _require_tensorrt_and_gpu() -> None:
    reason = _tensorrt_missing() or _gpu_missing()
    if reason:
        pytest.skip(reason)


# -- TensorRT absent or broken -------------------------------------------------------------
def test_runtime_names_the_extra_when_tensorrt_is_not_installed():
    if _tensorrt_missing() is None:
        pytest.skip("TensorRT is installed here: nothing is missing")
    with pytest.raises(BackendUnavailableError, match=EXTRA):
        InferenceRuntime(backend="tensorrt")
    with pytest.raises(BackendUnavailableError, match=EXTRA) as caught:
        TensorRTBackend()
    assert isinstance(caught.value.__cause__, ImportError)


def _needs_cuda_python() -> None:
    """The registry checks cuda-python after tensorrt: without it, that is the refusal."""
    try:
        importlib.import_module("cuda.core")
    except ImportError:
        pytest.skip("needs cuda-python (the dev extra) for TensorRT's own refusal to be reached")


@pytest.fixture(params=["OSError", "ImportError"])
def broken_tensorrt(request, tmp_path, monkeypatch):
    """A ``tensorrt`` package on sys.path whose import fails as a broken install does:
    OSError when libnvinfer cannot be loaded, ImportError when the bindings lack a part."""
    _needs_cuda_python()
    package = tmp_path / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text(
        f"raise {request.param}('libnvinfer.so.10: cannot open shared object file')\n"
    )
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    return request.param


def test_a_broken_tensorrt_install_is_unavailable_naming_the_extra(broken_tensorrt):
    with pytest.raises(BackendUnavailableError, match=EXTRA) as caught:
        InferenceRuntime(backend="tensorrt")
    message = str(caught.value)
    assert "libnvinfer.so.10" in message
    assert broken_tensorrt in message
    assert type(caught.value.__cause__).__name__ == broken_tensorrt
    assert "tensorrt" not in sys.modules  # a failed import leaves nothing half-loaded


def test_available_backends_reports_a_broken_tensorrt_as_unusable(broken_tensorrt):
    (status,) = [s for s in available_backends() if s.name == "tensorrt"]
    assert not status.usable
    assert "pip install 'atriva-inference[tensorrt]'" in status.reason
    assert status.devices == ()


def test_tensorrt_before_10_is_refused_naming_the_extra():
    for version in ("8.6.1", "9.3.0.post12.dev1", "7.2.3.4"):
        with pytest.raises(BackendUnavailableError, match=EXTRA) as caught:
            check_tensorrt_version(version)
        message = str(caught.value)
        assert f"TensorRT 10 or newer, found {version}" in message
        assert "share an optimization profile" in message
    for version in ("10.0.1.6", "10.16.1.11", "11.4.0.106", "12.0"):
        check_tensorrt_version(version)  # returns quietly
    # An unreadable version is let through: the calls then say what is missing.
    for version in ("", "unknown", "dev"):
        check_tensorrt_version(version)


def test_an_old_tensorrt_install_is_unavailable(tmp_path, monkeypatch):
    """A TensorRT 8.6 package that imports fine is refused before any of it is used."""
    _needs_cuda_python()
    package = tmp_path / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text("__version__ = '8.6.1'\n")
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(BackendUnavailableError, match=r"TensorRT 10 or newer, found 8\.6\.1"):
            InferenceRuntime(backend="tensorrt")
    finally:
        sys.modules.pop("tensorrt", None)  # the stand-in imported fine: leave no trace


def test_tensorrt_without_cuda_python_names_its_own_extra(tmp_path, monkeypatch):
    """TensorRT present, cuda-python not: the refusal says to install the tensorrt extra
    (the CUDA layer alone would only say cuda-python)."""
    package = tmp_path / "tensorrt"
    package.mkdir()
    (package / "__init__.py").write_text("__version__ = '10.16.1'\n")
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "cuda.core", None)  # as if not installed
    try:
        with pytest.raises(BackendUnavailableError, match=EXTRA) as caught:
            TensorRTBackend()
        assert "cuda.core" in str(caught.value)
        assert isinstance(caught.value.__cause__, ImportError)
        with pytest.raises(BackendUnavailableError, match=rf"'cuda.core' package.*{EXTRA}"):
            InferenceRuntime(backend="tensorrt")
    finally:
        sys.modules.pop("tensorrt", None)


# -- optimization profiles -----------------------------------------------------------------
def test_default_profile_ranges_a_dynamic_batch():
    profile = optimization_profile([("images", (None, 3, 224, 224))])
    low, opt, high = DEFAULT_BATCH_RANGE
    assert (low, opt, high) == (1, 1, 16)
    assert profile == {"images": ShapeRange((1, 3, 224, 224), (1, 3, 224, 224), (16, 3, 224, 224))}


def test_static_inputs_need_no_profile():
    assert optimization_profile([("a", (2, 4)), ("b", (2, 4))]) == {}
    # Shapes given for a static input are checked, and still make no range.
    assert optimization_profile([("a", (2, 4))], [(("*", (2, 4)),)]) == {}


def test_dynamic_dims_beyond_the_batch_without_shapes_are_refused():
    with pytest.raises(InvalidInputError, match=r"'x' \(\?, 3, \?, \?\).*shapes=") as caught:
        optimization_profile([("x", (None, 3, None, None))])
    assert "beyond the batch" in str(caught.value)
    with pytest.raises(InvalidInputError, match=r"'tokens' \(1, \?\)"):
        optimization_profile([("tokens", (1, None))])


def test_given_shapes_make_min_max_elementwise_and_opt_the_first():
    profile = optimization_profile(
        [("x", (None, 3, None, None))],
        [
            (("*", (2, 3, 480, 640)),),
            (("x", (8, 3, 720, 320)),),
            (("x", (1, 3, 600, 1280)),),
        ],
    )
    assert profile == {
        "x": ShapeRange(min=(1, 3, 480, 320), opt=(2, 3, 480, 640), max=(8, 3, 720, 1280))
    }


def test_one_given_shape_is_a_fixed_profile():
    profile = optimization_profile([("x", (None, 3, None, None))], [(("*", (4, 3, 5, 7)),)])
    assert profile["x"] == ShapeRange((4, 3, 5, 7), (4, 3, 5, 7), (4, 3, 5, 7))


def test_multi_input_profiles_take_named_shapes_and_default_the_rest():
    inputs = [("image", (None, 3, None, None)), ("scale", (None, 2)), ("bias", (4,))]
    profile = optimization_profile(
        inputs,
        [
            (("image", (1, 3, 320, 320)),),
            (("bias", (4,)), ("image", (4, 3, 640, 640))),
        ],
    )
    assert profile == {
        "image": ShapeRange((1, 3, 320, 320), (1, 3, 320, 320), (4, 3, 640, 640)),
        "scale": ShapeRange((1, 2), (1, 2), (16, 2)),  # unnamed: the default batch range
    }


@pytest.mark.parametrize(
    ("inputs", "shapes", "message"),
    [
        (
            [("a", (None, 4)), ("b", (None, 4))],
            [(("*", (2, 4)),)],
            r"only input, but the model has 2 inputs \('a', 'b'\)",
        ),
        ([("x", (None, 4))], [(("y", (2, 4)),)], r"unknown input 'y'; the model takes 'x'"),
        ([("x", (None, 4))], [(("x", (2, 4, 1)),)], r"'x' has 2 dimensions \(\?, 4\), got"),
        (
            [("x", (None, 4))],
            [(("x", (2, 5)),)],
            r"declares dimension 1 as 4 .*got 5 in \(2, 5\); dynamic=True frees only N, H, W",
        ),
        ([("x", (None, 4))], [(("x", (0, 4)),)], r"positive integer dimensions, got \(0, 4\)"),
        ([("x", (None, 4))], [(("x", (2.5, 4)),)], r"positive integer dimensions"),
    ],
)
def test_bad_shapes_are_refused_saying_what_was_expected(inputs, shapes, message):
    with pytest.raises(InvalidInputError, match=message):
        optimization_profile(inputs, shapes)


def test_shape_range_admits_only_shapes_inside_it():
    limits = ShapeRange((1, 3, 8, 8), (2, 3, 16, 16), (4, 3, 32, 32))
    assert limits.admits((1, 3, 8, 8))
    assert limits.admits((4, 3, 32, 32))
    assert limits.admits((3, 3, 9, 31))
    assert not limits.admits((5, 3, 16, 16))
    assert not limits.admits((2, 3, 7, 16))
    assert not limits.admits((2, 3, 16))  # another rank
    assert str(limits) == "from (1, 3, 8, 8) to (4, 3, 32, 32)"
    assert str(ShapeRange((1, 2), (1, 2), (1, 2))) == "exactly (1, 2)"


def test_shapes_the_static_dims_refuse_free_the_dims_before_the_build():
    declared = [("x", (1, 3, 16, 16))]
    assert not shapes_need_dynamic(declared, [])
    assert not shapes_need_dynamic(declared, [(("*", (1, 3, 16, 16)),)])
    assert shapes_need_dynamic(declared, [(("*", (4, 3, 16, 16)),)])
    assert shapes_need_dynamic(declared, [(("x", (1, 3, 16, 16)),), (("x", (1, 3, 32, 32)),)])
    # A channel count the model fixes is freed too: optimization_profile then says that
    # dynamic=True does not free it (once, with the dims as the build sees them).
    assert shapes_need_dynamic(declared, [(("x", (1, 4, 16, 16)),)])
    # Nothing to free for a wrong rank or an unknown input: the profile reports those.
    assert not shapes_need_dynamic(declared, [(("x", (1, 3, 16)),)])
    assert not shapes_need_dynamic(declared, [(("nope", (4, 3, 16, 16)),)])


def test_shapes_within_dynamic_dims_need_no_freeing():
    declared = [("image", (None, 3, None, None)), ("scale", (2,))]
    shapes = [(("image", (8, 3, 640, 640)), ("scale", (2,)))]
    assert not shapes_need_dynamic(declared, shapes)
    assert shapes_need_dynamic(declared, [(("scale", (3,)),)])
    # "*" is the only input's name; with two inputs it names none (the profile says so).
    assert not shapes_need_dynamic(declared, [(("*", (9, 9)),)])
    assert shapes_need_dynamic([("x", (1, 4))], [(("*", (2, 4)),)])


def test_freed_dims_then_take_the_shapes_the_static_model_refused():
    """What load() builds after freeing: one profile admitting every shape given."""
    shapes = [(("*", (1, 3, 16, 16)),), (("*", (4, 3, 32, 24)),)]
    assert shapes_need_dynamic([("x", (1, 3, 16, 16))], shapes)
    freed = [("x", (None, 3, None, None))]  # what dynamic=True makes of an NCHW input
    assert optimization_profile(freed, shapes) == {
        "x": ShapeRange((1, 3, 16, 16), (1, 3, 16, 16), (4, 3, 32, 24))
    }


def test_prebuilt_engine_refuses_shapes_its_dims_or_profiles_do_not_take():
    static = [TensorInfo("x", (1, 3, 16, 16), np.dtype(np.float32))]
    check_engine_shapes(static, [], [(("*", (1, 3, 16, 16)),)], "'m.engine'")
    with pytest.raises(InvalidInputError) as caught:
        check_engine_shapes(static, [], [(("*", (4, 3, 16, 16)),)], "'m.engine'")
    message = str(caught.value)
    assert "'m.engine' takes input 'x' as (1, 3, 16, 16), got (4, 3, 16, 16)" in message
    assert "load the ONNX model" in message
    with pytest.raises(InvalidInputError, match=r"as \(1, 3, 16, 16\), got \(3, 16, 16\)"):
        check_engine_shapes(static, [], [(("x", (3, 16, 16)),)], "'m.engine'")
    dynamic = [
        TensorInfo("x", (None, 3, 8, 8), np.dtype(np.float32)),
        TensorInfo("bias", (4,), np.dtype(np.float32)),
    ]
    profiles = [{"x": ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8))}]
    check_engine_shapes(dynamic, profiles, [(("x", (4, 3, 8, 8)),)])
    with pytest.raises(InvalidInputError, match=r"'x' \(8, 3, 8, 8\) are outside every"):
        check_engine_shapes(dynamic, profiles, [(("x", (8, 3, 8, 8)),)])
    with pytest.raises(InvalidInputError, match=r"takes input 'bias' as \(4\), got \(5\)"):
        check_engine_shapes(dynamic, profiles, [(("x", (2, 3, 8, 8)), ("bias", (5,)))])


# -- profile selection ---------------------------------------------------------------------
SMALL = {"x": ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8))}
LARGE = {"x": ShapeRange((1, 3, 16, 16), (8, 3, 32, 32), (8, 3, 64, 64))}


def test_select_profile_picks_the_first_admitting_profile():
    assert select_profile([SMALL, LARGE], {"x": (2, 3, 8, 8)}) == 0
    assert select_profile([SMALL, LARGE], {"x": (2, 3, 20, 40)}) == 1
    assert select_profile([LARGE, SMALL], {"x": (1, 3, 8, 8)}) == 1


def test_select_profile_keeps_the_preferred_profile_when_it_admits():
    both = {"x": ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (8, 3, 64, 64))}
    assert select_profile([SMALL, both], {"x": (2, 3, 8, 8)}, prefer=1) == 1
    assert select_profile([SMALL, both], {"x": (2, 3, 8, 8)}, prefer=None) == 0
    # A preferred profile that does not admit the shape, or does not exist, is passed over.
    assert select_profile([SMALL, LARGE], {"x": (2, 3, 8, 8)}, prefer=1) == 0
    assert select_profile([SMALL, LARGE], {"x": (2, 3, 8, 8)}, prefer=7) == 0


def test_select_profile_without_profiles_is_the_default_one():
    assert select_profile([], {"x": (5, 5)}) == 0


def test_select_profile_ignores_inputs_no_profile_constrains():
    assert select_profile([SMALL], {"x": (1, 3, 8, 8), "static": (2, 2)}) == 0


def test_a_shape_outside_every_profile_says_the_ranges_and_the_shape():
    with pytest.raises(InvalidInputError) as caught:
        select_profile([SMALL, LARGE], {"x": (9, 3, 8, 8)})
    message = str(caught.value)
    assert "'x' (9, 3, 8, 8)" in message
    assert "profile 0 takes 'x' from (1, 3, 8, 8) to (4, 3, 8, 8)" in message
    assert "profile 1 takes 'x' from (1, 3, 16, 16) to (8, 3, 64, 64)" in message
    assert "shapes=" in message


def test_a_shape_of_another_rank_is_outside_the_profiles():
    with pytest.raises(InvalidInputError, match=r"'x' \(3, 8, 8\) are outside every"):
        select_profile([SMALL], {"x": (3, 8, 8)})


def test_a_missing_input_shape_is_an_error():
    two = {"a": ShapeRange((1,), (1,), (4,)), "b": ShapeRange((1,), (1,), (4,))}
    with pytest.raises(InvalidInputError, match=r"no shape given for input\(s\) 'b'"):
        select_profile([two], {"a": (2,)})


# -- the engine cache ------------------------------------------------------------------------
def _gpu(name: str, compute_capability: tuple[int, int], index: int = 0) -> GpuProperties:
    return GpuProperties(
        index=index,
        name=name,
        compute_capability=compute_capability,
        total_memory=80 << 30,
        uuid=f"GPU-0000000{index}-0000-0000-0000-000000000000",
    )


H100 = _gpu("NVIDIA H100 80GB HBM3", (9, 0))
PROFILES = [{"x": ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8))}]


def _key(**changes):
    arguments = {
        "model_bytes": b"onnx model bytes",
        "trt_version": "10.3.0",
        "gpu": H100,
        "precision": "FP32",
        "profiles": PROFILES,
    }
    arguments.update(changes)
    return engine_cache_key(**arguments)


def test_cache_key_is_stable_for_the_same_inputs():
    key = _key()
    assert key == _key()
    assert key == _key(profiles=[{"x": ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8))}])
    assert len(key) == 40 and all(c in "0123456789abcdef" for c in key)


@pytest.mark.parametrize(
    "change",
    [
        {"model_bytes": b"onnx model byteS"},
        {"model_bytes": b""},
        {"trt_version": "10.3.1"},
        {"gpu": _gpu("NVIDIA H200", (9, 0))},
        {"gpu": _gpu("NVIDIA H100 80GB HBM3", (8, 9))},
        {"precision": "FP16"},
        {"profiles": []},
        {"profiles": [{"x": ShapeRange((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}]},
        {"profiles": [{"x": ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (8, 3, 8, 8))}]},
        {"profiles": [{"y": ShapeRange((1, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8))}]},
        {"profiles": PROFILES * 2},
        {"profiling": True},
        {"flags": ["STRONGLY_TYPED"]},
        {"flags": ["FP16", "-TF32"]},
    ],
)
def test_cache_key_changes_with_each_ingredient(change):
    assert _key(**change) != _key()


def test_cache_key_ignores_the_order_of_flags():
    assert _key(flags=["FP16", "INT8", "-TF32"]) == _key(flags=("-TF32", "INT8", "FP16"))
    assert _key(flags=[]) == _key()


def test_cache_key_is_shared_by_identical_gpus():
    # An engine fits every GPU of the same model: GPU.1 reuses what GPU.0 built.
    assert _key(gpu=_gpu("NVIDIA H100 80GB HBM3", (9, 0), index=1)) == _key()


def test_cache_key_keeps_model_bytes_apart_from_the_rest():
    # The same bytes split differently between model and version must not collide.
    assert _key(model_bytes=b"ab", trt_version="c") != _key(model_bytes=b"a", trt_version="bc")


def test_cache_dir_prefers_the_backend_then_the_load_then_the_user_cache(tmp_path):
    backend_dir, load_dir = tmp_path / "backend", tmp_path / "load"
    assert engine_cache_dir(backend_dir, load_dir) == backend_dir / "tensorrt"
    assert engine_cache_dir(None, load_dir) == load_dir / "tensorrt"
    xdg = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert engine_cache_dir(None, None, xdg) == tmp_path / "xdg" / "atriva-inference" / "tensorrt"


def test_cache_dir_falls_back_to_home_cache_without_a_valid_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".cache" / "atriva-inference" / "tensorrt"
    assert engine_cache_dir(None, None, {}) == expected
    assert engine_cache_dir(None, None, {"XDG_CACHE_HOME": "relative/dir"}) == expected


def test_cache_entries_are_written_whole_with_no_partial_left(tmp_path):
    target = tmp_path / "deeper" / "key.engine"
    write_atomically(target, b"engine bytes")
    assert target.read_bytes() == b"engine bytes"
    assert [p.name for p in target.parent.iterdir()] == ["key.engine"]


def test_a_cache_that_cannot_be_written_is_not_fatal(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory would go")
    write_atomically(blocker / "key.engine", b"engine bytes")  # returns quietly
    assert blocker.read_text().startswith("a file")


# -- precision and typing ------------------------------------------------------------------
# Member names of trt.BuilderFlag and trt.NetworkDefinitionCreationFlag as the TensorRT
# 10.16 and 11.4 Python bindings declare them (tensorrt-cu13-bindings wheels).
TRT10_BUILDER_FLAGS = frozenset(
    [
        "FP16",
        "BF16",
        "INT8",
        "DEBUG",
        "GPU_FALLBACK",
        "REFIT",
        "DISABLE_TIMING_CACHE",
        "EDITABLE_TIMING_CACHE",
        "TF32",
        "SPARSE_WEIGHTS",
        "SAFETY_SCOPE",
        "OBEY_PRECISION_CONSTRAINTS",
        "PREFER_PRECISION_CONSTRAINTS",
        "DIRECT_IO",
        "REJECT_EMPTY_ALGORITHMS",
        "VERSION_COMPATIBLE",
        "EXCLUDE_LEAN_RUNTIME",
        "FP8",
        "ERROR_ON_TIMING_CACHE_MISS",
        "DISABLE_COMPILATION_CACHE",
        "WEIGHTLESS",
        "STRIP_PLAN",
        "REFIT_IDENTICAL",
        "WEIGHT_STREAMING",
        "INT4",
        "REFIT_INDIVIDUAL",
        "STRICT_NANS",
        "MONITOR_MEMORY",
        "FP4",
        "DISTRIBUTIVE_INDEPENDENCE",
    ]
)
TRT11_BUILDER_FLAGS = frozenset(
    [
        "DEBUG",
        "GPU_FALLBACK",
        "REFIT",
        "DISABLE_TIMING_CACHE",
        "EDITABLE_TIMING_CACHE",
        "TF32",
        "SPARSE_WEIGHTS",
        "SAFETY_SCOPE",
        "DIRECT_IO",
        "VERSION_COMPATIBLE",
        "EXCLUDE_LEAN_RUNTIME",
        "ERROR_ON_TIMING_CACHE_MISS",
        "DISABLE_COMPILATION_CACHE",
        "STRIP_PLAN",
        "REFIT_IDENTICAL",
        "WEIGHT_STREAMING",
        "REFIT_INDIVIDUAL",
        "STRICT_NANS",
        "MONITOR_MEMORY",
        "DISTRIBUTIVE_INDEPENDENCE",
    ]
)
TRT10_NETWORK_FLAGS = frozenset(
    {"EXPLICIT_BATCH", "STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS", "PREFER_JIT_PYTHON_PLUGINS"}
)
TRT11_NETWORK_FLAGS = frozenset(
    {"STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS", "PREFER_JIT_PYTHON_PLUGINS"}
)

# (layer type, dtype) of a parsed network's tensors (trt.LayerType / trt.DataType names).
FP32_NET = [("INPUT", "FLOAT"), ("CONVOLUTION", "FLOAT"), ("ACTIVATION", "FLOAT")]
FP16_NET = [("INPUT", "HALF"), ("CONVOLUTION", "HALF"), ("ACTIVATION", "HALF")]
AUTOCAST_NET = [  # FP32 I/O kept, casts around an FP16 body, one layer left in FP32
    ("INPUT", "FLOAT"),
    ("CAST", "HALF"),
    ("CONVOLUTION", "HALF"),
    ("REDUCE", "FLOAT"),
    ("CAST", "FLOAT"),
]
BF16_NET = [("INPUT", "BF16"), ("MATRIX_MULTIPLY", "BF16")]
QDQ_NET = [
    ("INPUT", "FLOAT"),
    ("QUANTIZE", "INT8"),
    ("DEQUANTIZE", "FLOAT"),
    ("CONVOLUTION", "FLOAT"),
]


def test_weak_typing_is_there_on_tensorrt_10_and_gone_on_11():
    assert weak_typing(TRT10_BUILDER_FLAGS)
    assert not weak_typing(TRT11_BUILDER_FLAGS)


@pytest.mark.parametrize(
    ("precision", "expected"),
    [(None, ("STRONGLY_TYPED",)), ("INT8", ("STRONGLY_TYPED",)), ("FP32", ()), ("FP16", ())],
)
def test_tensorrt_10_builds_strongly_typed_unless_a_flag_lowers_precision(precision, expected):
    flags = network_creation_flags(precision, TRT10_BUILDER_FLAGS, TRT10_NETWORK_FLAGS)
    assert flags == expected
    assert network_creation_flags("bf16", TRT10_BUILDER_FLAGS, TRT10_NETWORK_FLAGS) == ()


@pytest.mark.parametrize("precision", [None, "FP32", "FP16", "BF16", "INT8"])
def test_tensorrt_11_sets_no_creation_flag(precision):
    # Strongly typed always; its STRONGLY_TYPED flag is deprecated and ignored.
    assert network_creation_flags(precision, TRT11_BUILDER_FLAGS, TRT11_NETWORK_FLAGS) == ()


def test_unknown_precision_is_invalid_before_anything_is_parsed():
    with pytest.raises(InvalidInputError, match=r"one of FP32, FP16, BF16, INT8, got 'FP64'"):
        network_creation_flags("FP64", TRT10_BUILDER_FLAGS, TRT10_NETWORK_FLAGS)


def test_model_precision_reads_the_types_the_network_computes_in():
    assert model_precision(FP32_NET) == "FP32"
    assert model_precision(FP16_NET) == "FP16"
    assert model_precision(AUTOCAST_NET) == "FP16"
    assert model_precision(BF16_NET) == "BF16"
    assert model_precision(QDQ_NET) == "INT8"
    assert model_precision([]) == "FP32"
    # INT8 data without quantization (an int8 input) is not an INT8 model.
    assert model_precision([("INPUT", "INT8"), ("CAST", "FLOAT")]) == "FP32"
    assert is_quantized(QDQ_NET)
    assert not is_quantized(FP16_NET)


def test_fast_fp16_by_compute_capability():
    assert has_fast_fp16((7, 5)) and has_fast_fp16((9, 0)) and has_fast_fp16((6, 0))
    assert has_fast_fp16((5, 3))
    assert not has_fast_fp16((6, 1))  # consumer Pascal: FP16 at 1/64 rate
    assert not has_fast_fp16((5, 2))


def _plan(precision, flags, net, *, strongly_typed=None, cc=(9, 0)):
    if strongly_typed is None:
        network_flags = TRT10_NETWORK_FLAGS if weak_typing(flags) else TRT11_NETWORK_FLAGS
        created = network_creation_flags(precision, flags, network_flags)
        strongly_typed = not weak_typing(flags) or "STRONGLY_TYPED" in created
    return plan_build(
        precision,
        builder_flags=flags,
        strongly_typed=strongly_typed,
        network_precision=model_precision(net),
        quantized=is_quantized(net),
        compute_capability=cc,
        gpu_name="NVIDIA T4",
        model_name="'model.onnx'",
        tensorrt_version="11.4.0.106" if not weak_typing(flags) else "10.16.1.11",
    )


@pytest.mark.parametrize("flags", [TRT10_BUILDER_FLAGS, TRT11_BUILDER_FLAGS])
def test_the_model_s_own_precision_is_built_as_it_is_on_both(flags):
    # FP32 means FP32: TF32 (on by default in TensorRT) is cleared.
    assert _plan(None, flags, FP32_NET) == BuildPlan("FP32", (), ("TF32",))
    assert _plan(None, flags, FP16_NET) == BuildPlan("FP16", (), ("TF32",))
    assert _plan(None, flags, AUTOCAST_NET).precision == "FP16"
    assert _plan(None, flags, QDQ_NET) == BuildPlan("INT8", (), ("TF32",))
    assert _plan("INT8", flags, QDQ_NET) == BuildPlan("INT8", (), ("TF32",))
    # Asking for what the model computes in anyway is honoured without a flag.
    assert _plan("FP16", TRT11_BUILDER_FLAGS, FP16_NET) == BuildPlan("FP16", (), ())


def test_tensorrt_10_lowers_precision_by_builder_flag():
    assert _plan("FP16", TRT10_BUILDER_FLAGS, FP32_NET) == BuildPlan("FP16", ("FP16",), ())
    assert _plan("BF16", TRT10_BUILDER_FLAGS, FP32_NET, cc=(8, 0)) == BuildPlan("BF16", ("BF16",))
    assert _plan("FP32", TRT10_BUILDER_FLAGS, FP16_NET) == BuildPlan("FP32", (), ("TF32",))
    # A Q/DQ model keeps its INT8 regions, which weak typing honours only with INT8 set.
    assert _plan("FP16", TRT10_BUILDER_FLAGS, QDQ_NET) == BuildPlan("FP16", ("FP16", "INT8"))


@pytest.mark.parametrize("precision", ["FP16", "BF16"])
def test_tensorrt_11_refuses_to_lower_an_fp32_model_and_says_how_to_convert(precision):
    with pytest.raises(DeviceUnavailableError) as caught:
        _plan(precision, TRT11_BUILDER_FLAGS, FP32_NET)
    message = str(caught.value)
    assert f"precision {precision} is not offered by TensorRT 11.4.0.106" in message
    assert "'model.onnx', which computes in FP32" in message
    assert "strongly typed" in message and "model's own types" in message
    assert "python -m modelopt.onnx.autocast --onnx_path model.onnx" in message
    assert "precision=None" in message
    if precision == "FP16":
        assert "float16.convert_float_to_float16" in message
    else:
        assert "--low_precision_type bf16" in message
        assert "convert_float_to_float16" not in message  # onnxconverter-common has no bf16


def test_tensorrt_11_runs_reduced_and_quantized_models_only_as_they_are():
    with pytest.raises(DeviceUnavailableError, match=r"computes in FP16.*precision=None"):
        _plan("FP32", TRT11_BUILDER_FLAGS, FP16_NET)
    with pytest.raises(DeviceUnavailableError, match=r"computes in INT8.*precision=None") as e:
        _plan("FP16", TRT11_BUILDER_FLAGS, QDQ_NET)
    assert "autocast" not in str(e.value)  # converting to FP16 is not the remedy here


@pytest.mark.parametrize("flags", [TRT10_BUILDER_FLAGS, TRT11_BUILDER_FLAGS])
def test_int8_needs_int8_qdq_layers(flags):
    for net in (FP32_NET, FP16_NET):
        with pytest.raises(ModelLoadError) as caught:
            _plan("INT8", flags, net)
        message = str(caught.value)
        assert "'model.onnx' has none" in message
        assert "QuantizeLinear/DequantizeLinear" in message
        assert "calibration is not supported" in message


def test_bf16_needs_ampere_on_both():
    for flags in (TRT10_BUILDER_FLAGS, TRT11_BUILDER_FLAGS):
        with pytest.raises(DeviceUnavailableError, match=r"8\.0 \(Ampere\).*T4 has 7\.5"):
            _plan("BF16", flags, BF16_NET, cc=(7, 5))


def test_fp16_flag_needs_fast_fp16():
    with pytest.raises(DeviceUnavailableError, match=r"FP16 .*compute capability 6\.1"):
        _plan("FP16", TRT10_BUILDER_FLAGS, FP32_NET, cc=(6, 1))


def test_bf16_flag_needs_a_tensorrt_that_has_it():
    without_bf16 = TRT10_BUILDER_FLAGS - {"BF16"}
    with pytest.raises(DeviceUnavailableError, match=r"BuilderFlag\.BF16"):
        _plan("BF16", without_bf16, FP32_NET)


def test_no_tf32_flag_nothing_to_clear():
    assert _plan(None, TRT11_BUILDER_FLAGS - {"TF32"}, FP32_NET) == BuildPlan("FP32")


# -- dtypes, devices ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "dtype"),
    [
        ("FLOAT", np.float32),
        ("HALF", np.float16),
        ("BF16", ml_dtypes.bfloat16),
        ("FP8", ml_dtypes.float8_e4m3fn),
        ("INT8", np.int8),
        ("INT32", np.int32),
        ("INT64", np.int64),
        ("UINT8", np.uint8),
        ("BOOL", np.bool_),
    ],
)
def test_tensorrt_types_map_to_numpy(name, dtype):
    assert numpy_dtype_for(name, "t") == np.dtype(dtype)


@pytest.mark.parametrize("name", ["INT4", "FP4", "SOMETHING_NEW"])
def test_types_numpy_cannot_hold_are_refused_at_load(name):
    with pytest.raises(ModelLoadError, match=rf"tensor 'logits' has TensorRT type {name}"):
        numpy_dtype_for(name, "logits")


def test_device_names_map_to_cuda_indices():
    assert device_index(Device.of("GPU")) == 0
    assert device_index(Device.of("GPU.0")) == 0
    assert device_index(Device.of("GPU.3")) == 3
    with pytest.raises(DeviceUnavailableError, match=r"NVIDIA GPUs .*got 'CPU'"):
        device_index(Device.of("CPU"))


# -- the process-wide logger ---------------------------------------------------------------
class Severity(enum.IntEnum):
    """TensorRT's ``ILogger.Severity`` values (NvInferRuntimeBase.h: kINTERNAL_ERROR = 0 ...
    kVERBOSE = 4); TensorRT's pybind enum converts with ``int()`` the same way."""

    INTERNAL_ERROR = 0
    ERROR = 1
    WARNING = 2
    INFO = 3
    VERBOSE = 4


class Message:
    """A log message that counts how often it is turned into text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.formatted = 0

    def __str__(self) -> str:
        self.formatted += 1
        return self.text


def test_error_log_keeps_errors_and_returns_early_for_the_rest():
    log = ErrorLog(keep_max=int(Severity.ERROR))
    log.take()
    chatter = [Message(f"{severity.name} chatter") for severity in Severity]
    for severity, message in zip(Severity, chatter):
        log.log(severity, message)
    # INFO/VERBOSE come by the thousand during a build: not even turned into text.
    assert [message.formatted for message in chatter] == [1, 1, 0, 0, 0]
    assert log.take() == "INTERNAL_ERROR chatter; ERROR chatter"
    assert log.take() == ""  # taken means forgotten


def test_error_log_keeps_only_the_latest_errors():
    log = ErrorLog(limit=3)
    log.take()
    for i in range(10):
        log.log(Severity.ERROR, f" error {i}\n")
    assert log.take() == "error 7; error 8; error 9"


def test_error_log_gives_each_thread_its_own_errors():
    log = ErrorLog()
    barrier = threading.Barrier(4)
    taken: dict[int, str] = {}

    def build(worker: int) -> None:
        log.take()  # drop stale ones, as each TensorRT call site does
        barrier.wait()
        for attempt in range(50):
            log.log(Severity.ERROR, f"worker {worker} error {attempt}")
            log.log(Severity.INFO, f"worker {worker} info {attempt}")
        barrier.wait()  # every thread has logged before any takes
        taken[worker] = log.take()

    threads = [threading.Thread(target=build, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for worker in range(4):
        expected = "; ".join(f"worker {worker} error {attempt}" for attempt in range(18, 50))
        assert taken[worker] == expected  # the last 32 of its own, none of the others'


def test_error_log_hands_unattributed_errors_to_a_thread_with_none_of_its_own():
    log = ErrorLog()
    log.take()
    log.log(Severity.ERROR, "mine")
    stray = threading.Thread(target=log.log, args=(Severity.ERROR, "from a thread that never took"))
    stray.start()
    stray.join()
    assert log.take() == "mine"  # own errors first: the stray one is not this call's
    assert log.take() == "from a thread that never took"
    assert log.take() == ""


def _stand_in_tensorrt() -> types.ModuleType:
    """The two TensorRT base classes :func:`process_logger` subclasses, as plain Python (the
    real ones need libnvinfer); the logger made from them is our code, run for real."""

    class ILogger:
        INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = Severity
        Severity = Severity

        def __init__(self) -> None:
            self.base_initialised = True

    class IProfiler:
        def __init__(self) -> None:
            pass

    module = types.ModuleType("tensorrt_stand_in")
    module.ILogger = ILogger
    module.IProfiler = IProfiler
    return module


def test_one_logger_per_process_made_once_and_never_freed():
    trt = _stand_in_tensorrt()
    made: list[object] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        made.append(process_logger(trt))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger = made[0]
    assert all(other is logger for other in made)  # one, however many backends start at once
    assert isinstance(logger, trt.ILogger) and logger.base_initialised
    logger.take()
    logger.log(trt.ILogger.WARNING, "a warning")
    logger.log(trt.ILogger.ERROR, " the engine is bad ")
    assert logger.take() == "the engine is bad"
    # Never freed, even with every reference of ours gone: TensorRT may still call it.
    alive = weakref.ref(logger)
    trt_messages._loggers.pop(id(trt))
    made.clear()
    del logger
    gc.collect()
    assert alive() is not None


# -- zero-copy alignment and the async hand-off --------------------------------------------
def test_only_256_byte_aligned_device_addresses_are_bound_in_place():
    assert TENSOR_ALIGNMENT == 256
    for ptr in (256, 512, 0x7F0000000000, 0x7F0000000100):
        assert binds_in_place(ptr), hex(ptr)
    # Null, and views at an offset into an allocation (one image of a batch, byte_offset).
    for ptr in (0, 4, 128, 255, 257, 0x7F0000000004, 0x7F0000000080, 0x7F00000000C0 + 16):
        assert not binds_in_place(ptr), hex(ptr)


def test_a_refusing_pool_is_an_inference_error_and_nothing_runs():
    ran = threading.Event()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        submit_wait(pool, lambda value: ran.set() if value == 7 else None, 7)
    finally:
        pool.shutdown(wait=True)
    assert ran.is_set()
    ran.clear()
    with pytest.raises(InferenceFailedError, match=r"pool refused \(cannot schedule new") as caught:
        submit_wait(pool, ran.set)
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "expected a running interpreter" in str(caught.value)
    assert not ran.is_set()


# -- on a GPU with TensorRT ----------------------------------------------------------------
@pytest.fixture
def trt_runtime(tmp_path):
    _require_tensorrt_and_gpu()
    with InferenceRuntime("tensorrt", cache_dir=tmp_path / "cache") as runtime:
        yield runtime


def _onnxruntime_cpu(path, feed):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


@pytest.mark.gpu
def test_builds_from_onnx_and_matches_onnxruntime_cpu(trt_runtime, conv_net, rng):
    model = trt_runtime.load_model(conv_net.onnx_path)
    assert model.device.startswith("GPU")
    assert model.precision == "FP32"
    assert not model.loaded_from_cache
    feed = conv_net.make_inputs(rng)
    (expected,) = _onnxruntime_cpu(conv_net.onnx_path, feed)
    output = model.run(feed)["output"].to_numpy()
    assert output.dtype == np.float32 and output.shape == (1, 4, 16, 16)
    np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_second_load_deserialises_the_cached_engine(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()
    feed = conv_net.make_inputs(rng)
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        first = runtime.load_model(conv_net.onnx_path)
        assert not first.loaded_from_cache
        expected = first.run(feed)["output"].to_numpy()
    entries = list((tmp_path / "tensorrt").iterdir())
    assert [entry.suffix for entry in entries] == [".engine"]  # no .partial left behind
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        second = runtime.load_model(conv_net.onnx_path)
        assert second.loaded_from_cache
        np.testing.assert_array_equal(second.run(feed)["output"].to_numpy(), expected)


@pytest.mark.gpu
def test_a_damaged_cache_entry_is_rebuilt(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()
    feed = conv_net.make_inputs(rng)
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        expected = runtime.load_model(conv_net.onnx_path).run(feed)["output"].to_numpy()
    (entry,) = (tmp_path / "tensorrt").glob("*.engine")
    entry.write_bytes(entry.read_bytes()[:100])  # truncated, as by a full disk
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        model = runtime.load_model(conv_net.onnx_path)
        assert not model.loaded_from_cache
        # A rebuild picks its kernels by timing again: equal to rounding, not bit for bit.
        output = model.run(feed)["output"].to_numpy()
        np.testing.assert_allclose(output, expected, rtol=1e-5, atol=1e-6)
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        assert runtime.load_model(conv_net.onnx_path).loaded_from_cache


@pytest.mark.gpu
def test_an_engine_file_loads_as_it_is(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()
    feed = conv_net.make_inputs(rng)
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        expected = runtime.load_model(conv_net.onnx_path).run(feed)["output"].to_numpy()
        (entry,) = (tmp_path / "tensorrt").glob("*.engine")
        model = runtime.load_model(entry)
        assert model.precision == "FP32"
        np.testing.assert_array_equal(model.run(feed)["output"].to_numpy(), expected)


@pytest.mark.gpu
def test_a_file_that_is_not_an_engine_says_so(trt_runtime, tmp_path):
    path = tmp_path / "model.engine"
    path.write_bytes(b"not an engine" * 64)
    with pytest.raises(ModelLoadError, match=r"is not a TensorRT engine for TensorRT \d+"):
        trt_runtime.load_model(path)


@pytest.mark.gpu
def test_openvino_ir_gets_a_how_to_error(conv_net):
    from atriva_inference.backends.base import LoadOptions

    reason = _tensorrt_missing()
    if reason:
        pytest.skip(reason)
    backend = TensorRTBackend()
    with pytest.raises(ModelLoadError, match=r"reads ONNX .*torch\.onnx\.export.*'openvino'"):
        backend.load(conv_net.ir_path, "GPU.0", LoadOptions())


@pytest.mark.gpu
def test_dynamic_batch_runs_within_the_profile_and_refuses_outside(trt_runtime, dynamic, rng):
    model = trt_runtime.load_model(dynamic.onnx_path, shapes=[(1, 3, 5, 7), (4, 3, 5, 7)])
    for batch in (2, 4, 1, 3):
        x = rng.standard_normal((batch, 3, 5, 7)).astype(np.float32)
        np.testing.assert_allclose(
            model.run({"x": x})["y"].to_numpy(), dynamic.reference({"x": x})["y"], rtol=1e-6
        )
    outside = np.zeros((8, 3, 5, 7), np.float32)
    with pytest.raises(InvalidInputError, match=r"\(8, 3, 5, 7\) are outside every") as caught:
        model.run({"x": outside})
    assert "from (1, 3, 5, 7) to (4, 3, 5, 7)" in str(caught.value)
    with pytest.raises(InvalidInputError, match=r"\(2, 3, 6, 7\) are outside every"):
        model.run({"x": np.zeros((2, 3, 6, 7), np.float32)})


@pytest.mark.gpu
def test_dynamic_spatial_dims_without_shapes_are_refused(trt_runtime, dynamic):
    with pytest.raises(InvalidInputError, match=r"'x' \(\?, 3, \?, \?\).*shapes="):
        trt_runtime.load_model(dynamic.onnx_path)


def _builder_flags() -> frozenset[str]:
    import tensorrt as trt

    return frozenset(trt.BuilderFlag.__members__)


def _compute_capability() -> tuple[int, int]:
    return cuda.device_properties(0).compute_capability


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["FP16", "BF16"])
def test_reduced_precision_of_an_fp32_model(trt_runtime, conv_net, rng, precision):
    if precision == "BF16" and _compute_capability() < (8, 0):
        pytest.skip(f"BF16 needs compute capability 8.0, this GPU has {_compute_capability()}")
    if not weak_typing(_builder_flags()):  # TensorRT 11: strongly typed only
        with pytest.raises(DeviceUnavailableError, match=r"strongly typed.*modelopt\.onnx"):
            trt_runtime.load_model(conv_net.onnx_path, precision=precision)
        return
    model = trt_runtime.load_model(conv_net.onnx_path, precision=precision)
    assert model.precision == precision
    assert model.inputs[0].dtype == np.float32  # a builder flag keeps the model's I/O
    feed = conv_net.make_inputs(rng)
    expected = conv_net.reference(feed)["output"]
    output = model.run(feed)["output"].to_numpy()
    np.testing.assert_allclose(output, expected, rtol=5e-2, atol=5e-2)


def _fp16_conv_model(directory):
    """input float16[1,3,16,16] -> Conv3x3 -> output float16[1,4,16,16]: an FP16 model."""
    import onnx

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float16)
    b = (rng.standard_normal(4) * 0.1).astype(np.float16)
    model = zoo.make_model(
        [helper.make_node("Conv", ["input", "w", "b"], ["output"], pads=[1, 1, 1, 1])],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT16, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT16, [1, 4, 16, 16])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    onnx.checker.check_model(model)
    path = directory / "conv_fp16.onnx"
    onnx.save(model, str(path))
    return path, w, b


@pytest.mark.gpu
@pytest.mark.parametrize("precision", [None, "FP16"])
def test_an_fp16_model_runs_in_its_own_types(trt_runtime, tmp_path, rng, precision):
    path, w, b = _fp16_conv_model(tmp_path)
    model = trt_runtime.load_model(path, precision=precision)
    assert model.precision == "FP16"
    assert model.inputs[0].dtype == np.float16  # the engine's types, not assumed float32
    assert model.outputs[0].dtype == np.float16
    x = rng.random((1, 3, 16, 16), dtype=np.float32).astype(np.float16)
    output = model.run({"input": x})["output"].to_numpy()
    assert output.dtype == np.float16
    np.testing.assert_allclose(output, zoo.conv2d(x, w, b, 1), rtol=2e-2, atol=2e-2)


@pytest.mark.gpu
def test_shapes_the_static_dims_refuse_are_built_once(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        model = runtime.load_model(conv_net.onnx_path, shapes=[(1, 3, 16, 16), (4, 3, 32, 32)])
        assert model.inputs[0].shape == (None, 3, None, None)
        for shape in ((4, 3, 32, 32), (2, 3, 20, 16)):
            x = rng.random(shape, dtype=np.float32)
            np.testing.assert_allclose(
                model.run({"input": x})["output"].to_numpy(),
                conv_net.reference({"input": x})["output"],
                rtol=1e-4,
                atol=1e-4,
            )
    # One engine in the cache: the static one, which the shapes refuse, was never built.
    assert len(list((tmp_path / "tensorrt").glob("*.engine"))) == 1


@pytest.mark.gpu
def test_concurrent_requests_share_the_one_profile(trt_runtime, dynamic, rng):
    model = trt_runtime.load_model(dynamic.onnx_path, shapes=[(1, 3, 5, 7), (4, 3, 5, 7)])
    requests = [model.create_async_request() for _ in range(4)]
    frames = [rng.standard_normal((batch, 3, 5, 7)).astype(np.float32) for batch in (4, 1, 3, 2)]
    for request, x in zip(requests, frames):  # all in flight at once, each its own context
        request.start({"x": x})
    for request, x in zip(requests, frames):
        np.testing.assert_allclose(
            request.wait(timeout=60)["y"].to_numpy(), dynamic.reference({"x": x})["y"], rtol=1e-6
        )


@pytest.mark.gpu
def test_int8_needs_a_quantized_model(trt_runtime, conv_net):
    with pytest.raises(ModelLoadError, match=r"QuantizeLinear.*calibration is not supported"):
        trt_runtime.load_model(conv_net.onnx_path, precision="INT8")


@pytest.mark.gpu
def test_async_request_completes_on_a_cuda_event(trt_runtime, conv_net, rng):
    model = trt_runtime.load_model(conv_net.onnx_path)
    frames = [conv_net.make_inputs(rng) for _ in range(6)]
    expected = [model.run(frame)["output"].to_numpy() for frame in frames]
    seen = []
    request = model.create_async_request()
    for frame, want in zip(frames, expected):
        request.start(frame, callback=lambda outputs: seen.append(outputs["output"].to_numpy()))
        np.testing.assert_array_equal(request.wait(timeout=60)["output"].to_numpy(), want)
    assert len(seen) == len(frames)
    queue = model.create_async_queue()
    for output, want in zip(queue.map(frames), expected):
        np.testing.assert_array_equal(output["output"].to_numpy(), want)
    # Each output is the caller's: a later run did not overwrite the first.
    np.testing.assert_array_equal(seen[0], expected[0])


def _bound_address(request, name: str) -> int:
    """The device address the request's execution context reads (input) or writes (output)
    ``name`` at: TensorRT's own ``IExecutionContext.get_tensor_address``."""
    return int(request._context.get_tensor_address(name))


@pytest.mark.gpu
def test_device_array_input_is_bound_in_place(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()
    from atriva_inference.backends.base import LoadOptions

    backend = TensorRTBackend(cache_dir=tmp_path)
    loaded = backend.load(conv_net.onnx_path, "GPU.0", LoadOptions())
    assert loaded.device_inputs == Device.of("GPU.0")
    request = loaded.create_request()
    frame = conv_net.make_inputs(rng)["input"]
    buffer = cuda.DeviceBuffer(frame.nbytes, 0)
    stream = cuda.Stream(0)
    cuda.copy_to_device(buffer.ptr, frame, stream)
    stream.synchronize()
    on_gpu = cuda.DeviceArray(buffer.ptr, frame.shape, frame.dtype, 0, owner=buffer)
    (from_gpu,) = request.infer([on_gpu])
    assert _bound_address(request, "input") == buffer.ptr  # zero-copy: the caller's memory
    (from_host,) = request.infer([frame])
    assert _bound_address(request, "input") != buffer.ptr  # host data goes via its own buffer
    np.testing.assert_array_equal(from_gpu, from_host)
    reference = conv_net.reference({"input": frame})["output"]
    np.testing.assert_allclose(from_gpu, reference, rtol=1e-4, atol=1e-4)
    # The same through the public API: a DeviceTensor goes in without a copy.
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        model = runtime.load_model(conv_net.onnx_path)
        tensor = runtime.tensor_from_dlpack(on_gpu)
        np.testing.assert_array_equal(model.run({"input": tensor})["output"].to_numpy(), from_host)
    request.close()


@pytest.mark.gpu
def test_device_array_on_another_gpu_is_refused(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()
    from atriva_inference.backends.base import LoadOptions

    loaded = TensorRTBackend(cache_dir=tmp_path).load(conv_net.onnx_path, "GPU.0", LoadOptions())
    request = loaded.create_request()
    frame = conv_net.make_inputs(rng)["input"]
    buffer = cuda.DeviceBuffer(frame.nbytes, 0)
    # Described as GPU.1 (never dereferenced: the device check comes first).
    elsewhere = cuda.DeviceArray(buffer.ptr, frame.shape, frame.dtype, 1, owner=buffer)
    with pytest.raises(InvalidInputError, match=r"on GPU\.1, the model runs on GPU\.0"):
        request.infer([elsewhere])
    request.close()


@pytest.mark.gpu
def test_profiling_reports_tensorrt_layers(trt_runtime, conv_net, rng):
    model = trt_runtime.load_model(conv_net.onnx_path, profiling=True)
    feed = conv_net.make_inputs(rng)
    for _ in range(3):
        model.run(feed)
    profile = model.get_profiling()
    assert profile.runs == 3
    assert profile.device_time_ms > 0
    assert profile.layers, "TensorRT's IProfiler reported no layers"
    assert all(layer.count == 3 for layer in profile.layers)
    assert all(layer.implementation == "TensorRT" for layer in profile.layers)
    assert sum(layer.time_ms for layer in profile.layers) > 0
    assert any(layer.type for layer in profile.layers), "no layer type from the inspector"


def _load_on(tmp_path, conv_net, device: str = "GPU.0"):
    from atriva_inference.backends.base import LoadOptions

    return TensorRTBackend(cache_dir=tmp_path).load(conv_net.onnx_path, device, LoadOptions())


@pytest.mark.gpu
def test_backends_share_the_process_logger_and_keep_their_errors(tmp_path):
    _require_tensorrt_and_gpu()
    from atriva_inference.backends.base import LoadOptions

    path = tmp_path / "model.engine"
    path.write_bytes(b"not an engine" * 64)
    first, second = TensorRTBackend(cache_dir=tmp_path), TensorRTBackend(cache_dir=tmp_path)
    assert first._logger is second._logger  # TensorRT keeps one logger per process
    for backend in (first, second):
        with pytest.raises(ModelLoadError, match=r"\(TensorRT: .+\)"):
            backend.load(path, Device.of("GPU.0"), LoadOptions())
    # The first one gone, the second still hears TensorRT (no freed logger is called).
    first.close()
    del first
    gc.collect()
    with pytest.raises(ModelLoadError, match=r"\(TensorRT: .+\)"):
        second.load(path, Device.of("GPU.0"), LoadOptions())


@pytest.mark.gpu
def test_a_misaligned_device_input_is_copied_not_bound(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()

    request = _load_on(tmp_path, conv_net).create_request()
    frame = conv_net.make_inputs(rng)["input"]
    offset = 4  # one float in: aligned for float32, not for TensorRT
    buffer = cuda.DeviceBuffer(frame.nbytes + offset, 0)
    stream = cuda.Stream(0)
    cuda.copy_to_device(buffer.ptr + offset, frame, stream)
    stream.synchronize()
    shifted = cuda.DeviceArray(buffer.ptr + offset, frame.shape, frame.dtype, 0, buffer)
    assert not binds_in_place(shifted.ptr)
    (from_shifted,) = request.infer([shifted])
    assert _bound_address(request, "input") % TENSOR_ALIGNMENT == 0
    assert _bound_address(request, "input") != shifted.ptr  # the request's own buffer
    (from_host,) = request.infer([frame])
    np.testing.assert_array_equal(from_shifted, from_host)
    request.close()


@pytest.mark.gpu
def test_bound_outputs_stay_on_the_gpu(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()
    from atriva_inference.tensor import DeviceTensor

    request = _load_on(tmp_path, conv_net).create_request()
    feeds = [conv_net.make_inputs(rng)["input"] for _ in range(2)]
    (host,) = request.infer([feeds[0]])
    assert type(host) is np.ndarray
    (bound,) = request.infer_bound([feeds[0]])
    assert isinstance(bound, cuda.DeviceArray)
    assert (bound.shape, bound.dtype, bound.device) == (host.shape, host.dtype, 0)
    assert bound.ptr == _bound_address(request, "output")  # no copy: the output buffer itself
    np.testing.assert_array_equal(bound.to_numpy(), host)  # complete on return
    (again,) = request.infer_bound([feeds[1]])
    assert again.ptr == bound.ptr  # reused by the next run, as a stream's outputs are
    expected = conv_net.reference({"input": feeds[1]})["output"]
    np.testing.assert_allclose(again.to_numpy(), expected, rtol=1e-4, atol=1e-4)
    request.close()
    # Through the public API: a stream's outputs are DeviceTensors, run() gives host data.
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        model = runtime.load_model(conv_net.onnx_path)
        with model.create_stream() as stream:
            output = stream.run({"input": feeds[1]})["output"]
            assert isinstance(output, DeviceTensor) and output.device == "GPU.0"
            np.testing.assert_allclose(output.to_numpy(), expected, rtol=1e-4, atol=1e-4)
        assert not isinstance(model.run({"input": feeds[1]})["output"], DeviceTensor)


@pytest.mark.gpu
def test_a_refilled_cupy_input_is_read_after_cupy_writes_it(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()
    cupy = usable_cupy()
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        model = runtime.load_model(conv_net.onnx_path)
        source = cupy.zeros((1, 3, 16, 16), dtype=cupy.float32)
        tensor = runtime.tensor_from_dlpack(source)  # wrapped once, refilled every frame
        busy = cupy.ones((4096, 4096), dtype=cupy.float32)
        with model.create_stream() as stream:
            for _ in range(4):
                frame = rng.random((1, 3, 16, 16), dtype=np.float32)
                on_gpu = cupy.asarray(frame)
                cupy.cuda.Device().synchronize()
                for _ in range(8):  # milliseconds of work ahead of the refill, on CuPy's
                    busy = busy @ busy * 1e-4  # legacy default stream, not waited for here
                source[...] = on_gpu
                output = stream.run({"input": tensor})["output"].to_numpy()
                expected = conv_net.reference({"input": frame})["output"]
                np.testing.assert_allclose(output, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
def test_the_async_wait_runs_on_the_model_s_gpu(conv_net, tmp_path, rng):
    _require_tensorrt_and_gpu()
    from cuda.bindings import runtime as cuda_runtime

    if cuda.device_count() < 2:
        pytest.skip("needs two NVIDIA GPUs to tell which one the waiting thread uses: found 1")
    with InferenceRuntime("tensorrt", cache_dir=tmp_path) as runtime:
        model = runtime.load_model(conv_net.onnx_path, "GPU.1")
        seen = []
        request = model.create_async_request()
        request.start(
            conv_net.make_inputs(rng),
            callback=lambda outputs: seen.append(cuda_runtime.cudaGetDevice()[1]),
        )
        request.wait(timeout=60)
        assert seen == [1]  # the pool thread waited with GPU.1 current, not GPU.0


@pytest.mark.gpu
def test_a_pool_that_refuses_the_wait_fails_start_and_calls_nothing(
    conv_net, tmp_path, rng, monkeypatch
):
    _require_tensorrt_and_gpu()
    request = _load_on(tmp_path, conv_net).create_request()
    frame = conv_net.make_inputs(rng)["input"]
    refusing = ThreadPoolExecutor(max_workers=1)
    refusing.shutdown()
    monkeypatch.setattr(trt_runner, "_async_executor", lambda: refusing)
    called = []
    with pytest.raises(InferenceFailedError, match="pool refused") as caught:
        request.start([frame], lambda outputs, error: called.append((outputs, error)))
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert called == []  # the error went to start()'s caller, not to on_done as well
    monkeypatch.undo()
    (output,) = request.infer([frame])  # the request is still usable
    np.testing.assert_allclose(
        output, conv_net.reference({"input": frame})["output"], rtol=1e-4, atol=1e-4
    )
    request.close()
