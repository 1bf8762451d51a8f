"""The CUDA memory layer (:mod:`atriva_inference.backends.cuda_memory`).

Without a GPU: the DLPack and CUDA-array-interface parsing (numpy is a real DLPack
producer on the CPU, and a small ctypes producer below plays a CUDA one whose deleter
calls are counted), the refusals, the stream and event flags (blocking streams, blocking-sync
events), and the no-driver behaviour of the real cuda-python.
With a GPU (``@pytest.mark.gpu``): allocation, copies, streams (ordering after the legacy
default stream), events (waiting without spinning), leaks, and the zero-copy hand-off with
CuPy and PyTorch.
"""

from __future__ import annotations

import ctypes
import gc
import inspect
import re
import subprocess
import sys
import threading
import time
import weakref

import ml_dtypes
import numpy as np
import pytest

from atriva_inference.backends import cuda_memory as cm
from atriva_inference.errors import (
    BackendUnavailableError,
    DeviceUnavailableError,
    InferenceFailedError,
    InvalidInputError,
    ModelClosedError,
)
from tests.backends.gpu_libraries import usable_cupy, usable_torch

try:  # the parsing tests need no cuda-python; the runtime ones do
    from cuda.bindings import runtime as rt
except ImportError:
    rt = None


def _gpu_status() -> tuple[bool, str]:
    """(a GPU is usable, why not)."""
    if rt is None:
        return False, "needs cuda-python (cuda.bindings.runtime), which is not installed"
    err, count = rt.cudaGetDeviceCount()
    if err != 0:
        return False, f"needs an NVIDIA GPU: cudaGetDeviceCount says {err.name}"
    if count == 0:
        return False, "needs an NVIDIA GPU: cudaGetDeviceCount says 0"
    return True, ""


HAS_GPU, NO_GPU_REASON = _gpu_status()
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason=NO_GPU_REASON)
needs_cuda_python = pytest.mark.skipif(
    rt is None, reason="needs cuda-python (cuda.bindings.runtime), which is not installed"
)
no_gpu_only = pytest.mark.skipif(
    HAS_GPU or rt is None,
    reason="checks the no-GPU behaviour of cuda-python: "
    + ("a GPU is present" if HAS_GPU else "cuda-python is not installed"),
)


# ---------------------------------------------------------------------------------------
# A DLPack producer written with ctypes, independent of the module under test, so that a
# CUDA-device capsule can be consumed on a machine without a GPU and the producer's deleter
# calls counted exactly.
# ---------------------------------------------------------------------------------------


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class DLManagedTensor(ctypes.Structure):
    _fields_ = [
        ("dl_tensor", DLTensor),
        ("manager_ctx", ctypes.c_void_p),
        ("deleter", ctypes.c_void_p),
    ]


DELETER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
capsule_new = ctypes.PYFUNCTYPE(
    ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p
)(("PyCapsule_New", ctypes.pythonapi))
capsule_is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_IsValid", ctypes.pythonapi)
)
# A capsule keeps its name's pointer: module-level, so it outlives every capsule made here.
DLTENSOR_NAME = ctypes.create_string_buffer(b"dltensor")

KDL_CPU, KDL_CUDA, KDL_ROCM = 1, 2, 10


class Producer:
    """Hands out one DLManagedTensor describing ``data`` (never dereferenced on the CPU)."""

    def __init__(
        self,
        shape: tuple[int, ...],
        *,
        strides: tuple[int, ...] | None = None,
        code: int = 2,
        bits: int = 32,
        lanes: int = 1,
        device_type: int = KDL_CUDA,
        device_id: int = 0,
        data: int = 0x7F0000001000,
        byte_offset: int = 0,
        stream_keyword: bool = True,
    ) -> None:
        self.deleted: list[int] = []
        self.streams: list[object] = []
        self.exports = 0
        self.device = (device_type, device_id)
        self.stream_keyword = stream_keyword
        self._shape = (ctypes.c_int64 * max(len(shape), 1))(*shape)
        self._strides = (ctypes.c_int64 * len(strides))(*strides) if strides else None
        self._deleter = DELETER(self._delete)  # kept alive as long as the producer
        tensor = DLTensor(
            data=data,
            device=DLDevice(device_type, device_id),
            ndim=len(shape),
            dtype=DLDataType(code, bits, lanes),
            shape=ctypes.cast(self._shape, ctypes.POINTER(ctypes.c_int64)),
            strides=(
                ctypes.cast(self._strides, ctypes.POINTER(ctypes.c_int64))
                if self._strides is not None
                else None
            ),
            byte_offset=byte_offset,
        )
        self.managed = DLManagedTensor(
            tensor, None, ctypes.cast(self._deleter, ctypes.c_void_p).value
        )

    def _delete(self, address: int) -> None:
        self.deleted.append(address)

    def capsule(self) -> object:
        self.exports += 1
        return capsule_new(ctypes.addressof(self.managed), ctypes.addressof(DLTENSOR_NAME), None)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device

    def __dlpack__(self, *args: object, **kwargs: object) -> object:
        if not self.stream_keyword and (args or kwargs):
            raise TypeError("__dlpack__() takes no arguments")
        self.streams.append(kwargs.get("stream", "no keyword"))
        return self.capsule()


