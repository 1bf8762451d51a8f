"""Shared fixtures: the model zoo is built once per session in a temporary directory."""

from __future__ import annotations

import numpy as np
import pytest

from atriva_inference import InferenceRuntime, available_backends
from tests import zoo

BACKENDS = [status.name for status in available_backends() if status.usable]


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("zoo")


@pytest.fixture(scope="session")
def conv_net(zoo_dir):
    return zoo.build_conv_net(zoo_dir)


@pytest.fixture(scope="session")
def multi_io(zoo_dir):
    return zoo.build_multi_io(zoo_dir)


@pytest.fixture(scope="session")
def dynamic(zoo_dir):
    return zoo.build_dynamic(zoo_dir)


@pytest.fixture(scope="session")
def int_bool(zoo_dir):
    return zoo.build_int_bool(zoo_dir)


@pytest.fixture(scope="session")
def strings(zoo_dir):
    return zoo.build_strings(zoo_dir)


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Every usable backend: tests taking it form the conformance suite."""
    return request.param


@pytest.fixture
def runtime(backend):
    with InferenceRuntime(backend=backend) as rt:
        yield rt


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
