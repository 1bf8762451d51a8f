"""Edits of ONNX graphs that backends without a preprocessing API need (ONNX Runtime), and
a model's external weights read into it.

Needs the ``onnx`` package (in the ``onnxruntime`` extra); imported only when an edit is
asked for or a model names files of its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._layouts import axes_to_free, channel_axis, only_input, wanted_layout
from ..errors import BackendUnavailableError, InvalidInputError, ModelLoadError
from ..tensor import TensorInfo
from .base import InputConversion, LoadOptions, Normalization

__all__ = [
    "edit_for_load",
    "edited_for_load",
    "free_dims",
    "initializers_out_of_inputs",
    "load",
    "non_tensor_ports",
    "normalize",
    "parse",
    "refuse_non_tensor_ports",
    "with_conversions",
    "with_external_data",
]

#: Protobuf cannot serialize a message of 2 GiB or more: bigger models keep their weights
#: in files of their own.
PROTOBUF_LIMIT = 2**31


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise BackendUnavailableError(
            "editing the ONNX graph (dynamic=True, conversions in the graph) needs the 'onnx' "
            "package: pip install 'atriva-inference[onnxruntime]'"
        ) from exc
    return onnx


def available() -> bool:
    try:
        _onnx()
    except BackendUnavailableError:
        return False
    return True


def load(path: Path) -> Any:
    return _onnx().load(str(path))


def parse(data: bytes) -> Any:
    """The model serialized in ``data``; weights it keeps in files of their own stay there."""
    return _onnx().load_model_from_string(data)


def with_external_data(data: bytes, folder: Path) -> bytes:
    """``data`` with the weights it keeps in files of their own (in ``folder``) read in, so
    that a session built from it later reads no file. ``data`` itself when there are none,
    without the ``onnx`` package, or past protobuf's limit (those weights stay in their
    files)."""
    # The ONNX spec makes "location" a required key of every tensor stored outside the
    # model: bytes without the word have none, and need no parse to say so.
    if b"location" not in data or not available():
        return data
    onnx = _onnx()
    model = parse(data)
    if not any(onnx.external_data_helper.uses_external_data(t) for t in _tensors(model.graph)):
        return data
    onnx.external_data_helper.load_external_data_for_model(model, str(folder))
    if model.ByteSize() >= PROTOBUF_LIMIT:
        return data
    return model.SerializeToString()


#: What an ONNX port that is not a tensor is (TypeProto's "value" field).
_PORT_KINDS = {
    "sequence_type": "a sequence",
    "optional_type": "an optional",
    "map_type": "a map",
    "sparse_tensor_type": "a sparse tensor",
}


def non_tensor_ports(path: Path) -> list[str]:
    """The graph inputs and outputs of the ONNX model at ``path`` that are not tensors, as
    ``"input 'x' (a sequence)"``. Empty without the ``onnx`` package, or for a file onnx
    cannot parse (the backend reading it then says what is wrong with it)."""
    if not available():
        return []
    try:
        model = _onnx().load(str(path), load_external_data=False)
    except Exception:  # not ours to report: the backend's own read fails with its message
        return []
    graph = model.graph
    found = []
    for side, values in (("input", graph.input), ("output", graph.output)):
        for value in values:
            kind = value.type.WhichOneof("value")
            if kind in _PORT_KINDS:
                found.append(f"{side} '{value.name}' ({_PORT_KINDS[kind]})")
    return found


def refuse_non_tensor_ports(path: Path, backend: str) -> None:
    """A ``ModelLoadError`` for a backend that exchanges tensors only (OpenVINO, TensorRT)
    given an ONNX model with sequence, optional or map ports."""
    ports = non_tensor_ports(path)
    if ports:
        raise ModelLoadError(
            f"backend '{backend}' exchanges tensors only, and '{path.name}' has "
            f"{', '.join(ports)}: load it with InferenceRuntime(backend='onnxruntime'), which "
            f"takes sequences as lists of arrays and optionals as None or an array"
        )


def edited_for_load(path: Path, options: LoadOptions) -> Any:
    """The model at ``path`` with what ``load_model`` asked to change in it (see
    :func:`edit_for_load`)."""
    model = load(path)
    edit_for_load(model, options)
    return model


def edit_for_load(model: Any, options: LoadOptions) -> None:
    """Make what ``load_model`` asked to change, in place: dims freed (``dynamic=True``) and
    ``(x - mean) / scale`` prepended -- the edits every backend without a preprocessing API
    of its own makes the same way."""
    hints = dict(options.layouts)
    if options.dynamic:
        free_dims(model, hints)
    if options.normalization:
        normalize(model, options.normalization, hints)


def _real_inputs(model: Any) -> list[Any]:
    initializers = {initializer.name for initializer in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def _dims(value: Any) -> tuple[int | None, ...]:
    return tuple(
        dim.dim_value if dim.HasField("dim_value") else None
        for dim in value.type.tensor_type.shape.dim
    )


def initializers_out_of_inputs(model: Any) -> None:
    """Take initializers listed as graph inputs (old exporters do that) out of the inputs, in
    place, so ONNX Runtime folds them as constants instead of keeping them as overridable
    inputs (and warning about each one). IR < 4 requires them listed: left as they are."""
    if model.ir_version < 4:
        return
    graph = model.graph
    initializers = {initializer.name for initializer in graph.initializer}
    kept = [value for value in graph.input if value.name not in initializers]
    if len(kept) != len(graph.input):
        del graph.input[:]
        graph.input.extend(kept)


def free_dims(model: Any, hints: Mapping[str, str]) -> None:
    """Make declared-static dims symbolic (N, H, W of image inputs; N of others), in place,
    after :func:`initializers_out_of_inputs`."""
    initializers_out_of_inputs(model)
    graph = model.graph
    for value in _real_inputs(model):
        shape = _dims(value)
        info = TensorInfo(value.name, shape, np.dtype(np.float32))
        layout = wanted_layout(info, dict(hints))
        dims = value.type.tensor_type.shape.dim
        for axis in axes_to_free(len(shape), layout):
            dims[axis].Clear()
            dims[axis].dim_param = f"{value.name}_{axis}"
    for value in graph.output:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            dim.Clear()
            dim.dim_param = f"{value.name}_{axis}"
    del graph.value_info[:]  # stale static shapes of intermediates would contradict
    _drop_unused_initializers(graph)


def _graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and the subgraphs of its If/Loop/Scan nodes, which may read the outer
    graph's tensors by name."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("g"):
                yield from _graphs(attribute.g)
            for subgraph in attribute.graphs:
                yield from _graphs(subgraph)


def _nodes(graph: Any) -> Iterator[Any]:
    """Every node of ``graph`` and of its subgraphs."""
    for each in _graphs(graph):
        yield from each.node


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor stored in ``graph`` and its subgraphs: initializers and node attributes
    (a Constant's value)."""
    for each in _graphs(graph):
        yield from each.initializer
        for node in each.node:
            for attribute in node.attribute:
                if attribute.HasField("t"):
                    yield attribute.t
                yield from attribute.tensors


