"""``python -m benchmarks``: every section, or those ``--sections`` names (see
:mod:`benchmarks.runtime` and :mod:`benchmarks.frames`)."""

from . import pipeline, quantized, serve
from .frames import main

# Each runs the --sections it owns.
raise SystemExit(max(main(), pipeline.main(), serve.main(), quantized.main()))
