"""GPU tensors (DeviceTensor) as far as a machine without a GPU can check them: how they are
made, described and refused. Nothing here dereferences the device pointers: the arrays are
descriptions of device memory, and every path tested stops before a backend would use them.
Their use in place on a GPU is tested in tests/backends (marked ``gpu``)."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import DeviceTensor, InferenceRuntime, InvalidInputError, Tensor, TensorInfo
from atriva_inference._preparation import InputPlan
from atriva_inference.cuda import DeviceArray
from atriva_inference.devices import Device

# An address that is never read: these tests only check routing and validation.
NOWHERE = 0x7F0000000000


def device_tensor(shape, dtype=np.float32, device=0, layout=None) -> DeviceTensor:
    return DeviceTensor(DeviceArray(NOWHERE, shape, dtype, device), layout)


def plan(shape=(1, 3, 8, 8), layout="NCHW", device="GPU.0", dtype=np.float32) -> InputPlan:
    resolved = None if device is None else Device.of(device)
    return InputPlan(TensorInfo("x", shape, np.dtype(dtype)), layout, resolved)


class HostDLPack:
    """A host array seen only through the DLPack protocol (as a PyTorch CPU tensor is)."""

    def __init__(self, array: np.ndarray) -> None:
        self._array = array

    def __dlpack__(self, *args, **kwargs):
        return self._array.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


def test_device_tensor_describes_its_device_data():
    tensor = device_tensor((1, 3, 8, 8), device=1, layout="NCHW")
    assert isinstance(tensor, Tensor)
    assert tensor.device == "GPU.1"
    assert tensor.shape == (1, 3, 8, 8)
    assert tensor.dtype == np.float32
    assert tensor.data_ptr == NOWHERE
    interface = tensor.__cuda_array_interface__
    assert interface["data"][0] == NOWHERE
    assert tuple(interface["shape"]) == (1, 3, 8, 8)
    assert "GPU.1" in repr(tensor) and "float32[1,3,8,8]" in repr(tensor)


def test_device_tensor_cannot_be_viewed_from_the_host_without_a_copy():
    with pytest.raises(ValueError, match="without a copy"):
        np.asarray(device_tensor((2,)), copy=False)


def test_plan_takes_a_device_tensor_in_place():
    tensor = device_tensor((1, 3, 8, 8))
    assert plan().prepare(tensor) is tensor._data  # the same device memory, no copy
    assert plan().conversion(tensor) is None  # nothing is compiled for it


def test_plan_adds_the_batch_to_a_device_frame_as_a_view():
    tensor = device_tensor((3, 8, 8), layout="CHW")
    prepared = plan().prepare(tensor)
    assert prepared.shape == (1, 3, 8, 8)
    assert prepared.ptr == NOWHERE


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (device_tensor((1, 3, 8, 8), dtype=np.uint8), r"expected float32\[1,3,8,8\].*got uint8"),
        (device_tensor((1, 3, 9, 8)), r"expected float32\[1,3,8,8\].*got float32\[1,3,9,8\]"),
        (device_tensor((1, 8, 8, 3), layout="NHWC"), r"layout must be the model's"),
        (device_tensor((1, 3, 8, 8), device=1), r"on GPU.1, the model runs on GPU.0"),
    ],
)
def test_plan_refuses_device_tensors_it_would_have_to_convert(tensor, message):
    with pytest.raises(InvalidInputError, match=message):
        plan().prepare(tensor)


def test_host_only_plan_refuses_a_device_tensor():
    with pytest.raises(InvalidInputError, match=r"takes host data only.*to_numpy"):
        plan(device=None).prepare(device_tensor((1, 3, 8, 8)))


def test_cpu_model_refuses_a_device_tensor_and_stays_usable(runtime, conv_net, rng):
    model = runtime.load_model(conv_net.path_for(runtime.backend), device="CPU")
    info = model.inputs[0]
    with pytest.raises(InvalidInputError, match=r"'input'.*takes host data only"):
        model.run({info.name: device_tensor(info.shape)})
    frame = conv_net.make_inputs(rng)
    assert model.run(frame)["output"].shape == model.outputs[0].shape


def test_tensor_from_dlpack_wraps_host_data_without_a_copy():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    with InferenceRuntime("onnxruntime") as runtime:
        tensor = runtime.tensor_from_dlpack(HostDLPack(array), layout="HW")
    assert type(tensor) is Tensor
    assert tensor.layout == "HW"
    assert np.shares_memory(tensor.to_numpy(), array)


def test_tensor_from_dlpack_refuses_what_is_not_an_array():
    with (
        InferenceRuntime("onnxruntime") as runtime,
        pytest.raises(InvalidInputError, match=r"__dlpack__ or __cuda_array_interface__"),
    ):
        runtime.tensor_from_dlpack([1.0, 2.0])


def test_tensor_from_dlpack_passes_numpy_and_tensors_through():
    array = np.zeros((2, 2), np.float32)
    with InferenceRuntime("onnxruntime") as runtime:
        tensor = runtime.tensor_from_dlpack(array)
        assert np.shares_memory(tensor.to_numpy(), array)
        assert runtime.tensor_from_dlpack(tensor) is tensor
        relabelled = runtime.tensor_from_dlpack(tensor, layout="HW")
        assert relabelled.layout == "HW" and np.shares_memory(relabelled.to_numpy(), array)
        on_gpu = runtime.tensor_from_dlpack(device_tensor((2, 3)), layout="HW")
        assert type(on_gpu) is DeviceTensor and on_gpu.layout == "HW" and len(on_gpu) == 2
