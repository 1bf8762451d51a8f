"""Input preparation: the checks and conversions every backend shares, precomputed per input.

A frame reaches a model in one of three ways:

* as it is, when its dtype and layout are what the model takes (no copy at all);
* converted inside the graph, when the backend can compile the conversion (OpenVINO's
  PrePostProcessor, a Transpose/Cast prepended to the ONNX graph): the model is specialized
  once per input signature and the frame goes in untouched;
* converted in numpy (a transpose and a safe cast), when the backend cannot.

ONNX ports that are not plain tensors (sequences, optionals; ONNX Runtime only) have a
:class:`PortPlan` instead: a list of arrays, or ``None``, checked item by item and never
converted in the graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._layouts import with_batch
from .devices import Device
from .dtypes import convert_array, kind_of
from .errors import InvalidInputError
from .shapes import check_fits_in_memory
from .tensor import DeviceTensor, Tensor, TensorInfo, format_signature

__all__ = ["InputPlan", "PortPlan", "plan_for"]


class InputPlan:
    """What one input takes, precomputed at load so each run checks it cheaply."""

    __slots__ = (
        "_last_view",
        "device",
        "dtype",
        "exact_shape",
        "info",
        "layout",
        "name",
        "ndim",
        "static_dims",
        "what",
    )

    def __init__(self, info: TensorInfo, layout: str | None, device: Device | None = None) -> None:
        self.info = info
        # The GPU whose DeviceTensors the backend takes in place (None: host data only).
        self.device = device
        self.name = info.name
        self.what = f"input '{info.name}'"
        self.dtype = info.dtype
        self.layout = layout
        self.ndim = None if info.shape is None else len(info.shape)
        self.static_dims = (
            ()
            if info.shape is None
            else tuple((axis, dim) for axis, dim in enumerate(info.shape) if dim is not None)
        )
        # The whole shape when every dim is static (one tuple compare on the hot path).
        shape = info.shape
        self.exact_shape = shape if shape is not None and None not in shape else False
        # (source array, its view in the model's layout): the same frame buffer gives the
        # same view object, so a bound request sees an array it already has (no rebinding).
        self._last_view: tuple[np.ndarray, str, np.ndarray] | None = None

    def signature(self) -> str:
        text = format_signature(self.dtype, self.info.shape)
        return f"{text} ({self.layout})" if self.layout else text

    # -- choosing a conversion -------------------------------------------------------------
    def conversion(self, value: np.ndarray | Tensor) -> tuple[np.dtype, str] | None:
        """``(data dtype, data layout)`` when ``value`` needs converting to what the model
        takes and a graph could do it; ``None`` when it goes in as it is (or via numpy)."""
        if type(value) is np.ndarray and value.dtype == self.dtype:
            return None  # the hot path: an array of the model's own dtype
        if type(value) is DeviceTensor:
            return None  # used in place, as it is (prepare checks it)
        if isinstance(value, Tensor):
            array, layout = value._data, value._layout
        else:
            array, layout = value, None
        wanted = self.layout
        if layout is not None and wanted is not None:
            full = with_batch(layout, wanted)
            if full != wanted:  # axes to reorder (a missing batch alone is a free view)
                self._check_convertible(array, full)
                return (
                    array.dtype if array.dtype.isnative else array.dtype.newbyteorder("="),
                    full,
                )
        # Big-endian data: the graph converts from the native twin, numpy swaps the bytes.
        dtype = array.dtype if array.dtype.isnative else array.dtype.newbyteorder("=")
        if dtype != self.dtype and self._graph_castable(dtype):
            if layout is None and not self._shape_matches(array.shape):
                self._refuse(array)  # before compiling anything for it
            return dtype, wanted or ""
        return None

    def _graph_castable(self, source: np.dtype) -> bool:
        # Numbers into a float input: no range to check, so the graph can cast them.
        return kind_of(self.dtype) == "f" and kind_of(source) in "biuf" and source.kind != "V"

    def _check_convertible(self, array: np.ndarray, layout: str) -> None:
        wanted = self.layout
        assert wanted is not None
        if sorted(layout) != sorted(wanted) or "?" in layout:
            raise InvalidInputError(
                f"{self.what}: data declared as layout '{layout}' cannot be converted to the "
                f"model's layout '{wanted}'"
            )
        shape = array.shape if len(array.shape) == len(layout) else (1, *array.shape)
        as_model = tuple(shape[layout.index(axis)] for axis in wanted)
        if not self._shape_matches(as_model):
            raise InvalidInputError(
                f"{self.what}: expected {self.signature()}, got "
                f"{format_signature(array.dtype, shape)} ({layout})"
            )

    # -- preparing the array the backend gets ----------------------------------------------
    def prepare(self, value: Any) -> np.ndarray:
        """Validate ``value`` and return a C-contiguous array of the dtype the model takes."""
        if (  # the hot path: already what the model takes
            type(value) is np.ndarray
            and value.shape == self.exact_shape
            and value.dtype == self.dtype
            and value.flags.c_contiguous
        ):
            return value
        if type(value) is DeviceTensor:
            return self._prepare_device(value)
        if isinstance(value, Tensor):
            array = value._data
            if value._layout is not None:
                array = self._convert_layout(array, value._layout)
        elif isinstance(value, np.ndarray):
            array = value
        else:  # numpy scalars, Python numbers, nested lists
            array = self.coerce(value)
        if not self._shape_matches(array.shape):
            self._refuse(array)
        converts = array.dtype != self.dtype
        if converts or not array.flags.c_contiguous:  # a new array: will it fit?
            check_fits_in_memory(array.shape, self.dtype, self.what)
        if converts:
            array = convert_array(array, self.dtype, self.what)
        if not array.flags.c_contiguous:
            array = np.ascontiguousarray(array)
        return array

    def _prepare_device(self, tensor: DeviceTensor) -> Any:
        """A GPU tensor goes in place: on the model's own GPU, in its dtype, shape and layout."""
        device = self.device
        if device is None:
            raise InvalidInputError(
                f"{self.what}: expected host data (a numpy array or tensor_from_numpy), got a "
                f"tensor on {tensor.device}: this model takes host data only; pass "
                f"tensor.to_numpy(), or load the model on {tensor.device} with a backend that "
                f"takes GPU tensors (tensorrt, onnxruntime)"
            )
        if tensor.device != device.indexed_name:
            raise InvalidInputError(
                f"{self.what}: the data is on {tensor.device}, the model runs on {device}; "
                f"pass host data (tensor.to_numpy()) or load the model on {tensor.device}"
            )
        data = tensor._data
        layout = tensor._layout
        if layout is not None and self.layout is not None:
            full = with_batch(layout, self.layout)
            if full != self.layout:
                raise InvalidInputError(
                    f"{self.what}: expected {self.signature()} on the GPU, got "
                    f"{format_signature(data.dtype, data.shape)} ({layout}); GPU tensors are "
                    f"used in place, so their layout must be the model's"
                )
            if full != layout:  # a frame without its batch dimension: the same memory
                data = data.reshape((1, *data.shape))
        if data.dtype != self.dtype or not self._shape_matches(data.shape):
            raise InvalidInputError(
                f"{self.what}: expected {self.signature()} on the GPU, got "
                f"{format_signature(data.dtype, data.shape)}; GPU tensors are used in place, "
                f"so their dtype and shape must be the model's"
            )
        return data

    def _refuse(self, array: np.ndarray) -> None:
        raise InvalidInputError(  # the contract's form: expected float32[..], got uint8[..]
            f"{self.what}: expected {format_signature(self.dtype, self.info.shape)}, "
            f"got {format_signature(array.dtype, array.shape)}"
            + (f" (model layout {self.layout})" if self.layout else "")
        )

    def _shape_matches(self, shape: tuple[int, ...]) -> bool:
        if self.ndim is None:
            return True
        if len(shape) != self.ndim:
            return False
        return all(shape[axis] == dim for axis, dim in self.static_dims)

    def coerce(self, value: Any) -> np.ndarray:
        """A numpy array from a Python number, list or numpy scalar."""
        if isinstance(value, (list, tuple)) and any(
            isinstance(item, (np.ndarray, Tensor)) for item in value
        ):  # the form of a sequence input: numpy would stack it without a word
            raise InvalidInputError(
                f"{self.what}: expected one array of {self.signature()}, got a "
                f"{type(value).__name__} of {len(value)} arrays; this input is a tensor, not a "
                f"sequence (numpy.stack them for a batch)"
            )
        try:
            array = np.asarray(value)
        except Exception as exc:
            raise InvalidInputError(
                f"{self.what}: expected a Tensor or numpy array, got {type(value).__name__}"
            ) from exc
        if array.dtype.kind == "O" and self.dtype.kind not in "USO":
            raise InvalidInputError(
                f"{self.what}: expected a Tensor or numpy array of {self.signature()}, got "
                f"{type(value).__name__} that numpy can only hold as objects"
            )
        return array

    def _convert_layout(self, array: np.ndarray, layout: str) -> np.ndarray:
        """Reorder axes from the declared ``layout`` to the one the model wants (a view)."""
        wanted = self.layout
        if wanted is None or layout == wanted:
            return array
        last = self._last_view  # one read: other threads may replace it meanwhile
        if last is not None and last[0] is array and last[1] == layout:
            return last[2]
        source = array
        full = with_batch(layout, wanted)
        if full != layout:
            array = array[np.newaxis]  # a frame without its batch dimension
        self._check_convertible(array, full)
        view = array.transpose([full.index(axis) for axis in wanted])
        self._last_view = (source, layout, view)
        return view