def _drop_unused_initializers(graph: Any) -> None:
    """Exporters leave some (BatchNorm's num_batches_tracked); ONNX Runtime warns per each."""
    used = {name for node in _nodes(graph) for name in node.input}
    used |= {value.name for value in graph.output}
    kept = [initializer for initializer in graph.initializer if initializer.name in used]
    if len(kept) != len(graph.initializer):
        del graph.initializer[:]
        graph.initializer.extend(kept)


def with_conversions(model: Any, conversions: Sequence[InputConversion]) -> None:
    """Prepend Transpose/Cast so each converted input takes the data as given, in place.

    The input keeps its name (callers address it so); its consumers read the converted
    tensor instead. Raises ``NotImplementedError`` for an input that is also an output
    (converting it would change the output), or data of a type ONNX has no number for
    (another byte order, a type this onnx predates): the caller converts in numpy then.
    """
    onnx = _onnx()
    graph = model.graph
    inputs = _real_inputs(model)
    data_types = [_element_type(onnx, conversion.dtype) for conversion in conversions]
    prologue = []
    for conversion, data_type in zip(conversions, data_types):
        value = inputs[conversion.index]
        name, converted = value.name, f"{value.name}__atriva_converted"
        _rename_consumers(graph, name, converted)
        tensor_type = value.type.tensor_type
        current = name
        steps = []
        if (
            conversion.layout
            and conversion.model_layout
            and (conversion.layout != conversion.model_layout)
        ):
            data, wanted = conversion.layout, conversion.model_layout
            permutation = [data.index(axis) for axis in wanted]
            steps.append(("Transpose", {"perm": permutation}))
            dims = [type(tensor_type.shape.dim[0])() for _ in data]
            for axis, letter in enumerate(data):
                dims[axis].CopyFrom(tensor_type.shape.dim[wanted.index(letter)])
            del tensor_type.shape.dim[:]
            tensor_type.shape.dim.extend(dims)
        model_type = tensor_type.elem_type
        if data_type != model_type:
            steps.append(("Cast", {"to": model_type}))
            tensor_type.elem_type = data_type
        for position, (op_type, attributes) in enumerate(steps):
            output = converted if position == len(steps) - 1 else f"{name}__atriva_{op_type}"
            prologue.append(
                onnx.helper.make_node(
                    op_type, [current], [output], name=f"{name}__atriva_{op_type}", **attributes
                )
            )
            current = output
    for position, node in enumerate(prologue):
        graph.node.insert(position, node)


