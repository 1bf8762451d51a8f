"""Dynamic shapes: each new shape is prepared once, remembered in a bounded LRU, never again."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import InvalidInputError, ShapeCacheInfo

ATOL = 1e-4


def load(runtime, zoo_model, backend, **options):
    return runtime.load_model(zoo_model.path_for(backend), device="CPU", **options)


def x_of(shape, rng):
    return rng.standard_normal(shape).astype(np.float32)


def test_hits_misses_and_lru_eviction(runtime, backend, dynamic, rng):
    model = load(runtime, dynamic, backend, shape_cache_size=2)
    assert model.shape_cache_info() == ShapeCacheInfo(0, 0, 2, 0)
    a, b, c = (1, 3, 4, 4), (2, 3, 5, 7), (1, 3, 8, 2)
    for shape in (a, b, a, c, b):  # miss, miss, hit, miss (evicts b), miss (b again)
        x = x_of(shape, rng)
        np.testing.assert_allclose(model.run(x)["y"].to_numpy(), np.maximum(x, 0) * 2, rtol=1e-6)
    assert model.shape_cache_info() == ShapeCacheInfo(hits=1, misses=4, maxsize=2, currsize=2)
    records = model.get_profiling().shapes
    assert sorted(r.shapes[0] for r in records) == sorted([list(c), list(b)])
    assert all(r.first_call_ms > 0 for r in records)


def test_every_path_shares_the_cache(runtime, backend, dynamic, rng):
    model = load(runtime, dynamic, backend)
    x = x_of((1, 3, 6, 6), rng)
    model.run(x)
    model.create_stream().run(x)
    request = model.create_async_request()
    request.start(x)
    request.wait(30)
    list(model.create_async_queue(depth=2).map([x, x]))
    assert model.shape_cache_info()[:2] == (4, 1)


@pytest.mark.parametrize("size", [0, -3, 2.5, "8"])
def test_bad_cache_size(runtime, backend, dynamic, size):
    with pytest.raises(InvalidInputError, match="shape_cache_size"):
        load(runtime, dynamic, backend, shape_cache_size=size)


def test_warm_up_shapes_at_load(runtime, backend, dynamic, rng):
    model = load(runtime, dynamic, backend, shapes=[(1, 3, 4, 4), (2, 3, 8, 8)])
    assert model.shape_cache_info()[:2] == (0, 2)
    assert model.get_profiling().runs == 2
    model.run(x_of((2, 3, 8, 8), rng))
    assert model.shape_cache_info()[:2] == (1, 2)


def test_warm_up_shape_for_a_named_input(runtime, backend, dynamic):
    model = load(runtime, dynamic, backend, shapes=[{"x": (1, 3, 2, 2)}])
    assert model.shape_cache_info().misses == 1
    with pytest.raises(InvalidInputError, match="unknown input"):
        load(runtime, dynamic, backend, shapes=[{"nope": (1, 3, 2, 2)}])


def test_shape_override(runtime, backend, dynamic, rng):
    model = load(runtime, dynamic, backend)
    flat = x_of((1 * 3 * 4 * 5,), rng)
    out = model.run(runtime.tensor_from_numpy(flat, shape_override=(1, 3, 4, 5)))["y"].to_numpy()
    assert out.shape == (1, 3, 4, 5)
    np.testing.assert_allclose(out.ravel(), np.maximum(flat, 0) * 2, rtol=1e-6)
    with pytest.raises(InvalidInputError, match=r"60 elements.*\(1, 3, 4, 4\) \(48 elements\)"):
        runtime.tensor_from_numpy(flat, shape_override=(1, 3, 4, 4))


def test_declared_static_model_opened_dynamic(runtime, backend, conv_net, rng):
    """conv_net declares [1,3,16,16] but is fully convolutional (CenterFace's case)."""
    with pytest.raises(InvalidInputError):
        load(runtime, conv_net, backend).run(x_of((2, 3, 20, 24), rng))
    model = load(runtime, conv_net, backend, dynamic=True)
    assert model.inputs[0].shape == (None, 3, None, None)
    x = rng.random((2, 3, 20, 24), dtype=np.float32)
    out = model.run(x)["output"].to_numpy()
    assert out.shape == (2, 4, 20, 24)
    np.testing.assert_allclose(out, conv_net.reference({"input": x})["output"], atol=ATOL)
    frame = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)  # and frames as cameras give them
    out = model.run(runtime.tensor_from_numpy(frame, layout="HWC"))["output"].to_numpy()
    reference = conv_net.reference({"input": frame.transpose(2, 0, 1)[None].astype(np.float32)})
    np.testing.assert_allclose(out, reference["output"], atol=1e-3)


