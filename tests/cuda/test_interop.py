"""GPU arrays between libraries: :class:`atriva_inference.cuda.DeviceArray`.

Without a GPU: the hand-off through cuda.core's ``StridedMemoryView`` with a ctypes DLPack
producer playing a CUDA library (what is described, what is refused, the producer's
deleter called exactly once), CPU data refused with the way to pass it, the DeviceArray's
own bookkeeping. cuda.core reads a CUDA array interface only with a driver (it asks where
the memory is), so that path is tested on a GPU, with CuPy and PyTorch.
"""

from __future__ import annotations

import gc
import sys

import ml_dtypes
import numpy as np
import pytest

from atriva_inference import cuda
from atriva_inference.cuda import DeviceArray
from atriva_inference.errors import DeviceUnavailableError, InvalidInputError
from tests.backends.gpu_libraries import usable_cupy, usable_torch
from tests.cuda.conditions import NO_GPU_MESSAGE, needs_cuda_core, needs_gpu, no_gpu_only
from tests.cuda.producers import KDL_ROCM, Interface, OnlyDLPack, Producer


def _view(obj, stream_ptr=-1):
    """cuda.core's view of ``obj`` with no stream ordering (nothing runs on a GPU)."""
    from cuda.core.utils import StridedMemoryView

    return StridedMemoryView.from_dlpack(obj, stream_ptr=stream_ptr)


# ---------------------------------------------------------------------------------------
# From a cuda.core view: what is described, who owns it
# ---------------------------------------------------------------------------------------


@needs_cuda_core
def test_a_cuda_view_is_described_and_given_back_exactly_once():
    producer = Producer((2, 3), strides=(3, 1), device_id=1, data=0x7F0000001000, byte_offset=64)
    array = DeviceArray.from_view(_view(producer), "Producer")
    assert array.ptr == 0x7F0000001000 + 64  # DLPack's byte_offset applied
    assert (array.shape, array.dtype, array.device) == ((2, 3), np.float32, 1)
    assert array.nbytes == 24 and not array.readonly
    flat = array.reshape(-1)  # a view keeps the producer's memory too
    del array
    gc.collect()
    assert producer.deleted == []
    del flat
    gc.collect()
    assert len(producer.deleted) == 1


@needs_cuda_core
@pytest.mark.parametrize(
    ("code", "bits", "expected"),
    [
        (0, 8, np.int8),
        (1, 16, np.uint16),
        (2, 16, np.float16),
        (2, 64, np.float64),
        (4, 16, ml_dtypes.bfloat16),
        (6, 8, np.bool_),
        (5, 64, np.complex64),
    ],
)
def test_dlpack_type_codes_map_to_numpy(code, bits, expected):
    array = DeviceArray.from_view(_view(Producer((4,), code=code, bits=bits)))
    assert array.dtype == np.dtype(expected)


@needs_cuda_core
@pytest.mark.parametrize(
    ("code", "bits", "lanes"),
    [(3, 64, 1), (2, 32, 4), (17, 4, 1), (0, 4, 1), (99, 8, 1), (10, 8, 1), (12, 8, 1)],
    ids=["opaque", "float32x4", "float4", "int4", "unknown_code", "fp8_e4m3fn", "fp8_e5m2"],
)
def test_types_cuda_core_cannot_read_are_refused_and_given_back(code, bits, lanes):
    producer = Producer((4,), code=code, bits=bits, lanes=lanes)
    with pytest.raises(InvalidInputError, match=r"element type numpy can hold.*Producer"):
        DeviceArray.from_object(producer)
    assert len(producer.deleted) == 1  # refused, yet handed back exactly once


@needs_cuda_core
def test_non_contiguous_gpu_data_is_refused_and_given_back():
    producer = Producer((4, 3), strides=(6, 2))
    with pytest.raises(InvalidInputError, match=r"C-contiguous.*\(4, 3\).*\(6, 2\)"):
        DeviceArray.from_object(producer)
    assert len(producer.deleted) == 1


@needs_cuda_core
def test_contiguity_ignores_strides_of_length_one_dimensions():
    # Producers put arbitrary strides on size-1 dims; the layout is still C-contiguous.
    array = DeviceArray.from_view(_view(Producer((1, 5, 1), strides=(99, 1, 42))))
    assert array.shape == (1, 5, 1)


@needs_cuda_core
def test_a_host_view_is_refused_with_the_way_to_pass_it():
    with pytest.raises(InvalidInputError, match=r"on the CPU.*tensor_from_numpy"):
        DeviceArray.from_view(_view(np.arange(3, dtype=np.float32)), "ndarray")


