"""The counters behind CameraStats."""

from __future__ import annotations

import time

from atriva_inference.pipeline.stats import CameraStats, Counters


def test_snapshot_before_and_after_deliveries():
    counters = Counters()
    empty = counters.snapshot(0, "starting", None)
    assert isinstance(empty, CameraStats)
    assert (empty.fps, empty.latency_p50_ms, empty.latency_p99_ms) == (0.0, None, None)
    counters.captured = 102
    counters.dropped["fps"] = 2
    counters.dropped["stale"] = 0  # causes never hit are left out
    now = time.monotonic()
    for latency in range(1, 101):
        counters.deliver(float(latency), now)
    stats = counters.snapshot(0, "running", None)
    assert stats.delivered == 100 and stats.dropped == {"fps": 2}
    assert stats.captured == stats.delivered + sum(stats.dropped.values()) + stats.in_flight
    assert stats.latency_p50_ms == 50.5
    assert 99 < stats.latency_p99_ms < 100
    assert stats.fps > 0