class OnlyDLPack:
    """An object with ``__dlpack__`` but no ``__dlpack_device__`` (older producers)."""

    def __init__(self, source: object) -> None:
        self.source = source

    def __dlpack__(self, stream: object = None) -> object:
        return self.source.__dlpack__()  # type: ignore[attr-defined]


class Interface:
    """A minimal ``__cuda_array_interface__`` exporter."""

    def __init__(self, **interface: object) -> None:
        self.__cuda_array_interface__ = {"version": 3, "strides": None, **interface}


# ---------------------------------------------------------------------------------------
# DLPack from numpy, a real CPU producer
# ---------------------------------------------------------------------------------------

DTYPES = [np.float32, np.float16, np.int8, np.uint8, np.bool_, np.int64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(), (5,), (2, 3, 4), (1, 1, 7), (0, 3)], ids=str)
def test_dlpack_from_numpy_describes_pointer_shape_dtype_and_bytes(dtype, shape):
    array = (np.arange(int(np.prod(shape))) % 7).astype(dtype).reshape(shape)
    foreign = cm.read_dlpack(array)
    assert foreign.device_type == KDL_CPU
    assert foreign.device_name == "kDLCPU"
    assert foreign.device_id == 0
    assert foreign.shape == shape
    assert foreign.dtype == np.dtype(dtype)
    assert foreign.c_contiguous
    if array.size:
        assert foreign.ptr == array.ctypes.data
        assert ctypes.string_at(foreign.ptr, array.nbytes) == array.tobytes()
    if foreign.strides is not None and array.size:  # when given, they must be numpy's
        assert foreign.strides == tuple(s // array.itemsize for s in array.strides)


def test_dlpack_bfloat16_from_numpy_when_numpy_exports_it():
    array = np.arange(6, dtype=np.float32).astype(ml_dtypes.bfloat16)
    try:
        array.__dlpack__()
    except BufferError as exc:
        pytest.skip(f"numpy {np.__version__} does not export bfloat16 over DLPack: {exc}")
    foreign = cm.read_dlpack(array)
    assert foreign.dtype == np.dtype(ml_dtypes.bfloat16)
    assert ctypes.string_at(foreign.ptr, array.nbytes) == array.tobytes()


@pytest.mark.parametrize(
    "view",
    [
        lambda a: a[:, ::2],
        lambda a: a.T,
        lambda a: a[::2],
        lambda a: a[:, :1],
        lambda a: a[:1, :],
        lambda a: a[1:],
        lambda a: a[1:, 2:],
        lambda a: a[::-1],
    ],
    ids=[
        "cols_step2",
        "transpose",
        "rows_step2",
        "one_col",
        "one_row",
        "rows_from1",
        "corner",
        "reversed",
    ],
)
def test_dlpack_strides_offsets_and_contiguity_match_numpy(view):
    base = np.arange(48, dtype=np.float32).reshape(6, 8)
    array = view(base)
    foreign = cm.read_dlpack(array)
    # The pointer is the first element's, whatever mix of data and byte_offset numpy used.
    assert foreign.ptr == array.ctypes.data
    assert foreign.shape == array.shape
    assert foreign.c_contiguous == array.flags.c_contiguous
    if foreign.strides is not None:
        assert foreign.strides == tuple(s // array.itemsize for s in array.strides)
    first = np.frombuffer(ctypes.string_at(foreign.ptr, 4), dtype=np.float32)[0]
    assert first == array.flat[0]


def test_dlpack_owner_keeps_the_source_alive_and_releases_it_exactly_once():
    array = np.arange(12, dtype=np.int64)
    expected = array.tobytes()
    before = sys.getrefcount(array)
    foreign = cm.read_dlpack(array)
    assert sys.getrefcount(array) == before + 1  # numpy's manager holds the array
    source = weakref.ref(array)
    address = array.ctypes.data
    del array
    gc.collect()
    assert source() is not None  # alive only through the consumed tensor
    assert ctypes.string_at(address, len(expected)) == expected
    owner = foreign.owner
    assert isinstance(owner, cm.DLPackOwner) and not owner.released
    del foreign, owner
    gc.collect()
    assert source() is None  # the deleter ran when its owner went


def test_dlpack_deleter_runs_once_however_often_release_is_called():
    array = np.arange(5, dtype=np.float32)
    before = sys.getrefcount(array)
    foreign = cm.read_dlpack(array)
    owner = foreign.owner
    owner.release()
    owner.release()
    assert owner.released
    del foreign, owner
    gc.collect()
    # A second deleter call would drop one reference too many.
    assert sys.getrefcount(array) == before


def test_dlpack_capsule_is_renamed_used_and_refused_a_second_time():
    array = np.arange(4, dtype=np.float32)
    before = sys.getrefcount(array)
    capsule = array.__dlpack__()
    assert capsule_is_valid(capsule, b"dltensor") == 1
    foreign = cm.read_dlpack_capsule(capsule)
    assert capsule_is_valid(capsule, b"used_dltensor") == 1
    with pytest.raises(InvalidInputError, match="already consumed"):
        cm.read_dlpack_capsule(capsule)
    del capsule  # its destructor must leave the tensor to us now
    gc.collect()
    assert ctypes.string_at(foreign.ptr, array.nbytes) == array.tobytes()
    assert sys.getrefcount(array) == before + 1  # held by the consumed tensor alone
    del foreign
    gc.collect()
    assert sys.getrefcount(array) == before


def test_dlpack_refuses_what_is_not_a_capsule():
    with pytest.raises(InvalidInputError, match="'dltensor'"):
        cm.read_dlpack_capsule(object())
    with pytest.raises(InvalidInputError, match="__dlpack__"):
        cm.read_dlpack(object())


# ---------------------------------------------------------------------------------------
# DLPack from the ctypes producer (a CUDA device type, without a GPU)
# ---------------------------------------------------------------------------------------


def test_dlpack_cuda_producer_is_described_and_given_back_exactly_once():
    producer = Producer((2, 3), strides=(3, 1), device_id=1, data=0x7F0000001000, byte_offset=64)
    foreign = cm.read_dlpack(producer, stream=None)
    assert producer.streams == [None]
    assert foreign.ptr == 0x7F0000001000 + 64
    assert (foreign.device_type, foreign.device_id, foreign.device_name) == (2, 1, "kDLCUDA")
    assert foreign.shape == (2, 3) and foreign.strides == (3, 1)
    assert foreign.dtype == np.float32
    assert producer.deleted == []
    foreign.owner.release()
    assert producer.deleted == [ctypes.addressof(producer.managed)]
    del foreign
    gc.collect()
    assert len(producer.deleted) == 1


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
        (10, 8, ml_dtypes.float8_e4m3fn),
        (12, 8, ml_dtypes.float8_e5m2),
    ],
)
def test_dlpack_type_codes_map_to_numpy(code, bits, expected):
    producer = Producer((4,), code=code, bits=bits)
    foreign = cm.read_dlpack(producer)
    assert foreign.dtype == np.dtype(expected)


