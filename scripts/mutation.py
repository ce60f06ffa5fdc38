#!/usr/bin/env python3
"""Mutation testing of the quantization math and the pipeline's up-to-date rule, with mutmut.

mutmut changes one small thing in the code at a time (a constant, a comparison, an operator,
a dropped argument) and runs the tests that reach it; a mutant that passes every test is a
change the suite cannot see. The modules and the tests are set in pyproject.toml
([tool.mutmut]). It is slow (minutes to hours), so it is not part of CI.

    python scripts/mutation.py                          # every module in [tool.mutmut] only_mutate
    python scripts/mutation.py --only quantize/methods  # one module (or several, comma-separated)
    python scripts/mutation.py --show-survivors         # and the diff of every mutant that lived

It runs in a copy of the tracked files (``--workdir``, default ``.mutation/``) so the work tree
is never changed, prints a table of killed and surviving mutants per module, and writes it as
JSON (``--out``, default ``.mutation/score.json``).

A survivor that no input can tell apart from the original (an equivalent mutant) is explained
once in ``scripts/mutation_equivalents.toml``: the mutant's name, the changed line as mutmut
shows it, and why. The table counts those apart ("equivalent") and lists every survivor that is
neither killed nor explained; a verdict whose line no longer matches the mutant (the code moved)
is reported as stale.

mutmut runs, for each mutant, only the tests its coverage pass saw reach the mutated function.
A module-scoped fixture (a model quantized once for a whole test file) is attributed to the
first test that built it, so the file's other tests never run against the mutant and a change
they catch is reported as surviving. ``--recheck`` runs every survivor again against all the
``--tests`` (mutmut's own ``MUTANT_UNDER_TEST`` switch) and counts those that fail as killed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
#: mutmut's result names, and whether the mutant was caught.
CAUGHT = {"killed", "timeout", "caught by type check"}
NOT_RUN = {"skipped", "not checked", "no tests"}
VERDICTS = ROOT / "scripts" / "mutation_equivalents.toml"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="", help="modules under edgeres/, e.g. quantize/methods")
    ap.add_argument("--workdir", type=Path, default=ROOT / ".mutation")
    ap.add_argument("--out", type=Path, default=None, help="JSON of the scores (default WORKDIR/score.json)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--show-survivors", action="store_true", help="print the diff of each surviving mutant")
    ap.add_argument("--keep", action="store_true", help="reuse WORKDIR's earlier results (resume)")
    ap.add_argument(
        "--recheck", action="store_true", help="run each survivor against all --tests (see the docstring)"
    )
    ap.add_argument(
        "--tests", default="", help="comma-separated test paths that may kill mutants (default: pyproject's)"
    )
    args = ap.parse_args()
    if shutil.which("mutmut") is None:
        print("error: mutmut is not installed; pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    work = args.workdir.resolve()
    modules = _modules(args.only)
    _copy_tree(work, keep=args.keep)
    _write_config(work, modules, [t.strip() for t in args.tests.split(",") if t.strip()])
    patterns = [_mutant_prefix(m) + "*" for m in modules]
    run = subprocess.run(["mutmut", "run", "--max-children", str(args.jobs), *patterns], cwd=work)
    if run.returncode not in (0, 1):  # mutmut exits 1 when a mutant survived
        print(f"error: mutmut run failed with exit status {run.returncode}", file=sys.stderr)
        return 1
    results = _results(work)
    if args.recheck:
        results = _recheck(work, results, _selected_tests(work), args.jobs)
    equivalent, stale = _explained(work, results, _load_verdicts())
    table = _table(results, modules, equivalent)
    print(_format(table))
    unexplained = sorted(n for n, s in results.items() if _survived(s) and n not in equivalent)
    for name in stale:
        print(f"stale verdict (the mutant's change is not the one explained): {name}")
    if unexplained:
        print(f"{len(unexplained)} survivors neither killed nor explained:")
        for name in unexplained:
            print(f"  {name}")
    out = args.out or work / "score.json"
    payload = {"modules": table, "mutants": results, "unexplained": unexplained, "stale": stale}
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {out}")
    if args.show_survivors:
        for name in unexplained:
            subprocess.run(["mutmut", "show", name], cwd=work)
    return 0


def _selected_tests(work: Path) -> list[str]:
    config = tomllib.loads((work / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["pytest_add_cli_args_test_selection"])


def _recheck(work: Path, results: dict[str, str], tests: list[str], jobs: int) -> dict[str, str]:
    """Each survivor run against every test in ``tests``; those a test fails on become killed.

    ``jobs`` survivors run at a time, each in its own pytest process.
    """
    out = dict(results)
    mutants = work / "mutants"
    survivors = [name for name, status in sorted(results.items()) if _survived(status)]

    def run(name: str) -> tuple[str, int]:
        env = {**os.environ, "MUTANT_UNDER_TEST": name, "PYTHONPATH": str(mutants)}
        # A folder of its own: a mutant that writes to a relative path (a file named "None")
        # must not leave it for the next mutant to read.
        with tempfile.TemporaryDirectory(prefix="edgeres-mutant-") as cwd:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-x",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    "--rootdir",
                    str(mutants),
                    "-c",
                    str(mutants / "pyproject.toml"),
                    *[str(mutants / t) for t in tests],
                ],
                cwd=cwd,
                env=env,
                capture_output=True,
                timeout=1800,
            )
        return name, done.returncode

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for i, (name, code) in enumerate(pool.map(run, survivors), 1):
            if code == 1:  # a test failed (2-5: pytest itself could not run)
                out[name] = "killed"
            verdict = "killed by a test mutmut did not select" if code == 1 else "survives"
            print(f"recheck {i}/{len(survivors)}: {name} {verdict}", flush=True)
    return out


def _survived(status: str) -> bool:
    return status not in CAUGHT and status not in NOT_RUN


def _load_verdicts() -> dict[str, dict[str, str]]:
    """``scripts/mutation_equivalents.toml``: mutant name -> {change, why}."""
    if not VERDICTS.is_file():
        return {}
    entries = tomllib.loads(VERDICTS.read_text()).get("equivalent", [])
    return {e["mutant"]: {"change": e["change"], "why": e["why"]} for e in entries}


def _explained(
    work: Path, results: dict[str, str], verdicts: dict[str, dict[str, str]]
) -> tuple[set[str], list[str]]:
    """The survivors explained as equivalent, and the verdicts whose changed line no longer matches."""
    equivalent: set[str] = set()
    stale: list[str] = []
    for name, verdict in sorted(verdicts.items()):
        if name not in results or not _survived(results[name]):
            continue
        if _changed_line(work, name, verdict["change"]):
            equivalent.add(name)
        else:
            stale.append(name)
    return equivalent, stale


def _changed_line(work: Path, name: str, change: str) -> bool:
    """Whether mutmut's diff of ``name`` adds a line that reads ``change`` (whitespace aside).

    A mutant that only deletes a line (an argument dropped from a call split over lines) is
    named by that line with a leading ``-``.
    """
    diff = subprocess.run(["mutmut", "show", name], cwd=work, capture_output=True, text=True).stdout
    sign, text = ("-", change[1:]) if change.startswith("-") else ("+", change)
    want = " ".join(text.split())
    return any(
        line.startswith(sign) and not line.startswith(sign * 3) and " ".join(line[1:].split()) == want
        for line in diff.splitlines()
    )


def _modules(only: str) -> list[str]:
    """The files to mutate: [tool.mutmut] only_mutate, or those of --only among them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    listed: list[str] = list(config["only_mutate"])
    if not only:
        return listed
    wanted = [w.strip().removeprefix("edgeres/").removesuffix(".py") for w in only.split(",") if w.strip()]
    chosen = [m for m in listed if any(m == f"edgeres/{w}.py" for w in wanted)]
    unknown = [w for w in wanted if f"edgeres/{w}.py" not in listed]
    if unknown:
        raise SystemExit(f"error: not in [tool.mutmut] only_mutate: {', '.join(unknown)}")
    return chosen


