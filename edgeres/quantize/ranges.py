"""Calibrated ranges: the one thing calibration hands to the Q/DQ writers."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TensorRange:
    """The float range of one activation tensor that INT8 must cover.

    ``lo``/``hi`` are what the method chose (clipped below the observed extremes
    for percentile, entropy and mse). A symmetric target uses
    ``max(|lo|, |hi|)``; an asymmetric one uses both ends.
    """

    name: str
    lo: float
    hi: float

    def __post_init__(self) -> None:
        if not self.lo <= self.hi:
            raise ValueError(f"range of {self.name} is empty: [{self.lo}, {self.hi}]")

    @property
    def absmax(self) -> float:
        return max(abs(self.lo), abs(self.hi))


#: Ranges of every calibrated tensor, by ONNX tensor name.
Ranges = dict[str, TensorRange]
