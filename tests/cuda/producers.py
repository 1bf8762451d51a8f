"""Stand-ins for other libraries' GPU arrays, so that the hand-off is tested without a GPU:
a DLPack producer written with ctypes (independent of the code under test) whose capsules
describe CUDA memory that is never dereferenced and whose deleter calls are counted, and a
minimal ``__cuda_array_interface__`` exporter."""

from __future__ import annotations

import ctypes


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
