"""Every benchmark, in sequence, each rewriting its own section of benchmarks/RESULTS.md (`make bench`).

    python benchmarks/run_all.py [--only startup,finetune,convert,auto_opt,gguf,ray] [--results benchmarks/RESULTS.md]
                                 [--quiet-load 0.5 --quiet-wait 1800]

1. start-up  - benchmarks/startup.py with Olive's `olive` beside ours  -> "## Start-up"
2. finetune  - benchmarks/finetune.py --write                          -> "## Fine-tuning"
3. convert   - benchmarks/convert.py --write                           -> "## Conversion"
4. auto_opt  - benchmarks/auto_opt.py --write                          -> "## Auto-opt", "## Decode speed"
5. gguf      - benchmarks/gguf_candidates.py --write (needs olive-ext[llamacpp]) -> "## GGUF candidates beside ONNX ..."
6. ray       - benchmarks/ray_workers.py --write (needs olive-ext[ray])  -> "## Ray workers"

The comparison environments (.bench/olive-venv, .bench/llamacpp-venv) are built first, once
(benchmarks/_envs.py; llama-cpp-python compiles from source: several minutes on 2 cores), so
no benchmark times an install. Before each step the script waits (up to --quiet-wait seconds)
for the 1-minute load average to drop below --quiet-load, and records the load it started at.
A failing step is reported and the others still run; the exit code is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    OFFLINE_ENV,
    load_average,
    machine_line,
    output_path,
    run_main,
    today,
    wait_for_quiet,
    write_section,
)

STEPS = ("startup", "finetune", "convert", "auto_opt", "gguf", "ray")


def startup(results: Path, olive: Path) -> int:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "startup.py"), "--olive", str(olive), "--repeats", "10"]
    load = load_average()
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        print(out.stderr, file=sys.stderr)
        return out.returncode
    print(out.stdout)
    rel = olive.relative_to(ROOT) if olive.is_relative_to(ROOT) else olive
    body = (
        f"`python benchmarks/startup.py --olive {rel} --repeats 10` (via `make bench`), {today()}, "
        f"{machine_line()}; 1-minute load average {load:.2f} at the start. Wall time of the whole process, "
        "10 runs after one untimed run that warms the file cache. Target: olive-ext's fast paths under 0.5 s "
        "(no torch, transformers or onnxruntime imported).\n\n" + out.stdout.strip()
    )
    write_section(results, "Start-up", body)
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(STEPS), help="comma-separated steps to run")
    ap.add_argument("--results", type=output_path, default=ROOT / "benchmarks" / "RESULTS.md", help="the file to write")
    ap.add_argument("--quiet-load", type=float, default=0.5)
    ap.add_argument("--quiet-wait", type=float, default=0, help="seconds to wait for a quiet machine before each step")
    args = ap.parse_args()
    steps = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(steps) - set(STEPS)
    if unknown:
        ap.error(f"unknown steps: {', '.join(sorted(unknown))}")
    os.environ.update(OFFLINE_ENV)
    from benchmarks._envs import env_bin, env_python

    olive = env_bin("olive", "olive")
    if "auto_opt" in steps:
        env_python("llamacpp")
    results = args.results.resolve()
    py = sys.executable
    commands = {
        "finetune": [py, "benchmarks/finetune.py", "--write", str(results)],
        "convert": [py, "benchmarks/convert.py", "--write", str(results)],
        "auto_opt": [py, "benchmarks/auto_opt.py", "--write", str(results)],
        "gguf": [py, "benchmarks/gguf_candidates.py", "--write", str(results)],
        "ray": [py, "benchmarks/ray_workers.py", "--write", str(results)],
    }
    failed = []
    print(f"[bench] {today()} {machine_line()}", file=sys.stderr)
    for step in steps:
        if args.quiet_wait:
            wait_for_quiet(args.quiet_load, args.quiet_wait)
        print(f"[bench] === {step} (load {load_average():.2f}) ===", file=sys.stderr, flush=True)
        started = time.perf_counter()
        rc = startup(results, olive) if step == "startup" else subprocess.run(commands[step], cwd=ROOT).returncode
        print(f"[bench] {step}: exit {rc} after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        if rc != 0:
            failed.append(step)
    if failed:
        print(f"[bench] failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    run_main(main)
