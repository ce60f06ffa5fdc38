"""Latency on this device: bench."""

from __future__ import annotations

import click

from edgeres.errors import EdgeresError, UsageError
from edgeres.runners.registry import auto_help, backend_choices


def parse_batches(text: str) -> tuple[int, ...]:
    """``"1,8,32"`` -> ``(1, 8, 32)``; a clear one-line error for anything else."""
    parts = [p.strip() for p in text.split(",")]
    try:
        batches = tuple(int(p) for p in parts)
    except ValueError:
        batches = ()
    if not batches or any(b < 1 for b in batches):
        raise UsageError(f"--batch takes positive integers separated by commas, like 1,8,32; got '{text}'")
    return tuple(dict.fromkeys(batches))  # drop repeats, keep the order


@click.command("bench")
@click.argument("models", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--backend",
    type=click.Choice(backend_choices()),
    default="auto",
    show_default=True,
    help=auto_help(),
)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (cuda:N); engines run on cuda.")
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
@click.option("--warmup", type=int, default=10, show_default=True, help="Untimed runs before timing.")
@click.option("--iters", type=int, help="Timed runs per batch size [default: 100].")
@click.option("--duration", type=float, help="Time each batch size for this many seconds instead of --iters.")
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
    iters: int | None,
    duration: float | None,
    threads: int | None,
    json_out: str | None,
) -> None:
    """Latency and throughput of each MODEL at each batch size, on this machine.

    Each timed run is one inference from a host array to host logits
    (end-to-end, copies included); for TensorRT engines the GPU compute time is
    shown too. A model or batch size that cannot run becomes a row with its
    error. Rows whose times vary by more than 10% (std/mean) get a warning:
    rerun on a quieter machine. The exit status is 1 when any row failed.

    \b
    Examples:
      edgeres bench resnet20.onnx
      edgeres bench resnet20.onnx resnet20.int8.onnx --batch 1,8,32 --threads 4
      edgeres bench runs/r20/best.pt --backend torch --iters 200 --json bench.json
      edgeres bench r20.engine --batch 1,8 --duration 10
    """
    from edgeres.atomic import check_writable
    from edgeres.bench import BenchSettings, benchmark, format_table
    from edgeres.records import BenchRecord, write_bench
    from edgeres.sysinfo import collect

    if iters is not None and duration is not None:
        raise UsageError("give either --iters or --duration, not both")
    settings = BenchSettings(
        batches=parse_batches(batch),
        warmup=warmup,
        iters=iters if iters is not None or duration is not None else 100,
        duration=duration,
        threads=threads,
        backend=backend,
        device=device,
        precision=precision,
    )
    from edgeres.commands.options import refuse_overwrite

    refuse_overwrite([("--json", json_out)], [("MODEL", m) for m in models])
    if json_out:
        check_writable(json_out)  # before the benchmark, not after it
    results = [r for model in models for r in benchmark(model, settings)]
    click.echo(format_table(results))
    for r in results:
        if r.ok and r.noisy:
            click.echo(
                f"warning: {r.model} at batch {r.batch} is too noisy to trust (cv {r.cv:.0%} > 10%); "
                "rerun on a quiet machine with fixed --threads, or use more --iters",
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
