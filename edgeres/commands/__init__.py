"""The CLI's commands, one module per stage; ``edgeres.cli`` adds them to the group.

Each module imports only click at the top, so ``edgeres --help`` starts fast and
works without the heavy or optional packages.
"""

from __future__ import annotations

import click

from edgeres.commands import (
    bench,
    demo,
    doctor,
    engine,
    evaluate,
    export,
    models,
    pipeline,
    quantize,
    report,
    train,
)

COMMANDS: tuple[click.Command, ...] = (
    models.models_cmd,
    models.info_cmd,
    models.create_cmd,
    models.inspect_cmd,
    export.export_cmd,
    export.calib_set_cmd,
    quantize.quantize_cmd,
    evaluate.eval_cmd,
    engine.build_engine_cmd,
    engine.convert_fp16_cmd,
    bench.bench_cmd,
    report.report_cmd,
    pipeline.pipeline_cmd,
    train.train_cmd,
    train.experiment_group,
    demo.demo_cmd,
    doctor.doctor_cmd,
)


def register(group: click.Group) -> None:
    for command in COMMANDS:
        group.add_command(command)
