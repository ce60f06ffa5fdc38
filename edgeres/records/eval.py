"""The eval result file: ``edgeres eval --json`` and the pipeline's ``eval_<variant>.json``.

``{"kind": "edgeres.eval", "schema": 1, "model", "precision", "backend", "device",
"size_bytes", "result": {...}}``, and with a reference model (``--compare``) ``"reference"``:
the same fields for it, plus the top-1 ``agreement`` of the two on the same images and
``flips``: each prediction of the reference the model changed,
``[{"reference": class, "model": class, "count": n}]``, most frequent first.

``backend`` and ``device`` are where the runner ran the model (``openvino`` on ``cpu``).
Fields added since schema 1 was first written are optional when read, so the files of an
older edgeres still read strictly: ``flips`` absent reads as none recorded, ``device``
absent as unknown (None).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from edgeres.model_size import stored_bytes
from edgeres.records.fields import FieldError, Fields
from edgeres.records.files import header, read_record, write_record

if TYPE_CHECKING:
    from edgeres.evaluate import EvalResult
    from edgeres.runners import Runner

__all__ = ["ClassScore", "EvalRecord", "Evaluated", "Reference", "Scores", "read_eval", "write_eval"]


@dataclass(frozen=True)
class ClassScore:
    """One class: images whose top-1 prediction is right, of ``total`` labelled images."""

    name: str
    correct: int
    total: int


@dataclass(frozen=True)
class Scores:
    """Accuracy of one model on the evaluated images (``result`` in the file)."""

    num_images: int
    num_labelled: int
    top1: float | None
    top5: float | None
    skipped: int = 0
    skipped_unknown_class: int = 0
    per_class: tuple[ClassScore, ...] = ()

    @classmethod
    def of(cls, result: EvalResult) -> Scores:
        return cls(
            num_images=int(result.num_images),
            num_labelled=int(result.num_labelled),
            top1=None if result.top1 is None else float(result.top1),
            top5=None if result.top5 is None else float(result.top5),
            skipped=int(result.skipped),
            skipped_unknown_class=int(result.skipped_unknown),
            per_class=tuple(ClassScore(str(n), int(c), int(t)) for n, (c, t) in result.per_class.items()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_images": self.num_images,
            "num_labelled": self.num_labelled,
            "top1": self.top1,
            "top5": self.top5,
            "skipped": self.skipped,
            "skipped_unknown_class": self.skipped_unknown_class,
            "per_class": {
                c.name: {
                    "correct": c.correct,
                    "total": c.total,
                    "accuracy": c.correct / c.total if c.total else None,
                }
                for c in self.per_class
            },
        }

    @classmethod
    def read(cls, f: Fields) -> Scores:
        per_class = []
        classes = f.sub("per_class")
        for name in classes.data:
            c = classes.sub(name)
            per_class.append(
                ClassScore(str(name), c.required_integer("correct"), c.required_integer("total"))
            )
        return cls(
            num_images=f.integer("num_images", 0) or 0,
            num_labelled=f.integer("num_labelled", 0) or 0,
            top1=f.number("top1"),
            top5=f.number("top5"),
            skipped=f.integer("skipped", 0) or 0,
            skipped_unknown_class=f.integer("skipped_unknown_class", 0) or 0,
            per_class=tuple(per_class),
        )


@dataclass(frozen=True)
class Evaluated:
    """One model as an evaluation scored it: its file, what it computes in, and its accuracy."""

    model: str
    precision: str | None
    backend: str | None
    size_bytes: int | None
    result: Scores
    #: Where the runner ran it (cpu, cuda:0, gpu); None in files of an older edgeres.
    device: str | None = None
    #: Why the accuracy measured here differs from what the model computes elsewhere (an INT8 model
    #: whose sums this CPU's kernels saturate, see :mod:`edgeres.quantize.saturation`), or None.
    caveat: str | None = None

    @classmethod
    def measured(
        cls,
        model: str | os.PathLike[str],
        runner: Runner,
        result: EvalResult,
        *,
        name: str | None = None,
        **extra: Any,
    ) -> Self:
        """``model`` (named ``name`` in the file, else by its path) as ``runner`` scored it.

        A :class:`Reference` keeps ``result`` (not written); a ``reference`` that kept its
        predictions gets the flips of this result against it counted.
        """
        path = Path(model)
        if "caveat" not in extra:
            from edgeres.quantize.saturation import saturation_caveat

            extra["caveat"] = saturation_caveat(path, runner.name, runner.device)
        if "scored" in {f.name for f in fields(cls)}:
            extra.setdefault("scored", result)
        ref = extra.get("reference")
        if isinstance(ref, Reference) and ref.scored is not None and not ref.flips:
            from edgeres.evaluate import flips

            extra["reference"] = replace(ref, flips=tuple(flips(result, ref.scored)))
        return cls(
            model=name if name is not None else str(model),
            precision=runner.precision,
            backend=runner.name,
            device=runner.device,
            size_bytes=stored_bytes(path),
            result=Scores.of(result),
            **extra,
        )

    def _common(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "precision": self.precision,
            "backend": self.backend,
            "device": self.device,
            "size_bytes": self.size_bytes,
            "result": self.result.to_dict(),
            "caveat": self.caveat,
        }

    @staticmethod
    def _read_common(f: Fields) -> dict[str, Any]:
        if not isinstance(f.raw("result"), dict):
            raise FieldError(f.where + "result", "an object", f.raw("result"))
        return {
            "model": f.required_text("model"),
            "precision": f.text("precision"),
            "backend": f.text("backend"),
            "device": f.text("device") if "device" in f.data else None,  # older files have none
            "size_bytes": f.integer("size_bytes"),
            "result": Scores.read(f.sub("result")),
            "caveat": f.text("caveat") if "caveat" in f.data else None,  # older files have none
        }


@dataclass(frozen=True)
class Reference(Evaluated):
    """The model an evaluation was compared with, on the same images, and how often both agree."""

    #: Fraction of the images on which both models predict the same class.
    agreement: float | None = None
    #: (reference's class, model's class, images) for each changed prediction, most frequent first.
    flips: tuple[tuple[str, str, int], ...] = ()
    #: The reference's predictions, kept (not written) so the record it joins can count flips.
    scored: EvalResult | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self._common(),
            "agreement": self.agreement,
            "flips": [{"reference": b, "model": a, "count": n} for b, a, n in self.flips],
        }

    @classmethod
    def read(cls, f: Fields) -> Reference:
        pairs = f.objects("flips") if "flips" in f.data else []  # older files have none
        flips = tuple(
            (p.required_text("reference"), p.required_text("model"), p.required_integer("count"))
            for p in pairs
        )
        return cls(**cls._read_common(f), agreement=f.number("agreement"), flips=flips)


@dataclass(frozen=True)
class EvalRecord(Evaluated):
    """One model's accuracy on a set of images, and optionally its reference's."""

    KIND: ClassVar[str] = "edgeres.eval"
    NAME: ClassVar[str] = "eval"
    SCHEMA: ClassVar[int] = 1

    reference: Reference | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {**header(self), **self._common()}
        if self.reference is not None:
            d["reference"] = self.reference.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: Any, *, strict: bool = True) -> Self:
        f = Fields(data, strict=strict)
        ref = f.data.get("reference")  # absent: no reference was given
        if ref is not None and not isinstance(ref, dict):
            raise FieldError("reference", "an object", ref)
        reference = Reference.read(Fields(ref, "reference.", strict=strict)) if ref is not None else None
        return cls(**cls._read_common(f), reference=reference)


def write_eval(path: str | os.PathLike[str], record: EvalRecord) -> None:
    """Write an eval result file, atomically."""
    write_record(path, record)


def read_eval(path: str | os.PathLike[str], data: Any = None) -> EvalRecord:
    """Read an eval result file (``data``: its JSON, when already loaded); one-line errors."""
    return read_record(path, EvalRecord, data)