# ---------------------------------------------------------------------------------------
# From another library's object
# ---------------------------------------------------------------------------------------


def test_other_accelerators_are_refused_before_exporting():
    producer = Producer((4,), device_type=KDL_ROCM)
    with pytest.raises(InvalidInputError, match="kDLROCM"):
        DeviceArray.from_object(producer)
    assert producer.exports == 0


@no_gpu_only
def test_gpu_data_without_a_gpu_says_why_and_is_given_back():
    producer = Producer((2, 2))
    with pytest.raises(DeviceUnavailableError, match=NO_GPU_MESSAGE):
        DeviceArray.from_object(producer)
    # Asked to order its writes before the legacy default stream (DLPack's 1), which the
    # host would then have waited for.
    assert producer.streams == [1]
    assert len(producer.deleted) == 1


@needs_cuda_core
def test_a_producer_without_the_stream_argument_is_refused():
    producer = Producer((3,), stream_keyword=False)
    with pytest.raises(InvalidInputError, match=r"cannot read Producer's GPU memory.*TypeError"):
        DeviceArray.from_object(producer)
    assert producer.deleted == []  # it exported nothing


def test_numpy_is_refused_saying_cpu_and_tensor_from_numpy_without_exporting():
    array = np.zeros((2, 3), np.float32)
    before = sys.getrefcount(array)
    with pytest.raises(InvalidInputError) as info:
        DeviceArray.from_object(array)
    message = str(info.value)
    assert "CPU" in message and "tensor_from_numpy" in message and "ndarray" in message
    del info
    gc.collect()
    assert sys.getrefcount(array) == before  # nothing exported, nothing leaked


def test_a_dlpack_producer_without_a_device_query_is_refused_without_exporting():
    array = np.arange(3, dtype=np.float32)
    before = sys.getrefcount(array)
    with pytest.raises(InvalidInputError, match=r"array API standard.*__dlpack_device__"):
        DeviceArray.from_object(OnlyDLPack(array))
    gc.collect()
    assert sys.getrefcount(array) == before


def test_objects_with_no_gpu_protocol_are_refused():
    with pytest.raises(InvalidInputError, match=r"__dlpack__ or __cuda_array_interface__.*list"):
        DeviceArray.from_object([1.0, 2.0])


@pytest.mark.parametrize("stream", [0, -1, True, 1.5, "1"])
def test_a_cuda_array_interface_stream_must_be_a_handle(stream):
    source = Interface(shape=(4,), typestr="<f4", data=(0x1000, False), stream=stream)
    with pytest.raises(InvalidInputError, match="'stream'"):
        DeviceArray.from_object(source)


@no_gpu_only
def test_a_cuda_array_interface_without_a_gpu_says_why():
    source = Interface(shape=(4,), typestr="<f4", data=(0x7F0000001000, False))
    with pytest.raises(DeviceUnavailableError, match=NO_GPU_MESSAGE):
        DeviceArray.from_object(source)


# ---------------------------------------------------------------------------------------
# DeviceArray bookkeeping (no CUDA call)
# ---------------------------------------------------------------------------------------


def test_device_array_reshape_keeps_memory_and_owner():
    owner = object()
    array = DeviceArray(0x1000, (2, 3, 4), np.float16, 0, owner)
    assert array.nbytes == 48 and array.size == 24 and array.ndim == 3
    flat = array.reshape(-1)
    assert (flat.ptr, flat.shape, flat.dtype, flat.owner) == (0x1000, (24,), np.float16, owner)
    assert array.reshape((4, -1)).shape == (4, 6)
    assert array.reshape([6, 4]).shape == (6, 4)
    with pytest.raises(InvalidInputError, match="24 elements"):
        array.reshape((5, 5))
    with pytest.raises(InvalidInputError, match="at most one -1"):
        array.reshape((-1, -1))
    with pytest.raises(InvalidInputError, match="cannot reshape"):
        array.reshape((5, -1))


def test_device_array_exports_cuda_array_interface_v3():
    array = DeviceArray(0x2000, (3, 4), np.float32, 0)
    assert array.__cuda_array_interface__ == {
        "version": 3,
        "shape": (3, 4),
        "typestr": "<f4",
        "descr": [("", "<f4")],
        "data": (0x2000, False),
        "strides": None,
    }
    with pytest.raises(InvalidInputError, match="bfloat16"):
        _ = DeviceArray(0x2000, (2,), ml_dtypes.bfloat16, 0).__cuda_array_interface__


def test_device_array_from_device_array_is_the_same_memory():
    owner = object()
    array = DeviceArray(0x3000, (5,), np.int32, 0, owner)
    again = DeviceArray.from_object(array)
    assert (again.ptr, again.shape, again.dtype, again.owner) == (0x3000, (5,), np.int32, owner)


