"""Build a TensorRT engine from an ONNX classifier: one code path for TensorRT 10.x and 11.x.

The network is strongly typed (``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` where the
flag exists; TensorRT 11 is always strongly typed), so precision comes from the ONNX: INT8
from its Q/DQ nodes, FP16 from a float16 conversion (``fp16=True``, see
:mod:`edgeres.engine.fp16`). No weak-typing API (FP16/INT8 builder flags, calibrators) is
used; optional features are found with ``getattr``. The one exception is a DLA build on
TensorRT 10.3 to 10.7, which is weakly typed as trtexec builds it (see
:func:`edgeres.engine.trt.dla_support`). ``tensorrt`` is imported through
:mod:`edgeres.engine.trt`, inside functions, so edgeres imports without it; every builder
shares that module's one logger.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeres.atomic import atomic_path, write_bytes_atomic
from edgeres.engine.options import EngineOptions, check_profile_fits, check_profile_shapes
from edgeres.engine.sidecar import EngineSidecar, gpu_info, sha256_file, sidecar_path
from edgeres.engine.trt import NOT_INSTALLED, ROUTER, Collector, dla_support, get_trt_logger, import_tensorrt
from edgeres.errors import EdgeresError, UsageError
from edgeres.version import __version__

__all__ = ["NOT_INSTALLED", "BuildResult", "build_engine", "gpu_info", "import_tensorrt"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_engine` wrote."""

    engine_path: Path
    sidecar_path: Path
    sidecar: EngineSidecar
    size_bytes: int
    seconds: float
    timing_cache: Path | None

    def summary(self) -> str:
        s = self.sidecar
        lo, hi = s.batch_range
        batch = str(lo) if lo == hi else f"{lo}..{hi}"
        dla = f", DLA core {s.dla_core}" if s.dla_core is not None else ""
        return (
            f"{self.engine_path} ({s.precision}{dla}, batch {batch}, {self.size_bytes / 1e6:.1f} MB, "
            f"built in {self.seconds:.1f} s by {s.describe_target()})"
        )


def build_engine(
    onnx_path: str | os.PathLike[str], options: EngineOptions | None = None, *, progress: bool = True
) -> BuildResult:
    """Build ``onnx_path`` into a TensorRT engine plus its JSON sidecar, both written atomically.

    Raises :class:`MissingDependencyError` without TensorRT, :class:`EdgeresError` without a
    usable CUDA GPU or when TensorRT refuses the model, :class:`UsageError` for options that
    do not fit the model or the device. ``progress`` shows TensorRT's build phases on stderr.
    """
    options = options or EngineOptions()
    source = Path(onnx_path)
    spec = check_profile_fits(source, options.batch, input_size=options.input_size)
    engine_path = options.engine_path(source)
    _check_output(engine_path)
    if options.dla_core is not None and not options.batch.is_fixed:
        raise UsageError(f"DLA needs a fixed batch, not {options.batch}; use --batch N:N:N (e.g. 1:1:1)")

    trt = import_tensorrt()
    weak = False
    if options.dla_core is not None:
        ok, how = dla_support(str(trt.__version__))
        if not ok:
            raise EdgeresError(f"{how}; drop --dla-core to build for the GPU")
        weak = how == "weak"
    gpu_name, cc = gpu_info()
    with ROUTER.collect() as trt_log, tempfile.TemporaryDirectory(prefix="edgeres-engine-") as tmp_dir:
        builder = _builder(trt, trt_log)
        if options.dla_core is not None:
            _check_dla(trt, builder, options.dla_core)
        precision, model = _precision_and_model(source, options, weak, Path(tmp_dir))
        if options.dla_core is not None and precision == "fp32":
            raise UsageError(
                "DLA runs FP16 and INT8 layers only; add --fp16 or build from an INT8 Q/DQ model"
            )
        network, _parser = _parse(trt, builder, trt_log, model, weak)  # the parser owns the weights
        config = _configure(trt, builder, network, options, spec.chw)
        if weak:
            _weak_dla_flags(trt, config, precision)
        reused = _load_timing_cache(config, options.timing_cache)
        monitor = _progress_monitor(trt, config, progress)
        start = time.monotonic()
        with _spinner(progress and monitor is None, f"building {engine_path.name}"):
            plan = builder.build_serialized_network(network, config)
        seconds = time.monotonic() - start
        if plan is None:
            raise EdgeresError(
                f"TensorRT {trt.__version__} could not build an engine from {source.name}: "
                f"{trt_log.reason('no reason given')}"
            )
    sidecar = EngineSidecar(
        tensorrt_version=str(trt.__version__),
        gpu_name=gpu_name,
        compute_capability=cc,
        precision=precision,
        input_name=spec.name,
        output_name=str(network.get_output(0).name),
        profile=dict(
            zip(("min", "opt", "max"), (list(s) for s in options.batch.shapes(spec.chw)), strict=True)
        ),
        onnx_path=str(source),
        onnx_sha256=sha256_file(source),
        options=options.to_dict(),
        built_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        build_seconds=round(seconds, 3),
        edgeres_version=__version__,
        meta=_meta(source, options),
        dla_core=options.dla_core,
    )
    side = sidecar_path(engine_path)
    with atomic_path(engine_path, suffix=".engine.tmp") as tmp_engine, atomic_path(side) as tmp_side:
        tmp_engine.write_bytes(memoryview(plan))
        tmp_side.write_text(sidecar.to_json(), encoding="utf-8")
    if options.timing_cache is not None:
        _save_timing_cache(config, options.timing_cache, reused)
    size = engine_path.stat().st_size
    return BuildResult(engine_path, side, sidecar, size, seconds, options.timing_cache)


