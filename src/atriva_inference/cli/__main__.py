"""``python -m atriva_inference.cli``: the ``atriva-infer`` command."""

import sys

from .app import main

if __name__ == "__main__":
    sys.exit(main())
