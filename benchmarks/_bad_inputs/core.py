"""A case, the registry of case builders, and the runner that judges one run of `python -m edgeres`."""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Created by the hostile payloads (relative to the case folder, the command's working directory).
MARKER = "pwned.marker"
MEMORY_CAP = 4 << 30
TIMEOUT = 120.0
#: Only the folder commands are told to write in; everything else in a case folder is "outside".
OUT = "out"
INPUTS = "in"


class Skip(Exception):
    """Raised by a case's setup when the case cannot run here (the reason is reported)."""


@dataclass
class Proc:
    """What one command did."""

    argv: list[str]
    rc: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False


@dataclass
class Ctx:
    """What a case's setup, runner and check see."""

    case_dir: Path
    fixtures: Path
    proc: Proc | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> Path:
        return self.case_dir / INPUTS

    @property
    def out(self) -> Path:
        return self.case_dir / OUT


Setup = Callable[[Ctx], object]
Check = Callable[[Ctx], list[str]]
Runner = Callable[["Case", Ctx], Proc]


@dataclass
class Case:
    """One hostile or bad input and what edgeres must do with it."""

    name: str
    group: str
    args: list[str]
    #: Allowed exit statuses: 0 = worked, 1 = the input or the machine failed, 2 = called wrongly.
    expect: frozenset[int]
    why: str = ""
    setup: Setup | None = None
    check: Check | None = None
    run: Runner | None = None
    #: Paths (relative to the case folder) outside out/ that the command may change.
    may_change: tuple[str, ...] = ()
    file_size_limit: int | None = None
    timeout: float = TIMEOUT


REGISTRY: list[Callable[[], list[Case]]] = []


def cases(builder: Callable[[], list[Case]]) -> Callable[[], list[Case]]:
    """Register a function that returns a group of cases."""
    REGISTRY.append(builder)
    return builder


def all_cases() -> list[Case]:
    found = [c for build in REGISTRY for c in build()]
    names = [c.name for c in found]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SystemExit(f"duplicate case names: {sorted(dupes)}")
    return found


def expect(*codes: int) -> frozenset[int]:
    return frozenset(codes)


# ---------------------------------------------------------------- running


def _limits(file_size: int | None) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
        if file_size is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG, like a full disk
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        os.umask(0o022)
        os.setsid()

    return apply


def command_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="200")
    env.update(OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    return env


def edgeres_argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "edgeres", *args]


def start(ctx: Ctx, args: list[str], file_size: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        edgeres_argv(args),
        cwd=ctx.case_dir,
        env=command_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        preexec_fn=_limits(file_size),
    )


def finish(p: subprocess.Popen[str], t0: float, timeout: float) -> Proc:
    try:
        out, err = p.communicate(timeout=max(1.0, timeout - (time.monotonic() - t0)))
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        timed_out = True
    argv = [str(a) for a in p.args] if isinstance(p.args, list) else [str(p.args)]
    return Proc(argv, p.returncode, out, err, time.monotonic() - t0, timed_out)


def run_edgeres(ctx: Ctx, args: list[str], *, timeout: float = TIMEOUT, file_size: int | None = None) -> Proc:
    t0 = time.monotonic()
    return finish(start(ctx, args, file_size), t0, timeout)


# ---------------------------------------------------------------- judging

_PROGRESS = re.compile(r"\d+%\||\|\s*\d+/\d+|\d+(\.\d+)?(it|batch|img)/s")


def error_lines(stderr: str) -> list[str]:
    """stderr lines that are neither blank, 'warning:' / 'info:' lines (the pipeline's stage lines)
    nor progress-bar redraws."""
    lines = [s.strip() for s in re.split(r"[\r\n]", stderr)]
    return [s for s in lines if s and not s.startswith(("warning:", "info:")) and not _PROGRESS.search(s)]


def one_line_error(stderr: str) -> bool:
    lines = error_lines(stderr)
    return len(lines) == 1 and lines[0].startswith("error: ")


