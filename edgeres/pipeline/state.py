"""Which stages are up to date: OUT/pipeline.json, rewritten atomically after each stage.

Per stage it records the fingerprint of the stage's settings, of each input (a file's size
and modification time; a data folder's file list with sizes and times; the name of a
built-in data set) and the stage's outputs. A stage is up to date when its record exists,
its settings and inputs fingerprint the same, and every output exists and is not older
than any input file. A stage's record is dropped before it runs and written when it has
finished, so a stage stopped halfway runs again next time; what it had recorded as its
outputs stays listed (``leftovers``) until a run of it finishes, which deletes the ones it
no longer makes.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from edgeres.atomic import write_text_atomic

_D = TypeVar("_D")

__all__ = ["STATE_FILE", "PipelineState", "StagePlan", "data_fingerprint", "file_fingerprint"]

log = logging.getLogger(__name__)

STATE_FILE = "pipeline.json"
#: What pipeline.json states it is, as every result file does (see edgeres.records).
KIND = "edgeres.pipeline"
_VERSION = 1


@dataclass(frozen=True)
class StagePlan:
    """What a stage will read and write, known before it runs.

    ``outputs`` may be a subset of what the stage writes (the report's files are known
    only afterwards); the recorded outputs are checked too.
    """

    settings: str
    files: tuple[Path, ...] = ()
    data: tuple[str, ...] = ()
    outputs: tuple[Path, ...] = ()
    #: What the stage's plan found for its run function (not fingerprinted): a frozen dataclass
    #: of the stage's own, read back with :meth:`details`.
    extra: object = None

    def details(self, kind: type[_D]) -> _D:
        """``extra``, checked to be the stage's plan type ``kind``."""
        if not isinstance(self.extra, kind):
            raise TypeError(f"this plan holds {type(self.extra).__name__}, not {kind.__name__}")
        return self.extra


def file_fingerprint(path: Path) -> dict[str, int] | None:
    """Size and modification time (ns) of a file, or None when it is missing."""
    try:
        st = path.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def data_fingerprint(spec: str) -> dict[str, Any]:
    """A data source named on the command line: its files' sizes and times, or just its name.

    A folder is walked, following symbolic links (names, sizes and times of every file below
    it, hashed), so an added, removed or changed image is noticed; a ``.txt`` manifest is
    fingerprinted with the images it lists (see :mod:`edgeres.data.manifest`); ``digits`` and
    other names that are not paths are fingerprinted by name.
    """
    path = Path(spec)
    if path.is_file():
        fp: dict[str, Any] = {"spec": spec, **(file_fingerprint(path) or {})}
        if path.suffix.lower() == ".txt":
            fp.update(_listed_fingerprint(path))
        return fp
    if not path.is_dir():
        return {"spec": spec}
    h = hashlib.sha256()
    count = 0
    for root, dirs, files in os.walk(path, followlinks=True):
        real = os.path.realpath(root)
        # A link to a folder above (a loop) is not followed; every other link is.
        dirs[:] = sorted(d for d in dirs if not _contains(os.path.realpath(os.path.join(root, d)), real))
        for name in sorted(files):
            full = Path(root) / name
            fp_file = file_fingerprint(full)
            if fp_file is None:
                continue
            h.update(f"{full.relative_to(path)}\0{fp_file['size']}\0{fp_file['mtime_ns']}\n".encode())
            count += 1
    return {"spec": spec, "files": count, "sha256": h.hexdigest()}


