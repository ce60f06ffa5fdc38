"""Export a PyTorch classifier to one self-contained, checked and verified ONNX file.

The graph has one input ``input`` of shape (N, 3, H, W) and one output ``logits``
of shape (N, classes), N dynamic unless asked otherwise, BatchNorm folded into the
convolutions and the :class:`ModelMeta` in ``metadata_props``.

Exporters: the torch.export-based ("dynamo") exporter builds opset 18 graphs and
converts them down; in torch 2.13 that conversion fails for ResNets ("No Adapter To
Version $17 for Pad" for the CIFAR option-A shortcut, the ReduceMean of global
average pooling for all of them) and the exporter then quietly keeps opset 18, a
result treated as a failure. So "auto" tries first what is known to work for the
opset: below :data:`DYNAMO_NATIVE_OPSET` the TorchScript exporter, which writes the
requested opset directly (about half the time of a failed dynamo attempt plus the
fallback), from it on the dynamo exporter; either failing, the other is tried.
:attr:`ExportResult.exporter` records which one was used.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch
from torch import nn

from edgeres.atomic import atomic_path
from edgeres.errors import EdgeresError, UsageError, first_line
from edgeres.export.fold import fold_batchnorm
from edgeres.export.onnx_meta import check_classifier, write_meta_props
from edgeres.export.verify import Verification, verify_export
from edgeres.metadata import ModelMeta

__all__ = ["DYNAMO_NATIVE_OPSET", "EXPORTERS", "MIN_OPSET", "ExportResult", "export_onnx", "exporter_order"]

log = logging.getLogger(__name__)

MIN_OPSET = 17
EXPORTERS = ("auto", "dynamo", "torchscript")
Exporter = Literal["dynamo", "torchscript"]
#: The opset the dynamo exporter builds natively; below it, its down-conversion fails for ResNets.
DYNAMO_NATIVE_OPSET = 18
_EXPORT_BATCH = 2  # example batch: not 1, so torch.export does not specialize a dynamic batch dim


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote."""

    path: Path
    opset: int
    exporter: Exporter
    num_nodes: int
    size_bytes: int
    verification: Verification | None
    #: Why the exporter tried first was not used (first line of its failure), or None.
    fallback_reason: str | None = None

    def summary(self) -> str:
        text = f"{self.path} (opset {self.opset}, {self.exporter} exporter, {self.num_nodes} nodes)"
        return text if self.verification is None else f"{text}; {self.verification.summary()}"


def export_onnx(
    model: nn.Module,
    meta: ModelMeta,
    output: str | os.PathLike[str],
    *,
    opset: int = MIN_OPSET,
    dynamic_batch: bool = True,
    fold_bn: bool = True,
    exporter: str = "auto",
    verify: bool = True,
    real_inputs: np.ndarray | None = None,
    atol: float = 1e-3,
) -> ExportResult:
    """Export ``model`` to ``output`` atomically and return what was written.

    ``exporter`` is "auto" (see :func:`exporter_order`), "dynamo" or "torchscript".
    With ``verify`` the file is compared with ``model`` (see :mod:`edgeres.export.verify`)
    before it is moved into place; a mismatch raises :class:`EdgeresError` and leaves
    nothing behind, as does every other failure.
    """
    output = Path(output)
    max_opset = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= opset <= max_opset:
        raise UsageError(
            f"opset must be between {MIN_OPSET} and {max_opset} (this onnx's newest), got {opset}"
        )
    if exporter not in EXPORTERS:
        raise UsageError(f"unknown exporter '{exporter}'; choose one of {', '.join(EXPORTERS)}")
    if output.is_dir():
        raise UsageError(f"'{output}' is a folder; give the .onnx file to write")

    h, w = meta.preprocessing.input_size
    with atomic_path(output, suffix=".onnx.tmp") as tmp:  # checks the folder before the slow part
        prepared = fold_batchnorm(model) if fold_bn else copy.deepcopy(model).eval()
        prepared = prepared.to(device="cpu", dtype=torch.float32)
        example = torch.randn(_EXPORT_BATCH if dynamic_batch else 1, 3, h, w)
        proto, used, reason = _export_any(prepared, example, opset, dynamic_batch, exporter)
        del prepared
        _finish(proto, meta, output.name)
        _save(proto, tmp, output)
        verification = None
        if verify:
            verification = verify_export(model, tmp, meta, real_inputs, atol=atol)
            log.info("%s", verification.summary())
            if not verification.ok:
                raise EdgeresError(
                    f"the ONNX export of {meta.arch or 'the model'} does not match PyTorch "
                    f"({verification.summary()}); nothing was written"
                )
        num_nodes = len(proto.graph.node)
    size = output.stat().st_size
    return ExportResult(output, _opset_of(proto) or opset, used, num_nodes, size, verification, reason)


def exporter_order(exporter: str, opset: int) -> tuple[Exporter, ...]:
    """The exporters to try, in order: the one known to work for ``opset`` first under "auto"."""
    if exporter == "dynamo":
        return ("dynamo",)
    if exporter == "torchscript":
        return ("torchscript",)
    return ("dynamo", "torchscript") if opset >= DYNAMO_NATIVE_OPSET else ("torchscript", "dynamo")


_EXPORT_FUNCS = {"dynamo": "_export_dynamo", "torchscript": "_export_torchscript"}
_LABELS = {"dynamo": "dynamo", "torchscript": "TorchScript"}


