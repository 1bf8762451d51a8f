"""Device strings: normalize_device and resolve_device."""

from __future__ import annotations

import pytest

from atriva_inference.devices import AUTO, AUTO_ORDER, normalize_device, resolve_device
from atriva_inference.errors import DeviceUnavailableError, InvalidInputError


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("AUTO", "AUTO"),
        ("auto", "AUTO"),
        ("Auto", "AUTO"),
        ("CPU", "CPU"),
        ("cpu", "CPU"),
        (" cpu ", "CPU"),
        ("\tgpu\n", "GPU"),
        ("gpu", "GPU"),
        ("Gpu", "GPU"),
        ("npu", "NPU"),
        ("gpu.1", "GPU.1"),
        ("GPU.0", "GPU.0"),
        ("gpu.10", "GPU.10"),
        ("npu.2", "NPU.2"),
        ("cpu.0", "CPU.0"),
    ],
)
def test_normalize_device_canonical_spelling(given, expected):
    assert normalize_device(given) == expected


def test_auto_constants():
    assert AUTO == "AUTO"
    assert AUTO_ORDER == ("GPU", "NPU", "CPU")


@pytest.mark.parametrize(
    "given",
    [
        "TPU",
        "GPU.x",
        "GPU.",
        "GPU.-1",
        "GPU.1.2",
        ".1",
        "",
        "   ",
        "AUTO:GPU,CPU",
        "HETERO:GPU,CPU",
        "MULTI:CPU",
        "CPU GPU",
        "GPU1",
        "cuda",
        "cuda:0",
    ],
)
def test_normalize_device_rejects_unknown_strings(given):
    with pytest.raises(InvalidInputError) as info:
        normalize_device(given)
    message = str(info.value)
    assert message.startswith("device:")
    assert repr(given) in message
    assert "GPU.1" in message  # tells the user what a valid form looks like


@pytest.mark.parametrize("given", [None, 0, 1.5, b"CPU", ["CPU"], ("GPU",)])
def test_normalize_device_rejects_non_strings(given):
    with pytest.raises(InvalidInputError, match=type(given).__name__):
        normalize_device(given)


@pytest.mark.parametrize(
    ("present", "expected"),
    [
        (["CPU"], "CPU"),
        (["CPU", "NPU"], "NPU"),
        (["NPU", "CPU"], "NPU"),
        (["CPU", "GPU.0", "GPU.1", "NPU"], "GPU.0"),
        (["CPU", "GPU"], "GPU"),
        (["NPU", "CPU", "GPU.1"], "GPU.1"),
        (["GPU.1", "GPU.0"], "GPU.1"),
        (["OTHER", "CPU"], "CPU"),
    ],
)
def test_auto_picks_gpu_then_npu_then_cpu(present, expected):
    assert resolve_device("AUTO", present, "openvino").name == expected
    assert resolve_device("auto", tuple(present), "openvino").name == expected


@pytest.mark.parametrize("present", [[], (), ["OTHER"]])
def test_auto_with_nothing_usable_raises(present):
    with pytest.raises(DeviceUnavailableError) as info:
        resolve_device("AUTO", present, "mybackend")
    message = str(info.value)
    assert "AUTO" in message
    assert "mybackend" in message
    assert "devices present:" in message
    if present:
        assert "OTHER" in message
    else:
        assert "none" in message


@pytest.mark.parametrize(
    ("requested", "present", "expected"),
    [
        ("CPU", ["CPU"], "CPU"),
        ("cpu", ["GPU.0", "CPU"], "CPU"),
        ("GPU", ["CPU", "GPU.0", "GPU.1"], "GPU.0"),
        ("GPU", ["CPU", "GPU.1", "GPU.0"], "GPU.1"),  # first GPU in the backend's order
        ("GPU", ["CPU", "GPU"], "GPU"),
        ("gpu.1", ["CPU", "GPU.0", "GPU.1"], "GPU.1"),
        ("GPU.0", ["CPU", "GPU.0", "GPU.1"], "GPU.0"),
        ("GPU.0", ["CPU", "GPU"], "GPU"),  # a plain 'GPU' counts as GPU.0
        ("NPU", ["CPU", "NPU"], "NPU"),
        ("NPU.0", ["CPU", "NPU"], "NPU"),
        ("CPU.0", ["CPU"], "CPU"),
    ],
)
def test_resolve_named_devices(requested, present, expected):
    assert resolve_device(requested, present, "openvino").name == expected


@pytest.mark.parametrize(
    ("requested", "present"),
    [
        ("GPU", ["CPU"]),
        ("GPU", ["CPU", "NPU"]),
        ("NPU", ["CPU", "GPU.0"]),
        ("CPU", ["GPU.0", "NPU"]),
        ("GPU.1", ["CPU", "GPU"]),  # a plain GPU is GPU.0, not GPU.1
        ("GPU.1", ["CPU", "GPU.0"]),
        ("GPU.2", ["CPU", "GPU.0", "GPU.1"]),
        ("GPU.0", ["CPU", "GPU.1"]),
        ("NPU", []),
    ],
)
def test_absent_device_raises_and_lists_present_devices(requested, present):
    with pytest.raises(DeviceUnavailableError) as info:
        resolve_device(requested, present, "onnxruntime")
    message = str(info.value)
    assert f"'{requested}'" in message
    assert "onnxruntime" in message
    expected_listing = ", ".join(present) if present else "none"
    assert f"devices present: {expected_listing}" in message
    assert "fall back" in message


def test_absent_device_message_uses_canonical_spelling():
    with pytest.raises(DeviceUnavailableError, match=r"device 'GPU\.1'"):
        resolve_device(" gpu.1 ", ["CPU"], "openvino")


def test_absent_device_is_not_silently_replaced_by_cpu():
    # Never a silent fallback: CPU being present does not satisfy a GPU request.
    with pytest.raises(DeviceUnavailableError):
        resolve_device("GPU", ["CPU"], "openvino")


@pytest.mark.parametrize("requested", ["TPU", "AUTO:GPU,CPU", "", None])
def test_resolve_validates_the_request_first(requested):
    with pytest.raises(InvalidInputError):
        resolve_device(requested, ["CPU", "GPU"], "openvino")


def test_device_errors_are_distinct():
    # An invalid string is an input error, an absent device is not.
    assert not issubclass(DeviceUnavailableError, InvalidInputError)
    assert not issubclass(InvalidInputError, DeviceUnavailableError)


@pytest.mark.parametrize(
    ("name", "kind", "index", "indexed"),
    [("CPU", "CPU", 0, "CPU.0"), ("GPU", "GPU", 0, "GPU.0"), ("GPU.2", "GPU", 2, "GPU.2")],
)
def test_a_resolved_device_is_parsed_once_into_a_value(name, kind, index, indexed):
    device = resolve_device("AUTO" if name == "CPU" else name, ["CPU", name], "openvino")
    assert (device.name, device.kind, device.index, device.indexed_name) == (
        name,
        kind,
        index,
        indexed,
    )
    assert str(device) == name