def plan_for(
    info: TensorInfo, layout: str | None, device: Device | None = None
) -> InputPlan | PortPlan:
    """The plan of one input: an :class:`InputPlan` for a tensor, a :class:`PortPlan` for a
    sequence or optional port."""
    if info.sequence or info.optional:
        return PortPlan(info)
    return InputPlan(info, layout, device)


class PortPlan:
    """What a sequence or optional input takes: a list (or tuple) of arrays for a sequence,
    ``None`` for an absent optional. Every item is checked and cast as a tensor input of the
    item type is (:class:`InputPlan`), host data only; nothing is converted in the graph."""

    __slots__ = ("dtype", "info", "item", "layout", "name", "what")

    def __init__(self, info: TensorInfo) -> None:
        self.info = info
        self.name = info.name
        self.what = f"input '{info.name}'"
        self.dtype = info.dtype
        self.layout = None  # sequences and optionals have no layout to convert
        # A sequence's items (or an optional's value) are checked as this tensor input is.
        self.item = InputPlan(TensorInfo(info.name, info.shape, info.dtype), None)

    def signature(self) -> str:
        info = self.info
        return format_signature(self.dtype, info.shape, info.sequence, info.optional)

    def conversion(self, value: Any) -> None:
        """Never converted in the graph: items are checked and cast in :meth:`prepare`."""
        return None

    def coerce(self, value: Any) -> Any:
        """As given: :meth:`prepare` checks it."""
        return value

    def prepare(self, value: Any) -> Any:
        """The value the backend takes: a list of C-contiguous arrays of the item dtype for a
        sequence, an array for an optional tensor, ``None`` for an absent optional."""
        info = self.info
        if value is None:
            if info.optional:
                return None
            raise InvalidInputError(
                f"{self.what}: expected {self.signature()} (a list of arrays), got None; "
                f"only optional inputs may be None"
            )
        if not info.sequence:
            return self.item.prepare(value)  # an optional tensor that is present
        if not isinstance(value, (list, tuple)):
            one = isinstance(value, (np.ndarray, Tensor))
            raise InvalidInputError(
                f"{self.what}: expected {self.signature()} (a list of arrays), got "
                f"{_describe_value(value)}; "
                + ("wrap a single array in a list" if one else "pass a list or tuple")
            )
        dtype = self.dtype
        return [
            item
            if type(item) is np.ndarray and item.dtype == dtype and item.flags.c_contiguous
            else self._prepare_item(item, index)
            for index, item in enumerate(value)
        ]

    def _prepare_item(self, item: Any, index: int) -> np.ndarray:
        plan = InputPlan(self.item.info, None)
        plan.what = f"{self.what} item {index}"  # a plan of its own: the message names the item
        return plan.prepare(item)


def _describe_value(value: Any) -> str:
    if isinstance(value, (np.ndarray, Tensor)):
        return f"{type(value).__name__} {format_signature(value.dtype, value.shape)}"
    return type(value).__name__