@pytest.mark.parametrize(
    ("code", "bits", "lanes"),
    [(3, 64, 1), (2, 32, 4), (17, 4, 1), (0, 4, 1), (99, 8, 1)],
    ids=["opaque", "float32x4", "float4", "int4", "unknown_code"],
)
def test_dlpack_unknown_types_are_refused_and_given_back(code, bits, lanes):
    producer = Producer((4,), code=code, bits=bits, lanes=lanes)
    with pytest.raises(InvalidInputError, match=f"code={code}, bits={bits}, lanes={lanes}"):
        cm.read_dlpack(producer)
    assert len(producer.deleted) == 1  # refused, yet handed back exactly once


def test_dlpack_producer_without_stream_keyword_is_asked_without_one():
    producer = Producer((3,), stream_keyword=False)
    foreign = cm.read_dlpack(producer, stream=None)
    assert producer.streams == ["no keyword"]
    assert foreign.shape == (3,)


def test_from_object_refuses_non_contiguous_gpu_data_and_gives_it_back():
    producer = Producer((4, 3), strides=(6, 2))
    with pytest.raises(InvalidInputError, match=r"C-contiguous.*\(4, 3\).*\(6, 2\)"):
        cm.DeviceArray.from_object(producer)
    assert len(producer.deleted) == 1


def test_contiguity_ignores_strides_of_length_one_dimensions():
    # Producers put arbitrary strides on size-1 dims; the layout is still C-contiguous.
    foreign = cm.read_dlpack(Producer((1, 5, 1), strides=(99, 1, 42)))
    assert foreign.c_contiguous


def test_from_object_refuses_unknown_dtype_from_a_gpu_producer():
    producer = Producer((4,), code=3, bits=64)
    with pytest.raises(InvalidInputError, match="element type"):
        cm.DeviceArray.from_object(producer)
    assert len(producer.deleted) == 1


def test_from_object_refuses_other_accelerators_before_exporting():
    producer = Producer((4,), device_type=KDL_ROCM)
    with pytest.raises(InvalidInputError, match="kDLROCM"):
        cm.DeviceArray.from_object(producer)
    assert producer.exports == 0


@no_gpu_only
def test_from_object_on_gpu_data_without_a_gpu_names_the_cuda_error_and_gives_back():
    producer = Producer((2, 2))
    with pytest.raises(
        DeviceUnavailableError, match=r"cudaErrorInsufficientDriver|cudaErrorNoDevice"
    ):
        cm.DeviceArray.from_object(producer)
    assert producer.streams == [None]
    assert len(producer.deleted) == 1


# ---------------------------------------------------------------------------------------
# CPU data is refused with the way to pass it
# ---------------------------------------------------------------------------------------