def test_device_array_validates_its_arguments():
    with pytest.raises(InvalidInputError, match="device index"):
        DeviceArray(0x1000, (2,), np.float32, -1)
    with pytest.raises(InvalidInputError, match="shape"):
        DeviceArray(0x1000, (2, -3), np.float32, 0)
    with pytest.raises(InvalidInputError, match="pointer"):
        DeviceArray(-5, (2,), np.float32, 0)
    with pytest.raises(InvalidInputError, match="dtype"):
        DeviceArray(0x1000, (2,), object, 0)


def test_device_array_empty_to_numpy_needs_no_copy():
    out = DeviceArray(0, (0, 3), np.float32, 0).to_numpy()
    assert out.shape == (0, 3) and out.dtype == np.float32


@no_gpu_only
def test_device_array_to_numpy_without_a_driver_says_why():
    with pytest.raises(DeviceUnavailableError, match=NO_GPU_MESSAGE):
        DeviceArray(0x1000, (4,), np.float32, 0).to_numpy()


# ---------------------------------------------------------------------------------------
# On a GPU, with CuPy and PyTorch
# ---------------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_gpu
def test_gpu_dlpack_hand_off_with_cupy():
    cupy = usable_cupy()
    source = cupy.arange(12, dtype=cupy.float32).reshape(3, 4)
    array = DeviceArray.from_object(source)
    assert array.ptr == source.data.ptr
    assert (array.shape, array.dtype, array.device) == ((3, 4), np.float32, source.device.id)
    # Ours writes, theirs sees.
    stream = cuda.Stream(array.device)
    cuda.copy_to_device(array.ptr, np.full((3, 4), 5, np.float32), stream)
    stream.synchronize()
    np.testing.assert_array_equal(cupy.asnumpy(source), np.full((3, 4), 5))
    # Theirs writes, ours sees; and the memory outlives their array object.
    source.fill(7)
    del source
    gc.collect()
    np.testing.assert_array_equal(array.to_numpy(), np.full((3, 4), 7))
    # Back to CuPy through __cuda_array_interface__: zero-copy.
    again = cupy.asarray(array)
    assert again.data.ptr == array.ptr and again.shape == (3, 4)
    again[0, 0] = 42
    cupy.cuda.Device(array.device).synchronize()
    assert array.to_numpy()[0, 0] == 42
    with pytest.raises(InvalidInputError, match="C-contiguous"):
        DeviceArray.from_object(cupy.zeros((4, 6), cupy.float32)[:, ::2])
    ordered = DeviceArray.from_object(again, stream=stream)
    assert ordered.ptr == again.data.ptr


@pytest.mark.gpu
@needs_gpu
def test_gpu_dlpack_hand_off_with_pytorch():
    torch = usable_torch()
    source = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    array = DeviceArray.from_object(source)
    assert array.ptr == source.data_ptr()
    assert (array.shape, array.dtype, array.device) == ((3, 4), np.float32, source.device.index)
    stream = cuda.Stream(array.device)
    cuda.copy_to_device(array.ptr, np.full((3, 4), 3, np.float32), stream)
    stream.synchronize()
    assert torch.equal(source.cpu(), torch.full((3, 4), 3.0))
    source.fill_(9)
    np.testing.assert_array_equal(array.to_numpy(), np.full((3, 4), 9))
    shared = torch.as_tensor(array, device="cuda")
    assert shared.data_ptr() == array.ptr
    half = torch.ones(8, dtype=torch.bfloat16, device="cuda")
    assert DeviceArray.from_object(half).dtype == np.dtype(ml_dtypes.bfloat16)
    with pytest.raises(InvalidInputError, match="C-contiguous"):
        DeviceArray.from_object(source.T)
    with pytest.raises(InvalidInputError, match="tensor_from_numpy"):
        DeviceArray.from_object(torch.zeros(3))
    ordered = DeviceArray.from_object(source, stream=stream)
    assert ordered.ptr == source.data_ptr()

    class OnlyInterface:  # the CUDA array interface path, with torch's producer stream
        __cuda_array_interface__ = source.__cuda_array_interface__

    through = DeviceArray.from_object(OnlyInterface())
    assert (through.ptr, through.device) == (source.data_ptr(), source.device.index)
    np.testing.assert_array_equal(through.to_numpy(), np.full((3, 4), 9))
    ordered_too = DeviceArray.from_object(OnlyInterface(), stream=stream)
    assert ordered_too.ptr == source.data_ptr()
