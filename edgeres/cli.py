"""The ``edgeres`` command: a thin click layer over the library API.

The group and the error handling live here; the commands live in
:mod:`edgeres.commands`, one module per stage, with shared options defined once
in :mod:`edgeres.commands.options`. Every
:class:`EdgeresError` becomes one ``error: ...`` line and a non-zero exit
status; ``--debug`` (or EDGERES_DEBUG=1) shows the traceback instead.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import sys
from typing import Any

import click

from edgeres.errors import EdgeresError
from edgeres.version import __version__

_DEBUG = {"on": os.environ.get("EDGERES_DEBUG", "") not in ("", "0")}


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Run `edgeres COMMAND --help` for a command's options and examples.",
)
@click.version_option(__version__, "--version", prog_name="edgeres")
@click.option("--debug", is_flag=True, help="Show the full traceback on errors.")
@click.option("-v", "--verbose", is_flag=True, help="Also print informational log lines.")
def cli(debug: bool, verbose: bool) -> None:
    """Take a ResNet classifier from PyTorch to a fast INT8 engine, and measure what changed.

    \b
    Examples:
      edgeres demo                        # train, quantize, measure, report: no download
      edgeres models                      # the ResNets of He et al. 2015
      edgeres info                        # versions, CPU features, GPUs
      edgeres doctor                      # check this install end to end, first thing on a device
      edgeres inspect model.pt            # what a model file holds
    """
    if debug:
        _DEBUG["on"] = True
    _setup_logging(logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING)


class _LevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def _setup_logging(level: int) -> None:
    """Library log lines (skipped images, exporter fallbacks) go to stderr as 'warning: ...'."""
    logger = logging.getLogger("edgeres")
    for handler in list(logger.handlers):
        if getattr(handler, "_edgeres_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LevelFormatter())
    handler._edgeres_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)


from edgeres.commands import register  # noqa: E402  (the group must exist first)

register(cli)


_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())

#: The file system refused a write: a full disk, a read-only folder or file system, a quota.
_MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT})


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _usage_line(exc: click.UsageError) -> str:
    path = exc.ctx.command_path if exc.ctx is not None else "edgeres"
    return f"{_one_line(exc.format_message())} (run '{path} --help')"


def _os_line(exc: OSError) -> str:
    """``cannot write 'x': No space left on device``: the path the system named, and why."""
    path = exc.filename if exc.filename is not None else None
    why = exc.strerror or str(exc)
    if path is None:
        return f"{why}; free some space or choose another output path"
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    hint = "free some space" if full else "check its permissions, or choose another path"
    return f"cannot use '{os.fsdecode(path)}': {why}; {hint}"


def _end_interrupted(in_process: bool) -> None:
    """End a command that Ctrl-C stopped, once its cleanup has run: by SIGINT, as Ctrl-C asks.

    A shell shows 130 either way, but only a process that died of SIGINT stops the shell
    script or loop that ran it. Python itself ends so on an uncaught KeyboardInterrupt, and
    under ``python -m`` it did so after ``sys.exit(130)`` too whenever the interrupt had landed
    in code run by ``exec`` (a dataclass being made): two exit statuses for one Ctrl-C.
    Called in-process (``main([...])``), the caller's process is left alive: exit 130.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if not in_process and os.name == "posix":
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    sys.exit(130)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn user errors into one line."""
    args = list(sys.argv[1:] if argv is None else argv)
    for flag in ("--debug", "--verbose"):  # accepted anywhere on the line, not only before the command
        if flag in args[1:]:
            args = [flag, *(a for a in args if a != flag)]
    try:
        cli.main(args=args, prog_name="edgeres", standalone_mode=False)
    except EdgeresError as exc:
        if _DEBUG["on"]:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        _end_interrupted(in_process=argv is not None)
    except click.UsageError as exc:  # unknown option, missing argument, bad choice: one line, exit 2
        if isinstance(exc, _NO_ARGS_IS_HELP):  # `edgeres` alone: the help, as asked
            exc.show()
            sys.exit(exc.exit_code)
        click.echo(f"error: {_usage_line(exc)}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {_one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        if _DEBUG["on"] or exc.errno not in _MACHINE_ERRNOS:
            raise
        click.echo(f"error: {_os_line(exc)}", err=True)
        sys.exit(1)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(0)
