"""Progress on a terminal, plain lines in a log: the one place edgeres makes a progress bar.

:func:`progress_bar` is tqdm, shown only when asked for *and* stderr is a terminal; in a log
file (not a TTY) there are no redraws. :func:`announce` writes the one line that says what
starts ("evaluating model.onnx on 500 images"), on a terminal and in a log alike, so a long
step is never silent.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["announce", "on_terminal", "progress_bar"]


def on_terminal() -> bool:
    """Whether stderr, where progress goes, is a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(iterable: Iterable[Any] | None = None, *, enabled: bool = True, **kwargs: Any) -> Any:
    """A tqdm bar on stderr, disabled unless ``enabled`` and stderr is a terminal.

    Keywords go to tqdm; ``leave`` defaults to False (the bar goes when its step is done).
    """
    from tqdm import tqdm

    kwargs.setdefault("leave", False)
    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=not (enabled and on_terminal()), **kwargs)


def announce(line: str) -> None:
    """One ``info:`` line on stderr saying what starts: before the first progress bar of a long step.

    The prefix is the one edgeres's log lines have, so stderr holds only ``info:``, ``warning:``
    and ``error:`` lines besides progress bars, and an error stays the one ``error:`` line.
    """
    print(line if line.startswith("info: ") else f"info: {line}", file=sys.stderr, flush=True)