def test_from_object_numpy_says_cpu_and_tensor_from_numpy_without_exporting():
    array = np.zeros((2, 3), np.float32)
    before = sys.getrefcount(array)
    with pytest.raises(InvalidInputError) as info:
        cm.DeviceArray.from_object(array)
    message = str(info.value)
    assert "CPU" in message and "tensor_from_numpy" in message and "ndarray" in message
    del info
    gc.collect()
    assert sys.getrefcount(array) == before  # nothing exported, nothing leaked


def test_from_object_cpu_dlpack_without_device_query_is_refused_and_given_back():
    array = np.arange(3, dtype=np.float32)
    before = sys.getrefcount(array)
    with pytest.raises(InvalidInputError, match=r"CPU \(DLPack device kDLCPU\).*tensor_from_numpy"):
        cm.DeviceArray.from_object(OnlyDLPack(array))
    gc.collect()
    assert sys.getrefcount(array) == before


def test_from_object_refuses_objects_with_no_gpu_protocol():
    with pytest.raises(InvalidInputError, match=r"__dlpack__ or __cuda_array_interface__.*list"):
        cm.DeviceArray.from_object([1.0, 2.0])


# ---------------------------------------------------------------------------------------
# The CUDA array interface
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typestr", "expected"),
    [
        ("<f4", np.float32),
        ("<f2", np.float16),
        ("|i1", np.int8),
        ("|u1", np.uint8),
        ("|b1", np.bool_),
        ("<i8", np.int64),
    ],
)
def test_cuda_array_interface_typestrs(typestr, expected):
    source = Interface(shape=(2, 3), typestr=typestr, data=(0x7F0000002000, False))
    foreign = cm.read_cuda_array_interface(source)
    assert foreign.dtype == np.dtype(expected)
    assert foreign.ptr == 0x7F0000002000
    assert foreign.shape == (2, 3)
    assert foreign.strides is None and foreign.c_contiguous
    assert (foreign.device_type, foreign.device_id) == (KDL_CUDA, -1)
    assert foreign.owner is source
    assert foreign.readonly is False and foreign.stream is None


def test_cuda_array_interface_strides_readonly_and_stream():
    contiguous = cm.read_cuda_array_interface(
        {
            "version": 3,
            "shape": (4, 3),
            "typestr": "<f4",
            "data": (0x1000, True),
            "strides": (12, 4),
            "stream": 1,
        }
    )
    assert contiguous.strides == (3, 1) and contiguous.c_contiguous
    assert contiguous.readonly is True and contiguous.stream == 1
    strided = cm.read_cuda_array_interface(
        {
            "version": 2,
            "shape": (4, 3),
            "typestr": "<f4",
            "data": (0x1000, False),
            "strides": (24, 8),
        }
    )
    assert strided.strides == (6, 2) and not strided.c_contiguous
    assert strided.stream is None


@pytest.mark.parametrize(
    ("interface", "match"),
    [
        ({"shape": (2,), "typestr": "<f4"}, "missing \\['data'\\]"),
        ({"shape": (2,), "typestr": "<f4", "data": (0x1000, False), "mask": object()}, "mask"),
        ({"shape": (2,), "typestr": ">f4", "data": (0x1000, False)}, "'>f4'"),
        ({"shape": (2,), "typestr": "|V2", "data": (0x1000, False)}, "'|V2'"),
        ({"shape": (2,), "typestr": "|O", "data": (0x1000, False)}, "'|O'"),
        ({"shape": (2,), "typestr": "nonsense", "data": (0x1000, False)}, "'nonsense'"),
        ({"shape": (2,), "typestr": "<f4", "data": (0x1000, False), "strides": (6,)}, "multiple"),
        ({"shape": (2,), "typestr": "<f4", "data": 0x1000}, "\\(pointer, readonly\\)"),
        ({"shape": (2,), "typestr": "<f4", "data": (0x1000, False), "stream": 0}, "'stream'"),
        ({"shape": (-1,), "typestr": "<f4", "data": (0x1000, False)}, "shape"),
    ],
    ids=[
        "no_data",
        "mask",
        "big_endian",
        "void",
        "object",
        "garbage",
        "strides",
        "data",
        "stream0",
        "shape",
    ],
)
def test_cuda_array_interface_refusals(interface, match):
    with pytest.raises(InvalidInputError, match=match):
        cm.read_cuda_array_interface({"version": 3, **interface})


def test_from_object_refuses_non_contiguous_cuda_array_interface_before_any_cuda_call():
    source = Interface(shape=(4, 3), typestr="<f4", data=(0x1000, False), strides=(24, 8))
    with pytest.raises(InvalidInputError, match="C-contiguous"):
        cm.DeviceArray.from_object(source)


@no_gpu_only
def test_from_object_cuda_array_interface_without_a_gpu_names_the_cuda_error():
    source = Interface(shape=(4,), typestr="<f4", data=(0x7F0000001000, False))
    with pytest.raises(
        DeviceUnavailableError, match=r"cudaErrorInsufficientDriver|cudaErrorNoDevice"
    ):
        cm.DeviceArray.from_object(source)