def test_shapes_the_declared_dims_refuse_imply_dynamic(runtime, backend, conv_net, rng):
    model = load(runtime, conv_net, backend, shapes=[(1, 3, 32, 32)])
    assert model.inputs[0].shape == (None, 3, None, None)
    assert model.run(x_of((1, 3, 32, 32), rng))["output"].shape == (1, 4, 32, 32)
    assert model.shape_cache_info()[:2] == (1, 1)


def test_static_shapes_compile_once_per_shape(runtime, backend, dynamic, rng):
    """What GPU/NPU plugins need, forced here on the CPU: one compile per shape, cached."""
    model = load(runtime, dynamic, backend, static_shapes=True, shape_cache_size=2)
    shapes = [(1, 3, 4, 4), (1, 3, 6, 6), (1, 3, 4, 4), (1, 3, 8, 8)]
    for shape in shapes:
        x = x_of(shape, rng)
        np.testing.assert_allclose(model.run(x)["y"].to_numpy(), np.maximum(x, 0) * 2, rtol=1e-6)
    assert model.shape_cache_info() == ShapeCacheInfo(1, 3, 2, 2)
    records = model.get_profiling().shapes
    if backend == "openvino":
        assert all(record.specialized for record in records)
        executables = list(model._engine._shape_cache._entries.values())
        assert all(e.loaded.inputs[0].shape == tuple(e.shapes[0]) for e in executables)
    else:  # ONNX Runtime runs every shape on its dynamic session
        assert not any(record.specialized for record in records)


def test_a_stream_follows_changing_shapes(runtime, backend, dynamic, rng):
    model = load(runtime, dynamic, backend)
    stream = model.create_stream()
    for shape in [(1, 3, 4, 4), (2, 3, 5, 7), (1, 3, 4, 4), (1, 3, 9, 2)]:
        x = x_of(shape, rng)
        np.testing.assert_allclose(stream.run(x)["y"].to_numpy(), np.maximum(x, 0) * 2, rtol=1e-6)


def test_static_shapes_with_frames_converted_in_the_graph(runtime, backend, dynamic, rng):
    """On a device that needs static shapes, conversion and shape compile together, once."""
    model = load(runtime, dynamic, backend, static_shapes=True)
    for size in [(6, 8), (6, 8), (10, 4)]:
        frame = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        out = model.run(runtime.tensor_from_numpy(frame, layout="HWC"))["y"].to_numpy()
        expected = np.maximum(frame.transpose(2, 0, 1)[None].astype(np.float32), 0) * 2
        np.testing.assert_array_equal(out, expected)
    assert model.shape_cache_info()[:2] == (1, 2)
    if backend == "openvino":
        executables = [e for e in model._engine._executables() if e.shapes is not None]
        assert sorted(e.loaded.inputs[0].shape for e in executables) == [
            (1, 6, 8, 3),
            (1, 10, 4, 3),
        ]
        assert all(e.loaded.inputs[0].dtype == np.uint8 for e in executables)
        # no dynamic compile:
        assert not [e for e in model._engine._conversions.values() if e is not None]