def the_error(proc: Proc) -> str:
    lines = [s for s in error_lines(proc.stderr) if s.startswith("error:")]
    return lines[0] if lines else ""


def _walk(root: Path, skip: str | None = None) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root)
        if skip is not None and rel == Path("."):
            dirnames[:] = [d for d in dirnames if d != skip]
        for name in [*filenames, *[d for d in dirnames if (Path(dirpath) / d).is_symlink()]]:
            yield Path(dirpath) / name


def snapshot(root: Path, skip: str | None = OUT) -> dict[str, str]:
    """Path -> fingerprint (content hash, link target, mode) of everything under root but ``skip``."""
    snap: dict[str, str] = {}
    for path in _walk(root, skip):
        rel = os.fsdecode(path.relative_to(root))
        try:
            st = path.lstat()
            if path.is_symlink():
                snap[rel] = f"link:{os.readlink(path)}"
            elif path.is_file():
                h = hashlib.sha256()
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                snap[rel] = f"file:{h.hexdigest()}:{st.st_mode & 0o7777:o}"
            else:
                snap[rel] = f"other:{st.st_mode:o}"
        except OSError as exc:
            snap[rel] = f"unreadable:{exc.errno}"
    return snap


def _broken(path: Path) -> str | None:
    """Why a new file looks half-written, or None."""
    name = path.name
    try:
        size = path.lstat().st_size
    except OSError:
        return None
    if path.is_symlink() or not path.is_file():
        return None
    if name == ".edgeres.lock":  # the pipeline's lock file: it stays, by design (docs/security.md)
        return None
    if ".tmp" in name or (name.startswith(".") and name.count(".") >= 2) or name.endswith(".partial"):
        return "temporary file"
    if size == 0:
        return "0-byte file"
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif suffix in (".pt", ".pth", ".pt2"):
            with zipfile.ZipFile(path) as z:
                if z.testzip() is not None:
                    return "damaged zip entry"
        elif suffix == ".onnx":
            import onnx

            onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        return f"unreadable {suffix} ({type(exc).__name__})"
    return None


@dataclass
class Result:
    name: str
    group: str
    command: str
    expect: list[int]
    rc: int | None
    status_ok: bool
    one_line: bool | None
    error: str
    traceback: bool
    timed_out: bool
    half_written: list[str]
    changed_outside: list[str]
    overwritten: list[str]
    code_executed: bool
    problems: list[str]
    seconds: float
    skipped: str | None = None
    why: str = ""
    stderr_tail: str = ""

    @property
    def passed(self) -> bool:
        return self.skipped is None and not self.problems


def judge(case: Case, ctx: Ctx, before: dict[str, str], before_all: set[str]) -> Result:
    proc = ctx.proc
    assert proc is not None
    after = snapshot(ctx.case_dir)
    marker = any(p.name == MARKER for p in _walk(ctx.case_dir))
    ignored = {MARKER, *case.may_change}
    changed = sorted(
        k for k in before.keys() | after.keys() if before.get(k) != after.get(k) and k not in ignored
    )
    overwritten = [k for k in changed if k in before and not before[k].startswith("link:")]
    half = []
    for path in _walk(ctx.case_dir):
        rel = os.fsdecode(path.relative_to(ctx.case_dir))
        if rel not in before_all and Path(rel).name != MARKER and (why := _broken(path)):
            half.append(f"{rel} ({why})")
    text = proc.stdout + proc.stderr
    tb = "Traceback (most recent call last)" in text
    one = one_line_error(proc.stderr) if proc.rc not in (0, None) else None
    problems: list[str] = []
    if proc.timed_out:
        problems.append(f"timed out after {proc.seconds:.0f} s")
    elif proc.rc is not None and proc.rc < 0:
        problems.append(f"killed by signal {-proc.rc}")
    elif proc.rc not in case.expect:
        problems.append(f"exit {proc.rc}, expected {'/'.join(map(str, sorted(case.expect)))}")
    if one is False:
        problems.append("stderr is not one 'error:' line")
    if tb:
        problems.append("traceback")
    if tb and "MemoryError" in text:
        problems.append("MemoryError")
    if half:
        problems.append("half-written files")
    if changed:
        problems.append("files changed outside out/")
    if overwritten:
        problems.append("inputs overwritten")
    if marker:
        problems.append("hostile code executed")
    problems += ctx.notes
    if case.check is not None:
        try:
            problems += case.check(ctx)
        except Exception as exc:  # a check that cannot read the outputs is itself a failure
            problems.append(f"check failed: {type(exc).__name__}: {exc}")
    return Result(
        name=case.name,
        group=case.group,
        command=" ".join(["edgeres", *proc.argv[3:]])
        if proc.argv[1:3] == ["-m", "edgeres"]
        else " ".join(proc.argv),
        expect=sorted(case.expect),
        rc=proc.rc,
        status_ok=proc.rc in case.expect and not proc.timed_out,
        one_line=one,
        error=the_error(proc),
        traceback=tb,
        timed_out=proc.timed_out,
        half_written=half,
        changed_outside=changed,
        overwritten=overwritten,
        code_executed=marker,
        problems=list(dict.fromkeys(problems)),
        seconds=round(proc.seconds, 2),
        why=case.why,
        stderr_tail=proc.stderr[-1500:],
    )