# ---------------------------------------------------------------------------------------
# DeviceArray bookkeeping (no CUDA call)
# ---------------------------------------------------------------------------------------


def test_device_array_reshape_keeps_memory_and_owner():
    owner = object()
    array = cm.DeviceArray(0x1000, (2, 3, 4), np.float16, 0, owner)
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
    array = cm.DeviceArray(0x2000, (3, 4), np.float32, 0)
    interface = array.__cuda_array_interface__
    assert interface == {
        "version": 3,
        "shape": (3, 4),
        "typestr": "<f4",
        "descr": [("", "<f4")],
        "data": (0x2000, False),
        "strides": None,
    }
    # What we export, we read back as the same memory.
    again = cm.read_cuda_array_interface(array)
    assert (again.ptr, again.shape, again.dtype, again.c_contiguous) == (
        0x2000,
        (3, 4),
        np.float32,
        True,
    )
    with pytest.raises(InvalidInputError, match="bfloat16"):
        _ = cm.DeviceArray(0x2000, (2,), ml_dtypes.bfloat16, 0).__cuda_array_interface__


def test_device_array_from_device_array_is_the_same_memory():
    owner = object()
    array = cm.DeviceArray(0x3000, (5,), np.int32, 0, owner)
    again = cm.DeviceArray.from_object(array)
    assert (again.ptr, again.shape, again.dtype, again.owner) == (0x3000, (5,), np.int32, owner)


def test_device_array_validates_its_arguments():
    with pytest.raises(InvalidInputError, match="device index"):
        cm.DeviceArray(0x1000, (2,), np.float32, -1)
    with pytest.raises(InvalidInputError, match="shape"):
        cm.DeviceArray(0x1000, (2, -3), np.float32, 0)
    with pytest.raises(InvalidInputError, match="pointer"):
        cm.DeviceArray(-5, (2,), np.float32, 0)
    with pytest.raises(InvalidInputError, match="dtype"):
        cm.DeviceArray(0x1000, (2,), object, 0)


def test_device_array_empty_to_numpy_needs_no_copy():
    out = cm.DeviceArray(0, (0, 3), np.float32, 0).to_numpy()
    assert out.shape == (0, 3) and out.dtype == np.float32


# ---------------------------------------------------------------------------------------
# The runtime: errors, no driver, no package
# ---------------------------------------------------------------------------------------


@needs_cuda_python
def test_check_unwraps_values():
    ok = rt.cudaError_t.cudaSuccess
    assert cm.check((ok,), "nothing") is None
    assert cm.check((ok, 5), "one") == 5
    assert cm.check((ok, 1, 2), "two") == (1, 2)


@needs_cuda_python
def test_check_raises_by_kind_with_name_and_description():
    with pytest.raises(InferenceFailedError) as info:
        cm.check((rt.cudaError_t.cudaErrorMemoryAllocation, None), "cannot allocate 4 bytes")
    assert str(info.value) == "cannot allocate 4 bytes: cudaErrorMemoryAllocation (out of memory)"
    assert not isinstance(info.value, DeviceUnavailableError)
    for name in ("cudaErrorNoDevice", "cudaErrorInsufficientDriver", "cudaErrorInvalidDevice"):
        with pytest.raises(DeviceUnavailableError, match=f"^use: {name} \\("):
            cm.check((getattr(rt.cudaError_t, name),), "use")


@no_gpu_only
def test_without_a_driver_there_are_no_gpus():
    assert cm.device_count() == 0
    assert cm.gpu_devices() == []


@no_gpu_only
@pytest.mark.parametrize(
    "make",
    [
        lambda: cm.DeviceBuffer(16, 0),
        lambda: cm.DeviceBuffer(0, 0),
        lambda: cm.PinnedBuffer(16),
        lambda: cm.PinnedBuffer(0),
        lambda: cm.Stream(0),
        lambda: cm.Stream(0, blocking=False),
        lambda: cm.Event(0),
        lambda: cm.Event(0, timing=True),
        lambda: cm.Event(0, blocking_sync=False),
        lambda: cm.use_device(0),
        lambda: cm.device_properties(0),
        lambda: cm.DeviceArray(0x1000, (4,), np.float32, 0).to_numpy(),
    ],
    ids=[
        "device",
        "device0",
        "pinned",
        "pinned0",
        "stream",
        "non_blocking_stream",
        "event",
        "timing_event",
        "spinning_event",
        "use",
        "props",
        "to_numpy",
    ],
)
def test_without_a_driver_cuda_objects_raise_device_unavailable_naming_the_error(make):
    err, _ = rt.cudaGetDeviceCount()
    with pytest.raises(DeviceUnavailableError) as info:
        make()
    assert err.name in str(info.value)  # cudaErrorInsufficientDriver on a driverless machine
    assert "(" in str(info.value)  # followed by CUDA's description


