"""The exception tree in atriva_inference.errors and its top-level exports."""

from __future__ import annotations

import inspect

import pytest

import atriva_inference
from atriva_inference import errors
from atriva_inference.errors import (
    BackendUnavailableError,
    DeviceUnavailableError,
    InferenceFailedError,
    InferenceRuntimeError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelClosedError,
    ModelLoadError,
    RequestBusyError,
)

SUBCLASSES = [
    BackendUnavailableError,
    DeviceUnavailableError,
    InferenceFailedError,
    InferenceTimeoutError,
    InvalidInputError,
    ModelClosedError,
    ModelLoadError,
    RequestBusyError,
]


def test_base_is_an_exception_but_not_a_value_or_timeout_error():
    assert issubclass(InferenceRuntimeError, Exception)
    assert not issubclass(InferenceRuntimeError, ValueError)
    assert not issubclass(InferenceRuntimeError, TimeoutError)


@pytest.mark.parametrize("cls", SUBCLASSES, ids=lambda c: c.__name__)
def test_every_error_subclasses_the_base(cls):
    assert issubclass(cls, InferenceRuntimeError)
    assert cls is not InferenceRuntimeError


@pytest.mark.parametrize("name", errors.__all__)
def test_every_public_error_in_module_all_subclasses_the_base(name):
    cls = getattr(errors, name)
    assert inspect.isclass(cls)
    assert issubclass(cls, InferenceRuntimeError)


def test_module_all_lists_every_exception_class_defined_there():
    defined = {
        name
        for name, obj in vars(errors).items()
        if inspect.isclass(obj)
        and issubclass(obj, BaseException)
        and obj.__module__ == errors.__name__
        and not name.startswith("_")
    }
    assert defined == set(errors.__all__)
    assert defined == {cls.__name__ for cls in SUBCLASSES} | {"InferenceRuntimeError"}


def test_invalid_input_error_is_a_value_error():
    assert issubclass(InvalidInputError, ValueError)
    with pytest.raises(ValueError, match="bad shape"):
        raise InvalidInputError("bad shape")


def test_timeout_error_is_a_builtin_timeout_error():
    assert issubclass(InferenceTimeoutError, TimeoutError)
    with pytest.raises(TimeoutError):
        raise InferenceTimeoutError("ran out")


@pytest.mark.parametrize(
    "cls",
    [c for c in SUBCLASSES if c not in (InvalidInputError, InferenceTimeoutError)],
    ids=lambda c: c.__name__,
)
def test_other_errors_are_not_value_or_timeout_errors(cls):
    assert not issubclass(cls, ValueError)
    assert not issubclass(cls, TimeoutError)


@pytest.mark.parametrize("cls", SUBCLASSES, ids=lambda c: c.__name__)
def test_errors_are_caught_by_the_base_class_and_keep_message_and_cause(cls):
    cause = RuntimeError("backend said no")
    with pytest.raises(InferenceRuntimeError) as info:
        raise cls("something failed") from cause
    assert type(info.value) is cls
    assert str(info.value) == "something failed"
    assert info.value.__cause__ is cause


@pytest.mark.parametrize("name", errors.__all__)
def test_every_error_is_exported_at_top_level(name):
    assert name in atriva_inference.__all__
    assert getattr(atriva_inference, name) is getattr(errors, name)
