"""``python -m examples``: the orientation demo, then the face demo.

Exit status 0 when both succeed, 1 when either fails (both always run).
"""

from __future__ import annotations

import sys

from examples import centerface, orientation


def main() -> int:
    print("== text orientation (PP-LCNet) ==")
    orientation_status = orientation.main()
    print()
    print("== face detection (CenterFace) ==")
    face_status = centerface.main()
    return 0 if orientation_status == 0 and face_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