def test_arguments_are_checked_before_cuda_is_asked():
    with pytest.raises(InvalidInputError, match=r"device index.*-1"):
        cm.DeviceBuffer(16, -1)
    with pytest.raises(InvalidInputError, match=r"byte count.*-16"):
        cm.DeviceBuffer(-16, 0)
    with pytest.raises(InvalidInputError, match="byte count"):
        cm.PinnedBuffer(1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"device index.*True"):
        cm.Stream(True)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"blocking must be True or False, got None"):
        cm.Stream(0, blocking=None)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"blocking_sync must be True or False.*'yes'"):
        cm.Event(0, blocking_sync="yes")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"timing must be True or False, got 1"):
        cm.Event(0, timing=1)  # type: ignore[arg-type]


@needs_cuda_python
def test_streams_are_blocking_unless_asked_otherwise():
    # Blocking (cudaStreamDefault): ordered after CuPy's and PyTorch's legacy-default-stream
    # work, which is what a request reading their arrays needs; the safe default.
    assert inspect.signature(cm.Stream).parameters["blocking"].default is True
    assert cm.stream_flags(True) == int(rt.cudaStreamDefault) == 0
    assert cm.stream_flags(False) == int(rt.cudaStreamNonBlocking) == 1


@needs_cuda_python
@pytest.mark.parametrize(
    ("timing", "blocking_sync", "names"),
    [
        (False, True, ["cudaEventDisableTiming", "cudaEventBlockingSync"]),
        (True, True, ["cudaEventDefault", "cudaEventBlockingSync"]),
        (False, False, ["cudaEventDisableTiming"]),
        (True, False, ["cudaEventDefault"]),
    ],
)
def test_event_flags_follow_timing_and_blocking_sync(timing, blocking_sync, names):
    expected = 0
    for name in names:
        expected |= int(getattr(rt, name))
    assert cm.event_flags(timing=timing, blocking_sync=blocking_sync) == expected


@needs_cuda_python
def test_events_wait_without_spinning_unless_asked_otherwise():
    parameters = inspect.signature(cm.Event).parameters
    assert parameters["blocking_sync"].default is True
    assert parameters["timing"].default is False
    default = cm.event_flags(timing=False, blocking_sync=True)
    assert default & int(rt.cudaEventBlockingSync)


def test_missing_cuda_python_is_backend_unavailable_naming_the_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)  # as if not installed
    for call in (cm.cuda_runtime, cm.device_count, cm.gpu_devices, lambda: cm.DeviceBuffer(8, 0)):
        with pytest.raises(BackendUnavailableError) as info:
            call()
        assert "pip install cuda-python" in str(info.value)
        assert cm.EXTRA_HINT in str(info.value)
        assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
        cm.cuda_runtime(hint="pip install onnxruntime-gpu")


