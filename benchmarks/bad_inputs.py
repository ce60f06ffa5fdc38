"""Try every edgeres command with hostile and bad inputs, and count what went wrong.

Each case runs `python -m edgeres ...` (whatever edgeres is on PYTHONPATH) in a fresh folder
holding a copy of a tiny real fixture set (a checkpoint, its ONNX and INT8 exports, an image
folder, a calibration manifest and result files), under a time limit and a 4 GB address-space
cap. Per case it records the exit status against the expected one, whether stderr was one
`error: ...` line, tracebacks, half-written files, files changed outside the output folder,
inputs overwritten and whether hostile code ran (a marker file appeared).

    python benchmarks/bad_inputs.py [--out results.json] [--only PATTERN] [--jobs N] [--list]

The exit status is 1 when any goal is missed: 0 tracebacks, 0 code executed, 0 files changed
outside the output folder, 0 inputs overwritten.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _bad_inputs import (
    cases_dataloss,
    cases_hostile,
    cases_memory,
    cases_numbers,
    cases_output,
    cases_tracebacks,
    cases_usage,
)
from _bad_inputs.core import Result, all_cases, run_case
from _bad_inputs.fixtures import build

_GROUPS = (
    cases_numbers,
    cases_hostile,
    cases_dataloss,
    cases_memory,
    cases_tracebacks,
    cases_usage,
    cases_output,
)
#: Goal figures: each must be zero.
GOALS = ("tracebacks", "code executed", "files changed outside", "inputs overwritten")


def _yes(flag: bool | None) -> str:
    return "-" if flag is None else ("yes" if flag else "no")


def table(results: list[Result]) -> str:
    head = ("case", "group", "rc", "want", "1-line", "tb", "half", "outside", "overwr", "code", "verdict")
    rows = [head]
    for r in results:
        if r.skipped:
            rows.append(
                (
                    r.name,
                    r.group,
                    "-",
                    "/".join(map(str, r.expect)),
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    f"skipped: {r.skipped}",
                )
            )
            continue
        rows.append(
            (
                r.name,
                r.group,
                str(r.rc),
                "/".join(map(str, r.expect)),
                _yes(r.one_line),
                _yes(r.traceback),
                str(len(r.half_written)),
                str(len(r.changed_outside)),
                str(len(r.overwritten)),
                _yes(r.code_executed),
                "ok" if r.passed else "FAIL: " + "; ".join(r.problems),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1]
        for row in rows
    )


def summary(results: list[Result]) -> dict[str, int]:
    ran = [r for r in results if r.skipped is None]
    failed_calls = [r for r in ran if r.rc not in (0, None)]
    return {
        "cases": len(results),
        "ran": len(ran),
        "skipped": len(results) - len(ran),
        "passed": sum(r.passed for r in ran),
        "failed": sum(not r.passed for r in ran),
        "exit status as expected": sum(r.status_ok for r in ran),
        "failed runs": len(failed_calls),
        "one-line errors": sum(bool(r.one_line) for r in failed_calls),
        "tracebacks": sum(r.traceback for r in ran),
        "timeouts or kills": sum(r.timed_out or (r.rc is not None and r.rc < 0) for r in ran),
        "half-written files": sum(bool(r.half_written) for r in ran),
        "files changed outside": sum(bool(r.changed_outside) for r in ran),
        "inputs overwritten": sum(bool(r.overwritten) for r in ran),
        "code executed": sum(r.code_executed for r in ran),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help="write every case's result as JSON here")
    parser.add_argument(
        "--only",
        help="comma-separated globs or substrings of case names, or group names: run only those",
    )
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once [default: 1]")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder (printed at the end)")
    args = parser.parse_args(argv)
    assert all(_GROUPS)

    selected = all_cases()
    if args.only:
        pats = [p if any(ch in p for ch in "*?[") else f"*{p}*" for p in args.only.split(",")]
        selected = [c for c in selected if any(fnmatch.fnmatch(c.name, p) or c.group == p for p in pats)]
    if args.list:
        for c in selected:
            print(
                f"{c.group:11} {c.name:40} want {'/'.join(map(str, sorted(c.expect)))}  "
                f"edgeres {' '.join(c.args)}"
            )
        return 0
    if not selected:
        print("no case matches", file=sys.stderr)
        return 2

    scratch = Path(tempfile.mkdtemp(prefix="edgeres-bad-inputs-"))
    t0 = time.monotonic()
    print(f"building fixtures in {scratch / 'fixtures'} ...", file=sys.stderr, flush=True)
    fixtures = build(scratch / "fixtures")
    print(f"fixtures built in {time.monotonic() - t0:.0f} s; running {len(selected)} cases", file=sys.stderr)

    def one(case_index: int) -> Result:
        case = selected[case_index]
        result = run_case(case, fixtures, scratch / "cases")
        mark = "skip" if result.skipped else ("ok" if result.passed else "FAIL")
        print(
            f"[{case_index + 1}/{len(selected)}] {mark:4} {case.name} ({result.seconds:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
        return result

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, range(len(selected))))

    totals = summary(results)
    print(table(results))
    print()
    width = max(map(len, totals))
    for key, value in totals.items():
        goal = "  (goal 0)" if key in GOALS else ""
        print(f"{key.ljust(width)}  {value}{goal}")
    missed = [g for g in GOALS if totals[g]]
    print(f"\ngoals missed: {', '.join(missed)}" if missed else "\nall goals met")
    print(f"took {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if args.out:
        args.out.write_text(
            json.dumps(
                {"summary": totals, "goals_missed": missed, "cases": [asdict(r) for r in results]}, indent=1
            )
            + "\n",
            encoding="utf-8",
        )
        print(f"wrote {args.out}", file=sys.stderr)
    if args.keep:
        print(f"scratch folder kept: {scratch}", file=sys.stderr)
    else:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
