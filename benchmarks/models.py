"""The benchmark's models, built with onnx.helper (nothing is downloaded).

* :func:`build_resnet` -- the ResNet-50 topology (stem conv 7x7/2 + max-pool, bottleneck
  blocks [3, 4, 6, 3] of 1x1-3x3-1x1 convolutions with projection shortcuts, ReLU, residual
  Add, global average pool, Gemm 2048 -> 1000). Weights are random and He-initialised, with
  BatchNorm folded away (no BN nodes); the last convolution of each residual branch is
  scaled down so the residual sums, which BatchNorm would have kept in range, stay small and
  finite. The same builder makes a small variant for smoke runs and tests.
* :func:`build_tiny` -- ``out = a + b`` on two float32 [2, 4] inputs: a model that costs next
  to nothing to run, so timing it measures the per-call overhead of whoever calls it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 8

#: ResNet-50: bottleneck blocks per stage and the stem's width.
RESNET50_BLOCKS = (3, 4, 6, 3)
RESNET50_WIDTH = 64
#: Scale of each residual branch's last convolution (stands in for the folded BatchNorm).
RESIDUAL_SCALE = 0.2


@dataclass(frozen=True)
class BuiltModel:
    """A model written to disk: its path and what it takes and gives."""

    name: str
    path: Path
    inputs: dict[str, tuple[int, ...]]
    outputs: dict[str, tuple[int, ...]]
    conv_count: int = 0
    parameters: int = 0

    def make_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Random float32 inputs (C-contiguous, fresh arrays) for every model input."""
        rng = np.random.default_rng(seed)
        return {
            name: rng.standard_normal(shape, dtype=np.float32)
            for name, shape in self.inputs.items()
        }


class _Graph:
    """Collects nodes and initializers; names every tensor it creates."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.convs = 0
        self.parameters = 0
        self._count = 0

    def name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def weight(self, prefix: str, array: np.ndarray) -> str:
        name = self.name(prefix)
        self.initializers.append(numpy_helper.from_array(array.astype(np.float32), name))
        self.parameters += array.size
        return name

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        kernel: int,
        *,
        stride: int = 1,
        relu: bool = True,
        scale: float = 1.0,
    ) -> str:
        """Conv (+ bias, the folded BatchNorm) with He-initialised weights, then ReLU."""
        std = math.sqrt(2.0 / (cin * kernel * kernel)) * scale
        w = self.rng.standard_normal((cout, cin, kernel, kernel), dtype=np.float32) * std
        b = self.rng.standard_normal(cout, dtype=np.float32) * 0.01
        pad = kernel // 2
        y = self.name("conv")
        self.nodes.append(
            helper.make_node(
                "Conv",
                [x, self.weight("w", w), self.weight("b", b)],
                [y],
                kernel_shape=[kernel, kernel],
                strides=[stride, stride],
                pads=[pad, pad, pad, pad],
            )
        )
        self.convs += 1
        return self.relu(y) if relu else y

    def relu(self, x: str) -> str:
        y = self.name("relu")
        self.nodes.append(helper.make_node("Relu", [x], [y]))
        return y

    def add(self, a: str, b: str) -> str:
        y = self.name("add")
        self.nodes.append(helper.make_node("Add", [a, b], [y]))
        return y


def _make_model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def resnet_proto(
    *,
    blocks: Sequence[int] = RESNET50_BLOCKS,
    width: int = RESNET50_WIDTH,
    image: int = 224,
    classes: int = 1000,
    seed: int = 0,
) -> tuple[onnx.ModelProto, int, int]:
    """The ResNet (v1.5: stride on the 3x3) graph; returns (model, conv count, parameters)."""
    g = _Graph(seed)
    x = g.conv("input", 3, width, 7, stride=2)
    pooled = g.name("pool")
    g.nodes.append(
        helper.make_node(
            "MaxPool", [x], [pooled], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]
        )
    )
    x, channels = pooled, width
    for stage, count in enumerate(blocks):
        mid = width * 2**stage
        out_channels = mid * 4
        for index in range(count):
            stride = 2 if (index == 0 and stage > 0) else 1
            h = g.conv(x, channels, mid, 1)
            h = g.conv(h, mid, mid, 3, stride=stride)
            h = g.conv(h, mid, out_channels, 1, relu=False, scale=RESIDUAL_SCALE)
            shortcut = x
            if index == 0:  # projection: the channel count (and maybe resolution) changes
                shortcut = g.conv(x, channels, out_channels, 1, stride=stride, relu=False)
            x = g.relu(g.add(h, shortcut))
            channels = out_channels
    gap, flat = g.name("gap"), g.name("flat")
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], [gap]))
    g.nodes.append(helper.make_node("Flatten", [gap], [flat], axis=1))
    fc_w = g.rng.standard_normal((classes, channels), dtype=np.float32) * math.sqrt(1.0 / channels)
    fc_b = np.zeros(classes, np.float32)
    g.nodes.append(
        helper.make_node(
            "Gemm", [flat, g.weight("fc_w", fc_w), g.weight("fc_b", fc_b)], ["output"], transB=1
        )
    )
    graph = helper.make_graph(
        g.nodes,
        "resnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, image, image])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, classes])],
        g.initializers,
    )
    return _make_model(graph), g.convs, g.parameters


def build_resnet(
    directory: str | Path,
    *,
    name: str = "resnet50",
    blocks: Sequence[int] = RESNET50_BLOCKS,
    width: int = RESNET50_WIDTH,
    image: int = 224,
    classes: int = 1000,
    seed: int = 0,
) -> BuiltModel:
    """Write ``NAME.onnx`` (checked by onnx.checker) into ``directory``."""
    model, convs, parameters = resnet_proto(
        blocks=blocks, width=width, image=image, classes=classes, seed=seed
    )
    onnx.checker.check_model(model)
    path = Path(directory) / f"{name}.onnx"
    onnx.save(model, str(path))
    return BuiltModel(
        name=name,
        path=path,
        inputs={"input": (1, 3, image, image)},
        outputs={"output": (1, classes)},
        conv_count=convs,
        parameters=parameters,
    )


def build_small(directory: str | Path) -> BuiltModel:
    """The same topology shrunk (one block per stage, width 8, 32x32, 10 classes)."""
    return build_resnet(
        directory, name="resnet_small", blocks=(1, 1, 1, 1), width=8, image=32, classes=10
    )


def build_tiny(directory: str | Path) -> BuiltModel:
    """``out = a + b`` on float32 [2, 4]: for per-call overhead."""
    shape = [2, 4]
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["out"])],
        "tiny",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, shape),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, shape),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
    )
    model = _make_model(graph)
    onnx.checker.check_model(model)
    path = Path(directory) / "tiny_add.onnx"
    onnx.save(model, str(path))
    return BuiltModel(
        name="tiny_add",
        path=path,
        inputs={"a": tuple(shape), "b": tuple(shape)},
        outputs={"out": tuple(shape)},
    )