def test_importing_the_module_needs_no_cuda_python():
    code = (
        "import sys; sys.modules['cuda'] = None; "
        "import atriva_inference.backends.cuda_memory as cm; "
        "assert 'cuda.bindings.runtime' not in sys.modules; "
        "print(cm.read_dlpack(__import__('numpy').arange(3)).shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(3,)"


# ---------------------------------------------------------------------------------------
# On a GPU
# ---------------------------------------------------------------------------------------


def _cupy():
    return usable_cupy()


def _torch_cuda():
    return usable_torch()


@pytest.mark.gpu
@needs_gpu
def test_gpu_listing_and_properties():
    count = cm.device_count()
    assert cm.gpu_devices() == [f"GPU.{i}" for i in range(count)]
    props = cm.device_properties(0)
    assert props.index == 0 and props.name
    assert props.compute_capability >= (5, 0)
    assert props.total_memory > 1 << 30
    assert re.fullmatch(
        r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", props.uuid
    )
    with pytest.raises(DeviceUnavailableError, match=f"GPU.{count}.*cudaErrorInvalidDevice"):
        cm.use_device(count)


@pytest.mark.gpu
@needs_gpu
def test_gpu_device_buffer_reuses_its_allocation_until_it_must_grow():
    buffer = cm.DeviceBuffer(1024, 0)
    ptr = buffer.ptr
    assert ptr and buffer.nbytes == 1024 and buffer.device == 0
    assert buffer.ensure(512) == ptr
    assert buffer.ensure(1024) == ptr
    assert buffer.nbytes == 1024
    assert buffer.ensure(1 << 20) == buffer.ptr
    assert buffer.nbytes == 1 << 20
    grown = buffer.ptr
    assert buffer.ensure(4096) == grown
    buffer.close()
    buffer.close()  # idempotent
    assert buffer.ptr == 0
    with pytest.raises(ModelClosedError):
        buffer.ensure(16)


@pytest.mark.gpu
@needs_gpu
def test_gpu_pinned_round_trip_equals_the_source():
    rng = np.random.default_rng(7)
    source = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    stream = cm.Stream(0)
    staging = cm.PinnedBuffer(source.nbytes)
    device = cm.DeviceBuffer(source.nbytes, 0)
    other = cm.DeviceBuffer(source.nbytes, 0)
    host_in = staging.array(np.float32, source.shape)
    host_in[...] = source
    cm.copy_to_device(device.ptr, host_in, stream)
    cm.copy_on_device(other.ptr, device.ptr, source.nbytes, stream)
    back = cm.PinnedBuffer(source.nbytes).array(np.float32, source.shape)
    back[...] = 0
    cm.copy_to_host(back, other.ptr, stream)
    stream.synchronize()
    np.testing.assert_array_equal(back, source)
    # Pageable memory both ways, and a DeviceArray view of the buffer.
    pageable = np.empty_like(source)
    cm.copy_to_device(device.ptr, source[::-1].copy(), stream)
    cm.copy_to_host(pageable, device.ptr, stream)
    stream.synchronize()
    np.testing.assert_array_equal(pageable, source[::-1])
    view = device.array(np.float32, source.shape)
    np.testing.assert_array_equal(view.to_numpy(stream), source[::-1])
    with pytest.raises(InvalidInputError, match="C-contiguous"):
        cm.copy_to_device(device.ptr, source[:, :, ::2], stream)


@pytest.mark.gpu
@needs_gpu
def test_gpu_pinned_view_outlives_close_and_growth():
    pinned = cm.PinnedBuffer(64)
    view = pinned.array(np.int32, (16,))
    view[...] = np.arange(16)
    pinned.ensure(1 << 20)  # grows: the old memory stays for the view
    pinned.close()
    gc.collect()
    np.testing.assert_array_equal(view, np.arange(16))


@pytest.mark.gpu
@needs_gpu
def test_gpu_streams_have_the_flags_asked_for():
    for blocking, expected in ((True, rt.cudaStreamDefault), (False, rt.cudaStreamNonBlocking)):
        stream = cm.Stream(0, blocking=blocking)
        assert cm.check(rt.cudaStreamGetFlags(stream.handle), "flags") == int(expected)
        assert stream.blocking is blocking
        stream.close()
    assert cm.Stream(0).blocking is True


@pytest.mark.gpu
@needs_gpu
def test_gpu_blocking_stream_waits_for_legacy_default_stream_work():
    # What CuPy/PyTorch do by default: long work, then the write we read, both on the legacy
    # default stream; our blocking stream must read only after the write, with no sync.
    nbytes = 1 << 29
    big_src, big_dst = cm.DeviceBuffer(nbytes, 0), cm.DeviceBuffer(nbytes, 0)
    target = cm.DeviceBuffer(4096, 0)
    cm.check(rt.cudaMemset(target.ptr, 0, 4096), "clear")
    stream = cm.Stream(0)
    legacy = rt.cudaStreamLegacy
    kind = rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
    for frame in range(1, 4):
        for _ in range(8):  # several milliseconds of device work ahead of the write
            cm.check(rt.cudaMemcpyAsync(big_dst.ptr, big_src.ptr, nbytes, kind, legacy), "copy")
        cm.check(rt.cudaMemsetAsync(target.ptr, frame, 4096, legacy), "write")
        out = cm.PinnedBuffer(4096).array(np.uint8, (4096,))
        cm.copy_to_host(out, target.ptr, stream)
        stream.synchronize()
        assert np.all(out == frame), f"frame {frame}: read before the legacy stream wrote it"


@pytest.mark.gpu
@needs_gpu
def test_gpu_waiting_on_a_default_event_does_not_spin_a_core():
    stream, device, target = _busy(1 << 30)
    event = cm.Event(0)  # blocking_sync by default
    assert event.blocking_sync is True
    for _ in range(8):  # 8 GiB device-to-pinned: well over 50 ms on any PCIe
        cm.copy_to_host(target, device.ptr, stream)
    event.record(stream)
    cpu_before, wall_before = time.thread_time(), time.perf_counter()
    event.synchronize()
    cpu, wall = time.thread_time() - cpu_before, time.perf_counter() - wall_before
    assert event.query() is True
    assert wall > 0.02, f"the copies finished too fast ({wall * 1e3:.1f} ms) to tell"
    # Spinning would cost about as much CPU time as the wall time waited.
    assert cpu < 0.25 * wall, (
        f"the waiting thread used {cpu * 1e3:.1f} ms CPU in {wall * 1e3:.1f} ms"
    )


def _busy(nbytes: int):
    """A stream, device memory and a pinned target for long device-to-pinned copies."""
    stream = cm.Stream(0)
    device = cm.DeviceBuffer(nbytes, 0)
    pinned = cm.PinnedBuffer(nbytes)
    target = pinned.array(np.uint8, (nbytes,))
    return stream, device, target


@pytest.mark.gpu
@needs_gpu
def test_gpu_event_query_turns_true_and_synchronize_releases_the_gil():
    stream, device, target = _busy(1 << 30)
    start, end = cm.Event(0, timing=True), cm.Event(0, timing=True)
    start.record(stream)
    cm.copy_to_host(target, device.ptr, stream)  # 2 GiB over PCIe: tens of milliseconds
    cm.copy_to_host(target, device.ptr, stream)
    end.record(stream)
    assert end.query() is False
    counter = [0]
    stop = threading.Event()

    def count() -> None:
        while not stop.is_set():
            counter[0] += 1

    worker = threading.Thread(target=count)
    worker.start()
    try:
        began = time.perf_counter()
        before = counter[0]
        end.synchronize()
        during = counter[0] - before
        waited = time.perf_counter() - began
    finally:
        stop.set()
        worker.join()
    assert end.query() is True
    if waited > 0.005:  # it really waited: the other thread must have run meanwhile
        assert during > 0, "synchronize() held the GIL while it waited"
    assert end.elapsed_ms(start) > 1.0
    with pytest.raises(InvalidInputError, match="timing=True"):
        end.elapsed_ms(cm.Event(0))
    stream.close()
    with pytest.raises(ModelClosedError):
        stream.synchronize()
    with pytest.raises(ModelClosedError):
        end.record(stream)


@pytest.mark.gpu
@needs_gpu
def test_gpu_buffers_work_from_another_thread():
    buffer = cm.DeviceBuffer(64, 0)
    results = []

    def work() -> None:
        stream = cm.Stream(0)
        cm.copy_to_device(buffer.ptr, np.arange(16, dtype=np.int32), stream)
        out = np.empty(16, np.int32)
        cm.copy_to_host(out, buffer.ptr, stream)
        stream.synchronize()
        results.append(out)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    np.testing.assert_array_equal(results[0], np.arange(16))


@pytest.mark.gpu
@needs_gpu
def test_gpu_no_leak_over_ten_thousand_cycles():
    stream = cm.Stream(0)
    host = np.arange(1 << 16, dtype=np.uint8)
    warm = cm.DeviceBuffer(1 << 20, 0)  # first-use costs of the context are not leaks
    cm.copy_to_device(warm.ptr, host, stream)
    stream.synchronize()
    warm.close()
    gc.collect()
    free_before = cm.check(rt.cudaMemGetInfo(), "cudaMemGetInfo")[0]
    for i in range(10_000):
        buffer = cm.DeviceBuffer(1 << 20, 0)
        cm.copy_to_device(buffer.ptr, host, stream)
        event = cm.Event(0)
        event.record(stream)
        if i % 2:
            buffer.close()  # half closed explicitly, half left to the finalizer
            event.close()
        del buffer, event
    stream.synchronize()
    gc.collect()
    free_after = cm.check(rt.cudaMemGetInfo(), "cudaMemGetInfo")[0]
    assert free_before - free_after < 8 << 20  # 10,000 MiB allocated in all


@pytest.mark.gpu
@needs_gpu
def test_gpu_dlpack_hand_off_with_cupy():
    cupy = _cupy()
    source = cupy.arange(12, dtype=cupy.float32).reshape(3, 4)
    array = cm.DeviceArray.from_object(source)
    assert array.ptr == source.data.ptr
    assert (array.shape, array.dtype, array.device) == ((3, 4), np.float32, source.device.id)
    assert isinstance(array.owner, cm.DLPackOwner)
    # Ours writes, theirs sees.
    stream = cm.Stream(array.device)
    cm.copy_to_device(array.ptr, np.full((3, 4), 5, np.float32), stream)
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
        cm.DeviceArray.from_object(cupy.zeros((4, 6), cupy.float32)[:, ::2])
    ordered = cm.DeviceArray.from_object(again, stream=stream)
    assert ordered.ptr == again.data.ptr


@pytest.mark.gpu
@needs_gpu
def test_gpu_dlpack_hand_off_with_pytorch():
    torch = _torch_cuda()
    source = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    array = cm.DeviceArray.from_object(source)
    assert array.ptr == source.data_ptr()
    assert (array.shape, array.dtype, array.device) == ((3, 4), np.float32, source.device.index)
    stream = cm.Stream(array.device)
    cm.copy_to_device(array.ptr, np.full((3, 4), 3, np.float32), stream)
    stream.synchronize()
    assert torch.equal(source.cpu(), torch.full((3, 4), 3.0))
    source.fill_(9)
    np.testing.assert_array_equal(array.to_numpy(), np.full((3, 4), 9))
    shared = torch.as_tensor(array, device="cuda")
    assert shared.data_ptr() == array.ptr
    half = torch.ones(8, dtype=torch.bfloat16, device="cuda")
    assert cm.DeviceArray.from_object(half).dtype == np.dtype(ml_dtypes.bfloat16)
    with pytest.raises(InvalidInputError, match="C-contiguous"):
        cm.DeviceArray.from_object(source.T)
    with pytest.raises(InvalidInputError, match="tensor_from_numpy"):
        cm.DeviceArray.from_object(torch.zeros(3))
    ordered = cm.DeviceArray.from_object(source, stream=stream)
    assert ordered.ptr == source.data_ptr()

    class OnlyInterface:  # the CUDA array interface path, with torch's producer stream
        __cuda_array_interface__ = source.__cuda_array_interface__

    through = cm.DeviceArray.from_object(OnlyInterface())
    assert (through.ptr, through.device) == (source.data_ptr(), source.device.index)
    np.testing.assert_array_equal(through.to_numpy(), np.full((3, 4), 9))
