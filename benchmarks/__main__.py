"""``python -m benchmarks``: every section, or those ``--sections`` names (see
:mod:`benchmarks.runtime` and :mod:`benchmarks.frames`)."""

from .frames import main

raise SystemExit(main())
