"""``python -m examples``: the orientation demo, the face demo, then object detection on
footage through the pipeline (four cameras).

Exit status 0 when all succeed, 1 when any fails (all always run).
"""

from __future__ import annotations

import sys

from examples import centerface, detection, orientation


def main() -> int:
    print("== text orientation (PP-LCNet) ==")
    statuses = [orientation.main()]
    print()
    print("== face detection (CenterFace) ==")
    statuses.append(centerface.main())
    print()
    print("== object detection on footage (SSD-MobileNet-v2 COCO, pipeline of 4 cameras) ==")
    statuses.append(detection.main([]))
    return 0 if all(status == 0 for status in statuses) else 1


if __name__ == "__main__":
    sys.exit(main())