def _element_type(onnx: Any, dtype: np.dtype) -> int:
    try:
        return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    except (KeyError, ValueError) as exc:
        raise NotImplementedError(f"ONNX has no element type for {dtype!r}") from exc


def normalize(model: Any, normalization: Sequence[Normalization], hints: Mapping[str, str]) -> None:
    """Prepend ``Sub(mean)`` and ``Div(scale)`` per channel to the named inputs, in place."""
    onnx = _onnx()
    graph = model.graph
    inputs = _real_inputs(model)
    prologue = []
    for entry in normalization:
        if entry.input == "*":
            only_input([value.name for value in inputs], "mean/scale")
        matches = inputs[:1] if entry.input == "*" else [v for v in inputs if v.name == entry.input]
        if not matches:
            raise InvalidInputError(f"mean/scale: the model has no input '{entry.input}'")
        value = matches[0]
        if value.type.WhichOneof("value") != "tensor_type":
            raise InvalidInputError(
                f"mean/scale of '{value.name}': the input is "
                f"{_PORT_KINDS.get(value.type.WhichOneof('value'), 'not a tensor')}; mean and "
                f"scale apply to tensor inputs"
            )
        shape = _dims(value)
        info = TensorInfo(value.name, shape, np.dtype(np.float32))
        axis = channel_axis(wanted_layout(info, dict(hints)), f"mean/scale of '{value.name}'")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type)
        if dtype.kind != "f":
            raise InvalidInputError(
                f"mean/scale of '{value.name}': the input takes {dtype.name}; mean and scale "
                f"apply to float inputs"
            )
        channels, count = shape[axis], len(entry.mean)
        if channels is not None and count not in (1, channels):  # one value serves them all
            raise InvalidInputError(
                f"mean/scale of '{value.name}': expected {channels} values (one per "
                f"channel), got {count}"
            )
        broadcast = [1] * len(shape)
        broadcast[axis] = -1
        name = value.name
        normalized = f"{name}__atriva_normalized"
        _rename_consumers(graph, name, normalized)
        mean_name, scale_name = f"{name}__atriva_mean", f"{name}__atriva_scale"
        for constant, values in ((mean_name, entry.mean), (scale_name, entry.scale)):
            array = np.asarray(values, dtype=dtype).reshape(broadcast)
            graph.initializer.append(onnx.numpy_helper.from_array(array, constant))
        centred = f"{name}__atriva_centred"
        prologue.append(
            onnx.helper.make_node("Sub", [name, mean_name], [centred], name=f"{name}__atriva_Sub")
        )
        prologue.append(
            onnx.helper.make_node(
                "Div", [centred, scale_name], [normalized], name=f"{name}__atriva_Div"
            )
        )
    for position, node in enumerate(prologue):
        graph.node.insert(position, node)


def _rename_consumers(graph: Any, name: str, new_name: str) -> None:
    if any(value.name == name for value in graph.output):
        raise NotImplementedError(f"input '{name}' is also a graph output")
    for node in _nodes(graph):
        for position, node_input in enumerate(node.input):
            if node_input == name:
                node.input[position] = new_name