def _check_output(engine_path: Path) -> None:
    from edgeres.runners.registry import ENGINE_SUFFIXES

    if engine_path.suffix.lower() not in ENGINE_SUFFIXES:
        raise UsageError(f"engine file '{engine_path}' must end in {', '.join(ENGINE_SUFFIXES)}")
    folder = engine_path.parent if str(engine_path.parent) else Path(".")
    if not folder.is_dir():
        raise EdgeresError(f"output folder '{folder}' does not exist; create it or choose another -o path")
    if not os.access(folder, os.W_OK):
        raise EdgeresError(f"output folder '{folder}' is not writable; choose another -o path")


def _builder(trt: Any, trt_log: Collector) -> Any:
    try:
        builder = trt.Builder(get_trt_logger(trt))
    except (TypeError, RuntimeError):  # pybind11's "factory function returned nullptr"
        builder = None
    if builder is None:
        raise EdgeresError(
            f"TensorRT {trt.__version__} found no usable CUDA GPU "
            f"({trt_log.reason('CUDA initialization failed', first=True)}); "
            "build engines on the GPU or Jetson that will run them"
        )
    return builder


def _precision_and_model(source: Path, options: EngineOptions, weak: bool, tmp_dir: Path) -> tuple[str, Path]:
    """The engine's precision and the ONNX to parse: float16-converted for ``--fp16`` unless weakly typed,
    where the FP16 builder flag does what the conversion does."""
    import onnx

    from edgeres.engine.fp16 import model_precision

    if options.fp16 and not weak:
        from edgeres.engine.fp16 import convert_fp16

        model = convert_fp16(source, tmp_dir / f"{source.stem}.fp16.onnx")
        return model_precision(onnx.load(str(model), load_external_data=False)), model
    precision = model_precision(onnx.load(str(source), load_external_data=False))
    if options.fp16 and precision in ("fp32", "int8"):
        precision = "fp16" if precision == "fp32" else "int8+fp16"
    return precision, source


def _weak_dla_flags(trt: Any, config: Any, precision: str) -> None:
    """TensorRT 10.x DLA, as trtexec builds it: FP16 (INT8 for Q/DQ) allowed, precisions preferred."""
    names = (["FP16"] if "fp16" in precision else []) + (["INT8"] if "int8" in precision else [])
    for name in names:  # weak typing: TensorRT 10 only (dla_support says when it is used)
        flag = getattr(trt.BuilderFlag, name, None)
        if flag is None:
            raise EdgeresError(f"this TensorRT has no BuilderFlag.{name}, needed by a weakly typed DLA build")
        config.set_flag(flag)
    # Gone in TensorRT 11 (weak typing removed); DLA builds are weakly typed on 10.3 to 10.7 only.
    prefer = getattr(trt.BuilderFlag, "PREFER_PRECISION_CONSTRAINTS", None)
    if prefer is not None:
        config.set_flag(prefer)


def _parse(trt: Any, builder: Any, trt_log: Collector, model: Path, weak: bool) -> tuple[Any, Any]:
    flags = 0
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    if strongly_typed is not None and not weak:  # 10.x: opt in; 11.x: always on, the flag is ignored
        flags |= 1 << int(strongly_typed)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, get_trt_logger(trt))
    if not parser.parse_from_file(str(model)):
        errors = [parser.get_error(i) for i in range(parser.num_errors)]
        raise EdgeresError(
            f"TensorRT {trt.__version__} cannot parse {model.name}: {_parser_error(errors, trt_log)}"
        )
    if network.num_inputs != 1 or network.num_outputs != 1:
        raise UsageError(
            f"{model.name} has {network.num_inputs} inputs and {network.num_outputs} outputs after parsing; "
            "edgeres builds classifiers with one of each"
        )
    return network, parser


def _parser_error(errors: list[Any], trt_log: Collector) -> str:
    if not errors:
        return trt_log.reason("the parser gave no reason")
    first = errors[0]
    desc = next((line.strip() for line in str(first.desc()).splitlines() if line.strip()), "unknown error")
    where = [str(getattr(first, attr)()) for attr in ("node_name", "node_operator") if hasattr(first, attr)]
    where = [w for w in where if w]
    text = f"{desc} (at {', '.join(where)})" if where else desc
    return text + (f" and {len(errors) - 1} more error(s)" if len(errors) > 1 else "")


