"""Cross-camera batches: stacking and splitting, and a batched pipeline whose every result
is its own frame's, with at most one frame per camera in a batch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from atriva_inference import InferenceFailedError, InferenceRuntime, InvalidInputError, Tensor
from atriva_inference.pipeline import Pipeline
from atriva_inference.pipeline.batching import split_outputs, stack_inputs
from tests.pipeline.conftest import CPU_BACKENDS, channel_means, check_accounting


def test_stack_and_split_keep_a_batch_dimension_of_one():
    a, b = np.zeros((1, 4, 4, 3), np.uint8), np.ones((1, 4, 4, 3), np.uint8)
    stacked = stack_inputs([Tensor(a, "NHWC"), Tensor(b, "NHWC")])
    assert stacked.shape == (2, 4, 4, 3) and stacked.layout == "NHWC"
    named = stack_inputs([{"x": a}, {"x": b}])
    assert named["x"].shape == (2, 4, 4, 3)
    parts = split_outputs({"y": Tensor(np.arange(6.0).reshape(2, 3))}, 2)
    assert [part["y"].to_numpy().tolist() for part in parts] == [[[0, 1, 2]], [[3, 4, 5]]]
    with pytest.raises(InvalidInputError, match=r"one shape, got \[1, 4, 4, 3\], \[1, 2, 2, 3\]"):
        stack_inputs([a, np.zeros((1, 2, 2, 3), np.uint8)])
    with pytest.raises(InferenceFailedError, match="expected a batch of 3 on axis 0"):
        split_outputs({"y": Tensor(np.zeros((2, 3)))}, 3)


def test_batched_results_are_each_their_own_frame(means_model):
    rng = np.random.default_rng(5)
    clips = {
        f"cam{i}": [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(15)]
        for i in range(4)
    }
    with Pipeline(means_model, clips, max_batch=4, max_delay_ms=50) as pipe:
        results = list(pipe)
        stats = pipe.stats()
    check_accounting(stats)
    for name, clip in clips.items():
        got = [r for r in results if r.camera == name]
        assert [r.seq for r in got] == list(range(15))
        for result, frame in zip(got, clip):
            np.testing.assert_array_equal(result.frame, frame)
            means = result.outputs["means"].to_numpy()
            assert means.shape == (1, 3)
            np.testing.assert_allclose(means[0], channel_means(frame), rtol=1e-4)
    # Results of one batch are views of one output array (their base): batches formed, and
    # never two frames of one camera in the same batch.
    batched = 0
    for first, second in itertools.combinations(results, 2):
        a, b = first.outputs["means"].to_numpy(), second.outputs["means"].to_numpy()
        if a.base is not None and a.base is b.base:
            batched += 1
            assert first.camera != second.camera
    assert batched > 0


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_batches_need_a_model_with_a_free_batch_dimension(backend, conv_net, bikes):
    with InferenceRuntime(backend) as runtime:
        model = runtime.load_model(conv_net.path_for(backend), "CPU")
        with pytest.raises(InvalidInputError, match="load it with dynamic=True"):
            Pipeline(model, [bikes], max_batch=2)
