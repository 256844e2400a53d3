"""Fuzz `olive-ext validate` with mutated recipes: count tracebacks and slow runs.

Each mutant (tests/recipe_mutants.py: the shipped recipes with values, keys, bytes and structure bent, plus the
inputs issue 20 found: binary files, deep nesting, "billion laughs" aliases, duplicate keys, 5,000-digit
integers, over-long paths) goes through ``olive_ext.cli.main(["validate", path])`` in this process, with a
per-mutant time limit. Exit codes 0 (valid) and 2 (problems named) are the intended answers; any other
exception is a traceback, reported by exception type and the olive-ext line that raised it.

    python benchmarks/fuzz_recipes.py                  # 10,000 mutants, seed 0
    python benchmarks/fuzz_recipes.py -n 500 --seed 7 --save out/fuzz   # keep the mutants that fail
    python benchmarks/fuzz_recipes.py --only 1234      # rerun one mutant and show its traceback
    python benchmarks/fuzz_recipes.py --write          # and record the figures in benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import os
import random
import resource
import shutil
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RESULTS, load_average, machine_line, run_main, today, write_section  # noqa: E402
from recipe_mutants import Mutant, mutate, seed_texts  # noqa: E402

from olive_ext.cli import main as cli_main  # noqa: E402


class MutantTimeout(BaseException):
    """Raised by the alarm when one mutant runs past --timeout (a BaseException, so no handler swallows it)."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise MutantTimeout


def site_of(exc: BaseException) -> str:
    """The innermost olive_ext frame of the traceback (the library's own frame when none is ours)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "olive_ext" in f.filename]
    frame = (ours or frames or [None])[-1]
    if frame is None:
        return "?"
    path = Path(frame.filename)
    where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
    return f"{where}:{frame.lineno}"


def run_one(mutant: Mutant, folder: Path, timeout: float) -> tuple[int | None, BaseException | None, float, str]:
    """(exit code or None, exception or None, seconds, captured output) of validating one mutant."""
    path = mutant.write(folder)
    out = io.StringIO()
    signal.setitimer(signal.ITIMER_REAL, timeout)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = cli_main(["validate", path])
        if code in (130, 143):  # the CLI turns Ctrl-C (SIGTERM) into 130 (143): that stops the run, not a mutant
            raise KeyboardInterrupt
        return code, None, time.perf_counter() - start, out.getvalue()
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # everything else is what we count
        return None, e, time.perf_counter() - start, out.getvalue()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", "--mutants", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0, help="mutant i is made by random.Random(f'{seed}:{i}')")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before one mutant is stopped")
    ap.add_argument("--slow", type=float, default=10.0, help="a run longer than this counts as slow")
    ap.add_argument("--memory-mb", type=int, default=4096, help="address-space limit (a runaway fails, not the box)")
    ap.add_argument("--only", type=int, help="run only mutant i and print its traceback")
    ap.add_argument("--save", type=Path, help="copy each failing mutant into this folder")
    ap.add_argument("--write", action="store_true", help="record the figures in benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.mutants < 1:
        ap.error(f"-n {args.mutants}: give 1 or more mutants")
    load_before = load_average()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    limit = args.memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    signal.signal(signal.SIGALRM, _alarm)
    seeds = seed_texts()
    indices = [args.only] if args.only is not None else range(args.mutants)

    failures: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    codes: collections.Counter[int] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()
    slow: list[tuple[float, int]] = []
    worst = (0.0, -1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "data").symlink_to(ROOT / "recipes" / "data")  # the recipes' relative data paths resolve
        for i in indices:
            mutant = mutate(random.Random(f"{args.seed}:{i}"), seeds)
            kinds[mutant.kind] += 1
            code, exc, seconds, output = run_one(mutant, folder, args.timeout)
            worst = max(worst, (seconds, i))
            if seconds > args.slow:
                slow.append((seconds, i))
            if exc is None:
                codes[code if code is not None else -1] += 1
                if args.only is not None:
                    print(output)
                continue
            failures[(type(exc).__name__, site_of(exc))].append(i)
            if args.only is not None:
                traceback.print_exception(exc)
            if args.save:
                args.save.mkdir(parents=True, exist_ok=True)
                src = Path(mutant.write(folder))
                if mutant.path is None:
                    shutil.copy(src, args.save / f"{i}-{mutant.kind}{mutant.suffix}")
    elapsed = time.perf_counter() - started
    lines = report(len(indices), failures, codes, kinds, slow, worst, elapsed, args)
    print("\n".join(lines))
    if args.write and args.only is None:
        write_results(lines, args, load_before)


def report(
    total: int,
    failures: dict[tuple[str, str], list[int]],
    codes: collections.Counter[int],
    kinds: collections.Counter[str],
    slow: list[tuple[float, int]],
    worst: tuple[float, int],
    elapsed: float,
    args: argparse.Namespace,
) -> list[str]:
    """The figures: mutants, exit codes, tracebacks by type and site, slow runs, the slowest, the total."""
    tracebacks = sum(len(v) for v in failures.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        f"mutants: {total} (seed {args.seed}; {', '.join(f'{k} {n}' for k, n in kinds.most_common())})",
        f"exit codes: {', '.join(f'{c}: {n}' for c, n in sorted(codes.items()))}",
        f"tracebacks: {tracebacks}",
    ]
    for (name, site), idx in sorted(failures.items(), key=lambda kv: -len(kv[1])):
        lines.append(f"  {len(idx):6d}  {name} at {site}  (e.g. --only {idx[0]})")
    lines.append(f"runs over {args.slow:g} s: {len(slow)}" + (f" (e.g. --only {slow[0][1]})" if slow else ""))
    lines.append(f"max seconds: {worst[0]:.2f} (mutant {worst[1]})")
    per_mutant = elapsed / max(total, 1) * 1000
    lines.append(f"total: {elapsed:.0f} s, {per_mutant:.1f} ms per mutant, peak RSS {peak_mb:.0f} MB")
    return lines


def write_results(lines: list[str], args: argparse.Namespace, load_before: float) -> None:
    command = f"python benchmarks/fuzz_recipes.py -n {args.mutants} --seed {args.seed} --write"
    body = (
        f"`{command}`, {today()}, {machine_line()}; one process, mutants one after another; 1-minute load average "
        f"{load_before:.1f} at the start and {load_average():.1f} at the end (other jobs shared the cores, so the "
        "seconds are upper bounds). Each mutant of a shipped recipe (tests/recipe_mutants.py) goes through "
        '`olive_ext.cli.main(["validate", path])`; exit codes 0 and 2 are answers, any other exception is a '
        f"traceback, and a run over {args.slow:g} s is slow (each is stopped at {args.timeout:g} s).\n\n"
        "```\n" + "\n".join(lines) + "\n```"
    )
    write_section(RESULTS, "Recipe fuzzing", body)


if __name__ == "__main__":
    run_main(main)