def _export_any(
    model: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool, exporter: str
) -> tuple[onnx.ModelProto, Exporter, str | None]:
    order = exporter_order(exporter, opset)
    errors: list[tuple[Exporter, str]] = []
    for name in order:
        export = globals()[_EXPORT_FUNCS[name]]  # looked up at call time, so tests can replace one
        try:
            proto: onnx.ModelProto = export(model, example, opset, dynamic_batch)
        except _ExportFailed as exc:
            errors.append((name, str(exc)))
            if name != order[-1]:
                log.info("%s ONNX exporter: %s; using the other exporter", _LABELS[name], exc)
            continue
        return proto, name, errors[0][1] if errors else None
    if len(errors) == 1:
        name, why = errors[0]
        hint = "; try exporter torchscript" if name == "dynamo" else ""
        raise EdgeresError(f"the {_LABELS[name]} ONNX exporter failed: {why}{hint}")
    both = "; ".join(f"{_LABELS[name]}: {why}" for name, why in errors)
    raise EdgeresError(f"ONNX export failed with both exporters: {both}")


class _ExportFailed(Exception):
    """One exporter failed; the message is the first line of the cause."""


def _innermost_line(exc: BaseException) -> str:
    """``Type: first line`` of the innermost cause (the exporters wrap the real error)."""
    seen = {id(exc)}
    while exc.__cause__ is not None and id(exc.__cause__) not in seen:
        exc = exc.__cause__
        seen.add(id(exc))
    return first_line(exc, typed=True)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[_Capture]:
    """Collect the exporters' log records and expected warnings instead of printing them."""
    capture = _Capture()
    # onnxscript/onnx_ir: captured (their warnings carry the version-converter failure);
    # torch.onnx/torch.export: torch._logging gives them their own handlers, so only a level silences them.
    captured = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    silenced = [logging.getLogger(name) for name in ("torch.onnx", "torch.export")]
    saved = [(lg.propagate, lg.level) for lg in (*captured, *silenced)]
    for lg in captured:
        lg.addHandler(capture)
        lg.propagate = False
    for lg in silenced:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            for category in (DeprecationWarning, FutureWarning, UserWarning, torch.jit.TracerWarning):
                warnings.simplefilter("ignore", category)
            yield capture
    finally:
        for lg in captured:
            lg.removeHandler(capture)
        for lg, (propagate, level) in zip((*captured, *silenced), saved, strict=True):
            lg.propagate = propagate
            lg.setLevel(level)
        for record in capture.records:
            log.debug("exporter: %s", record.getMessage())


def _opset_of(proto: onnx.ModelProto) -> int | None:
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)


def _export_dynamo(
    model: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool
) -> onnx.ModelProto:
    dynamic_shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    with _quiet_exporter() as capture:
        try:
            program = torch.onnx.export(
                model,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=dynamic_shapes,
                external_data=False,
                optimize=True,
                verbose=False,
            )
            assert program is not None
            proto = program.model_proto
        except Exception as exc:  # torch.export and onnxscript raise many types
            raise _ExportFailed(_innermost_line(exc)) from exc
    got = _opset_of(proto)
    if got != opset:
        causes = [r.exc_info[1] for r in capture.records if r.exc_info and r.exc_info[1] is not None]
        cause = _innermost_line(causes[-1]) if causes else "no reason given"
        raise _ExportFailed(f"it produced opset {got}, not {opset} ({cause})")
    return proto


def _export_torchscript(
    model: nn.Module, example: torch.Tensor, opset: int, dynamic_batch: bool
) -> onnx.ModelProto:
    buffer = io.BytesIO()
    dynamic_axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with _quiet_exporter():
        try:
            torch.onnx.export(
                model,
                (example,),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to file objects too
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        except Exception as exc:  # the tracer and symbolic functions raise many types
            raise _ExportFailed(_innermost_line(exc)) from exc
    return onnx.load_from_string(buffer.getvalue())


def _finish(proto: onnx.ModelProto, meta: ModelMeta, name: str) -> None:
    """Check the graph, store the metadata, and fail loudly on anything off."""
    check_classifier(proto, name)
    graph_inputs = [i.name for i in proto.graph.input]
    if graph_inputs != ["input"] or [o.name for o in proto.graph.output] != ["logits"]:
        raise EdgeresError(f"the exported graph has inputs {graph_inputs}, expected ['input']; this is a bug")
    bn = sum(n.op_type == "BatchNormalization" for n in proto.graph.node)
    if bn:
        log.warning("%d BatchNormalization nodes remain in the exported graph", bn)
    proto.doc_string = f"{meta.arch or 'classifier'} exported by edgeres"
    write_meta_props(proto, meta)
    try:
        onnx.checker.check_model(proto, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError, ValueError) as exc:
        raise EdgeresError(f"the exported ONNX graph is invalid: {_innermost_line(exc)}") from exc
    proto.graph.ClearField("value_info")
    proto.graph.value_info.extend(inferred.graph.value_info)


def _save(proto: onnx.ModelProto, tmp: Path, output: Path) -> None:
    if proto.ByteSize() >= 2**31:
        raise EdgeresError(
            f"{output.name} would be over protobuf's 2 GB limit for a single-file ONNX model; "
            "edgeres handles ResNets up to resnet152 (about 240 MB)"
        )
    try:
        onnx.save_model(proto, str(tmp), save_as_external_data=False)
    except OSError as exc:
        raise EdgeresError(f"could not write '{output}': {exc.strerror or exc}") from exc
