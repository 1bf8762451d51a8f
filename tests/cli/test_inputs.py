"""Tests of the commands' inputs: random data, --shape specs (atriva_inference.cli.inputs)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from atriva_inference import TensorInfo
from atriva_inference.cli.inputs import make_random_inputs, parse_shapes
from atriva_inference.errors import InvalidInputError


def test_make_random_inputs_shapes_and_ranges() -> None:
    infos = [
        TensorInfo("f", (None, 3, None), np.dtype(np.float16)),
        TensorInfo("i", (2, None), np.dtype(np.int64)),
        TensorInfo("u", (5,), np.dtype(np.uint8)),
        TensorInfo("q", (50,), np.dtype(ml_dtypes.int4)),
        TensorInfo("b", (100,), np.dtype(np.bool_)),
        TensorInfo("s", (None,), np.dtype(np.str_)),
        TensorInfo("scalar", (), np.dtype(np.float32)),
    ]
    arrays = make_random_inputs(infos, seed=1, dynamic_size=7)
    assert {name: a.shape for name, a in arrays.items()} == {
        "f": (1, 3, 7),
        "i": (2, 7),
        "u": (5,),
        "q": (50,),
        "b": (100,),
        "s": (1,),
        "scalar": (),
    }
    assert arrays["s"].dtype.kind == "U"
    assert {n: a.dtype for n, a in arrays.items() if n != "s"} == {
        i.name: i.dtype for i in infos if i.name != "s"
    }
    assert arrays["f"].min() >= 0.0 and arrays["f"].max() < 1.0
    assert arrays["i"].min() >= 0 and arrays["i"].max() < 10
    assert 0 <= int(arrays["q"].astype(np.int8).max()) <= 7
    assert arrays["b"].any() and not arrays["b"].all()
    assert all(0 < len(text) < 10 for text in arrays["s"])
    again = make_random_inputs(infos, seed=1, dynamic_size=7)
    assert all(np.array_equal(arrays[name], again[name]) for name in arrays)


def test_make_random_inputs_unknown_rank_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown rank"):
        make_random_inputs([TensorInfo("x", None, np.dtype(np.float32))])


def test_parse_shapes():
    infos = [TensorInfo("x", (None, 3, None), np.dtype(np.float32))]
    assert parse_shapes(["x=2x3x5"], infos)[0].shape == (2, 3, 5)
    assert parse_shapes(["4x3x1"], infos)[0].shape == (4, 3, 1)
    assert parse_shapes([], infos) == infos
    two = [*infos, TensorInfo("y", (1,), np.dtype(np.int64))]
    with pytest.raises(InvalidInputError, match="NAME=AxBxC"):
        parse_shapes(["2x3x5"], two)
    with pytest.raises(InvalidInputError, match="more than once"):
        parse_shapes(["x=2x3x5", "x=1x3x5"], infos)
