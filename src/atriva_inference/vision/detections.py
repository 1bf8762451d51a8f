"""``Detections``: boxes found in one frame, with their scores, classes and labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from .nms import nms

__all__ = ["Detections"]


@dataclass(frozen=True, eq=False)
class Detections:
    """Objects found in one frame, one row per object, best first as decoders return them.

    ``boxes``: float32 ``[N, 4]`` x1, y1, x2, y2 in pixels of the frame; ``scores``: float32
    ``[N]``; ``class_ids``: int64 ``[N]``; ``labels``: str ``[N]`` (the class names, or the
    ids as text where no names are known); ``keypoints``: float32 ``[N, K, 2]`` (x, y)
    points per object (CenterFace's five face landmarks), or ``None``.

    A ``Detections`` is a value: indexing (an int, a slice, a boolean mask, indices) and
    every filter return a new one sharing nothing that could change it.
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    labels: np.ndarray
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        try:
            boxes = np.asarray(self.boxes, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError("boxes: expected numbers, shape [N, 4]") from exc
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise InvalidInputError(f"boxes: expected shape [N, 4], got {boxes.shape}")
        count = len(boxes)
        columns = {
            "boxes": boxes,
            "scores": _column(self.scores, np.float32, count, "scores"),
            "class_ids": _column(self.class_ids, np.int64, count, "class_ids"),
            "labels": _column(self.labels, np.str_, count, "labels"),
            "keypoints": None,
        }
        if self.keypoints is not None:
            keypoints = np.asarray(self.keypoints, dtype=np.float32)
            if keypoints.ndim != 3 or keypoints.shape[0] != count or keypoints.shape[2] != 2:
                raise InvalidInputError(
                    f"keypoints: expected shape [{count}, K, 2], got {keypoints.shape}"
                )
            columns["keypoints"] = keypoints
        for name, value in columns.items():
            if value is not None:
                value = np.array(value)  # its own copy: a value nobody else can change
                value.flags.writeable = False
            object.__setattr__(self, name, value)

    @classmethod
    def empty(cls, keypoints: int | None = None) -> Detections:
        """No detections (with ``keypoints`` points per object, if given)."""
        points = None if keypoints is None else np.zeros((0, keypoints, 2), np.float32)
        return cls(np.zeros((0, 4), np.float32), [], [], [], points)

    @classmethod
    def from_arrays(
        cls,
        boxes: Any,
        scores: Any,
        class_ids: Any,
        names: Mapping[int, str] | None = None,
        keypoints: Any = None,
    ) -> Detections:
        """Detections whose labels are ``names[class_id]`` (the id as text where absent)."""
        ids = np.asarray(class_ids, dtype=np.int64).reshape(-1)
        labels = [names.get(int(i), str(int(i))) if names else str(int(i)) for i in ids]
        return cls(boxes, scores, ids, labels, keypoints)

    def __len__(self) -> int:
        return len(self.scores)

    def __getitem__(self, index: Any) -> Detections:
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= index < len(self):
                raise IndexError(f"detection {index} of {len(self)}")
            index = [int(index)]
        elif not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype == np.bool_ and index.shape != (len(self),):
                raise InvalidInputError(
                    f"mask: expected {len(self)} booleans, got shape {index.shape}"
                )
        return Detections(
            self.boxes[index],
            self.scores[index],
            self.class_ids[index],
            self.labels[index],
            None if self.keypoints is None else self.keypoints[index],
        )

    def __repr__(self) -> str:
        rows = ", ".join(
            f"{label} {score:.2f} [{', '.join(f'{v:.1f}' for v in box)}]"
            for label, score, box in zip(self.labels[:5], self.scores[:5], self.boxes[:5])
        )
        more = f", ... {len(self) - 5} more" if len(self) > 5 else ""
        return f"Detections({len(self)}: {rows}{more})"

    # -- filters ------------------------------------------------------------------------------
    def above(self, threshold: float) -> Detections:
        """The detections whose score is above ``threshold``."""
        return self[self.scores > threshold]

    def of(self, *classes: int | str) -> Detections:
        """The detections of these classes, given by id or by label."""
        ids = [c for c in classes if not isinstance(c, str)]
        names = [c for c in classes if isinstance(c, str)]
        return self[np.isin(self.class_ids, ids) | np.isin(self.labels, names)]

    def nms(self, iou_threshold: float = 0.5, *, per_class: bool = True) -> Detections:
        """Greedy non-maximum suppression (``vision.nms``), per class unless told otherwise;
        the kept detections, best first."""
        class_ids = self.class_ids if per_class else None
        return self[nms(self.boxes, self.scores, iou_threshold, class_ids=class_ids)]

    def counts(self) -> dict[str, int]:
        """``{label: how many}``, the most frequent first."""
        labels, counts = np.unique(self.labels, return_counts=True)
        order = np.argsort(-counts, kind="stable")
        return {str(labels[i]): int(counts[i]) for i in order}


def _column(value: Iterable[Any], dtype: Any, count: int, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name}: expected {np.dtype(dtype).name} values") from exc
    if array.size == 0:
        array = array.reshape(0)
    if array.shape != (count,):
        raise InvalidInputError(f"{name}: expected shape [{count}] like boxes, got {array.shape}")
    return array
