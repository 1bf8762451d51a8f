"""``python -m benchmarks``: every section, or those ``--sections`` names (see
:mod:`benchmarks.runtime` and :mod:`benchmarks.frames`)."""

from . import pipeline, serve
from .frames import main

raise SystemExit(max(main(), pipeline.main(), serve.main()))  # each runs the --sections it owns
