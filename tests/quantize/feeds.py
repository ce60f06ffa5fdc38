"""A calibration reader over fixed batches, for the tests that calibrate hand-made data."""

from __future__ import annotations

import numpy as np


class Batches:
    """ONNX Runtime's calibration-reader protocol (``get_next``, ``rewind``) over fixed batches."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches, self.next = batches, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.next == len(self.batches):
            return None
        self.next += 1
        return {"input": self.batches[self.next - 1]}

    def rewind(self) -> None:
        self.next = 0
