"""Latency on this device: bench."""

from __future__ import annotations

from typing import Any

import click

from edgeres.commands.options import parse_batch_sizes
from edgeres.errors import EdgeresError, UsageError
from edgeres.runners.registry import auto_help, backend_choices


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--backend",
    type=click.Choice(backend_choices()),
    default="auto",
    show_default=True,
    help=auto_help(),
)
@click.option(
    "--device",
    default="cpu",
    show_default=True,
    help="cpu or cuda (cuda:N); engines run on cuda; with --backend openvino, OpenVINO's (GPU, NPU, AUTO).",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "fp16"]),
    default="fp32",
    show_default=True,
    help="Arithmetic of the torch backend (fp16 needs --device cuda).",
)
@click.option(
    "--batch", "batch", default="1", show_default=True, help="Batch sizes, comma-separated: 1,8,32."
)
@click.option(
    "--warmup", type=int, default=10, show_default=True, help="At least this many untimed runs first."
)
@click.option(
    "--warmup-ms", type=float, default=200.0, show_default=True, help="Warm up for at least this long (ms)."
)
@click.option("--iters", type=int, default=100, show_default=True, help="Time at least this many runs.")
@click.option(
    "--duration",
    type=float,
    default=3.0,
    show_default=True,
    help="Time each batch size for at least this many seconds (0: --iters alone).",
)
@click.option(
    "--streams",
    type=int,
    default=1,
    show_default=True,
    help="Requests in flight: N > 1 is throughput mode (N runners, threads split, aggregate img/s).",
)
@click.option("--threads", type=int, help="CPU inference threads [default: the backend's, all cores].")
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False), help="Also write results and environment."
)
def bench_cmd(
    models: tuple[str, ...],
    backend: str,
    device: str,
    precision: str,
    batch: str,
    warmup: int,
    warmup_ms: float,
    iters: int,
    duration: float,
    streams: int,
    threads: int | None,
    json_out: str | None,
) -> None:
    """Latency and throughput of each MODEL at each batch size, on this machine.

    Each timed run is one inference from a host array to host logits
    (end-to-end, copies included); the table headlines the median latency with
    p99 beside it, then ms per image and img/s at each batch (the mean and every
    percentile are in --json). Timing lasts at least --duration seconds and
    --iters runs, after at least --warmup-ms and --warmup runs. With several
    models, "vs fp32" is each one's median over the FP32 model's at the same
    batch. For TensorRT engines the GPU compute time is shown too. A model or
    batch size that cannot run becomes a row with its error. Rows whose times
    vary by more than 10% (std/mean) get a warning: rerun on a quieter machine.
    The exit status is 1 when any row failed.

    \b
    Examples:
      edgeres bench resnet20.onnx
      edgeres bench resnet20.onnx resnet20.int8.onnx --batch 1,8,32 --threads 4
      edgeres bench runs/r20/best.pt --backend torch --iters 200 --json bench.json
      edgeres bench r20.engine --batch 1,8 --duration 10
      edgeres bench resnet20.onnx --streams 4 --threads 8   # throughput mode
      edgeres bench resnet20.onnx --warmup-ms 0 --duration 0 --iters 20   # a quick look
    """
    from edgeres.atomic import check_writable
    from edgeres.bench import BenchSettings, benchmark, format_table
    from edgeres.bench.compare import fp32_reference, ratios_to_fp32
    from edgeres.records import BenchRecord, write_bench
    from edgeres.sysinfo import collect

    if duration < 0:
        raise UsageError(f"--duration must be 0 or more seconds, got {duration}")
    settings = BenchSettings(
        batches=parse_batch_sizes(batch),
        warmup=warmup,
        warmup_ms=warmup_ms,
        iters=iters,
        duration=duration or None,
        streams=streams,
        threads=threads,
        backend=backend,
        device=device,
        precision=precision,
    )
    from edgeres.commands.options import refuse_overwrite

    refuse_overwrite([("--json", json_out)], [("MODEL", m) for m in models])
    if json_out:
        check_writable(json_out)  # before the benchmark, not after it
    from edgeres.progress import announce

    results = []
    for model in models:
        announce(f"timing {model}: {_plan(settings)}")
        results.extend(benchmark(model, settings))
    several = len(dict.fromkeys(r.model for r in results)) > 1
    ratios = ratios_to_fp32(results) if several else None
    click.echo(format_table(results, ratios))
    reference = fp32_reference(results)
    if ratios is not None:
        click.echo(
            f"vs fp32: median latency over {reference}'s at the same batch (below 1: faster)"
            if reference is not None
            else "vs fp32: no fp32 model among these, no ratios"
        )
    for model, caveat in dict.fromkeys((r.model, r.caveat) for r in results if r.caveat):
        click.echo(f"caveat: {model}: {caveat}" + (" (* in vs fp32)" if ratios is not None else ""))
    for r in results:
        if r.ok and r.noisy:
            click.echo(
                f"warning: {r.model} at batch {r.batch} is too noisy to trust (cv {r.cv:.0%} > 10%); "
                "rerun on a quiet machine with fixed --threads, or time longer (--duration)",
                err=True,
            )
    if json_out:
        write_bench(
            json_out, BenchRecord.of(results, collect(), threads=threads, settings=settings.to_dict())
        )
    failed = [r for r in results if not r.ok]
    if failed:
        first = next((r.error for r in failed if r.error), "unknown error")
        what = (
            "no benchmark ran"
            if len(failed) == len(results)
            else f"{len(failed)} of {len(results)} rows failed"
        )
        raise EdgeresError(f"{what} ({first}); see the table above")


def _plan(settings: object) -> str:
    """What one model's timing will take, as the start line says it (batches, floors, streams)."""
    s: Any = settings
    floors = [f"{s.iters} runs"] if s.iters else []
    if s.duration:
        floors.append(f"{s.duration:g} s")
    streams = f", {s.streams} streams" if s.streams > 1 else ""
    batches = ",".join(str(b) for b in s.batches)
    return f"batch {batches}, at least {' and '.join(floors) or '1 run'} each after warm-up{streams}"
