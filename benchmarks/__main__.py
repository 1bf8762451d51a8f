"""``python -m benchmarks``: every section, or those ``--sections`` names (see
:mod:`benchmarks.runtime` and :mod:`benchmarks.frames`)."""

from . import pipeline
from .frames import main

raise SystemExit(max(main(), pipeline.main()))  # each runs the --sections it owns
