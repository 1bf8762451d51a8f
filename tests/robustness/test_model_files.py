"""Hostile model files: broken ones are refused with ModelLoadError (never a crash or a
TypeError) and the runtime keeps working; a model changed on disk after load keeps giving
the loaded model's answers on every path; a compiled-model cache never serves a damaged or
outdated entry.

Test bodies run in a sandbox worker (``sandbox.call``): a crash or a hang fails the test.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, InvalidInputError, ModelLoadError
from tests.conftest import BACKENDS
from tests.robustness import helpers

pytestmark = pytest.mark.robustness

#: (backend, model format) pairs: OpenVINO reads ONNX and IR, the others ONNX.
FORMATS = [
    (backend, fmt)
    for backend in BACKENDS
    for fmt in (("onnx", "ir") if backend == "openvino" else ("onnx",))
]


def _conv_bytes(suffix: str) -> bytes:
    source = helpers.zoo_model("conv_net")
    if suffix == ".onnx":
        return source.onnx_path.read_bytes()
    assert source.ir_path is not None
    return source.ir_path.with_suffix(suffix).read_bytes()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _ir(directory: Path, xml: bytes, weights: bytes | None) -> Path:
    if weights is not None:
        _write(directory / "model.bin", weights)
    return _write(directory / "model.xml", xml)


def _external_data(directory: Path, damage: str) -> Path:
    """conv_net with its weights in ``weights.data`` beside it, then damaged; ``escapes``
    points the model at a file outside its directory (as a hostile model could)."""
    import onnx

    proto = onnx.load(str(helpers.zoo_model("conv_net").onnx_path))
    target = directory / "model.onnx"
    onnx.save(
        proto, str(target), save_as_external_data=True, location="weights.data", size_threshold=0
    )
    data = directory / "weights.data"
    if damage == "missing":
        data.unlink()
    elif damage == "truncated":
        data.write_bytes(data.read_bytes()[:16])
    elif damage == "escapes":  # onnx.save refuses such a location: edit the proto itself
        data.rename(directory.parent / "outside.data")
        proto = onnx.load(str(target), load_external_data=False)
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = "../outside.data"
        target.write_bytes(proto.SerializeToString())
    return target


def _random(size: int) -> bytes:
    return np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()


#: name -> build(directory) -> the path to load. Each must raise ModelLoadError.
BROKEN: dict[str, Callable[[Path], Path]] = {
    "empty_onnx": lambda d: _write(d / "model.onnx", b""),
    "truncated_onnx": lambda d: _write(d / "model.onnx", _conv_bytes(".onnx")[:200]),
    "onnx_header_only": lambda d: _write(d / "model.onnx", _conv_bytes(".onnx")[:12]),
    "random_onnx": lambda d: _write(d / "model.onnx", _random(4096)),
    "ir_xml_as_onnx": lambda d: _write(d / "model.onnx", _conv_bytes(".xml")),
    "onnx_as_txt": lambda d: _write(d / "model.txt", _conv_bytes(".onnx")),
    "onnx_without_suffix": lambda d: _write(d / "model", _conv_bytes(".onnx")),
    "empty_xml": lambda d: _ir(d, b"", b""),
    "random_xml": lambda d: _ir(d, _random(2048), _conv_bytes(".bin")),
    "truncated_xml": lambda d: _ir(d, _conv_bytes(".xml")[:300], _conv_bytes(".bin")),
    "xml_without_bin": lambda d: _ir(d, _conv_bytes(".xml"), None),
    "xml_with_empty_bin": lambda d: _ir(d, _conv_bytes(".xml"), b""),
    "xml_with_truncated_bin": lambda d: _ir(d, _conv_bytes(".xml"), _conv_bytes(".bin")[:100]),
    "onnx_missing_external_data": lambda d: _external_data(d, "missing"),
    "onnx_truncated_external_data": lambda d: _external_data(d, "truncated"),
    "onnx_external_data_outside_its_directory": lambda d: _external_data(d, "escapes"),
    "directory": lambda d: d,
    "missing": lambda d: d / "nothing.onnx",
    "fifo": lambda d: (os.mkfifo(d / "model.onnx"), d / "model.onnx")[1],
    "symlink_loop": lambda d: (os.symlink(d / "model.onnx", d / "model.onnx"), d / "model.onnx")[1],
    "dev_null": lambda d: Path("/dev/null"),
}


def broken_file(backend: str, variant: str) -> str:
    directory = helpers.workdir(variant)
    path = BROKEN[variant](directory)
    runtime = helpers.runtime(backend)
    try:
        model = runtime.load_model(path, device="CPU")
    except ModelLoadError as exc:
        message = str(exc)
    else:
        model.close()
        raise AssertionError(f"{variant}: loaded, expected ModelLoadError")
    with runtime.load_model(helpers.zoo_model("conv_net").path_for(backend)) as model:
        helpers.assert_still_works(model, "conv_net")
    return message


@pytest.mark.parametrize("variant", BROKEN)
def test_broken_model_files_raise_model_load_error(sandbox, backend, variant):
    sandbox.call(broken_file, backend, variant)


def garbage_weights(backend: str) -> str:
    """An IR whose .bin has the right size and random bytes: nothing can tell it from a
    real one, so it may load; it must not crash, and must not stop the runtime."""
    directory = helpers.workdir("garbage_weights")
    path = _ir(directory, _conv_bytes(".xml"), _random(len(_conv_bytes(".bin"))))
    runtime = helpers.runtime(backend)
    try:
        with runtime.load_model(path, device="CPU") as model:
            model.run({"input": np.zeros((1, 3, 16, 16), np.float32)})
        outcome = "loaded"
    except ModelLoadError as exc:
        outcome = f"refused: {exc}"
    helpers.assert_still_works(helpers.loaded(backend, "conv_net"), "conv_net")
    return outcome


def test_ir_with_garbage_weights_of_the_right_size_does_not_crash(sandbox, backend):
    sandbox.call(garbage_weights, backend)


def unusual_good_paths(backend: str) -> None:
    """Odd but valid file names load: upper-case suffix, spaces, non-ASCII, a symlink."""
    directory = helpers.workdir("odd names") / "mödel dir ü"
    directory.mkdir()
    source = helpers.zoo_model("conv_net")
    paths = [helpers.install(source, directory, "onnx").rename(directory / "MODEL.ONNX")]
    link = directory / "link to model.onnx"
    link.symlink_to(paths[0])
    paths.append(link)
    if backend == "openvino":
        xml = helpers.install(source, directory, "ir")
        paths.append(xml.rename(directory / "ÿ model.xml"))
        xml.with_suffix(".bin").rename(directory / "ÿ model.bin")
    for path in paths:
        with helpers.runtime(backend).load_model(str(path), device="CPU") as model:
            helpers.assert_still_works(model, "conv_net")


def test_unusual_but_valid_paths_load(sandbox, backend):
    sandbox.call(unusual_good_paths, backend)


def not_a_path(backend: str, kind: str) -> str:
    value = {"none": None, "int": 123, "list": ["model.onnx"], "object": object()}[kind]
    runtime = helpers.runtime(backend)
    try:
        runtime.load_model(value, device="CPU")  # type: ignore[arg-type]
    except (InvalidInputError, ModelLoadError) as exc:
        message = str(exc)
    else:
        raise AssertionError(f"load_model({value!r}) loaded something")
    helpers.assert_still_works(helpers.loaded(backend, "conv_net"), "conv_net")
    return message


@pytest.mark.parametrize("kind", ["none", "int", "list", "object"])
def test_load_model_of_something_not_a_path_is_the_runtimes_error(sandbox, backend, kind):
    sandbox.call(not_a_path, backend, kind)


# -- a model changed on disk after load --------------------------------------------------------
#: Every way a loaded model may go back to its file: a lazily compiled throughput variant
#: (queue), a conversion compiled into the graph (float16, uint8 HWC frame), a new shape of
#: a dynamic model (and its static compile).
REPLACED_PATHS = (*helpers.PATHS, "float16", "uint8_hwc", "new_shape", "new_static_shape")


def _check_replaced(models: dict[str, object], how: str) -> None:
    rng = np.random.default_rng(2)
    if how in ("new_shape", "new_static_shape"):
        model, name = models[how], "dynamic"
        feed = {"x": rng.standard_normal((1, 3, 9, 11)).astype(np.float32)}
        outputs = helpers.run_via(model, "run", feed)
    else:
        model, name = models["conv_net"], "conv_net"
        frame = rng.random((1, 3, 16, 16), dtype=np.float32)
        feed = {"input": frame}
        if how == "float16":
            frame = frame.astype(np.float16)
            feed = {"input": frame.astype(np.float32)}
            outputs = helpers.run_via(model, "run", {"input": frame})
        elif how == "uint8_hwc":
            hwc = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
            tensor = helpers.runtime(model.backend).tensor_from_numpy(hwc, layout="HWC")
            feed = {"input": hwc.transpose(2, 0, 1)[np.newaxis].astype(np.float32)}
            outputs = helpers.run_via(model, "run", {"input": tensor})
        else:
            outputs = helpers.run_via(model, how, feed)
    helpers.assert_answers(outputs, helpers.zoo_model(name).reference(feed))


def replaced_after_load(backend: str, fmt: str, cache: bool, mode: str) -> dict[str, str]:
    directory = helpers.workdir(f"replaced-{fmt}-{mode}")
    paths = {}
    for name in ("conv_net", "dynamic"):
        (directory / name).mkdir()
        paths[name] = helpers.install(helpers.zoo_model(name), directory / name, fmt)
    with InferenceRuntime(backend, cache_dir=directory / "cache" if cache else None) as runtime:
        models = {
            "conv_net": runtime.load_model(paths["conv_net"], device="CPU"),
            "new_shape": runtime.load_model(paths["dynamic"], device="CPU"),
            "new_static_shape": runtime.load_model(
                paths["dynamic"], device="CPU", static_shapes=True
            ),
        }
        for name, path in paths.items():
            helpers.overwrite(path, helpers.negated(name), mode)
        failures = {}
        for how in REPLACED_PATHS:
            try:
                _check_replaced(models, how)
            except Exception as exc:
                failures[how] = f"{type(exc).__name__}: {exc}"[:500]
    assert not failures, f"paths that did not keep the loaded model's answers: {failures}"
    return failures


@pytest.mark.parametrize("mode", ["in_place", "rename"])
@pytest.mark.parametrize("cache", [False, True], ids=["no_cache", "cache_dir"])
@pytest.mark.parametrize(("backend", "fmt"), FORMATS)
def test_model_replaced_on_disk_after_load_keeps_its_answers(sandbox, backend, fmt, cache, mode):
    sandbox.call(replaced_after_load, backend, fmt, cache, mode)


# -- compiled-model caches -----------------------------------------------------------------------
def _damage(cache: Path, how: str) -> int:
    files = [path for path in cache.rglob("*") if path.is_file()]
    for path in files:
        data = path.read_bytes()
        if how == "truncated":
            path.write_bytes(data[: len(data) // 2])
        elif how == "garbage":
            path.write_bytes(_random(len(data)))
        else:
            path.write_bytes(b"")
    return len(files)


def corrupted_cache(backend: str, fmt: str, how: str) -> None:
    directory = helpers.workdir(f"corrupted-cache-{fmt}-{how}")
    path = helpers.install(helpers.zoo_model("conv_net"), directory, fmt)
    cache = directory / "cache"
    with InferenceRuntime(backend, cache_dir=cache) as runtime:
        model = runtime.load_model(path, device="CPU")
        for how_run in ("run", "queue"):  # the queue compiles (and caches) its own variant
            helpers.assert_still_works(model, "conv_net", how_run)
    assert _damage(cache, how), "nothing was cached to damage"
    for _ in range(2):  # the damaged entry, then whatever replaced it
        with InferenceRuntime(backend, cache_dir=cache) as runtime:
            model = runtime.load_model(path, device="CPU")
            for how_run in ("run", "queue", "stream"):
                helpers.assert_still_works(model, "conv_net", how_run)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
@pytest.mark.parametrize(("backend", "fmt"), FORMATS)
def test_a_corrupted_cache_entry_is_never_used(sandbox, backend, fmt, how):
    sandbox.call(corrupted_cache, backend, fmt, how)


def updated_behind_cache(backend: str, fmt: str, mode: str) -> None:
    directory = helpers.workdir(f"updated-behind-cache-{fmt}-{mode}")
    path = helpers.install(helpers.zoo_model("conv_net"), directory, fmt)
    cache = directory / "cache"
    first = InferenceRuntime(backend, cache_dir=cache)
    try:
        model = first.load_model(path, device="CPU")
        for how in ("run", "queue"):
            helpers.assert_still_works(model, "conv_net", how)
        helpers.overwrite(path, helpers.negated("conv_net"), mode)
        new = helpers.negated("conv_net")
        feed = new.make_inputs(np.random.default_rng(8))
        with InferenceRuntime(backend, cache_dir=cache) as second:
            updated = second.load_model(path, device="CPU")
            for how in ("run", "queue", "stream"):
                helpers.assert_answers(helpers.run_via(updated, how, feed), new.reference(feed))
        again = first.load_model(path, device="CPU")  # the same runtime, loading again
        helpers.assert_answers(helpers.run_via(again, "run", feed), new.reference(feed))
    finally:
        first.close()


@pytest.mark.parametrize("mode", ["in_place", "rename"])
@pytest.mark.parametrize(("backend", "fmt"), FORMATS)
def test_an_updated_model_behind_a_cache_gives_the_new_answers(sandbox, backend, fmt, mode):
    sandbox.call(updated_behind_cache, backend, fmt, mode)
