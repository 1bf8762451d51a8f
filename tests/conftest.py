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


def _zoo_fixture(builder):
    @pytest.fixture(scope="session")
    def fixture(zoo_dir):
        return builder(zoo_dir)

    return fixture


conv_net = _zoo_fixture(zoo.build_conv_net)
multi_io = _zoo_fixture(zoo.build_multi_io)
dynamic = _zoo_fixture(zoo.build_dynamic)
int_bool = _zoo_fixture(zoo.build_int_bool)
strings = _zoo_fixture(zoo.build_strings)
slow = _zoo_fixture(zoo.build_slow)
mismatch = _zoo_fixture(zoo.build_mismatch)
if_branch = _zoo_fixture(zoo.build_if_branch)


@pytest.fixture(scope="session")
def int8_zoo(tmp_path_factory):
    """The real INT8 builds of PP-LCNet and CenterFace (tests/int8_models.py), one folder per
    session: each build is quantized the first time a test asks for it, then shared."""
    from tests.int8_models import Int8Zoo

    return Int8Zoo(tmp_path_factory.mktemp("int8_models"))


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