def _copy_tree(work: Path, *, keep: bool) -> None:
    """The tracked files (and uncommitted changes to them) into ``work``; mutmut writes mutants/ there."""
    if work.exists() and not keep:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = Path(os.fsdecode(raw))
        if rel.parts[0] in (".mutation", "mutants") or not (ROOT / rel).is_file():
            continue
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)


def _write_config(work: Path, modules: list[str], tests: list[str]) -> None:
    """The copy's pyproject.toml mutates only ``modules`` (and runs only ``tests``, when given)."""
    path = work / "pyproject.toml"
    text = path.read_text()
    listed = ", ".join(json.dumps(m) for m in modules)
    text, n = re.subn(r"only_mutate = \[.*?\]", f"only_mutate = [{listed}]", text, count=1, flags=re.S)
    if n != 1:
        raise SystemExit("error: pyproject.toml has no [tool.mutmut] only_mutate list")
    if tests:
        chosen = ", ".join(json.dumps(t) for t in tests)
        text = re.sub(
            r"pytest_add_cli_args_test_selection = \[.*?\]",
            f"pytest_add_cli_args_test_selection = [{chosen}]",
            text,
            count=1,
            flags=re.S,
        )
    path.write_text(text)


def _mutant_prefix(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".") + "."


def _results(work: Path) -> dict[str, str]:
    out = subprocess.run(
        ["mutmut", "results", "--all", "true"], cwd=work, check=True, capture_output=True, text=True
    ).stdout
    found = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and name:
            found[name] = status.strip()
    return found


def _table(results: dict[str, str], modules: list[str], equivalent: set[str]) -> list[dict[str, object]]:
    rows = []
    for module in modules:
        prefix = _mutant_prefix(module)
        counts = Counter(s for n, s in results.items() if n.startswith(prefix))
        caught = sum(v for k, v in counts.items() if k in CAUGHT)
        not_run = sum(v for k, v in counts.items() if k in NOT_RUN)
        total = sum(counts.values())
        tested = total - not_run
        explained = sum(1 for n in equivalent if n.startswith(prefix))
        rows.append(
            {
                "module": module,
                "mutants": total,
                "killed": caught,
                "of_which_timeout": counts.get("timeout", 0),
                "survived": tested - caught,
                "equivalent": explained,
                "not_run": not_run,
                "score": round(100 * caught / tested, 1) if tested else None,
                "score_without_equivalent": (
                    round(100 * caught / (tested - explained), 1) if tested - explained else None
                ),
                "statuses": dict(counts),
            }
        )
    return rows


def _format(table: list[dict[str, object]]) -> str:
    lines = [
        "| module | mutants | killed | of which timeout | survived | of which equivalent | not run "
        "| score | score, equivalents aside |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def pct(v: object) -> str:
        return "-" if v is None else f"{v}%"

    for r in table:
        lines.append(
            f"| {r['module']} | {r['mutants']} | {r['killed']} | {r['of_which_timeout']} | {r['survived']} "
            f"| {r['equivalent']} | {r['not_run']} | {pct(r['score'])} "
            f"| {pct(r['score_without_equivalent'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