def run_case(case: Case, fixtures: Path, work: Path) -> Result:
    case_dir = work / re.sub(r"[^A-Za-z0-9_.-]", "_", case.name)
    case_dir.mkdir(parents=True)
    ctx = Ctx(case_dir=case_dir, fixtures=fixtures)
    shutil.copytree(fixtures, ctx.inputs, symlinks=True)
    ctx.out.mkdir()
    try:
        try:
            if case.setup is not None:
                case.setup(ctx)
        except Skip as exc:
            return _skipped(case, str(exc))
        except Exception as exc:  # the harness could not build this case's input: say so, run the rest
            return _skipped(case, f"setup failed: {type(exc).__name__}: {exc}")
        before = snapshot(case_dir)
        before_all = set(snapshot(case_dir, skip=None))
        if case.run is not None:
            ctx.proc = case.run(case, ctx)
        else:
            ctx.proc = run_edgeres(ctx, case.args, timeout=case.timeout, file_size=case.file_size_limit)
        return judge(case, ctx, before, before_all)
    finally:
        _cleanup(case_dir)


def _skipped(case: Case, reason: str) -> Result:
    return Result(
        case.name,
        case.group,
        " ".join(["edgeres", *case.args]),
        sorted(case.expect),
        None,
        False,
        None,
        "",
        False,
        False,
        [],
        [],
        [],
        False,
        [],
        0.0,
        skipped=reason,
        why=case.why,
    )


def _cleanup(case_dir: Path) -> None:
    for path in sorted(_mounts_under(case_dir), key=len, reverse=True):
        subprocess.run(["umount", "-l", path], check=False, capture_output=True)
    for dirpath, dirnames, _ in os.walk(case_dir):
        for d in dirnames:
            p = Path(dirpath) / d
            if not p.is_symlink():
                os.chmod(p, 0o755)
    shutil.rmtree(case_dir, ignore_errors=True)


def _mounts_under(folder: Path) -> list[str]:
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = str(folder.resolve())
    return [f.split()[1] for f in lines if len(f.split()) > 1 and f.split()[1].startswith(prefix)]


def mount_tmpfs(target: Path, size: str, *, read_only: bool = False) -> None:
    """Mount a small tmpfs at target (root only); Skip when this machine does not allow it."""
    if os.geteuid() != 0:
        raise Skip("needs root to mount a tmpfs")
    target.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)], capture_output=True
    )
    if r.returncode != 0:
        raise Skip(f"cannot mount a tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    if read_only:
        r = subprocess.run(["mount", "-o", "remount,ro", str(target)], capture_output=True)
        if r.returncode != 0:
            raise Skip(f"cannot remount read-only: {r.stderr.decode(errors='replace').strip()}")


def load_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))
