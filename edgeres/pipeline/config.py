"""``edgeres.toml``: the pipeline's settings, one table per stage, checked key by key.

Every table and key must be known and every value of the right type; anything else is a
one-line :class:`~edgeres.errors.UsageError` naming the file and the key. The format is
documented, with a full example, in docs/commands/pipeline.md.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from edgeres.errors import EdgeresError, MissingDependencyError, UsageError
from edgeres.pipeline.settings import (
    BenchSettings,
    EngineSettings,
    EvalSettings,
    ExportSettings,
    Fp16Settings,
    ModelSettings,
    OpenVinoSettings,
    PipelineConfig,
    QuantizeSettings,
    ReportSettings,
)

__all__ = ["TABLES", "config_from_mapping", "load_config"]

#: Table name -> (settings class, the keys a file may set).
TABLES: dict[str, tuple[type, tuple[str, ...] | None]] = {
    "model": (ModelSettings, None),
    "export": (ExportSettings, None),
    "fp16": (Fp16Settings, None),
    "quantize": (QuantizeSettings, None),
    "engines": (EngineSettings, None),
    "eval": (EvalSettings, None),
    "bench": (BenchSettings, ("batches", "warmup", "warmup_ms", "iters", "duration", "threads")),
    "openvino": (OpenVinoSettings, None),
    "report": (ReportSettings, None),
}
_TOP_LEVEL = ("pipeline", *TABLES)


def load_config(path: str | os.PathLike[str] | None) -> PipelineConfig:
    """The settings in the TOML file at ``path``; the defaults when ``path`` is None."""
    if path is None:
        return PipelineConfig()
    path = Path(path)
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError as exc:
            raise MissingDependencyError(
                "reading a TOML config needs Python 3.11 or newer, or: pip install tomli"
            ) from exc
    if not path.is_file():
        raise UsageError(f"config file '{path}' does not exist")
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except UnicodeDecodeError:
        raise EdgeresError(f"{path} is not UTF-8 text; save the config file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise EdgeresError(f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise EdgeresError(f"cannot read config file '{path}': {exc.strerror or exc}") from None
    return config_from_mapping(data, str(path))


def config_from_mapping(data: Mapping[str, Any], where: str = "config") -> PipelineConfig:
    """Settings from parsed TOML (a mapping of tables); ``where`` names the file in errors."""
    unknown = [k for k in data if k not in _TOP_LEVEL]
    if unknown:
        raise UsageError(f"{where}: unknown table [{unknown[0]}]; known: {', '.join(_TOP_LEVEL)}")
    sections: dict[str, Any] = {}
    for name, (cls, allowed) in TABLES.items():
        table = data.get(name, {})
        if not isinstance(table, Mapping):
            raise UsageError(f"{where}: '{name}' must be a table ([{name}]), got {table!r}")
        sections[name] = _build(cls, table, allowed, name, where)
    pipeline = data.get("pipeline", {})
    if not isinstance(pipeline, Mapping):
        raise UsageError(f"{where}: 'pipeline' must be a table ([pipeline]), got {pipeline!r}")
    for key in pipeline:
        if key != "skip":
            raise UsageError(f"{where}: unknown key 'pipeline.{key}'; known: skip")
    skip = _coerce(pipeline.get("skip", []), tuple[str, ...], "pipeline.skip", where)
    try:
        return PipelineConfig(**sections, skip=skip)
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None


def _build(
    cls: type, table: Mapping[str, Any], allowed: tuple[str, ...] | None, name: str, where: str
) -> Any:
    hints = typing.get_type_hints(cls)
    known = allowed or tuple(f.name for f in dataclasses.fields(cls))
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise UsageError(f"{where}: unknown key '{name}.{key}'; known: {', '.join(known)}")
        values[key] = _coerce(value, hints[key], f"{name}.{key}", where)
    try:
        if cls is BenchSettings:  # over the pipeline's defaults, by the rule the flags follow too
            return PipelineConfig().override("bench", **values).bench
        return cls(**values)
    except UsageError as exc:
        raise UsageError(f"{where}: [{name}] {exc}") from None


def _describe(hint: Any) -> str:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args if a is not type(None))
    if origin is tuple:
        item = args[0]
        plural = _PLURALS.get(item) or f"values ({_describe(item)})"
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {plural}"
        return f"a list of {len(args)} {plural}"
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        hint, str(hint)
    )


_PLURALS = {int: "whole numbers", float: "numbers", str: "strings"}


def _coerce(value: Any, hint: Any, key: str, where: str) -> Any:
    """``value`` as the type ``hint`` names, or a one-line error naming ``key`` and the file."""
    ok, result = _convert(value, hint)
    if not ok:
        raise UsageError(f"{where}: {key} must be {_describe(hint)}, got {value!r}")
    return result


def _convert(value: Any, hint: Any) -> tuple[bool, Any]:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return value in args, value
    if origin in (Union, types.UnionType):
        for arg in args:
            if arg is type(None):
                continue
            ok, result = _convert(value, arg)
            if ok:
                return True, result
        return False, None
    if origin is tuple:
        if hint == tuple[int, int] and isinstance(value, int) and not isinstance(value, bool):
            return True, (value, value)  # input_size = 32
        if not isinstance(value, list):
            return False, None
        item_types = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(value):
            return False, None
        items = [_convert(v, t) for v, t in zip(value, item_types, strict=True)]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, None
    if hint is str:
        return isinstance(value, str), value
    return False, None