def _configure(
    trt: Any, builder: Any, network: Any, options: EngineOptions, chw: tuple[int, int, int]
) -> Any:
    config = builder.create_builder_config()
    tensor = network.get_input(0)
    if any(int(d) < 0 for d in tuple(tensor.shape)):
        shapes = check_profile_shapes(tensor.name, options.batch.shapes(chw))
        profile = builder.create_optimization_profile()
        try:
            profile.set_shape(tensor.name, *shapes)
        except (RuntimeError, TypeError) as exc:
            raise EdgeresError(
                f"TensorRT {trt.__version__} refused the profile {shapes} of input {tensor.name} "
                f"({' '.join(str(exc).split())})"
            ) from None
        if config.add_optimization_profile(profile) < 0:
            raise EdgeresError(
                f"TensorRT {trt.__version__} refused the profile {shapes} of input {tensor.name} "
                f"(it does not fit the network's input {tuple(tensor.shape)})"
            )
    if options.workspace is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace)
    if options.builder_optimization_level is not None:
        if not hasattr(config, "builder_optimization_level"):
            raise UsageError(f"TensorRT {trt.__version__} has no builder optimization level; drop the option")
        config.builder_optimization_level = options.builder_optimization_level
    if options.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        fallback = getattr(trt.BuilderFlag, "GPU_FALLBACK", None)
        if fallback is not None:  # layers DLA cannot run go to the GPU instead of failing the build
            config.set_flag(fallback)
    return config


def _check_dla(trt: Any, builder: Any, core: int) -> None:
    cores = int(getattr(builder, "num_DLA_cores", 0) or 0)
    if cores == 0:
        raise EdgeresError(
            f"DLA core {core} was asked for, but TensorRT {trt.__version__} sees no DLA here "
            "(DLA is on Jetson AGX Orin and Orin NX); drop --dla-core to build for the GPU"
        )
    if core >= cores:
        raise UsageError(f"DLA core {core} does not exist; this device has cores 0..{cores - 1}")


def _load_timing_cache(config: Any, path: Path | None) -> bool:
    """Attach a timing cache (``path``'s, else a new one); True when ``path``'s was accepted."""
    blob = Path(path).read_bytes() if path is not None and Path(path).is_file() else b""
    cache = config.create_timing_cache(blob) if blob else None
    if cache is not None and config.set_timing_cache(cache, False):
        return True
    if blob:
        log.warning("timing cache %s is from another TensorRT version or GPU; starting a new one", path)
    config.set_timing_cache(config.create_timing_cache(b""), False)
    return False


def _save_timing_cache(config: Any, path: Path, reused: bool) -> None:
    cache = config.get_timing_cache()
    if cache is None:
        return
    if reused and path.is_file():  # keep what other builds added to the file since it was read
        other = config.create_timing_cache(path.read_bytes())
        if other is not None:
            cache.combine(other, False)
    write_bytes_atomic(path, bytes(memoryview(cache.serialize())))


def _progress_monitor(trt: Any, config: Any, enabled: bool) -> Any:
    """Bars per build phase on a terminal; elsewhere None, and the spinner's one closing line stays."""
    from edgeres.progress import on_terminal

    if not enabled or not on_terminal():
        return None
    if not hasattr(trt, "IProgressMonitor") or not hasattr(config, "progress_monitor"):
        return None
    from tqdm import tqdm

    class _Bars(trt.IProgressMonitor):
        """One tqdm bar per build phase, nested phases indented below their parent."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._bars: dict[str, Any] = {}
            self._depth: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                depth = self._depth.get(parent_phase, -1) + 1 if parent_phase else 0
                self._depth[phase_name] = depth
                self._bars[phase_name] = tqdm(
                    total=num_steps,
                    desc="  " * depth + phase_name,
                    position=depth,
                    leave=depth == 0,
                    file=sys.stderr,
                )

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                bar = self._bars.get(phase_name)
                if bar is not None:
                    bar.update(max(0, step + 1 - bar.n))
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                self._depth.pop(phase_name, None)
                bar = self._bars.pop(phase_name, None)
                if bar is not None:
                    bar.close()

    monitor = _Bars()
    config.progress_monitor = monitor
    return monitor


@contextlib.contextmanager
def _spinner(enabled: bool, label: str) -> Iterator[None]:
    """Elapsed seconds on stderr while a TensorRT without IProgressMonitor builds."""
    start, stop = time.monotonic(), threading.Event()

    def spin() -> None:
        for ch in itertools.cycle("|/-\\"):
            sys.stderr.write(f"\r{label} {ch} {time.monotonic() - start:.0f} s")
            if stop.wait(0.25):
                return

    thread = threading.Thread(target=spin, daemon=True)
    if enabled and sys.stderr.isatty():
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread.is_alive():
            thread.join()
        if enabled:
            sys.stderr.write(f"\r{label}: {time.monotonic() - start:.1f} s\n")


def _meta(source: Path, options: EngineOptions) -> Any:
    from edgeres.export.onnx_meta import read_onnx_meta

    try:
        return read_onnx_meta(source, input_size=options.input_size)
    except UsageError as exc:  # an ONNX from elsewhere may not tell everything; the engine still builds
        log.info("no model metadata for %s: %s", source.name, exc)
        return None