def _contains(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _listed_fingerprint(manifest: Path) -> dict[str, Any]:
    """The images a manifest lists, by path, size and time; nothing when it cannot be read.

    An unreadable manifest is left to the stage that reads it, which says what is wrong.
    """
    from edgeres.data import read_manifest

    try:
        source = read_manifest(manifest, verify=False)
        # read_manifest checked every listed file exists; one gone since is left to the stage too
        listed = [(file.resolve(), file.stat()) for file in source.paths]
    except Exception:  # not a manifest, or a listed file missing: the stage reports it
        log.debug("manifest %s not read for its fingerprint", manifest, exc_info=True)
        return {}
    h = hashlib.sha256()
    for file, st in listed:
        h.update(f"{file}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"files": len(listed), "sha256": h.hexdigest()}


class PipelineState:
    """The records of OUT/pipeline.json, by stage name."""

    def __init__(
        self,
        out_dir: Path,
        stages: dict[str, dict[str, Any]] | None = None,
        leftovers: dict[str, list[str]] | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.stages: dict[str, dict[str, Any]] = stages or {}
        #: Per stage, files an unfinished run may have left: deleted when a run of it finishes.
        self.leftovers: dict[str, list[str]] = leftovers or {}
        self._data: dict[str, dict[str, Any]] = {}

    @property
    def path(self) -> Path:
        return self.out_dir / STATE_FILE

    @classmethod
    def load(cls, out_dir: Path) -> PipelineState:
        """The recorded state; an unreadable or foreign file is ignored (every stage reruns)."""
        path = out_dir / STATE_FILE
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return cls(out_dir)
        except (OSError, ValueError) as exc:
            log.warning("ignoring %s (%s): every stage runs again", path, exc)
            return cls(out_dir)
        stages = raw.get("stages") if _is_state(raw) else None
        if not isinstance(stages, dict):
            log.warning("ignoring %s (not a state file of this edgeres): every stage runs again", path)
            return cls(out_dir)
        raw_left = raw.get("leftovers")
        leftovers = {
            k: [str(x) for x in v]
            for k, v in (raw_left.items() if isinstance(raw_left, dict) else ())
            if isinstance(v, list)
        }
        return cls(out_dir, {k: v for k, v in stages.items() if isinstance(v, dict)}, leftovers)

    def save(self) -> None:
        data: dict[str, Any] = {"kind": KIND, "schema": _VERSION, "stages": self.stages}
        if self.leftovers:
            data["leftovers"] = self.leftovers
        write_text_atomic(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def key(self, path: Path) -> str:
        """How a file is named in the state: relative to OUT inside it, else absolute."""
        resolved = path.resolve()
        try:
            return resolved.relative_to(self.out_dir.resolve()).as_posix()
        except ValueError:
            return str(resolved)

    def resolve(self, key: str) -> Path:
        """The file a key names (an absolute key replaces OUT when joined)."""
        return self.out_dir / key

    def inputs(self, plan: StagePlan) -> dict[str, Any]:
        """The fingerprints of ``plan``'s input files and data, keyed by name."""
        fps: dict[str, Any] = {self.key(p): file_fingerprint(p) for p in plan.files}
        for spec in plan.data:
            if spec not in self._data:
                self._data[spec] = data_fingerprint(spec)
            fps[f"data:{spec}"] = self._data[spec]
        return fps

    def outputs(self, name: str) -> tuple[Path, ...]:
        record = self.stages.get(name) or {}
        return tuple(self.resolve(k) for k in record.get("outputs", []))

    def info(self, name: str) -> dict[str, Any]:
        record = self.stages.get(name) or {}
        info = record.get("info")
        return info if isinstance(info, dict) else {}

    def stale(self, name: str, plan: StagePlan) -> str | None:
        """Why stage ``name`` must run, or None when it is up to date."""
        record = self.stages.get(name)
        if record is None:
            return "no finished run recorded"
        if record.get("settings") != plan.settings:
            return "settings changed"
        now = self.inputs(plan)
        before = record.get("inputs", {})
        changed = sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
        if changed:
            return f"input changed: {_short(changed[0])}"
        recorded = {self.key(p) for p in self.outputs(name)}
        missing = [self.key(p) for p in plan.outputs if self.key(p) not in recorded]
        if missing:
            return f"new output: {missing[0]}"
        newest_input = max((fp["mtime_ns"] for fp in now.values() if fp and "mtime_ns" in fp), default=0)
        for path in self.outputs(name):
            fp = file_fingerprint(path)
            if fp is None:
                return f"output missing: {self.key(path)}"
            if fp["mtime_ns"] < newest_input:
                return f"output older than its inputs: {self.key(path)}"
        return None

    def record(
        self,
        name: str,
        plan: StagePlan,
        inputs: Mapping[str, Any],
        outputs: Iterable[Path],
        seconds: float,
        info: Mapping[str, Any],
    ) -> None:
        """Record a finished stage; ``inputs`` are the fingerprints taken before it ran."""
        self.stages[name] = {
            "settings": plan.settings,
            "inputs": dict(inputs),
            "outputs": [self.key(p) for p in outputs],
            "seconds": round(seconds, 3),
            "finished": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "info": dict(info),
        }
        self.leftovers.pop(name, None)
        self.save()

    def begin(self, name: str) -> tuple[Path, ...]:
        """Before stage ``name`` runs: drop its record, keeping its outputs listed as leftovers.

        Returns every file an earlier run of it may have left (recorded or left over).
        """
        keys = list(dict.fromkeys([*self.leftovers.get(name, []), *self._output_keys(name)]))
        had = self.stages.pop(name, None) is not None
        if keys:
            self.leftovers[name] = keys
        if had or keys:  # the file is rewritten only when something changed
            self.save()
        return tuple(self.resolve(k) for k in keys)

    def unfinished(self, name: str, outputs: Iterable[Path]) -> None:
        """Stage ``name`` wrote ``outputs`` but is not recorded as finished (it runs again next time)."""
        keys = [self.key(p) for p in outputs]
        if keys:
            self.leftovers[name] = keys
        else:
            self.leftovers.pop(name, None)
        self.save()

    def discard(self, name: str) -> tuple[Path, ...]:
        """Drop stage ``name`` altogether; returns what it had written (recorded or left over)."""
        keys = list(dict.fromkeys([*self.leftovers.pop(name, []), *self._output_keys(name)]))
        had = self.stages.pop(name, None) is not None
        if keys or had:
            self.save()
        return tuple(self.resolve(k) for k in keys)

    def _output_keys(self, name: str) -> list[str]:
        record = self.stages.get(name) or {}
        outputs = record.get("outputs")
        return [str(k) for k in outputs] if isinstance(outputs, list) else []

    def forget(self, names: Sequence[str]) -> None:
        """Drop the records of ``names``; the file is rewritten only when something changed."""
        if any(n in self.stages for n in names):
            for n in names:
                self.stages.pop(n, None)
            self.save()


def _is_state(raw: object) -> bool:
    """A state file of this edgeres; or of the one before kind and schema (``"version": 1``)."""
    if not isinstance(raw, dict):
        return False
    if "kind" in raw:
        return raw["kind"] == KIND and raw.get("schema") == _VERSION
    return raw.get("version") == _VERSION


def _short(key: str) -> str:
    return key.removeprefix("data:") if key.startswith("data:") else Path(key).name
