"""``python -m benchmarks`` (see :mod:`benchmarks.runtime`)."""

from .runtime import main

raise SystemExit(main())
