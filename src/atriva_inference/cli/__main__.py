"""``python -m atriva_inference.cli``: the ``atriva-infer`` command."""

import sys

from .app import main

sys.exit(main())
